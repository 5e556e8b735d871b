//! ComputeNodeDrain end to end: the operator against the real kube-apiserver (with
//! kube-controller-manager for ownership) and real OpenStack. Each test drains its own extra
//! nova-compute host, so that havana-1 and icehouse-1 keep serving the other tests.

use std::collections::BTreeMap;
use std::time::Duration;

use osmo::openstack::compute::{ComputeService, NetworkAttachment};
use osmo::openstack::session::Request;
use osmo::openstack::{Service, Session};
use reqwest::Method;

use crate::harness::{Env, Operator, eventually, jsonpath, kubectl_ok, kubectl_stdin_ok, wait_for};
use crate::migration::{add_floating_ip, clean_up, setup};
use crate::openstack::{
    Fixtures, KeystoneAdmin, admin_in_project, extra_compute, fixtures, server_spec, session, unique, until, wait_gone,
    wait_status,
};
use crate::parallel_nova::{assert_moved_to_nova2, nova2};
use crate::recovery::SPAWN_FAILS_WHILE;
use crate::volumes::{assert_volumes_on, delete_volumes_left, server_with_volumes_on};

pub(crate) const REASON: &str = "osmo e2e: redeploying";

/// Starts an extra nova-compute and waits until it is up and takes servers.
pub(crate) async fn spare_host(admin: &Session, prefix: &str) -> String {
    let host = unique(prefix);
    extra_compute("start", &host);
    until(Duration::from_secs(120), &format!("nova-compute on {host} to report up"), || async {
        service(admin, &host).await.filter(|s| s.state == "up")
    })
    .await;
    host
}

pub(crate) async fn service(admin: &Session, host: &str) -> Option<ComputeService> {
    admin.compute().compute_services(Some(host)).await.unwrap().into_iter().next()
}

/// A server booted on `host` (the scheduler maps a new host to the cell within seconds: the
/// first boots may be refused, or end in ERROR with no valid host, until then), with a
/// floating IP when asked.
pub(crate) async fn server_on(
    admin: &Session,
    f: &Fixtures,
    host: &str,
    name: &str,
    floating_ip: bool,
) -> (String, Option<String>) {
    let mut spec =
        server_spec(name, f, "nova", vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }]);
    spec.host = Some(host.to_string());
    let id = until(Duration::from_secs(120), &format!("Nova to boot a server on {host}"), || async {
        let id = admin.compute().create_server(&spec).await.ok()?;
        let booted = until(Duration::from_secs(120), &format!("server {id} to be ACTIVE or ERROR"), || async {
            let server = admin.compute().server(&id).await.unwrap()?;
            let ended = server.status == "ERROR" || server.status == "ACTIVE" && server.task_state.is_none();
            ended.then_some(server.status == "ACTIVE")
        })
        .await;
        if !booted {
            admin.compute().delete_server(&id).await.unwrap();
            wait_gone(admin, &id).await;
        }
        booted.then_some(id)
    })
    .await;
    let server = wait_status(admin, &id, "ACTIVE").await;
    assert_eq!(server.host.as_deref(), Some(host));
    if !floating_ip {
        return (id, None);
    }
    let fip = add_floating_ip(admin, f, &id).await;
    (id, Some(fip.id))
}

pub(crate) fn apply_drain(env: &Env, ns: &str, name: &str, host: &str, extra: &str) {
    let manifest = format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: ComputeNodeDrain\nmetadata: {{name: {name}}}\n\
         spec: {{cloud: {{secretName: clouds, cloud: admin}}, host: {host}, disableReason: '{REASON}'{extra}}}\n"
    );
    kubectl_stdin_ok(env, &["-n", ns, "apply", "-f", "-"], &manifest);
}

const MIGRATE: &str = ", mode: Migrate, migrationTemplate: {target: {availabilityZone: icehouse}}";
/// Into the second Nova's zone, as a parallel-Nova upgrade drains the old Nova's hosts.
const MIGRATE_INTO_NOVA2: &str = ", mode: Migrate, migrationTemplate: {target: {cloud: {secretName: clouds, cloud: admin-nova2}, availabilityZone: juno}}";

/// Waits with `kubectl wait` for a phase; on time-out, shows the status.
pub(crate) fn wait_phase(env: &Env, ns: &str, name: &str, phase: &str, seconds: u32) {
    wait_for(env, ns, &format!("cnd/{name}"), &format!("jsonpath={{.status.phase}}={phase}"), seconds);
}

