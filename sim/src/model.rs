//! The simulated cloud: identities, servers, images, Neutron's objects, Cinder's volumes and
//! compute services, and the transitions scheduled for later (applied by [`Cloud::advance`] before each answer).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::Config;

/// An availability zone and its compute hosts.
#[derive(Clone, Debug)]
pub struct Zone {
    pub name: String,
    pub hosts: Vec<String>,
}

impl Zone {
    pub fn new<H: Into<String>>(name: &str, hosts: impl IntoIterator<Item = H>) -> Self {
        Zone { name: name.into(), hosts: hosts.into_iter().map(Into::into).collect() }
    }
}

/// A fresh UUID-shaped id, unique in the process.
pub fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let salt = std::process::id() as u64;
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", n as u32, salt & 0xffff, (n >> 32) & 0xfff, salt >> 16 & 0xfff, n)
}

pub fn now_text() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub const ADMIN_PROJECT: &str = "5ad0e1b6a1b24c2b9f4e6a0d3c2b1a01";
pub const DEMO_PROJECT: &str = "5ad0e1b6a1b24c2b9f4e6a0d3c2b1a02";

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub name: String,
    /// Role names by project id.
    pub roles: BTreeMap<String, Vec<&'static str>>,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub user_id: String,
    pub project_id: String,
    pub roles: Vec<&'static str>,
}

impl Token {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&"admin")
    }
}

#[derive(Clone, Debug)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram: u64,
    pub disk: u64,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub seq: u64,
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub zone: String,
    pub host: Option<String>,
    pub status: &'static str,
    pub vm_state: &'static str,
    pub task_state: Option<&'static str>,
    pub power_state: u8,
    pub flavor: Flavor,
    pub image_id: Option<String>,
    pub key_name: Option<String>,
    pub metadata: Map<String, Value>,
    pub security_groups: Vec<String>,
    pub locked: bool,
    pub locked_reason: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub config_drive: bool,
    pub hostname: String,
    pub user_data: Option<String>,
    pub fault: Option<String>,
    /// Ports it is plugged into, and which of them Nova made (deleted with it).
    pub ports: Vec<String>,
    pub made_ports: Vec<String>,
    /// Its volumes as Nova records them (block device mappings), the root one first.
    pub volumes: Vec<ServerVolume>,
    pub created: String,
    pub updated: String,
}

impl Server {
    pub fn volume(&self, volume_id: &str) -> Option<&ServerVolume> {
        self.volumes.iter().find(|v| v.volume_id == volume_id)
    }

    /// The device of its root disk: its root volume's, or the image's local disk.
    pub fn root_device(&self) -> &str {
        self.volumes.iter().find(|v| v.root).map_or(ROOT_DEVICE, |v| v.device.as_str())
    }
}

/// Where the root disk of a server booted from an image is, as the test stack's Nova (fake
/// virt driver) names it; libvirt would say `/dev/vda`. Volumes attached later take its prefix.
pub const ROOT_DEVICE: &str = "/dev/sda";

/// A volume attached to a server, as Nova records it.
#[derive(Clone, Debug)]
pub struct ServerVolume {
    pub volume_id: String,
    pub device: String,
    pub tag: Option<String>,
    pub delete_on_termination: bool,
    /// The volume the server boots from (boot index 0): Nova does not detach it.
    pub root: bool,
    /// The Cinder attachment's ID.
    pub attachment_id: String,
    pub bdm_uuid: String,
}

impl ServerVolume {
    /// A volume, not the root disk, on `device`, with a new attachment.
    pub fn new(volume_id: &str, device: String, tag: Option<String>, delete_on_termination: bool) -> Self {
        ServerVolume {
            volume_id: volume_id.to_string(),
            device,
            tag,
            delete_on_termination,
            root: false,
            attachment_id: new_id(),
            bdm_uuid: new_id(),
        }
    }
}

