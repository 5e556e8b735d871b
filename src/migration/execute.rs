//! Carries out the planner's one change in OpenStack, under the cloud's concurrency limit.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::{InstanceMigration, InstanceMigrationStatus, RecordedPort};
use crate::openstack::Error;
use crate::openstack::compute::{BlockDevice, NetworkAttachment, ServerCreate, UserData};
use crate::openstack::network::{AddressPair, DhcpOption, FixedIp, PortCreate};

use super::Context;
use super::observe::{Sessions, image_state, port_marker};
use super::planner::{Action, BootVolume, ImageState, Made, MadePort, Nic, Observed, Replacement, Twin, UID_KEY};
use super::record::OSMO_LOCK_REASON;

/// What OpenStack's answer to a change tells.
pub enum Answer {
    /// The change is under way; a later look shows its outcome.
    Accepted,
    /// It made something that the status must hold at once.
    Made(Made),
    /// Nova locked the source (its answer is final).
    SourceLocked,
    /// Glance deleted the snapshot (its answer to a delete is final).
    SnapshotDeleted,
    /// Glance protected the snapshot, or lifted that: the image as it is now.
    SnapshotProtection(ImageState),
    /// Neutron made a port for the replacement, or gave it the source port's description.
    PortMade { source_port_id: String, port: MadePort },
    /// Neutron deleted a port osmo made (its answer to a delete is final).
    PortDeleted { port_id: String },
    /// Neutron moved the floating IP; its answer says where it points now.
    FloatingIpMoved { floating_ip_id: String, port_id: Option<String> },
}

impl Answer {
    /// Adds what a final answer shows to what was observed before the change, so that the
    /// planner goes on from it at once.
    pub fn show(self, observed: &mut Observed) {
        match self {
            Answer::SnapshotDeleted => observed.snapshot = None,
            Answer::SourceLocked => {
                if let Some(source) = observed.source.as_mut() {
                    source.locked = true;
                }
            }
            Answer::SnapshotProtection(image) => observed.snapshot = Some(image),
            Answer::FloatingIpMoved { floating_ip_id, port_id } => {
                observed.floating_ips.insert(floating_ip_id, port_id);
            }
            Answer::PortMade { source_port_id, port } => {
                observed.created_ports.insert(source_port_id, port);
            }
            Answer::PortDeleted { port_id } => observed.created_ports.retain(|_, made| made.id != port_id),
            Answer::Accepted | Answer::Made(_) => {}
        }
    }
}

