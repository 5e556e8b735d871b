//! Recording the source: everything about a server that its replacement needs, taken before
//! anything changes. Pure: built from what OpenStack answered.

use crate::api::{
    FlavorSize, RecordedAddressPair, RecordedDhcpOption, RecordedFixedIp, RecordedFloatingIp,
    RecordedNovaNetworkFloatingIp, RecordedPort, RecordedServer, RecordedServerGroup, RecordedVolume,
};
use crate::openstack::compute::{Server, ServerGroup, VolumeAttachment};
use crate::openstack::network::{FloatingIp, Port};
use crate::openstack::nova_network::{BulkFloatingIp, LegacyFloatingIp};

use crate::openstack::states::{ServerStatus, VolumeStatus};
use crate::openstack::volume::Volume;
use crate::runtime::conditions::Refusal;

/// The start of the reason osmo gives the locks it takes (then the migration's namespace/name).
pub const OSMO_LOCK_REASON: &str = "osmo: migrated by InstanceMigration";

/// The record of `server`, or why it cannot be migrated. `volumes` are its volume attachments
/// as Nova's attachments API lists them (the server view's list of volumes is an extension that
/// may be absent, and absent must not read as "no volumes"), each with the volume as Cinder
/// shows it (`None`: Cinder does not). `groups` are the server groups Nova shows (the server is
/// a member of one at most). The user data is not in the record (it goes to a Secret): only
/// whether it can be read.
pub fn record(
    server: &Server,
    volumes: &[(VolumeAttachment, Option<Volume>)],
    ports: &[Port],
    floating_ips: &[FloatingIp],
    groups: &[ServerGroup],
) -> Result<RecordedServer, Refusal> {
    if !matches!(ServerStatus::from(server.status.as_str()), ServerStatus::Active | ServerStatus::Shutoff) {
        return Err(Refusal {
            reason: "SourceNotReady",
            message: format!(
                "server {} is {}; only ACTIVE or SHUTOFF servers are migrated (a PAUSED or SUSPENDED one holds \
                 memory that a snapshot does not: resume or stop it first)",
                server.id, server.status
            ),
        });
    }
    // A lock of osmo's is another migration's: the claim on the server names it (`Conflict`).
    let osmo_lock = server.locked_reason.as_deref().is_some_and(|r| r.starts_with(OSMO_LOCK_REASON));
    if server.locked == Some(true) && !osmo_lock {
        let why = server.locked_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        return Err(Refusal {
            reason: "SourceLocked",
            message: format!(
                "server {} is locked{why}: whoever locked it asked that it not be changed. Unlock it to migrate it",
                server.id
            ),
        });
    }
    if server.task_state.is_some() {
        return Err(Refusal {
            reason: "SourceBusy",
            message: format!("server {} is busy ({})", server.id, server.task_state.as_deref().unwrap_or_default()),
        });
    }
    let ports = ports
        .iter()
        .map(|p| RecordedPort {
            id: p.id.clone(),
            network_id: p.network_id.clone(),
            mac_address: p.mac_address.clone(),
            fixed_ips: p
                .fixed_ips
                .iter()
                .map(|f| RecordedFixedIp { subnet_id: f.subnet_id.clone(), ip_address: f.ip_address.clone() })
                .collect(),
            security_groups: p.security_groups.clone(),
            floating_ips: floating_ips
                .iter()
                .filter(|f| f.port_id.as_deref() == Some(p.id.as_str()))
                .map(|f| RecordedFloatingIp {
                    id: f.id.clone(),
                    address: f.floating_ip_address.clone(),
                    fixed_ip_address: f.fixed_ip_address.clone(),
                })
                .collect(),
            name: p.name.clone(),
            description: p.description.clone(),
            allowed_address_pairs: p
                .allowed_address_pairs
                .iter()
                .map(|pair| RecordedAddressPair {
                    ip_address: pair.ip_address.clone(),
                    // The port's own MAC is the one its replacement port has, not the source's.
                    mac_address: pair.mac_address.clone().filter(|mac| *mac != p.mac_address),
                })
                .collect(),
            port_security_enabled: p.port_security_enabled.filter(|enabled| !enabled),
            qos_policy_id: p.qos_policy_id.clone(),
            vnic_type: p.vnic_type.clone().filter(|t| t != "normal"),
            extra_dhcp_opts: p
                .extra_dhcp_opts
                .iter()
                .map(|o| RecordedDhcpOption {
                    opt_name: o.opt_name.clone(),
                    opt_value: o.opt_value.clone(),
                    ip_version: o.ip_version,
                })
                .collect(),
            dns_name: p.dns_name.clone().filter(|n| !n.is_empty()),
            tags: p.tags.clone(),
        })
        .collect();
    Ok(RecordedServer {
        id: server.id.clone(),
        name: server.name.clone(),
        project_id: server.tenant_id.clone(),
        status: server.status.clone(),
        flavor_id: server.flavor.id.clone(),
        flavor_name: server.flavor.original_name.clone(),
        flavor_size: match (server.flavor.disk, server.flavor.ephemeral, server.flavor.ram) {
            (Some(disk_gb), Some(ephemeral_gb), Some(ram_mb)) => Some(FlavorSize {
                disk_gb,
                ephemeral_gb,
                ram_mb,
                vcpus: server.flavor.vcpus,
                swap_mb: server.flavor.swap,
                extra_specs: server.flavor.extra_specs.clone(),
            }),
            _ => None,
        },
        image_id: server.image_id.clone(),
        key_name: server.key_name.clone(),
        security_groups: server
            .security_groups
            .iter()
            .map(|g| g.name.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        metadata: server.metadata.clone(),
        availability_zone: server.availability_zone.clone(),
        host: server.host.clone(),
        ports,
        nova_network_floating_ips: Vec::new(),
        volumes: record_volumes(server, volumes)?,
        description: server.description.clone(),
        tags: server.tags.clone().unwrap_or_default(),
        config_drive: server.config_drive,
        hostname: server.hostname.clone(),
        // Named by the caller, who knows the migration.
        user_data_secret: None,
        // Whether that loss is accepted is the planner's to decide, by the options.
        user_data_unreadable: server.user_data.is_none(),
        server_group: groups.iter().find(|g| g.members.contains(&server.id)).map(|g| RecordedServerGroup {
            id: g.id.clone(),
            name: g.name.clone(),
            policy: g.policy().to_string(),
            other_members: g.members.iter().filter(|m| **m != server.id).cloned().collect(),
        }),
    })
}

/// The server's volumes, moved (never copied) to the replacement; or why one cannot be.
fn record_volumes(
    server: &Server,
    volumes: &[(VolumeAttachment, Option<Volume>)],
) -> Result<Vec<RecordedVolume>, Refusal> {
    let refuse = |reason, why: String| Err(Refusal { reason, message: format!("server {}: {why}", server.id) });
    // Booted from a volume: the one on its root device (shown to admins), or its only one.
    let boots_from_volume = server.image_id.is_none();
    let root_device = server.root_device_name.as_deref();
    let root = match (boots_from_volume, root_device, volumes) {
        (false, ..) => None,
        (true, Some(device), _) => volumes.iter().position(|(a, _)| a.device.as_deref() == Some(device)),
        (true, None, [_]) => Some(0),
        (true, None, _) => None,
    };
    if boots_from_volume && root.is_none() {
        return refuse(
            "RootVolumeUnknown",
            format!(
                "it boots from a volume, and which of its {} volumes is the root disk is not known (Nova shows \
                 the root device to admins): migrate it with admin credentials",
                volumes.len()
            ),
        );
    }
    let mut recorded = Vec::new();
    for (i, (attachment, volume)) in volumes.iter().enumerate() {
        let id = &attachment.volume_id;
        let Some(delete_on_termination) = attachment.delete_on_termination else {
            return refuse(
                "VolumeDeletionUnknown",
                format!(
                    "Nova does not show whether deleting it deletes volume {id} (it does from microversion 2.79), \
                     and the volume must outlive the server"
                ),
            );
        };
        let Some(volume) = volume else {
            return refuse("VolumeNotFound", format!("Cinder does not show its volume {id} to these credentials"));
        };
        if volume.encrypted {
            return refuse(
                "VolumeEncrypted",
                format!(
                    "volume {id} is encrypted: osmo does not move encrypted volumes yet (the target's Nova must \
                     read its key)"
                ),
            );
        }
        let others: Vec<&str> =
            volume.attachments.iter().map(|a| a.server_id.as_str()).filter(|s| *s != server.id).collect();
        if !others.is_empty() {
            return refuse(
                "VolumeAttachedElsewhere",
                format!("volume {id} is attached to server {} too: it cannot move with this one", others.join(", ")),
            );
        }
        if volume.status != VolumeStatus::InUse {
            return refuse("VolumeBusy", format!("volume {id} is {}, not in-use", volume.status));
        }
        recorded.push(RecordedVolume {
            id: id.clone(),
            device: attachment.device.clone(),
            delete_on_termination,
            root: root == Some(i),
            tag: attachment.tag.clone(),
            availability_zone: volume.availability_zone.clone(),
            volume_type: volume.volume_type.clone(),
            size_gb: Some(volume.size),
            multiattach: volume.multiattach,
        });
    }
    Ok(recorded)
}

/// The nova-network floating IPs on `server_id`, each with its pool and the pool's interface.
pub fn nova_network_floating_ips(
    server_id: &str,
    allocated: &[LegacyFloatingIp],
    pools: &[BulkFloatingIp],
) -> Vec<RecordedNovaNetworkFloatingIp> {
    allocated
        .iter()
        .filter(|f| f.instance_id.as_deref() == Some(server_id))
        .map(|f| RecordedNovaNetworkFloatingIp {
            address: f.ip.clone(),
            pool: f.pool.clone(),
            interface: pools.iter().find(|b| b.address == f.ip).and_then(|b| b.interface.clone()),
            fixed_ip_address: f.fixed_ip.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::openstack::volume::VolumeAttachmentRecord;

    fn server(extra: serde_json::Value) -> Server {
        let mut base = json!({
            "id": "s1", "name": "web-1", "status": "ACTIVE", "tenant_id": "p1",
            "OS-EXT-SRV-ATTR:host": "havana-1", "OS-EXT-AZ:availability_zone": "havana",
            "flavor": {"original_name": "m1.tiny", "disk": 1, "ephemeral": 0, "ram": 512}, "image": {"id": "img"}, "key_name": "k",
            "metadata": {"role": "web"}, "security_groups": [{"name": "default"}, {"name": "default"}],
            "OS-EXT-SRV-ATTR:user_data": null
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn port() -> Port {
        serde_json::from_value(json!({"id": "p-1", "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "sub", "ip_address": "198.51.100.7"}], "security_groups": ["sg-1"]}))
        .unwrap()
    }

    #[test]
    fn what_users_set_on_a_port_is_recorded_and_defaults_are_not() {
        let set: Port =
            serde_json::from_value(json!({"id": "p-2", "network_id": "n1", "mac_address": "fa:16:3e:00:00:02",
            "name": "vrrp", "description": "keepalived peer", "tags": ["ha"],
            "allowed_address_pairs": [{"ip_address": "10.0.0.100", "mac_address": "fa:16:3e:00:00:02"},
                                      {"ip_address": "10.0.0.101", "mac_address": "fa:16:3e:aa:aa:aa"}],
            "port_security_enabled": false, "qos_policy_id": "qos-1", "binding:vnic_type": "direct",
            "extra_dhcp_opts": [{"opt_name": "mtu", "opt_value": "1400", "ip_version": 4}], "dns_name": "web"}))
            .unwrap();
        let r = record(&server(json!({})), &[], &[set, port()], &[], &[]).unwrap();
        let (set, plain) = (&r.ports[0], &r.ports[1]);
        assert_eq!(
            (set.name.as_str(), set.description.as_str(), set.tags.as_slice()),
            ("vrrp", "keepalived peer", &["ha".to_string()][..])
        );
        // The port's own MAC is not written into a pair: the replacement port has its own.
        assert_eq!(
            set.allowed_address_pairs,
            [
                RecordedAddressPair { ip_address: "10.0.0.100".into(), mac_address: None },
                RecordedAddressPair { ip_address: "10.0.0.101".into(), mac_address: Some("fa:16:3e:aa:aa:aa".into()) },
            ]
        );
        assert_eq!(set.port_security_enabled, Some(false));
        assert_eq!(
            (set.qos_policy_id.as_deref(), set.vnic_type.as_deref(), set.dns_name.as_deref()),
            (Some("qos-1"), Some("direct"), Some("web"))
        );
        assert_eq!(set.extra_dhcp_opts[0].opt_value, "1400");
        let defaults: Port = serde_json::from_value(json!({"id": "p-3", "network_id": "n1", "mac_address": "m",
            "port_security_enabled": true, "binding:vnic_type": "normal", "dns_name": ""}))
        .unwrap();
        let r = record(&server(json!({})), &[], &[defaults], &[], &[]).unwrap();
        assert_eq!(
            (r.ports[0].port_security_enabled, &r.ports[0].vnic_type, &r.ports[0].dns_name),
            (None, &None, &None)
        );
        assert!(plain.allowed_address_pairs.is_empty());
    }

    fn fip(port: Option<&str>) -> FloatingIp {
        serde_json::from_value(json!({"id": "f-1", "floating_ip_address": "203.0.113.9", "floating_network_id": "pub",
            "port_id": port, "fixed_ip_address": "198.51.100.7"}))
        .unwrap()
    }

    #[test]
    fn a_server_is_recorded_with_ports_and_floating_ips() {
        let r = record(&server(json!({})), &[], &[port()], &[fip(Some("p-1")), fip(None)], &[]).unwrap();
        assert_eq!(
            (r.flavor_name.as_deref(), r.key_name.as_deref(), r.host.as_deref()),
            (Some("m1.tiny"), Some("k"), Some("havana-1"))
        );
        assert_eq!(r.flavor_size, Some(FlavorSize { disk_gb: 1, ephemeral_gb: 0, ram_mb: 512, ..Default::default() }));
        assert_eq!(r.security_groups, ["default"], "Nova lists a group once per port");
        assert_eq!(r.ports[0].fixed_ips[0].ip_address, "198.51.100.7");
        assert_eq!(r.ports[0].floating_ips.len(), 1);
        assert_eq!(r.ports[0].floating_ips[0].address, "203.0.113.9");
    }

    #[test]
    fn nova_network_addresses_are_recorded_with_their_pool_and_interface() {
        let allocated: Vec<LegacyFloatingIp> = serde_json::from_value(json!([
            {"id": 1, "ip": "10.10.10.3", "pool": "public", "fixed_ip": "192.168.1.5", "instance_id": "s1"},
            {"id": 2, "ip": "10.10.10.4", "pool": "public", "fixed_ip": null, "instance_id": null}
        ]))
        .unwrap();
        let pools: Vec<BulkFloatingIp> = serde_json::from_value(json!([
            {"address": "10.10.10.3", "pool": "public", "interface": "eth1", "project_id": "p1", "instance_uuid": "s1"}
        ]))
        .unwrap();
        let recorded = nova_network_floating_ips("s1", &allocated, &pools);
        assert_eq!(
            recorded,
            [RecordedNovaNetworkFloatingIp {
                address: "10.10.10.3".into(),
                pool: "public".into(),
                interface: Some("eth1".into()),
                fixed_ip_address: Some("192.168.1.5".into()),
            }]
        );
    }

    /// A volume as Cinder shows it, attached to `s1` alone.
    fn cinder_volume(id: &str, extra: serde_json::Value) -> Volume {
        let mut v = Volume {
            id: id.into(),
            name: None,
            status: VolumeStatus::InUse,
            size: 1,
            availability_zone: Some("nova".into()),
            volume_type: Some("lvmdriver-1".into()),
            multiattach: false,
            encrypted: false,
            bootable: false,
            attachments: vec![VolumeAttachmentRecord { server_id: "s1".into(), attachment_id: None, device: None }],
        };
        if extra.get("encrypted").is_some() {
            v.encrypted = true;
        }
        if let Some(status) = extra.get("status").and_then(|s| s.as_str()) {
            v.status = status.into();
        }
        if let Some(other) = extra.get("also_on").and_then(|s| s.as_str()) {
            v.attachments.push(VolumeAttachmentRecord { server_id: other.into(), attachment_id: None, device: None });
        }
        v
    }

    fn attached(id: &str, device: &str, delete_on_termination: Option<bool>) -> VolumeAttachment {
        serde_json::from_value(json!({"volumeId": id, "device": device, "tag": "data",
            "delete_on_termination": delete_on_termination}))
        .unwrap()
    }

    #[test]
    fn volumes_are_recorded_with_the_root_disk_among_them() {
        // The server view leaves its volumes out (no extension): the attachments say.
        let volumes = [
            (attached("v1", "/dev/vdb", Some(true)), Some(cinder_volume("v1", json!({})))),
            (attached("v0", "/dev/vda", Some(false)), Some(cinder_volume("v0", json!({})))),
        ];
        let from_image = record(&server(json!({})), &volumes, &[], &[], &[]).unwrap();
        assert!(from_image.root_volume().is_none());
        assert_eq!(from_image.volumes[0].id, "v1");
        assert_eq!(from_image.volumes[0].tag.as_deref(), Some("data"));
        assert!(from_image.volumes[0].delete_on_termination);
        let from_volume = record(
            &server(json!({"image": "", "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda"})),
            &volumes,
            &[],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(from_volume.root_volume().map(|v| v.id.as_str()), Some("v0"));
        // Without the root device (not an admin), only a server's one volume is known to be its root.
        let e = record(&server(json!({"image": ""})), &volumes, &[], &[], &[]).unwrap_err();
        assert_eq!(e.reason, "RootVolumeUnknown");
        let one = record(&server(json!({"image": ""})), &volumes[1..], &[], &[], &[]).unwrap();
        assert_eq!(one.root_volume().map(|v| v.id.as_str()), Some("v0"));
    }

    #[test]
    fn a_volume_that_cannot_move_unseen_is_refused() {
        let refused = |attachment: VolumeAttachment, volume: Option<Volume>| {
            record(&server(json!({})), &[(attachment, volume)], &[], &[], &[]).unwrap_err().reason
        };
        let v = || Some(cinder_volume("v1", json!({})));
        assert_eq!(refused(attached("v1", "/dev/vdb", None), v()), "VolumeDeletionUnknown");
        assert_eq!(refused(attached("v1", "/dev/vdb", Some(false)), None), "VolumeNotFound");
        let encrypted = Some(cinder_volume("v1", json!({"encrypted": true})));
        assert_eq!(refused(attached("v1", "/dev/vdb", Some(false)), encrypted), "VolumeEncrypted");
        let shared = Some(cinder_volume("v1", json!({"also_on": "s9"})));
        assert_eq!(refused(attached("v1", "/dev/vdb", Some(false)), shared), "VolumeAttachedElsewhere");
        let busy = Some(cinder_volume("v1", json!({"status": "detaching"})));
        assert_eq!(refused(attached("v1", "/dev/vdb", Some(false)), busy), "VolumeBusy");
    }

    #[test]
    fn a_locked_server_is_refused_saying_why_it_was_locked() {
        let locked = server(json!({"locked": true, "locked_reason": "payroll run"}));
        let e = record(&locked, &[], &[], &[], &[]).unwrap_err();
        assert_eq!(e.reason, "SourceLocked");
        assert!(e.message.contains("s1 is locked (payroll run)"), "{}", e.message);
        assert!(record(&server(json!({"locked": false})), &[], &[], &[], &[]).is_ok());
        // osmo's own lock is another migration's: the claim on the server decides.
        let by_osmo = json!({"locked": true, "locked_reason": format!("{OSMO_LOCK_REASON} ns/web")});
        assert!(record(&server(by_osmo), &[], &[], &[], &[]).is_ok());
    }

    #[test]
    fn server_level_attributes_and_the_group_are_recorded() {
        let group: ServerGroup =
            serde_json::from_value(json!({"id": "g1", "name": "web", "policies": ["anti-affinity"],
            "members": ["s0", "s1"]}))
            .unwrap();
        let other: ServerGroup =
            serde_json::from_value(json!({"id": "g2", "name": "db", "policy": "affinity", "members": ["s9"]})).unwrap();
        let source = server(json!({"description": "front", "tags": ["a", "b"], "config_drive": "True",
            "OS-EXT-SRV-ATTR:hostname": "web-one", "OS-EXT-SRV-ATTR:user_data": "I2Nsb3VkLWNvbmZpZw=="}));
        let r = record(&source, &[], &[], &[], &[other, group]).unwrap();
        assert_eq!(
            (r.description.as_deref(), r.tags.as_slice()),
            (Some("front"), ["a".to_string(), "b".into()].as_slice())
        );
        assert!(r.config_drive);
        assert_eq!(r.hostname.as_deref(), Some("web-one"));
        assert_eq!(
            r.server_group,
            Some(RecordedServerGroup {
                id: "g1".into(),
                name: "web".into(),
                policy: "anti-affinity".into(),
                other_members: vec!["s0".into()]
            })
        );
        // The user data is never in the record: the caller keeps it elsewhere.
        assert!(!format!("{r:?}").contains("I2Nsb3VkLWNvbmZpZw"));
        assert!(!format!("{source:?}").contains("I2Nsb3VkLWNvbmZpZw"), "a server's Debug hides its user data");
    }

    #[test]
    fn a_server_whose_user_data_cannot_be_read_is_recorded_so() {
        let mut hidden = server(json!({}));
        hidden.user_data = None;
        assert!(record(&hidden, &[], &[], &[], &[]).unwrap().user_data_unreadable);
        assert!(!record(&server(json!({})), &[], &[], &[], &[]).unwrap().user_data_unreadable);
    }

    #[test]
    fn busy_or_broken_servers_are_refused() {
        assert_eq!(
            record(&server(json!({"status": "ERROR"})), &[], &[], &[], &[]).unwrap_err().reason,
            "SourceNotReady"
        );
        assert_eq!(
            record(&server(json!({"OS-EXT-STS:task_state": "rebooting"})), &[], &[], &[], &[]).unwrap_err().reason,
            "SourceBusy"
        );
    }
}
