//! Servers with volumes, moved by the operator on the real stack: the volumes leave the source
//! and join the replacement in the second Nova (one Cinder serves both), never copied, never
//! deleted. Judged by what Cinder and both Novas report: the same volume IDs on the same
//! devices, the same volumes in Cinder before and after, each deleted with the replacement
//! exactly where it was deleted with the source.

use std::collections::BTreeMap;

use osmo::migration::planner::UID_KEY;
use osmo::openstack::compute::{BlockDevice, NetworkAttachment, ServerCreate};
use osmo::openstack::session::Request;
use osmo::openstack::{Service, Session};
use reqwest::Method;

use crate::harness::{Env, jsonpath};
use crate::migration::{add_floating_ip, apply_migration_to, assert_untouched, clean_up, setup, wait_condition};
use crate::openstack::{Fixtures, fixtures, server_spec, session, unique, wait_gone, wait_status};
use crate::parallel_nova::{INTO_NOVA2, assert_moved_to_nova2, nova2};
use crate::volumes_api::{create_volume, delete_volume, wait_volume};
use osmo::openstack::states::VolumeStatus;

/// The volumes of a server: its root disk (when it boots from one) and two data volumes.
pub struct Volumes {
    pub root: Option<String>,
    /// `/dev/vdb`, tagged `db`, kept when the server is deleted.
    pub kept: String,
    /// `/dev/vdc`, deleted with the server (as a volume made at boot is).
    pub deleted_with_it: String,
}

impl Volumes {
    pub fn all(&self) -> Vec<&str> {
        self.root.iter().chain([&self.kept, &self.deleted_with_it]).map(String::as_str).collect()
    }
}

/// A server on havana with two data volumes, on `private`; booted from a volume (deleted with
/// it) when `volume_backed`, else from the image.
pub async fn server_with_volumes(admin: &Session, f: &Fixtures, volume_backed: bool) -> (String, Volumes) {
    server_with_volumes_on(admin, f, volume_backed, None).await
}

/// [`server_with_volumes`], on `host` when given.
pub async fn server_with_volumes_on(
    admin: &Session,
    f: &Fixtures,
    volume_backed: bool,
    host: Option<&str>,
) -> (String, Volumes) {
    let name = unique("vol-vm");
    let root = match volume_backed {
        true => Some(create_volume(admin, &format!("{name}-root"), true).await),
        false => None,
    };
    let kept = create_volume(admin, &format!("{name}-kept"), false).await;
    let deleted_with_it = create_volume(admin, &format!("{name}-gone"), false).await;
    let data = |id: &str, device: &str, tag: Option<&str>, delete_on_termination| BlockDevice {
        volume_id: id.into(),
        boot_index: None,
        device_name: Some(device.into()),
        tag: tag.map(Into::into),
        delete_on_termination,
    };
    let mut block_devices: Vec<BlockDevice> =
        root.iter().map(|id| BlockDevice { boot_index: Some(0), ..data(id, "/dev/vda", None, true) }).collect();
    block_devices.push(data(&kept, "/dev/vdb", Some("db"), false));
    block_devices.push(data(&deleted_with_it, "/dev/vdc", None, true));
    let networks = vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }];
    let mut spec = server_spec(&name, f, if host.is_some() { "nova" } else { "havana" }, networks);
    spec.host = host.map(Into::into);
    let spec = ServerCreate {
        image_id: if volume_backed { String::new() } else { spec.image_id.clone() },
        block_devices,
        ..spec
    };
    let id = admin.compute().create_server(&spec).await.unwrap();
    wait_status(admin, &id, "ACTIVE").await;
    (id, Volumes { root, kept, deleted_with_it })
}

/// [`server_with_volumes`], with a floating IP.
async fn server_with_volumes_and_floating_ip(
    admin: &Session,
    f: &Fixtures,
    volume_backed: bool,
) -> (String, String, Volumes) {
    let (id, volumes) = server_with_volumes(admin, f, volume_backed).await;
    let fip = add_floating_ip(admin, f, &id).await.id;
    (id, fip, volumes)
}

/// What Cinder shows of a volume that a move must not change: size, type, zone, bootable.
async fn cinder_view(s: &Session, id: &str) -> (u64, Option<String>, Option<String>, bool) {
    let v = s.block_storage().volume(id).await.unwrap().expect("the volume exists");
    (v.size, v.volume_type, v.availability_zone, v.bootable)
}