/// `user_data` is the source's for a boot of a source that had some (`Some(None)` when its
/// Secret is gone).
pub async fn execute(
    ctx: &Context,
    s: &Sessions,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
    action: Action,
    user_data: Option<Option<UserData>>,
) -> Result<Answer, Error> {
    let uid = im.uid().unwrap_or_default();
    let session = match &action {
        Action::StopSource { .. }
        | Action::StartSource { .. }
        | Action::LockSource { .. }
        | Action::UnlockSource { .. }
        | Action::CreateSnapshot { .. }
        | Action::DeleteSource { .. } => &s.source,
        Action::DeleteSnapshot { .. } | Action::ProtectSnapshot { .. } | Action::DeleteTwin(Twin::Image(_)) => {
            &s.source
        }
        // The source's volumes before it is deleted (or given back), the replacement's after.
        Action::SetDeleteOnTermination { server_id, .. }
        | Action::DetachVolume { server_id, .. }
        | Action::AttachVolume { server_id, .. }
            if status.source.as_ref().is_some_and(|r| r.id == *server_id) =>
        {
            &s.source
        }
        _ => &s.target,
    };
    let _permit = ctx.shared.clouds.change_permit(session).await;
    tracing::info!(migration = %im.name_any(), phase = ?status.phase, ?action, "changing OpenStack");
    let accepted = |r: Result<(), Error>| r.map(|()| Answer::Accepted);
    match action {
        // Stop and start may meet a server already in that state: Nova's 409 is harmless, and
        // the next observation decides what comes next.
        Action::StopSource { server_id } => accepted(ignore_conflict(session.compute().stop_server(&server_id).await)),
        Action::StartSource { server_id } => {
            accepted(ignore_conflict(session.compute().start_server(&server_id).await))
        }
        Action::LockSource { server_id } => {
            let reason = format!("{OSMO_LOCK_REASON} {}/{}", im.namespace().unwrap_or_default(), im.name_any());
            session.compute().lock_server(&server_id, &reason).await.map(|()| Answer::SourceLocked)
        }
        Action::UnlockSource { server_id } => accepted(session.compute().unlock_server(&server_id).await),
        Action::CreateSnapshot { server_id, name } => {
            let metadata = BTreeMap::from([(UID_KEY.to_string(), uid)]);
            session
                .compute()
                .create_image(&server_id, &name, &metadata, UID_KEY)
                .await
                .map(|id| Answer::Made(Made::Snapshot(id)))
        }
        Action::DeleteSource { server_id } => {
            // Nova refuses to delete a locked server for all but admins: osmo's own lock goes
            // first (both are idempotent, so a resent deletion does the same).
            if status.source_locked {
                session.compute().unlock_server(&server_id).await?;
            }
            accepted(session.compute().delete_server(&server_id).await)
        }
        Action::DeleteTarget { server_id } => accepted(session.compute().delete_server(&server_id).await),
        Action::SetDeleteOnTermination { server_id, volume_id, delete } => {
            accepted(session.compute().set_delete_on_termination(&server_id, &volume_id, delete).await)
        }
        Action::DetachVolume { server_id, volume_id } => {
            accepted(session.compute().detach_volume(&server_id, &volume_id).await)
        }
        Action::AttachVolume { server_id, volume } => {
            accepted(session.compute().attach_volume(&server_id, &block_device(volume)).await)
        }
        Action::StopTarget { server_id } => accepted(ignore_conflict(session.compute().stop_server(&server_id).await)),
        Action::ProtectSnapshot { image_id, protected } => session
            .image()
            .set_protected(&image_id, protected)
            .await
            .map(|image| Answer::SnapshotProtection(image_state(image))),
        Action::DeleteSnapshot { image_id } => {
            session.image().delete(&image_id).await.map(|()| Answer::SnapshotDeleted)
        }
        // The next look shows the twin gone (or going).
        Action::DeleteTwin(Twin::Server(id)) => accepted(session.compute().delete_server(&id).await),
        Action::DeleteTwin(Twin::Image(id)) => accepted(session.image().delete(&id).await),
        Action::CreatePort { source_port_id, network_id, keep_addresses } => {
            let recorded = status.source.iter().flat_map(|r| &r.ports).find(|p| p.id == source_port_id);
            let Some(recorded) = recorded else { return Ok(Answer::Accepted) };
            let spec = port_create(recorded, network_id, port_marker(&uid, &source_port_id), keep_addresses);
            let made = session.network().create_port(&spec).await?;
            Ok(Answer::PortMade { source_port_id, port: MadePort { id: made.id, marked: true } })
        }
        Action::FinishPort { source_port_id, port_id } => {
            let recorded = status.source.iter().flat_map(|r| &r.ports).find(|p| p.id == source_port_id);
            let Some(recorded) = recorded else { return Ok(Answer::Accepted) };
            // The description goes last: while the marker stays, the next look does this again.
            if !recorded.tags.is_empty() {
                session.network().set_port_tags(&port_id, &recorded.tags).await?;
            }
            session.network().set_port_description(&port_id, &recorded.description).await?;
            Ok(Answer::PortMade { source_port_id, port: MadePort { id: port_id, marked: false } })
        }
        Action::DeletePort { port_id } => {
            session.network().delete_port(&port_id).await?;
            Ok(Answer::PortDeleted { port_id })
        }
        Action::Boot(replacement) => {
            let metadata = status.source.as_ref().map(|r| r.metadata.clone()).unwrap_or_default();
            let user_data = match user_data {
                Some(Some(data)) => Some(data),
                Some(None) => {
                    let secret = status.source.as_ref().and_then(|r| r.user_data_secret.as_deref()).unwrap_or_default();
                    return Err(Error::Config(format!(
                        "Secret {secret}, which kept the source's user data for the replacement, is gone: \
                         recreate it (key userData, as Nova showed the source's user data) and retry"
                    )));
                }
                None => None,
            };
            let mut create = server_create(*replacement, metadata, uid);
            create.user_data = user_data;
            session.compute().create_server(&create).await.map(|id| Answer::Made(Made::Target(id)))
        }
        Action::AssociateFloatingIp { floating_ip_id, port_id, fixed_ip } => session
            .network()
            .update_floating_ip(&floating_ip_id, Some(&port_id), fixed_ip.as_deref())
            .await
            .map(|moved| Answer::FloatingIpMoved { floating_ip_id, port_id: moved.port_id }),
        // nova-network's answers are not kept: the next observation reads the pools and the
        // project's addresses afresh, so an interrupted change is seen, not repeated.
        Action::CreateFloatingIpRange { ip_range, pool, interface } => {
            accepted(session.nova_network().create_bulk(&ip_range, &pool, interface.as_deref()).await)
        }
        Action::AllocateFloatingIp { pool } => accepted(session.nova_network().allocate(&pool).await.map(|_| ())),
        Action::AddFloatingIp { server_id, address } => {
            accepted(session.nova_network().add_to_server(&server_id, &address, None).await)
        }
    }
}

