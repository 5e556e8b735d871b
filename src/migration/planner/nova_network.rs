//! Address mode `NovaNetwork`: each recorded floating IP is recreated in its pool, allocated and
//! put on the replacement, one change at a time, and refused at Recording when the target
//! cannot give it back.

use crate::api::{AddressMode, MigrationPhase, RecordedNovaNetworkFloatingIp, RecordedServer};

use super::{Action, Observed, Planner};

/// nova-network's floating IPs in the target, as the target's credentials see them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NovaNetworkState {
    /// Allocated to the project (`os-floating-ips`).
    pub allocated: Vec<AllocatedAddress>,
    /// Every address of every pool (`os-floating-ips-bulk`).
    pub pools: Vec<PoolAddress>,
}

/// An address allocated to the project.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocatedAddress {
    pub ip: String,
    /// The server it is on.
    pub instance_id: Option<String>,
}

/// An address of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolAddress {
    pub address: String,
    pub pool: String,
    /// The project it is allocated to; `None` while free.
    pub project_id: Option<String>,
}

/// What a recorded nova-network address needs next to be on the replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NovaNetworkStep {
    /// It is on the replacement.
    Done,
    /// The address does not exist: add it to its pool, alone as the pool's one free address.
    CreateRange { ip_range: String, pool: String, interface: Option<String> },
    /// It is the one free address of its pool: allocating from the pool gets exactly it.
    Allocate { pool: String },
    /// The project holds it, free or still on the source: put it on the replacement (Nova
    /// moves it off the source).
    Associate,
    /// It cannot be had in the target, and why.
    Unavailable(String),
}

/// The next step for `address` of the server `source` towards the server `on` (none yet
/// while recording).
pub fn nova_network_step(
    address: &RecordedNovaNetworkFloatingIp,
    source: &str,
    on: Option<&str>,
    target: &NovaNetworkState,
) -> NovaNetworkStep {
    let wanted = address.address.as_str();
    if let Some(ours) = target.allocated.iter().find(|f| f.ip == wanted) {
        return match ours.instance_id.as_deref() {
            Some(server) if Some(server) == on => NovaNetworkStep::Done,
            None => NovaNetworkStep::Associate,
            Some(server) if server == source => NovaNetworkStep::Associate,
            // Another server of the project uses it: it is not this migration's to take.
            Some(other) => {
                NovaNetworkStep::Unavailable(format!("floating IP {wanted} is on server {other} in the target"))
            }
        };
    }
    let free_others =
        |pool: &str| target.pools.iter().any(|f| f.pool == pool && f.address != wanted && f.project_id.is_none());
    // nova-network allocates any free address of a pool: an explicit address only when it is
    // the pool's one free address.
    let not_alone = |pool: &str| {
        NovaNetworkStep::Unavailable(format!(
            "floating IP {wanted}: pool {pool:?} in the target has other free addresses, so nova-network cannot allocate exactly this one"
        ))
    };
    match target.pools.iter().find(|f| f.address == wanted) {
        Some(taken) if taken.project_id.is_some() => NovaNetworkStep::Unavailable(format!(
            "floating IP {wanted} is allocated to project {} in the target",
            taken.project_id.as_deref().unwrap_or_default()
        )),
        Some(free) if free_others(&free.pool) => not_alone(&free.pool),
        Some(free) => NovaNetworkStep::Allocate { pool: free.pool.clone() },
        None if free_others(&address.pool) => not_alone(&address.pool),
        None => NovaNetworkStep::CreateRange {
            ip_range: format!("{wanted}/32"),
            pool: address.pool.clone(),
            interface: address.interface.clone(),
        },
    }
}

impl Planner<'_> {
    pub(super) fn nova_network(&self) -> bool {
        self.input.spec.options.addresses.mode == AddressMode::NovaNetwork
    }

    /// A recorded nova-network address that the target cannot give back, before anything
    /// changes.
    pub(super) fn unavailable_address(&self, record: &RecordedServer, observed: &Observed) -> Option<String> {
        let target = observed.nova_network.as_ref()?;
        record.nova_network_floating_ips.iter().find_map(|fip| match nova_network_step(fip, &record.id, None, target) {
            NovaNetworkStep::Unavailable(problem) => Some(problem),
            _ => None,
        })
    }

    /// Each recorded address in turn: recreated in its pool, allocated, put on the replacement.
    pub(super) fn moving_nova_network_addresses(&mut self, observed: &Observed) {
        let Some(target) = &observed.nova_network else { return self.poll() };
        let server_id = self.status.target.as_ref().map(|t| t.server_id.clone()).unwrap_or_default();
        let source_id = self.source_id();
        let addresses = self.status.source.iter().flat_map(|r| r.nova_network_floating_ips.clone()).collect::<Vec<_>>();
        for fip in addresses {
            let action = match nova_network_step(&fip, &source_id, Some(&server_id), target) {
                NovaNetworkStep::Done => continue,
                NovaNetworkStep::Unavailable(problem) => return self.fail("AddressesNotMoved", problem),
                NovaNetworkStep::CreateRange { ip_range, pool, interface } => {
                    Action::CreateFloatingIpRange { ip_range, pool, interface }
                }
                NovaNetworkStep::Allocate { pool } => Action::AllocateFloatingIp { pool },
                NovaNetworkStep::Associate => Action::AddFloatingIp { server_id, address: fip.address },
            };
            if self.timed_out(MigrationPhase::MovingAddresses) {
                return;
            }
            // One change at a time: each is seen by the next observation before the next.
            self.action = Some(action);
            return self.poll();
        }
        self.advance(MigrationPhase::MovingAddresses);
    }
}
