//! The client's behaviour against scripted answers: tokens, retries, non-idempotent creates,
//! microversion fallbacks and the legacy nova-network APIs (recorded answers).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::Method;
use serde_json::json;

use super::compute::{AbsoluteLimits, ComputeService, ServerCreate};
use super::error::{Error, Service};
use super::fake::{self, Call, CannedServer, FakeCloud, ok, status};
use super::network::SecurityGroup;

fn server(id: &str, name: &str, uid: &str) -> serde_json::Value {
    json!({"id": id, "name": name, "status": "BUILD", "flavor": {"original_name": "m1.tiny"}, "image": {"id": "img"}, "metadata": {"osmo.dev/migration": uid}})
}

fn create_spec() -> ServerCreate {
    ServerCreate {
        name: "web-1".into(),
        image_id: "img".into(),
        flavor_id: "1".into(),
        metadata: BTreeMap::from([("osmo.dev/migration".into(), "uid-1".into())]),
        idempotency_key: "osmo.dev/migration".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_token_is_reused_and_renewed_once_on_401() {
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    let cloud = FakeCloud::start("2.95", move |call: &Call| {
        // The first token is "revoked" after two calls.
        if counter.fetch_add(1, Ordering::SeqCst) >= 2 && call.token.as_deref() == Some("tok-1") {
            return status(401, "The request you have made requires authentication.");
        }
        ok(json!({"flavors": []}))
    })
    .await;
    let session = cloud.session("secret");
    for _ in 0..4 {
        session.compute().flavors().await.unwrap();
    }
    assert_eq!(cloud.tokens_issued(), 2);
    let tokens: Vec<_> = cloud.calls().into_iter().map(|c| c.token.unwrap()).collect();
    assert_eq!(tokens, ["tok-1", "tok-1", "tok-1", "tok-2", "tok-2"]);
}

#[tokio::test]
async fn a_wrong_password_is_a_permanent_auth_error_without_the_password() {
    let cloud = FakeCloud::start("2.95", |_: &Call| ok(json!({}))).await;
    let error = cloud.session("wrong").compute().flavors().await.unwrap_err();
    assert!(matches!(error, Error::Auth { status: 401, .. }), "{error:?}");
    assert!(!error.is_transient());
    let text = format!("{error} {error:?}");
    assert!(text.contains("requires authentication") && !text.contains("wrong"), "{text}");
    assert!(cloud.calls().is_empty());
}

#[tokio::test]
async fn transient_errors_of_reads_are_retried() {
    let failures = Arc::new(AtomicU32::new(0));
    let f = failures.clone();
    let cloud = FakeCloud::start("2.95", move |_: &Call| {
        if f.fetch_add(1, Ordering::SeqCst) < 2 {
            status(503, "busy")
        } else {
            ok(json!({"flavors": [{"id": "1", "name": "m1.tiny"}]}))
        }
    })
    .await;
    let flavor = cloud.session("secret").compute().find_flavor("m1.tiny").await.unwrap();
    assert_eq!(flavor.unwrap().id, "1");
    assert_eq!(cloud.calls().len(), 3);
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_carry_the_request_id() {
    let cloud = FakeCloud::start("2.95", |_: &Call| status(400, "Invalid flavorRef")).await;
    let error = cloud.session("secret").compute().create_server(&create_spec()).await.unwrap_err();
    assert_eq!(error.to_string(), "nova POST /servers: HTTP 400 (request req-fake): Invalid flavorRef");
    assert_eq!(cloud.calls().len(), 1);
}

#[tokio::test]
async fn a_server_named_by_name_is_looked_up_in_the_own_project_only() {
    let cloud = FakeCloud::start("2.95", |call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::GET, "/v2.1/servers/web-1") => status(404, "no server of that ID"),
        (&Method::GET, p) if p.starts_with("/v2.1/servers/detail?") && !p.contains("all_tenants") => {
            ok(json!({"servers": [server("s-1", "web-1", "uid-1")]}))
        }
        _ => status(404, "unexpected"),
    })
    .await;
    let found = cloud.session("secret").compute().find_server("web-1").await.unwrap();
    assert_eq!(found.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s-1"]);
    assert!(cloud.calls().iter().all(|c| !c.path.contains("all_tenants")), "{:?}", cloud.calls());
}

#[tokio::test]
async fn a_failed_create_is_not_repeated_when_the_server_exists() {
    let cloud = FakeCloud::start("2.95", |call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::POST, "/v2.1/servers") => status(504, "gateway timeout"),
        (&Method::GET, p) if p.starts_with("/v2.1/servers/detail?name=") => {
            ok(json!({"servers": [server("s-1", "web-1", "uid-1")]}))
        }
        _ => status(404, "unexpected"),
    })
    .await;
    let id = cloud.session("secret").compute().create_server(&create_spec()).await.unwrap();
    assert_eq!(id, "s-1");
    let posts = cloud.calls().iter().filter(|c| c.method == Method::POST).count();
    assert_eq!(posts, 1, "the create was sent again although the server existed");
}

