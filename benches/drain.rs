//! Drain throughput on the real stack: a ComputeNodeDrain empties a host of N servers (each
//! with a floating IP) into zone icehouse, `maxConcurrent` c; then N twin servers are moved the
//! same way by a direct REST client, c at a time (the baseline of `benches/migration.rs`, on
//! the same stack in the same run). Prints both wall times, the ratio (target: the operator
//! within 1.1x of the direct client), and the requests per migration of each.
//!
//! Run with `hack/bench.sh drain [N] [c]` (6 servers, 2 at a time by default). The drained host
//! is an extra nova-compute started for the run (`hack/openstack/compute.sh`), stopped after.
//! Then it says where the operator's time went, from the migrations' recorded steps;
//! `OSMO_BENCH_LOG=FILE` keeps the operator's log, with one line per OpenStack request.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use osmo::api::{ComputeNodeDrain, DrainPhase, InstanceMigration};
use osmo::openstack::compute::{NetworkAttachment, ServerCreate};
use osmo::openstack::{Session, clouds};

mod common;
#[path = "common/direct.rs"]
mod direct;
use common::{kube_client, metric_sum, scrape, start_operator};
use direct::{counted_session, delete_servers_and_floating_ips, direct_migration, median, servers_with_floating_ips};

const TARGET_RATIO: f64 = 1.1;

/// Runs `hack/openstack/compute.sh ACTION HOST`.
fn extra_compute(action: &str, host: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/openstack/compute.sh");
    let status = Command::new("bash").args([script, action, host]).status().unwrap();
    assert!(status.success(), "compute.sh {action} {host} failed");
}

