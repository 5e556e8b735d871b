//! The replacement's ports are made from the source's records: what a recorded port carries
//! that the target cannot reproduce is refused at Recording, before anything changes.

use super::{Planner, TargetView};
use crate::api::{RecordedPort, RecordedServer, Strategy};
use crate::runtime::conditions::Refusal;

/// The Neutron extensions that making a port like `port` needs, for what it carries beyond
/// Neutron's defaults.
pub fn needed_extensions(port: &RecordedPort) -> Vec<&'static str> {
    let needs = [
        (!port.allowed_address_pairs.is_empty(), "allowed-address-pairs"),
        (port.port_security_enabled.is_some(), "port-security"),
        (port.qos_policy_id.is_some(), "qos"),
        (port.vnic_type.is_some(), "binding"),
        (!port.extra_dhcp_opts.is_empty(), "extra_dhcp_opt"),
        (port.dns_name.is_some(), "dns-integration"),
        (!port.tags.is_empty(), "standard-attr-tag"),
    ];
    needs.into_iter().filter(|(needed, _)| *needed).map(|(_, extension)| extension).collect()
}

impl Planner<'_> {
    /// What of a recorded port the target cannot give the replacement's port: an extension its
    /// attributes need, a QoS policy or a security group the target does not show (another
    /// cloud's Neutron), or, with `preserveFixedIPs`, a fixed IP's subnet that the network it
    /// moves to lacks.
    pub(super) fn unreproducible_port(&self, record: &RecordedServer, view: &TargetView) -> Option<Refusal> {
        let keep_addresses =
            self.strategy() == Strategy::Snapshot && self.input.spec.options.addresses.preserve_fixed_ips;
        for port in &record.ports {
            let refuse = |reason, what: String| {
                Some(Refusal {
                    reason,
                    message: format!(
                        "source port {} {what}: its replacement port could not be made like it. Make it available \
                         in the target, or change the port.",
                        port.id
                    ),
                })
            };
            if let Some(support) = &view.port_support {
                let missing: Vec<_> =
                    needed_extensions(port).into_iter().filter(|e| !support.extensions.contains(*e)).collect();
                if !missing.is_empty() {
                    let what = format!("needs the Neutron extensions {}, which the target lacks", missing.join(", "));
                    return refuse("PortAttributeUnsupported", what);
                }
                if let Some(policy) = port.qos_policy_id.as_ref().filter(|p| !support.qos_policies.contains(*p)) {
                    return refuse(
                        "QosPolicyNotFound",
                        format!("has QoS policy {policy}, which the target does not show"),
                    );
                }
                if let Some(group) = port.security_groups.iter().find(|g| !support.security_groups.contains(*g)) {
                    let what = format!("is in security group {group}, which the target does not show");
                    return refuse("SecurityGroupNotFound", what);
                }
            }
            let subnets = view.network_subnets.get(&port.network_id);
            if let (true, Some(subnets)) = (keep_addresses, subnets)
                && let Some(fixed) = port.fixed_ips.iter().find(|f| !subnets.contains(&f.subnet_id))
            {
                let what = format!(
                    "has fixed IP {} on subnet {}, which the network it moves to lacks \
                     (spec.addresses.preserveFixedIPs)",
                    fixed.ip_address, fixed.subnet_id
                );
                return refuse("SubnetNotFound", what);
            }
        }
        None
    }
}
