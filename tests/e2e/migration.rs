//! InstanceMigration end to end: the operator against the real kube-apiserver and the real
//! OpenStack services, asserted with kubectl and with what OpenStack itself reports.

use std::time::Duration;

use osmo::migration::planner::UID_KEY;
use osmo::openstack::compute::NetworkAttachment;
use osmo::openstack::network::FloatingIp;
use osmo::openstack::session::Request;
use osmo::openstack::{Service, Session};
use reqwest::Method;

use crate::harness::{Env, Operator, env, jsonpath, kubectl_ok, kubectl_stdin_ok, namespace, wait_for};
use crate::openstack::{
    Fixtures, KeystoneAdmin, admin_in_project, deleted, fixtures, in_project, server_spec, session, unique, until,
    wait_gone, wait_status,
};

/// A namespace with the test clouds' Secret and an operator watching it.
pub(crate) fn setup(test: &str) -> (&'static Env, String, Operator) {
    let (env, ns) = namespace_with_clouds(test);
    let op = Operator::start(env, &ns, test, &format!("osmo-{ns}"));
    (env, ns, op)
}

/// A fresh namespace holding the Secret `clouds` with the test clouds.
pub fn namespace_with_clouds(test: &str) -> (&'static Env, String) {
    let env = env();
    let ns = namespace(env, test);
    let clouds = std::env::var("OSMO_E2E_CLOUDS").unwrap();
    kubectl_ok(
        env,
        &["-n", &ns, "create", "secret", "generic", "clouds", &format!("--from-file=clouds.yaml={clouds}")],
    );
    (env, ns)
}

pub(crate) fn apply_migration(env: &Env, ns: &str, name: &str, server: &str, extra: &str) {
    apply_migration_to(env, ns, name, server, "{availabilityZone: icehouse}", extra);
}

/// A migration with the admin credentials to `target`, a YAML flow mapping.
pub(crate) fn apply_migration_to(env: &Env, ns: &str, name: &str, server: &str, target: &str, extra: &str) {
    let manifest = format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: {name}}}\n\
         spec: {{server: {server}, source: {{secretName: clouds, cloud: admin}}, target: {target}{extra}}}\n"
    );
    kubectl_stdin_ok(env, &["-n", ns, "apply", "-f", "-"], &manifest);
}

/// A server on havana-1 on the private network, with `metadata`, and a floating IP on it.
pub(crate) async fn server_with_floating_ip(
    admin: &Session,
    f: &Fixtures,
    metadata: &[(&str, &str)],
) -> (String, String, String) {
    let id = server_on_havana(admin, f, metadata).await;
    let fip = add_floating_ip(admin, f, &id).await;
    (id, fip.id, fip.floating_ip_address)
}

/// An ACTIVE server on havana-1 on the private network, with `metadata`.
pub async fn server_on_havana(admin: &Session, f: &Fixtures, metadata: &[(&str, &str)]) -> String {
    let name = unique("vm");
    let mut spec =
        server_spec(&name, f, "havana", vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }]);
    spec.metadata.extend(metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let id = admin.compute().create_server(&spec).await.unwrap();
    wait_status(admin, &id, "ACTIVE").await;
    id
}

/// A new floating IP on the server's (first) port.
pub async fn add_floating_ip(admin: &Session, f: &Fixtures, server_id: &str) -> FloatingIp {
    let port = admin.network().ports(&[("device_id", server_id)]).await.unwrap().pop().unwrap();
    let fip = admin.network().create_floating_ip(&f.public, None).await.unwrap();
    admin.network().update_floating_ip(&fip.id, Some(&port.id), None).await.unwrap()
}

pub(crate) fn wait_condition(env: &Env, ns: &str, name: &str, condition: &str, seconds: u32) {
    wait_for(env, ns, &format!("im/{name}"), &format!("condition={condition}"), seconds);
}

