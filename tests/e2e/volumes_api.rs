//! Contract tests of osmo's volume calls against the real Cinder of the loopback stack and
//! both Novas that share it: Cinder's volume view, Nova's attachments, boot from volume,
//! attach, detach and `delete_on_termination`; and a volume leaving a server in the first
//! Nova intact to join one in the second. The same functions run against the simulator
//! (`simulator.rs`), whose RegionTwo is the same Nova.

use std::time::Duration;

use osmo::openstack::compute::{BlockDevice, ServerCreate, VolumeAttachment};
use osmo::openstack::session::{Microversion, Request};
use osmo::openstack::states::VolumeStatus;
use osmo::openstack::volume::Volume;
use osmo::openstack::{Service, Session};
use reqwest::Method;

use crate::openstack::{fixtures, server_spec, session, unique, until, wait_gone, wait_status};
use crate::parallel_nova::nova2;

/// A new 1 GiB volume, `available`; bootable when asked (Cinder's fake driver copies no image,
/// and a bootable blank volume is all Nova's fake driver needs to boot from).
pub async fn create_volume(s: &Session, name: &str, bootable: bool) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        volume: Id,
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let request = Request::new(Service::BlockStorage, Method::POST, "/volumes")
        .json(serde_json::json!({"volume": {"size": 1, "name": name}}));
    let id = s.send(request).await.unwrap().json::<Body>().unwrap().volume.id;
    wait_volume(s, &id, VolumeStatus::Available).await;
    if bootable {
        let request = Request::new(Service::BlockStorage, Method::POST, format!("/volumes/{id}/action"))
            .json(serde_json::json!({"os-set_bootable": {"bootable": true}}));
        s.send(request).await.unwrap();
    }
    id
}

pub async fn delete_volume(s: &Session, id: &str) {
    s.send(Request::new(Service::BlockStorage, Method::DELETE, format!("/volumes/{id}"))).await.unwrap();
    until(Duration::from_secs(120), &format!("volume {id} to be deleted"), || async {
        s.block_storage().volume(id).await.unwrap().is_none().then_some(())
    })
    .await;
}

pub async fn wait_volume(s: &Session, id: &str, status: VolumeStatus) -> Volume {
    until(Duration::from_secs(120), &format!("volume {id} to be {status}"), || async {
        let volume = s.block_storage().volume(id).await.unwrap().expect("the volume exists");
        assert!(!matches!(volume.status, VolumeStatus::Error | VolumeStatus::ErrorDeleting), "{volume:?}");
        (volume.status == status).then_some(volume)
    })
    .await
}

/// Waits until Cinder shows the volume in use by `server` alone, and returns it.
async fn wait_in_use_by(s: &Session, id: &str, server: &str) -> Volume {
    let volume = wait_volume(s, id, VolumeStatus::InUse).await;
    assert_eq!(volume.attachments.iter().map(|a| a.server_id.as_str()).collect::<Vec<_>>(), [server], "{volume:?}");
    volume
}

/// Waits until Nova lists the server's attachments as `wanted` says (it forgets a detached
/// volume a moment after Cinder shows it `available`), and returns them.
async fn wait_attachments(
    s: &Session,
    server: &str,
    what: &str,
    wanted: impl Fn(&[VolumeAttachment]) -> bool,
) -> Vec<VolumeAttachment> {
    until(Duration::from_secs(120), &format!("server {server}: {what}"), || async {
        let attachments = s.compute().volume_attachments(server).await.unwrap();
        wanted(&attachments).then_some(attachments)
    })
    .await
}

fn attachment<'a>(attachments: &'a [VolumeAttachment], volume: &str) -> &'a VolumeAttachment {
    attachments.iter().find(|a| a.volume_id == volume).unwrap_or_else(|| panic!("{volume} in {attachments:?}"))
}

/// A server booted from `root` (as `/dev/vda`) with `data` beside it, no image, no network.
/// Nova names a volume attached later with the root's prefix (`/dev/vdc` asked for stays
/// `/dev/vdc` beside `/dev/vda`; beside a root it named `/dev/sda` itself, it becomes `/dev/sdc`).
async fn boot_from_volume(s: &Session, name: &str, zone: &str, root: &str, data: Vec<BlockDevice>) -> String {
    let f = fixtures(s).await;
    let mut block_devices = vec![BlockDevice {
        volume_id: root.into(),
        boot_index: Some(0),
        device_name: Some("/dev/vda".into()),
        delete_on_termination: true,
        ..Default::default()
    }];
    block_devices.extend(data);
    let spec = ServerCreate { image_id: String::new(), block_devices, ..server_spec(name, &f, zone, vec![]) };
    let id = s.compute().create_server(&spec).await.unwrap();
    let server = wait_status(s, &id, "ACTIVE").await;
    assert_eq!(server.image_id, None, "booted from a volume, not an image");
    id
}

