//! Booting: the replacement's ports are made, one for each of the source's, then the
//! replacement is created on them (once: a create may still land after its sender died).

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Action, Observed, Planner, ServerState};
use crate::api::{BootBase, MigrationPhase, PortOrigin, Strategy, TargetPort, TargetServerStatus};
use crate::openstack::states::ServerStatus;

/// The replacement to create: the source as recorded, on the target's flavor, image and
/// networks. The executor adds the tenant's data (the source's metadata and user data, which
/// are not logged) and the migration's UID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replacement {
    pub name: String,
    /// `None` when it boots from the source's root volume.
    pub image_id: Option<String>,
    pub flavor_id: String,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub availability_zone: Option<String>,
    /// A specific compute host.
    pub host: Option<String>,
    pub nics: Vec<Nic>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub config_drive: bool,
    /// The source's hostname, unless Recording found the target cannot take it.
    pub hostname: Option<String>,
    pub server_group: Option<String>,
    /// The source's volumes, root first, then in the source's order, on the source's devices.
    pub volumes: Vec<BootVolume>,
}

/// A volume of the source that the replacement boots with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootVolume {
    pub volume_id: String,
    /// Its root disk: it boots from it.
    pub root: bool,
    pub device: Option<String>,
    pub tag: Option<String>,
    /// Always false at boot: a replacement that fails is deleted and booted again, and must
    /// not take the volumes with it. The source's setting comes back once it is verified.
    pub delete_on_termination: bool,
}

/// How the replacement joins a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nic {
    /// On an existing port (reused, or made by osmo), with its addresses and security groups.
    Port(String),
    /// On the network Nova gives the project (nova-network has no ports).
    Auto,
}

