//! One migration per server and one drain per host, across the whole cluster: two resources of
//! one thing in two namespaces, each watched by its own operator, and exactly one proceeds; a
//! claim left by a holder that is gone blocks nothing.

use std::time::Duration;

use osmo::runtime::claim::Key;

use crate::drain::{REASON, apply_drain, service, spare_host, wait_phase};
use crate::harness::{
    Env, OPERATOR_NAMESPACE, Operator, env, eventually, jsonpath, kubectl, kubectl_ok, kubectl_stdin_ok, namespace,
    wait_for,
};
use crate::migration::{
    apply_migration, assert_moved, clean_up, namespace_with_clouds, server_with_floating_ip, setup,
};
use crate::openstack::{extra_compute, fixtures, session};

/// A namespace whose Secret `clouds` reaches the same Keystone by another spelling of its URL
/// (no `/v3`, a trailing slash), and an operator watching it.
fn setup_with_other_url(test: &str) -> (String, Operator) {
    let env = env();
    let ns = namespace(env, test);
    let clouds = std::fs::read_to_string(std::env::var("OSMO_E2E_CLOUDS").unwrap()).unwrap();
    let rewritten = clouds.replace("/v3\n", "/\n");
    assert_ne!(rewritten, clouds, "the test clouds' auth_url ends in /v3");
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{ns}.clouds.yaml"));
    std::fs::write(&file, rewritten).unwrap();
    let from_file = format!("--from-file=clouds.yaml={}", file.display());
    kubectl_ok(env, &["-n", &ns, "create", "secret", "generic", "clouds", &from_file]);
    let op = Operator::start(env, &ns, test, &format!("osmo-{ns}"));
    (ns, op)
}

/// The phases of `resource` in each namespace, once each has reached one of `ends`.
fn ended(env: &Env, namespaces: &[&str], resource: &str, ends: &[&str]) -> Vec<String> {
    eventually(Duration::from_secs(240), &format!("{resource} to end in every namespace"), || {
        let phases: Vec<String> = namespaces.iter().map(|ns| jsonpath(env, ns, resource, "{.status.phase}")).collect();
        phases.iter().all(|p| ends.contains(&p.as_str())).then_some(phases)
    })
}

/// Of two namespaces, the one where `resource` reached `proceeded` and the one where it was
/// refused with `Conflict` naming the other's (`namespace/name`); fails unless exactly so.
fn winner_and_loser<'a>(env: &Env, namespaces: [&'a str; 2], resource: &str, proceeded: &str) -> (&'a str, &'a str) {
    let phases = ended(env, &namespaces, resource, &[proceeded, "Failed"]);
    let (winner, loser) = match (phases[0].as_str(), phases[1].as_str()) {
        (a, "Failed") if a == proceeded => (namespaces[0], namespaces[1]),
        ("Failed", b) if b == proceeded => (namespaces[1], namespaces[0]),
        _ => panic!("exactly one {resource} must proceed: {phases:?}"),
    };
    assert_eq!(jsonpath(env, loser, resource, "{.status.conditions[?(@.type==\"Failed\")].reason}"), "Conflict");
    let error = jsonpath(env, loser, resource, "{.status.lastError}");
    let holder = format!("{winner}/{}", resource.split_once('/').unwrap().1);
    assert!(error.contains(&holder), "the refusal names the holder {holder}: {error}");
    (winner, loser)
}

fn lease_exists(env: &Env, name: &str) -> bool {
    kubectl(env, &["-n", OPERATOR_NAMESPACE, "get", "lease", name]).status.success()
}

