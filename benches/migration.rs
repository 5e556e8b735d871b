//! Migration benchmark on the real stack: N servers (each with a floating IP) are migrated
//! one after another by the operator; for each, the wall time from the resource's creation to
//! `Succeeded`, the OpenStack requests and the Kubernetes writes the operator made (read from
//! its own /metrics). Prints every migration and the medians. Then M servers booted from a
//! volume, with a data volume (`OSMO_BENCH_VOLUME_MIGRATIONS`, 3 by default): their downtime,
//! with no snapshot to make, is printed beside the image-backed servers'.
//!
//! Then N twin servers are moved the same way, one after another, by a direct REST client with
//! no Kubernetes that looks at OpenStack every 50 ms: a baseline taken on the same stack at
//! the same time, so the operator's figures can be read whatever the machine's speed that day.
//! The targets (3.0 s, 20 requests) assume OpenStack's own transitions take about 2.4 s.
//!
//! Run with `hack/bench.sh [N]` (it starts the environments; N is 10 by default). The operator
//! learns from each migration when its steps are usually done: the first one, with no
//! history, looks at OpenStack more often, and the next few look later than needed until the
//! learned times settle. All N count in the medians.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use osmo::api::{InstanceMigration, MigrationPhase};
use osmo::openstack::compute::{BlockDevice, NetworkAttachment, ServerCreate};
use osmo::openstack::session::Request;
use osmo::openstack::states::VolumeStatus;
use osmo::openstack::{Service, Session, clouds};
use reqwest::Method;

mod common;
#[path = "common/direct.rs"]
mod direct;
use common::{kube_client, metric_sum, scrape, start_operator};
use direct::{
    DIRECT_POLL, counted_session, delete_servers_and_floating_ips, direct_migration, direct_wait, median,
    servers_with_floating_ips,
};

/// What the operator's move of one server took.
struct Moved {
    wall: f64,
    requests: f64,
    writes: f64,
    /// Seconds, as the migration's status says.
    downtime: f64,
    replacement: String,
}

