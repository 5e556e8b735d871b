//! What the replacement keeps: a server with every server-level attribute set is moved, within
//! one Nova and into the second one (the parallel-Nova layout), and what Nova reports of the
//! source before and of the replacement after is compared field by field (not osmo's status).
//! Only the documented differences are allowed: IDs, host, zone, image, creation time, and
//! osmo's UID in the metadata.

use std::collections::BTreeMap;

use osmo::migration::planner::UID_KEY;
use osmo::openstack::compute::{NetworkAttachment, Server, UserData};
use osmo::openstack::session::{Microversion, Request};
use osmo::openstack::{Service, Session};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{jsonpath, kubectl_ok, kubectl_stdin_ok};
use crate::migration::{apply_migration_to, clean_up, setup, wait_condition};
use crate::openstack::{deleted, fixtures, server_spec, session, unique, wait_status};
use crate::parallel_nova::{INTO_NOVA2, NOVA2_HOST, nova2};

/// What must survive the move, as Nova shows it.
#[derive(Debug, PartialEq)]
struct Kept {
    name: String,
    status: String,
    description: Option<String>,
    tags: Vec<String>,
    metadata: BTreeMap<String, String>,
    key_name: Option<String>,
    user_data: Option<Option<UserData>>,
    config_drive: bool,
    hostname: Option<String>,
    locked: Option<bool>,
    /// Name, vCPUs, RAM, disk, ephemeral, swap and extra specs, as the server was booted.
    flavor: Value,
    security_groups: Vec<String>,
}

fn kept(server: &Server) -> Kept {
    let mut tags = server.tags.clone().unwrap_or_default();
    tags.sort();
    let mut security_groups: Vec<String> = server.security_groups.iter().map(|g| g.name.clone()).collect();
    security_groups.sort();
    security_groups.dedup();
    let f = &server.flavor;
    Kept {
        name: server.name.clone(),
        status: server.status.clone(),
        description: server.description.clone(),
        tags,
        // osmo marks its replacement with the migration's UID (documented).
        metadata: server.metadata.iter().filter(|(k, _)| *k != UID_KEY).map(|(k, v)| (k.clone(), v.clone())).collect(),
        key_name: server.key_name.clone(),
        user_data: server.user_data.clone(),
        config_drive: server.config_drive,
        hostname: server.hostname.clone(),
        locked: server.locked,
        flavor: json!([f.original_name, f.vcpus, f.ram, f.disk, f.ephemeral, f.swap, f.extra_specs]),
        security_groups,
    }
}

async fn group_members(admin: &Session, group: &str) -> Vec<String> {
    let request = Request::new(Service::Compute, Method::GET, format!("/os-server-groups/{group}"));
    let body: Value = admin.send(request).await.unwrap().json().unwrap();
    serde_json::from_value(body["server_group"]["members"].clone()).unwrap()
}

/// A key pair of the acting user (another user's is refused: KeyPairNotUsable) in a Nova.
async fn make_key_pair(nova: &Session, name: &str) {
    let public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMahWcdc9gPKGvee+CSqUD0OfjoEkcwfMGRbbApWJQ9m osmo-e2e";
    let body = json!({"keypair": {"name": name, "public_key": public_key}});
    nova.send(Request::new(Service::Compute, Method::POST, "/os-keypairs").json(body)).await.unwrap();
}

/// An anti-affinity server group in a Nova; returns its ID.
async fn make_group(nova: &Session, name: &str) -> String {
    let body = json!({"server_group": {"name": name, "policy": "anti-affinity"}});
    let request =
        Request::new(Service::Compute, Method::POST, "/os-server-groups").microversion(Microversion(2, 64)).json(body);
    let group: Value = nova.send(request).await.unwrap().json().unwrap();
    group["server_group"]["id"].as_str().unwrap().to_string()
}

async fn delete_group_and_key_pair(nova: &Session, group: &str, key: &str) {
    let delete = |path: String| Request::new(Service::Compute, Method::DELETE, path);
    nova.send(delete(format!("/os-server-groups/{group}"))).await.unwrap();
    nova.send(delete(format!("/os-keypairs/{key}"))).await.unwrap();
}

#[tokio::test]
async fn a_server_keeps_its_attributes_group_and_power_state() {
    moves_with_every_attribute(Destination::OtherZone).await;
}

#[tokio::test]
async fn a_server_moved_into_the_second_nova_keeps_its_attributes_group_and_power_state() {
    moves_with_every_attribute(Destination::SecondNova).await;
}

/// Where the server moves.
#[derive(Clone, Copy, PartialEq)]
enum Destination {
    /// Zone icehouse of the same Nova: the replacement joins the same group.
    OtherZone,
    /// The second Nova: the key pair and a group of the same name and policy exist there.
    SecondNova,
}

