//! Contract tests of the OpenStack client against the real Keystone, Nova, Glance and Neutron
//! started by `hack/openstack/up.sh` (clouds.yaml in `OSMO_E2E_CLOUDS`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use osmo::openstack::clouds;
use osmo::openstack::compute::{ComputeService, NetworkAttachment, Server, ServerCreate};
use osmo::openstack::error::TransportKind;
use osmo::openstack::network::PortCreate;
use osmo::openstack::{Error, Session};

/// The metadata key that marks what a test created, as the operator marks its artifacts.
pub const MARK: &str = "osmo_test";

pub fn clouds_yaml() -> String {
    let path = std::env::var("OSMO_E2E_CLOUDS").expect("OSMO_E2E_CLOUDS is not set: run the tests with hack/test.sh");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn session(cloud: &str) -> Session {
    Session::new(clouds::parse(&clouds_yaml(), cloud).unwrap(), None).unwrap()
}

/// A session of the `admin` cloud's credentials scoped to another project.
pub fn admin_in_project(project_id: &str) -> Session {
    in_project("admin", project_id)
}

/// A session of a cloud's credentials scoped to another project.
pub fn in_project(cloud: &str, project_id: &str) -> Session {
    Session::new(clouds::parse(&clouds_yaml(), cloud).unwrap().in_project(project_id).unwrap(), None).unwrap()
}

/// Keystone as the cloud admin, over its REST API (osmo's client makes no identity calls
/// beyond logging in).
pub struct KeystoneAdmin {
    url: String,
    token: String,
    user_id: String,
}

impl KeystoneAdmin {
    pub async fn login() -> Self {
        let (token, body) = rest_login("admin").await;
        let url = clouds::parse(&clouds_yaml(), "admin").unwrap().auth.auth_url.trim_end_matches('/').to_string();
        KeystoneAdmin { url, token, user_id: body["token"]["user"]["id"].as_str().unwrap().to_string() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        request = request.header("X-Auth-Token", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap().error_for_status().unwrap();
        response.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// A new project of the default domain, where the admin user holds `role`; its id.
    pub async fn project_with_admin_as(&self, name: &str, role: &str) -> String {
        let body = serde_json::json!({"project": {"name": name, "domain_id": "default"}});
        let made = self.call(reqwest::Method::POST, "/projects", Some(body)).await;
        let id = made["project"]["id"].as_str().unwrap().to_string();
        let assignment = self.assignment(&id, &self.user_id, role).await;
        self.call(reqwest::Method::PUT, &assignment, None).await;
        id
    }

    /// The admin user no longer holds `role` in the project.
    pub async fn revoke_admin_role(&self, project_id: &str, role: &str) {
        let assignment = self.assignment(project_id, &self.user_id, role).await;
        self.call(reqwest::Method::DELETE, &assignment, None).await;
    }

    /// The user of that name (of the default domain) holds `role` in the project.
    pub async fn grant_role(&self, project_id: &str, user: &str, role: &str) {
        let users = self.call(reqwest::Method::GET, &format!("/users?name={user}&domain_id=default"), None).await;
        let user_id = users["users"][0]["id"].as_str().unwrap_or_else(|| panic!("no user {user}"));
        let assignment = self.assignment(project_id, user_id, role).await;
        self.call(reqwest::Method::PUT, &assignment, None).await;
    }

    async fn assignment(&self, project_id: &str, user_id: &str, role: &str) -> String {
        let roles = self.call(reqwest::Method::GET, &format!("/roles?name={role}"), None).await;
        let role_id = roles["roles"][0]["id"].as_str().unwrap_or_else(|| panic!("no role {role}"));
        format!("/projects/{project_id}/users/{user_id}/roles/{role_id}")
    }

    pub async fn delete_project(&self, project_id: &str) {
        let disable = serde_json::json!({"project": {"enabled": false}});
        self.call(reqwest::Method::PATCH, &format!("/projects/{project_id}"), Some(disable)).await;
        self.call(reqwest::Method::DELETE, &format!("/projects/{project_id}"), None).await;
    }
}

/// A port of the OpenStack stack, as `hack/openstack/up.sh` was told it (its defaults else).
pub fn port(variable: &str, default: u16) -> u16 {
    std::env::var(variable).ok().and_then(|p| p.parse().ok()).unwrap_or(default)
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{:x}", (nanos as u64) ^ u64::from(std::process::id()))
}

/// Polls OpenStack with a short, growing interval until `check` says yes or `deadline` passes.
pub async fn until<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

pub async fn wait_status(s: &Session, id: &str, status: &str) -> Server {
    until(Duration::from_secs(120), &format!("server {id} to be {status}"), || async {
        let server = s.compute().server(id).await.unwrap()?;
        assert_ne!(server.status, "ERROR", "server {id} went to ERROR: {:?}", server.fault);
        (server.status == status && server.task_state.is_none()).then_some(server)
    })
    .await
}

/// Whether Nova says the server is deleted: gone, or destroyed and shown `DELETED` until its
/// record goes (for a while on a busy machine).
pub async fn deleted(s: &Session, id: &str) -> bool {
    s.compute().server(id).await.unwrap().is_none_or(|server| server.status == "DELETED")
}

pub async fn wait_gone(s: &Session, id: &str) {
    until(Duration::from_secs(120), &format!("server {id} to be gone"), || async {
        s.compute().server(id).await.unwrap().is_none().then_some(())
    })
    .await
}

pub struct Fixtures {
    pub flavor: String,
    pub image: String,
    pub private: String,
    pub public: String,
}

pub async fn fixtures(s: &Session) -> Fixtures {
    let flavor = s.compute().find_flavor("m1.tiny").await.unwrap().expect("flavor m1.tiny").id;
    let image = s.image().images_named("base").await.unwrap().pop().expect("image base").id;
    let private = s.network().find_network("private").await.unwrap().expect("network private").id;
    let public = s.network().find_network("public").await.unwrap().expect("network public").id;
    Fixtures { flavor, image, private, public }
}

pub fn server_spec(name: &str, f: &Fixtures, zone: &str, networks: Vec<NetworkAttachment>) -> ServerCreate {
    ServerCreate {
        name: name.into(),
        image_id: f.image.clone(),
        flavor_id: f.flavor.clone(),
        metadata: BTreeMap::from([(MARK.to_string(), name.to_string())]),
        idempotency_key: MARK.into(),
        availability_zone: Some(zone.into()),
        networks,
        ..Default::default()
    }
}

#[tokio::test]
async fn password_auth_reaches_every_service_through_the_catalog() {
    catalog_calls(&session("admin"), &session("demo")).await;
}

/// The contract of logging in and reaching each service; also run against the simulator
/// (`simulator.rs`).
pub async fn catalog_calls(admin: &Session, demo: &Session) {
    assert_eq!(admin.compute_microversion().await.unwrap().map(|v| v.to_string()).as_deref(), Some("2.95"));
    let f = fixtures(admin).await;
    assert!(!f.flavor.is_empty() && !f.image.is_empty());
    let subnets = admin.network().subnets(&[("network_id", &f.private)]).await.unwrap();
    assert_eq!(subnets[0].cidr, "198.51.100.0/24");
    assert!(demo.compute().flavors().await.unwrap().iter().any(|fl| fl.name == "m1.tiny"));
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_permanent_error() {
    let yaml = clouds_yaml().replace("password:", "password: wrong-");
    let s = Session::new(clouds::parse(&yaml, "demo").unwrap(), None).unwrap();
    let error = s.compute().flavors().await.unwrap_err();
    assert!(matches!(error, Error::Auth { status: 401, .. }), "{error:?}");
    assert!(!error.is_transient());
    assert!(!format!("{error} {error:?}").contains("wrong-"), "the password leaked into the error");
}

/// A token for a cloud of clouds.yaml, taken over Keystone's REST API directly (for the
/// calls osmo's client does not make); returns it with the token body.
async fn rest_login(cloud: &str) -> (String, serde_json::Value) {
    osmo::openstack::session::install_tls_provider();
    let c = clouds::parse(&clouds_yaml(), cloud).unwrap();
    let password = secrecy::ExposeSecret::expose_secret(c.auth.password.as_ref().unwrap()).to_string();
    let login = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": c.auth.username, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": c.auth.project_name, "domain": {"name": "Default"}}}}});
    let url = format!("{}/auth/tokens", c.auth.auth_url.trim_end_matches('/'));
    let response = reqwest::Client::new().post(url).json(&login).send().await.unwrap();
    let token = response.headers()["X-Subject-Token"].to_str().unwrap().to_string();
    (token, response.json().await.unwrap())
}

