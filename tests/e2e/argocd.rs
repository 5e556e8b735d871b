//! Argo CD: the health checks judge the live objects in each state a real run reaches, and
//! those objects are the checks' committed testdata (rewritten with
//! `OSMO_UPDATE_ARGOCD_TESTDATA=1`); and a sync of the applied manifest finds no drift in spec.

use std::sync::Mutex;

use serde_json::Value;

use crate::argocd_customizations::{CAPTURES, TestCase, TestFile, customization_dir, health, read_test_file};
use crate::drain::{server_on, spare_host, wait_phase};
use crate::harness::{Env, Operator, jsonpath, kubectl_ok, kubectl_stdin_ok};
use crate::migration::{apply_migration, clean_up, server_with_floating_ip, setup, wait_condition};
use crate::openstack::{extra_compute, fixtures, session, wait_gone};

/// Checks `kind`'s health.lua on the live `name` against the health [`CAPTURES`] lists for
/// `file`, and with `OSMO_UPDATE_ARGOCD_TESTDATA=1` writes the object as that testdata.
fn capture(env: &Env, ns: &str, kind: &str, name: &str, file: &str) {
    let expected = CAPTURES.iter().find(|c| c.kind == kind && c.file == file).expect("a state listed in CAPTURES");
    let mut object: Value =
        serde_json::from_str(&kubectl_ok(env, &["-n", ns, "get", &format!("{kind}.osmo.dev/{name}"), "-o", "json"]))
            .unwrap();
    object["metadata"].as_object_mut().unwrap().remove("managedFields");
    let got = health(kind, &object);
    assert_eq!(got.status, expected.health, "{kind} {file}: {got:?} for\n{object:#}");
    if std::env::var("OSMO_UPDATE_ARGOCD_TESTDATA").as_deref() == Ok("1") {
        write_case(kind, file, &object, TestCase { health_status: got, input_path: format!("testdata/{file}") });
    }
}

/// Writes the testdata file and its case in health_test.yaml, in the order of [`CAPTURES`].
fn write_case(kind: &str, file: &str, object: &Value, case: TestCase) {
    // Tests run in parallel and share each kind's health_test.yaml.
    static WRITING: Mutex<()> = Mutex::new(());
    let _writing = WRITING.lock().unwrap();
    let dir = customization_dir(kind);
    let header = "# Captured from the operator by tests/e2e/argocd.rs (OSMO_UPDATE_ARGOCD_TESTDATA=1); do not edit.\n";
    let yaml = serde_saphyr::to_string(object).unwrap();
    std::fs::write(dir.join("testdata").join(file), format!("{header}{yaml}")).unwrap();
    let mut cases = read_test_file(kind).tests;
    cases.retain(|c| c.input_path != case.input_path);
    cases.push(case);
    let order =
        |c: &TestCase| CAPTURES.iter().position(|k| k.kind == kind && format!("testdata/{}", k.file) == c.input_path);
    cases.sort_by_key(order);
    let text = serde_saphyr::to_string(&TestFile { tests: cases }).unwrap();
    std::fs::write(dir.join("health_test.yaml"), format!("{header}{text}")).unwrap();
}

/// What Argo CD does to compare git with the cluster: a server-side dry-run apply of the
/// manifest. Nothing in spec may differ, and the generation must not move.
fn assert_no_spec_drift(env: &Env, ns: &str, resource: &str, manifest: &str) {
    let live: Value = serde_json::from_str(&kubectl_ok(env, &["-n", ns, "get", resource, "-o", "json"])).unwrap();
    let args = [
        "-n",
        ns,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=argocd-controller",
        "-o",
        "json",
        "-f",
        "-",
    ];
    let synced: Value = serde_json::from_str(&kubectl_stdin_ok(env, &args, manifest)).unwrap();
    assert_eq!(synced["spec"], live["spec"], "a sync would change the spec of {resource}");
    assert_eq!(synced["metadata"]["generation"], live["metadata"]["generation"]);
    assert_eq!(live["metadata"]["generation"], 1, "the spec of {resource} changed after it was applied");
}

/// Stops the operator so that a spec change stays unobserved and a deletion stays pending on
/// its finalizer, captures both, then lets a new operator finish the deletions.
fn capture_while_stopped(
    env: &Env,
    ns: &str,
    operator: Operator,
    kind: &str,
    patched: &str,
    patch: &str,
    deleted: &str,
) {
    let resource = format!("{kind}.osmo.dev");
    drop(operator);
    kubectl_ok(env, &["-n", ns, "patch", &resource, patched, "--type=merge", "-p", patch]);
    capture(env, ns, kind, patched, "unobserved-generation.yaml");
    kubectl_ok(env, &["-n", ns, "delete", &resource, deleted, "--wait=false"]);
    capture(env, ns, kind, deleted, "deletion-pending.yaml");
    let _operator = Operator::start(env, ns, &format!("{ns}-again"), &format!("osmo-{ns}-again"));
    kubectl_ok(env, &["-n", ns, "delete", &resource, "--all", "--timeout=120s"]);
}

