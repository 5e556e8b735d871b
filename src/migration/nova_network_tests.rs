//! Address mode `NovaNetwork` through the controller's own observe, plan and execute, against
//! a scripted nova-network that answers in the shapes recorded in
//! `tests/fixtures/nova-network/` (current Nova has no nova-network to test against).

use std::sync::{Arc, Mutex};

use kube::api::ObjectMeta;
use reqwest::Method;
use serde_json::{Value, json};

use super::Context;
use super::execute::execute;
use super::observe::{Sessions, observe};
use super::planner::{Input, plan};
use crate::api::{
    InstanceMigration, InstanceMigrationSpec, InstanceMigrationStatus, MigrationPhase, RecordedNovaNetworkFloatingIp,
    TargetServerStatus,
};
use crate::openstack::fake::{Call, FakeCloud, Reply, ok, status};
use crate::runtime::Shared;
use crate::runtime::clouds::Clouds;
use crate::runtime::metrics::Metrics;

const SOURCE: &str = "7a5b2d30-d4ea-4c4e-a5bb-d4b6c1c0a1f2";
const TARGET: &str = "9c1e0a44-5b7f-4c39-8d0e-2f6a1b3c4d5e";
const ADDRESS: &str = "203.0.113.10";
const POOL: &str = "public";