/// The most migrations in flight at one instant, from their recorded step timestamps: each
/// runs from its first step's start to its last step's end.
fn most_at_once(env: &Env, ns: &str) -> usize {
    let spans = kubectl_ok(
        env,
        &[
            "-n",
            ns,
            "get",
            "im",
            "-o",
            "jsonpath={range .items[*]}{.status.steps[0].startedAt} {.status.steps[-1:].finishedAt}{\"\\n\"}{end}",
        ],
    );
    let spans: Vec<(jiff::Timestamp, jiff::Timestamp)> = spans
        .lines()
        .map(|l| {
            let (start, end) = l.split_once(' ').unwrap();
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect();
    spans.iter().map(|(t, _)| spans.iter().filter(|(s, e)| s <= t && t < e).count()).max().unwrap_or(0)
}

#[tokio::test]
async fn a_host_is_drained_into_the_second_nova_two_at_a_time_and_its_service_retired() {
    let (admin, nova2) = (session("admin"), nova2());
    let f = fixtures(&admin).await;
    let host = spare_host(&admin, "drain").await;
    let mut servers = Vec::new();
    for i in 0..2 {
        servers.push((format!("{host}-vm{i}"), server_on(&admin, &f, &host, &format!("{host}-vm{i}"), i < 2).await));
    }
    // A mixed host: one server boots from a volume, another has data volumes.
    let mut volumes = BTreeMap::new();
    for volume_backed in [true, false] {
        let (id, its_volumes) = server_with_volumes_on(&admin, &f, volume_backed, Some(&host)).await;
        let name = admin.compute().server(&id).await.unwrap().unwrap().name;
        volumes.insert(id.clone(), its_volumes);
        servers.push((name, (id, None)));
    }
    // One server of another project, where the drain's (admin) user holds a role.
    let keystone = KeystoneAdmin::login().await;
    let project = keystone.project_with_admin_as(&unique("e2e-drain"), "admin").await;
    let other = format!("{host}-vm4");
    servers.push((other.clone(), server_on(&admin_in_project(&project), &f, &host, &other, false).await));
    let (env, ns, _op) = setup("drain");
    let spec = format!("{MIGRATE_INTO_NOVA2}, maxConcurrent: 2, afterDrain: RetireService");
    apply_drain(env, &ns, "old-node", &host, &spec);

    // Cordoned with the reason, so that the scheduler places nothing new there.
    let cordoned = until(Duration::from_secs(60), "the service to be disabled", || async {
        service(&admin, &host).await.filter(|s| s.status == "disabled")
    })
    .await;
    assert_eq!(cordoned.disabled_reason.as_deref(), Some(REASON));

    // Empty: Ready says so, and the service waits for its process to stop.
    wait_phase(env, &ns, "old-node", "Retiring", 600);
    assert_eq!(jsonpath(env, &ns, "cnd/old-node", "{.status.conditions[?(@.type==\"Ready\")].reason}"), "Drained");
    assert_eq!(jsonpath(env, &ns, "cnd/old-node", "{.status.progress}"), "5/5");
    assert_eq!(jsonpath(env, &ns, "cnd/old-node", "{.status.counts.succeeded}"), "5");
    let described = kubectl_ok(env, &["-n", &ns, "describe", "cnd", "old-node"]);
    assert!(described.contains("is empty and ready to be redeployed"), "no Ready event in:\n{described}");
    assert!(admin.compute().servers_on_host(&host).await.unwrap().servers.is_empty());

    // One InstanceMigration per server, owned by the drain, never more than two at once.
    let owners =
        kubectl_ok(env, &["-n", &ns, "get", "im", "-o", "jsonpath={.items[*].metadata.ownerReferences[0].name}"]);
    assert_eq!(owners.split_whitespace().collect::<Vec<_>>(), ["old-node"; 5]);
    let at_once = most_at_once(env, &ns);
    assert!((1..=2).contains(&at_once), "{at_once} migrations ran at once with maxConcurrent 2");
    let mut moved = Vec::new();
    for (name, (id, fip)) in &servers {
        let im = format!("old-node-{id}");
        assert_eq!(
            jsonpath(env, &ns, "cnd/old-node", &format!("{{.status.servers[?(@.id==\"{id}\")].state}}")),
            "Migrated",
            "{name}"
        );
        let new_id = assert_moved_to_nova2(&admin, &nova2, env, &ns, &im, id, fip.as_deref()).await;
        if let Some(its_volumes) = volumes.get(id) {
            assert_volumes_on(&nova2, &new_id, its_volumes).await;
        }
        if *name == other {
            let new = nova2.compute().server(&new_id).await.unwrap().unwrap();
            assert_eq!(new.tenant_id.as_deref(), Some(project.as_str()), "{name} left its project");
        }
        moved.push(new_id);
    }

    // The process stops: the service goes down, and only then is its record deleted.
    extra_compute("stop", &host);
    wait_phase(env, &ns, "old-node", "Retired", 180);
    assert!(service(&admin, &host).await.is_none(), "the service record still exists");

    // The drain's migrations go with it (kube-controller-manager's garbage collector).
    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "old-node", "--timeout=60s"]);
    crate::harness::eventually(Duration::from_secs(60), "the drain's migrations to be collected", || {
        kubectl_ok(env, &["-n", &ns, "get", "im", "-o", "name"]).trim().is_empty().then_some(())
    });

    let fips: Vec<&str> = servers.iter().filter_map(|(_, (_, fip))| fip.as_deref()).collect();
    clean_up(&nova2, &moved.iter().map(String::as_str).collect::<Vec<_>>(), &fips).await;
    for its_volumes in volumes.values() {
        delete_volumes_left(&nova2, its_volumes).await;
    }
    keystone.delete_project(&project).await;
}

