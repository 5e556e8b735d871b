//! The replacement's ports: made by osmo for each of the source's ports, in order, with what
//! users set on them, and each floating IP on the port standing for the one that had it;
//! within one Nova and into the second one.

use osmo::openstack::compute::NetworkAttachment;
use osmo::openstack::network::Port;
use osmo::openstack::session::Request;
use osmo::openstack::{Service, Session};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::jsonpath;
use crate::migration::{apply_migration_to, assert_moved, clean_up, setup, wait_condition};
use crate::openstack::{fixtures, server_spec, session, unique, wait_status};
use crate::parallel_nova::{INTO_NOVA2, assert_moved_to_nova2, nova2};

async fn neutron(admin: &Session, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = Request::new(Service::Network, method, path.to_string());
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = admin.send(request).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    response.json().unwrap_or(Value::Null)
}

/// A second tenant network with a subnet of `cidr` routed to `public`, so that it takes
/// floating IPs (each test its own `cidr`: a router takes no two that overlap).
async fn routed_network(admin: &Session, cidr: &str) -> (String, String, String) {
    let net = neutron(admin, Method::POST, "/v2.0/networks", Some(json!({"network": {"name": unique("net2")}}))).await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let subnet = json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4}});
    let subnet = neutron(admin, Method::POST, "/v2.0/subnets", Some(subnet)).await;
    let subnet = subnet["subnet"]["id"].as_str().unwrap().to_string();
    let routers = neutron(admin, Method::GET, "/v2.0/routers", None).await;
    let router = routers["routers"][0]["id"].as_str().expect("a router to public").to_string();
    let path = format!("/v2.0/routers/{router}/add_router_interface");
    neutron(admin, Method::PUT, &path, Some(json!({"subnet_id": subnet}))).await;
    (net, subnet, router)
}

/// What a user sets on a port, as Neutron shows it (the MAC of an address pair that is the
/// port's own left out).
fn user_settings(port: &Port) -> Value {
    let pairs: Vec<_> = port
        .allowed_address_pairs
        .iter()
        .map(|p| (p.ip_address.clone(), p.mac_address.clone().filter(|m| *m != port.mac_address)))
        .collect();
    let mut tags = port.tags.clone();
    tags.sort();
    json!({"name": port.name, "description": port.description, "tags": tags, "pairs": pairs,
        "security": port.port_security_enabled, "groups": port.security_groups, "network": port.network_id})
}

#[tokio::test]
async fn each_port_is_made_like_the_sources_and_keeps_its_floating_ip() {
    ports_are_made_like_the_sources(false).await;
}

#[tokio::test]
async fn into_the_second_nova_each_port_is_made_like_the_sources_and_keeps_its_floating_ip() {
    ports_are_made_like_the_sources(true).await;
}