/// A Cinder volume.
#[derive(Clone, Debug)]
pub struct Volume {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: String,
    pub user_id: String,
    /// GiB.
    pub size: u64,
    /// `creating`, `available`, `attaching`, `in-use`, `detaching` or `deleting`.
    pub status: &'static str,
    pub bootable: bool,
    /// Its attachment (no volume is multiattach here): made when Nova reserves the volume,
    /// shown by Cinder once attached.
    pub attachment: Option<VolumeAttachment>,
    pub created: String,
    pub updated: Option<String>,
}

#[derive(Clone, Debug)]
pub struct VolumeAttachment {
    pub id: String,
    pub server_id: String,
    pub device: String,
    pub host: Option<String>,
    pub attached_at: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ComputeService {
    pub id: String,
    pub binary: &'static str,
    pub host: String,
    pub zone: String,
    pub disabled_reason: Option<String>,
    pub enabled: bool,
    pub forced_down: bool,
    pub updated: String,
}

/// A change that takes effect later.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Booted(String),
    Stopped(String),
    Started(String),
    SnapshotSaving { image: String },
    SnapshotActive { image: String, server: String },
    Deleted(String),
    VolumeCreated(String),
    VolumeAttached { volume: String, server: String },
    VolumeDetached { volume: String, server: String },
    VolumeDeleted(String),
}

struct Subnet {
    network: u32,
    prefix: u32,
    /// The next host number to try.
    cursor: u32,
}

pub struct Cloud {
    pub users: Vec<User>,
    pub projects: BTreeMap<String, String>,
    pub tokens: HashMap<String, Token>,
    pub flavors: Vec<Flavor>,
    pub services: Vec<ComputeService>,
    pub servers: BTreeMap<u64, Server>,
    pub server_seq: HashMap<String, u64>,
    next_seq: u64,
    pub keypairs: BTreeMap<(String, String), Value>,
    pub server_groups: BTreeMap<String, Value>,
    /// Glance's images as it shows them (custom properties are top-level fields).
    pub images: BTreeMap<String, Map<String, Value>>,
    pub networks: BTreeMap<String, Map<String, Value>>,
    pub subnets: BTreeMap<String, Map<String, Value>>,
    pub ports: BTreeMap<String, Map<String, Value>>,
    pub floating_ips: BTreeMap<String, Map<String, Value>>,
    pub security_groups: BTreeMap<String, Map<String, Value>>,
    pub volumes: BTreeMap<String, Volume>,
    allocators: HashMap<String, Subnet>,
    /// Addresses in use, per subnet id.
    used: HashMap<String, HashSet<String>>,
    used_macs: HashSet<String>,
    events: BinaryHeap<Reverse<(Instant, u64, Event)>>,
    next_event: u64,
}

fn parse_cidr(cidr: &str) -> Result<(u32, u32), String> {
    let (address, prefix) = cidr.split_once('/').ok_or(format!("{cidr} is not a CIDR"))?;
    let address: std::net::Ipv4Addr = address.parse().map_err(|e| format!("{cidr}: {e}"))?;
    let prefix: u32 = prefix.parse().map_err(|e| format!("{cidr}: {e}"))?;
    if !(8..=30).contains(&prefix) {
        return Err(format!("{cidr}: the prefix must be 8 to 30"));
    }
    Ok((u32::from(address) & (u32::MAX << (32 - prefix)), prefix))
}