#[tokio::test]
async fn dry_run_wait_deadline_abort_and_wait_until_empty() {
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let host = spare_host(&admin, "wait").await;
    let (a, _) = server_on(&admin, &f, &host, &format!("{host}-a"), false).await;
    let (b, _) = server_on(&admin, &f, &host, &format!("{host}-b"), false).await;
    let (env, ns, op) = setup("drainwait");

    // A dry run shows the plan and changes nothing.
    apply_drain(env, &ns, "plan", &host, &format!("{MIGRATE}, dryRun: true"));
    wait_phase(env, &ns, "plan", "Planned", 120);
    let planned = jsonpath(env, &ns, "cnd/plan", "{.status.servers[*].migration}");
    assert_eq!(planned, format!("plan-{a} plan-{b}"), "one migration per server, in name order");
    let paths = jsonpath(env, &ns, "cnd/plan", "{.status.servers[*].path}");
    assert_eq!(paths, "Snapshot Snapshot", "each with the path its migration would take");
    assert_eq!(service(&admin, &host).await.unwrap().status, "enabled");
    assert!(kubectl_ok(env, &["-n", &ns, "get", "im", "-o", "name"]).trim().is_empty());
    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "plan", "--timeout=60s"]);

    // Waiting past the deadline: Blocked, naming what remains.
    apply_drain(env, &ns, "deadline", &host, ", mode: Wait, waitDeadlineSeconds: 3");
    wait_phase(env, &ns, "deadline", "Blocked", 120);
    let message = jsonpath(env, &ns, "cnd/deadline", "{.status.message}");
    assert!(message.contains(&format!("{host}-a")) && message.contains(&format!("{host}-b")), "{message}");
    assert!(message.contains("deadline passed"), "{message}");
    assert_eq!(service(&admin, &host).await.unwrap().status, "disabled");

    // A second drain of the host is refused while the first holds it.
    apply_drain(env, &ns, "second", &host, ", mode: Wait");
    wait_phase(env, &ns, "second", "Failed", 60);
    assert_eq!(jsonpath(env, &ns, "cnd/second", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "Conflict");
    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "second", "--timeout=60s"]);
    assert_eq!(service(&admin, &host).await.unwrap().status, "disabled", "the refused drain touched the service");

    // Deleted before it is done: the service is enabled again.
    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "deadline", "--timeout=60s"]);
    assert_eq!(service(&admin, &host).await.unwrap().status, "enabled");

    // Waiting without deadline: drained once the owners delete their servers.
    apply_drain(env, &ns, "owners", &host, ", mode: Wait");
    wait_phase(env, &ns, "owners", "Draining", 120);
    for id in [&a, &b] {
        admin.compute().delete_server(id).await.unwrap();
        wait_gone(&admin, id).await;
    }
    wait_phase(env, &ns, "owners", "Drained", 120);
    assert_eq!(jsonpath(env, &ns, "cnd/owners", "{.status.conditions[?(@.type==\"Ready\")].status}"), "True");
    assert_eq!(jsonpath(env, &ns, "cnd/owners", "{.status.servers[*].state}"), "Gone Gone");

    // Deleted with its namespace, a drain may find its cloud's Secret gone first, and an
    // operator restarted since has no session left: one that emptied its host undoes nothing
    // and goes without it. The host stays disabled.
    drop(op);
    kubectl_ok(env, &["-n", &ns, "delete", "secret", "clouds"]);
    let _op = Operator::start(env, &ns, "drainwait", &format!("osmo-{ns}"));
    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "owners", "--timeout=120s"]);
    assert_eq!(service(&admin, &host).await.unwrap().status, "disabled");
    extra_compute("stop", &host);
}

