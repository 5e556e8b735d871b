//! Memory benchmark against the real kube-apiserver: the operator's resident memory idle, and
//! once N finished InstanceMigrations are stored (10,000 by default), as a drain of a whole
//! cloud leaves them. Each resource is made as `kubectl apply` makes it (with its copy of the
//! spec in an annotation) and carries the status a snapshot move ends with, written by another
//! field manager; the operator caches them and acts on none.
//!
//! Prints the resident memory (now and peak) idle and with N, the cost per stored resource,
//! and beside it the baseline measured in the same run: how large each resource is as the API
//! server serves it. Targets: idle under 20 MiB, 10,000 stored under 64 MiB.
//!
//! Run with `hack/bench.sh memory [N]` (it starts the kube-apiserver; no OpenStack is needed).

use std::process::Command;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use osmo::api::{InstanceMigration, MigrationPhase, Strategy};

mod common;
use common::{kube_client, metric_sum, scrape, start_operator};

const MIB: f64 = 1024.0 * 1024.0;
const IDLE_TARGET_MIB: f64 = 20.0;
const STORED_TARGET_MIB: f64 = 64.0;
const STORED_TARGET_N: usize = 10_000;

/// (current, peak) resident memory of a process, in bytes.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() * 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reconciles(addr: &str) -> usize {
    metric_sum(&scrape(addr), r#"osmo_reconciles_total{kind="InstanceMigration"}"#) as usize
}

/// The spec as `kubectl apply` sends it.
fn spec(i: usize) -> serde_json::Value {
    serde_json::json!({
        "server": format!("web-{i}"),
        "source": {"secretName": "clouds", "cloud": "old"},
        "target": {"availabilityZone": "icehouse"},
        "mappings": {"networks": {"private": "private-new"}},
    })
}

/// The status of a snapshot move that succeeded: its record of the source (a port, a floating
/// IP, metadata), its steps, the conditions and the replacement.
fn succeeded(i: usize) -> serde_json::Value {
    let at = "2026-11-30T10:00:00Z";
    let phases =
        std::iter::once(MigrationPhase::Recording).chain(MigrationPhase::order(Strategy::Snapshot).iter().copied());
    let steps: Vec<_> = phases
        .map(|name| serde_json::json!({"name": name, "startedAt": at, "finishedAt": at, "result": "Succeeded"}))
        .collect();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": at, "observedGeneration": 1})
    };
    serde_json::json!({
        "phase": "Succeeded",
        "observedGeneration": 1,
        "acceptedSpec": spec(i),
        "targetDescription": "availability zone icehouse",
        "claim": format!("osmo-server-{i:016x}"),
        "bootBase": {"flavorId": "2", "imageId": "0b7f5a7e-1111-4000-8000-000000000001",
            "networks": {"3f2e1d0c-3333-4000-8000-000000000001": "3f2e1d0c-3333-4000-8000-000000000002"},
            "securityGroupIDs": ["5d4c3b2a-5555-4000-8000-000000000001"]},
        "source": {
            "id": format!("6f1c2a3e-0000-4000-8000-{i:012}"),
            "name": format!("web-{i}"),
            "projectId": "8c0e3c4f1a2b4c5d9e8f7a6b5c4d3e2f",
            "status": "ACTIVE",
            "flavorName": "m1.small",
            "flavorSize": {"diskGB": 20, "ephemeralGB": 0, "ramMB": 2048},
            "imageId": "0b7f5a7e-1111-4000-8000-000000000001",
            "keyName": "deploy",
            "securityGroups": ["default", "web"],
            "metadata": {"role": "web", "owner": "team-a"},
            "availabilityZone": "havana",
            "host": "havana-1",
            "ports": [{
                "id": format!("a1b2c3d4-2222-4000-8000-{i:012}"),
                "networkId": "3f2e1d0c-3333-4000-8000-000000000001",
                "macAddress": "fa:16:3e:12:34:56",
                "fixedIps": [{"subnetId": "4e3d2c1b-4444-4000-8000-000000000001", "ipAddress": "10.0.0.17"}],
                "securityGroups": ["5d4c3b2a-5555-4000-8000-000000000001"],
                "floatingIps": [{"id": format!("6c5b4a39-6666-4000-8000-{i:012}"), "address": "203.0.113.17",
                    "fixedIpAddress": "10.0.0.17"}],
            }],
        },
        "snapshot": {"imageId": format!("7b6a5948-7777-4000-8000-{i:012}"), "status": "deleted", "sizeBytes": 1_073_741_824u64},
        "target": {"serverId": format!("8a796857-8888-4000-8000-{i:012}"), "status": "ACTIVE", "host": "icehouse-1",
            "availabilityZone": "icehouse"},
        "targetPorts": [{"sourcePortId": format!("a1b2c3d4-2222-4000-8000-{i:012}"),
            "portId": format!("a1b2c3d4-2222-4000-8000-{i:012}"), "origin": "Reused"}],
        "steps": steps,
        "conditions": [
            condition("Accepted", "True", "Valid", "The spec is valid."),
            condition("Progressing", "False", "Succeeded", "The server runs on its replacement."),
            condition("Failed", "False", "Succeeded", "Nothing failed."),
        ],
        "downtime": "41.2s",
    })
}