#[tokio::test]
async fn a_failed_create_that_made_nothing_is_left_to_the_caller_to_send_again() {
    let cloud = FakeCloud::start("2.95", |call: &Call| match (&call.method, call.path.as_str()) {
        (&Method::POST, "/v2.1/servers") => status(503, "busy"),
        // A same-named server of another migration is not ours.
        (&Method::GET, _) => ok(json!({"servers": [server("other", "web-1", "uid-9")]})),
        _ => status(404, "unexpected"),
    })
    .await;
    let error = cloud.session("secret").compute().create_server(&create_spec()).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    // A resend is the migration's decision: it records it, and then looks for late twins.
    let posts = cloud.calls().iter().filter(|c| c.method == Method::POST).count();
    assert_eq!(posts, 1, "the client sent the create again on its own");
}

#[tokio::test]
async fn a_key_pair_is_read_by_its_encoded_name_and_another_users_is_none() {
    let cloud = FakeCloud::start("2.95", |call: &Call| match call.path.as_str() {
        "/v2.1/os-keypairs/ops%20key" => {
            ok(json!({"keypair": {"name": "ops key", "user_id": "u-1", "fingerprint": "aa:bb", "type": "ssh"}}))
        }
        _ => status(404, "Keypair theirs not found for user u-1"),
    })
    .await;
    let session = cloud.session("secret");
    let found = session.compute().key_pair("ops key").await.unwrap().expect("the user's key pair");
    assert_eq!((found.name.as_str(), found.user_id.as_deref()), ("ops key", Some("u-1")));
    assert_eq!(session.compute().key_pair("theirs").await.unwrap(), None);
    assert_eq!(cloud.calls().len(), 2, "a missing key pair is an answer, not retried");
}

#[tokio::test]
async fn create_image_reads_the_location_header_before_2_45() {
    let cloud = FakeCloud::start("2.44", |call: &Call| {
        assert!(call.body.contains("createImage"));
        (202, vec![("location", "http://glance/v2/images/img-42".to_string())], String::new())
    })
    .await;
    let metadata = BTreeMap::from([("osmo.dev/migration".to_string(), "uid-1".to_string())]);
    let id =
        cloud.session("secret").compute().create_image("s-1", "snap", &metadata, "osmo.dev/migration").await.unwrap();
    assert_eq!(id, "img-42");
}

