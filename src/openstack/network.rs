//! Neutron v2.0: ports, floating IPs, networks and subnets.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::compute::{ignore_not_found, query_value};
use super::error::{Error, Service};
use super::session::{Request, Retry, Session};

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub network_id: String,
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub device_id: String,
    /// `compute:<zone>` for a port Nova created or bound.
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "binding:host_id")]
    pub host: Option<String>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Absent without the `port-security` extension.
    #[serde(default)]
    pub port_security_enabled: Option<bool>,
    #[serde(default)]
    pub qos_policy_id: Option<String>,
    #[serde(default, rename = "binding:vnic_type")]
    pub vnic_type: Option<String>,
    #[serde(default)]
    pub extra_dhcp_opts: Vec<DhcpOption>,
    /// Absent without the `dns-integration` extension.
    #[serde(default)]
    pub dns_name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, serde::Serialize)]
pub struct AddressPair {
    pub ip_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, serde::Serialize)]
pub struct DhcpOption {
    pub opt_name: String,
    pub opt_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, serde::Serialize)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
    #[serde(default)]
    pub status: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default, rename = "router:external")]
    pub external: bool,
    #[serde(default)]
    pub shared: bool,
    /// The owning project.
    #[serde(default)]
    pub project_id: Option<String>,
}

impl Network {
    /// Whether a server of `project` may use it: the project's own, shared or external.
    pub fn usable_by(&self, project: &str) -> bool {
        self.shared || self.external || self.project_id.as_deref() == Some(project)
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub cidr: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
}

/// A new port. Attributes left at Neutron's default are not sent, so that a Neutron without
/// their extension (or a policy that reserves them) is not asked for them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortCreate {
    pub network_id: String,
    pub name: String,
    /// Carries an idempotency key: a retry looks for a port with this description first.
    pub description: String,
    pub fixed_ips: Vec<FixedIp>,
    /// Setting the MAC address needs an admin.
    pub mac_address: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub port_security_enabled: Option<bool>,
    pub qos_policy_id: Option<String>,
    pub vnic_type: Option<String>,
    pub extra_dhcp_opts: Vec<DhcpOption>,
    pub dns_name: Option<String>,
}