#[tokio::test]
async fn cinder_is_found_in_both_regions_at_a_negotiated_microversion() {
    cinder_calls(&session("admin"), &nova2()).await;
}

/// Cinder found through the catalog in both regions, its microversion, its volume view.
pub async fn cinder_calls(admin: &Session, nova2: &Session) {
    assert_eq!(admin.block_storage_microversion().await.unwrap(), Some(Microversion(3, 71)));
    let missing = "00000000-0000-4000-8000-000000000000";
    assert_eq!(admin.block_storage().volume(missing).await.unwrap(), None);
    let id = create_volume(admin, &unique("vol-plain"), false).await;
    let volume = admin.block_storage().volume(&id).await.unwrap().unwrap();
    assert_eq!((volume.size, volume.volume_type.as_deref()), (1, Some("__DEFAULT__")));
    assert!(!volume.bootable && !volume.multiattach && !volume.encrypted && volume.attachments.is_empty());
    assert_eq!(volume.availability_zone.as_deref(), Some("nova"));
    // the second Nova's region lists the same Cinder
    assert_eq!(nova2.block_storage().volume(&id).await.unwrap().map(|v| v.id), Some(id.clone()));
    delete_volume(admin, &id).await;
}

#[tokio::test]
async fn volumes_leave_a_server_intact_and_join_one_in_the_second_nova() {
    volume_moves(&session("admin"), &nova2()).await;
}

