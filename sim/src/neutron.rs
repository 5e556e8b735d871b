//! Neutron v2.0: ports, floating IPs, networks, subnets, security groups, extensions and QoS
//! policies (none), listed with Neutron's filters and `fields`.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::model::{Cloud, PortError, Token, new_id, now_text};
use crate::{ApiError, ApiResult, Call, keystone};

/// The extensions osmo asks about, as a Neutron with ML2/OVS has them.
const EXTENSIONS: &[&str] = &[
    "allowed-address-pairs",
    "binding",
    "dns-integration",
    "external-net",
    "extra_dhcp_opt",
    "port-security",
    "qos",
    "router",
    "security-group",
    "standard-attr-tag",
];

fn error(status: StatusCode, kind: &str, message: &str) -> ApiError {
    ApiError { status, body: json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}) }
}

fn bad_request(message: &str) -> ApiError {
    error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn may_see(object: &Map<String, Value>, token: &Token) -> bool {
    token.is_admin()
        || object.get("project_id").is_none_or(|p| p == token.project_id.as_str())
        || object.get("shared") == Some(&json!(true))
        || object.get("router:external") == Some(&json!(true))
}

pub fn handle(cloud: &mut Cloud, call: &Call) -> ApiResult {
    let token = keystone::authenticate(cloud, call)?;
    let Some(("v2.0", rest)) = call.segments.split_first().map(|(a, b)| (*a, b)) else {
        return Err(error(StatusCode::NOT_FOUND, "HTTPNotFound", "The resource could not be found."));
    };
    match (call.method.clone(), rest) {
        (Method::GET, ["extensions"]) => {
            let extensions: Vec<Value> = EXTENSIONS
                .iter()
                .map(|a| json!({"alias": a, "name": a, "description": "", "updated": "2013-01-01T10:00:00-00:00", "links": []}))
                .collect();
            Ok((StatusCode::OK, json!({"extensions": extensions})))
        }
        (Method::GET, ["qos", "policies"]) => Ok((StatusCode::OK, json!({"policies": []}))),
        (Method::GET, ["ports"]) => list(call, &token, "ports", &cloud.ports),
        (Method::GET, ["floatingips"]) => list(call, &token, "floatingips", &cloud.floating_ips),
        (Method::GET, ["networks"]) => list(call, &token, "networks", &cloud.networks),
        (Method::GET, ["subnets"]) => list(call, &token, "subnets", &cloud.subnets),
        (Method::GET, ["security-groups"]) => list(call, &token, "security_groups", &cloud.security_groups),
        (Method::GET, ["ports", id]) => show(&token, "port", "Port", id, &cloud.ports),
        (Method::GET, ["floatingips", id]) => show(&token, "floatingip", "FloatingIP", id, &cloud.floating_ips),
        (Method::GET, ["networks", id]) => show(&token, "network", "Network", id, &cloud.networks),
        (Method::POST, ["ports"]) => {
            let body = call.json(bad_request)?;
            let fields = body["port"].as_object().cloned().ok_or_else(|| bad_request("Resource body required"))?;
            match cloud.new_port(&token.project_id, &fields) {
                Ok(port) => Ok((StatusCode::CREATED, json!({"port": port}))),
                Err(e) => Err(port_error(e)),
            }
        }
        (Method::PUT, ["ports", id]) => {
            let body = call.json(bad_request)?;
            let port = cloud.ports.get_mut(*id).filter(|p| may_see(p, &token)).ok_or_else(|| missing("Port", id))?;
            for (field, value) in body["port"].as_object().into_iter().flatten() {
                if matches!(field.as_str(), "id" | "network_id" | "mac_address" | "fixed_ips" | "project_id") {
                    return Err(bad_request(&format!("osmo-openstack-sim does not change a port's {field}")));
                }
                port.insert(field.clone(), value.clone());
            }
            touch(port);
            Ok((StatusCode::OK, json!({"port": port})))
        }
        (Method::PUT, ["ports", id, "tags"]) => {
            let body = call.json(bad_request)?;
            let port = cloud.ports.get_mut(*id).filter(|p| may_see(p, &token)).ok_or_else(|| missing("Port", id))?;
            port.insert("tags".into(), body["tags"].clone());
            touch(port);
            Ok((StatusCode::OK, json!({"tags": body["tags"]})))
        }
        (Method::DELETE, ["ports", id]) => {
            if !cloud.ports.get(*id).is_some_and(|p| may_see(p, &token)) || !cloud.delete_port(id) {
                return Err(missing("Port", id));
            }
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        (Method::POST, ["floatingips"]) => create_floating_ip(cloud, call, &token),
        (Method::PUT, ["floatingips", id]) => {
            let body = call.json(bad_request)?;
            let update = &body["floatingip"];
            if !cloud.floating_ips.get(*id).is_some_and(|f| may_see(f, &token)) {
                return Err(missing("FloatingIP", id));
            }
            let (port_id, fixed) = match update["port_id"].as_str() {
                None => (Value::Null, Value::Null),
                Some(port_id) => {
                    let port = cloud.ports.get(port_id).ok_or_else(|| missing("Port", port_id))?;
                    let addresses: Vec<&Value> =
                        port["fixed_ips"].as_array().into_iter().flatten().map(|ip| &ip["ip_address"]).collect();
                    let fixed = match &update["fixed_ip_address"] {
                        Value::String(ip) if addresses.iter().any(|a| *a == ip) => json!(ip),
                        Value::String(ip) => {
                            return Err(bad_request(&format!("Port {port_id} does not have fixed ip {ip}.")));
                        }
                        _ => addresses
                            .first()
                            .map(|a| (*a).clone())
                            .ok_or_else(|| bad_request(&format!("Port {port_id} has no fixed IP")))?,
                    };
                    let taken = cloud
                        .floating_ips
                        .values()
                        .find(|f| f["id"] != *id && f["port_id"] == port_id && f["fixed_ip_address"] == fixed);
                    if let Some(other) = taken {
                        return Err(error(
                            StatusCode::CONFLICT,
                            "FloatingIPPortAlreadyAssociated",
                            &format!(
                                "Cannot associate floating IP {id} with port {port_id} using fixed IP {fixed}, as that fixed IP already has a floating IP {}.",
                                other["id"]
                            ),
                        ));
                    }
                    (json!(port_id), fixed)
                }
            };
            let fip = cloud.floating_ips.get_mut(*id).expect("checked");
            fip.insert("status".into(), json!(if port_id.is_null() { "DOWN" } else { "ACTIVE" }));
            fip.insert("port_id".into(), port_id);
            fip.insert("fixed_ip_address".into(), fixed);
            touch(fip);
            Ok((StatusCode::OK, json!({"floatingip": shown(fip)})))
        }
        (Method::DELETE, ["floatingips", id]) => {
            let Some(fip) = cloud.floating_ips.get(*id).filter(|f| may_see(f, &token)) else {
                return Err(missing("FloatingIP", id));
            };
            let (subnet, address) = (fip["__subnet"].as_str().map(str::to_string), fip["floating_ip_address"].clone());
            cloud.floating_ips.remove(*id);
            if let (Some(subnet), Some(address)) = (subnet, address.as_str()) {
                cloud.release_address(&subnet, address);
            }
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        _ => Err(error(StatusCode::NOT_FOUND, "HTTPNotFound", "The resource could not be found.")),
    }
}

fn touch(object: &mut Map<String, Value>) {
    let revision = object.get("revision_number").and_then(Value::as_u64).unwrap_or(0) + 1;
    object.insert("revision_number".into(), json!(revision));
    object.insert("updated_at".into(), json!(now_text()));
}

fn missing(kind: &str, id: &str) -> ApiError {
    error(StatusCode::NOT_FOUND, &format!("{kind}NotFound"), &format!("{kind} {id} could not be found."))
}

fn port_error(e: PortError) -> ApiError {
    let message = e.message();
    match e {
        PortError::NetworkNotFound(_) => error(StatusCode::NOT_FOUND, "NetworkNotFound", &message),
        PortError::AddressInUse(_) => error(StatusCode::CONFLICT, "IpAddressAlreadyAllocated", &message),
        PortError::MacInUse => error(StatusCode::CONFLICT, "MacAddressInUse", &message),
        PortError::Exhausted => error(StatusCode::CONFLICT, "IpAddressGenerationFailure", &message),
        PortError::NoSubnet => bad_request(&message),
    }
}

/// The fields a caller sees (internal ones, named `__…`, are left out).
fn shown(object: &Map<String, Value>) -> Map<String, Value> {
    object.iter().filter(|(k, _)| !k.starts_with("__")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn show(
    token: &Token,
    key: &str,
    kind: &str,
    id: &str,
    objects: &std::collections::BTreeMap<String, Map<String, Value>>,
) -> ApiResult {
    let object = objects.get(id).filter(|o| may_see(o, token)).ok_or_else(|| missing(kind, id))?;
    Ok((StatusCode::OK, json!({key: shown(object)})))
}

/// Whether an object's field matches one filter value as Neutron compares them.
fn matches(object: &Map<String, Value>, field: &str, wanted: &str) -> bool {
    if field == "fixed_ips" {
        let Some((key, value)) = wanted.split_once('=') else { return false };
        return object["fixed_ips"].as_array().into_iter().flatten().any(|ip| ip[key] == value);
    }
    match object.get(field) {
        Some(Value::String(s)) => s == wanted,
        Some(Value::Bool(b)) => b.to_string().eq_ignore_ascii_case(wanted),
        Some(Value::Number(n)) => n.to_string() == wanted,
        Some(Value::Array(items)) => items.iter().any(|i| i == wanted),
        Some(Value::Null) => wanted.is_empty(),
        _ => false,
    }
}

fn list(
    call: &Call,
    token: &Token,
    key: &str,
    objects: &std::collections::BTreeMap<String, Map<String, Value>>,
) -> ApiResult {
    let fields = call.query_values("fields");
    let mut filters: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, _) in &call.query {
        if !matches!(k.as_str(), "fields" | "limit" | "marker" | "sort_key" | "sort_dir")
            && !filters.iter().any(|(f, _)| f == k)
        {
            filters.push((k, call.query_values(k)));
        }
    }
    let found: Vec<Value> = objects
        .values()
        .filter(|o| may_see(o, token))
        .filter(|o| filters.iter().all(|(field, values)| values.iter().any(|v| matches(o, field, v))))
        .map(|o| {
            let visible = shown(o);
            if fields.is_empty() {
                Value::Object(visible)
            } else {
                Value::Object(visible.into_iter().filter(|(k, _)| fields.contains(&k.as_str())).collect())
            }
        })
        .collect();
    Ok((StatusCode::OK, json!({key: found})))
}

fn create_floating_ip(cloud: &mut Cloud, call: &Call, token: &Token) -> ApiResult {
    let body = call.json(bad_request)?;
    let wanted = &body["floatingip"];
    let network = wanted["floating_network_id"].as_str().unwrap_or_default().to_string();
    if !cloud.networks.get(&network).is_some_and(|n| n["router:external"] == true) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "ExternalNetworkNotFound",
            &format!("External network {network} could not be found."),
        ));
    }
    let address = wanted["floating_ip_address"].as_str();
    let subnet = cloud
        .subnet_for(&network, address)
        .ok_or_else(|| bad_request("No subnet of the network holds the address."))?;
    let Some(taken) = cloud.allocate(&subnet, address) else {
        return Err(match address {
            Some(a) => error(
                StatusCode::CONFLICT,
                "IpAddressAlreadyAllocated",
                &format!("IP address {a} already allocated in subnet {subnet}"),
            ),
            None => {
                error(StatusCode::CONFLICT, "IpAddressGenerationFailure", "No more IP addresses available on network.")
            }
        });
    };
    let id = new_id();
    let now = now_text();
    let fip = json!({"id": id, "floating_ip_address": taken, "floating_network_id": network, "router_id": null,
        "port_id": null, "fixed_ip_address": null, "status": "DOWN", "project_id": token.project_id,
        "tenant_id": token.project_id, "description": "", "tags": [], "port_details": null, "dns_domain": "",
        "dns_name": "", "qos_policy_id": null, "revision_number": 0, "created_at": now, "updated_at": now,
        "__subnet": subnet})
    .as_object()
    .cloned()
    .expect("an object");
    cloud.floating_ips.insert(id, fip.clone());
    Ok((StatusCode::CREATED, json!({"floatingip": shown(&fip)})))
}
