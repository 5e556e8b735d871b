//! MovingAddresses: each floating IP goes to the replacement's port that stands for the source
//! port it was on.

use super::{Action, NovaNetworkStep, Observed, Planner, nova_network_step};
use crate::api::{AddressMode, MigrationPhase};

impl Planner<'_> {
    /// Each recorded floating IP and the port (and fixed IP) it must end on.
    fn floating_ip_targets(&self) -> Vec<(String, String, Option<String>)> {
        let Some(record) = &self.status.source else { return Vec::new() };
        let mut out = Vec::new();
        for port in &record.ports {
            let Some(target) = self.status.target_ports.iter().find(|p| p.source_port_id == port.id) else { continue };
            for fip in &port.floating_ips {
                let fixed = fip.fixed_ip_address.clone().filter(|_| target.origin.keeps_addresses());
                out.push((fip.id.clone(), target.port_id.clone(), fixed));
            }
        }
        out
    }

    /// A source port with floating IPs for which the replacement has no port, if any.
    fn unmatched_floating_ip(&self) -> Option<String> {
        let record = self.status.source.as_ref()?;
        let lost = record
            .ports
            .iter()
            .filter(|p| !p.floating_ips.is_empty())
            .find(|p| !self.status.target_ports.iter().any(|t| t.source_port_id == p.id))?;
        Some(format!(
            "no port of the replacement stands for source port {} (floating IP {})",
            lost.id, lost.floating_ips[0].address
        ))
    }

    pub(super) fn moving_addresses(&mut self, observed: &Observed) {
        match self.input.spec.options.addresses.mode {
            AddressMode::None => {}
            AddressMode::NovaNetwork => return self.moving_nova_network_addresses(observed),
            AddressMode::Neutron => {
                if let Some(problem) = self.unmatched_floating_ip() {
                    return self.fail("AddressesNotMoved", problem);
                }
                // Floating IPs not looked at are moved as well: moving one again is harmless.
                for (fip, port, fixed) in self.floating_ip_targets() {
                    if observed.floating_ips.get(&fip).cloned().flatten().as_deref() != Some(port.as_str()) {
                        if self.timed_out(MigrationPhase::MovingAddresses) {
                            return;
                        }
                        // One at a time: Neutron's answer (or the next look) shows where it went.
                        self.action =
                            Some(Action::AssociateFloatingIp { floating_ip_id: fip, port_id: port, fixed_ip: fixed });
                        self.poll();
                        return;
                    }
                }
            }
        }
        self.advance(MigrationPhase::MovingAddresses);
        // Verified from this reconcile's look at the replacement and Neutron's answers to the
        // moves; without a look at the replacement (after a restart), Verifying looks afresh.
        if observed.target.is_some() {
            self.phase_step(observed)
        }
    }

    /// Whether every recorded address is on the replacement, as the target shows it now.
    pub(super) fn addresses_in_place(&self, observed: &Observed, server_id: &str) -> bool {
        match self.input.spec.options.addresses.mode {
            AddressMode::None => true,
            AddressMode::NovaNetwork => observed.nova_network.as_ref().is_some_and(|target| {
                self.status.source.iter().flat_map(|r| &r.nova_network_floating_ips).all(|fip| {
                    nova_network_step(fip, &self.source_id(), Some(server_id), target) == NovaNetworkStep::Done
                })
            }),
            AddressMode::Neutron => {
                self.unmatched_floating_ip().is_none()
                    && self.floating_ip_targets().iter().all(|(fip, port, _)| {
                        observed.floating_ips.get(fip).cloned().flatten().as_deref() == Some(port.as_str())
                    })
            }
        }
    }
}
