//! Nova at microversion 2.95: servers (list, show, create with existing volumes, delete,
//! stop, start, lock, unlock, createImage), flavors, key pairs, server groups, limits, compute
//! services and volume attachments (list, show, attach, detach, `delete_on_termination`).

use std::time::Instant;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::model::{
    Cloud, Event, PortError, ROOT_DEVICE, Server, ServerVolume, Token, Volume, VolumeAttachment, new_id, now_text,
};
use crate::{ApiError, ApiResult, Call, Latencies, keystone};

/// Where the handler leaves a Location header (taken out of the body).
pub const LOCATION: &str = "__location";

/// Nova's `max_limit`: a page holds at most so many servers.
const MAX_LIMIT: usize = 1000;

fn fault(status: StatusCode, kind: &str, message: &str) -> ApiError {
    ApiError { status, body: json!({kind: {"code": status.as_u16(), "message": message}}) }
}

fn not_found(message: &str) -> ApiError {
    fault(StatusCode::NOT_FOUND, "itemNotFound", message)
}

fn bad_request(message: &str) -> ApiError {
    fault(StatusCode::BAD_REQUEST, "badRequest", message)
}

fn conflict(message: &str) -> ApiError {
    fault(StatusCode::CONFLICT, "conflictingRequest", message)
}

fn forbidden(message: &str) -> ApiError {
    fault(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The microversion a request asks for (2.1 when none).
fn microversion(call: &Call) -> (u32, u32) {
    let header = |name| call.headers.get(name).and_then(|v| v.to_str().ok());
    let text = header("openstack-api-version")
        .and_then(|v| v.strip_prefix("compute "))
        .or_else(|| header("x-openstack-nova-api-version"));
    match text.map(str::trim) {
        Some("latest") => (2, 95),
        Some(v) => v.split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))).unwrap_or((2, 1)),
        None => (2, 1),
    }
}