impl Planner<'_> {
    pub(super) fn booting(&mut self, observed: &Observed) {
        if self.input.deleting && self.strategy() == Strategy::Redeploy {
            return self.abort();
        }
        let failed = self.status.recovery.as_ref().and_then(|r| r.failed_target.as_deref());
        if let Some(target) = observed.target.as_ref().filter(|t| Some(t.id.as_str()) == failed) {
            // A retry: the replacement that failed goes before another is booted.
            if target.status != ServerStatus::Deleted && !target.is_deleting() {
                self.action = Some(Action::DeleteTarget { server_id: target.id.clone() });
            }
            return self.poll();
        }
        if let Some(target) = &observed.target {
            self.record_target(target);
            return match &target.status {
                ServerStatus::Active if target.task_state.is_none() => {
                    self.assign_new_ports(observed);
                    // The floating IPs were read with the replacement's ports: move them now.
                    self.advance(MigrationPhase::Booting);
                    self.phase_step(observed)
                }
                ServerStatus::Error => self.fail(
                    "BootFailed",
                    format!(
                        "replacement {} went to ERROR: {}",
                        target.id,
                        target.fault.as_deref().unwrap_or("no fault given")
                    ),
                ),
                _ if self.timed_out(MigrationPhase::Booting) => {}
                _ => self.poll(),
            };
        }
        if self.create_in_flight() {
            return self.poll();
        }
        let base = match (&self.status.boot_base, &observed.boot) {
            (Some(base), _) => (**base).clone(),
            (None, Some(Ok(base))) => base.clone(),
            // A status written before the base was recorded: it is resolved now.
            (None, None) => return self.poll(),
            (None, Some(Err(refusal))) => return self.fail(refusal.reason, refusal.message.clone()),
        };
        self.status.boot_base = Some(Box::new(base.clone()));
        let Some(record) = self.status.source.clone() else {
            return self.fail("NoRecord", "the source was not recorded".into());
        };
        let boots_from_volume = self.strategy() == Strategy::Snapshot && record.root_volume().is_some();
        let image_id = match self.strategy() {
            Strategy::Snapshot if boots_from_volume => None,
            Strategy::Snapshot => self.status.snapshot.as_ref().map(|s| s.image_id.clone()),
            Strategy::Redeploy => base.image_id.clone(),
        };
        if image_id.is_none() && !boots_from_volume {
            return self.fail("NoImage", "no image to boot the replacement from".into());
        }
        let Some(volumes) = self.volumes_to_attach(observed) else { return };
        let Some(mut networks) = self.replacement_ports(observed, &base) else { return };
        if networks.is_empty() && self.nova_network() {
            // nova-network has no ports: the project's network gives the fixed IP that the
            // floating IPs map to.
            networks.push(Nic::Auto);
        }
        let target = &self.input.spec.options.target;
        // Existing ports carry their own security groups; Nova applies these to the ports it
        // makes: by the IDs resolved at Recording (names for a status recorded before them).
        let all_ports = !networks.is_empty() && networks.iter().all(|n| matches!(n, Nic::Port(_)));
        let security_groups = match (all_ports, base.security_group_ids.is_empty()) {
            (true, _) => Vec::new(),
            (false, false) => base.security_group_ids.clone(),
            (false, true) => record.security_groups.clone(),
        };
        self.send_create(Action::Boot(Box::new(Replacement {
            name: record.name.clone(),
            image_id,
            flavor_id: base.flavor_id,
            key_name: record.key_name.clone(),
            security_groups,
            availability_zone: target.availability_zone.clone(),
            host: target.host.clone(),
            nics: networks,
            description: record.description.clone(),
            tags: record.tags.clone(),
            config_drive: record.config_drive,
            hostname: record
                .hostname
                .clone()
                .filter(|_| !self.status.not_kept.iter().any(|n| n.attribute == "hostname")),
            server_group: base.server_group_id.clone(),
            volumes,
        })));
        self.poll();
    }

    pub(super) fn record_target(&mut self, target: &ServerState) {
        self.status.create_sent_at = None;
        self.status.target = Some(TargetServerStatus {
            server_id: target.id.clone(),
            status: target.status.to_string(),
            host: target.host.clone(),
            availability_zone: target.availability_zone.clone(),
        });
    }

    /// The replacement's port for each of the source's, in the source's order, so that each
    /// stands for the one it was made from: a port that survived the source (`Snapshot`), or one
    /// osmo makes from the recorded port on the same (or mapped) network, with the source's
    /// fixed IPs and MAC when `preserveFixedIPs` says so. `None` while a port is being made
    /// (one change at a time; the boot comes once every port exists).
    fn replacement_ports(&mut self, observed: &Observed, base: &BootBase) -> Option<Vec<Nic>> {
        let record = self.status.source.clone()?;
        let snapshot = self.strategy() == Strategy::Snapshot;
        // Redeploy boots before the source is deleted: its addresses are still taken (and the
        // spec's validation refuses preserveFixedIPs with it).
        let keep_addresses = snapshot && self.input.spec.options.addresses.preserve_fixed_ips;
        let origin = if keep_addresses { PortOrigin::Recreated } else { PortOrigin::Created };
        let mut nics = Vec::new();
        for port in &record.ports {
            if snapshot && observed.surviving_ports.contains(&port.id) {
                self.remember_port(&port.id, &port.id, PortOrigin::Reused);
                nics.push(Nic::Port(port.id.clone()));
                continue;
            }
            let Some(made) = observed.created_ports.get(&port.id) else {
                let network_id = base.networks.get(&port.network_id).unwrap_or(&port.network_id).clone();
                self.action = Some(Action::CreatePort { source_port_id: port.id.clone(), network_id, keep_addresses });
                self.requeue = Some(Duration::ZERO);
                return None;
            };
            // Written to the status before its marker goes: a crash until then finds it by the
            // marker, never makes a second one.
            self.remember_port(&port.id, &made.id, origin);
            if made.marked {
                self.action = Some(Action::FinishPort { source_port_id: port.id.clone(), port_id: made.id.clone() });
                self.requeue = Some(Duration::ZERO);
                return None;
            }
            nics.push(Nic::Port(made.id.clone()));
        }
        Some(nics)
    }

    fn remember_port(&mut self, source_port_id: &str, port_id: &str, origin: PortOrigin) {
        let port = TargetPort { source_port_id: source_port_id.into(), port_id: port_id.into(), origin };
        match self.status.target_ports.iter_mut().find(|p| p.source_port_id == source_port_id) {
            // A made port that vanished before the boot was made again.
            Some(known) => *known = port,
            None => self.status.target_ports.push(port),
        }
    }

    /// Matches the ports Nova made for a replacement booted by an earlier osmo (on networks, not
    /// on ports) to the source's ports, network by network. A replacement booted on osmo's own
    /// ports has each one in the status already.
    fn assign_new_ports(&mut self, observed: &Observed) {
        let Some(record) = self.status.source.clone() else { return };
        let taken: BTreeSet<String> = self.status.target_ports.iter().map(|p| p.port_id.clone()).collect();
        let mut free: Vec<&(String, String)> =
            observed.target_ports.iter().filter(|(id, _)| !taken.contains(id)).collect();
        // Exact network matches first; then ports on mapped networks take what is left, in order.
        for exact in [true, false] {
            for port in &record.ports {
                if self.status.target_ports.iter().any(|p| p.source_port_id == port.id) {
                    continue;
                }
                let found = if exact {
                    free.iter().position(|(_, net)| *net == port.network_id)
                } else {
                    (!free.is_empty()).then_some(0)
                };
                if let Some(i) = found {
                    let (id, _) = free.remove(i);
                    self.remember_port(&port.id, id, PortOrigin::New);
                }
            }
        }
        let order: Vec<&str> = record.ports.iter().map(|p| p.id.as_str()).collect();
        self.status.target_ports.sort_by_key(|t| order.iter().position(|id| *id == t.source_port_id));
    }
}