/// Asserts the replacement runs on icehouse-1 with the floating IP, and the source is gone.
pub(crate) async fn assert_moved(admin: &Session, env: &Env, ns: &str, name: &str, source: &str, fip: &str) -> String {
    assert_eq!(jsonpath(env, ns, &format!("im/{name}"), "{.status.phase}"), "Succeeded");
    let new_id = jsonpath(env, ns, &format!("im/{name}"), "{.status.target.serverId}");
    let new = admin.compute().server(&new_id).await.unwrap().expect("the replacement exists");
    assert_eq!((new.status.as_str(), new.host.as_deref()), ("ACTIVE", Some("icehouse-1")));
    assert!(deleted(admin, source).await, "the source still exists");
    assert_floating_ip_on(admin, fip, &new_id).await;
    assert!(!jsonpath(env, ns, &format!("im/{name}"), "{.status.downtime}").is_empty());
    new_id
}

/// Asserts that nothing changed the source: it runs where it ran.
pub(crate) async fn assert_untouched(admin: &Session, id: &str) {
    let server = admin.compute().server(id).await.unwrap().expect("the source exists");
    assert_eq!((server.status.as_str(), server.host.as_deref()), ("ACTIVE", Some("havana-1")), "server {id}");
}

/// Asserts, as Neutron shows it, that the floating IP is on one of the server's ports.
pub async fn assert_floating_ip_on(admin: &Session, fip: &str, server: &str) {
    let ports: Vec<String> =
        admin.network().ports(&[("device_id", server)]).await.unwrap().into_iter().map(|p| p.id).collect();
    let on = admin.network().floating_ip(fip).await.unwrap().unwrap().port_id;
    assert!(
        on.as_ref().is_some_and(|p| ports.contains(p)),
        "floating IP {fip} on {on:?}, not on {server}'s ports {ports:?}"
    );
}

pub(crate) async fn clean_up(admin: &Session, servers: &[&str], fips: &[&str]) {
    // Nova deletes only the ports it made; those osmo made for a replacement stay.
    let mut ports = Vec::new();
    for id in servers {
        ports.extend(admin.network().ports(&[("device_id", id)]).await.unwrap().into_iter().map(|p| p.id));
        admin.compute().delete_server(id).await.unwrap();
    }
    for id in servers {
        wait_gone(admin, id).await;
    }
    for id in ports {
        admin.network().delete_port(&id).await.unwrap();
    }
    for id in fips {
        admin.network().delete_floating_ip(id).await.unwrap();
    }
}

