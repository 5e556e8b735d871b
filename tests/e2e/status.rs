//! The operator's status, conditions, events, finalizers, metrics and probes.

use std::net::TcpListener;
use std::time::Duration;

use crate::harness::{Operator, env, jsonpath, kubectl, kubectl_ok, kubectl_stdin_ok, namespace};

fn migration(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: {name}}}\n\
         spec: {{server: web-1, source: {{secretName: clouds, cloud: old}}, target: {{availabilityZone: icehouse}}{extra}}}\n"
    )
}

#[test]
fn a_valid_migration_gets_status_conditions_and_events() {
    let env = env();
    let ns = namespace(env, "valid");
    let op = Operator::start(env, &ns, "valid", "osmo-e2e-valid");
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("web-1", ""));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Accepted", "im/web-1", "--timeout=60s"]);

    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.phase}"), "Pending");
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.observedGeneration}"), "1");
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.conditions[?(@.type==\"Accepted\")].observedGeneration}"), "1");
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.metadata.finalizers[0]}"), "osmo.dev/instance-migration");
    // Until the migration steps exist, the status says so instead of pretending progress.
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.conditions[?(@.type==\"Ready\")].reason}"), "NotImplemented");

    let table = kubectl_ok(env, &["-n", &ns, "get", "im"]);
    let row: Vec<_> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web-1", "Pending", "web-1", "icehouse"], "{table}");

    let described = kubectl_ok(env, &["-n", &ns, "describe", "im", "web-1"]);
    assert!(described.contains("Valid") && described.contains("Accepted=True"), "no event in:\n{described}");

    // A spec change is acted on: observedGeneration follows the generation.
    kubectl_ok(
        env,
        &["-n", &ns, "patch", "im", "web-1", "--type=merge", "-p", r#"{"spec":{"target":{"host":"icehouse-1"}}}"#],
    );
    kubectl_ok(env, &["-n", &ns, "wait", "--for=jsonpath={.status.observedGeneration}=2", "im/web-1", "--timeout=60s"]);
    assert_eq!(jsonpath(env, &ns, "im/web-1", "{.status.targetDescription}"), "icehouse/icehouse-1");

    // The operator owns status only: no field manager of its own holds anything in spec, so an
    // Argo CD sync sees no drift.
    let managed = kubectl_ok(env, &["-n", &ns, "get", "im", "web-1", "--show-managed-fields", "-o", "json"]);
    let managed: serde_json::Value = serde_json::from_str(&managed).unwrap();
    for entry in managed["metadata"]["managedFields"].as_array().unwrap() {
        if entry["manager"] != "kubectl-client-side-apply"
            && entry["manager"] != "kubectl-patch"
            && entry["manager"] != "kubectl"
        {
            assert!(entry["fieldsV1"].get("f:spec").is_none(), "the operator wrote spec: {entry}");
        }
    }

    // Deletion passes through the finalizer and completes.
    kubectl_ok(env, &["-n", &ns, "delete", "im", "web-1", "--timeout=60s"]);
    assert!(!kubectl(env, &["-n", &ns, "get", "im", "web-1"]).status.success());
    drop(op);
}

#[test]
fn an_invalid_spec_fails_naming_the_field_without_calling_openstack() {
    let env = env();
    let ns = namespace(env, "invalid");
    // A stand-in for Keystone that counts connections: the operator must not make any.
    let keystone = TcpListener::bind("127.0.0.1:0").unwrap();
    keystone.set_nonblocking(true).unwrap();
    let clouds = format!(
        "clouds.yaml=clouds:\n  old:\n    auth:\n      auth_url: http://{}/v3\n      username: admin\n      password: secret\n      project_name: admin\n",
        keystone.local_addr().unwrap()
    );
    kubectl_ok(env, &["-n", &ns, "create", "secret", "generic", "clouds", &format!("--from-literal={clouds}")]);
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

    let drain = "apiVersion: osmo.dev/v1alpha1\nkind: ComputeNodeDrain\nmetadata: {name: havana-1}\n\
                 spec: {cloud: {secretName: clouds, cloud: old}, host: havana-1, mode: Migrate}\n";
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], drain);
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Failed", "cnd/havana-1", "--timeout=60s"]);
    let message = jsonpath(env, &ns, "cnd/havana-1", "{.status.conditions[?(@.type==\"Failed\")].message}");
    assert_eq!(message, "spec.migrationTemplate: required when mode is Migrate");

    // Correcting the spec is enough: the resource is accepted again.
    kubectl_ok(
        env,
        &["-n", &ns, "patch", "im", "redeploy-1", "--type=merge", "-p", r#"{"spec":{"redeploy":{"image":"cirros"}}}"#],
    );
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Accepted", "im/redeploy-1", "--timeout=60s"]);
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Failed=False", "im/redeploy-1", "--timeout=60s"]);

    match keystone.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the operator connected to the cloud's auth_url: {other:?}"),
    }
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