pub fn handle(cloud: &mut Cloud, call: &Call, latencies: &Latencies, now: Instant) -> ApiResult {
    let segments = call.segments.as_slice();
    if segments == ["v2.1"] && call.method == Method::GET {
        return Ok((
            StatusCode::OK,
            json!({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.95", "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": format!("{}/compute/v2.1/", call.base_url)}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]}}),
        ));
    }
    let token = keystone::authenticate(cloud, call)?;
    let Some(("v2.1", rest)) = segments.split_first().map(|(a, b)| (*a, b)) else {
        return Err(not_found("The resource could not be found."));
    };
    let version = microversion(call);
    if version > (2, 95) {
        return Err(fault(
            StatusCode::NOT_ACCEPTABLE,
            "computeFault",
            &format!(
                "Version {}.{} is not supported by the API. Minimum is 2.1 and maximum is 2.95.",
                version.0, version.1
            ),
        ));
    }
    match (call.method.clone(), rest) {
        (Method::GET, ["servers", "detail"]) => list_servers(cloud, call, &token),
        (Method::GET, ["servers", id]) => {
            let server = visible(cloud, &token, id)?;
            Ok((StatusCode::OK, json!({"server": render(cloud, server, &token)})))
        }
        (Method::POST, ["servers"]) => create_server(cloud, call, &token, version, latencies, now),
        (Method::DELETE, ["servers", id]) => delete_server(cloud, &token, id, latencies, now),
        (Method::POST, ["servers", id, "action"]) => action(cloud, call, &token, id, version, latencies, now),
        (Method::GET, ["servers", id, "os-volume_attachments"]) => {
            let server = visible(cloud, &token, id)?;
            let attachments: Vec<Value> =
                server.volumes.iter().map(|v| render_attachment(server, v, version)).collect();
            Ok((StatusCode::OK, json!({"volumeAttachments": attachments})))
        }
        (Method::GET, ["servers", id, "os-volume_attachments", volume]) => {
            let server = visible(cloud, &token, id)?;
            let attached = attached(server, volume)?;
            Ok((StatusCode::OK, json!({"volumeAttachment": render_attachment(server, attached, version)})))
        }
        (Method::POST, ["servers", id, "os-volume_attachments"]) => {
            attach_volume(cloud, call, &token, id, version, latencies, now)
        }
        (Method::PUT, ["servers", id, "os-volume_attachments", volume]) => {
            update_attachment(cloud, call, &token, id, volume, version)
        }
        (Method::DELETE, ["servers", id, "os-volume_attachments", volume]) => {
            detach_volume(cloud, &token, id, volume, latencies, now)
        }
        (Method::GET, ["flavors", "detail"]) => {
            let flavors: Vec<Value> = cloud
                .flavors
                .iter()
                .map(|f| {
                    json!({"id": f.id, "name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk,
                        "OS-FLV-EXT-DATA:ephemeral": 0, "swap": 0, "rxtx_factor": 1.0,
                        "OS-FLV-DISABLED:disabled": false, "os-flavor-access:is_public": true,
                        "description": null, "extra_specs": {}, "links": []})
                })
                .collect();
            Ok((StatusCode::OK, json!({"flavors": flavors})))
        }
        (Method::GET, ["os-keypairs", name]) => cloud
            .keypairs
            .get(&(token.user_id.clone(), name.to_string()))
            .map(|k| (StatusCode::OK, json!({"keypair": k})))
            .ok_or_else(|| not_found(&format!("Keypair {name} not found for user {}", token.user_id))),
        (Method::POST, ["os-keypairs"]) => create_keypair(cloud, call, &token),
        (Method::DELETE, ["os-keypairs", name]) => cloud
            .keypairs
            .remove(&(token.user_id.clone(), name.to_string()))
            .map(|_| (StatusCode::ACCEPTED, Value::Null))
            .ok_or_else(|| not_found(&format!("Keypair {name} not found for user {}", token.user_id))),
        (Method::GET, ["os-server-groups"]) => {
            let all =
                token.is_admin() && call.query_value("all_projects").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let groups: Vec<&Value> =
                cloud.server_groups.values().filter(|g| all || g["project_id"] == token.project_id.as_str()).collect();
            Ok((StatusCode::OK, json!({"server_groups": groups})))
        }
        (Method::POST, ["os-server-groups"]) => {
            let body = call.json(bad_request)?;
            let group = &body["server_group"];
            let id = new_id();
            let made = json!({"id": id, "name": group["name"], "policy": group["policy"], "rules": {},
                "members": [], "project_id": token.project_id, "user_id": token.user_id});
            cloud.server_groups.insert(id, made.clone());
            Ok((StatusCode::OK, json!({"server_group": made})))
        }
        (Method::DELETE, ["os-server-groups", id]) => cloud
            .server_groups
            .remove(*id)
            .map(|_| (StatusCode::NO_CONTENT, Value::Null))
            .ok_or_else(|| not_found(&format!("Instance group {id} could not be found."))),
        (Method::GET, ["limits"]) => {
            let mine = cloud.servers.values().filter(|s| s.project_id == token.project_id);
            let (instances, cores, ram) =
                mine.fold((0, 0, 0), |(i, c, r), s| (i + 1, c + s.flavor.vcpus, r + s.flavor.ram));
            Ok((
                StatusCode::OK,
                json!({"limits": {"rate": [], "absolute": {
                    "maxTotalInstances": -1, "totalInstancesUsed": instances,
                    "maxTotalCores": -1, "totalCoresUsed": cores,
                    "maxTotalRAMSize": -1, "totalRAMUsed": ram,
                    "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
                    "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
                    "totalServerGroupsUsed": 0}}}),
            ))
        }
        (Method::GET, ["os-services"]) => {
            admin_only(&token)?;
            let binary = call.query_value("binary");
            let host = call.query_value("host");
            let services: Vec<Value> = cloud
                .services
                .iter()
                .filter(|s| binary.is_none_or(|b| s.binary == b) && host.is_none_or(|h| s.host == h))
                .map(render_service)
                .collect();
            Ok((StatusCode::OK, json!({"services": services})))
        }
        (Method::PUT, ["os-services", id]) => update_service(cloud, call, &token, id, version),
        (Method::DELETE, ["os-services", id]) => {
            admin_only(&token)?;
            let Some(index) = cloud.services.iter().position(|s| s.id == *id) else {
                return Err(not_found(&format!("Service {id} not found.")));
            };
            let host = cloud.services[index].host.clone();
            if cloud.services[index].binary == "nova-compute"
                && cloud.servers.values().any(|s| s.host.as_deref() == Some(host.as_str()))
            {
                return Err(conflict(
                    "Unable to delete compute service that is hosting instances. Migrate or delete the instances first.",
                ));
            }
            cloud.services.remove(index);
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        _ => Err(not_found("The resource could not be found.")),
    }
}

fn admin_only(token: &Token) -> Result<(), ApiError> {
    if token.is_admin() { Ok(()) } else { Err(forbidden("Policy doesn't allow this action to be performed.")) }
}

/// A server the token may see (its project's, or any for an admin).
fn visible<'a>(cloud: &'a Cloud, token: &Token, id: &str) -> Result<&'a Server, ApiError> {
    cloud
        .server(id)
        .filter(|s| token.is_admin() || s.project_id == token.project_id)
        .ok_or_else(|| not_found(&format!("Instance {id} could not be found.")))
}

fn render(cloud: &Cloud, s: &Server, token: &Token) -> Value {
    let mut addresses = Map::new();
    for port in s.ports.iter().filter_map(|p| cloud.ports.get(p)) {
        let network = port["network_id"].as_str().and_then(|n| cloud.networks.get(n));
        let name = network.and_then(|n| n["name"].as_str()).unwrap_or_default().to_string();
        let entries = addresses.entry(name).or_insert_with(|| json!([]));
        for ip in port["fixed_ips"].as_array().into_iter().flatten() {
            entries.as_array_mut().expect("an array").push(json!({"version": 4, "addr": ip["ip_address"],
                "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}));
        }
        for fip in cloud.floating_ips.values().filter(|f| f["port_id"] == port["id"]) {
            entries.as_array_mut().expect("an array").push(json!({"version": 4, "addr": fip["floating_ip_address"],
                "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}));
        }
    }
    let groups: Vec<&Value> = cloud
        .server_groups
        .values()
        .filter(|g| g["members"].as_array().is_some_and(|m| m.iter().any(|m| m == s.id.as_str())))
        .map(|g| &g["id"])
        .collect();
    let mut server = json!({
        "id": s.id, "name": s.name, "status": s.status, "tenant_id": s.project_id, "user_id": s.user_id,
        "metadata": s.metadata, "hostId": if s.host.is_some() { format!("{:056x}", crate::model::fingerprint(&s.project_id)) } else { String::new() },
        "image": match &s.image_id { Some(id) => json!({"id": id, "links": []}), None => json!("") },
        "flavor": {"vcpus": s.flavor.vcpus, "ram": s.flavor.ram, "disk": s.flavor.disk, "ephemeral": 0,
            "swap": 0, "original_name": s.flavor.name, "extra_specs": {}},
        "created": s.created, "updated": s.updated, "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
        "links": [], "OS-DCF:diskConfig": "MANUAL", "progress": 0, "OS-EXT-AZ:availability_zone": s.zone,
        "config_drive": if s.config_drive { "True" } else { "" }, "key_name": s.key_name,
        "OS-SRV-USG:launched_at": if s.vm_state == "building" { Value::Null } else { json!(s.created) },
        "OS-SRV-USG:terminated_at": null,
        "security_groups": s.security_groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>(),
        "OS-EXT-STS:task_state": s.task_state, "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": s.power_state,
        "os-extended-volumes:volumes_attached": s.volumes.iter()
            .map(|v| json!({"id": v.volume_id, "delete_on_termination": v.delete_on_termination}))
            .collect::<Vec<_>>(),
        "locked": s.locked, "locked_reason": s.locked_reason, "description": s.description, "tags": s.tags,
        "trusted_image_certificates": null, "server_groups": groups, "pinned_availability_zone": null,
    });
    if let Some(message) = &s.fault {
        server["fault"] = json!({"code": 500, "created": s.updated, "message": message});
    }
    if token.is_admin() {
        for (field, value) in [
            ("OS-EXT-SRV-ATTR:host", json!(s.host)),
            ("OS-EXT-SRV-ATTR:hypervisor_hostname", json!(s.host)),
            ("OS-EXT-SRV-ATTR:instance_name", json!(format!("instance-{:08x}", s.seq))),
            ("OS-EXT-SRV-ATTR:hostname", json!(s.hostname)),
            ("OS-EXT-SRV-ATTR:user_data", json!(s.user_data)),
            ("OS-EXT-SRV-ATTR:reservation_id", json!(format!("r-{:08x}", s.seq))),
            ("OS-EXT-SRV-ATTR:launch_index", json!(0)),
            ("OS-EXT-SRV-ATTR:kernel_id", json!("")),
            ("OS-EXT-SRV-ATTR:ramdisk_id", json!("")),
            ("OS-EXT-SRV-ATTR:root_device_name", json!(s.root_device())),
            ("host_status", json!(if s.host.is_some() { "UP" } else { "" })),
        ] {
            server[field] = value;
        }
    }
    server
}

/// Nova's `name` filter is a regular expression; osmo sends `^escaped$`. Anchors and
/// backslash escapes are understood, the rest matches literally.
fn name_matches(filter: &str, name: &str) -> bool {
    let (start, filter) = filter.strip_prefix('^').map_or((false, filter), |f| (true, f));
    let (end, filter) = match filter.strip_suffix('$') {
        Some(f) if !f.ends_with('\\') || f.ends_with("\\\\") => (true, f),
        _ => (false, filter),
    };
    let mut literal = String::new();
    let mut chars = filter.chars();
    while let Some(c) = chars.next() {
        literal.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
    }
    match (start, end) {
        (true, true) => name == literal,
        (true, false) => name.starts_with(&literal),
        (false, true) => name.ends_with(&literal),
        (false, false) => name.contains(&literal),
    }
}

fn list_servers(cloud: &Cloud, call: &Call, token: &Token) -> ApiResult {
    let all = token.is_admin()
        && call.query_value("all_tenants").is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "0" | "false"));
    let project = call.query_value("project_id").or(call.query_value("tenant_id"));
    let host = call.query_value("host").filter(|_| token.is_admin());
    let name = call.query_value("name");
    let status = call.query_value("status");
    let limit = call.query_value("limit").and_then(|l| l.parse().ok()).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let marker = call.query_value("marker");
    let marker_seq = match marker {
        Some(m) => Some(*cloud.server_seq.get(m).ok_or_else(|| bad_request(&format!("marker [{m}] not found")))?),
        None => None,
    };
    // Newest first, as Nova sorts by default (created_at, id descending).
    let matching = cloud
        .servers
        .range(..marker_seq.unwrap_or(u64::MAX))
        .rev()
        .map(|(_, s)| s)
        .filter(|s| match (all, project) {
            (true, Some(p)) => s.project_id == p,
            (true, None) => true,
            (false, _) => s.project_id == token.project_id,
        })
        .filter(|s| host.is_none_or(|h| s.host.as_deref() == Some(h)))
        .filter(|s| name.is_none_or(|n| name_matches(n, &s.name)))
        .filter(|s| status.is_none_or(|st| s.status.eq_ignore_ascii_case(st)));
    let page: Vec<&Server> = matching.take(limit + 1).collect();
    let more = page.len() > limit;
    let servers: Vec<Value> = page.iter().take(limit).map(|s| render(cloud, s, token)).collect();
    let mut body = json!({"servers": servers});
    if more && let Some(last) = servers.last() {
        let mut next: Vec<String> =
            call.query.iter().filter(|(k, _)| k != "marker").map(|(k, v)| format!("{k}={v}")).collect();
        next.push(format!("marker={}", last["id"].as_str().unwrap_or_default()));
        body["servers_links"] = json!([{"rel": "next", "href": format!("{}/compute/v2.1/servers/detail?{}", call.base_url, next.join("&"))}]);
    }
    Ok((StatusCode::OK, body))
}

fn create_server(
    cloud: &mut Cloud,
    call: &Call,
    token: &Token,
    version: (u32, u32),
    latencies: &Latencies,
    now: Instant,
) -> ApiResult {
    let body = call.json(bad_request)?;
    let spec = body.get("server").and_then(Value::as_object).ok_or_else(|| bad_request("server is required"))?;
    let text = |field: &str| spec.get(field).and_then(Value::as_str).map(str::to_string);
    let name =
        text("name").filter(|n| !n.is_empty()).ok_or_else(|| bad_request("Invalid input for field/attribute name."))?;
    let flavor_ref = text("flavorRef").unwrap_or_default();
    let flavor = cloud
        .flavors
        .iter()
        .find(|f| f.id == flavor_ref)
        .cloned()
        .ok_or_else(|| bad_request(&format!("Flavor {flavor_ref} could not be found.")))?;
    let disks = boot_disks(cloud, token, spec, version)?;
    if let Some(image_ref) = &disks.image {
        let image = cloud
            .images
            .get(image_ref)
            .filter(|i| i["owner"] == token.project_id.as_str() || i["visibility"] == "public" || token.is_admin())
            .ok_or_else(|| bad_request(&format!("Image {image_ref} could not be found.")))?;
        if image["status"] != "active" {
            return Err(bad_request(&format!("Image {image_ref} is not active.")));
        }
    }
    let key_name = text("key_name");
    if let Some(key) = &key_name
        && !cloud.keypairs.contains_key(&(token.user_id.clone(), key.clone()))
    {
        return Err(bad_request("Invalid key_name provided."));
    }
    let groups: Vec<String> = match spec.get("security_groups").and_then(Value::as_array) {
        Some(groups) => groups.iter().filter_map(|g| g["name"].as_str().map(str::to_string)).collect(),
        None => vec!["default".into()],
    };
    let mut group_ids = Vec::new();
    for group in &groups {
        let found = cloud.security_groups.iter().find(|(id, g)| {
            (g["name"] == group.as_str() || id.as_str() == group) && g["project_id"] == token.project_id.as_str()
        });
        match found {
            Some((id, _)) => group_ids.push(json!(id)),
            None => {
                return Err(bad_request(&format!(
                    "Security group {group} not found for project {}.",
                    token.project_id
                )));
            }
        }
    }
    let hint_group = body["os:scheduler_hints"]["group"].as_str().map(str::to_string);
    if let Some(group) = &hint_group
        && !cloud.server_groups.contains_key(group)
    {
        return Err(bad_request(&format!("Invalid server group {group}.")));
    }
    let (zone, mut host) = match text("availability_zone") {
        Some(z) => match z.split_once(':') {
            Some((zone, host)) => {
                ((!zone.is_empty()).then(|| zone.to_string()), (!host.is_empty()).then(|| host.to_string()))
            }
            None => (Some(z), None),
        },
        None => (None, None),
    };
    if let Some(named) = text("host") {
        host = Some(named);
    }
    if host.is_some() && !token.is_admin() {
        return Err(forbidden("Policy doesn't allow compute:servers:create:requested_destination to be performed."));
    }
    if let Some(zone) = &zone
        && !cloud.zones().contains(zone.as_str())
    {
        return Err(bad_request("The requested availability zone is not available"));
    }
    // Nova's own checks of the networks come before anything is made.
    let mut plugs = Vec::new();
    match spec.get("networks") {
        Some(Value::Array(networks)) => {
            for network in networks {
                if let Some(port) = network["port"].as_str() {
                    let Some(found) = cloud.ports.get(port) else {
                        return Err(bad_request(&format!("Port {port} could not be found.")));
                    };
                    if found["device_id"].as_str().is_some_and(|d| !d.is_empty()) {
                        return Err(conflict(&format!("Port {port} is still in use.")));
                    }
                    plugs.push(Ok(port.to_string()));
                } else if let Some(uuid) = network["uuid"].as_str() {
                    if !cloud.networks.contains_key(uuid) {
                        return Err(bad_request(&format!("Network {uuid} could not be found.")));
                    }
                    plugs.push(Err((uuid.to_string(), network["fixed_ip"].as_str().map(str::to_string))));
                } else {
                    return Err(bad_request("Bad networks format"));
                }
            }
        }
        Some(Value::String(auto)) if auto == "auto" => {
            plugs.push(Err((cloud.network_named("private").unwrap_or_default(), None)));
        }
        Some(Value::String(none)) if none == "none" => {}
        _ => return Err(bad_request("Invalid input for field/attribute networks.")),
    }
    let id = new_id();
    let scheduled = cloud.schedule_host(zone.as_deref(), host.as_deref());
    let zone_name = scheduled.as_ref().map(|(z, _)| z.clone()).or(zone.clone()).unwrap_or_else(|| "nova".into());
    let (mut ports, mut made_ports) = (Vec::new(), Vec::new());
    if scheduled.is_some() {
        for plug in plugs {
            let device = json!({"device_id": id, "device_owner": format!("compute:{zone_name}")});
            match plug {
                Ok(port) => {
                    let existing = cloud.ports.get_mut(&port).expect("checked above");
                    for (k, v) in device.as_object().expect("an object") {
                        existing.insert(k.clone(), v.clone());
                    }
                    ports.push(port);
                }
                Err((network, fixed_ip)) => {
                    let mut fields = device.as_object().cloned().expect("an object");
                    fields.insert("network_id".into(), json!(network));
                    fields.insert("security_groups".into(), json!(group_ids));
                    if let Some(ip) = fixed_ip {
                        fields.insert("fixed_ips".into(), json!([{"ip_address": ip}]));
                    }
                    match cloud.new_port(&token.project_id, &fields) {
                        Ok(port) => {
                            let port_id = port["id"].as_str().unwrap_or_default().to_string();
                            made_ports.push(port_id.clone());
                            ports.push(port_id);
                        }
                        Err(PortError::AddressInUse(ip)) => {
                            for made in &made_ports {
                                cloud.delete_port(made);
                            }
                            return Err(conflict(&format!("Fixed IP address {ip} is already in use on instance.")));
                        }
                        Err(e) => {
                            for made in &made_ports {
                                cloud.delete_port(made);
                            }
                            return Err(bad_request(&e.message()));
                        }
                    }
                }
            }
        }
    }
    let created = now_text();
    let user_data = text("user_data");
    let metadata = spec.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let tags = spec
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let server = Server {
        seq: 0,
        id: id.clone(),
        name: name.clone(),
        project_id: token.project_id.clone(),
        user_id: token.user_id.clone(),
        zone: zone_name,
        host: scheduled.as_ref().map(|(_, h)| h.clone()),
        status: if scheduled.is_some() { "BUILD" } else { "ERROR" },
        vm_state: if scheduled.is_some() { "building" } else { "error" },
        task_state: scheduled.as_ref().map(|_| "spawning"),
        power_state: 0,
        flavor,
        image_id: disks.image,
        key_name,
        metadata,
        security_groups: groups.clone(),
        locked: false,
        locked_reason: None,
        description: text("description"),
        tags,
        config_drive: spec.get("config_drive").and_then(Value::as_bool).unwrap_or(false),
        hostname: text("hostname").unwrap_or_else(|| name.to_lowercase().replace([' ', '_', '.'], "-")),
        user_data,
        fault: scheduled.is_none().then(|| "No valid host was found. ".to_string()),
        ports,
        made_ports,
        volumes: Vec::new(),
        created: created.clone(),
        updated: created,
    };
    cloud.insert_server(server);
    if let Some(group) = hint_group.and_then(|g| cloud.server_groups.get_mut(&g))
        && let Some(members) = group["members"].as_array_mut()
    {
        members.push(json!(id));
    }
    if scheduled.is_some() {
        cloud.schedule(now + latencies.boot, Event::Booted(id.clone()));
        let root = disks.volumes.iter().find(|d| d.root).and_then(|d| d.device.clone());
        let root = root.unwrap_or_else(|| ROOT_DEVICE.to_string());
        for disk in disks.volumes {
            let taken: Vec<String> =
                cloud.server(&id).expect("inserted").volumes.iter().map(|v| v.device.clone()).collect();
            // At boot Nova keeps the names asked for (attached later, a volume takes the root's prefix).
            let device = match disk.device {
                _ if disk.root => root.clone(),
                Some(asked) if !taken.contains(&asked) && asked != root => asked,
                _ => device_name(&root, None, &taken),
            };
            let volume = ServerVolume::new(&disk.volume_id, device, disk.tag, disk.delete_on_termination);
            attach(cloud, &id, ServerVolume { root: disk.root, ..volume }, latencies, now);
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        json!({"server": {"id": id, "links": [], "OS-DCF:diskConfig": "MANUAL", "adminPass": "sim-admin-pass",
            "security_groups": groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>()}}),
    ))
}

/// What a server boots from: an image, or the volume of boot index 0, and its other volumes.
struct BootDisks {
    image: Option<String>,
    volumes: Vec<BootVolume>,
}

struct BootVolume {
    volume_id: String,
    root: bool,
    /// The device name asked for.
    device: Option<String>,
    tag: Option<String>,
    delete_on_termination: bool,
}

/// `imageRef` and `block_device_mapping_v2` checked as Nova's API checks them: with
/// mappings, one has boot index 0 (the image's local disk, or a bootable volume); every
/// volume exists and is `available`.
fn boot_disks(
    cloud: &Cloud,
    token: &Token,
    spec: &Map<String, Value>,
    version: (u32, u32),
) -> Result<BootDisks, ApiError> {
    let image_ref = spec.get("imageRef").and_then(Value::as_str).filter(|i| !i.is_empty()).map(str::to_string);
    let mappings = spec.get("block_device_mapping_v2").and_then(Value::as_array).cloned().unwrap_or_default();
    if mappings.is_empty() {
        return Ok(BootDisks { image: Some(image_ref.unwrap_or_default()), volumes: Vec::new() });
    }
    let boot_index = |m: &Value| match &m["boot_index"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let Some(first) = mappings.iter().find(|m| boot_index(m) == Some(0)) else {
        return Err(bad_request(
            "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.",
        ));
    };
    let image = match first["source_type"].as_str() {
        Some("image") => Some(first["uuid"].as_str().map(str::to_string).or(image_ref).unwrap_or_default()),
        _ => None,
    };
    let mut volumes: Vec<BootVolume> = Vec::new();
    for mapping in &mappings {
        match (mapping["source_type"].as_str(), mapping["destination_type"].as_str()) {
            (Some("image"), Some("local")) if boot_index(mapping) == Some(0) => continue,
            (Some("volume"), Some("volume") | None) => {}
            _ => return Err(bad_request("osmo-openstack-sim boots with an image and existing volumes only")),
        }
        let tag = mapping["tag"].as_str().map(str::to_string);
        if tag.is_some() && version < (2, 42) && version != (2, 32) {
            return Err(bad_request("Invalid input for field/attribute block_device_mapping_v2."));
        }
        let id = mapping["uuid"].as_str().unwrap_or_default();
        let volume = usable_volume(cloud, token, id)
            .ok_or_else(|| bad_request(&format!("Block Device Mapping is Invalid: failed to get volume {id}.")))?;
        if volume.status != "available" || volumes.iter().any(|v| v.volume_id == id) {
            return Err(bad_request(&format!(
                "Invalid volume: volume '{id}' status must be 'available'. Currently in '{}'",
                volume.status
            )));
        }
        let root = boot_index(mapping) == Some(0);
        if root && !volume.bootable {
            return Err(bad_request(&format!("Block Device {id} is not bootable.")));
        }
        volumes.push(BootVolume {
            volume_id: id.to_string(),
            root,
            device: mapping["device_name"].as_str().map(str::to_string),
            tag,
            delete_on_termination: mapping["delete_on_termination"].as_bool().unwrap_or(false),
        });
    }
    // The root volume first, as Nova lists a server's attachments.
    volumes.sort_by_key(|v| !v.root);
    Ok(BootDisks { image, volumes })
}

/// A volume Nova may use for the token: its project's, or any for an admin.
fn usable_volume<'a>(cloud: &'a Cloud, token: &Token, id: &str) -> Option<&'a Volume> {
    cloud.volumes.get(id).filter(|v| token.is_admin() || v.project_id == token.project_id)
}

/// The device Nova gives a volume it attaches beside a root disk on `root` and the `taken`
/// devices: the letter asked for under the root's prefix (`/dev/vdc` asked beside `/dev/sda`
/// becomes `/dev/sdc`) when it is free, else the first free letter.
fn device_name(root: &str, asked: Option<&str>, taken: &[String]) -> String {
    let prefix = root.strip_suffix(|c: char| c.is_ascii_lowercase()).unwrap_or(root);
    let free = |letter: char| {
        let device = format!("{prefix}{letter}");
        (device != root && !taken.contains(&device)).then_some(device)
    };
    asked
        .and_then(|a| a.chars().last())
        .filter(char::is_ascii_lowercase)
        .and_then(free)
        .or_else(|| ('b'..='z').find_map(free))
        .unwrap_or_else(|| format!("{prefix}z"))
}

/// Nova reserves a volume for a server (Cinder's attachment made, the volume `attaching`),
/// records it, and has it `in-use` after the attach latency.
fn attach(cloud: &mut Cloud, server_id: &str, attached: ServerVolume, latencies: &Latencies, now: Instant) {
    if let Some(volume) = cloud.volumes.get_mut(&attached.volume_id) {
        volume.status = "attaching";
        volume.updated = Some(now_text());
        volume.attachment = Some(VolumeAttachment {
            id: attached.attachment_id.clone(),
            server_id: server_id.to_string(),
            device: attached.device.clone(),
            host: None,
            attached_at: None,
        });
    }
    let event = Event::VolumeAttached { volume: attached.volume_id.clone(), server: server_id.to_string() };
    cloud.server_mut(server_id).expect("the server exists").volumes.push(attached);
    cloud.schedule(now + latencies.attach, event);
}

/// A volume attachment as Nova shows it at `version`.
fn render_attachment(server: &Server, v: &ServerVolume, version: (u32, u32)) -> Value {
    let mut attachment = json!({"volumeId": v.volume_id, "serverId": server.id, "device": v.device});
    if version < (2, 89) {
        attachment["id"] = json!(v.volume_id);
    } else {
        attachment["attachment_id"] = json!(v.attachment_id);
        attachment["bdm_uuid"] = json!(v.bdm_uuid);
    }
    if version >= (2, 70) {
        attachment["tag"] = json!(v.tag);
    }
    if version >= (2, 79) {
        attachment["delete_on_termination"] = json!(v.delete_on_termination);
    }
    attachment
}

fn attached<'a>(server: &'a Server, volume: &str) -> Result<&'a ServerVolume, ApiError> {
    server
        .volume(volume)
        .ok_or_else(|| not_found(&format!("Instance {} is not attached to volume {volume}", server.id)))
}

fn attach_volume(
    cloud: &mut Cloud,
    call: &Call,
    token: &Token,
    id: &str,
    version: (u32, u32),
    latencies: &Latencies,
    now: Instant,
) -> ApiResult {
    let server = visible(cloud, token, id)?.clone();
    if server.locked && !token.is_admin() {
        return Err(conflict(&format!("Instance {id} is locked")));
    }
    if !matches!(server.vm_state, "active" | "stopped" | "paused" | "suspended") || server.task_state.is_some() {
        return Err(conflict(&format!(
            "Cannot 'attach_volume' instance {id} while it is in vm_state {}",
            server.vm_state
        )));
    }
    let body = call.json(bad_request)?;
    let spec = &body["volumeAttachment"];
    let volume_id =
        spec["volumeId"].as_str().ok_or_else(|| bad_request("Invalid input for field/attribute volumeAttachment."))?;
    for (field, since) in [("tag", (2, 49)), ("delete_on_termination", (2, 79))] {
        if !spec[field].is_null() && version < since {
            return Err(bad_request(&format!(
                "Invalid input for field/attribute volumeAttachment. Value: {spec}. Additional properties are not allowed ('{field}' was unexpected)"
            )));
        }
    }
    let volume = usable_volume(cloud, token, volume_id)
        .ok_or_else(|| not_found(&format!("Volume {volume_id} could not be found.")))?;
    match (&volume.attachment, volume.status) {
        (_, "available") => {}
        (Some(a), _) => {
            return Err(bad_request(&format!(
                "Invalid volume: volume {volume_id} is already attached to instances: {}",
                a.server_id
            )));
        }
        (None, status) => {
            return Err(bad_request(&format!(
                "Invalid volume: volume '{volume_id}' status must be 'available'. Currently in '{status}'"
            )));
        }
    }
    let taken: Vec<String> = server.volumes.iter().map(|v| v.device.clone()).collect();
    let device = device_name(server.root_device(), spec["device"].as_str(), &taken);
    let tag = spec["tag"].as_str().map(str::to_string);
    let delete_on_termination = spec["delete_on_termination"].as_bool().unwrap_or(false);
    let volume = ServerVolume::new(volume_id, device.clone(), tag.clone(), delete_on_termination);
    attach(cloud, id, volume, latencies, now);
    let mut shown = json!({"id": volume_id, "serverId": id, "volumeId": volume_id, "device": device});
    if version >= (2, 70) {
        shown["tag"] = json!(tag);
    }
    if version >= (2, 79) {
        shown["delete_on_termination"] = json!(delete_on_termination);
    }
    Ok((StatusCode::OK, json!({"volumeAttachment": shown})))
}

fn update_attachment(
    cloud: &mut Cloud,
    call: &Call,
    token: &Token,
    id: &str,
    volume: &str,
    version: (u32, u32),
) -> ApiResult {
    let body = call.json(bad_request)?;
    let spec = &body["volumeAttachment"];
    if spec["volumeId"].as_str() != Some(volume) || version < (2, 85) {
        return Err(bad_request("osmo-openstack-sim does not swap volumes; it changes delete_on_termination only"));
    }
    attached(visible(cloud, token, id)?, volume)?;
    let server = cloud.server_mut(id).expect("visible");
    if let Some(delete) = spec["delete_on_termination"].as_bool() {
        server.volumes.iter_mut().filter(|v| v.volume_id == volume).for_each(|v| v.delete_on_termination = delete);
    }
    Ok((StatusCode::ACCEPTED, Value::Null))
}

fn detach_volume(
    cloud: &mut Cloud,
    token: &Token,
    id: &str,
    volume: &str,
    latencies: &Latencies,
    now: Instant,
) -> ApiResult {
    let server = visible(cloud, token, id)?;
    if server.locked && !token.is_admin() {
        return Err(conflict(&format!("Instance {id} is locked")));
    }
    if attached(server, volume)?.root {
        return Err(bad_request("Cannot detach a root device volume"));
    }
    if let Some(task) = server.task_state {
        return Err(conflict(&format!("Cannot 'detach_volume' instance {id} while it is in task_state {task}")));
    }
    let Some(found) = cloud.volumes.get_mut(volume).filter(|v| v.status == "in-use") else {
        return Err(bad_request(
            "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.",
        ));
    };
    found.status = "detaching";
    found.updated = Some(now_text());
    cloud
        .schedule(now + latencies.detach, Event::VolumeDetached { volume: volume.to_string(), server: id.to_string() });
    Ok((StatusCode::ACCEPTED, Value::Null))
}

fn delete_server(cloud: &mut Cloud, token: &Token, id: &str, latencies: &Latencies, now: Instant) -> ApiResult {
    let locked = visible(cloud, token, id)?.locked;
    if locked && !token.is_admin() {
        return Err(conflict(&format!("Instance {id} is locked")));
    }
    let server = cloud.server_mut(id).expect("visible");
    if server.task_state != Some("deleting") {
        server.task_state = Some("deleting");
        cloud.schedule(now + latencies.delete, Event::Deleted(id.to_string()));
    }
    Ok((StatusCode::NO_CONTENT, Value::Null))
}

fn action(
    cloud: &mut Cloud,
    call: &Call,
    token: &Token,
    id: &str,
    version: (u32, u32),
    latencies: &Latencies,
    now: Instant,
) -> ApiResult {
    let body = call.json(bad_request)?;
    let Some((name, argument)) = body.as_object().and_then(|o| o.iter().next()) else {
        return Err(bad_request("There is no such action"));
    };
    let server = visible(cloud, token, id)?.clone();
    if server.locked && !token.is_admin() && name != "unlock" {
        return Err(conflict(&format!("Instance {id} is locked")));
    }
    let busy = |what: &str| match server.task_state {
        Some(task) => Err(conflict(&format!("Cannot '{what}' instance {id} while it is in task_state {task}"))),
        None => Ok(()),
    };
    let in_state = |what: &str, states: &[&str]| {
        if states.contains(&server.vm_state) {
            Ok(())
        } else {
            Err(conflict(&format!("Cannot '{what}' instance {id} while it is in vm_state {}", server.vm_state)))
        }
    };
    match name.as_str() {
        "os-stop" => {
            busy("stop")?;
            in_state("stop", &["active", "error"])?;
            cloud.server_mut(id).expect("seen").task_state = Some("powering-off");
            cloud.schedule(now + latencies.stop, Event::Stopped(id.to_string()));
            Ok((StatusCode::ACCEPTED, Value::Null))
        }
        "os-start" => {
            busy("start")?;
            in_state("start", &["stopped"])?;
            cloud.server_mut(id).expect("seen").task_state = Some("powering-on");
            cloud.schedule(now + latencies.start, Event::Started(id.to_string()));
            Ok((StatusCode::ACCEPTED, Value::Null))
        }
        "lock" => {
            let server = cloud.server_mut(id).expect("seen");
            server.locked = true;
            server.locked_reason = argument["locked_reason"].as_str().map(str::to_string);
            Ok((StatusCode::ACCEPTED, Value::Null))
        }
        "unlock" => {
            let server = cloud.server_mut(id).expect("seen");
            server.locked = false;
            server.locked_reason = None;
            Ok((StatusCode::ACCEPTED, Value::Null))
        }
        "createImage" => {
            busy("createImage")?;
            in_state("createImage", &["active", "stopped", "paused", "suspended"])?;
            let image_name =
                argument["name"].as_str().ok_or_else(|| bad_request("Invalid input for field/attribute name."))?;
            let image_id = new_id();
            let created = now_text();
            let base = server.image_id.as_ref().and_then(|i| cloud.images.get(i));
            let format =
                |field: &str, default: &str| base.and_then(|b| b[field].as_str()).unwrap_or(default).to_string();
            let mut image = json!({"id": image_id, "name": image_name, "status": "queued", "visibility": "private",
                "protected": false, "owner": server.project_id, "container_format": format("container_format", "bare"),
                "disk_format": format("disk_format", "qcow2"), "size": null, "virtual_size": null, "checksum": null,
                "os_hash_algo": null, "os_hash_value": null, "min_disk": server.flavor.disk, "min_ram": 0,
                "tags": [], "os_hidden": false, "created_at": created, "updated_at": created,
                "self": format!("/v2/images/{image_id}"), "file": format!("/v2/images/{image_id}/file"),
                "schema": "/v2/schemas/image", "image_type": "snapshot", "instance_uuid": id,
                "user_id": server.user_id, "base_image_ref": server.image_id.clone().unwrap_or_default(),
                "owner_project_name": cloud.projects.get(&server.project_id), "boot_roles": token.roles.join(",")})
            .as_object()
            .cloned()
            .expect("an object");
            for (key, value) in argument["metadata"].as_object().into_iter().flatten() {
                image.insert(key.clone(), value.clone());
            }
            cloud.images.insert(image_id.clone(), image);
            cloud.server_mut(id).expect("seen").task_state = Some("image_uploading");
            cloud.schedule(now + latencies.snapshot / 2, Event::SnapshotSaving { image: image_id.clone() });
            cloud.schedule(
                now + latencies.snapshot,
                Event::SnapshotActive { image: image_id.clone(), server: id.to_string() },
            );
            if version >= (2, 45) {
                Ok((StatusCode::ACCEPTED, json!({"image_id": image_id})))
            } else {
                Ok((StatusCode::ACCEPTED, json!({LOCATION: format!("{}/image/v2/images/{image_id}", call.base_url)})))
            }
        }
        other => Err(bad_request(&format!("osmo-openstack-sim does not do the server action {other}"))),
    }
}

fn create_keypair(cloud: &mut Cloud, call: &Call, token: &Token) -> ApiResult {
    let body = call.json(bad_request)?;
    let name = body["keypair"]["name"].as_str().ok_or_else(|| bad_request("Keypair data is invalid"))?.to_string();
    let key = (token.user_id.clone(), name.clone());
    if cloud.keypairs.contains_key(&key) {
        return Err(conflict(&format!("Key pair '{name}' already exists.")));
    }
    let public_key = body["keypair"]["public_key"].as_str().map_or_else(
        || format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{:043x} sim", crate::model::fingerprint(&name)),
        str::to_string,
    );
    let n = crate::model::fingerprint(&public_key);
    let fingerprint: Vec<String> = (0..16).map(|i| format!("{:02x}", (n >> (8 * i)) & 0xff)).collect();
    let made = json!({"name": name, "public_key": public_key, "fingerprint": fingerprint.join(":"), "type": "ssh",
        "user_id": token.user_id, "created_at": now_text(), "deleted": false, "deleted_at": null, "id": cloud.keypairs.len() + 1});
    cloud.keypairs.insert(key, made.clone());
    Ok((StatusCode::OK, json!({"keypair": made})))
}

fn render_service(s: &crate::model::ComputeService) -> Value {
    json!({"id": s.id, "binary": s.binary, "host": s.host, "zone": s.zone,
        "status": if s.enabled { "enabled" } else { "disabled" },
        "state": if s.forced_down { "down" } else { "up" },
        "disabled_reason": s.disabled_reason, "forced_down": s.forced_down, "updated_at": s.updated})
}

fn update_service(cloud: &mut Cloud, call: &Call, token: &Token, id: &str, version: (u32, u32)) -> ApiResult {
    admin_only(token)?;
    if version < (2, 53) {
        return Err(not_found("osmo-openstack-sim addresses services by UUID only (microversion 2.53 or newer)"));
    }
    let body = call.json(bad_request)?;
    let service =
        cloud.services.iter_mut().find(|s| s.id == id).ok_or_else(|| not_found(&format!("Service {id} not found.")))?;
    match body["status"].as_str() {
        Some("disabled") => {
            service.enabled = false;
            service.disabled_reason = body["disabled_reason"].as_str().map(str::to_string);
        }
        Some("enabled") => {
            service.enabled = true;
            service.disabled_reason = None;
        }
        Some(other) => return Err(bad_request(&format!("Invalid status {other}"))),
        None => {}
    }
    if let Some(down) = body["forced_down"].as_bool() {
        service.forced_down = down;
    }
    service.updated = now_text();
    Ok((StatusCode::OK, json!({"service": render_service(service)})))
}

#[cfg(test)]
mod tests {
    use super::{device_name, name_matches};

    #[test]
    fn an_attached_volume_takes_the_roots_prefix_and_a_free_letter() {
        let taken = ["/dev/vdb".to_string()];
        assert_eq!(device_name("/dev/vda", Some("/dev/vdc"), &taken), "/dev/vdc");
        assert_eq!(device_name("/dev/sda", Some("/dev/vdc"), &[]), "/dev/sdc");
        assert_eq!(device_name("/dev/vda", Some("/dev/vdb"), &taken), "/dev/vdc");
        assert_eq!(device_name("/dev/vda", None, &taken), "/dev/vdc");
        assert_eq!(device_name("/dev/sda", None, &[]), "/dev/sdb");
    }

    #[test]
    fn the_name_filter_understands_anchors_and_escapes() {
        assert!(name_matches(r"^web\.1\(a\)$", "web.1(a)"));
        assert!(!name_matches(r"^web\.1$", "web.10"));
        assert!(name_matches("web", "my-web-1"));
        assert!(name_matches("^web", "web-1") && !name_matches("^web", "a-web"));
    }
}