#[tokio::test]
async fn one_server_in_two_namespaces_is_migrated_once() {
    let (env, first) = namespace_with_clouds("claimvm-a");
    let _first_op = Operator::start(env, &first, "claimvm-a", &format!("osmo-{first}"));
    let (second, _second_op) = setup_with_other_url("claimvm-b");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    let name = admin.compute().server(&id).await.unwrap().unwrap().name;

    apply_migration(env, &first, "web", &id, "");
    apply_migration(env, &second, "web", &id, "");
    let (winner, loser) = winner_and_loser(env, [&first, &second], "im/web", "Succeeded");
    // The loser changed nothing: it never made a snapshot, and exactly one replacement runs.
    assert!(jsonpath(env, loser, "im/web", "{.status.snapshot}").is_empty());
    let new_id = assert_moved(&admin, env, winner, "web", &id, &fip).await;
    let named: Vec<_> =
        admin.compute().servers_named(&name).await.unwrap().into_iter().filter(|s| s.status != "DELETED").collect();
    assert_eq!(named.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [new_id.as_str()], "one server named {name}");
    // The winner's claim is released once it succeeded.
    let claim = jsonpath(env, winner, "im/web", "{.status.claim}");
    assert!(claim.starts_with("osmo-server-"), "{claim:?}");
    eventually(Duration::from_secs(30), "the claim to be released", || (!lease_exists(env, &claim)).then_some(()));
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn a_claim_left_by_a_holder_that_is_gone_is_taken_over() {
    let (env, ns, _op) = setup("claimstale");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    // A claim on the server by a migration deleted while no operator ran (its Lease left).
    let project = admin.compute().server(&id).await.unwrap().unwrap().tenant_id.unwrap();
    let claim = Key::server(&admin.config().auth.auth_url, &project, &id).lease_name();
    let stale = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {claim}\n  namespace: {OPERATOR_NAMESPACE}\n\
         \x20 labels: {{osmo.dev/claim: server, osmo.dev/holder-uid: 00000000-0000-0000-0000-000000000000}}\n\
         \x20 annotations: {{osmo.dev/holder-kind: InstanceMigration, osmo.dev/holder-namespace: {ns}, osmo.dev/holder-name: gone}}\n\
         spec: {{holderIdentity: InstanceMigration {ns}/gone}}\n"
    );
    kubectl_stdin_ok(env, &["apply", "-f", "-"], &stale);

    apply_migration(env, &ns, "web", &id, "");
    wait_for(env, &ns, "im/web", "condition=Ready", 240);
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.claim}"), claim);
    let new_id = assert_moved(&admin, env, &ns, "web", &id, &fip).await;
    eventually(Duration::from_secs(30), "the claim to be released", || (!lease_exists(env, &claim)).then_some(()));
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn one_host_in_two_namespaces_is_drained_by_one_drain() {
    let admin = session("admin");
    let host = spare_host(&admin, "claim").await;
    let (env, first, _first_op) = setup("claimhost-a");
    let (_, second, _second_op) = setup("claimhost-b");

    apply_drain(env, &first, "host", &host, ", mode: Wait");
    apply_drain(env, &second, "host", &host, ", mode: Wait");
    let (winner, loser) = winner_and_loser(env, [&first, &second], "cnd/host", "Drained");
    let claim = jsonpath(env, winner, "cnd/host", "{.status.claim}");
    assert!(claim.starts_with("osmo-host-") && lease_exists(env, &claim), "{claim:?}");
    assert_eq!(service(&admin, &host).await.unwrap().disabled_reason.as_deref(), Some(REASON));

    // Deleting the holder releases the host: a new drain in the other namespace takes it.
    kubectl_ok(env, &["-n", winner, "delete", "cnd", "host", "--timeout=60s"]);
    assert!(!lease_exists(env, &claim), "the claim outlived its holder");
    apply_drain(env, loser, "again", &host, ", mode: Wait");
    wait_phase(env, loser, "again", "Drained", 120);
    assert_eq!(jsonpath(env, loser, "cnd/again", "{.status.claim}"), claim);
    kubectl_ok(env, &["-n", loser, "delete", "cnd", "again", "--timeout=60s"]);
    extra_compute("stop", &host);
}
