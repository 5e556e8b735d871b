//! Nova: compute services, servers, flavors, snapshots. Microversion-aware: the newest
//! microversion both sides support is used, with the older forms where the API changed.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::error::{Error, Service};
use super::session::{Microversion, Request, Response, Retry, Session};
use super::states::{ServerStatus, ServiceStatus};

/// The newest Nova microversion osmo has been tested against.
pub const NEWEST_SUPPORTED: Microversion = Microversion(2, 95);
/// From this microversion services are addressed by UUID (`PUT /os-services/{id}`).
const SERVICES_BY_UUID: Microversion = Microversion(2, 53);
/// From this microversion createImage returns the image id in the body.
const CREATE_IMAGE_BODY: Microversion = Microversion(2, 45);
/// From this microversion a service can be forced down.
const FORCE_DOWN: Microversion = Microversion(2, 11);
/// From this microversion a server can be booted on a named host.
const BOOT_ON_HOST: Microversion = Microversion(2, 74);
/// From this microversion a lock carries a reason.
const LOCK_REASON: Microversion = Microversion(2, 73);
/// From this microversion `networks` must be given (`auto`/`none` or a list).
const NETWORKS_REQUIRED: Microversion = Microversion(2, 37);
/// From this microversion a server has a description.
pub const DESCRIPTION: Microversion = Microversion(2, 19);
/// From this microversion a server is booted with its tags (Nova shows them from 2.26).
pub const BOOT_WITH_TAGS: Microversion = Microversion(2, 52);
/// From this microversion a server is booted with a hostname of its own.
pub const BOOT_WITH_HOSTNAME: Microversion = Microversion(2, 90);
/// From this microversion a server's block devices are booted with their tags (2.32 took
/// them too; 2.33 to 2.41 did not).
pub const BOOT_WITH_DEVICE_TAGS: Microversion = Microversion(2, 42);
/// The one older microversion that took tags on block devices.
const BOOT_WITH_DEVICE_TAGS_ONCE: Microversion = Microversion(2, 32);
/// From this microversion a volume is attached with a tag.
pub const ATTACH_WITH_TAG: Microversion = Microversion(2, 49);
/// From this microversion a volume is attached with `delete_on_termination`.
pub const ATTACH_WITH_DELETE_ON_TERMINATION: Microversion = Microversion(2, 79);
/// From this microversion an attached volume's `delete_on_termination` can be changed.
pub const UPDATE_DELETE_ON_TERMINATION: Microversion = Microversion(2, 85);

/// A nova-compute (or other Nova) service record.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct ComputeService {
    /// An integer before microversion 2.53, a UUID after. Empty in the record of a cell that
    /// does not answer (see [`cell_down`](Self::cell_down)).
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: String,
    pub binary: String,
    pub host: String,
    #[serde(default)]
    pub zone: Option<String>,
    /// `enabled` or `disabled`; `UNKNOWN` when the host's cell does not answer.
    pub status: String,
    /// `up` or `down`; empty when the host's cell does not answer.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(default)]
    pub forced_down: Option<bool>,
}

impl ComputeService {
    /// From microversion 2.69, a service of a cell that does not answer is listed with only
    /// its host, binary and status `UNKNOWN`: nothing else about the host can be known then.
    pub fn cell_down(&self) -> bool {
        ServiceStatus::from(self.status.as_str()) == ServiceStatus::Unknown
    }
}

/// Servers as a listing returned them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerListing {
    pub servers: Vec<Server>,
    /// The IDs of servers Nova listed only partly, with status `UNKNOWN` and few fields: from
    /// microversion 2.69, a cell that does not answer gives such records (for listings without
    /// filters or paging; others skip that cell's servers silently). Their host is not known.
    pub partial: Vec<String>,
}

/// A server, with the admin attributes osmo records.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default, rename = "OS-EXT-SRV-ATTR:host")]
    pub host: Option<String>,
    #[serde(default, rename = "OS-EXT-AZ:availability_zone")]
    pub availability_zone: Option<String>,
    #[serde(default, rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
    #[serde(default, rename = "OS-EXT-STS:vm_state")]
    pub vm_state: Option<String>,
    pub flavor: ServerFlavor,
    /// Absent (an empty string in Nova's answer) for a server booted from a volume.
    #[serde(default, rename = "image", deserialize_with = "image_ref")]
    pub image_id: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub security_groups: Vec<NamedRef>,
    #[serde(default)]
    pub fault: Option<Fault>,
    /// Locked against changes by non-admins (microversion 2.9 or newer).
    #[serde(default)]
    pub locked: Option<bool>,
    /// Why, as whoever locked it said (microversion 2.73 or newer).
    #[serde(default)]
    pub locked_reason: Option<String>,
    /// Microversion 2.19 or newer.
    #[serde(default)]
    pub description: Option<String>,
    /// Microversion 2.26 or newer.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub config_drive: bool,
    /// The device of its root disk, e.g. `/dev/vda` (admins, microversion 2.3 or newer): of a
    /// server booted from a volume, the root volume's.
    #[serde(default, rename = "OS-EXT-SRV-ATTR:root_device_name")]
    pub root_device_name: Option<String>,
    /// Shown to admins (by Nova's default policy) from microversion 2.3.
    #[serde(default, rename = "OS-EXT-SRV-ATTR:hostname")]
    pub hostname: Option<String>,
    /// `None` when Nova does not show it (to admins only by its default policy, from
    /// microversion 2.3): whether the server has user data is then not known.
    #[serde(default, rename = "OS-EXT-SRV-ATTR:user_data", deserialize_with = "shown")]
    pub user_data: Option<Option<UserData>>,
}

/// A server's user data, base64 as Nova takes and shows it. It may hold secrets (passwords,
/// tokens for cloud-init): `Debug` shows only its size, so that it never reaches a log.
#[derive(Deserialize, Clone, PartialEq, Eq)]
pub struct UserData(pub String);

impl std::fmt::Debug for UserData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserData({} bytes)", self.0.len())
    }
}

/// A server group: its members are placed by its policy (`affinity`, `anti-affinity`,
/// `soft-affinity`, `soft-anti-affinity`).
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    /// Microversion 2.64 or newer.
    #[serde(default)]
    policy: Option<String>,
    /// Before microversion 2.64: a list of one.
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub project_id: Option<String>,
}