/// The snapshots Cinder has of `volumes` (Nova's snapshot of a server booted from a volume makes
/// one of each: a copy, which a move must not make).
async fn volume_snapshots(s: &Session, volumes: &Volumes) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        snapshots: Vec<Snapshot>,
    }
    #[derive(serde::Deserialize)]
    struct Snapshot {
        id: String,
        volume_id: String,
    }
    let listed = s.send(Request::new(Service::BlockStorage, Method::GET, "/snapshots")).await.unwrap();
    let body: Body = listed.json().unwrap();
    let ours = volumes.all();
    body.snapshots.into_iter().filter(|v| ours.contains(&v.volume_id.as_str())).map(|v| v.id).collect()
}

/// How a volume is attached: device, tag, `delete_on_termination`.
type Attached<'a> = (Option<&'a str>, Option<&'a str>, Option<bool>);

/// Asserts that the replacement `new_id` in the second Nova has `volumes`, as the source had
/// them (devices, tag, `delete_on_termination`), each in use by it alone in Cinder.
pub async fn assert_volumes_on(nova2: &Session, new_id: &str, volumes: &Volumes) {
    let attachments = nova2.compute().volume_attachments(new_id).await.unwrap();
    let seen: BTreeMap<&str, Attached> = attachments
        .iter()
        .map(|a| (a.volume_id.as_str(), (a.device.as_deref(), a.tag.as_deref(), a.delete_on_termination)))
        .collect();
    let mut wanted: BTreeMap<&str, Attached> = BTreeMap::from([
        (volumes.kept.as_str(), (Some("/dev/vdb"), Some("db"), Some(false))),
        (volumes.deleted_with_it.as_str(), (Some("/dev/vdc"), None, Some(true))),
    ]);
    if let Some(root) = &volumes.root {
        wanted.insert(root.as_str(), (Some("/dev/vda"), None, Some(true)));
    }
    assert_eq!(seen, wanted, "the replacement's volumes");
    for id in volumes.all() {
        let volume = wait_volume(nova2, id, VolumeStatus::InUse).await;
        let on: Vec<&str> = volume.attachments.iter().map(|a| a.server_id.as_str()).collect();
        assert_eq!(on, [new_id], "volume {id} in Cinder");
    }
}

/// Deletes the replacement as its users would, and checks that Nova deletes exactly the volumes
/// the source would have taken with it; then the rest.
async fn delete_like_the_source(nova2: &Session, new_id: &str, fip: &str, volumes: &Volumes) {
    clean_up(nova2, &[new_id], &[fip]).await;
    delete_volumes_left(nova2, volumes).await;
}