/// Starts a nova-compute on `host` and waits until it takes servers: the scheduler maps a new
/// host to the cell within seconds, and refuses boots there (or ends them in ERROR) until then.
/// On time-out, says what the last try met.
async fn spare_host(admin: &Session, host: &str) {
    extra_compute("start", host);
    let deadline = Instant::now() + Duration::from_secs(180);
    let image = admin.image().images_named("base").await.unwrap().pop().unwrap().id;
    let flavor = admin.compute().find_flavor("m1.tiny").await.unwrap().unwrap().id;
    let private = admin.network().find_network("private").await.unwrap().unwrap().id;
    let name = format!("{host}-probe");
    let probe = ServerCreate {
        name: name.clone(),
        image_id: image,
        flavor_id: flavor,
        // create_server's idempotency key must name an entry of the metadata (else it sends nothing).
        metadata: BTreeMap::from([("bench".to_string(), name)]),
        idempotency_key: "bench".into(),
        host: Some(host.to_string()),
        networks: vec![NetworkAttachment::Network { id: private, fixed_ip: None }],
        ..Default::default()
    };
    let mut last_try = "its nova-compute never reported up".to_string();
    loop {
        assert!(Instant::now() < deadline, "host {host} takes no servers: {last_try}");
        let up = admin.compute().compute_services(Some(host)).await.unwrap().iter().any(|s| s.state == "up");
        if !up {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let id = match admin.compute().create_server(&probe).await {
            Ok(id) => id,
            Err(e) => {
                last_try = format!("the probe's boot was refused: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let server = loop {
            let server = admin.compute().server(&id).await.unwrap().unwrap();
            if server.status == "ERROR" || server.status == "ACTIVE" {
                break server;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        admin.compute().delete_server(&id).await.unwrap();
        while admin.compute().server(&id).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if server.status == "ACTIVE" {
            return;
        }
        last_try = format!("the probe ended in ERROR: {:?}", server.fault.map(|f| f.message));
    }
}

/// Where the operator's wall time went, from the migrations' recorded steps (each runs from its
/// first step's start to its last step's end, to the millisecond) between the drain's
/// creation and the bench seeing it `Drained`; with `c` slots, the k-th migration to start
/// took the slot freed by the (k-c+1)-th to end.
fn print_time_spent(created: jiff::Timestamp, drained: jiff::Timestamp, migrations: &[InstanceMigration], c: usize) {
    let seconds = |from: jiff::Timestamp, to: jiff::Timestamp| to.duration_since(from).as_secs_f64();
    let mut spans = Vec::new();
    let mut steps: Vec<(String, Vec<f64>)> = Vec::new();
    for im in migrations {
        let recorded = &im.status.as_ref().unwrap().steps;
        let end = recorded.last().and_then(|s| s.finished_at.as_deref()?.parse::<jiff::Timestamp>().ok());
        spans.push((recorded[0].started().unwrap(), end.unwrap()));
        for step in recorded {
            let name = format!("{:?}", step.name);
            let took = step.took().unwrap().as_secs_f64();
            match steps.iter_mut().find(|(n, _)| *n == name) {
                Some((_, times)) => times.push(took),
                None => steps.push((name, vec![took])),
            }
        }
    }
    spans.sort();
    let mut ends: Vec<_> = spans.iter().map(|(_, end)| *end).collect();
    ends.sort();
    let hand_offs: Vec<f64> =
        spans.iter().skip(c).zip(&ends).map(|((start, _), freed)| seconds(*freed, *start)).collect();
    let walls: Vec<f64> = spans.iter().map(|(start, end)| seconds(*start, *end)).collect();
    println!("  where the operator's time went:");
    println!("    creation to the first migration's first step: {:5.2} s", seconds(created, spans[0].0));
    println!(
        "    each migration, first step to last: median {:5.2} s (the first to start {:.2} s, the longest {:.2} s)",
        median(walls.clone()),
        walls[0],
        walls.iter().copied().fold(0.0, f64::max)
    );
    if !hand_offs.is_empty() {
        println!(
            "    a slot freed to the next migration's first step: median {:5.2} s, longest {:.2} s ({} hand-offs)",
            median(hand_offs.clone()),
            hand_offs.iter().copied().fold(0.0, f64::max),
            hand_offs.len()
        );
    }
    println!("    the last migration's end to Drained seen: {:5.2} s", seconds(ends[ends.len() - 1], drained));
    let per_step: Vec<String> = steps.into_iter().map(|(name, took)| format!("{name} {:.2}", median(took))).collect();
    println!("    median step times (s): {}", per_step.join(", "));
}

#[tokio::main]
async fn main() {
    let env_number =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let n = env_number("OSMO_BENCH_DRAIN_SERVERS", 6);
    let c = env_number("OSMO_BENCH_DRAIN_CONCURRENT", 2);
    let kubeconfig = std::env::var("OSMO_E2E_KUBECONFIG").expect("run with hack/bench.sh drain");
    let clouds_file = std::env::var("OSMO_E2E_CLOUDS").expect("run with hack/bench.sh drain");
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl").env("KUBECONFIG", &kubeconfig).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let ns = format!("bench-drain-{stamp:x}");
    kubectl(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
    kubectl(&["create", "namespace", &ns]);
    kubectl(&["-n", &ns, "create", "secret", "generic", "clouds", &format!("--from-file=clouds.yaml={clouds_file}")]);
    let (mut operator, addr) = start_operator(&kubeconfig, &ns, "info");

    // Untimed preparation: N servers on a host of their own, N twins on havana-1.
    let admin =
        Session::new(clouds::parse(&std::fs::read_to_string(&clouds_file).unwrap(), "admin").unwrap(), None).unwrap();
    let host = format!("bench-drain-{stamp:x}");
    spare_host(&admin, &host).await;
    let names: Vec<String> = (0..n).map(|i| format!("{host}-{i}")).collect();
    let (_, mut fips) = servers_with_floating_ips(&admin, &names, None, Some(&host)).await;
    let twin_names: Vec<String> = (0..n).map(|i| format!("{host}-twin-{i}")).collect();
    let (twins, twin_fips) = servers_with_floating_ips(&admin, &twin_names, Some("havana"), None).await;
    fips.extend(twin_fips);

    let client = kube_client(&kubeconfig).await;
    let drains: Api<ComputeNodeDrain> = Api::namespaced(client.clone(), &ns);
    let drain: ComputeNodeDrain = serde_json::from_value(serde_json::json!({
        "apiVersion": "osmo.dev/v1alpha1", "kind": "ComputeNodeDrain", "metadata": {"name": "bench"},
        "spec": {"cloud": {"secretName": "clouds", "cloud": "admin"}, "host": host, "mode": "Migrate",
            "maxConcurrent": c, "migrationTemplate": {"target": {"availabilityZone": "icehouse"}}}
    }))
    .unwrap();
    let before = scrape(&addr);
    let start = Instant::now();
    let created = jiff::Timestamp::now();
    drains.create(&PostParams::default(), &drain).await.unwrap();
    let deadline = Duration::from_secs(120 + 60 * n as u64);
    tokio::time::timeout(
        deadline,
        await_condition(drains.clone(), "bench", |d: Option<&ComputeNodeDrain>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| matches!(s.phase, DrainPhase::Drained | DrainPhase::Blocked | DrainPhase::Failed))
        }),
    )
    .await
    .expect("the drain did not end in time")
    .unwrap();
    let drain_wall = start.elapsed().as_secs_f64();
    let drained = jiff::Timestamp::now();
    let status = drains.get("bench").await.unwrap().status.unwrap();
    assert_eq!(status.phase, DrainPhase::Drained, "{:?}", status.message);
    let after = scrape(&addr);
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    let (requests, writes) = (delta("osmo_openstack_requests_total"), delta("osmo_kubernetes_writes_total"));

    // The twins, c at a time, by the direct client.
    let (direct, direct_requests) = counted_session(&clouds_file);
    let start = Instant::now();
    let direct_moves: Vec<(f64, String)> = futures::stream::iter(twins.iter().enumerate())
        .map(|(i, server)| {
            let (direct, name) = (&direct, format!("{host}-direct-{i}"));
            async move { direct_migration(direct, server, &name).await }
        })
        .buffer_unordered(c)
        .collect()
        .await;
    let direct_wall = start.elapsed().as_secs_f64();

    let ratio = drain_wall / direct_wall;
    println!("drain of {n} servers, {c} at a time, into zone icehouse (each server with a floating IP):");
    println!(
        "  operator (ComputeNodeDrain, from creation to Drained): {drain_wall:7.2} s, {:.1} OpenStack requests and {:.1} Kubernetes writes per server",
        requests / n as f64,
        writes / n as f64
    );
    println!(
        "  direct REST client, {c} at a time, polling every {} ms: {direct_wall:7.2} s, {:.1} requests per server (median move {:.2} s)",
        direct::DIRECT_POLL.as_millis(),
        direct_requests.load(Ordering::Relaxed) as f64 / n as f64,
        median(direct_moves.iter().map(|(wall, _)| *wall).collect())
    );
    println!(
        "  ratio {ratio:.2}x   target <= {TARGET_RATIO}x: {}",
        if ratio <= TARGET_RATIO { "met" } else { "NOT met" }
    );

    let migrations: Vec<InstanceMigration> =
        Api::namespaced(client, &ns).list(&Default::default()).await.unwrap().items;
    print_time_spent(created, drained, &migrations, c);

    // Clean up: the replacements, the floating IPs, the drain and its migrations, the host.
    let mut replacements: Vec<String> = direct_moves.into_iter().map(|(_, id)| id).collect();
    for im in migrations {
        replacements.extend(im.status.and_then(|s| s.target).map(|t| t.server_id));
    }
    delete_servers_and_floating_ips(&admin, &replacements, &fips).await;
    // While the operator runs: it releases the finalizers.
    kubectl(&["delete", "namespace", &ns, "--timeout=120s"]);
    operator.kill().unwrap();
    operator.wait().unwrap();
    extra_compute("stop", &host);
}
