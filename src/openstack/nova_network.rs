//! Legacy nova-network floating IPs, for clouds that still run nova-network. Nova removed
//! these APIs (404 from microversion 2.36, 410 once nova-network was gone), so every call
//! pins microversion 2.1 and reports 404/410 as [`Error::NovaNetworkUnavailable`].
//!
//! nova-network cannot allocate a chosen address: the way to get one back is to create a pool
//! holding exactly that address with `os-floating-ips-bulk` (a /32 range), allocate from that
//! pool, and associate it with `addFloatingIp`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::compute::string_or_number;
use super::error::{Error, Service};
use super::session::{Microversion, Request, Retry, Session};

const LEGACY: Microversion = Microversion(2, 1);

/// An entry of `os-floating-ips-bulk`: an address of a pool, allocated or not.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct BulkFloatingIp {
    pub address: String,
    pub pool: String,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub instance_uuid: Option<String>,
    #[serde(default)]
    pub fixed_ip: Option<String>,
}

/// A floating IP allocated to the project (`os-floating-ips`).
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct LegacyFloatingIp {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub ip: String,
    pub pool: String,
    #[serde(default)]
    pub fixed_ip: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// nova-network through a session.
pub struct NovaNetwork<'a> {
    session: &'a Session,
}

impl Session {
    pub fn nova_network(&self) -> NovaNetwork<'_> {
        NovaNetwork { session: self }
    }
}

impl NovaNetwork<'_> {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        retry: Retry,
    ) -> Result<serde_json::Value, Error> {
        let mut request = Request::new(Service::Compute, method, path);
        if self.session.compute_microversion().await?.is_some() {
            request = request.microversion(LEGACY);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        match self.session.send(request.retry(retry)).await {
            Ok(r) if r.body.is_empty() => Ok(serde_json::Value::Null),
            Ok(r) => r.json(),
            Err(Error::Api { status: status @ (404 | 410), .. }) if path.starts_with("/os-floating-ip") => {
                Err(Error::NovaNetworkUnavailable { path: path.to_string(), status })
            }
            Err(e) => Err(e),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(path: &str, value: serde_json::Value) -> Result<T, Error> {
        serde_json::from_value(value).map_err(|e| Error::Decode {
            service: Service::Compute,
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Every address of every pool (admin).
    pub async fn bulk_floating_ips(&self) -> Result<Vec<BulkFloatingIp>, Error> {
        let body = self.send(Method::GET, "/os-floating-ips-bulk", None, Retry::Idempotent).await?;
        Self::decode("/os-floating-ips-bulk", body["floating_ip_info"].clone())
    }

    /// Adds the addresses of `ip_range` (CIDR; a /32 for one address) to `pool` (admin).
    /// Repeating it fails with 409 for addresses that exist, so it is not retried blindly.
    pub async fn create_bulk(&self, ip_range: &str, pool: &str, interface: Option<&str>) -> Result<(), Error> {
        let mut create = json!({"ip_range": ip_range, "pool": pool});
        if let Some(interface) = interface {
            create["interface"] = json!(interface);
        }
        self.send(
            Method::POST,
            "/os-floating-ips-bulk",
            Some(json!({"floating_ips_bulk_create": create})),
            Retry::Never,
        )
        .await?;
        Ok(())
    }

    /// The floating IPs allocated to the session's project.
    pub async fn floating_ips(&self) -> Result<Vec<LegacyFloatingIp>, Error> {
        let body = self.send(Method::GET, "/os-floating-ips", None, Retry::Idempotent).await?;
        Self::decode("/os-floating-ips", body["floating_ips"].clone())
    }

    /// Allocates an address from a pool to the project.
    pub async fn allocate(&self, pool: &str) -> Result<LegacyFloatingIp, Error> {
        let body = self.send(Method::POST, "/os-floating-ips", Some(json!({"pool": pool})), Retry::Never).await?;
        Self::decode("/os-floating-ips", body["floating_ip"].clone())
    }

    /// Releases an allocated address.
    pub async fn release(&self, id: &str) -> Result<(), Error> {
        self.send(Method::DELETE, &format!("/os-floating-ips/{id}"), None, Retry::Idempotent).await.map(|_| ())
    }

    /// Associates an allocated address with a server (and one of its fixed IPs).
    pub async fn add_to_server(
        &self,
        server_id: &str,
        address: &str,
        fixed_address: Option<&str>,
    ) -> Result<(), Error> {
        let mut add = json!({"address": address});
        if let Some(fixed) = fixed_address {
            add["fixed_address"] = json!(fixed);
        }
        self.send(
            Method::POST,
            &format!("/servers/{server_id}/action"),
            Some(json!({"addFloatingIp": add})),
            Retry::Idempotent,
        )
        .await
        .map(|_| ())
    }

    pub async fn remove_from_server(&self, server_id: &str, address: &str) -> Result<(), Error> {
        self.send(
            Method::POST,
            &format!("/servers/{server_id}/action"),
            Some(json!({"removeFloatingIp": {"address": address}})),
            Retry::Idempotent,
        )
        .await
        .map(|_| ())
    }
}