/// Boot from a volume with a data volume, attach, detach, `delete_on_termination`, the
/// server's deletion, and the same volumes booting a server through the second region.
pub async fn volume_moves(admin: &Session, nova2: &Session) {
    let name = unique("vol-server");
    let root = create_volume(admin, &format!("{name}-root"), true).await;
    let data = create_volume(admin, &format!("{name}-data"), false).await;
    let logs = create_volume(admin, &format!("{name}-logs"), false).await;
    let data_device = BlockDevice {
        volume_id: data.clone(),
        device_name: Some("/dev/vdb".into()),
        tag: Some("data".into()),
        ..Default::default()
    };
    let logs_device = BlockDevice {
        volume_id: logs.clone(),
        device_name: Some("/dev/vdc".into()),
        tag: Some("logs".into()),
        ..Default::default()
    };

    // Boot from the root volume with a data volume, in the first Nova.
    let first = boot_from_volume(admin, &name, "havana", &root, vec![data_device.clone()]).await;
    let attachments = admin.compute().volume_attachments(&first).await.unwrap();
    assert_eq!(attachments.len(), 2, "{attachments:?}");
    let (on_root, on_data) = (attachment(&attachments, &root), attachment(&attachments, &data));
    assert_eq!((on_root.delete_on_termination, on_data.delete_on_termination), (Some(true), Some(false)));
    assert_eq!((on_data.device.as_deref(), on_data.tag.as_deref()), (Some("/dev/vdb"), Some("data")));
    assert_eq!((on_root.device.as_deref(), on_root.tag.as_deref()), (Some("/dev/vda"), None));
    for (volume, on) in [(&root, on_root), (&data, on_data)] {
        let seen = wait_in_use_by(admin, volume, &first).await;
        assert_eq!(seen.attachments[0].attachment_id, on.attachment_id, "Nova's and Cinder's attachment IDs");
        assert!(on.attachment_id.is_some());
        assert_eq!(seen.attachments[0].device, on.device);
    }
    assert!(admin.block_storage().volume(&root).await.unwrap().unwrap().bootable);

    // Attach another with device and tag; detach it; a second detach finds nothing to do.
    admin.compute().attach_volume(&first, &logs_device).await.unwrap();
    wait_in_use_by(admin, &logs, &first).await;
    let attachments = wait_attachments(admin, &first, "logs attached", |a| a.iter().any(|a| a.volume_id == logs)).await;
    let on_logs = attachment(&attachments, &logs);
    assert_eq!((on_logs.device.as_deref(), on_logs.tag.as_deref()), (Some("/dev/vdc"), Some("logs")));
    assert_eq!(on_logs.delete_on_termination, Some(false));
    admin.compute().detach_volume(&first, &logs).await.unwrap();
    wait_volume(admin, &logs, VolumeStatus::Available).await;
    wait_attachments(admin, &first, "logs forgotten", |a| a.iter().all(|a| a.volume_id != logs)).await;
    admin.compute().detach_volume(&first, &logs).await.unwrap();

    // The root volume is kept when the server goes.
    admin.compute().set_delete_on_termination(&first, &root, false).await.unwrap();
    let attachments = admin.compute().volume_attachments(&first).await.unwrap();
    assert_eq!(attachment(&attachments, &root).delete_on_termination, Some(false));
    let refused = admin.compute().detach_volume(&first, &root).await.unwrap_err();
    assert_eq!(refused.status(), Some(400), "Nova does not detach a root volume: {refused}");
    admin.compute().delete_server(&first).await.unwrap();
    wait_gone(admin, &first).await;
    for volume in [&root, &data, &logs] {
        let seen = wait_volume(admin, volume, VolumeStatus::Available).await;
        assert_eq!(&seen.id, volume);
        assert!(seen.attachments.is_empty(), "{seen:?}");
    }

    // The same volumes boot a server in the second Nova.
    let second = boot_from_volume(nova2, &name, "juno", &root, vec![data_device.clone(), logs_device.clone()]).await;
    for volume in [&root, &data, &logs] {
        wait_in_use_by(admin, volume, &second).await;
    }
    let attachments = nova2.compute().volume_attachments(&second).await.unwrap();
    assert_eq!(attachment(&attachments, &logs).tag.as_deref(), Some("logs"));

    // A data volume leaves it and joins it again.
    nova2.compute().detach_volume(&second, &data).await.unwrap();
    wait_volume(admin, &data, VolumeStatus::Available).await;
    wait_attachments(nova2, &second, "data forgotten", |a| a.iter().all(|a| a.volume_id != data)).await;
    nova2.compute().attach_volume(&second, &data_device).await.unwrap();
    let seen = wait_in_use_by(admin, &data, &second).await;
    assert_eq!(seen.attachments[0].device.as_deref(), Some("/dev/vdb"));

    // Clean up: the root volume was booted with delete_on_termination, set false again above
    // only in the first Nova; here Nova deletes it with the server.
    nova2.compute().delete_server(&second).await.unwrap();
    wait_gone(nova2, &second).await;
    for volume in [&data, &logs] {
        wait_volume(admin, volume, VolumeStatus::Available).await;
        delete_volume(admin, volume).await;
    }
    until(Duration::from_secs(120), "the root volume to be deleted with the second server", || async {
        admin.block_storage().volume(&root).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_image_backed_server_boots_with_a_data_volume() {
    data_volume_beside_an_image(&session("admin")).await;
}

/// An image-backed server booted with a data volume (the image at boot index 0, as the
/// client sends it): the volume keeps the device asked for at boot; attached again later,
/// it takes the root disk's prefix. It stays, `available`, when the server goes.
pub async fn data_volume_beside_an_image(admin: &Session) {
    let f = fixtures(admin).await;
    let name = unique("vol-image");
    let data = create_volume(admin, &format!("{name}-data"), false).await;
    let device = BlockDevice {
        volume_id: data.clone(),
        device_name: Some("/dev/vdc".into()),
        tag: Some("data".into()),
        ..Default::default()
    };
    let spec = ServerCreate { block_devices: vec![device.clone()], ..server_spec(&name, &f, "havana", vec![]) };
    let id = admin.compute().create_server(&spec).await.unwrap();
    let server = wait_status(admin, &id, "ACTIVE").await;
    assert_eq!(server.image_id.as_deref(), Some(f.image.as_str()));
    let seen = wait_in_use_by(admin, &data, &id).await;
    let attachments = admin.compute().volume_attachments(&id).await.unwrap();
    assert_eq!(attachments.len(), 1, "the image's disk is no volume: {attachments:?}");
    let on_data = attachment(&attachments, &data);
    assert_eq!((on_data.device.as_deref(), on_data.tag.as_deref()), (Some("/dev/vdc"), Some("data")));
    assert_eq!((on_data.delete_on_termination, &seen.attachments[0].device), (Some(false), &on_data.device));

    // Attached again, `/dev/vdc` asked for beside a root disk on `/dev/sda` is `/dev/sdc`.
    admin.compute().detach_volume(&id, &data).await.unwrap();
    wait_volume(admin, &data, VolumeStatus::Available).await;
    wait_attachments(admin, &id, "data forgotten", |a| a.is_empty()).await;
    admin.compute().attach_volume(&id, &device).await.unwrap();
    let seen = wait_in_use_by(admin, &data, &id).await;
    let root = server.root_device_name.expect("an admin sees the root device");
    let with_roots_prefix = format!("{}c", &root[..root.len() - 1]);
    assert_eq!(seen.attachments[0].device.as_deref(), Some(with_roots_prefix.as_str()));

    admin.compute().delete_server(&id).await.unwrap();
    wait_gone(admin, &id).await;
    assert!(wait_volume(admin, &data, VolumeStatus::Available).await.attachments.is_empty());
    delete_volume(admin, &data).await;
}
