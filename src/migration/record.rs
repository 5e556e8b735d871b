//! Recording the source: everything about a server that its replacement needs, taken before
//! anything changes. Pure: built from what OpenStack answered.

use crate::api::{
    FlavorSize, RecordedAddressPair, RecordedDhcpOption, RecordedFixedIp, RecordedFloatingIp,
    RecordedNovaNetworkFloatingIp, RecordedPort, RecordedServer, RecordedServerGroup, RecordedVolume,
};
use crate::openstack::compute::{Server, ServerGroup, VolumeAttachment};
use crate::openstack::network::{FloatingIp, Port};
use crate::openstack::nova_network::{BulkFloatingIp, LegacyFloatingIp};

use crate::openstack::states::ServerStatus;
use crate::runtime::conditions::Refusal;

/// The start of the reason osmo gives the locks it takes (then the migration's namespace/name).
pub const OSMO_LOCK_REASON: &str = "osmo: migrated by InstanceMigration";

/// The record of `server`, or why it cannot be migrated. `attachments` are its volume
/// attachments as Nova's attachments API lists them: the server view's list of volumes is an
/// extension that may be absent, and absent must not read as "no volumes". `groups` are the
/// server groups Nova shows (the server is a member of one at most). The user data is not in
/// the record (it goes to a Secret): only whether it can be read.
pub fn record(
    server: &Server,
    attachments: &[VolumeAttachment],
    ports: &[Port],
    floating_ips: &[FloatingIp],
    groups: &[ServerGroup],
) -> Result<RecordedServer, Refusal> {
    if server.image_id.is_none() || !attachments.is_empty() {
        let volumes: Vec<_> = attachments.iter().map(|v| v.volume_id.as_str()).collect();
        return Err(Refusal {
            reason: "VolumesAttached",
            message: format!(
                "server {} {}: osmo does not migrate volumes yet, and deleting the server could delete them",
                server.id,
                if server.image_id.is_none() {
                    "boots from a volume".to_string()
                } else {
                    format!("has volumes attached ({})", volumes.join(", "))
                }
            ),
        });
    }
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
        volumes: attachments
            .iter()
            .map(|v| RecordedVolume {
                id: v.volume_id.clone(),
                device: v.device.clone(),
                delete_on_termination: v.delete_on_termination.unwrap_or(false),
            })
            .collect(),
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

    #[test]
    fn servers_with_volumes_are_refused() {
        // The server view leaves its volumes out (no extension): the attachments say.
        let attached: Vec<VolumeAttachment> =
            serde_json::from_value(json!([{"volumeId": "v1", "device": "/dev/vdb"}])).unwrap();
        let e = record(&server(json!({})), &attached, &[], &[], &[]).unwrap_err();
        assert_eq!(e.reason, "VolumesAttached");
        assert!(e.message.contains("has volumes attached (v1)"), "{}", e.message);
        let e = record(&server(json!({"image": ""})), &[], &[], &[], &[]).unwrap_err();
        assert_eq!(e.reason, "VolumesAttached");
        assert!(e.message.contains("boots from a volume"));
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