impl PortCreate {
    /// The body of `POST /v2.0/ports`.
    fn body(&self) -> serde_json::Value {
        let mut port = json!({"network_id": self.network_id, "name": self.name, "description": self.description});
        // An empty list would make a port without any address; leave the choice to Neutron.
        if !self.fixed_ips.is_empty() {
            port["fixed_ips"] = json!(self.fixed_ips);
        }
        if let Some(mac) = &self.mac_address {
            port["mac_address"] = json!(mac);
        }
        if let Some(groups) = &self.security_groups {
            port["security_groups"] = json!(groups);
        }
        if !self.allowed_address_pairs.is_empty() {
            port["allowed_address_pairs"] = json!(self.allowed_address_pairs);
        }
        if let Some(enabled) = self.port_security_enabled {
            port["port_security_enabled"] = json!(enabled);
        }
        if let Some(policy) = &self.qos_policy_id {
            port["qos_policy_id"] = json!(policy);
        }
        if let Some(vnic_type) = &self.vnic_type {
            port["binding:vnic_type"] = json!(vnic_type);
        }
        if !self.extra_dhcp_opts.is_empty() {
            port["extra_dhcp_opts"] = json!(self.extra_dhcp_opts);
        }
        if let Some(dns_name) = &self.dns_name {
            port["dns_name"] = json!(dns_name);
        }
        json!({"port": port})
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct QosPolicy {
    pub id: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Extension {
    pub alias: String,
}

/// Neutron, through a session.
pub struct Networking<'a> {
    session: &'a Session,
}

impl Session {
    pub fn network(&self) -> Networking<'_> {
        Networking { session: self }
    }
}

/// Query filters, e.g. `[("device_id", id)]`.
fn query(filters: &[(&str, &str)]) -> String {
    let pairs: Vec<_> = filters.iter().map(|(k, v)| format!("{k}={}", query_value(v))).collect();
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

impl Networking<'_> {
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<T>, Error> {
        let path = format!("/v2.0/{collection}{}", query(filters));
        let body: serde_json::Value =
            self.session.send(Request::new(Service::Network, Method::GET, path.clone())).await?.json()?;
        // The body names the collection by its last segment, with underscores
        // (`security-groups` → `security_groups`, `qos/policies` → `policies`).
        let key = collection.rsplit('/').next().unwrap_or(collection).replace('-', "_");
        serde_json::from_value(body[key].clone()).map_err(|e| Error::Decode {
            service: Service::Network,
            path,
            message: e.to_string(),
        })
    }

    /// Ports matching the filters (e.g. `device_id`, `network_id`, `fixed_ips=ip_address=..`).
    pub async fn ports(&self, filters: &[(&str, &str)]) -> Result<Vec<Port>, Error> {
        self.list("ports", filters).await
    }

    /// Security groups matching the filters (e.g. `project_id`, or `shared=True` for those
    /// shared with the session's project by RBAC).
    pub async fn security_groups(&self, filters: &[(&str, &str)]) -> Result<Vec<SecurityGroup>, Error> {
        let mut filters = filters.to_vec();
        // Only these are needed: Neutron then leaves out every group's rules.
        filters.extend([("fields", "id"), ("fields", "name")]);
        self.list("security-groups", &filters).await
    }

    /// Creates a port; after a transient failure, looks for a port with the same description
    /// on the network before trying again, so no twin is made.
    pub async fn create_port(&self, spec: &PortCreate) -> Result<Port, Error> {
        let request = Request::new(Service::Network, Method::POST, "/v2.0/ports").json(spec.body());
        #[derive(Deserialize)]
        struct Body {
            port: Port,
        }
        self.session
            .create_once(
                &request,
                || async {
                    let same =
                        self.ports(&[("network_id", &spec.network_id), ("description", &spec.description)]).await?;
                    Ok(same.into_iter().next())
                },
                |response| Ok(response.json::<Body>()?.port),
            )
            .await
    }

    /// Sets a port's description (idempotent).
    pub async fn set_port_description(&self, id: &str, description: &str) -> Result<(), Error> {
        let request = Request::new(Service::Network, Method::PUT, format!("/v2.0/ports/{id}"))
            .json(json!({"port": {"description": description}}));
        self.session.send(request).await.map(|_| ())
    }

    /// Replaces a port's tags (`standard-attr-tag`; idempotent).
    pub async fn set_port_tags(&self, id: &str, tags: &[String]) -> Result<(), Error> {
        let request =
            Request::new(Service::Network, Method::PUT, format!("/v2.0/ports/{id}/tags")).json(json!({"tags": tags}));
        self.session.send(request).await.map(|_| ())
    }

    /// The aliases of the extensions this Neutron loaded (`allowed-address-pairs`, `qos`...).
    pub async fn extensions(&self) -> Result<Vec<Extension>, Error> {
        self.list("extensions", &[]).await
    }

    /// QoS policies matching the filters (e.g. `id`), as the session's project sees them.
    pub async fn qos_policies(&self, filters: &[(&str, &str)]) -> Result<Vec<QosPolicy>, Error> {
        self.list("qos/policies", filters).await
    }

    /// Deletes a port; one already gone is not an error.
    pub async fn delete_port(&self, id: &str) -> Result<(), Error> {
        ignore_not_found(
            self.session.send(Request::new(Service::Network, Method::DELETE, format!("/v2.0/ports/{id}"))).await,
        )
    }

    pub async fn floating_ips(&self, filters: &[(&str, &str)]) -> Result<Vec<FloatingIp>, Error> {
        self.list("floatingips", filters).await
    }

    /// A floating IP, or `None` when it does not exist.
    pub async fn floating_ip(&self, id: &str) -> Result<Option<FloatingIp>, Error> {
        #[derive(Deserialize)]
        struct Body {
            floatingip: FloatingIp,
        }
        match self.session.send(Request::new(Service::Network, Method::GET, format!("/v2.0/floatingips/{id}"))).await {
            Ok(r) => Ok(Some(r.json::<Body>()?.floatingip)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Associates a floating IP with a port (and one of its fixed IPs), or disassociates it
    /// with `None`. Idempotent: the same PUT twice leaves the same state.
    pub async fn update_floating_ip(
        &self,
        id: &str,
        port_id: Option<&str>,
        fixed_ip: Option<&str>,
    ) -> Result<FloatingIp, Error> {
        let mut update = json!({"port_id": port_id});
        if let Some(ip) = fixed_ip {
            update["fixed_ip_address"] = json!(ip);
        }
        let request = Request::new(Service::Network, Method::PUT, format!("/v2.0/floatingips/{id}"))
            .json(json!({"floatingip": update}));
        #[derive(Deserialize)]
        struct Body {
            floatingip: FloatingIp,
        }
        Ok(self.session.send(request).await?.json::<Body>()?.floatingip)
    }

    /// Allocates a floating IP on an external network, with a given address when `address`
    /// is set (admin). Repeating it with an address is safe: the second attempt gets a 409,
    /// after which the address is looked up.
    pub async fn create_floating_ip(&self, network_id: &str, address: Option<&str>) -> Result<FloatingIp, Error> {
        let mut fip = json!({"floating_network_id": network_id});
        if let Some(address) = address {
            fip["floating_ip_address"] = json!(address);
        }
        let retry = if address.is_some() { Retry::Idempotent } else { Retry::Never };
        let request = Request::new(Service::Network, Method::POST, "/v2.0/floatingips")
            .json(json!({"floatingip": fip}))
            .retry(retry);
        #[derive(Deserialize)]
        struct Body {
            floatingip: FloatingIp,
        }
        match self.session.send(request).await {
            Ok(r) => Ok(r.json::<Body>()?.floatingip),
            Err(e) if e.status() == Some(409) && address.is_some() => {
                let existing = self.floating_ips(&[("floating_ip_address", address.unwrap_or_default())]).await?;
                existing.into_iter().next().ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn delete_floating_ip(&self, id: &str) -> Result<(), Error> {
        ignore_not_found(
            self.session.send(Request::new(Service::Network, Method::DELETE, format!("/v2.0/floatingips/{id}"))).await,
        )
    }

    pub async fn networks(&self, filters: &[(&str, &str)]) -> Result<Vec<Network>, Error> {
        self.list("networks", filters).await
    }

    /// A network by id or, failing that, by name.
    pub async fn find_network(&self, id_or_name: &str) -> Result<Option<Network>, Error> {
        if let Some(by_id) = self.networks(&[("id", id_or_name)]).await?.into_iter().next() {
            return Ok(Some(by_id));
        }
        Ok(self.networks(&[("name", id_or_name)]).await?.into_iter().next())
    }

    pub async fn subnets(&self, filters: &[(&str, &str)]) -> Result<Vec<Subnet>, Error> {
        self.list("subnets", filters).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_an_encoded_query() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("device_id", "a b"), ("fixed_ips", "ip_address=10.0.0.1")]),
            "?device_id=a+b&fixed_ips=ip_address%3D10.0.0.1"
        );
    }

    #[test]
    fn ports_decode_binding_and_fixed_ips() {
        let port: Port = serde_json::from_value(json!({
            "id": "p1", "name": "", "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "198.51.100.5"}], "device_id": "srv",
            "device_owner": "compute:havana", "security_groups": ["sg"], "status": "ACTIVE",
            "binding:host_id": "havana-1", "admin_state_up": true
        }))
        .unwrap();
        assert_eq!(port.fixed_ips[0].ip_address, "198.51.100.5");
        assert_eq!(port.host.as_deref(), Some("havana-1"));
    }
}