#[tokio::test]
async fn a_server_lost_by_its_migration_keeps_the_drain_blocked_once_the_migration_is_deleted() {
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let host = spare_host(&admin, "lost").await;
    // The target: a host of its own, known to the cell (a server booted there shows it), that
    // takes servers (Recording refuses one that does not, before anything changes).
    let target = spare_host(&admin, "lostto").await;
    let (probe, _) = server_on(&admin, &f, &target, &format!("{target}-probe"), false).await;
    clean_up(&admin, &[&probe], &[]).await;
    let name = format!("{host}-vm");
    let (id, _) = server_on(&admin, &f, &host, &name, false).await;
    // The replacement carries the source's metadata: its boot fails, after the source is
    // deleted, while the flag exists.
    let flag = std::env::temp_dir().join(unique("osmo-e2e-drain-boot-fails"));
    std::fs::write(&flag, b"").unwrap();
    let metadata = serde_json::json!({"metadata": {SPAWN_FAILS_WHILE: flag.to_str().unwrap()}});
    let path = format!("/servers/{id}/metadata");
    admin.send(Request::new(Service::Compute, Method::POST, path).json(metadata)).await.unwrap();
    let (env, ns, _op) = setup("drainlost");
    let template = format!(", mode: Migrate, migrationTemplate: {{target: {{host: {target}}}}}");
    apply_drain(env, &ns, "lossy", &host, &format!("{template}, afterDrain: RetireService, forceDown: true"));

    let im = format!("lossy-{id}");
    let exists = |im: &str| {
        !kubectl_ok(env, &["-n", &ns, "get", "im", im, "--ignore-not-found", "-o", "name"]).trim().is_empty()
    };
    eventually(Duration::from_secs(120), "the drain to create its InstanceMigration", || exists(&im).then_some(()));
    wait_for(env, &ns, &format!("im/{im}"), "jsonpath={.status.phase}=Failed", 300);
    assert!(admin.compute().server(&id).await.unwrap().is_none(), "the source should be deleted");
    let replacement = jsonpath(env, &ns, &format!("im/{im}"), "{.status.target.serverId}");
    let snapshot = jsonpath(env, &ns, &format!("im/{im}"), "{.status.snapshot.imageId}");
    let assert_blocked_on_loss = |when: &str| {
        assert_eq!(jsonpath(env, &ns, "cnd/lossy", "{.status.phase}"), "Blocked", "{when}");
        let reason = jsonpath(env, &ns, "cnd/lossy", "{.status.conditions[?(@.type==\"Progressing\")].reason}");
        assert_eq!(reason, "ServerLost", "{when}");
        let message = jsonpath(env, &ns, "cnd/lossy", "{.status.message}");
        assert!(message.contains(&name) && message.contains(&im), "{when}: {message}");
        assert_eq!(jsonpath(env, &ns, "cnd/lossy", "{.status.servers[0].state}"), "Lost", "{when}");
    };
    wait_for(env, &ns, "cnd/lossy", "jsonpath={.status.phase}=Blocked", 120);
    assert_blocked_on_loss("with the failed migration");

    // Its loss is accepted and the migration deleted: the drain still remembers the server.
    let uid = jsonpath(env, &ns, &format!("im/{im}"), "{.metadata.uid}");
    kubectl_ok(env, &["-n", &ns, "annotate", "im", &im, &format!("osmo.dev/accept-loss={uid}")]);
    kubectl_ok(env, &["-n", &ns, "delete", "im", &im, "--timeout=60s"]);
    assert!(!exists(&im));
    // A spec change makes the drain look again, after the migration is gone.
    kubectl_ok(env, &["-n", &ns, "patch", "cnd", "lossy", "--type=merge", "-p", r#"{"spec":{"maxConcurrent":2}}"#]);
    wait_for(env, &ns, "cnd/lossy", "jsonpath={.status.observedGeneration}=2", 60);
    assert_blocked_on_loss("once the migration is deleted");
    let left = service(&admin, &host).await.expect("the service of a host with a lost server is never retired");
    assert!(!left.forced_down.unwrap_or(false), "{left:?}");

    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "lossy", "--timeout=60s"]);
    clean_up(&admin, &[&replacement], &[]).await;
    admin.image().set_protected(&snapshot, false).await.unwrap();
    admin.image().delete(&snapshot).await.unwrap();
    std::fs::remove_file(&flag).unwrap();
    extra_compute("stop", &host);
    extra_compute("stop", &target);
}