impl ServerGroup {
    pub fn policy(&self) -> &str {
        self.policy.as_deref().or(self.policies.first().map(String::as_str)).unwrap_or_default()
    }
}

/// The server's flavor: an id before microversion 2.47; after, the flavor's name and sizes
/// (as the server was booted with them).
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct ServerFlavor {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub original_name: Option<String>,
    /// Root disk, GiB.
    #[serde(default)]
    pub disk: Option<u64>,
    /// Ephemeral disk, GiB.
    #[serde(default)]
    pub ephemeral: Option<u64>,
    /// Memory, MiB.
    #[serde(default)]
    pub ram: Option<u64>,
    #[serde(default)]
    pub vcpus: Option<u32>,
    /// Swap, MiB.
    #[serde(default)]
    pub swap: Option<u64>,
    /// Shown to admins (by Nova's default policy).
    #[serde(default)]
    pub extra_specs: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct NamedRef {
    pub name: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Fault {
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub vcpus: u32,
    #[serde(default)]
    pub ram: u64,
    #[serde(default)]
    pub disk: u64,
    #[serde(default, rename = "OS-FLV-EXT-DATA:ephemeral")]
    pub ephemeral: u64,
    /// MiB; Nova shows none as an empty string.
    #[serde(default, deserialize_with = "swap")]
    pub swap: u64,
    /// Microversion 2.61 or newer, to whom Nova's policy shows them.
    #[serde(default)]
    pub extra_specs: Option<BTreeMap<String, String>>,
}

/// A key pair. Nova keeps key pairs per user: another user, even of the same project, sees
/// none of them.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct KeyPair {
    pub name: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// A project's absolute limits in Nova (`GET /limits`): each maximum is -1 when unlimited.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AbsoluteLimits {
    #[serde(default = "unlimited")]
    pub max_total_instances: i64,
    #[serde(default)]
    pub total_instances_used: i64,
    #[serde(default = "unlimited")]
    pub max_total_cores: i64,
    #[serde(default)]
    pub total_cores_used: i64,
    /// MiB.
    #[serde(default = "unlimited", rename = "maxTotalRAMSize")]
    pub max_total_ram_size: i64,
    /// MiB.
    #[serde(default, rename = "totalRAMUsed")]
    pub total_ram_used: i64,
}

/// A limit Nova does not show does not limit.
fn unlimited() -> i64 {
    -1
}

/// A volume attachment of a server, as Nova shows it at the session's microversion.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct VolumeAttachment {
    #[serde(rename = "volumeId")]
    pub volume_id: String,
    #[serde(default)]
    pub device: Option<String>,
    /// Shown from microversion 2.79.
    #[serde(default)]
    pub delete_on_termination: Option<bool>,
    /// Shown from microversion 2.70 (`None` also when the attachment has none).
    #[serde(default)]
    pub tag: Option<String>,
    /// The Cinder attachment's ID, shown from microversion 2.89.
    #[serde(default)]
    pub attachment_id: Option<String>,
}

/// An existing volume, as a new server boots with it or as it is attached to a server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockDevice {
    pub volume_id: String,
    /// 0 for the volume the server boots from; `None` for a volume it does not boot from.
    /// Nova takes it at boot only.
    pub boot_index: Option<i32>,
    /// A device name such as `/dev/vdb`, which the hypervisor may or may not honour.
    pub device_name: Option<String>,
    pub tag: Option<String>,
    /// Whether Nova deletes the volume with the server.
    pub delete_on_termination: bool,
}

impl BlockDevice {
    fn is_root(&self) -> bool {
        self.boot_index == Some(0)
    }
}

/// What a new server is made of.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ServerCreate {
    pub name: String,
    pub image_id: String,
    pub flavor_id: String,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub availability_zone: Option<String>,
    /// A specific compute host (admin; microversion 2.74 or newer).
    pub host: Option<String>,
    pub networks: Vec<NetworkAttachment>,
    /// The metadata key whose value marks this server as the one this create made.
    pub idempotency_key: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub config_drive: bool,
    pub hostname: Option<String>,
    pub user_data: Option<UserData>,
    /// The server group to join (scheduler hint `group`).
    pub server_group: Option<String>,
    /// Existing volumes to boot with; one with boot index 0 is the root disk, and then
    /// `image_id` is empty.
    pub block_devices: Vec<BlockDevice>,
}

/// The metadata only by its size: it is the tenant's, kept in the migration's status, and
/// `Debug` reaches the logs (each change is logged at info level).
impl std::fmt::Debug for ServerCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ServerCreate {
            name,
            image_id,
            flavor_id,
            key_name,
            security_groups,
            metadata,
            availability_zone,
            host,
            networks,
            idempotency_key,
            description,
            tags,
            config_drive,
            hostname,
            user_data,
            server_group,
            block_devices,
        } = self;
        f.debug_struct("ServerCreate")
            .field("name", name)
            .field("image_id", image_id)
            .field("flavor_id", flavor_id)
            .field("key_name", key_name)
            .field("security_groups", security_groups)
            .field("metadata", &format_args!("{} keys", metadata.len()))
            .field("availability_zone", availability_zone)
            .field("host", host)
            .field("networks", networks)
            .field("idempotency_key", idempotency_key)
            .field("description", description)
            .field("tags", tags)
            .field("config_drive", config_drive)
            .field("hostname", hostname)
            .field("user_data", user_data)
            .field("server_group", server_group)
            .field("block_devices", block_devices)
            .finish()
    }
}

/// How a new server joins a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkAttachment {
    /// On an existing port, with its fixed IPs, MAC and floating IPs.
    Port(String),
    /// On a network, optionally with a given fixed IP.
    Network { id: String, fixed_ip: Option<String> },
    /// On the network Nova gives the project (nova-network, or Neutron's auto-allocation).
    Auto,
}

/// Nova, through a session.
pub struct Compute<'a> {
    session: &'a Session,
}

impl Session {
    pub fn compute(&self) -> Compute<'_> {
        Compute { session: self }
    }
}