#[tokio::test]
async fn services_are_disabled_by_uuid_or_by_host_and_binary() {
    let old = FakeCloud::start("2.52", |call: &Call| {
        assert_eq!(call.path, "/v2.1/os-services/disable-log-reason");
        let body: serde_json::Value = serde_json::from_str(&call.body).unwrap();
        assert_eq!(body, json!({"host": "havana-1", "binary": "nova-compute", "disabled_reason": "drain"}));
        ok(json!({"service": {"host": "havana-1", "binary": "nova-compute", "status": "disabled", "disabled_reason": "drain"}}))
    })
    .await;
    let service = ComputeService {
        id: "3".into(),
        binary: "nova-compute".into(),
        host: "havana-1".into(),
        zone: Some("havana".into()),
        status: "enabled".into(),
        state: "up".into(),
        disabled_reason: None,
        forced_down: None,
    };
    let disabled = old.session("secret").compute().disable_service(&service, "drain").await.unwrap();
    assert_eq!((disabled.id.as_str(), disabled.status.as_str(), disabled.state.as_str()), ("3", "disabled", "up"));

    let new = FakeCloud::start("2.95", |call: &Call| {
        assert_eq!((call.method.as_str(), call.path.as_str()), ("PUT", "/v2.1/os-services/uuid-3"));
        ok(json!({"service": {"id": "uuid-3", "binary": "nova-compute", "host": "havana-1", "status": "disabled", "state": "up", "disabled_reason": "drain", "forced_down": false}}))
    })
    .await;
    let service = ComputeService { id: "uuid-3".into(), ..service };
    assert_eq!(new.session("secret").compute().disable_service(&service, "drain").await.unwrap().status, "disabled");
}

fn recorded(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/nova-network/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn nova_network_pools_are_recreated_and_addresses_allocated() {
    let cloud = FakeCloud::start("2.95", |call: &Call| match (call.method.as_str(), call.path.as_str()) {
        ("GET", "/v2.1/os-floating-ips-bulk") => (200, vec![], recorded("floating-ips-bulk-list.json")),
        ("POST", "/v2.1/os-floating-ips-bulk") => (200, vec![], recorded("floating-ips-bulk-create.json")),
        ("GET", "/v2.1/os-floating-ips") => (200, vec![], recorded("floating-ips-list.json")),
        ("POST", "/v2.1/os-floating-ips") => (200, vec![], recorded("floating-ip-allocate.json")),
        ("POST", "/v2.1/servers/s-1/action") | ("DELETE", "/v2.1/os-floating-ips/7") => (202, vec![], String::new()),
        _ => status(404, "unexpected"),
    })
    .await;
    let session = cloud.session("secret");
    let legacy = session.nova_network();
    let pools = legacy.bulk_floating_ips().await.unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[1].instance_uuid.as_deref(), Some("7a5b2d30-d4ea-4c4e-a5bb-d4b6c1c0a1f2"));
    legacy.create_bulk("203.0.113.10/32", "osmo-203.0.113.10", Some("eth0")).await.unwrap();
    assert_eq!(legacy.floating_ips().await.unwrap()[0].ip, "172.24.4.3");
    let allocated = legacy.allocate("osmo-203.0.113.10").await.unwrap();
    assert_eq!((allocated.id.as_str(), allocated.ip.as_str()), ("7", "203.0.113.10"));
    legacy.add_to_server("s-1", "203.0.113.10", Some("192.168.1.5")).await.unwrap();
    legacy.release("7").await.unwrap();
    let calls = cloud.calls();
    let create: serde_json::Value = serde_json::from_str(&calls[1].body).unwrap();
    assert_eq!(
        create,
        json!({"floating_ips_bulk_create": {"ip_range": "203.0.113.10/32", "pool": "osmo-203.0.113.10", "interface": "eth0"}})
    );
    let add: serde_json::Value = serde_json::from_str(&calls[4].body).unwrap();
    assert_eq!(add, json!({"addFloatingIp": {"address": "203.0.113.10", "fixed_address": "192.168.1.5"}}));
}

#[tokio::test]
async fn a_nova_without_nova_network_is_reported_as_such() {
    for code in [404, 410] {
        let cloud = FakeCloud::start("2.95", move |_: &Call| status(code, "gone")).await;
        let error = cloud.session("secret").nova_network().bulk_floating_ips().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("nova-network is not available in this cloud: /os-floating-ips-bulk answered HTTP {code}")
        );
    }
}