#[tokio::test]
async fn a_server_moves_by_snapshot_with_its_floating_ip() {
    let (env, ns, _op) = setup("snapshot");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    apply_migration(env, &ns, "web", &id, "");
    wait_condition(env, &ns, "web", "Ready", 240);
    let new_id = assert_moved(&admin, env, &ns, "web", &id, &fip).await;

    let snapshot = jsonpath(env, &ns, "im/web", "{.status.snapshot.imageId}");
    let new = admin.compute().server(&new_id).await.unwrap().unwrap();
    assert_eq!(new.image_id.as_deref(), Some(snapshot.as_str()), "the replacement was not booted from the snapshot");
    assert!(
        admin.image().get(&snapshot).await.unwrap().is_none_or(|i| i.status == "deleted"),
        "the snapshot was not cleaned up"
    );
    let steps = jsonpath(env, &ns, "im/web", "{range .status.steps[*]}{.name}={.result} {end}");
    assert_eq!(
        steps.trim(),
        "Recording=Succeeded Stopping=Succeeded Snapshotting=Succeeded DeletingSource=Succeeded Booting=Succeeded MovingAddresses=Succeeded Verifying=Succeeded CleaningUp=Succeeded"
    );
    let row = kubectl_ok(env, &["-n", &ns, "get", "im", "web", "--no-headers"]);
    assert!(row.contains("Succeeded") && row.contains("icehouse"), "{row}");
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn fixed_ips_and_mac_are_kept_when_asked() {
    let (env, ns, _op) = setup("fixedips");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    let before = admin.network().ports(&[("device_id", &id)]).await.unwrap().pop().unwrap();
    apply_migration(env, &ns, "web", &id, ", addresses: {mode: Neutron, preserveFixedIPs: true}");
    wait_condition(env, &ns, "web", "Ready", 240);
    let new_id = assert_moved(&admin, env, &ns, "web", &id, &fip).await;
    let after = admin.network().ports(&[("device_id", &new_id)]).await.unwrap().pop().unwrap();
    assert_eq!((after.fixed_ips, after.mac_address), (before.fixed_ips, before.mac_address));
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.targetPorts[0].origin}"), "Recreated");
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn a_server_is_redeployed_from_an_image() {
    let (env, ns, _op) = setup("redeploy");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    apply_migration(env, &ns, "web", &id, ", strategy: Redeploy, redeploy: {image: base}");
    wait_condition(env, &ns, "web", "Ready", 240);
    let new_id = assert_moved(&admin, env, &ns, "web", &id, &fip).await;
    assert_eq!(admin.compute().server(&new_id).await.unwrap().unwrap().image_id, Some(f.image.clone()));
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.snapshot}"), "", "Redeploy takes no snapshot");
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn bad_input_fails_naming_it_and_changes_nothing() {
    let (env, ns, _op) = setup("badinput");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    let cases = [
        ("unknown", "no-such-server-anywhere".to_string(), String::new(), "ServerNotFound", "spec.server"),
        (
            "flavor",
            id.clone(),
            ", mappings: {flavors: {m1.tiny: m1.gigantic}}".to_string(),
            "FlavorNotFound",
            "spec.mappings.flavors",
        ),
        (
            "network",
            id.clone(),
            ", mappings: {networks: {private: nowhere}}".to_string(),
            "NetworkNotFound",
            "spec.mappings.networks",
        ),
        (
            "novanetwork",
            id.clone(),
            ", addresses: {mode: NovaNetwork}".to_string(),
            "NovaNetworkUnavailable",
            "spec.addresses.mode",
        ),
    ];
    // One after another: two at once for the same server would be refused as a conflict.
    for (name, server, extra, reason, field) in &cases {
        apply_migration(env, &ns, name, server, extra);
        wait_condition(env, &ns, name, "Failed", 120);
        assert_eq!(
            jsonpath(env, &ns, &format!("im/{name}"), "{.status.conditions[?(@.type==\"Failed\")].reason}"),
            *reason
        );
        let error = jsonpath(env, &ns, &format!("im/{name}"), "{.status.lastError}");
        assert!(error.starts_with(field), "{name}: {error}");
    }
    let badcloud = "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {name: badcloud}\n\
                    spec: {server: x, source: {secretName: clouds, cloud: nowhere}, target: {availabilityZone: icehouse}}\n";
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], badcloud);
    wait_condition(env, &ns, "badcloud", "Failed", 120);
    let error = jsonpath(env, &ns, "im/badcloud", "{.status.lastError}");
    assert!(error.contains("no cloud \"nowhere\""), "{error}");
    // Nothing changed: the server runs where it ran, with its floating IP, and no snapshot exists.
    assert_untouched(&admin, &id).await;
    for (name, ..) in &cases {
        let uid = jsonpath(env, &ns, &format!("im/{name}"), "{.metadata.uid}");
        assert!(admin.image().images_with_property("osmo_migration_uid", &uid).await.unwrap().is_empty());
    }
    clean_up(&admin, &[&id], &[&fip]).await;
}