impl Compute<'_> {
    async fn version(&self) -> Result<Option<Microversion>, Error> {
        self.session.compute_microversion().await
    }

    async fn request(&self, method: Method, path: impl Into<String>) -> Result<Request, Error> {
        let request = Request::new(Service::Compute, method, path);
        Ok(match self.version().await? {
            Some(v) => request.microversion(v),
            None => request,
        })
    }

    async fn send(&self, request: Request) -> Result<Response, Error> {
        self.session.send(request).await
    }

    /// The nova-compute services, of one host or of all.
    pub async fn compute_services(&self, host: Option<&str>) -> Result<Vec<ComputeService>, Error> {
        let mut path = "/os-services?binary=nova-compute".to_string();
        if let Some(host) = host {
            path.push_str(&format!("&host={}", query_value(host)));
        }
        #[derive(Deserialize)]
        struct Body {
            services: Vec<ComputeService>,
        }
        let body: Body = self.send(self.request(Method::GET, path).await?).await?.json()?;
        Ok(body.services)
    }

    /// Disables a service with a reason, so that the scheduler places nothing new there.
    pub async fn disable_service(&self, service: &ComputeService, reason: &str) -> Result<ComputeService, Error> {
        self.update_service(
            service,
            json!({"status": "disabled", "disabled_reason": reason}),
            "disable-log-reason",
            json!({"disabled_reason": reason}),
        )
        .await
    }

    pub async fn enable_service(&self, service: &ComputeService) -> Result<ComputeService, Error> {
        self.update_service(service, json!({"status": "enabled"}), "enable", json!({})).await
    }

    /// Marks a service down at once instead of waiting for its heartbeat to stop counting.
    pub async fn force_down_service(
        &self,
        service: &ComputeService,
        forced_down: bool,
    ) -> Result<ComputeService, Error> {
        if self.version().await?.is_none_or(|v| v < FORCE_DOWN) {
            return Err(Error::Unsupported("forcing a service down needs Nova microversion 2.11 or newer".into()));
        }
        self.update_service(
            service,
            json!({"forced_down": forced_down}),
            "force-down",
            json!({"forced_down": forced_down}),
        )
        .await
    }

    /// `PUT /os-services/{id}` from microversion 2.53; before, `PUT /os-services/{action}`
    /// with host and binary.
    async fn update_service(
        &self,
        service: &ComputeService,
        by_uuid: serde_json::Value,
        legacy_action: &str,
        mut legacy: serde_json::Value,
    ) -> Result<ComputeService, Error> {
        let uuid_api = self.version().await?.is_some_and(|v| v >= SERVICES_BY_UUID);
        let request = if uuid_api {
            self.request(Method::PUT, format!("/os-services/{}", service.id)).await?.json(by_uuid)
        } else {
            legacy["host"] = json!(service.host);
            legacy["binary"] = json!(service.binary);
            self.request(Method::PUT, format!("/os-services/{legacy_action}")).await?.json(legacy)
        };
        let response = self.send(request).await?;
        #[derive(Deserialize)]
        struct Body {
            service: serde_json::Value,
        }
        let body: Body = response.json()?;
        // The legacy answer is partial ({host, binary, status, ...}): merge it into what we had.
        let mut merged = serde_json::to_value(ServiceJson::from(service)).expect("serializable");
        if let (Some(m), Some(answer)) = (merged.as_object_mut(), body.service.as_object()) {
            for (k, v) in answer {
                m.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(merged).map_err(|e| Error::Decode {
            service: Service::Compute,
            path: "/os-services".into(),
            message: e.to_string(),
        })
    }

    /// Deletes a service record (after its host is empty and its process stopped).
    pub async fn delete_service(&self, service: &ComputeService) -> Result<(), Error> {
        ignore_not_found(self.send(self.request(Method::DELETE, format!("/os-services/{}", service.id)).await?).await)
    }

    /// Every server Nova lists for a compute host, of all projects. The caller checks each
    /// one's `host` and the partial records.
    pub async fn servers_on_host(&self, host: &str) -> Result<ServerListing, Error> {
        self.list_servers(&format!("all_tenants=1&host={}", query_value(host))).await
    }

    /// A server by ID (of any project the credentials may see) or, failing that, the servers of
    /// the credentials' own project named exactly so.
    pub async fn find_server(&self, id_or_name: &str) -> Result<Vec<Server>, Error> {
        if let Some(server) = self.server(id_or_name).await? {
            return Ok(vec![server]);
        }
        // A name is looked up in the credentials' own project only: names are not unique across
        // projects, and another project's server that happens to be visible must be named by ID.
        self.servers_named(id_or_name).await
    }

    /// Servers of the session's project whose name is exactly `name`.
    pub async fn servers_named(&self, name: &str) -> Result<Vec<Server>, Error> {
        let path = format!("name={}", query_value(&format!("^{}$", regex_escape(name))));
        let listing = self.list_servers(&path).await?;
        if let Some(id) = listing.partial.first() {
            // A partial record has no name: it might be the one looked for.
            let message = format!("server {id} is listed partly (status UNKNOWN): its cell does not answer");
            return Err(Error::Decode { service: Service::Compute, path, message });
        }
        Ok(listing.servers.into_iter().filter(|s| s.name == name).collect())
    }

    /// Lists servers page by page, following Nova's `next` link: Nova caps a page at its
    /// `max_limit`, which may be below the `limit` asked for, so a short page is not the last
    /// one as long as Nova links a next one.
    async fn list_servers(&self, filter: &str) -> Result<ServerListing, Error> {
        const PAGE: usize = 500;
        #[derive(Deserialize)]
        struct Body {
            servers: Vec<serde_json::Value>,
            #[serde(default)]
            servers_links: Vec<Link>,
        }
        #[derive(Deserialize)]
        struct Link {
            rel: String,
        }
        let mut listing = ServerListing::default();
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!("/servers/detail?{filter}&limit={PAGE}");
            if let Some(last) = &marker {
                path.push_str(&format!("&marker={last}"));
            }
            let response = self.send(self.request(Method::GET, path).await?).await?;
            let page: Body = response.json()?;
            let linked = page.servers_links.iter().any(|l| l.rel == "next");
            let more = !page.servers.is_empty() && (linked || page.servers.len() >= PAGE);
            for record in page.servers {
                let id = record.get("id").and_then(|id| id.as_str()).map(str::to_string);
                marker = id.clone().or(marker);
                match id {
                    Some(id)
                        if record.get("status").and_then(|s| s.as_str()).map(ServerStatus::from)
                            == Some(ServerStatus::Unknown) =>
                    {
                        listing.partial.push(id)
                    }
                    _ => listing.servers.push(serde_json::from_value(record).map_err(|e| Error::Decode {
                        service: Service::Compute,
                        path: format!("/servers/detail?{filter}"),
                        message: e.to_string(),
                    })?),
                }
            }
            if !more {
                return Ok(listing);
            }
        }
    }

    /// A server, or `None` when it does not exist (any more).
    pub async fn server(&self, id: &str) -> Result<Option<Server>, Error> {
        #[derive(Deserialize)]
        struct Body {
            server: Server,
        }
        match self.send(self.request(Method::GET, format!("/servers/{id}")).await?).await {
            Ok(r) => Ok(Some(r.json::<Body>()?.server)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks Nova to stop a server. Repeating it is harmless (Nova refuses with 409 once it
    /// is stopped), so it is retried like a read.
    pub async fn stop_server(&self, id: &str) -> Result<(), Error> {
        self.action(id, json!({"os-stop": null})).await
    }

    pub async fn start_server(&self, id: &str) -> Result<(), Error> {
        self.action(id, json!({"os-start": null})).await
    }

    /// Locks the server against changes by non-admins (Nova records the lock at once), saying
    /// why where Nova keeps a reason (microversion 2.73 or newer).
    pub async fn lock_server(&self, id: &str, reason: &str) -> Result<(), Error> {
        let lock = match self.version().await? {
            Some(v) if v >= LOCK_REASON => json!({"locked_reason": reason}),
            _ => serde_json::Value::Null,
        };
        self.action(id, json!({ "lock": lock })).await
    }

    pub async fn unlock_server(&self, id: &str) -> Result<(), Error> {
        self.action(id, json!({"unlock": null})).await
    }

    async fn action(&self, id: &str, body: serde_json::Value) -> Result<(), Error> {
        let request =
            self.request(Method::POST, format!("/servers/{id}/action")).await?.json(body).retry(Retry::Idempotent);
        self.send(request).await.map(|_| ())
    }

    /// Snapshots a server into a new image carrying `metadata`; returns the image id. Not
    /// blindly repeated: after a transient failure, Glance is searched for an image whose
    /// property `idempotency_key` has its value in `metadata` before trying again.
    pub async fn create_image(
        &self,
        server_id: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
        idempotency_key: &str,
    ) -> Result<String, Error> {
        let (key, value) = idempotency_pair(metadata, idempotency_key)?;
        let request = self
            .request(Method::POST, format!("/servers/{server_id}/action"))
            .await?
            .json(json!({"createImage": {"name": name, "metadata": metadata}}));
        let body_has_id = self.version().await?.is_some_and(|v| v >= CREATE_IMAGE_BODY);
        self.session
            .create_once(
                &request,
                || async {
                    Ok(self.session.image().images_with_property(key, value).await?.into_iter().next().map(|i| i.id))
                },
                |response| {
                    if body_has_id {
                        #[derive(Deserialize)]
                        struct Body {
                            image_id: String,
                        }
                        Ok(response.json::<Body>()?.image_id)
                    } else {
                        let location = response.header("location").unwrap_or_default();
                        location.rsplit('/').next().filter(|id| !id.is_empty()).map(str::to_string).ok_or_else(|| {
                            Error::Decode {
                                service: Service::Compute,
                                path: request.path.clone(),
                                message: "createImage answered without a Location header".into(),
                            }
                        })
                    }
                },
            )
            .await
    }

    /// Boots a server; returns its id. Not blindly repeated: after a transient failure, the
    /// project's servers of that name are searched for the metadata entry named by
    /// `spec.idempotency_key` before trying again.
    pub async fn create_server(&self, spec: &ServerCreate) -> Result<String, Error> {
        let (key, value) = idempotency_pair(&spec.metadata, &spec.idempotency_key)?;
        let version = self.version().await?;
        let request = self.request(Method::POST, "/servers").await?.json(server_create_body(spec, version)?);
        self.session
            .create_once(
                &request,
                || async {
                    let twins = self.servers_named(&spec.name).await?;
                    Ok(twins.into_iter().find(|s| s.metadata.get(key) == Some(value)).map(|s| s.id))
                },
                |response| {
                    #[derive(Deserialize)]
                    struct Body {
                        server: Id,
                    }
                    #[derive(Deserialize)]
                    struct Id {
                        id: String,
                    }
                    Ok(response.json::<Body>()?.server.id)
                },
            )
            .await
    }

    /// Deletes a server; a server already gone is not an error.
    pub async fn delete_server(&self, id: &str) -> Result<(), Error> {
        ignore_not_found(self.send(self.request(Method::DELETE, format!("/servers/{id}")).await?).await)
    }

    /// Every flavor the session can see (admins see private ones too).
    pub async fn flavors(&self) -> Result<Vec<Flavor>, Error> {
        #[derive(Deserialize)]
        struct Body {
            flavors: Vec<Flavor>,
        }
        let body: Body = self.send(self.request(Method::GET, "/flavors/detail?is_public=None").await?).await?.json()?;
        Ok(body.flavors)
    }

    /// A flavor by id or, failing that, by name.
    pub async fn find_flavor(&self, id_or_name: &str) -> Result<Option<Flavor>, Error> {
        let flavors = self.flavors().await?;
        Ok(flavors
            .iter()
            .find(|f| f.id == id_or_name)
            .or_else(|| flavors.iter().find(|f| f.name == id_or_name))
            .cloned())
    }

    /// The server groups the session may see: every project's when it may list them all
    /// (admin, by Nova's default policy; Nova shows others their project's).
    pub async fn server_groups(&self) -> Result<Vec<ServerGroup>, Error> {
        #[derive(Deserialize)]
        struct Body {
            server_groups: Vec<ServerGroup>,
        }
        let request = self.request(Method::GET, "/os-server-groups?all_projects=True&limit=1000").await?;
        Ok(self.send(request).await?.json::<Body>()?.server_groups)
    }

    /// The session's user's key pair of that name, or `None` when that user has none.
    pub async fn key_pair(&self, name: &str) -> Result<Option<KeyPair>, Error> {
        #[derive(Deserialize)]
        struct Body {
            keypair: KeyPair,
        }
        match self.send(self.request(Method::GET, format!("/os-keypairs/{}", path_segment(name))).await?).await {
            Ok(r) => Ok(Some(r.json::<Body>()?.keypair)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The session's project's absolute limits and usage.
    pub async fn limits(&self) -> Result<AbsoluteLimits, Error> {
        #[derive(Deserialize)]
        struct Body {
            limits: Limits,
        }
        #[derive(Deserialize)]
        struct Limits {
            absolute: AbsoluteLimits,
        }
        let body: Body = self.send(self.request(Method::GET, "/limits").await?).await?.json()?;
        Ok(body.limits.absolute)
    }

    /// The volumes attached to a server.
    pub async fn volume_attachments(&self, server_id: &str) -> Result<Vec<VolumeAttachment>, Error> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(rename = "volumeAttachments")]
            attachments: Vec<VolumeAttachment>,
        }
        let body: Body = self
            .send(self.request(Method::GET, format!("/servers/{server_id}/os-volume_attachments")).await?)
            .await?
            .json()?;
        Ok(body.attachments)
    }

    /// Changes whether Nova deletes an attached volume with the server (microversion 2.85).
    pub async fn set_delete_on_termination(&self, server_id: &str, volume_id: &str, delete: bool) -> Result<(), Error> {
        if self.version().await?.is_none_or(|v| v < UPDATE_DELETE_ON_TERMINATION) {
            return Err(Error::Unsupported(format!(
                "changing delete_on_termination of an attached volume needs Nova microversion {UPDATE_DELETE_ON_TERMINATION}"
            )));
        }
        let body = json!({"volumeAttachment": {"volumeId": volume_id, "delete_on_termination": delete}});
        let path = format!("/servers/{server_id}/os-volume_attachments/{volume_id}");
        self.send(self.request(Method::PUT, path).await?.json(body)).await.map(|_| ())
    }

    /// Attaches an existing volume to a server. Sent once: sent again, it would meet the
    /// volume attached (or attaching) and be refused; look at the attachments instead.
    pub async fn attach_volume(&self, server_id: &str, volume: &BlockDevice) -> Result<(), Error> {
        let body = volume_attachment_body(volume, self.version().await?)?;
        let path = format!("/servers/{server_id}/os-volume_attachments");
        self.send(self.request(Method::POST, path).await?.json(body)).await.map(|_| ())
    }

    /// Detaches a volume from a server; one not attached (any more) is not an error. Nova
    /// answers at once and detaches in the background: the volume is `detaching` in Cinder,
    /// then `available`, and Nova lists the attachment a moment longer. A repeat while the
    /// detach runs (a retry after a lost answer too) is refused with 400: after an error,
    /// look at the attachments before concluding anything.
    pub async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Error> {
        let path = format!("/servers/{server_id}/os-volume_attachments/{volume_id}");
        ignore_not_found(self.send(self.request(Method::DELETE, path).await?).await)
    }
}

/// The body of `POST /servers/{id}/os-volume_attachments`. A volume's boot index is not
/// Nova's to take on attach: it is left out.
pub fn volume_attachment_body(volume: &BlockDevice, version: Option<Microversion>) -> Result<serde_json::Value, Error> {
    let mut attachment = json!({"volumeId": volume.volume_id});
    if let Some(device) = &volume.device_name {
        attachment["device"] = json!(device);
    }
    if let Some(tag) = &volume.tag {
        needs("attaching a volume with a tag", ATTACH_WITH_TAG, version)?;
        attachment["tag"] = json!(tag);
    }
    if volume.delete_on_termination {
        needs("attaching a volume to be deleted with the server", ATTACH_WITH_DELETE_ON_TERMINATION, version)?;
        attachment["delete_on_termination"] = json!(true);
    }
    Ok(json!({ "volumeAttachment": attachment }))
}

/// What the target's microversion cannot take was decided at Recording: never dropped here.
fn needs(what: &str, since: Microversion, version: Option<Microversion>) -> Result<(), Error> {
    match version {
        Some(v) if v >= since => Ok(()),
        _ => Err(Error::Unsupported(format!("{what} needs Nova microversion {since}"))),
    }
}

/// The body of `POST /servers`.
pub fn server_create_body(spec: &ServerCreate, version: Option<Microversion>) -> Result<serde_json::Value, Error> {
    let mut server = json!({
        "name": spec.name,
        "flavorRef": spec.flavor_id,
        "metadata": spec.metadata,
    });
    let root_volume = spec.block_devices.iter().find(|d| d.is_root());
    match (spec.image_id.as_str(), root_volume) {
        ("", None) => {
            return Err(Error::Unsupported(
                "a server needs an image or a volume with boot index 0 to boot from".into(),
            ));
        }
        (image, None) => server["imageRef"] = json!(image),
        ("", Some(_)) => {}
        (image, Some(root)) => {
            return Err(Error::Unsupported(format!(
                "a server boots from image {image} or from volume {}, not both",
                root.volume_id
            )));
        }
    }
    if let Some(key) = &spec.key_name {
        server["key_name"] = json!(key);
    }
    let needs = |field: &str, since: Microversion| needs(&format!("booting a server with its {field}"), since, version);
    if let Some(description) = &spec.description {
        needs("description", DESCRIPTION)?;
        server["description"] = json!(description);
    }
    if !spec.tags.is_empty() {
        needs("tags", BOOT_WITH_TAGS)?;
        server["tags"] = json!(spec.tags);
    }
    if let Some(hostname) = &spec.hostname {
        needs("hostname", BOOT_WITH_HOSTNAME)?;
        server["hostname"] = json!(hostname);
    }
    if spec.config_drive {
        server["config_drive"] = json!(true);
    }
    if !spec.block_devices.is_empty() {
        let tagged = spec.block_devices.iter().any(|d| d.tag.is_some());
        if tagged && version != Some(BOOT_WITH_DEVICE_TAGS_ONCE) {
            needs("block device tags", BOOT_WITH_DEVICE_TAGS)?;
        }
        // Nova boots from the mapping of boot index 0: an image-backed server's is its image,
        // to a local disk (as the nova client inserts it), before its volumes.
        let image = (!spec.image_id.is_empty()).then(|| {
            json!({"uuid": spec.image_id, "source_type": "image", "destination_type": "local",
                   "boot_index": 0, "delete_on_termination": true})
        });
        let volumes = spec.block_devices.iter().map(block_device_mapping);
        server["block_device_mapping_v2"] = json!(image.into_iter().chain(volumes).collect::<Vec<_>>());
    }
    if let Some(user_data) = &spec.user_data {
        server["user_data"] = json!(user_data.0);
    }
    if !spec.security_groups.is_empty() {
        server["security_groups"] = json!(spec.security_groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>());
    }
    match (&spec.availability_zone, &spec.host) {
        (zone, Some(host)) if version.is_some_and(|v| v >= BOOT_ON_HOST) => {
            server["host"] = json!(host);
            if let Some(zone) = zone {
                server["availability_zone"] = json!(zone);
            }
        }
        // Before 2.74 an admin names the host as "zone:host".
        (Some(zone), Some(host)) => server["availability_zone"] = json!(format!("{zone}:{host}")),
        (None, Some(host)) => server["availability_zone"] = json!(format!(":{host}")),
        (Some(zone), None) => server["availability_zone"] = json!(zone),
        (None, None) => {}
    }
    let networks: Vec<_> = spec
        .networks
        .iter()
        .filter_map(|n| match n {
            NetworkAttachment::Port(port) => Some(json!({"port": port})),
            NetworkAttachment::Network { id, fixed_ip: Some(ip) } => Some(json!({"uuid": id, "fixed_ip": ip})),
            NetworkAttachment::Network { id, fixed_ip: None } => Some(json!({"uuid": id})),
            NetworkAttachment::Auto => None,
        })
        .collect();
    let auto = spec.networks.contains(&NetworkAttachment::Auto);
    if !networks.is_empty() {
        server["networks"] = json!(networks);
    } else if version.is_some_and(|v| v >= NETWORKS_REQUIRED) {
        // Before 2.37 leaving `networks` out means the project's network.
        server["networks"] = json!(if auto { "auto" } else { "none" });
    }
    let mut body = json!({"server": server});
    if let Some(group) = &spec.server_group {
        body["os:scheduler_hints"] = json!({"group": group});
    }
    Ok(body)
}

/// One entry of `block_device_mapping_v2`: an existing volume, used as it is.
fn block_device_mapping(device: &BlockDevice) -> serde_json::Value {
    let mut mapping = json!({
        "uuid": device.volume_id,
        "source_type": "volume",
        "destination_type": "volume",
        "delete_on_termination": device.delete_on_termination,
    });
    if let Some(index) = device.boot_index {
        mapping["boot_index"] = json!(index);
    }
    if let Some(name) = &device.device_name {
        mapping["device_name"] = json!(name);
    }
    if let Some(tag) = &device.tag {
        mapping["tag"] = json!(tag);
    }
    mapping
}

/// The fields of a ComputeService, for merging a legacy partial answer into.
#[derive(serde::Serialize)]
struct ServiceJson<'a> {
    id: &'a str,
    binary: &'a str,
    host: &'a str,
    zone: &'a Option<String>,
    status: &'a str,
    state: &'a str,
    disabled_reason: &'a Option<String>,
    forced_down: &'a Option<bool>,
}

impl<'a> From<&'a ComputeService> for ServiceJson<'a> {
    fn from(s: &'a ComputeService) -> Self {
        ServiceJson {
            id: &s.id,
            binary: &s.binary,
            host: &s.host,
            zone: &s.zone,
            status: &s.status,
            state: &s.state,
            disabled_reason: &s.disabled_reason,
            forced_down: &s.forced_down,
        }
    }
}

/// The metadata entry that identifies what a create made.
fn idempotency_pair<'a>(metadata: &'a BTreeMap<String, String>, key: &str) -> Result<(&'a String, &'a String), Error> {
    metadata
        .get_key_value(key)
        .ok_or_else(|| Error::Unsupported(format!("a create needs its idempotency key {key:?} in the metadata")))
}

pub(crate) fn ignore_not_found(result: Result<Response, Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Percent-encodes a query value.
pub(crate) fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Percent-encodes one segment of a path (a name may hold spaces, `/` or `?`).
fn path_segment(value: &str) -> String {
    value.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        out
    })
}