/// Moves `server` to icehouse with an InstanceMigration `name`, and measures it by the
/// operator's own metrics.
async fn operator_migration(api: &Api<InstanceMigration>, addr: &str, name: &str, server: &str) -> Moved {
    let before = scrape(addr);
    let im: InstanceMigration = serde_json::from_value(serde_json::json!({
        "apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration", "metadata": {"name": name},
        "spec": {"server": server, "source": {"secretName": "clouds", "cloud": "admin"}, "target": {"availabilityZone": "icehouse"}}
    }))
    .unwrap();
    let start = Instant::now();
    api.create(&PostParams::default(), &im).await.unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(180),
        await_condition(api.clone(), name, |o: Option<&InstanceMigration>| {
            o.and_then(|o| o.status.as_ref())
                .is_some_and(|s| matches!(s.phase, MigrationPhase::Succeeded | MigrationPhase::Failed))
        }),
    )
    .await
    .expect("the migration did not end in 180 s")
    .unwrap()
    .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let status = done.status.unwrap();
    assert_eq!(status.phase, MigrationPhase::Succeeded, "{:?}", status.last_error);
    // The operator counts a migration as ended once its last status write and events are
    // counted too (events count when queued).
    let succeeded = |text: &str| metric_sum(text, "osmo_migrations_total{result=\"succeeded\"}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let text = scrape(addr);
        if succeeded(&text) > succeeded(&before) {
            break text;
        }
        assert!(Instant::now() < deadline, "the operator did not count migration {name} as ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let counted = |metric| metric_sum(&after, metric) - metric_sum(&before, metric);
    Moved {
        wall,
        requests: counted("osmo_openstack_requests_total"),
        writes: counted("osmo_kubernetes_writes_total"),
        downtime: status.downtime.as_deref().and_then(|d| d.trim_end_matches('s').parse().ok()).unwrap_or_default(),
        replacement: status.target.unwrap().server_id,
    }
}

/// A server on havana booted from a new volume (deleted with it) with a data volume (kept):
/// returns it and the data volume.
async fn volume_backed_server(admin: &Session, name: &str, flavor: &str, private: &str) -> (String, String) {
    let mut volumes = Vec::new();
    for (suffix, bootable) in [("root", true), ("data", false)] {
        let body = serde_json::json!({"volume": {"size": 1, "name": format!("{name}-{suffix}")}});
        let created: serde_json::Value = admin
            .send(Request::new(Service::BlockStorage, Method::POST, "/volumes").json(body))
            .await
            .unwrap()
            .json()
            .unwrap();
        let id = created["volume"]["id"].as_str().unwrap().to_string();
        direct_wait(|| async {
            admin.block_storage().volume(&id).await.unwrap().is_some_and(|v| v.status == VolumeStatus::Available)
        })
        .await;
        if bootable {
            let body = serde_json::json!({"os-set_bootable": {"bootable": true}});
            let request = Request::new(Service::BlockStorage, Method::POST, format!("/volumes/{id}/action")).json(body);
            admin.send(request).await.unwrap();
        }
        volumes.push(id);
    }
    let device = |volume_id: &String, boot_index, delete_on_termination| BlockDevice {
        volume_id: volume_id.clone(),
        boot_index,
        device_name: None,
        tag: None,
        delete_on_termination,
    };
    let spec = ServerCreate {
        name: name.to_string(),
        flavor_id: flavor.to_string(),
        metadata: BTreeMap::from([("bench".to_string(), name.to_string())]),
        idempotency_key: "bench".into(),
        availability_zone: Some("havana".into()),
        networks: vec![NetworkAttachment::Network { id: private.to_string(), fixed_ip: None }],
        block_devices: vec![device(&volumes[0], Some(0), true), device(&volumes[1], None, false)],
        ..Default::default()
    };
    (admin.compute().create_server(&spec).await.unwrap(), volumes.pop().unwrap())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("OSMO_BENCH_MIGRATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let kubeconfig = std::env::var("OSMO_E2E_KUBECONFIG").expect("run with hack/bench.sh");
    let clouds_file = std::env::var("OSMO_E2E_CLOUDS").expect("run with hack/bench.sh");
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl").env("KUBECONFIG", &kubeconfig).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ns =
        format!("bench-{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    kubectl(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
    kubectl(&["create", "namespace", &ns]);
    kubectl(&["-n", &ns, "create", "secret", "generic", "clouds", &format!("--from-file=clouds.yaml={clouds_file}")]);

    let (mut operator, addr) = start_operator(&kubeconfig, &ns, "info");

    // Untimed preparation: the servers, each with a floating IP, on havana-1; the first N
    // for the operator, the next N for the direct client.
    let admin =
        Session::new(clouds::parse(&std::fs::read_to_string(&clouds_file).unwrap(), "admin").unwrap(), None).unwrap();
    let names: Vec<String> = (0..2 * n).map(|i| format!("{ns}-{i}")).collect();
    let (servers, mut fips) = servers_with_floating_ips(&admin, &names, Some("havana"), None).await;
    // Servers booted from a volume, each with a data volume, for the operator alone.
    let volumes_n: usize = std::env::var("OSMO_BENCH_VOLUME_MIGRATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let flavor = admin.compute().find_flavor("m1.tiny").await.unwrap().unwrap().id;
    let private = admin.network().find_network("private").await.unwrap().unwrap().id;
    let public = admin.network().find_network("public").await.unwrap().unwrap().id;
    let mut volume_servers = Vec::new();
    for i in 0..volumes_n {
        let (id, data) = volume_backed_server(&admin, &format!("{ns}-volume-{i}"), &flavor, &private).await;
        direct_wait(|| async { admin.compute().server(&id).await.unwrap().is_some_and(|s| s.status == "ACTIVE") })
            .await;
        // A floating IP too, as the image-backed servers have.
        let port = admin.network().ports(&[("device_id", &id)]).await.unwrap().pop().unwrap();
        let fip = admin.network().create_floating_ip(&public, None).await.unwrap();
        admin.network().update_floating_ip(&fip.id, Some(&port.id), None).await.unwrap();
        fips.push(fip.id);
        volume_servers.push((id, data));
    }

    let client = kube_client(&kubeconfig).await;
    let api: Api<InstanceMigration> = Api::namespaced(client, &ns);
    let (direct, direct_requests) = counted_session(&clouds_file);
    println!(
        "{:<4} {:>9} {:>18} {:>16} {:>10}",
        "#", "wall (s)", "OpenStack requests", "Kubernetes writes", "downtime"
    );
    let (mut walls, mut requests, mut writes, mut downtimes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut replacements = Vec::new();
    for (i, server) in servers[..n].iter().enumerate() {
        let moved = operator_migration(&api, &addr, &format!("bench-{i}"), server).await;
        println!("{:<4} {:>9.2} {:>18} {:>16} {:>10.1}", i, moved.wall, moved.requests, moved.writes, moved.downtime);
        walls.push(moved.wall);
        requests.push(moved.requests);
        writes.push(moved.writes);
        downtimes.push(moved.downtime);
        replacements.push(moved.replacement);
    }
    // Servers booted from a volume (with a data volume): no snapshot, the volumes move.
    println!(
        "{:<4} {:>9} {:>18} {:>16} {:>10}",
        "#vol", "wall (s)", "OpenStack requests", "Kubernetes writes", "downtime"
    );
    let mut volume_downtimes = Vec::new();
    for (i, (server, _)) in volume_servers.iter().enumerate() {
        let moved = operator_migration(&api, &addr, &format!("bench-volume-{i}"), server).await;
        println!("{:<4} {:>9.2} {:>18} {:>16} {:>10.1}", i, moved.wall, moved.requests, moved.writes, moved.downtime);
        volume_downtimes.push(moved.downtime);
        replacements.push(moved.replacement);
    }
    // The same moves by the direct client, one after another as well.
    println!("{:<4} {:>16} {:>15}", "#", "direct wall (s)", "direct requests");
    let (mut direct_walls, mut direct_counts) = (Vec::new(), Vec::new());
    for (i, server) in servers[n..].iter().enumerate() {
        let counted_before = direct_requests.load(Ordering::Relaxed);
        let (wall, replacement) = direct_migration(&direct, server, &format!("{ns}-direct-{i}")).await;
        let count = direct_requests.load(Ordering::Relaxed) - counted_before;
        println!("{:<4} {:>16.2} {:>15}", i, wall, count);
        direct_walls.push(wall);
        direct_counts.push(count as f64);
        replacements.push(replacement);
    }
    let (wall, direct_wall) = (median(walls), median(direct_walls));
    println!(
        "median over {n} migrations: {wall:.2} s wall, {} OpenStack requests, {} Kubernetes writes (targets: <= 3.0 s, <= 20 requests)",
        median(requests),
        median(writes)
    );
    println!(
        "direct REST client, polling every {} ms, on the same stack: {direct_wall:.2} s wall, {} requests; the operator's median is {:+.2} s from it",
        DIRECT_POLL.as_millis(),
        median(direct_counts),
        wall - direct_wall
    );
    println!(
        "downtime (stop to verified), median: image-backed {:.1} s over {n}, volume-backed {:.1} s over {volumes_n} (no snapshot: the root volume moves)",
        median(downtimes),
        median(volume_downtimes)
    );
    delete_servers_and_floating_ips(&admin, &replacements, &fips).await;
    // Each root volume went with its replacement (delete_on_termination, as it was made); the
    // data volumes stay, and go now.
    for (_, data) in &volume_servers {
        let available = || async {
            admin.block_storage().volume(data).await.unwrap().is_some_and(|v| v.status == VolumeStatus::Available)
        };
        direct_wait(available).await;
        let request = Request::new(Service::BlockStorage, Method::DELETE, format!("/volumes/{data}"));
        admin.send(request).await.unwrap();
    }
    // While the operator runs: it releases the migrations' finalizers.
    kubectl(&["delete", "namespace", &ns, "--timeout=120s"]);
    operator.kill().unwrap();
    operator.wait().unwrap();
}