#[tokio::test]
async fn a_second_migration_of_the_same_server_is_refused() {
    let (env, ns, _op) = setup("conflict");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    // A slow snapshot keeps the first migration busy while the second arrives.
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[("osmo_test_snapshot_delay", "8")]).await;
    apply_migration(env, &ns, "first", &id, "");
    kubectl_ok(env, &["-n", &ns, "wait", "--for=jsonpath={.status.phase}=Snapshotting", "im/first", "--timeout=120s"]);
    apply_migration(env, &ns, "second", &id, "");
    wait_condition(env, &ns, "second", "Failed", 120);
    assert_eq!(jsonpath(env, &ns, "im/second", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "Conflict");
    assert!(jsonpath(env, &ns, "im/second", "{.status.lastError}").contains(&format!("{ns}/first")));
    wait_condition(env, &ns, "first", "Ready", 240);
    let new_id = assert_moved(&admin, env, &ns, "first", &id, &fip).await;
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn a_failed_snapshot_leaves_the_source_running() {
    let (env, ns, _op) = setup("snapfail");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[("osmo_test_snapshot_fails", "1")]).await;
    apply_migration(env, &ns, "web", &id, "");
    wait_condition(env, &ns, "web", "Failed", 240);
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.phase}"), "Failed");
    let reason = jsonpath(env, &ns, "im/web", "{.status.conditions[?(@.type==\"Failed\")].reason}");
    assert!(reason.starts_with("Snapshot"), "{reason}");
    // Rolled back: the source runs again on its host, with its floating IP; no snapshot is left.
    let server = wait_status(&admin, &id, "ACTIVE").await;
    assert_eq!(server.host.as_deref(), Some("havana-1"));
    assert_eq!(server.locked, Some(false), "osmo's lock was not lifted");
    assert!(admin.network().floating_ip(&fip).await.unwrap().unwrap().port_id.is_some());
    let uid = jsonpath(env, &ns, "im/web", "{.metadata.uid}");
    let left = admin.image().images_with_property("osmo_migration_uid", &uid).await.unwrap();
    assert!(left.iter().all(|i| i.status == "deleted"), "a snapshot was left: {left:?}");
    clean_up(&admin, &[&id], &[&fip]).await;
}

#[tokio::test]
async fn deleting_a_migration_before_the_source_is_deleted_stops_it_safely() {
    let (env, ns, _op) = setup("abort");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[("osmo_test_snapshot_delay", "6")]).await;
    apply_migration(env, &ns, "web", &id, "");
    kubectl_ok(env, &["-n", &ns, "wait", "--for=jsonpath={.status.phase}=Snapshotting", "im/web", "--timeout=120s"]);
    // Off, the source is locked while its (slow) snapshot is made: nobody starts it meanwhile.
    until(Duration::from_secs(60), "the source to be locked", || async {
        admin.compute().server(&id).await.unwrap().and_then(|s| (s.locked == Some(true)).then_some(()))
    })
    .await;
    let uid = jsonpath(env, &ns, "im/web", "{.metadata.uid}");
    kubectl_ok(env, &["-n", &ns, "delete", "im", "web", "--timeout=180s"]);
    let server = wait_status(&admin, &id, "ACTIVE").await;
    assert_eq!(server.host.as_deref(), Some("havana-1"), "the source must be left running where it was");
    assert_eq!(server.locked, Some(false), "osmo's lock was not lifted");
    until(Duration::from_secs(60), "the snapshot to be gone", || async {
        let left = admin.image().images_with_property("osmo_migration_uid", &uid).await.unwrap();
        left.iter().all(|i| i.status == "deleted").then_some(())
    })
    .await;
    clean_up(&admin, &[&id], &[&fip]).await;
}

#[tokio::test]
async fn deleting_a_migration_after_the_source_is_deleted_finishes_the_boot() {
    let (env, ns, mut op) = setup("finish");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    apply_migration(env, &ns, "web", &id, "");
    // The operator is stopped just as it boots the replacement, so that the deletion lands
    // in Booting for sure (the source is gone by then), whatever the machine's speed.
    op.wait_for_log("\"action\":\"Boot(", Duration::from_secs(240));
    op.kill();
    let uid = jsonpath(env, &ns, "im/web", "{.metadata.uid}");
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.phase}"), "Booting");
    assert!(deleted(&admin, &id).await, "the source must be deleted before Booting");

    kubectl_ok(env, &["-n", &ns, "delete", "im", "web", "--wait=false"]);
    assert!(
        !jsonpath(env, &ns, "im/web", "{.metadata.deletionTimestamp}").is_empty(),
        "the finalizer must hold a migration whose source is deleted"
    );
    let _op = Operator::start(env, &ns, "finish", &format!("osmo-{ns}"));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=delete", "im/web", "--timeout=240s"]);

    // It went away only once the replacement ran with the floating IP: nothing is orphaned.
    let events = kubectl_ok(
        env,
        &[
            "-n",
            &ns,
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    );
    assert!(events.split(' ').any(|r| r == "Succeeded"), "no Succeeded event: {events}");
    let ours: Vec<_> = admin
        .compute()
        .servers_on_host("icehouse-1")
        .await
        .unwrap()
        .servers
        .into_iter()
        .filter(|s| s.metadata.get(UID_KEY) == Some(&uid))
        .collect();
    assert_eq!(ours.len(), 1, "one replacement: {ours:?}");
    assert_eq!(ours[0].status, "ACTIVE");
    assert_floating_ip_on(&admin, &fip, &ours[0].id).await;
    let snapshots = admin.image().images_with_property(UID_KEY, &uid).await.unwrap();
    assert!(snapshots.iter().all(|i| i.status == "deleted"), "the snapshot was left: {snapshots:?}");
    clean_up(&admin, &[&ours[0].id], &[&fip]).await;
}