fn ignore_conflict(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(e) if e.status() == Some(409) => Ok(()),
        other => other,
    }
}

/// The port standing for `recorded` on `network_id`, with what its user set on it, described
/// by osmo's `marker` until the status holds its ID; with its fixed IPs and MAC when
/// `keep_addresses`.
fn port_create(recorded: &RecordedPort, network_id: String, marker: String, keep_addresses: bool) -> PortCreate {
    PortCreate {
        network_id,
        name: recorded.name.clone(),
        description: marker,
        fixed_ips: if keep_addresses {
            recorded
                .fixed_ips
                .iter()
                .map(|f| FixedIp { subnet_id: f.subnet_id.clone(), ip_address: f.ip_address.clone() })
                .collect()
        } else {
            Vec::new()
        },
        mac_address: Some(recorded.mac_address.clone()).filter(|_| keep_addresses),
        security_groups: Some(recorded.security_groups.clone()),
        allowed_address_pairs: recorded
            .allowed_address_pairs
            .iter()
            .map(|p| AddressPair { ip_address: p.ip_address.clone(), mac_address: p.mac_address.clone() })
            .collect(),
        port_security_enabled: recorded.port_security_enabled,
        qos_policy_id: recorded.qos_policy_id.clone(),
        vnic_type: recorded.vnic_type.clone(),
        extra_dhcp_opts: recorded
            .extra_dhcp_opts
            .iter()
            .map(|o| DhcpOption {
                opt_name: o.opt_name.clone(),
                opt_value: o.opt_value.clone(),
                ip_version: o.ip_version,
            })
            .collect(),
        dns_name: recorded.dns_name.clone(),
    }
}

/// Nova's create request for the replacement: with the source's metadata, tagged with the
/// migration's UID so that a create that lands late is found.
fn server_create(replacement: Replacement, mut metadata: BTreeMap<String, String>, uid: String) -> ServerCreate {
    metadata.insert(UID_KEY.to_string(), uid);
    let networks = replacement
        .nics
        .into_iter()
        .map(|nic| match nic {
            Nic::Port(id) => NetworkAttachment::Port(id),
            Nic::Auto => NetworkAttachment::Auto,
        })
        .collect();
    ServerCreate {
        description: replacement.description,
        tags: replacement.tags,
        config_drive: replacement.config_drive,
        hostname: replacement.hostname,
        server_group: replacement.server_group,
        user_data: None,
        name: replacement.name,
        image_id: replacement.image_id.unwrap_or_default(),
        block_devices: replacement.volumes.into_iter().map(block_device).collect(),
        flavor_id: replacement.flavor_id,
        key_name: replacement.key_name,
        security_groups: replacement.security_groups,
        metadata,
        availability_zone: replacement.availability_zone,
        host: replacement.host,
        networks,
        idempotency_key: UID_KEY.to_string(),
    }
}

/// A volume of the source as Nova attaches it: a root disk at boot index 0.
fn block_device(volume: BootVolume) -> BlockDevice {
    BlockDevice {
        volume_id: volume.volume_id,
        boot_index: volume.root.then_some(0),
        device_name: volume.device,
        tag: volume.tag,
        delete_on_termination: volume.delete_on_termination,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replacement_is_created_with_the_sources_metadata_tagged_with_the_uid() {
        let replacement = Replacement {
            name: "web-1".into(),
            image_id: None,
            flavor_id: "flavor-9".into(),
            key_name: Some("deploy".into()),
            security_groups: vec!["default".into()],
            availability_zone: Some("icehouse".into()),
            host: None,
            nics: vec![Nic::Port("port-1".into()), Nic::Auto],
            description: None,
            tags: Vec::new(),
            config_drive: false,
            hostname: None,
            server_group: None,
            volumes: vec![BootVolume {
                volume_id: "root-1".into(),
                root: true,
                device: Some("/dev/vda".into()),
                tag: Some("db".into()),
                delete_on_termination: false,
            }],
        };
        let metadata = BTreeMap::from([("role".to_string(), "web".to_string())]);
        let create = server_create(replacement, metadata, "uid-1".into());
        let tagged = BTreeMap::from([("role".into(), "web".into()), (UID_KEY.into(), "uid-1".into())]);
        assert_eq!(create.metadata, tagged);
        assert_eq!(create.idempotency_key, UID_KEY);
        assert_eq!(create.networks, [NetworkAttachment::Port("port-1".into()), NetworkAttachment::Auto,]);
        // Booted from its root volume: no image, the volume at boot index 0.
        assert_eq!(create.image_id, "");
        assert_eq!(
            create.block_devices,
            [BlockDevice {
                volume_id: "root-1".into(),
                boot_index: Some(0),
                device_name: Some("/dev/vda".into()),
                tag: Some("db".into()),
                delete_on_termination: false,
            }]
        );
    }
}