#[tokio::test]
async fn keystone_redirects_are_not_followed_with_the_password() {
    for code in [307, 308] {
        let elsewhere = CannedServer::start(404, &[]).await;
        let target = format!("http://admin:pw@{}/v3/auth/tokens", elsewhere.addr());
        let keystone = CannedServer::start(code, &[("Location", &target)]).await;
        let session = fake::session(&format!("http://{}/v3", keystone.addr()), "Pa55-redirected");
        let error = session.compute().flavors().await.unwrap_err();
        assert_eq!(elsewhere.connections(), 0, "the password went where Keystone's redirect pointed");
        assert_eq!(keystone.connections(), 1, "a redirect is permanent: not retried");
        assert_eq!(
            error.to_string(),
            format!(
                "keystone POST /auth/tokens: HTTP {code}, a redirect to {}, not followed: credentials go only to the auth_url and the catalog's endpoints",
                elsewhere.addr()
            )
        );
        assert!(!format!("{error:?}").contains("pw@"), "{error:?}");
    }
}

#[tokio::test]
async fn api_redirects_are_not_followed_with_the_token() {
    for code in [307, 308] {
        let elsewhere = CannedServer::start(404, &[]).await;
        let target = format!("http://{}/v2.1/flavors/detail", elsewhere.addr());
        let cloud =
            FakeCloud::start("2.95", move |_: &Call| (code, vec![("location", target.clone())], String::new())).await;
        let error = cloud.session("secret").compute().flavors().await.unwrap_err();
        assert_eq!(elsewhere.connections(), 0, "the token went where the redirect pointed");
        assert!(matches!(error, Error::Redirect { status, .. } if status == code), "{error:?}");
        assert!(!format!("{error} {error:?}").contains("tok-"), "{error:?}");
        assert_eq!(cloud.calls().len(), 1, "a redirect is permanent: not retried");
    }
}

#[tokio::test]
async fn a_host_listing_follows_the_next_link_past_a_page_shorter_than_asked() {
    // Nova's max_limit (here 2) is below the page osmo asks for: the short first page is not
    // the last one, since Nova links a next one.
    let cloud = FakeCloud::start("2.95", |call: &Call| {
        let page = |ids: &[&str], next: bool| {
            let servers: Vec<_> = ids.iter().map(|id| server(id, id, "uid-1")).collect();
            let links = if next {
                json!([{"rel": "next", "href": "http://nova/v2.1/servers/detail?marker=x"}])
            } else {
                json!([])
            };
            ok(json!({"servers": servers, "servers_links": links}))
        };
        match call.path.split("&marker=").nth(1) {
            None => page(&["s-1", "s-2"], true),
            Some("s-2") => page(&["s-3", "s-4"], true),
            Some("s-4") => page(&[], false),
            Some(other) => status(400, &format!("unexpected marker {other}")),
        }
    })
    .await;
    let listing = cloud.session("secret").compute().servers_on_host("havana-1").await.unwrap();
    let ids: Vec<_> = listing.servers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s-1", "s-2", "s-3", "s-4"]);
    assert!(listing.partial.is_empty());
    assert_eq!(cloud.calls().len(), 3);
}