/// A create sent again after its fence may meet the first one landing late: of two servers
/// tagged with the migration's UID, one is kept as the replacement and the other deleted. The
/// late landing is staged: the operator is stopped just after its boot request, the status
/// marked as after a repeated create, and a twin made as Nova would have.
#[tokio::test]
async fn a_late_twin_of_the_replacement_is_deleted() {
    let (env, ns, mut op) = setup("twin");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    apply_migration(env, &ns, "web", &id, "");
    op.wait_for_log("\"method\":\"POST\",\"path\":\"/servers\"", Duration::from_secs(240));
    op.kill();
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.phase}"), "Booting");
    // Usually recorded already (the boot's answer is written at once); if not, it is found.
    let recorded = jsonpath(env, &ns, "im/web", "{.status.target.serverId}");
    let repeated = r#"{"status":{"createRepeated":true}}"#;
    kubectl_ok(env, &["-n", &ns, "patch", "im", "web", "--subresource=status", "--type=merge", "-p", repeated]);
    let uid = jsonpath(env, &ns, "im/web", "{.metadata.uid}");
    let name = jsonpath(env, &ns, "im/web", "{.status.source.name}");
    let mut spec =
        server_spec(&name, &f, "icehouse", vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }]);
    spec.metadata.insert(UID_KEY.into(), uid.clone());
    let twin = admin.compute().create_server(&spec).await.unwrap();

    let _op = Operator::start(env, &ns, "twin", &format!("osmo-{ns}"));
    wait_condition(env, &ns, "web", "Ready", 240);
    let kept = assert_moved(&admin, env, &ns, "web", &id, &fip).await;
    // Whichever of the two was taken as the replacement, the other is deleted and said so.
    let deleted = jsonpath(env, &ns, "im/web", "{.status.deletedTwins[*]}");
    assert_ne!(deleted, kept);
    wait_gone(&admin, &deleted).await;
    let ours: Vec<_> = admin
        .compute()
        .servers_named(&name)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.metadata.get(UID_KEY) == Some(&uid))
        .map(|s| s.id)
        .collect();
    assert_eq!(ours, std::slice::from_ref(&kept));
    if recorded.is_empty() {
        assert!(kept == twin || deleted == twin, "the twin {twin} was neither kept nor deleted");
    } else {
        assert_eq!((kept.as_str(), deleted.as_str()), (recorded.as_str(), twin.as_str()));
    }
    clean_up(&admin, &[&kept], &[&fip]).await;
}