/// Escapes a server name for Nova's regular-expression `name` filter.
fn regex_escape(name: &str) -> String {
    name.chars().fold(String::new(), |mut out, c| {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// An id that some API versions give as a number and others as a string.
pub(crate) fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A field that may be absent (not shown) or null (shown: none).
fn shown<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A boolean that some APIs write as a string: Nova's `config_drive` is `True` or an empty
/// string, Cinder's `bootable` is `"true"` or `"false"`.
pub(crate) fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// A flavor's swap: MiB, or an empty string for none.
fn swap<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or_default(),
        serde_json::Value::String(s) => s.parse().unwrap_or_default(),
        _ => 0,
    })
}

fn image_ref<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(o) => o.get("id").and_then(|v| v.as_str()).map(str::to_string),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_decode_admin_fields_and_both_image_forms() {
        let server: Server = serde_json::from_value(json!({
            "id": "s1", "name": "web-1", "status": "ACTIVE", "tenant_id": "p1",
            "OS-EXT-SRV-ATTR:host": "havana-1", "OS-EXT-AZ:availability_zone": "havana",
            "OS-EXT-STS:task_state": null, "OS-EXT-STS:vm_state": "active",
            "flavor": {"original_name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0},
            "image": {"id": "img-1", "links": []}, "key_name": "k", "metadata": {"role": "web"},
            "security_groups": [{"name": "default"}],
            "os-extended-volumes:volumes_attached": [{"id": "v1", "delete_on_termination": false}]
        }))
        .unwrap();
        assert_eq!(server.host.as_deref(), Some("havana-1"));
        assert_eq!(server.image_id.as_deref(), Some("img-1"));
        assert_eq!(server.flavor.original_name.as_deref(), Some("m1.tiny"));
        assert_eq!((server.flavor.disk, server.flavor.ephemeral, server.flavor.ram), (Some(1), Some(0), Some(512)));
        let from_volume: Server = serde_json::from_value(
            json!({"id": "s2", "name": "db", "status": "ACTIVE", "flavor": {"id": "1"}, "image": ""}),
        )
        .unwrap();
        assert_eq!(from_volume.image_id, None);
        assert_eq!(from_volume.flavor.id.as_deref(), Some("1"));
    }

    #[test]
    fn service_ids_are_integers_or_uuids() {
        let old: ComputeService = serde_json::from_value(
            json!({"id": 7, "binary": "nova-compute", "host": "h", "status": "enabled", "state": "up"}),
        )
        .unwrap();
        assert_eq!(old.id, "7");
        let new: ComputeService = serde_json::from_value(json!({"id": "0b1d", "binary": "nova-compute", "host": "h", "zone": "nova", "status": "disabled", "state": "down", "disabled_reason": "drain", "forced_down": false})).unwrap();
        assert_eq!(new.id, "0b1d");
    }

    fn spec() -> ServerCreate {
        ServerCreate {
            name: "web-1".into(),
            image_id: "img".into(),
            flavor_id: "fl".into(),
            metadata: BTreeMap::from([("osmo.dev/migration".into(), "uid-1".into())]),
            idempotency_key: "osmo.dev/migration".into(),
            availability_zone: Some("icehouse".into()),
            networks: vec![
                NetworkAttachment::Port("p1".into()),
                NetworkAttachment::Network { id: "n1".into(), fixed_ip: Some("10.0.0.5".into()) },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn server_create_body_carries_networks_zone_and_metadata() {
        let body = server_create_body(&spec(), Some(NEWEST_SUPPORTED)).unwrap();
        assert_eq!(
            body,
            json!({"server": {"name": "web-1", "imageRef": "img", "flavorRef": "fl",
                "metadata": {"osmo.dev/migration": "uid-1"}, "availability_zone": "icehouse",
                "networks": [{"port": "p1"}, {"uuid": "n1", "fixed_ip": "10.0.0.5"}]}})
        );
    }

    #[test]
    fn the_sources_attributes_and_group_go_into_the_body_where_the_microversion_takes_them() {
        let mut s = spec();
        s.description = Some("front".into());
        s.tags = vec!["blue".into()];
        s.config_drive = true;
        s.hostname = Some("web-one".into());
        s.user_data = Some(UserData("I2Nsb3VkLWNvbmZpZw==".into()));
        s.server_group = Some("g1".into());
        let body = server_create_body(&s, Some(NEWEST_SUPPORTED)).unwrap();
        let server = &body["server"];
        assert_eq!(
            (&server["description"], &server["tags"], &server["hostname"]),
            (&json!("front"), &json!(["blue"]), &json!("web-one"))
        );
        assert_eq!((&server["config_drive"], &server["user_data"]), (&json!(true), &json!("I2Nsb3VkLWNvbmZpZw==")));
        assert_eq!(body["os:scheduler_hints"], json!({"group": "g1"}));
        // Never dropped silently: Recording decides what an older Nova cannot take.
        let e = server_create_body(&s, Some(Microversion(2, 60))).unwrap_err();
        assert!(e.to_string().contains("hostname needs Nova microversion 2.90"), "{e}");
        s.hostname = None;
        assert!(server_create_body(&s, Some(Microversion(2, 60))).is_ok());
        assert!(server_create_body(&s, Some(Microversion(2, 51))).unwrap_err().to_string().contains("tags"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("I2Nsb3VkLWNvbmZpZw") && shown.contains("UserData(20 bytes)"), "{shown}");
    }

    #[test]
    fn a_servers_user_data_is_absent_when_not_shown_and_none_when_null() {
        let base = json!({"id": "s1", "name": "a", "status": "ACTIVE", "flavor": {}, "config_drive": ""});
        let hidden: Server = serde_json::from_value(base.clone()).unwrap();
        assert_eq!((hidden.user_data, hidden.config_drive), (None, false));
        let mut shown = base;
        shown["OS-EXT-SRV-ATTR:user_data"] = serde_json::Value::Null;
        shown["config_drive"] = json!("True");
        let none: Server = serde_json::from_value(shown).unwrap();
        assert_eq!((none.user_data, none.config_drive), (Some(None), true));
        let group: ServerGroup =
            serde_json::from_value(json!({"id": "g", "name": "n", "policies": ["affinity"]})).unwrap();
        assert_eq!(group.policy(), "affinity");
    }

    #[test]
    fn debug_output_leaves_the_tenants_metadata_out() {
        let mut s = spec();
        s.metadata.insert("db-password".into(), "tenant-Vx81".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("tenant-Vx81") && !shown.contains("db-password"), "{shown}");
        assert!(shown.contains(r#"metadata: 2 keys"#) && shown.contains(r#"name: "web-1""#), "{shown}");
    }

    #[test]
    fn a_host_is_named_by_field_or_by_zone_prefix_depending_on_the_microversion() {
        let mut s = spec();
        s.host = Some("icehouse-1".into());
        let new = server_create_body(&s, Some(Microversion(2, 74))).unwrap();
        assert_eq!(
            (new["server"]["host"].as_str(), new["server"]["availability_zone"].as_str()),
            (Some("icehouse-1"), Some("icehouse"))
        );
        let old = server_create_body(&s, Some(Microversion(2, 60))).unwrap();
        assert_eq!(old["server"]["availability_zone"], "icehouse:icehouse-1");
        assert!(old["server"].get("host").is_none());
    }

    #[test]
    fn no_networks_means_none_where_nova_requires_the_field() {
        let mut s = spec();
        s.networks.clear();
        assert_eq!(server_create_body(&s, Some(NEWEST_SUPPORTED)).unwrap()["server"]["networks"], "none");
        assert!(server_create_body(&s, None).unwrap()["server"].get("networks").is_none());
        s.networks = vec![NetworkAttachment::Auto];
        assert_eq!(server_create_body(&s, Some(NEWEST_SUPPORTED)).unwrap()["server"]["networks"], "auto");
        assert!(server_create_body(&s, Some(Microversion(2, 36))).unwrap()["server"].get("networks").is_none());
    }

    fn volume(id: &str, boot_index: Option<i32>) -> BlockDevice {
        BlockDevice { volume_id: id.into(), boot_index, ..Default::default() }
    }

    #[test]
    fn a_server_boots_from_its_root_volume_with_its_data_volumes_and_no_image() {
        let mut s = spec();
        s.image_id = String::new();
        s.block_devices = vec![
            volume("root", Some(0)),
            BlockDevice {
                device_name: Some("/dev/vdb".into()),
                tag: Some("data".into()),
                delete_on_termination: true,
                ..volume("data", None)
            },
        ];
        let body = server_create_body(&s, Some(NEWEST_SUPPORTED)).unwrap();
        assert!(body["server"].get("imageRef").is_none(), "{body}");
        assert_eq!(
            body["server"]["block_device_mapping_v2"],
            json!([
                {"uuid": "root", "source_type": "volume", "destination_type": "volume", "boot_index": 0,
                    "delete_on_termination": false},
                {"uuid": "data", "source_type": "volume", "destination_type": "volume", "device_name": "/dev/vdb",
                    "tag": "data", "delete_on_termination": true}
            ])
        );
        let shown = format!("{s:?}");
        assert!(shown.contains("block_devices: [BlockDevice { volume_id: \"root\""), "{shown}");
    }

    #[test]
    fn an_image_and_a_root_volume_or_neither_are_refused() {
        let mut s = spec();
        s.block_devices = vec![volume("root", Some(0))];
        let both = server_create_body(&s, Some(NEWEST_SUPPORTED)).unwrap_err();
        assert!(both.to_string().contains("from image img or from volume root, not both"), "{both}");
        s.image_id = String::new();
        s.block_devices = vec![volume("data", None)];
        assert!(server_create_body(&s, Some(NEWEST_SUPPORTED)).is_err());
        // Data volumes beside an image: the image maps to the local root disk, at boot index 0
        // (Nova refuses data volumes alone in the mapping of an image-backed server).
        s.image_id = "img".into();
        let body = server_create_body(&s, Some(NEWEST_SUPPORTED)).unwrap();
        assert_eq!(body["server"]["imageRef"].as_str(), Some("img"));
        assert_eq!(
            body["server"]["block_device_mapping_v2"],
            json!([
                {"uuid": "img", "source_type": "image", "destination_type": "local", "boot_index": 0,
                    "delete_on_termination": true},
                {"uuid": "data", "source_type": "volume", "destination_type": "volume", "delete_on_termination": false}
            ])
        );
    }

    #[test]
    fn block_device_tags_need_a_microversion_that_takes_them() {
        let mut s = spec();
        s.block_devices = vec![BlockDevice { tag: Some("db".into()), ..volume("data", None) }];
        for refused in [Microversion(2, 31), Microversion(2, 33), Microversion(2, 41)] {
            let e = server_create_body(&s, Some(refused)).unwrap_err();
            assert!(e.to_string().contains("block device tags needs Nova microversion 2.42"), "{refused}: {e}");
        }
        assert!(server_create_body(&s, None).is_err());
        for taken in [Microversion(2, 32), Microversion(2, 42)] {
            assert_eq!(
                server_create_body(&s, Some(taken)).unwrap()["server"]["block_device_mapping_v2"][1]["tag"],
                "db"
            );
        }
        s.block_devices[0].tag = None;
        assert!(server_create_body(&s, Some(Microversion(2, 33))).is_ok());
    }

    #[test]
    fn an_attachment_carries_device_tag_and_deletion_where_the_microversion_takes_them() {
        let data = BlockDevice {
            device_name: Some("/dev/vdc".into()),
            tag: Some("logs".into()),
            delete_on_termination: true,
            ..volume("v1", Some(1))
        };
        assert_eq!(
            volume_attachment_body(&data, Some(NEWEST_SUPPORTED)).unwrap(),
            json!({"volumeAttachment": {"volumeId": "v1", "device": "/dev/vdc", "tag": "logs", "delete_on_termination": true}})
        );
        let e = volume_attachment_body(&data, Some(Microversion(2, 78))).unwrap_err();
        assert!(e.to_string().contains("needs Nova microversion 2.79"), "{e}");
        let e = volume_attachment_body(&data, Some(Microversion(2, 48))).unwrap_err();
        assert!(e.to_string().contains("with a tag needs Nova microversion 2.49"), "{e}");
        let plain = volume("v2", None);
        assert_eq!(volume_attachment_body(&plain, None).unwrap(), json!({"volumeAttachment": {"volumeId": "v2"}}));
    }

    #[test]
    fn attachments_decode_with_and_without_the_newer_fields() {
        let new: VolumeAttachment = serde_json::from_value(json!({"id": "v1", "serverId": "s1", "volumeId": "v1",
            "device": "/dev/vdb", "tag": "data", "delete_on_termination": false, "attachment_id": "a1",
            "bdm_uuid": "b1"}))
        .unwrap();
        assert_eq!(
            (new.tag.as_deref(), new.delete_on_termination, new.attachment_id.as_deref()),
            (Some("data"), Some(false), Some("a1"))
        );
        let old: VolumeAttachment =
            serde_json::from_value(json!({"id": "v1", "serverId": "s1", "volumeId": "v1", "device": "/dev/vdb"}))
                .unwrap();
        assert_eq!((old.tag, old.delete_on_termination, old.attachment_id), (None, None, None));
    }

    #[test]
    fn names_are_escaped_for_the_regex_filter() {
        assert_eq!(regex_escape("web.1(a)"), r"web\.1\(a\)");
        assert_eq!(query_value("^a b$"), "%5Ea+b%24");
        assert_eq!(path_segment("ops key/1?"), "ops%20key%2F1%3F");
    }
}