/// Makes `n` resources as `kubectl apply` would, each with its succeeded status.
async fn store(api: &Api<InstanceMigration>, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let name = format!("web-{i}");
            // With the operator's finalizer, as it leaves every migration it has taken up.
            let mut object = serde_json::json!({
                "apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration",
                "metadata": {"name": name, "finalizers": [osmo::migration::FINALIZER]}, "spec": spec(i),
            });
            let applied = serde_json::to_string(&object).unwrap();
            object["metadata"]["annotations"] =
                serde_json::json!({"kubectl.kubernetes.io/last-applied-configuration": applied});
            let object: InstanceMigration = serde_json::from_value(object).unwrap();
            api.create(
                &PostParams { field_manager: Some("kubectl-client-side-apply".into()), ..Default::default() },
                &object,
            )
            .await?;
            let status = serde_json::json!({"apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration",
                "status": succeeded(i)});
            let strict = PatchParams {
                field_validation: Some(kube::api::ValidationDirective::Strict),
                ..PatchParams::apply("osmo-bench").force()
            };
            api.patch_status(&name, &strict, &Patch::Apply(&status)).await?;
            Ok::<_, kube::Error>(())
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await
        .unwrap();
}

/// Waits until the operator has taken up `n` resources and its memory has settled.
fn settle(addr: &str, pid: u32, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60 + n as u64 / 20);
    while reconciles(addr) < n {
        assert!(Instant::now() < deadline, "the operator took up {} of {n} resources", reconciles(addr));
        std::thread::sleep(Duration::from_millis(500));
    }
    // Settled: two readings a second apart within 1 %.
    let mut before = rss(pid).0;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = rss(pid).0;
        if (now - before).abs() <= before / 100.0 {
            return;
        }
        assert!(Instant::now() < deadline, "the operator's memory does not settle");
        before = now;
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("OSMO_BENCH_STORED").ok().and_then(|v| v.parse().ok()).unwrap_or(STORED_TARGET_N);
    let kubeconfig = std::env::var("OSMO_E2E_KUBECONFIG").expect("run with hack/bench.sh memory");
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl").env("KUBECONFIG", &kubeconfig).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ns = format!(
        "bench-memory-{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    );
    kubectl(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
    kubectl(&["create", "namespace", &ns]);
    let client = kube_client(&kubeconfig).await;
    let api: Api<InstanceMigration> = Api::namespaced(client, &ns);

    let (mut idle_op, addr) = start_operator(&kubeconfig, &ns, "warn,osmo::runtime=info");
    settle(&addr, idle_op.id(), 0);
    let (idle, idle_peak) = rss(idle_op.id());
    idle_op.kill().unwrap();
    idle_op.wait().unwrap();

    let made = Instant::now();
    store(&api, n).await;
    eprintln!("stored {n} resources in {:.0} s", made.elapsed().as_secs_f64());
    let served = serde_json::to_vec(&api.get(&format!("web-{}", n / 2)).await.unwrap()).unwrap().len();

    // Started on the stored resources, as after a restart in the middle of an upgrade: the
    // initial list is where the peak comes.
    let (mut op, addr) = start_operator(&kubeconfig, &ns, "warn,osmo::runtime=info");
    settle(&addr, op.id(), n);
    let (stored, stored_peak) = rss(op.id());
    let per = (stored - idle) / n as f64;
    // `cargo bench` builds the operator with the bench profile, which is the release one.
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "operator resident memory, {n} finished InstanceMigrations stored ({build} build of {}):",
        env!("CARGO_BIN_EXE_osmo")
    );
    println!(
        "  idle:           {:6.1} MiB (peak {:6.1} MiB)   target < {IDLE_TARGET_MIB} MiB",
        idle / MIB,
        idle_peak / MIB
    );
    println!(
        "  with {n:>6}:    {:6.1} MiB (peak {:6.1} MiB)   target < {STORED_TARGET_MIB} MiB at {STORED_TARGET_N}",
        stored / MIB,
        stored_peak / MIB
    );
    println!(
        "  per resource:   {:6.2} KiB   baseline: {:.2} KiB as the API server serves it",
        per / 1024.0,
        served as f64 / 1024.0
    );
    let projected = idle + per * STORED_TARGET_N as f64;
    println!("  at {STORED_TARGET_N}:      {:6.1} MiB projected", projected / MIB);
    let met = idle < IDLE_TARGET_MIB * MIB && stored_peak.max(projected) < STORED_TARGET_MIB * MIB;
    println!("  targets {}", if met { "met" } else { "NOT met" });

    // The operator holds a finalizer on each: it lets them go as the namespace is deleted.
    kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 10);
    // One object per look: listing them all would slow the API server down.
    while !api.list(&ListParams::default().limit(1)).await.unwrap().items.is_empty() {
        assert!(Instant::now() < deadline, "the stored resources are not let go");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    op.kill().unwrap();
    op.wait().unwrap();
}