/// Once the server that had `volumes` is deleted: those deleted with it are gone; the kept one is
/// deleted.
pub async fn delete_volumes_left(nova2: &Session, volumes: &Volumes) {
    for id in volumes.root.iter().chain([&volumes.deleted_with_it]) {
        crate::openstack::until(std::time::Duration::from_secs(120), &format!("volume {id} to go"), || async {
            nova2.block_storage().volume(id).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    wait_volume(nova2, &volumes.kept, VolumeStatus::Available).await;
    delete_volume(nova2, &volumes.kept).await;
}

fn steps(env: &Env, ns: &str, name: &str) -> String {
    jsonpath(env, ns, &format!("im/{name}"), "{range .status.steps[*]}{.name}={.result} {end}").trim().to_string()
}

#[tokio::test]
async fn a_volume_backed_server_with_two_data_volumes_moves_into_the_second_nova_with_the_same_volumes() {
    let (env, ns, _op) = setup("volumes");
    let (admin, nova2) = (session("admin"), nova2());
    let f = fixtures(&admin).await;
    let (id, fip, volumes) = server_with_volumes_and_floating_ip(&admin, &f, true).await;
    let before: Vec<_> = futures::future::join_all(volumes.all().into_iter().map(|v| cinder_view(&admin, v))).await;

    apply_migration_to(env, &ns, "bfv", &id, INTO_NOVA2, "");
    wait_condition(env, &ns, "bfv", "Ready", 300);
    let new_id = assert_moved_to_nova2(&admin, &nova2, env, &ns, "bfv", &id, Some(&fip)).await;

    // Booted from the same root volume: no image, no snapshot, no copy.
    let new = nova2.compute().server(&new_id).await.unwrap().unwrap();
    assert_eq!(new.image_id, None, "the replacement was not booted from its root volume");
    assert_volumes_on(&nova2, &new_id, &volumes).await;
    let after: Vec<_> = futures::future::join_all(volumes.all().into_iter().map(|v| cinder_view(&admin, v))).await;
    assert_eq!(after, before, "Cinder shows the volumes changed");
    // The replacement has exactly these volumes (above): none was created; none was copied.
    assert_eq!(volume_snapshots(&admin, &volumes).await, Vec::<String>::new(), "a volume was snapshotted");
    let uid = jsonpath(env, &ns, "im/bfv", "{.metadata.uid}");
    assert!(admin.image().images_with_property(UID_KEY, &uid).await.unwrap().is_empty(), "a snapshot was made");
    assert_eq!(
        steps(env, &ns, "bfv"),
        "Recording=Succeeded Stopping=Succeeded Snapshotting=Skipped DeletingSource=Succeeded Booting=Succeeded \
         MovingAddresses=Succeeded Verifying=Succeeded CleaningUp=Succeeded"
    );
    let recorded = jsonpath(env, &ns, "im/bfv", "{range .status.source.volumes[*]}{.id}:{.root} {end}");
    assert!(recorded.contains(&format!("{}:true", volumes.root.as_deref().unwrap())), "{recorded}");
    assert!(!jsonpath(env, &ns, "im/bfv", "{.status.downtime}").is_empty());

    delete_like_the_source(&nova2, &new_id, &fip, &volumes).await;
}

#[tokio::test]
async fn an_image_backed_server_moves_with_its_data_volumes() {
    let (env, ns, _op) = setup("data-volumes");
    let (admin, nova2) = (session("admin"), nova2());
    let f = fixtures(&admin).await;
    let (id, fip, volumes) = server_with_volumes_and_floating_ip(&admin, &f, false).await;

    apply_migration_to(env, &ns, "data", &id, INTO_NOVA2, "");
    wait_condition(env, &ns, "data", "Ready", 300);
    let new_id = assert_moved_to_nova2(&admin, &nova2, env, &ns, "data", &id, Some(&fip)).await;
    let new = nova2.compute().server(&new_id).await.unwrap().unwrap();
    let snapshot = jsonpath(env, &ns, "im/data", "{.status.snapshot.imageId}");
    assert_eq!(new.image_id.as_deref(), Some(snapshot.as_str()), "booted from the snapshot of its root disk");
    assert_volumes_on(&nova2, &new_id, &volumes).await;
    assert_eq!(volume_snapshots(&admin, &volumes).await, Vec::<String>::new(), "a volume was snapshotted");

    delete_like_the_source(&nova2, &new_id, &fip, &volumes).await;
}

/// A target Nova that attaches no volume of another zone (`crossAZAttach: false`): the
/// server's volumes, in Cinder's zone `nova`, cannot follow it to `juno`, and the migration is
/// refused before anything changes.
#[tokio::test]
async fn volumes_the_target_cannot_attach_are_refused_before_anything_changes() {
    let (env, ns, _op) = setup("volume-zone");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let (id, fip, volumes) = server_with_volumes_and_floating_ip(&admin, &f, true).await;
    let target = "{cloud: {secretName: clouds, cloud: admin-nova2}, availabilityZone: juno, crossAZAttach: false}";
    apply_migration_to(env, &ns, "zone", &id, target, "");
    wait_condition(env, &ns, "zone", "Failed", 60);
    let failed =
        |field: &str| jsonpath(env, &ns, "im/zone", &format!("{{.status.conditions[?(@.type==\"Failed\")].{field}}}"));
    assert_eq!(failed("reason"), "VolumeZoneMismatch");
    assert!(failed("message").contains("Nothing was changed."), "{}", failed("message"));
    assert_untouched(&admin, &id).await;
    let attachments = admin.compute().volume_attachments(&id).await.unwrap();
    assert_eq!(attachments.len(), 3);
    assert!(attachments.iter().all(|a| a.delete_on_termination == Some(a.volume_id != volumes.kept)));

    clean_up(&admin, &[&id], &[&fip]).await;
    wait_gone(&admin, &id).await;
    delete_volume(&admin, &volumes.kept).await;
}

/// `Redeploy`: the fresh server boots from the image with a root disk of its own and the
/// source's data volumes, detached from the source while it is stopped.
#[tokio::test]
async fn a_redeployed_server_gets_the_data_volumes_and_a_root_disk_of_its_own() {
    let (env, ns, _op) = setup("redeploy-volumes");
    let (admin, nova2) = (session("admin"), nova2());
    let f = fixtures(&admin).await;
    let (id, fip, volumes) = server_with_volumes_and_floating_ip(&admin, &f, false).await;
    let extra = ", strategy: Redeploy, redeploy: {image: base}";
    apply_migration_to(env, &ns, "fresh", &id, INTO_NOVA2, extra);
    wait_condition(env, &ns, "fresh", "Ready", 300);
    let new_id = assert_moved_to_nova2(&admin, &nova2, env, &ns, "fresh", &id, Some(&fip)).await;
    let new = nova2.compute().server(&new_id).await.unwrap().unwrap();
    assert_eq!(new.image_id.as_deref(), Some(f.image.as_str()), "booted from the redeploy image");
    assert_volumes_on(&nova2, &new_id, &volumes).await;

    delete_like_the_source(&nova2, &new_id, &fip, &volumes).await;
}
