//! The operator's status, conditions, events, finalizers, metrics and probes.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use osmo::api::{InstanceMigration, InstanceMigrationStatus};
use osmo::runtime::metrics::Metrics;
use osmo::runtime::{Shared, claim, clouds, events, status};

use crate::harness::{Operator, env, jsonpath, kubectl, kubectl_ok, kubectl_stdin_ok, namespace};

fn migration(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: {name}}}\n\
         spec: {{server: web-1, source: {{secretName: clouds, cloud: old}}, target: {{availabilityZone: icehouse}}{extra}}}\n"
    )
}

fn drain(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: ComputeNodeDrain\nmetadata: {{name: {name}}}\n\
         spec: {{cloud: {{secretName: clouds, cloud: old}}, host: {name}, mode: Migrate{extra}}}\n"
    )
}

/// A namespace whose cloud `old` names as Keystone a listener that takes connections and never
/// answers.
pub fn namespace_with_a_silent_keystone(test: &str) -> (&'static crate::harness::Env, String, TcpListener) {
    let env = env();
    let ns = namespace(env, test);
    let keystone = TcpListener::bind("127.0.0.1:0").unwrap();
    let clouds = format!(
        "clouds.yaml=clouds:\n  old:\n    auth:\n      auth_url: http://{}/v3\n      username: admin\n      password: secret\n      project_name: admin\n",
        keystone.local_addr().unwrap()
    );
    kubectl_ok(env, &["-n", &ns, "create", "secret", "generic", "clouds", &format!("--from-literal={clouds}")]);
    (env, ns, keystone)
}

#[test]
fn a_valid_resource_gets_status_conditions_and_events() {
    let (env, ns, op) = crate::migration::setup("valid");
    // A dry run, so that havana-1, which other tests use, is left as it is.
    let spec = ", migrationTemplate: {target: {availabilityZone: icehouse}}, dryRun: true";
    let manifest = drain("havana-1", spec).replace("cloud: old", "cloud: admin");
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &manifest);
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Accepted", "cnd/havana-1", "--timeout=60s"]);
    kubectl_ok(env, &["-n", &ns, "wait", "--for=jsonpath={.status.phase}=Planned", "cnd/havana-1", "--timeout=60s"]);

    assert_eq!(jsonpath(env, &ns, "cnd/havana-1", "{.status.observedGeneration}"), "1");
    assert_eq!(
        jsonpath(env, &ns, "cnd/havana-1", "{.status.conditions[?(@.type==\"Accepted\")].observedGeneration}"),
        "1"
    );
    assert_eq!(jsonpath(env, &ns, "cnd/havana-1", "{.metadata.finalizers[0]}"), "osmo.dev/compute-node-drain");
    assert_eq!(jsonpath(env, &ns, "cnd/havana-1", "{.status.conditions[?(@.type==\"Progressing\")].reason}"), "DryRun");

    let table = kubectl_ok(env, &["-n", &ns, "get", "cnd"]);
    let row: Vec<_> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["havana-1", "Planned", "havana-1"], "{table}");

    let described = kubectl_ok(env, &["-n", &ns, "describe", "cnd", "havana-1"]);
    assert!(described.contains("Valid") && described.contains("Accepted=True"), "no event in:\n{described}");

    // A spec change is acted on: observedGeneration follows the generation.
    kubectl_ok(env, &["-n", &ns, "patch", "cnd", "havana-1", "--type=merge", "-p", r#"{"spec":{"maxConcurrent":3}}"#]);
    kubectl_ok(
        env,
        &["-n", &ns, "wait", "--for=jsonpath={.status.observedGeneration}=2", "cnd/havana-1", "--timeout=60s"],
    );

    // The operator owns status only: no field manager of its own holds anything in spec, so an
    // Argo CD sync sees no drift.
    let managed = kubectl_ok(env, &["-n", &ns, "get", "cnd", "havana-1", "--show-managed-fields", "-o", "json"]);
    let managed: serde_json::Value = serde_json::from_str(&managed).unwrap();
    for entry in managed["metadata"]["managedFields"].as_array().unwrap() {
        if !entry["manager"].as_str().unwrap_or_default().starts_with("kubectl") {
            assert!(entry["fieldsV1"].get("f:spec").is_none(), "the operator wrote spec: {entry}");
        }
    }

    // Deletion passes through the finalizer and completes.
    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "havana-1", "--timeout=60s"]);
    assert!(!kubectl(env, &["-n", &ns, "get", "cnd", "havana-1"]).status.success());
    drop(op);
}