#[tokio::test]
async fn partial_records_of_a_cell_that_does_not_answer_are_told_apart() {
    // What Nova 2.69+ lists for a server of a cell that does not answer (views/servers.py,
    // _show_from_down_cell): no name, no flavor, no host.
    let cloud = FakeCloud::start("2.95", |call: &Call| match call.path.as_str() {
        p if p.starts_with("/v2.1/servers/detail?") => ok(json!({"servers": [
            server("s-1", "web-1", "uid-1"),
            {"id": "s-2", "status": "UNKNOWN", "tenant_id": "p1", "created": "2026-01-01T00:00:00Z", "links": []},
        ]})),
        p if p.starts_with("/v2.1/os-services?") => {
            ok(json!({"services": [{"binary": "nova-compute", "host": "havana-1", "status": "UNKNOWN"}]}))
        }
        _ => status(404, "unexpected"),
    })
    .await;
    let session = cloud.session("secret");
    let compute = session.compute();
    let listing = compute.servers_on_host("havana-1").await.unwrap();
    assert_eq!(listing.servers.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s-1"]);
    assert_eq!(listing.partial, ["s-2"]);
    // A name looked up may be the partly listed one: that is an error, not "not found".
    let error = compute.servers_named("web-2").await.unwrap_err();
    assert!(error.to_string().contains("s-2 is listed partly"), "{error}");

    let service = compute.compute_services(Some("havana-1")).await.unwrap().pop().unwrap();
    assert!(service.cell_down());
}

#[tokio::test]
async fn what_recording_checks_is_read_roles_endpoints_limits_and_security_groups() {
    let cloud = FakeCloud::start("2.95", |call: &Call| match call.path.as_str() {
        "/v2.1/limits" => ok(json!({"limits": {"rate": [], "absolute": {
            "maxTotalInstances": 10, "totalInstancesUsed": 3, "maxTotalCores": -1, "totalCoresUsed": 4,
            "totalRAMUsed": 2048}}})),
        path if path.starts_with("/v2.0/security-groups?") => {
            ok(json!({"security_groups": [{"id": "sg-1", "name": "default"}]}))
        }
        _ => status(404, "not scripted"),
    })
    .await;
    let session = cloud.session("secret");
    assert_eq!(session.role_names().await.unwrap(), ["admin", "member"]);
    assert_eq!(session.endpoint(Service::Image).await.unwrap(), format!("http://{}", cloud.addr()));
    // A maximum Nova does not show does not limit.
    let limits = AbsoluteLimits {
        max_total_instances: 10,
        total_instances_used: 3,
        max_total_cores: -1,
        total_cores_used: 4,
        max_total_ram_size: -1,
        total_ram_used: 2048,
    };
    assert_eq!(session.compute().limits().await.unwrap(), limits);
    let groups = session.network().security_groups(&[("project_id", "p-1")]).await.unwrap();
    assert_eq!(groups, [SecurityGroup { id: "sg-1".into(), name: "default".into() }]);
    let paths: Vec<_> = cloud.calls().into_iter().map(|c| c.path).collect();
    assert!(paths.iter().any(|p| p == "/v2.0/security-groups?project_id=p-1&fields=id&fields=name"), "{paths:?}");
}

#[tokio::test]
async fn cinders_microversion_is_negotiated_at_its_version_root_and_sent_as_volume() {
    let cloud = FakeCloud::start("2.95", |call: &Call| match call.path.as_str() {
        "/v3/" => {
            ok(json!({"versions": [{"id": "v3.0", "status": "CURRENT", "min_version": "3.0", "version": "3.79"}]}))
        }
        "/v3/p-1/volumes/gone" => status(404, "Volume gone could not be found."),
        _ => ok(json!({"volume": {"id": "v1", "status": "in-use", "size": 1, "bootable": "true",
            "attachments": [{"server_id": "s1", "attachment_id": "a1", "device": "/dev/vda"}]}})),
    })
    .await;
    let session = cloud.session("secret");
    let volume = session.block_storage().volume("v1").await.unwrap().unwrap();
    assert!(volume.bootable && volume.attachments[0].attachment_id.as_deref() == Some("a1"));
    assert_eq!(session.block_storage().volume("gone").await.unwrap(), None);
    let calls: Vec<_> = cloud.calls().into_iter().map(|c| (c.path, c.api_version)).collect();
    let newest = Some("volume 3.71".to_string());
    assert_eq!(
        calls,
        [
            ("/v3/".to_string(), None),
            ("/v3/p-1/volumes/v1".to_string(), newest.clone()),
            ("/v3/p-1/volumes/gone".to_string(), newest)
        ],
        "the version document once, below the project; then osmo's newest"
    );
}