#[tokio::test]
async fn migration_states_have_their_argocd_health() {
    let (env, ns, operator) = setup("argocdim");
    let admin = session("admin");
    let f = fixtures(&admin).await;

    apply_migration(env, &ns, "invalid", "web-1", ", strategy: Redeploy");
    wait_condition(env, &ns, "invalid", "Failed", 60);
    capture(env, &ns, "InstanceMigration", "invalid", "invalid.yaml");

    // A slow snapshot holds the migration in a step long enough to look at it.
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[("osmo_test_snapshot_delay", "4")]).await;
    apply_migration(env, &ns, "web", &id, "");
    kubectl_ok(env, &["-n", &ns, "wait", "--for=jsonpath={.status.phase}=Snapshotting", "im/web", "--timeout=120s"]);
    capture(env, &ns, "InstanceMigration", "web", "snapshotting.yaml");
    wait_condition(env, &ns, "web", "Ready", 240);
    capture(env, &ns, "InstanceMigration", "web", "succeeded.yaml");
    let manifest = format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: web}}\n\
         spec: {{server: {id}, source: {{secretName: clouds, cloud: admin}}, target: {{availabilityZone: icehouse}}}}\n"
    );
    assert_no_spec_drift(env, &ns, "im/web", &manifest);
    let new_id = jsonpath(env, &ns, "im/web", "{.status.target.serverId}");

    let fixed = r#"{"spec":{"redeploy":{"image":"base"}}}"#;
    capture_while_stopped(env, &ns, operator, "InstanceMigration", "invalid", fixed, "web");
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn drain_states_have_their_argocd_health() {
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let host = spare_host(&admin, "argo").await;
    let (server, _) = server_on(&admin, &f, &host, &format!("{host}-vm"), false).await;
    let (env, ns, operator) = setup("argocdcnd");
    let drain = |name: &str, host: &str, spec: &str| {
        format!(
            "apiVersion: osmo.dev/v1alpha1\nkind: ComputeNodeDrain\nmetadata: {{name: {name}}}\n\
             spec: {{cloud: {{secretName: clouds, cloud: admin}}, host: {host}, {spec}}}\n"
        )
    };
    let apply = |manifest: &str| kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], manifest);
    apply(&drain("invalid", &host, "mode: Migrate"));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Failed", "cnd/invalid", "--timeout=60s"]);
    capture(env, &ns, "ComputeNodeDrain", "invalid", "invalid.yaml");

    apply(&drain("no-host", "no-such-host", "mode: Wait"));
    wait_phase(env, &ns, "no-host", "Failed", 60);
    capture(env, &ns, "ComputeNodeDrain", "no-host", "failed.yaml");

    // A dry run changes nothing in OpenStack.
    let dry_run = drain("dry-run", &host, "mode: Wait, dryRun: true");
    apply(&dry_run);
    wait_phase(env, &ns, "dry-run", "Planned", 60);
    capture(env, &ns, "ComputeNodeDrain", "dry-run", "planned.yaml");
    assert_no_spec_drift(env, &ns, "cnd/dry-run", &dry_run);

    // Waiting for the server's owner, then past the deadline, then drained once it is deleted.
    apply(&drain("wait", &host, "mode: Wait, waitDeadlineSeconds: 600"));
    wait_phase(env, &ns, "wait", "Draining", 60);
    capture(env, &ns, "ComputeNodeDrain", "wait", "draining.yaml");
    kubectl_ok(
        env,
        &["-n", &ns, "patch", "cnd", "wait", "--type=merge", "-p", r#"{"spec":{"waitDeadlineSeconds":1}}"#],
    );
    wait_phase(env, &ns, "wait", "Blocked", 60);
    capture(env, &ns, "ComputeNodeDrain", "wait", "blocked.yaml");
    admin.compute().delete_server(&server).await.unwrap();
    wait_gone(&admin, &server).await;
    wait_phase(env, &ns, "wait", "Drained", 120);
    capture(env, &ns, "ComputeNodeDrain", "wait", "drained.yaml");

    // Its process stopped and the service forced down, the empty host's service is retired
    // (by a new drain: the first one holds the host until it is deleted).
    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "wait", "--timeout=60s"]);
    extra_compute("stop", &host);
    apply(&drain("retire", &host, "mode: Wait, afterDrain: RetireService, forceDown: true"));
    wait_phase(env, &ns, "retire", "Retired", 120);
    capture(env, &ns, "ComputeNodeDrain", "retire", "retired.yaml");

    let fixed = r#"{"spec":{"migrationTemplate":{"target":{"availabilityZone":"icehouse"}}}}"#;
    capture_while_stopped(env, &ns, operator, "ComputeNodeDrain", "invalid", fixed, "dry-run");
}