fn ipv4(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

impl Cloud {
    pub fn new(config: &Config) -> Result<Cloud, String> {
        let admin = User {
            id: "a0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5".into(),
            name: "admin".into(),
            roles: BTreeMap::from([
                (ADMIN_PROJECT.to_string(), vec!["admin", "member", "reader"]),
                (DEMO_PROJECT.to_string(), vec!["admin", "member", "reader"]),
            ]),
        };
        let demo = User {
            id: "d0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5".into(),
            name: "demo".into(),
            roles: BTreeMap::from([(DEMO_PROJECT.to_string(), vec!["member", "reader"])]),
        };
        let flavor =
            |id: &str, name: &str, vcpus, ram, disk| Flavor { id: id.into(), name: name.into(), vcpus, ram, disk };
        let now = now_text();
        let mut cloud = Cloud {
            users: vec![admin, demo],
            projects: BTreeMap::from([
                (ADMIN_PROJECT.to_string(), "admin".to_string()),
                (DEMO_PROJECT.to_string(), "demo".to_string()),
            ]),
            tokens: HashMap::new(),
            flavors: vec![
                flavor("1", "m1.tiny", 1, 512, 1),
                flavor("2", "m1.small", 1, 2048, 20),
                flavor("3", "m1.medium", 2, 4096, 40),
            ],
            services: Vec::new(),
            servers: BTreeMap::new(),
            server_seq: HashMap::new(),
            next_seq: 0,
            keypairs: BTreeMap::new(),
            server_groups: BTreeMap::new(),
            images: BTreeMap::new(),
            networks: BTreeMap::new(),
            subnets: BTreeMap::new(),
            ports: BTreeMap::new(),
            floating_ips: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            volumes: BTreeMap::new(),
            allocators: HashMap::new(),
            used: HashMap::new(),
            used_macs: HashSet::new(),
            events: BinaryHeap::new(),
            next_event: 0,
        };
        for binary in ["nova-scheduler", "nova-conductor"] {
            cloud.services.push(ComputeService {
                id: new_id(),
                binary,
                host: "controller".into(),
                zone: "internal".into(),
                disabled_reason: None,
                enabled: true,
                forced_down: false,
                updated: now.clone(),
            });
        }
        for zone in &config.zones {
            for host in &zone.hosts {
                cloud.services.push(ComputeService {
                    id: new_id(),
                    binary: "nova-compute",
                    host: host.clone(),
                    zone: zone.name.clone(),
                    disabled_reason: None,
                    enabled: true,
                    forced_down: false,
                    updated: now.clone(),
                });
            }
        }
        let base = new_id();
        cloud.images.insert(
            base.clone(),
            json!({"id": base, "name": "base", "status": "active", "visibility": "public", "protected": false,
                "owner": ADMIN_PROJECT, "container_format": "bare", "disk_format": "qcow2", "size": 16_338_944,
                "checksum": "1d3062cd89af34e419f7100277f38b2b", "os_hash_algo": "sha512",
                "os_hash_value": "553d220ed58cfee7dafe003c446a9f197ab5edf8ffc09396c74187cf83873c877e7ae041cb80f3b91489acf687183adcd689b53b38e3ddd22e627e7f98a09c46",
                "min_disk": 0, "min_ram": 0, "virtual_size": 117_440_512, "tags": [], "os_hidden": false,
                "created_at": now, "updated_at": now, "self": format!("/v2/images/{base}"),
                "file": format!("/v2/images/{base}/file"), "schema": "/v2/schemas/image"})
            .as_object()
            .cloned()
            .expect("an object"),
        );
        for project in [ADMIN_PROJECT, DEMO_PROJECT] {
            let id = new_id();
            let group = json!({"id": id, "name": "default", "description": "Default security group",
                "project_id": project, "tenant_id": project, "stateful": true, "shared": false, "tags": [],
                "security_group_rules": [], "revision_number": 1, "created_at": now, "updated_at": now});
            cloud.security_groups.insert(id, group.as_object().cloned().expect("an object"));
        }
        cloud.add_network("private", &config.private_cidr, false)?;
        cloud.add_network("public", &config.public_cidr, true)?;
        Ok(cloud)
    }

    fn add_network(&mut self, name: &str, cidr: &str, external: bool) -> Result<(), String> {
        let (network, prefix) = parse_cidr(cidr)?;
        let (network_id, subnet_id) = (new_id(), new_id());
        let now = now_text();
        let net = json!({"id": network_id, "name": name, "subnets": [subnet_id], "router:external": external,
            "shared": !external, "status": "ACTIVE", "admin_state_up": true, "mtu": 1450,
            "project_id": ADMIN_PROJECT, "tenant_id": ADMIN_PROJECT, "port_security_enabled": true,
            "provider:network_type": "vxlan", "availability_zones": ["nova"], "tags": [], "description": "",
            "revision_number": 1, "created_at": now, "updated_at": now});
        let gateway = ipv4(network + 1);
        let subnet = json!({"id": subnet_id, "name": format!("{name}-subnet"), "network_id": network_id,
            "cidr": cidr, "ip_version": 4, "gateway_ip": gateway, "enable_dhcp": !external,
            "allocation_pools": [{"start": ipv4(network + 2), "end": ipv4(network + (1 << (32 - prefix)) - 2)}],
            "dns_nameservers": [], "host_routes": [], "project_id": ADMIN_PROJECT, "tenant_id": ADMIN_PROJECT,
            "segment_id": null, "tags": [], "description": "", "revision_number": 0, "created_at": now,
            "updated_at": now});
        self.networks.insert(network_id, net.as_object().cloned().expect("an object"));
        self.subnets.insert(subnet_id.clone(), subnet.as_object().cloned().expect("an object"));
        self.allocators.insert(subnet_id.clone(), Subnet { network, prefix, cursor: 2 });
        self.used.insert(subnet_id, HashSet::from([gateway]));
        Ok(())
    }

    /// Applies the transitions due by `now`.
    pub fn advance(&mut self, now: Instant) {
        while let Some(Reverse((due, _, _))) = self.events.peek() {
            if *due > now {
                break;
            }
            let Reverse((_, _, event)) = self.events.pop().expect("peeked");
            self.apply(event);
        }
    }

    pub fn schedule(&mut self, due: Instant, event: Event) {
        self.next_event += 1;
        self.events.push(Reverse((due, self.next_event, event)));
    }

    fn apply(&mut self, event: Event) {
        let now = now_text();
        match event {
            Event::Booted(id) => {
                let Some(server) = self.server_mut(&id) else { return };
                if server.task_state == Some("deleting") {
                    return;
                }
                (server.status, server.vm_state, server.task_state, server.power_state) = ("ACTIVE", "active", None, 1);
                server.updated = now.clone();
                let (host, ports) = (server.host.clone(), server.ports.clone());
                for port in ports {
                    if let Some(port) = self.ports.get_mut(&port) {
                        port.insert("status".into(), json!("ACTIVE"));
                        port.insert("binding:host_id".into(), json!(host.clone().unwrap_or_default()));
                        port.insert("binding:vif_type".into(), json!("ovs"));
                    }
                }
            }
            Event::Stopped(id) => {
                if let Some(server) = self.server_mut(&id).filter(|s| s.task_state == Some("powering-off")) {
                    (server.status, server.vm_state, server.task_state, server.power_state) =
                        ("SHUTOFF", "stopped", None, 4);
                    server.updated = now;
                }
            }
            Event::Started(id) => {
                if let Some(server) = self.server_mut(&id).filter(|s| s.task_state == Some("powering-on")) {
                    (server.status, server.vm_state, server.task_state, server.power_state) =
                        ("ACTIVE", "active", None, 1);
                    server.updated = now;
                }
            }
            Event::SnapshotSaving { image } => {
                if let Some(image) = self.images.get_mut(&image).filter(|i| i["status"] == "queued") {
                    image.insert("status".into(), json!("saving"));
                    image.insert("updated_at".into(), json!(now));
                }
            }
            Event::SnapshotActive { image, server } => {
                if let Some(image) = self.images.get_mut(&image).filter(|i| i["status"] == "saving") {
                    image.insert("status".into(), json!("active"));
                    image.insert("size".into(), json!(21_233_664));
                    image.insert("virtual_size".into(), json!(117_440_512));
                    image.insert("checksum".into(), json!(format!("{:032x}", fingerprint(&server))));
                    image.insert("os_hash_algo".into(), json!("sha512"));
                    image.insert("os_hash_value".into(), json!(format!("{:0128x}", fingerprint(&server))));
                    image.insert("updated_at".into(), json!(now));
                }
                if let Some(server) = self.server_mut(&server).filter(|s| s.task_state == Some("image_uploading")) {
                    server.task_state = None;
                }
            }
            Event::Deleted(id) => self.remove_server(&id),
            Event::VolumeCreated(id) => {
                if let Some(volume) = self.volumes.get_mut(&id).filter(|v| v.status == "creating") {
                    volume.status = "available";
                    volume.updated = Some(now);
                }
            }
            Event::VolumeAttached { volume, server } => {
                let host = self.server(&server).and_then(|s| s.host.clone());
                if let Some(volume) = self.volumes.get_mut(&volume).filter(|v| v.status == "attaching")
                    && let Some(attachment) = volume.attachment.as_mut().filter(|a| a.server_id == server)
                {
                    (attachment.host, attachment.attached_at) = (host, Some(now.clone()));
                    volume.status = "in-use";
                    volume.updated = Some(now);
                }
            }
            Event::VolumeDetached { volume, server } => {
                if let Some(server) = self.server_mut(&server) {
                    server.volumes.retain(|v| v.volume_id != volume);
                }
                if self.volumes.get(&volume).is_some_and(|v| v.status == "detaching") {
                    self.release_volume(&volume, &server, false);
                }
            }
            Event::VolumeDeleted(id) => {
                self.volumes.remove(&id);
            }
        }
    }

    /// A volume leaves `server`: `available` without an attachment, or gone when the server
    /// took it with it (`delete_on_termination`).
    fn release_volume(&mut self, id: &str, server: &str, delete: bool) {
        if self.volumes.get(id).and_then(|v| v.attachment.as_ref()).is_none_or(|a| a.server_id != server) {
            return;
        }
        if delete {
            self.volumes.remove(id);
        } else if let Some(volume) = self.volumes.get_mut(id) {
            volume.status = "available";
            volume.attachment = None;
            volume.updated = Some(now_text());
        }
    }

    pub fn server(&self, id: &str) -> Option<&Server> {
        self.server_seq.get(id).and_then(|seq| self.servers.get(seq))
    }

    pub fn server_mut(&mut self, id: &str) -> Option<&mut Server> {
        self.server_seq.get(id).and_then(|seq| self.servers.get_mut(seq))
    }

    pub fn insert_server(&mut self, mut server: Server) {
        self.next_seq += 1;
        server.seq = self.next_seq;
        self.server_seq.insert(server.id.clone(), server.seq);
        self.servers.insert(server.seq, server);
    }

    /// Removes a server as Nova does once it is destroyed: the ports Nova made for it go (with
    /// their floating IPs' association), the ones it was given are unbound and stay.
    fn remove_server(&mut self, id: &str) {
        let Some(seq) = self.server_seq.remove(id) else { return };
        let Some(server) = self.servers.remove(&seq) else { return };
        for volume in &server.volumes {
            self.release_volume(&volume.volume_id, id, volume.delete_on_termination);
        }
        for port in &server.ports {
            if server.made_ports.contains(port) {
                self.delete_port(port);
            } else if let Some(port) = self.ports.get_mut(port) {
                for (field, value) in [
                    ("device_id", json!("")),
                    ("device_owner", json!("")),
                    ("binding:host_id", json!("")),
                    ("binding:vif_type", json!("unbound")),
                    ("status", json!("DOWN")),
                ] {
                    port.insert(field.into(), value);
                }
            }
        }
        for group in self.server_groups.values_mut() {
            if let Some(members) = group.get_mut("members").and_then(Value::as_array_mut) {
                members.retain(|m| m != id);
            }
        }
    }

    /// Deletes a port and frees its addresses; its floating IPs are disassociated.
    pub fn delete_port(&mut self, id: &str) -> bool {
        let Some(port) = self.ports.remove(id) else { return false };
        if let Some(ips) = port["fixed_ips"].as_array() {
            self.release(ips);
        }
        if let Some(mac) = port["mac_address"].as_str() {
            self.used_macs.remove(mac);
        }
        for fip in self.floating_ips.values_mut() {
            if fip["port_id"] == id {
                for field in ["port_id", "fixed_ip_address", "port_details"] {
                    fip.insert(field.into(), Value::Null);
                }
                fip.insert("status".into(), json!("DOWN"));
            }
        }
        true
    }

    /// Takes `address` in `subnet`, or the next free one; `None` when it is taken or none is left.
    pub fn allocate(&mut self, subnet: &str, address: Option<&str>) -> Option<String> {
        let used = self.used.get_mut(subnet)?;
        if let Some(address) = address {
            return used.insert(address.to_string()).then(|| address.to_string());
        }
        let allocator = self.allocators.get_mut(subnet)?;
        let size = 1u32 << (32 - allocator.prefix);
        for _ in 0..size {
            let host = allocator.cursor;
            allocator.cursor = if host + 2 >= size { 2 } else { host + 1 };
            let candidate = ipv4(allocator.network + host);
            if used.insert(candidate.clone()) {
                return Some(candidate);
            }
        }
        None
    }

    pub fn take_mac(&mut self, wanted: Option<&str>) -> Option<String> {
        if let Some(mac) = wanted {
            return self.used_macs.insert(mac.to_lowercase()).then(|| mac.to_lowercase());
        }
        loop {
            let n = fingerprint(&new_id()) & 0xff_ffff;
            let mac = format!("fa:16:3e:{:02x}:{:02x}:{:02x}", n >> 16, (n >> 8) & 0xff, n & 0xff);
            if self.used_macs.insert(mac.clone()) {
                return Some(mac);
            }
        }
    }

    /// The subnet of a network that holds `address` (the first, when no address is given).
    pub fn subnet_for(&self, network_id: &str, address: Option<&str>) -> Option<String> {
        self.subnets.iter().find_map(|(id, subnet)| {
            (subnet["network_id"] == network_id
                && address.is_none_or(|a| {
                    let allocator = &self.allocators[id];
                    a.parse::<std::net::Ipv4Addr>()
                        .is_ok_and(|a| u32::from(a) & (u32::MAX << (32 - allocator.prefix)) == allocator.network)
                }))
            .then(|| id.clone())
        })
    }

    pub fn network_named(&self, name: &str) -> Option<String> {
        self.networks.iter().find(|(_, n)| n["name"] == name).map(|(id, _)| id.clone())
    }

    pub fn default_security_group(&self, project: &str) -> Option<String> {
        self.security_groups
            .iter()
            .find(|(_, g)| g["name"] == "default" && g["project_id"] == project)
            .map(|(id, _)| id.clone())
    }

    /// A port on `network_id`, made as Neutron makes it from a `port` body's fields.
    pub fn new_port(&mut self, project: &str, fields: &Map<String, Value>) -> Result<Map<String, Value>, PortError> {
        let network_id = fields.get("network_id").and_then(Value::as_str).unwrap_or_default().to_string();
        if !self.networks.contains_key(&network_id) {
            return Err(PortError::NetworkNotFound(network_id));
        }
        let mut fixed_ips = Vec::new();
        let wanted: Vec<Value> = match fields.get("fixed_ips") {
            Some(Value::Array(ips)) => ips.clone(),
            _ => vec![json!({})],
        };
        for ip in &wanted {
            let address = ip["ip_address"].as_str();
            let subnet = match ip["subnet_id"].as_str() {
                Some(subnet) => subnet.to_string(),
                None => self.subnet_for(&network_id, address).ok_or(PortError::NoSubnet)?,
            };
            let Some(taken) = self.allocate(&subnet, address) else {
                self.release(&fixed_ips);
                return Err(match address {
                    Some(a) => PortError::AddressInUse(a.to_string()),
                    None => PortError::Exhausted,
                });
            };
            fixed_ips.push(json!({"subnet_id": subnet, "ip_address": taken}));
        }
        let Some(mac) = self.take_mac(fields.get("mac_address").and_then(Value::as_str)) else {
            self.release(&fixed_ips);
            return Err(PortError::MacInUse);
        };
        let port_security = fields.get("port_security_enabled").and_then(Value::as_bool).unwrap_or(true);
        let groups = match fields.get("security_groups") {
            Some(groups) => groups.clone(),
            None if port_security => json!(self.default_security_group(project).into_iter().collect::<Vec<_>>()),
            None => json!([]),
        };
        let id = new_id();
        let now = now_text();
        let mut port = json!({"id": id, "name": "", "network_id": network_id, "mac_address": mac,
            "fixed_ips": fixed_ips, "device_id": "", "device_owner": "", "security_groups": groups,
            "description": "", "status": "DOWN", "admin_state_up": true, "binding:host_id": "",
            "binding:vnic_type": "normal", "binding:vif_type": "unbound", "binding:vif_details": {},
            "binding:profile": {}, "allowed_address_pairs": [], "extra_dhcp_opts": [],
            "port_security_enabled": port_security, "qos_policy_id": null, "qos_network_policy_id": null,
            "dns_name": "", "dns_assignment": [], "tags": [], "project_id": project, "tenant_id": project,
            "propagate_uplink_status": false, "revision_number": 1, "created_at": now, "updated_at": now})
        .as_object()
        .cloned()
        .expect("an object");
        for field in [
            "name",
            "description",
            "device_id",
            "device_owner",
            "allowed_address_pairs",
            "qos_policy_id",
            "binding:vnic_type",
            "extra_dhcp_opts",
            "dns_name",
            "admin_state_up",
        ] {
            if let Some(value) = fields.get(field) {
                port.insert(field.into(), value.clone());
            }
        }
        self.ports.insert(id, port.clone());
        Ok(port)
    }

    fn release(&mut self, fixed_ips: &[Value]) {
        for ip in fixed_ips {
            if let (Some(subnet), Some(address)) = (ip["subnet_id"].as_str(), ip["ip_address"].as_str()) {
                self.release_address(subnet, address);
            }
        }
    }

    pub fn release_address(&mut self, subnet: &str, address: &str) {
        if let Some(used) = self.used.get_mut(subnet) {
            used.remove(address);
        }
    }

    /// A compute host of `zone` (the one named, if any) whose service takes new servers: the
    /// one with the fewest servers.
    pub fn schedule_host(&self, zone: Option<&str>, host: Option<&str>) -> Option<(String, String)> {
        let candidates = self.services.iter().filter(|s| {
            s.binary == "nova-compute"
                && s.enabled
                && !s.forced_down
                && zone.is_none_or(|z| s.zone == z)
                && host.is_none_or(|h| s.host == h)
        });
        let load = |host: &str| self.servers.values().filter(|s| s.host.as_deref() == Some(host)).count();
        candidates.min_by_key(|s| load(&s.host)).map(|s| (s.zone.clone(), s.host.clone()))
    }

    pub fn zones(&self) -> HashSet<&str> {
        self.services.iter().filter(|s| s.binary == "nova-compute").map(|s| s.zone.as_str()).collect()
    }

    /// Servers as if booted long ago; see [`crate::Simulator::seed_servers`].
    pub fn seed_servers(&mut self, names: &[String], host: &str, flavor: &str) -> Result<Vec<String>, String> {
        let zone = self
            .services
            .iter()
            .find(|s| s.binary == "nova-compute" && s.host == host)
            .map(|s| s.zone.clone())
            .ok_or(format!("no compute host {host}"))?;
        let flavor = self.flavors.iter().find(|f| f.name == flavor || f.id == flavor).cloned().ok_or("no flavor")?;
        let image = self.images.iter().find(|(_, i)| i["name"] == "base").map(|(id, _)| id.clone());
        let private = self.network_named("private").ok_or("no network private")?;
        let mut ids = Vec::new();
        for name in names {
            let id = new_id();
            let fields = json!({"network_id": private, "device_id": id, "device_owner": format!("compute:{zone}")});
            let port = self.new_port(ADMIN_PROJECT, fields.as_object().expect("an object")).map_err(|e| e.message())?;
            let port_id = port["id"].as_str().unwrap_or_default().to_string();
            let now = now_text();
            self.insert_server(Server {
                seq: 0,
                id: id.clone(),
                name: name.clone(),
                project_id: ADMIN_PROJECT.into(),
                user_id: self.users[0].id.clone(),
                zone: zone.clone(),
                host: Some(host.into()),
                status: "BUILD",
                vm_state: "building",
                task_state: Some("spawning"),
                power_state: 0,
                flavor: flavor.clone(),
                image_id: image.clone(),
                key_name: None,
                metadata: Map::new(),
                security_groups: vec!["default".into()],
                locked: false,
                locked_reason: None,
                description: None,
                tags: Vec::new(),
                config_drive: false,
                hostname: name.clone(),
                user_data: None,
                fault: None,
                ports: vec![port_id.clone()],
                made_ports: vec![port_id],
                volumes: Vec::new(),
                created: now.clone(),
                updated: now,
            });
            self.apply(Event::Booted(id.clone()));
            ids.push(id);
        }
        Ok(ids)
    }
}

impl Cloud {
    /// A 1 GiB volume of the server's project `in-use` by it on its next device, kept when it
    /// goes, as if attached long ago; see [`crate::Simulator::seed_data_volumes`]. Its ID.
    pub fn seed_data_volume(&mut self, server_id: &str) -> Result<String, String> {
        let server = self.server_mut(server_id).ok_or(format!("no server {server_id}"))?;
        if !server.volumes.is_empty() {
            return Err(format!("server {server_id} has volumes already"));
        }
        let device = format!("{}b", &ROOT_DEVICE[..ROOT_DEVICE.len() - 1]);
        let id = new_id();
        let attached = ServerVolume::new(&id, device.clone(), None, false);
        let attachment = VolumeAttachment {
            id: attached.attachment_id.clone(),
            server_id: server_id.to_string(),
            device,
            host: server.host.clone(),
            attached_at: Some(server.created.clone()),
        };
        let (name, project_id, user_id) =
            (format!("{}-data", server.name), server.project_id.clone(), server.user_id.clone());
        server.volumes.push(attached);
        let now = now_text();
        self.volumes.insert(
            id.clone(),
            Volume {
                id: id.clone(),
                name: Some(name),
                description: None,
                project_id,
                user_id,
                size: 1,
                status: "in-use",
                bootable: false,
                attachment: Some(attachment),
                created: now.clone(),
                updated: Some(now),
            },
        );
        Ok(id)
    }
}

pub enum PortError {
    NetworkNotFound(String),
    NoSubnet,
    AddressInUse(String),
    Exhausted,
    MacInUse,
}

impl PortError {
    pub fn message(&self) -> String {
        match self {
            PortError::NetworkNotFound(id) => format!("Network {id} could not be found."),
            PortError::NoSubnet => "No subnet of the network holds the address.".into(),
            PortError::AddressInUse(a) => format!("IP address {a} already allocated in subnet."),
            PortError::Exhausted => "No more IP addresses available on network.".into(),
            PortError::MacInUse => "Unable to complete operation for network. The mac address is in use.".into(),
        }
    }
}

/// A stable number derived from a text (for checksums and MACs).
pub fn fingerprint(text: &str) -> u128 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u128, |h, b| (h ^ u128::from(b)).wrapping_mul(0x0100_0000_01b3))
}
