//! Moves into a second, separate Nova (RegionTwo of the loopback stack: its own API,
//! conductor, scheduler, cell and compute `juno-1`, sharing Keystone, Glance, Neutron and
//! Placement with the first), with `target.cloud`: the layout of a parallel-Nova upgrade.
//! Judged by what both Novas and the shared Neutron report.

use osmo::migration::planner::UID_KEY;
use osmo::openstack::compute::NetworkAttachment;
use osmo::openstack::session::Request;
use osmo::openstack::{Service, Session};
use reqwest::Method;

use crate::harness::{Env, jsonpath};
use crate::migration::{
    apply_migration_to, assert_floating_ip_on, assert_untouched, clean_up, server_with_floating_ip, setup,
    wait_condition,
};
use crate::openstack::{deleted, fixtures, server_spec, session, unique, wait_status};

/// The admin credentials of the second Nova's region, in the test clouds' Secret.
pub const NOVA2_CLOUD: &str = "admin-nova2";
/// The second Nova's seeded compute host.
pub const NOVA2_HOST: &str = "juno-1";
/// A migration target in the second Nova: its cloud alone (Nova schedules the replacement).
pub const INTO_NOVA2: &str = "{cloud: {secretName: clouds, cloud: admin-nova2}}";

/// An admin session of the second Nova's region.
pub fn nova2() -> Session {
    session(NOVA2_CLOUD)
}

/// Asserts that migration `name` moved `source` out of the first Nova into the second: gone
/// from the first, the replacement ACTIVE on juno-1 in the second (and only there) with the
/// source's name, and `fip` on its port in the shared Neutron. Returns the replacement's ID.
pub async fn assert_moved_to_nova2(
    nova1: &Session,
    nova2: &Session,
    env: &Env,
    ns: &str,
    name: &str,
    source: &str,
    fip: Option<&str>,
) -> String {
    let im = format!("im/{name}");
    assert_eq!(jsonpath(env, ns, &im, "{.status.phase}"), "Succeeded", "{name}");
    let new_id = jsonpath(env, ns, &im, "{.status.target.serverId}");
    let new = nova2.compute().server(&new_id).await.unwrap().expect("the replacement exists in the second Nova");
    assert_eq!((new.status.as_str(), new.host.as_deref()), ("ACTIVE", Some(NOVA2_HOST)), "{name}");
    assert_eq!(new.name, jsonpath(env, ns, &im, "{.status.source.name}"), "{name}: the replacement's name");
    assert!(nova1.compute().server(&new_id).await.unwrap().is_none(), "{name}: the replacement is in the first Nova");
    assert!(deleted(nova1, source).await, "{name}: the source still exists in the first Nova");
    if let Some(fip) = fip {
        assert_floating_ip_on(nova1, fip, &new_id).await;
    }
    new_id
}

#[tokio::test]
async fn a_server_moves_into_the_second_nova_with_its_floating_ip() {
    let (env, ns, _op) = setup("nova2");
    let (admin, nova2) = (session("admin"), nova2());
    let f = fixtures(&admin).await;
    let (id, fip, _) = server_with_floating_ip(&admin, &f, &[]).await;
    apply_migration_to(env, &ns, "web", &id, INTO_NOVA2, "");
    wait_condition(env, &ns, "web", "Ready", 240);
    let new_id = assert_moved_to_nova2(&admin, &nova2, env, &ns, "web", &id, Some(&fip)).await;

    // Booted from the snapshot made in the first Nova, through the shared Glance, with the
    // second Nova's flavor of the same name; the snapshot is gone once verified.
    let snapshot = jsonpath(env, &ns, "im/web", "{.status.snapshot.imageId}");
    let new = nova2.compute().server(&new_id).await.unwrap().unwrap();
    assert_eq!(new.image_id.as_deref(), Some(snapshot.as_str()), "the replacement was not booted from the snapshot");
    let flavor = nova2.compute().find_flavor("m1.tiny").await.unwrap().unwrap();
    assert_ne!(flavor.id, f.flavor, "the two Novas' flavors should differ by ID");
    assert_eq!(jsonpath(env, &ns, "im/web", "{.status.bootBase.flavorId}"), flavor.id);
    assert!(admin.image().get(&snapshot).await.unwrap().is_none_or(|i| i.status == "deleted"));
    let steps = jsonpath(env, &ns, "im/web", "{range .status.steps[*]}{.name}={.result} {end}");
    assert_eq!(
        steps.trim(),
        "Recording=Succeeded Stopping=Succeeded Snapshotting=Succeeded DeletingSource=Succeeded Booting=Succeeded MovingAddresses=Succeeded Verifying=Succeeded CleaningUp=Succeeded"
    );
    clean_up(&nova2, &[&new_id], &[&fip]).await;
}

/// A key pair belongs to one Nova: a server whose key pair the second Nova lacks is refused
/// at Recording, before anything changes; with the same public key imported there, it moves
/// and keeps its key pair's name.
#[tokio::test]
async fn a_key_pair_the_second_nova_lacks_is_refused_before_anything_changes() {
    let (env, ns, _op) = setup("nova2-key");
    let (admin, nova2) = (session("admin"), nova2());
    let f = fixtures(&admin).await;
    let key = unique("e2e-key");
    let public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMahWcdc9gPKGvee+CSqUD0OfjoEkcwfMGRbbApWJQ9m osmo-e2e";
    let import = || {
        let body = serde_json::json!({"keypair": {"name": key, "public_key": public_key}});
        Request::new(Service::Compute, Method::POST, "/os-keypairs").json(body)
    };
    admin.send(import()).await.unwrap();
    let networks = vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }];
    let mut spec = server_spec(&unique("vm"), &f, "havana", networks);
    spec.key_name = Some(key.clone());
    let id = admin.compute().create_server(&spec).await.unwrap();
    wait_status(&admin, &id, "ACTIVE").await;

    apply_migration_to(env, &ns, "no-key", &id, INTO_NOVA2, "");
    wait_condition(env, &ns, "no-key", "Failed", 60);
    let failed = |field: &str| {
        jsonpath(env, &ns, "im/no-key", &format!("{{.status.conditions[?(@.type==\"Failed\")].{field}}}"))
    };
    assert_eq!(failed("reason"), "KeyPairNotUsable");
    let message = failed("message");
    assert!(message.contains(&key) && message.contains("Nothing was changed."), "{message}");
    assert_untouched(&admin, &id).await;
    let uid = jsonpath(env, &ns, "im/no-key", "{.metadata.uid}");
    assert!(admin.image().images_with_property(UID_KEY, &uid).await.unwrap().is_empty(), "a snapshot was made");

    nova2.send(import()).await.unwrap();
    apply_migration_to(env, &ns, "same-key", &id, INTO_NOVA2, "");
    wait_condition(env, &ns, "same-key", "Ready", 240);
    let new_id = assert_moved_to_nova2(&admin, &nova2, env, &ns, "same-key", &id, None).await;
    let new = nova2.compute().server(&new_id).await.unwrap().unwrap();
    assert_eq!(new.key_name.as_deref(), Some(key.as_str()));

    clean_up(&nova2, &[&new_id], &[]).await;
    for nova in [&admin, &nova2] {
        nova.send(Request::new(Service::Compute, Method::DELETE, format!("/os-keypairs/{key}"))).await.unwrap();
    }
}