#[tokio::test]
async fn a_server_of_another_project_moves_within_its_project() {
    let (env, ns, _op) = setup("im-project");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let keystone = KeystoneAdmin::login().await;
    // Two projects where the admin user is a member: it boots a server in each, as the project
    // (the first with a floating IP); then it stops being a member of the second.
    let member = keystone.project_with_admin_as(&unique("e2e-member"), "member").await;
    let former = keystone.project_with_admin_as(&unique("e2e-former"), "member").await;
    let in_member = admin_in_project(&member);
    let (source, fip, _) = server_with_floating_ip(&in_member, &f, &[]).await;
    let unreachable = server_on_havana(&admin_in_project(&former), &f, &[]).await;
    keystone.revoke_admin_role(&former, "member").await;

    // The admin credentials (scoped to project admin) move the first server in its project.
    apply_migration(env, &ns, "member", &source, "");
    wait_condition(env, &ns, "member", "Ready", 120);
    let replacement = assert_moved(&admin, env, &ns, "member", &source, &fip).await;
    assert_eq!(jsonpath(env, &ns, "im/member", "{.status.actingProjectId}"), member);
    let new = admin.compute().server(&replacement).await.unwrap().unwrap();
    assert_eq!(new.tenant_id.as_deref(), Some(member.as_str()), "the replacement left the server's project");

    // What the replacement is made of is checked as its project sees it: a flavor only the
    // admin project may use is refused before anything changes.
    let private_flavor = unique("e2e-private");
    let body = serde_json::json!({"flavor": {"name": private_flavor, "ram": 64, "vcpus": 1, "disk": 1,
        "os-flavor-access:is_public": false}});
    let made = admin.send(Request::new(Service::Compute, Method::POST, "/flavors").json(body)).await.unwrap();
    let flavor_id = made.json::<serde_json::Value>().unwrap()["flavor"]["id"].as_str().unwrap().to_string();
    let kept = server_on_havana(&in_member, &f, &[]).await;
    apply_migration(env, &ns, "private", &kept, &format!(", mappings: {{flavors: {{m1.tiny: {private_flavor}}}}}"));
    wait_condition(env, &ns, "private", "Failed", 60);
    assert_eq!(
        jsonpath(env, &ns, "im/private", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "FlavorNotFound"
    );
    assert_untouched(&admin, &kept).await;
    admin.send(Request::new(Service::Compute, Method::DELETE, format!("/flavors/{flavor_id}"))).await.unwrap();

    // In a project where they have no role, they cannot act: refused before anything changes.
    apply_migration(env, &ns, "former", &unreachable, "");
    wait_condition(env, &ns, "former", "Failed", 60);
    assert_eq!(jsonpath(env, &ns, "im/former", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "WrongProject");
    let message = jsonpath(env, &ns, "im/former", "{.status.conditions[?(@.type==\"Failed\")].message}");
    assert!(message.contains(&former), "{message}");
    assert_untouched(&admin, &unreachable).await;

    clean_up(&admin, &[&replacement, &kept, &unreachable], &[&fip]).await;
    keystone.delete_project(&member).await;
    keystone.delete_project(&former).await;
}

#[tokio::test]
async fn a_server_with_another_users_key_pair_is_refused_before_anything_changes() {
    let (env, ns, _op) = setup("im-keypair");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    // A project where both the admin user and the demo user are members: demo makes a key pair
    // (it is demo's alone) and boots a server with it there.
    let keystone = KeystoneAdmin::login().await;
    let project = keystone.project_with_admin_as(&unique("e2e-keypair"), "member").await;
    keystone.grant_role(&project, "demo", "member").await;
    let demo = in_project("demo", &project);
    let key = unique("e2e-demo-key");
    let public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMahWcdc9gPKGvee+CSqUD0OfjoEkcwfMGRbbApWJQ9m osmo-e2e";
    let body = serde_json::json!({"keypair": {"name": key, "public_key": public_key}});
    demo.send(Request::new(Service::Compute, Method::POST, "/os-keypairs").json(body)).await.unwrap();
    let mut spec = server_spec(
        &unique("vm"),
        &f,
        "havana",
        vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }],
    );
    spec.key_name = Some(key.clone());
    let id = demo.compute().create_server(&spec).await.unwrap();
    wait_status(&demo, &id, "ACTIVE").await;

    // The admin credentials act in the project, but cannot boot with demo's key pair.
    apply_migration(env, &ns, "foreign-key", &id, "");
    wait_condition(env, &ns, "foreign-key", "Failed", 60);
    assert_eq!(
        jsonpath(env, &ns, "im/foreign-key", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "KeyPairNotUsable"
    );
    let message = jsonpath(env, &ns, "im/foreign-key", "{.status.conditions[?(@.type==\"Failed\")].message}");
    assert!(message.contains(&key) && message.contains("Nothing was changed."), "{message}");
    assert_untouched(&admin, &id).await;
    let uid = jsonpath(env, &ns, "im/foreign-key", "{.metadata.uid}");
    assert!(admin.image().images_with_property(UID_KEY, &uid).await.unwrap().is_empty(), "a snapshot was made");
    assert!(demo.compute().key_pair(&key).await.unwrap().is_some(), "the key pair is gone");

    clean_up(&admin, &[&id], &[]).await;
    demo.send(Request::new(Service::Compute, Method::DELETE, format!("/os-keypairs/{key}"))).await.unwrap();
    keystone.delete_project(&project).await;
}

/// The spec of a migration edited while its snapshot is being made: the operator is stopped
/// as it asks Nova for the snapshot, so that the migration is held in Snapshotting whatever the
/// machine's speed, `edit` is applied, and the operator started again. The edit is reported
/// and ignored, and the server moved as it was accepted: from its snapshot.
async fn edited_while_snapshotting(test: &str, edit: impl FnOnce(&Fixtures) -> String) {
    let (env, ns, mut op) = setup(test);
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    apply_migration(env, &ns, "web", &id, "");
    op.wait_for_log(r#""phase":"Snapshotting","action":"CreateSnapshot"#, Duration::from_secs(240));
    op.kill();
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.phase}"), "Snapshotting");
    kubectl_ok(env, &["-n", &ns, "patch", "im", "web", "--type=merge", "-p", &edit(&f)]);
    let _op = Operator::start(env, &ns, test, &format!("osmo-{ns}"));

    wait_condition(env, &ns, "web", "SpecChangeIgnored", 120);
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.acceptedSpec.strategy}"), "Snapshot");
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.observedGeneration}"), "2");
    let warnings = kubectl_ok(
        env,
        &["-n", &ns, "get", "events", "--field-selector", "type=Warning", "-o", "jsonpath={.items[*].reason}"],
    );
    assert!(warnings.contains("MigrationStarted"), "warning events: {warnings}");

    // `kubectl wait` takes the conditions as holding for the edited generation.
    wait_condition(env, &ns, "web", "Ready", 300);
    let new_id = assert_moved(&admin, env, &ns, "web", &id, &fip).await;
    let snapshot = jsonpath(env, &ns, "im/web", "{.status.snapshot.imageId}");
    let new = admin.compute().server(&new_id).await.unwrap().unwrap();
    assert_eq!(new.image_id.as_deref(), Some(snapshot.as_str()), "booted from its snapshot");
    clean_up(&admin, &[&new_id], &[&fip]).await;
}