#[tokio::test]
async fn a_succeeded_migration_goes_after_its_retention_and_the_drain_keeps_its_summary_a_failed_one_stays() {
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let host = spare_host(&admin, "retain").await;
    let (moved, _) = server_on(&admin, &f, &host, &format!("{host}-a"), false).await;
    // Locked by its owner: its migration is refused before anything changes, and fails.
    let (locked, _) = server_on(&admin, &f, &host, &format!("{host}-b"), false).await;
    admin.compute().lock_server(&locked, "e2e: keep").await.unwrap();
    let (env, ns, _op) = setup("drainretain");
    apply_drain(
        env,
        &ns,
        "retain",
        &host,
        &format!("{MIGRATE}, maxConcurrent: 2, succeededMigrationRetentionSeconds: 0"),
    );

    let (succeeded, failed) = (format!("retain-{moved}"), format!("retain-{locked}"));
    let exists = |im: &str| {
        !kubectl_ok(env, &["-n", &ns, "get", "im", im, "--ignore-not-found", "-o", "name"]).trim().is_empty()
    };
    eventually(Duration::from_secs(120), "the drain to create its InstanceMigrations", || {
        exists(&succeeded).then_some(())
    });
    wait_for(env, &ns, &format!("im/{failed}"), "jsonpath={.status.phase}=Failed", 300);
    eventually(Duration::from_secs(300), "the succeeded InstanceMigration to be deleted", || {
        (!exists(&succeeded)).then_some(())
    });
    wait_phase(env, &ns, "retain", "Blocked", 120);

    // The drain's status keeps the move: state, migration, replacement and when.
    let entry =
        |field: &str| jsonpath(env, &ns, "cnd/retain", &format!("{{.status.servers[?(@.id==\"{moved}\")].{field}}}"));
    assert_eq!(entry("state"), "Migrated");
    assert_eq!(entry("phase"), "Succeeded");
    assert_eq!(entry("migration"), succeeded);
    assert!(entry("migratedAt").parse::<jiff::Timestamp>().is_ok(), "migratedAt: {:?}", entry("migratedAt"));
    let replacement = entry("replacement");
    let new = admin.compute().server(&replacement).await.unwrap().expect("the replacement the drain names runs");
    assert_eq!(new.status, "ACTIVE");
    assert!(admin.compute().server(&moved).await.unwrap().is_none(), "the source is gone");
    assert_eq!(jsonpath(env, &ns, "cnd/retain", "{.status.counts.succeeded}"), "1");
    // The failed one stays (the drain never re-creates the one it deleted).
    assert!(exists(&failed));
    assert_eq!(
        jsonpath(env, &ns, &format!("im/{failed}"), "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "SourceLocked"
    );
    let names = kubectl_ok(env, &["-n", &ns, "get", "im", "-o", "name"]);
    assert_eq!(names.trim(), format!("instancemigration.osmo.dev/{failed}"));

    kubectl_ok(env, &["-n", &ns, "delete", "cnd", "retain", "--timeout=60s"]);
    admin.compute().unlock_server(&locked).await.unwrap();
    clean_up(&admin, &[&replacement, &locked], &[]).await;
    extra_compute("stop", &host);
}
