//! Migration benchmark on the real stack: N servers (each with a floating IP) are migrated
//! one after another by the operator; for each, the wall time from the resource's creation to
//! `Succeeded`, the OpenStack requests and the Kubernetes writes the operator made (read from
//! its own /metrics). Prints every migration and the medians.
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

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use osmo::api::{InstanceMigration, MigrationPhase};
use osmo::openstack::{Session, clouds};

mod common;
#[path = "common/direct.rs"]
mod direct;
use common::{kube_client, scrape, start_operator};
use direct::{
    DIRECT_POLL, counted_session, delete_servers_and_floating_ips, direct_migration, median, metric_sum,
    servers_with_floating_ips,
};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("OSMO_BENCH_MIGRATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let kubeconfig = std::env::var("OSMO_E2E_KUBECONFIG").expect("run with hack/bench.sh");
    let clouds_file = std::env::var("OSMO_E2E_CLOUDS").expect("run with hack/bench.sh");
    let log_file = std::env::var_os("OSMO_BENCH_LOG");
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl").env("KUBECONFIG", &kubeconfig).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ns =
        format!("bench-{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    kubectl(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
    kubectl(&["create", "namespace", &ns]);
    kubectl(&["-n", &ns, "create", "secret", "generic", "clouds", &format!("--from-file=clouds.yaml={clouds_file}")]);

    // OSMO_BENCH_LOG=FILE keeps the operator's log there, with one line per OpenStack request.
    let rust_log = if log_file.is_some() { "info,osmo::openstack::session=debug" } else { "info" };
    let log = log_file.map(|path| std::fs::File::create(path).unwrap());
    let (mut operator, addr) = start_operator(&kubeconfig, &ns, rust_log, log);

    // Untimed preparation: the servers, each with a floating IP, on havana-1; the first N
    // for the operator, the next N for the direct client.
    let admin =
        Session::new(clouds::parse(&std::fs::read_to_string(&clouds_file).unwrap(), "admin").unwrap(), None).unwrap();
    let names: Vec<String> = (0..2 * n).map(|i| format!("{ns}-{i}")).collect();
    let (servers, fips) = servers_with_floating_ips(&admin, &names, Some("havana"), None).await;

    let client = kube_client(&kubeconfig).await;
    let api: Api<InstanceMigration> = Api::namespaced(client, &ns);
    let (direct, direct_requests) = counted_session(&clouds_file);
    println!(
        "{:<4} {:>9} {:>18} {:>16} {:>10}",
        "#", "wall (s)", "OpenStack requests", "Kubernetes writes", "downtime"
    );
    let (mut walls, mut requests, mut writes) = (Vec::new(), Vec::new(), Vec::new());
    let mut replacements = Vec::new();
    for (i, server) in servers[..n].iter().enumerate() {
        let before = scrape(&addr);
        let name = format!("bench-{i}");
        let im: InstanceMigration = serde_json::from_value(serde_json::json!({
            "apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration", "metadata": {"name": name},
            "spec": {"server": server, "source": {"secretName": "clouds", "cloud": "admin"}, "target": {"availabilityZone": "icehouse"}}
        }))
        .unwrap();
        let start = Instant::now();
        api.create(&PostParams::default(), &im).await.unwrap();
        let done = tokio::time::timeout(
            Duration::from_secs(180),
            await_condition(api.clone(), &name, |o: Option<&InstanceMigration>| {
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
            let text = scrape(&addr);
            if succeeded(&text) > succeeded(&before) {
                break text;
            }
            assert!(Instant::now() < deadline, "the operator did not count migration {name} as ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let reqs =
            metric_sum(&after, "osmo_openstack_requests_total") - metric_sum(&before, "osmo_openstack_requests_total");
        let kw =
            metric_sum(&after, "osmo_kubernetes_writes_total") - metric_sum(&before, "osmo_kubernetes_writes_total");
        println!("{:<4} {:>9.2} {:>18} {:>16} {:>10}", i, wall, reqs, kw, status.downtime.unwrap_or_default());
        walls.push(wall);
        requests.push(reqs);
        writes.push(kw);
        replacements.push(status.target.unwrap().server_id);
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
    delete_servers_and_floating_ips(&admin, &replacements, &fips).await;
    // While the operator runs: it releases the migrations' finalizers.
    kubectl(&["delete", "namespace", &ns, "--timeout=120s"]);
    operator.kill().unwrap();
    operator.wait().unwrap();
}