/// DELETE over REST with a token from [`rest_login`]; the answer must be a success.
async fn rest_delete(token: &str, url: &str) {
    reqwest::Client::new().delete(url).header("X-Auth-Token", token).send().await.unwrap().error_for_status().unwrap();
}

#[tokio::test]
async fn application_credentials_authenticate() {
    // The demo user makes itself an application credential, over Keystone's REST API.
    let (token, body) = rest_login("demo").await;
    let auth_url = clouds::parse(&clouds_yaml(), "demo").unwrap().auth.auth_url.trim_end_matches('/').to_string();
    let http = reqwest::Client::new();
    let user = body["token"]["user"]["id"].as_str().unwrap().to_string();
    let credentials = format!("{auth_url}/users/{user}/application_credentials");
    let made: serde_json::Value = http
        .post(&credentials)
        .header("X-Auth-Token", &token)
        .json(
            &serde_json::json!({"application_credential": {"name": unique("appcred"), "roles": [{"name": "member"}]}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        made["application_credential"]["id"].as_str().unwrap_or_else(|| panic!("{made}")),
        made["application_credential"]["secret"].as_str().unwrap(),
    );
    let yaml = format!(
        "clouds:\n  ac:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {auth_url}\n      application_credential_id: {id}\n      application_credential_secret: {secret}\n    region_name: RegionOne\n"
    );
    let s = Session::new(clouds::parse(&yaml, "ac").unwrap(), None).unwrap();
    assert!(s.compute().flavors().await.unwrap().iter().any(|fl| fl.name == "m1.tiny"));
    rest_delete(&token, &format!("{credentials}/{id}")).await;
}

#[tokio::test]
async fn the_migration_calls_work_end_to_end() {
    migration_calls(&session("admin")).await;
}

/// Every call a migration makes, in a migration's order, with what osmo relies on in each
/// answer; also run against the simulator (`simulator.rs`).
pub async fn migration_calls(admin: &Session) {
    let f = fixtures(admin).await;
    let name = unique("contract");

    // Boot on the old host, on a port made beforehand (it survives the server's deletion).
    let port = admin
        .network()
        .create_port(&PortCreate {
            network_id: f.private.clone(),
            name: name.clone(),
            description: name.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = admin
        .compute()
        .create_server(&server_spec(&name, &f, "havana", vec![NetworkAttachment::Port(port.id.clone())]))
        .await
        .unwrap();
    let server = wait_status(admin, &id, "ACTIVE").await;
    assert_eq!(server.host.as_deref(), Some("havana-1"));
    assert_eq!(server.metadata.get(MARK), Some(&name));
    assert!(admin.compute().servers_on_host("havana-1").await.unwrap().servers.iter().any(|s| s.id == id));
    assert_eq!(admin.compute().servers_named(&name).await.unwrap().len(), 1);
    assert!(admin.compute().volume_attachments(&id).await.unwrap().is_empty());

    // A floating IP on its port, allocated with a chosen address.
    let probe = admin.network().create_floating_ip(&f.public, None).await.unwrap();
    let address = probe.floating_ip_address.clone();
    admin.network().delete_floating_ip(&probe.id).await.unwrap();
    let fip = admin.network().create_floating_ip(&f.public, Some(&address)).await.unwrap();
    assert_eq!(fip.floating_ip_address, address);
    let fixed = port.fixed_ips[0].ip_address.clone();
    let fip = admin.network().update_floating_ip(&fip.id, Some(&port.id), Some(&fixed)).await.unwrap();
    assert_eq!(
        (fip.port_id.as_deref(), fip.fixed_ip_address.as_deref()),
        (Some(port.id.as_str()), Some(fixed.as_str()))
    );

    // Stop, snapshot, wait for Glance.
    admin.compute().stop_server(&id).await.unwrap();
    wait_status(admin, &id, "SHUTOFF").await;
    let snapshot_meta = BTreeMap::from([(MARK.to_string(), name.clone())]);
    let image = admin.compute().create_image(&id, &name, &snapshot_meta, MARK).await.unwrap();
    let active = until(Duration::from_secs(120), "snapshot active", || async {
        admin.image().get(&image).await.unwrap().filter(|i| i.status == "active")
    })
    .await;
    assert_eq!(active.property(MARK), Some(name.as_str()));
    assert_eq!(admin.image().images_with_property(MARK, &name).await.unwrap()[0].id, image);
    // What verifies a snapshot: its data's checksum and size, its server, its owner.
    assert!(active.checksum.is_some() && active.size.unwrap_or(0) > 0, "{active:?}");
    assert_eq!(active.property("instance_uuid"), Some(id.as_str()));
    assert_eq!(active.owner.as_deref(), Some(admin.project_id().await.unwrap().unwrap().as_str()));
    // Protected, it cannot be deleted (by anyone) until unprotected.
    assert!(admin.image().set_protected(&image, true).await.unwrap().protected);
    let refused = admin.image().delete(&image).await.unwrap_err();
    assert!(!refused.is_transient(), "deleting a protected image is refused for good: {refused}");
    assert_eq!(admin.image().get(&image).await.unwrap().map(|i| i.status), Some("active".to_string()));
    assert!(!admin.image().set_protected(&image, false).await.unwrap().protected);

    // Start and stop again, then delete: the pre-made port and its floating IP survive.
    admin.compute().start_server(&id).await.unwrap();
    wait_status(admin, &id, "ACTIVE").await;
    admin.compute().delete_server(&id).await.unwrap();
    wait_gone(admin, &id).await;
    admin.compute().delete_server(&id).await.unwrap();
    let kept = admin.network().floating_ip(&fip.id).await.unwrap().unwrap();
    assert_eq!(kept.port_id.as_deref(), Some(port.id.as_str()));

    // Boot the replacement from the snapshot on the new host, on the same port.
    let mut replacement = server_spec(&name, &f, "icehouse", vec![NetworkAttachment::Port(port.id.clone())]);
    replacement.image_id = image.clone();
    let new_id = admin.compute().create_server(&replacement).await.unwrap();
    let new = wait_status(admin, &new_id, "ACTIVE").await;
    assert_eq!(new.host.as_deref(), Some("icehouse-1"));
    assert_eq!(new.image_id.as_deref(), Some(image.as_str()));

    // A second port with a given MAC; the floating IP moves to it, then off.
    let other = admin
        .network()
        .create_port(&PortCreate {
            network_id: f.private.clone(),
            name: format!("{name}-b"),
            description: format!("{name}-b"),
            mac_address: Some("fa:16:3e:12:34:56".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(other.mac_address, "fa:16:3e:12:34:56");
    let moved = admin.network().update_floating_ip(&fip.id, Some(&other.id), None).await.unwrap();
    assert_eq!(moved.port_id.as_deref(), Some(other.id.as_str()));
    let freed = admin.network().update_floating_ip(&fip.id, None, None).await.unwrap();
    assert_eq!(freed.port_id, None);
    assert_eq!(admin.network().floating_ips(&[("floating_ip_address", &address)]).await.unwrap().len(), 1);

    // Clean up; deleting what is gone already is not an error.
    admin.compute().delete_server(&new_id).await.unwrap();
    wait_gone(admin, &new_id).await;
    admin.network().delete_floating_ip(&fip.id).await.unwrap();
    for p in [&port.id, &other.id] {
        admin.network().delete_port(p).await.unwrap();
        admin.network().delete_port(p).await.unwrap();
    }
    admin.image().delete(&image).await.unwrap();
    admin.image().delete(&image).await.unwrap();
    assert!(admin.image().get(&image).await.unwrap().is_none_or(|i| i.status == "deleted"));
}

#[tokio::test]
async fn a_fixed_ip_is_kept_by_recreating_its_port() {
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let name = unique("fixedip");
    // A key pair (Nova makes one below microversion 2.92), a security group and a chosen
    // fixed IP: the rest of what a replacement is booted with.
    let (token, _) = rest_login("admin").await;
    let nova = format!("http://127.0.0.1:{}/v2.1", port("OSMO_NOVA_PORT", 8774));
    let http = reqwest::Client::new();
    let keypair = http
        .post(format!("{nova}/os-keypairs"))
        .header("X-Auth-Token", &token)
        .header("OpenStack-API-Version", "compute 2.91")
        .json(&serde_json::json!({"keypair": {"name": name}}))
        .send()
        .await
        .unwrap();
    assert!(keypair.status().is_success(), "{:?}", keypair.text().await);
    // A free address high in the subnet, where Neutron's own choices rarely go.
    let used: Vec<String> = admin
        .network()
        .ports(&[("network_id", &f.private)])
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.fixed_ips.into_iter().map(|ip| ip.ip_address))
        .collect();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let address = (0..50)
        .map(|i| format!("198.51.100.{}", 200 + (nanos + i) % 50))
        .find(|a| !used.contains(a))
        .expect("a free address in 198.51.100.200-249");
    let mut spec = server_spec(
        &name,
        &f,
        "havana",
        vec![NetworkAttachment::Network { id: f.private.clone(), fixed_ip: Some(address.clone()) }],
    );
    spec.key_name = Some(name.clone());
    spec.security_groups = vec!["default".into()];
    let id = admin.compute().create_server(&spec).await.unwrap();
    let server = wait_status(&admin, &id, "ACTIVE").await;
    assert_eq!(server.key_name.as_deref(), Some(name.as_str()));
    assert!(server.security_groups.iter().any(|g| g.name == "default"), "{:?}", server.security_groups);
    let nova_port = admin.network().ports(&[("device_id", &id)]).await.unwrap().pop().unwrap();
    assert!(nova_port.device_owner.starts_with("compute:"));
    assert_eq!(nova_port.fixed_ips[0].ip_address, address);
    admin.compute().delete_server(&id).await.unwrap();
    wait_gone(&admin, &id).await;
    // Nova deleted its port; a new one takes the same address and MAC.
    until(Duration::from_secs(60), "Nova's port to go", || async {
        admin.network().ports(&[("device_id", &id)]).await.unwrap().is_empty().then_some(())
    })
    .await;
    let again = admin
        .network()
        .create_port(&PortCreate {
            network_id: f.private.clone(),
            name: name.clone(),
            description: name.clone(),
            fixed_ips: nova_port.fixed_ips.clone(),
            mac_address: Some(nova_port.mac_address.clone()),
            security_groups: Some(nova_port.security_groups.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (again.fixed_ips.clone(), again.mac_address.clone()),
        (nova_port.fixed_ips.clone(), nova_port.mac_address.clone())
    );
    let new_id = admin
        .compute()
        .create_server(&server_spec(&name, &f, "icehouse", vec![NetworkAttachment::Port(again.id.clone())]))
        .await
        .unwrap();
    wait_status(&admin, &new_id, "ACTIVE").await;
    admin.compute().delete_server(&new_id).await.unwrap();
    wait_gone(&admin, &new_id).await;
    admin.network().delete_port(&again.id).await.unwrap();
    rest_delete(&token, &format!("{nova}/os-keypairs/{name}")).await;
}

#[tokio::test]
async fn this_nova_has_no_nova_network() {
    let error = session("admin").nova_network().bulk_floating_ips().await.unwrap_err();
    assert!(matches!(error, Error::NovaNetworkUnavailable { status: 404 | 410, .. }), "{error:?}");
    let error = session("admin").nova_network().create_bulk("203.0.113.250/32", "osmo-test", None).await.unwrap_err();
    assert!(matches!(error, Error::NovaNetworkUnavailable { status: 404 | 410, .. }), "{error:?}");
    // os-floating-ips below 2.36 is Nova's proxy to Neutron here, and answers.
    session("admin").nova_network().floating_ips().await.unwrap();
}

#[tokio::test]
async fn a_long_operation_outlives_short_lived_tokens() {
    // Cloud `admin-short` authenticates at a Keystone that issues 20-second tokens.
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = issued.clone();
    let s = Session::new(clouds::parse(&clouds_yaml(), "admin-short").unwrap(), None).unwrap().with_observer(
        std::sync::Arc::new(move |service, status| {
            if service == osmo::openstack::Service::Identity && status == 201 {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }),
    );
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_secs(50) {
        assert!(s.compute().find_flavor("m1.tiny").await.unwrap().is_some());
        assert!(s.network().find_network("private").await.unwrap().is_some());
        calls += 2;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let tokens = issued.load(std::sync::atomic::Ordering::SeqCst);
    assert!(tokens >= 3, "{calls} calls over 50 s with 20-second tokens took only {tokens} token(s)");
}

/// TLS against a real TLS server with a private CA: the test control plane's kube-apiserver.
/// Its answer to a Keystone request is an HTTP error, which proves the handshake passed.
#[tokio::test]
async fn tls_is_verified_with_the_clouds_ca_bundle() {
    let kubeconfig = std::env::var("OSMO_E2E_KUBECONFIG").expect("OSMO_E2E_KUBECONFIG");
    let pki = std::path::Path::new(&kubeconfig).parent().unwrap().join("pki");
    let ca = std::fs::read(pki.join("ca.crt")).unwrap();
    let server = crate::harness::kubectl_ok(
        crate::harness::env(),
        &["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"],
    );
    let cloud = |extra: &str| {
        let yaml = format!(
            "clouds:\n  tls:\n    auth:\n      auth_url: {server}/v3\n      username: u\n      password: p\n{extra}"
        );
        clouds::parse(&yaml, "tls").unwrap()
    };

    let unverified = Session::new(cloud(""), None).unwrap().compute().flavors().await.unwrap_err();
    assert!(
        matches!(unverified, Error::Transport { kind: TransportKind::Tls, .. }),
        "an unknown CA must fail the handshake: {unverified}"
    );
    assert!(!unverified.is_transient(), "a TLS failure is not retried");

    let trusted =
        Session::new(cloud("    cacert: ca.crt\n"), Some(&ca)).unwrap().compute().flavors().await.unwrap_err();
    assert!(matches!(trusted, Error::Auth { .. }), "with the CA bundle the handshake must pass: {trusted}");

    let insecure = Session::new(cloud("    verify: false\n"), None).unwrap().compute().flavors().await.unwrap_err();
    assert!(matches!(insecure, Error::Auth { .. }), "verify: false must skip verification: {insecure}");
}

/// Runs `hack/openstack/compute.sh ACTION HOST`.
pub fn extra_compute(action: &str, host: &str) {
    let script = crate::harness::repo().join("hack/openstack/compute.sh");
    let status = std::process::Command::new("bash").arg(script).args([action, host]).status().unwrap();
    assert!(status.success(), "compute.sh {action} {host} failed");
}

/// Starts an extra nova-compute on `host` and waits for its service to report up.
pub async fn extra_compute_up(admin: &Session, host: &str) -> ComputeService {
    extra_compute("start", host);
    until(Duration::from_secs(120), "the extra nova-compute to report up", || async {
        admin.compute().compute_services(Some(host)).await.unwrap().into_iter().find(|s| s.state == "up")
    })
    .await
}

#[tokio::test]
async fn compute_services_are_disabled_enabled_forced_down_and_retired() {
    let admin = session("admin");
    let host = unique("spare");
    let service = extra_compute_up(&admin, &host).await;
    let compute = admin.compute();
    assert_eq!((service.binary.as_str(), service.status.as_str()), ("nova-compute", "enabled"));

    let disabled = compute.disable_service(&service, "osmo contract test").await.unwrap();
    assert_eq!(
        (disabled.status.as_str(), disabled.disabled_reason.as_deref()),
        ("disabled", Some("osmo contract test"))
    );
    let listed = compute.compute_services(Some(&host)).await.unwrap().pop().unwrap();
    assert_eq!(listed.disabled_reason.as_deref(), Some("osmo contract test"));
    assert_eq!(compute.enable_service(&service).await.unwrap().status, "enabled");

    // Retiring: the process stops, the service is forced down, then its record is deleted.
    extra_compute("stop", &host);
    let down = compute.force_down_service(&service, true).await.unwrap();
    assert_eq!(down.forced_down, Some(true));
    assert_eq!(compute.compute_services(Some(&host)).await.unwrap().pop().unwrap().state, "down");
    compute.delete_service(&service).await.unwrap();
    assert!(compute.compute_services(Some(&host)).await.unwrap().is_empty());
    compute.delete_service(&service).await.unwrap();
}