async fn moves_with_every_attribute(into: Destination) {
    let test = if into == Destination::OtherZone { "im-fidelity" } else { "im-fidelity2" };
    let (env, ns, op) = setup(test);
    let admin = session("admin");
    let target = if into == Destination::OtherZone { session("admin") } else { nova2() };
    let f = fixtures(&admin).await;
    let name = unique("fidelity");
    let key = unique("e2e-key");
    make_key_pair(&admin, &key).await;
    let group = make_group(&admin, &name).await;
    let target_group = match into {
        Destination::OtherZone => group.clone(),
        Destination::SecondNova => {
            make_key_pair(&target, &key).await;
            make_group(&target, &name).await
        }
    };

    // A secret in the user data: it must reach no status, event or log.
    let secret_marker = "e2e-secret-Qx7t";
    let user_data = base64_of(&format!("#cloud-config\npassword: {secret_marker}\n"));
    let mut spec =
        server_spec(&name, &f, "havana", vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }]);
    spec.metadata.insert("role".into(), "web".into());
    spec.description = Some("the front end".into());
    spec.tags = vec!["web".into(), "blue".into()];
    spec.config_drive = true;
    spec.hostname = Some("front-1".into());
    spec.user_data = Some(UserData(user_data));
    spec.key_name = Some(key.clone());
    spec.server_group = Some(group.clone());
    let id = admin.compute().create_server(&spec).await.unwrap();
    wait_status(&admin, &id, "ACTIVE").await;
    admin.compute().stop_server(&id).await.unwrap();
    let before = wait_status(&admin, &id, "SHUTOFF").await;
    assert!(before.user_data.as_ref().is_some_and(Option::is_some), "the source has user data: {before:?}");

    let (to, host) = match into {
        Destination::OtherZone => ("{availabilityZone: icehouse}", "icehouse-1"),
        Destination::SecondNova => (INTO_NOVA2, NOVA2_HOST),
    };
    apply_migration_to(env, &ns, "fidelity", &id, to, "");
    wait_condition(env, &ns, "fidelity", "Ready", 240);
    let new_id = jsonpath(env, &ns, "im/fidelity", "{.status.target.serverId}");
    let after = target.compute().server(&new_id).await.unwrap().expect("the replacement exists");
    assert!(deleted(&admin, &id).await, "the source still exists");
    assert_eq!(kept(&after), kept(&before));
    assert_eq!(after.host.as_deref(), Some(host));
    assert_eq!(
        group_members(&target, &target_group).await,
        std::slice::from_ref(&new_id),
        "the replacement is the group's member"
    );
    assert_eq!(jsonpath(env, &ns, "im/fidelity", "{.status.bootBase.serverGroupID}"), target_group);
    assert_eq!(jsonpath(env, &ns, "im/fidelity", "{.status.notKept}"), "");

    // The user data is kept in a Secret owned by the migration, and nowhere else.
    let secret = format!("osmo-user-data-{}", jsonpath(env, &ns, "im/fidelity", "{.metadata.uid}"));
    assert_eq!(jsonpath(env, &ns, "im/fidelity", "{.status.source.userDataSecret}"), secret);
    let owner = jsonpath(env, &ns, &format!("secret/{secret}"), "{.metadata.ownerReferences[0].name}");
    assert_eq!(owner, "fidelity");
    let status = kubectl_ok(env, &["-n", &ns, "get", "im", "fidelity", "-o", "json"]);
    let events = kubectl_ok(env, &["-n", &ns, "get", "events", "-o", "json"]);
    for (what, text) in [("status", &status), ("events", &events), ("operator log", &op.logs())] {
        assert!(
            !text.contains(secret_marker) && !text.contains(spec.user_data.as_ref().unwrap().0.as_str()),
            "user data in the {what}"
        );
    }

    clean_up(&target, &[&new_id], &[]).await;
    delete_group_and_key_pair(&admin, &group, &key).await;
    if into == Destination::SecondNova {
        delete_group_and_key_pair(&target, &target_group, &key).await;
    }
}

/// Base64 (standard, padded), as Nova takes user data.
fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A migration as the project's own user (no admin role): Nova does not show it the server's
/// user data, so the move is refused unless the user accepts booting without it.
#[tokio::test]
async fn without_admin_unreadable_user_data_is_refused_unless_accepted() {
    let (env, ns, _op) = setup("im-userdata");
    let (admin, demo) = (session("admin"), session("demo"));
    let f = fixtures(&admin).await;
    let spec = server_spec(
        &unique("vm"),
        &f,
        "havana",
        vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: None }],
    );
    let id = demo.compute().create_server(&spec).await.unwrap();
    wait_status(&demo, &id, "ACTIVE").await;
    let as_demo = |name: &str, extra: &str| {
        format!(
            "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: {name}}}\n\
             spec: {{server: {id}, source: {{secretName: clouds, cloud: demo}}, target: {{availabilityZone: icehouse}}{extra}}}\n"
        )
    };

    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &as_demo("refused", ""));
    wait_condition(env, &ns, "refused", "Failed", 120);
    assert_eq!(
        jsonpath(env, &ns, "im/refused", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "UserDataUnknown"
    );
    let message = jsonpath(env, &ns, "im/refused", "{.status.conditions[?(@.type==\"Failed\")].message}");
    assert!(message.contains("spec.acceptUnreadableUserData") && message.contains("Nothing was changed."), "{message}");
    assert_eq!(admin.compute().server(&id).await.unwrap().unwrap().status, "ACTIVE");

    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &as_demo("accepted", ", acceptUnreadableUserData: true"));
    wait_condition(env, &ns, "accepted", "Ready", 300);
    assert_eq!(jsonpath(env, &ns, "im/accepted", "{.status.notKept[*].attribute}"), "user_data");
    let new_id = jsonpath(env, &ns, "im/accepted", "{.status.target.serverId}");
    assert!(deleted(&admin, &id).await, "the source still exists");
    let replacement = admin.compute().server(&new_id).await.unwrap().expect("the replacement exists");
    assert_eq!((replacement.status.as_str(), replacement.user_data), ("ACTIVE", Some(None)));
    clean_up(&admin, &[&new_id], &[]).await;
}