async fn ports_are_made_like_the_sources(into_nova2: bool) {
    let (env, ns, _op) = setup(if into_nova2 { "ports2" } else { "ports" });
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let cidr = if into_nova2 { "192.0.2.128/25" } else { "192.0.2.0/25" };
    let (net2, subnet2, router) = routed_network(&admin, cidr).await;

    // Two NICs on private and one on net2, made by Nova (so deleted with the source).
    let on = |id: &str| NetworkAttachment::Network { id: id.to_string(), fixed_ip: None };
    let spec = server_spec(&unique("vm"), &f, "havana", vec![on(&f.private), on(&f.private), on(&net2)]);
    let id = admin.compute().create_server(&spec).await.unwrap();
    wait_status(&admin, &id, "ACTIVE").await;
    // The NICs in Nova's order (the request's); Neutron lists ports in an order of its own.
    let request = Request::new(Service::Compute, Method::GET, format!("/servers/{id}/os-interface"));
    let interfaces: Value = admin.send(request).await.unwrap().json().unwrap();
    let nics: Vec<String> = interfaces["interfaceAttachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["port_id"].as_str().unwrap().to_string())
        .collect();
    let ports = admin.network().ports(&[("device_id", &id)]).await.unwrap();
    let network_of = |port: &str| ports.iter().find(|p| p.id == port).unwrap().network_id.clone();
    let on_private: Vec<&String> = nics.iter().filter(|p| network_of(p) == f.private).collect();
    assert_eq!(on_private.len(), 2, "{nics:?}");
    let second = on_private[1].clone();
    let net2_port = nics.iter().find(|p| network_of(p) == net2).unwrap().clone();
    // What users set: a keepalived pair and a name on the second private NIC, port security off
    // with tags on the net2 NIC.
    let vrrp = json!({"port": {"name": "vrrp", "description": "keepalived peer",
        "allowed_address_pairs": [{"ip_address": "198.51.100.250"}]}});
    neutron(&admin, Method::PUT, &format!("/v2.0/ports/{second}"), Some(vrrp)).await;
    let open = json!({"port": {"port_security_enabled": false, "security_groups": [], "name": "open"}});
    neutron(&admin, Method::PUT, &format!("/v2.0/ports/{net2_port}"), Some(open)).await;
    admin.network().set_port_tags(&net2_port, &["team-a".into(), "db".into()]).await.unwrap();
    let source_ports = admin.network().ports(&[("device_id", &id)]).await.unwrap();

    let fip_second = admin.network().create_floating_ip(&f.public, None).await.unwrap();
    admin.network().update_floating_ip(&fip_second.id, Some(&second), None).await.unwrap();
    let fip_net2 = admin.network().create_floating_ip(&f.public, None).await.unwrap();
    admin.network().update_floating_ip(&fip_net2.id, Some(&net2_port), None).await.unwrap();

    let target = if into_nova2 { nova2() } else { session("admin") };
    apply_migration_to(env, &ns, "web", &id, if into_nova2 { INTO_NOVA2 } else { "{availabilityZone: icehouse}" }, "");
    wait_condition(env, &ns, "web", "Ready", 300);
    let new_id = if into_nova2 {
        assert_moved_to_nova2(&admin, &target, env, &ns, "web", &id, Some(&fip_second.id)).await
    } else {
        assert_moved(&admin, env, &ns, "web", &id, &fip_second.id).await
    };

    // From Neutron: each floating IP is on the replacement's port that stands for its source
    // port, and every port has what its user set.
    let made = admin.network().ports(&[("device_id", &new_id)]).await.unwrap();
    assert_eq!(made.len(), 3, "{made:?}");
    let origins = jsonpath(env, &ns, "im/web", "{range .status.targetPorts[*]}{.origin} {end}");
    assert_eq!(origins.trim(), "Created Created Created");
    let port_of = |source: &str| {
        let path = format!("{{.status.targetPorts[?(@.sourcePortId==\"{source}\")].portId}}");
        jsonpath(env, &ns, "im/web", &path)
    };
    for source in &source_ports {
        let standing = port_of(&source.id);
        let replacement = made.iter().find(|p| p.id == standing).unwrap_or_else(|| panic!("{standing} of {made:?}"));
        assert_eq!(user_settings(replacement), user_settings(source), "source port {}", source.id);
        assert!(replacement.fixed_ips.iter().all(|ip| !source.fixed_ips.contains(ip)), "a new address");
    }
    for (fip, source) in [(&fip_second.id, &second), (&fip_net2.id, &net2_port)] {
        let on = admin.network().floating_ip(fip).await.unwrap().unwrap().port_id.unwrap();
        let replacement = made.iter().find(|p| p.id == on).unwrap();
        assert_eq!(on, port_of(source), "floating IP {fip} is not on the port standing for {source}");
        let was = source_ports.iter().find(|p| p.id == *source).unwrap();
        assert_eq!(user_settings(replacement), user_settings(was));
    }

    clean_up(&target, &[&new_id], &[&fip_second.id, &fip_net2.id]).await;
    let path = format!("/v2.0/routers/{router}/remove_router_interface");
    neutron(&admin, Method::PUT, &path, Some(json!({"subnet_id": subnet2}))).await;
    neutron(&admin, Method::DELETE, &format!("/v2.0/networks/{net2}"), None).await;
}