fn recorded(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/nova-network/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// nova-network's floating IPs as the scripted cloud holds them.
#[derive(Default)]
struct Legacy {
    /// `os-floating-ips-bulk` entries.
    pools: Vec<Value>,
    /// `os-floating-ips` entries (the project's).
    allocated: Vec<Value>,
}

impl Legacy {
    fn answer(&mut self, call: &Call) -> Reply {
        let body: Value = serde_json::from_str(&call.body).unwrap_or_default();
        match (call.method.clone(), call.path.as_str()) {
            (Method::GET, "/v2.1/os-floating-ips-bulk") => ok(json!({"floating_ip_info": self.pools})),
            (Method::POST, "/v2.1/os-floating-ips-bulk") => {
                let create = &body["floating_ips_bulk_create"];
                let address = create["ip_range"].as_str().unwrap().trim_end_matches("/32");
                let mut entry = recorded("floating-ips-bulk-list.json")["floating_ip_info"][0].clone();
                entry["address"] = json!(address);
                entry["pool"] = create["pool"].clone();
                entry["interface"] = create["interface"].clone();
                self.pools.push(entry);
                let mut answer = recorded("floating-ips-bulk-create.json");
                answer["floating_ips_bulk_create"] = create.clone();
                ok(answer)
            }
            (Method::GET, "/v2.1/os-floating-ips") => ok(json!({"floating_ips": self.allocated})),
            (Method::POST, "/v2.1/os-floating-ips") => {
                let free = self.pools.iter_mut().find(|f| f["pool"] == body["pool"] && f["project_id"].is_null());
                let Some(free) = free else { return status(404, "No more floating IPs in pool") };
                free["project_id"] = json!("6f70656e737461636b20342065766572");
                let mut answer = recorded("floating-ip-allocate.json");
                answer["floating_ip"]["ip"] = free["address"].clone();
                answer["floating_ip"]["pool"] = free["pool"].clone();
                self.allocated.push(answer["floating_ip"].clone());
                ok(answer)
            }
            // Recording's look decides the stop at once.
            (Method::POST, path) if path.ends_with("/action") && body.get("os-stop").is_some() => {
                (202, vec![], String::new())
            }
            (Method::POST, path) if path.ends_with("/action") && body.get("addFloatingIp").is_some() => {
                let server = path.trim_start_matches("/v2.1/servers/").trim_end_matches("/action");
                let address = &body["addFloatingIp"]["address"];
                let Some(ours) = self.allocated.iter_mut().find(|f| f["ip"] == *address) else {
                    return status(404, "floating IP not found");
                };
                ours["instance_id"] = json!(server);
                (202, vec![], String::new())
            }
            (Method::GET, path) if path.ends_with("/os-volume_attachments") => ok(json!({"volumeAttachments": []})),
            (Method::GET, path) if path.starts_with("/v2.1/servers/") => {
                let id = path.trim_start_matches("/v2.1/servers/");
                let (host, zone) = if id == SOURCE { ("havana-1", "havana") } else { ("icehouse-1", "icehouse") };
                ok(json!({"server": {"id": id, "name": "web-1", "status": "ACTIVE", "tenant_id": "p1",
                    "OS-EXT-SRV-ATTR:host": host, "OS-EXT-AZ:availability_zone": zone,
                    "flavor": {"original_name": "m1.tiny", "disk": 1, "ephemeral": 0, "ram": 512},
                    "image": {"id": "cirros"}, "metadata": {}, "OS-EXT-SRV-ATTR:user_data": null}}))
            }
            (Method::GET, path) if path.starts_with("/v2.1/flavors/detail") => {
                ok(json!({"flavors": [{"id": "1", "name": "m1.tiny", "ram": 512, "disk": 1}]}))
            }
            (Method::GET, path) if path.starts_with("/v2/images/") => status(404, "no such image"),
            // Recording's checks of the target: the zone's compute service and the quota.
            (Method::GET, path) if path.starts_with("/v2.1/os-services") => ok(json!({"services": [{"id": 1,
                "binary": "nova-compute", "host": "icehouse-1", "zone": "icehouse", "status": "enabled", "state": "up"}]})),
            (Method::GET, path) if path.starts_with("/v2.1/os-server-groups") => ok(json!({"server_groups": []})),
            (Method::GET, "/v2.1/limits") => ok(json!({"limits": {"absolute": {"maxTotalInstances": -1}}})),
            _ => status(400, "not scripted"),
        }
    }
}

fn migration() -> InstanceMigration {
    let spec: InstanceMigrationSpec = serde_json::from_value(json!({
        "server": SOURCE, "source": {"secretName": "clouds", "cloud": "old"},
        "target": {"availabilityZone": "icehouse"}, "addresses": {"mode": "NovaNetwork"},
    }))
    .unwrap();
    InstanceMigration {
        metadata: ObjectMeta {
            name: Some("web-1".into()),
            namespace: Some("default".into()),
            uid: Some("uid-1".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// A controller context whose Kubernetes client is never called.
pub(super) fn context() -> Context {
    crate::openstack::session::install_tls_provider();
    let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let recorder = kube::runtime::events::Recorder::new(client.clone(), "osmo-test".into());
    let metrics = Arc::new(Metrics::default());
    let (events, _publisher) = crate::runtime::events::Events::start(recorder, metrics.clone());
    let clouds = Clouds::new(client.clone(), Arc::new(|_, _| {}), 8);
    let claims = crate::runtime::claim::Claims::new(client.clone(), "osmo-system".into(), metrics.clone());
    let shared = Shared { clouds, claims, client, events, metrics };
    Context::new(Arc::new(shared), jiff::Timestamp::UNIX_EPOCH)
}

/// Observes, plans and executes as the controller does, until the phase is not `from`.
async fn reconcile_through(
    ctx: &Context,
    sessions: &Sessions,
    im: &InstanceMigration,
    mut current: InstanceMigrationStatus,
    from: MigrationPhase,
) -> InstanceMigrationStatus {
    let usual_steps = std::collections::BTreeMap::new();
    for _ in 0..10 {
        if current.phase != from {
            return current;
        }
        let observed = observe(ctx, sessions, im, &current).await.unwrap();
        let input = Input {
            spec: &im.spec,
            submitted: &im.spec,
            status: Some(&current),
            generation: Some(1),
            uid: "uid-1",
            deleting: false,
            now: jiff::Timestamp::now(),
            seen_at: jiff::Timestamp::now(),
            usual_steps: &usual_steps,
            acting_since: jiff::Timestamp::UNIX_EPOCH,
            retry: None,
            loss_accepted: false,
        };
        let decision = plan(&input, &observed);
        if let Some(action) = decision.action {
            execute(ctx, sessions, im, &decision.status, action, None).await.unwrap();
        }
        current = decision.status;
    }
    panic!("stuck in {from:?}: {current:?}");
}

#[tokio::test]
async fn addresses_are_recorded_with_their_pool_then_recreated_allocated_and_added_in_the_target() {
    let source = Arc::new(Mutex::new(Legacy::default()));
    let target = Arc::new(Mutex::new(Legacy::default()));
    // The old cloud: the address is allocated to the project and on the source.
    {
        let mut old = source.lock().unwrap();
        let mut entry = recorded("floating-ips-bulk-list.json")["floating_ip_info"][1].clone();
        entry["address"] = json!(ADDRESS);
        entry["pool"] = json!(POOL);
        entry["instance_uuid"] = json!(SOURCE);
        old.pools.push(entry);
        let mut allocated = recorded("floating-ips-list.json")["floating_ips"][0].clone();
        allocated["ip"] = json!(ADDRESS);
        allocated["pool"] = json!(POOL);
        allocated["fixed_ip"] = json!("192.168.1.5");
        allocated["instance_id"] = json!(SOURCE);
        old.allocated.push(allocated);
    }
    let (s, t) = (source.clone(), target.clone());
    let old_cloud = FakeCloud::start("2.95", move |call: &Call| s.lock().unwrap().answer(call)).await;
    let new_cloud = FakeCloud::start("2.95", move |call: &Call| t.lock().unwrap().answer(call)).await;
    // A new Nova beside the old, with the same Glance: the snapshot is made where both read it.
    new_cloud.share_glance_of(&old_cloud);
    let sessions = Sessions {
        source: Arc::new(old_cloud.session("secret")),
        target: Arc::new(new_cloud.session("secret")),
        acting_project: None,
    };
    let ctx = context();
    let im = migration();

    let recorded_status =
        reconcile_through(&ctx, &sessions, &im, InstanceMigrationStatus::default(), MigrationPhase::Pending).await;
    assert_eq!(recorded_status.phase, MigrationPhase::Stopping, "{:?}", recorded_status.last_error);
    let record = recorded_status.source.clone().unwrap();
    assert_eq!(
        record.nova_network_floating_ips,
        [RecordedNovaNetworkFloatingIp {
            address: ADDRESS.into(),
            pool: POOL.into(),
            interface: Some("eth0".into()),
            fixed_ip_address: Some("192.168.1.5".into()),
        }]
    );
    assert!(new_cloud.calls().iter().all(|c| c.method == Method::GET), "recording changed the target");

    // The source is gone and the replacement runs: the addresses follow it.
    let booted = InstanceMigrationStatus {
        phase: MigrationPhase::MovingAddresses,
        source: Some(record),
        target: Some(TargetServerStatus { server_id: TARGET.into(), status: "ACTIVE".into(), ..Default::default() }),
        ..Default::default()
    };
    let moved = reconcile_through(&ctx, &sessions, &im, booted, MigrationPhase::MovingAddresses).await;
    let verified = reconcile_through(&ctx, &sessions, &im, moved, MigrationPhase::Verifying).await;
    assert_eq!(verified.phase, MigrationPhase::Succeeded, "{:?}", verified.last_error);

    let changes: Vec<(String, String)> = new_cloud
        .calls()
        .into_iter()
        .filter(|c| c.method != Method::GET)
        .map(|c| (format!("{} {}", c.method, c.path), c.body))
        .collect();
    let bodies: Vec<Value> = changes.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    assert_eq!(
        changes.iter().map(|(what, _)| what.as_str()).collect::<Vec<_>>(),
        [
            "POST /v2.1/os-floating-ips-bulk",
            "POST /v2.1/os-floating-ips",
            format!("POST /v2.1/servers/{TARGET}/action").as_str()
        ]
    );
    assert_eq!(
        bodies,
        [
            json!({"floating_ips_bulk_create": {"ip_range": format!("{ADDRESS}/32"), "pool": POOL, "interface": "eth0"}}),
            json!({"pool": POOL}),
            json!({"addFloatingIp": {"address": ADDRESS}}),
        ]
    );
    let target = target.lock().unwrap();
    assert_eq!(target.allocated[0]["instance_id"], TARGET, "the address is on the replacement");
    let old_changes: Vec<String> =
        old_cloud.calls().into_iter().filter(|c| c.method != Method::GET).map(|c| c.body).collect();
    assert_eq!(old_changes, [r#"{"os-stop":null}"#], "the old cloud saw more than the source's stop");
}