#[test]
fn an_invalid_spec_fails_naming_the_field_without_calling_openstack() {
    // A stand-in for Keystone that counts connections: the operator must not make any.
    let (env, ns, keystone) = namespace_with_a_silent_keystone("invalid");
    keystone.set_nonblocking(true).unwrap();
    let _op = Operator::start(env, &ns, "invalid", "osmo-e2e-invalid");

    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("redeploy-1", ", strategy: Redeploy"));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Failed", "im/redeploy-1", "--timeout=60s"]);
    assert_eq!(jsonpath(env, &ns, "im/redeploy-1", "{.status.phase}"), "Failed");
    assert_eq!(jsonpath(env, &ns, "im/redeploy-1", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "Invalid");
    let message = jsonpath(env, &ns, "im/redeploy-1", "{.status.conditions[?(@.type==\"Failed\")].message}");
    assert_eq!(message, "spec.redeploy.image: required when strategy is Redeploy");
    let described = kubectl_ok(env, &["-n", &ns, "describe", "im", "redeploy-1"]);
    assert!(
        described.contains("Warning") && described.contains("spec.redeploy.image"),
        "no warning event in:\n{described}"
    );

    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &drain("havana-1", ""));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Failed", "cnd/havana-1", "--timeout=60s"]);
    let message = jsonpath(env, &ns, "cnd/havana-1", "{.status.conditions[?(@.type==\"Failed\")].message}");
    assert_eq!(message, "spec.migrationTemplate: required when mode is Migrate");

    match keystone.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the operator connected to the cloud's auth_url: {other:?}"),
    }

    // Correcting the spec is enough: the resource is accepted again.
    let fixed = r#"{"spec":{"migrationTemplate":{"target":{"availabilityZone":"icehouse"}}}}"#;
    kubectl_ok(env, &["-n", &ns, "patch", "cnd", "havana-1", "--type=merge", "-p", fixed]);
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Accepted", "cnd/havana-1", "--timeout=60s"]);
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Failed=False", "cnd/havana-1", "--timeout=60s"]);
}

#[test]
fn a_migration_is_acknowledged_before_openstack_answers() {
    // Whatever the operator writes before the cloud times out, it wrote before any OpenStack
    // call came back.
    let (env, ns, keystone) = namespace_with_a_silent_keystone("ack");
    let _op = Operator::start(env, &ns, "ack", "osmo-e2e-ack");

    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("web-1", ""));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=jsonpath={.status.phase}=Pending", "im/web-1", "--timeout=60s"]);
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.conditions[?(@.type==\"Accepted\")].status}"), "True");
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.observedGeneration}"), "1");
    let table = kubectl_ok(env, &["-n", &ns, "get", "im", "web-1", "--no-headers"]);
    assert_eq!(table.split_whitespace().nth(1), Some("Pending"), "{table}");
    // The operator did go on to OpenStack (it was not refused before): Keystone has its call.
    keystone.set_nonblocking(false).unwrap();
    assert!(keystone.accept().is_ok());
}

#[test]
fn a_missing_secret_fails_naming_it() {
    let env = env();
    let ns = namespace(env, "nosecret");
    let _op = Operator::start(env, &ns, "nosecret", "osmo-e2e-nosecret");
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("web-1", ""));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Failed", "im/web-1", "--timeout=60s"]);
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "SecretNotFound");
    let message = jsonpath(env, &ns, "im/web-1", "{.status.lastError}");
    assert_eq!(message, format!("spec.source: Secret {ns}/clouds does not exist"));
}

#[test]
fn probes_and_metrics_are_served() {
    let env = env();
    let ns = namespace(env, "metrics");
    let op = Operator::start(env, &ns, "metrics", "osmo-e2e-metrics");
    assert_eq!(op.get("/healthz").0, 200);
    crate::harness::eventually(Duration::from_secs(30), "/readyz to answer 200", || {
        (op.get("/readyz").0 == 200).then_some(())
    });
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("web-1", ""));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Accepted", "im/web-1", "--timeout=60s"]);
    let (code, metrics) = op.get("/metrics");
    assert_eq!(code, 200);
    for expected in [
        r#"osmo_reconciles_total{kind="InstanceMigration"}"#,
        r#"osmo_reconcile_duration_seconds_count{kind="InstanceMigration"}"#,
        "osmo_leader 1",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from:\n{metrics}");
    }
}

/// What the operator's status writes need, as the admin.
async fn shared(env: &crate::harness::Env) -> Shared {
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.admin_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let metrics = Arc::new(Metrics::default());
    let reporter = Reporter { controller: "osmo-e2e".into(), instance: None };
    let (events, _publisher) = events::Events::start(Recorder::new(client.clone(), reporter), metrics.clone());
    Shared {
        events,
        clouds: clouds::Clouds::new(client.clone(), Arc::new(|_, _| {}), 1),
        claims: claim::Claims::new(client.clone(), crate::harness::OPERATOR_NAMESPACE.into(), metrics.clone()),
        client,
        metrics,
    }
}

#[tokio::test]
async fn a_status_decided_on_an_older_version_is_refused() {
    // No operator runs here: the test writes as two replicas would.
    let env = env();
    let ns = namespace(env, "stale");
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("web-1", ""));
    let shared = shared(env).await;
    let read = Api::<InstanceMigration>::namespaced(shared.client.clone(), &ns).get("web-1").await.unwrap();
    let with_error = |error: &str| InstanceMigrationStatus { last_error: Some(error.into()), ..Default::default() };

    // The leader writes on the version it read, and goes on from the version it wrote.
    let mut leader = read.clone();
    let first = with_error("written by the leader");
    assert!(status::publish(&shared, &mut leader, None, &first).await.unwrap());
    assert_ne!(leader.resource_version(), read.resource_version());

    // A deposed replica, deciding on the version read before, is refused: nothing it decided
    // is written over the newer status.
    let mut deposed = read.clone();
    let error = status::publish(&shared, &mut deposed, None, &with_error("written by a deposed leader")).await;
    assert!(error.as_ref().is_err_and(status::is_conflict), "{error:?}");
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.lastError}"), "written by the leader");

    let second = with_error("written by the leader again");
    assert!(status::publish(&shared, &mut leader, Some(&first), &second).await.unwrap());
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.lastError}"), "written by the leader again");
}