#[tokio::test]
async fn a_strategy_switched_while_snapshotting_is_ignored_and_the_server_moved_from_its_snapshot() {
    edited_while_snapshotting("switched", |f| {
        format!(r#"{{"spec":{{"strategy":"Redeploy","redeploy":{{"image":"{}"}}}}}}"#, f.image)
    })
    .await;
}

#[tokio::test]
async fn a_spec_made_invalid_while_snapshotting_is_ignored_and_the_server_moved_from_its_snapshot() {
    // Redeploy without an image: refused by validation, were the migration not under way.
    edited_while_snapshotting("invalid", |_| r#"{"spec":{"strategy":"Redeploy"}}"#.to_string()).await;
}

/// A name is looked up in the credentials' own project: a server of another project in which
/// the admin user is a member, named by its (unique) name, is not found, and nothing changes.
#[tokio::test]
async fn a_name_is_looked_up_in_the_credentials_own_project_only() {
    let (env, ns, _op) = setup("im-name");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let keystone = KeystoneAdmin::login().await;
    let other = keystone.project_with_admin_as(&unique("e2e-named"), "member").await;
    let in_other = admin_in_project(&other);
    let id = server_on_havana(&in_other, &f, &[]).await;
    let name = in_other.compute().server(&id).await.unwrap().unwrap().name;

    apply_migration(env, &ns, "named", &name, "");
    wait_condition(env, &ns, "named", "Failed", 60);
    assert_eq!(jsonpath(env, &ns, "im/named", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "ServerNotFound");
    assert_untouched(&admin, &id).await;

    // Named by ID, the same server is found (and acted on in its project).
    apply_migration(env, &ns, "by-id", &id, "");
    wait_condition(env, &ns, "by-id", "Ready", 180);
    let replacement = jsonpath(env, &ns, "im/by-id", "{.status.target.serverId}");
    clean_up(&admin, &[&replacement], &[]).await;
    keystone.delete_project(&other).await;
}
