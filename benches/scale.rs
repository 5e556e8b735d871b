//! Scale benchmark: the operator (release build) against the real kube-apiserver and the
//! OpenStack simulator (`sim/`, in-process, with set latencies). Three runs, each in its own
//! namespace with its own operator process:
//! - N = 10 InstanceMigrations created at once (the per-migration baseline);
//! - N = 1,000 created at once;
//! - a drain of 50 hosts of 20 servers each (50 ComputeNodeDrains at once, `maxConcurrent` 5).
//!
//! Each prints, side by side: the wall time from the first create to the last migration's end
//! (and, for the drain, to every host `Drained`)
//! against the ideal (the step latencies × the steps × ceil(N / c), c being how many
//! migrations may be in flight at once: all N of the plain runs, a drain's `maxConcurrent` on
//! each host), the OpenStack requests per migration (counted by the simulator), the Kubernetes writes per migration (the operator's metrics), the operator's
//! CPU seconds per migration (/proc/PID/stat) and peak resident memory (VmHWM), and the API
//! server's object count and storage size. Targets: within 1.2× the ideal; the same requests
//! per migration at N = 10 and N = 1,000. The N = 1,000 run's migrations in flight and
//! completed over time go to a PNG (and the drain's beside it), whose path is printed.
//!
//! Run with `hack/bench.sh scale [N]` (it starts the kube-apiserver; no OpenStack is needed).
//! Settings: `OSMO_BENCH_SCALE_N` (1,000), `OSMO_BENCH_SCALE_BASELINE` (10),
//! `OSMO_BENCH_DRAIN_HOSTS` (50), `OSMO_BENCH_DRAIN_SERVERS` (20 per host),
//! `OSMO_BENCH_DRAIN_CONCURRENT` (5), `OSMO_BENCH_PLOT` (target/scale.png),
//! `OSMO_BENCH_SCALE_VOLUMES` (the percentage of servers seeded with a data volume, so that
//! their migrations move it: 0), and the simulator's latencies
//! `OSMO_SIM_{BOOT,STOP,SNAPSHOT,DELETE,ATTACH,DETACH,VOLUME_CREATE,VOLUME_DELETE,REQUEST}_MS`
//! (15 s, 5 s, 20 s, 3 s, 2 s, 2 s, 5 s, 2 s and none: `cloud_latencies`). A quick run: `OSMO_SIM_BOOT_MS=1000 OSMO_SIM_STOP_MS=200
//! OSMO_SIM_SNAPSHOT_MS=500 OSMO_SIM_DELETE_MS=500 OSMO_BENCH_DRAIN_HOSTS=5
//! OSMO_BENCH_DRAIN_SERVERS=10 hack/bench.sh scale 50`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use osmo::api::{ComputeNodeDrain, DrainPhase, InstanceMigration, MigrationPhase};
use osmo_openstack_sim::{Config, Latencies, Simulator, Zone};

mod common;
mod plot;
use common::{kube_client, metric_sum, scrape, start_operator};

const WALL_TARGET: f64 = 1.2;
/// The operator's defaults (`osmo run --help`; `OSMO_CONCURRENCY` and
/// `OSMO_OPENSTACK_CHANGES_PER_CLOUD` set them for the operator the benchmark starts):
/// reconciliations of one kind at once, and OpenStack-changing requests at once per cloud.
/// Neither is held while OpenStack works, so neither caps the migrations in flight.
const CONCURRENCY: usize = 16;
const CHANGES_PER_CLOUD: usize = 8;
/// The host the plain runs' servers are on; the drain's are on havana-1 to havana-H.
const PLAIN_HOST: &str = "havana-0";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command (which may hold spaces) end with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    ticks / String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().unwrap_or(100.0)
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

/// What one run measured.
struct Run {
    label: String,
    migrations: usize,
    wall: f64,
    ideal: f64,
    ideal_rule: String,
    requests: f64,
    writes: f64,
    /// The operator's Kubernetes writes by kind, per migration.
    writes_by_kind: BTreeMap<String, f64>,
    cpu: f64,
    peak_rss: f64,
    failed: Vec<String>,
    api_objects: f64,
    api_bytes: f64,
    /// (seconds since the first create, in flight, completed).
    samples: Vec<(f64, usize, usize)>,
    /// The simulator's requests by route, per migration.
    routes: BTreeMap<String, f64>,
    /// The mean time of each step, from the migrations' status.
    steps: BTreeMap<String, f64>,
}

struct Bench {
    kubeconfig: String,
    client: kube::Client,
    sim: Simulator,
    clouds_file: PathBuf,
    latencies: Latencies,
    /// The percentage of servers seeded with a data volume.
    volume_share: usize,
}

impl Bench {
    fn kubectl(&self, args: &[&str]) {
        let out = Command::new("kubectl").env("KUBECONFIG", &self.kubeconfig).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Servers as if booted long ago, `volume_share` percent of them (spread evenly) with a
    /// data volume, so that their migrations take the volume path.
    fn seed(&self, names: &[String], host: &str) -> Vec<String> {
        let servers = self.sim.seed_servers(names, host, "m1.tiny").unwrap();
        let share = self.volume_share;
        let with_volume: Vec<String> = servers
            .iter()
            .enumerate()
            .filter(|(i, _)| i * share / 100 != (i + 1) * share / 100)
            .map(|(_, id)| id.clone())
            .collect();
        self.sim.seed_data_volumes(&with_volume).unwrap();
        servers
    }

    fn namespace(&self, label: &str) -> String {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let ns = format!("scale-{label}-{secs:x}");
        self.kubectl(&["create", "namespace", &ns]);
        let file = format!("--from-file=clouds.yaml={}", self.clouds_file.display());
        self.kubectl(&["-n", &ns, "create", "secret", "generic", "clouds", &file]);
        ns
    }

    /// The sum of the step latencies of a snapshot move: stop, snapshot, delete, boot.
    fn steps(&self) -> f64 {
        let l = &self.latencies;
        (l.stop + l.snapshot + l.delete + l.boot).as_secs_f64()
    }

    /// The ideal wall time of `n` migrations of which at most `in_flight` may run at once:
    /// the step latencies × ceil(N / c), c = `in_flight`;
    /// with the rule that gives it.
    fn ideal(&self, n: usize, in_flight: usize) -> (f64, String) {
        let c = in_flight.min(n);
        let rounds = n.div_ceil(c);
        let rule = format!("{:.1} s of steps × ceil({n} / {c}), c = {c} migrations in flight at most", self.steps());
        (self.steps() * rounds as f64, rule)
    }

    /// The API server's stored objects (all kinds) and its storage size, from its metrics.
    async fn api_server_storage(&self) -> (f64, f64) {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = self.client.request_text(request).await.unwrap();
        // Named `etcd_object_counts` and `etcd_db_total_size_in_bytes` before Kubernetes 1.21.
        let objects = metric_sum(&text, "apiserver_storage_objects{") + metric_sum(&text, "etcd_object_counts{");
        let bytes =
            metric_sum(&text, "apiserver_storage_size_bytes{") + metric_sum(&text, "etcd_db_total_size_in_bytes");
        (objects, bytes)
    }

    /// Runs `work` (which creates the resources) under a fresh operator in namespace `ns`,
    /// following the namespace's InstanceMigrations until `expected` have ended and `done`
    /// holds, and measures.
    async fn measure<F: std::future::Future<Output = ()>>(
        &self,
        label: &str,
        ns: &str,
        expected: usize,
        (ideal, ideal_rule): (f64, String),
        work: F,
        done: impl AsyncFn() -> bool,
    ) -> Run {
        let (mut operator, addr) = start_operator(&self.kubeconfig, ns, "warn,osmo::runtime=info");
        let pid = operator.id();
        let api: Api<InstanceMigration> = Api::namespaced(self.client.clone(), ns);
        let phases: Arc<Mutex<HashMap<String, MigrationPhase>>> = Arc::default();
        let seen = phases.clone();
        let follower = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                if let Ok(watcher::Event::Apply(im) | watcher::Event::InitApply(im)) = event {
                    let phase = im.status.map(|s| s.phase).unwrap_or_default();
                    seen.lock().unwrap().insert(im.metadata.name.unwrap_or_default(), phase);
                }
            }
        });
        let (metrics_before, requests_before, routes_before, cpu_before) =
            (scrape(&addr), self.sim.request_count(), self.sim.requests(), cpu_seconds(pid));
        let start = Instant::now();
        work.await;
        let ended = |p: &MigrationPhase| matches!(p, MigrationPhase::Succeeded | MigrationPhase::Failed);
        let deadline = start + Duration::from_secs(600 + expected as u64);
        let mut samples = Vec::new();
        loop {
            let (in_flight, completed) = {
                let phases = phases.lock().unwrap();
                let completed = phases.values().filter(|p| ended(p)).count();
                (phases.len() - completed, completed)
            };
            samples.push((start.elapsed().as_secs_f64(), in_flight, completed));
            if completed >= expected && done().await {
                break;
            }
            assert!(Instant::now() < deadline, "{label}: {completed} of {expected} migrations ended in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wall = start.elapsed().as_secs_f64();
        follower.abort();
        // The operator counts a migration as ended once its last status write is counted.
        let counted = |text: &str| metric_sum(text, "osmo_migrations_total{");
        let metrics_after = loop {
            let text = scrape(&addr);
            if counted(&text) - counted(&metrics_before) >= expected as f64 {
                break text;
            }
            assert!(Instant::now() < deadline, "{label}: the operator did not count every migration as ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let per = |value: f64| value / expected as f64;
        let writes = metric_sum(&metrics_after, "osmo_kubernetes_writes_total")
            - metric_sum(&metrics_before, "osmo_kubernetes_writes_total");
        let writes_by_kind = ["InstanceMigration", "ComputeNodeDrain", "Event", "Lease", "Secret"]
            .into_iter()
            .map(|kind| {
                let name = format!("osmo_kubernetes_writes_total{{kind=\"{kind}\"}}");
                (kind.to_string(), per(metric_sum(&metrics_after, &name) - metric_sum(&metrics_before, &name)))
            })
            .filter(|(_, count)| *count > 0.0)
            .collect();
        let requests = per((self.sim.request_count() - requests_before) as f64);
        let routes = self
            .sim
            .requests()
            .into_iter()
            .map(|(route, count)| {
                let before = routes_before.get(&route).copied().unwrap_or(0);
                (route, per((count - before) as f64))
            })
            .filter(|(_, count)| *count > 0.0)
            .collect();
        let cpu = per(cpu_seconds(pid) - cpu_before);
        let peak_rss = peak_rss_mib(pid);
        let (api_objects, api_bytes) = self.api_server_storage().await;
        let api: Api<InstanceMigration> = Api::namespaced(self.client.clone(), ns);
        let statuses: Vec<_> =
            api.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|im| im.status).collect();
        let mut steps: BTreeMap<String, f64> = BTreeMap::new();
        for step in statuses.iter().flat_map(|s| &s.steps) {
            *steps.entry(format!("{:?}", step.name)).or_default() += per(step.took().unwrap_or_default().as_secs_f64());
        }
        let failed = statuses
            .into_iter()
            .filter(|s| s.phase == MigrationPhase::Failed)
            .map(|s| s.last_error.unwrap_or_default())
            .collect();
        // While the operator runs: it releases the migrations' finalizers.
        self.kubectl(&["delete", "namespace", ns, "--timeout=600s"]);
        operator.kill().unwrap();
        operator.wait().unwrap();
        Run {
            label: label.into(),
            migrations: expected,
            wall,
            ideal,
            ideal_rule,
            requests,
            writes: per(writes),
            writes_by_kind,
            cpu,
            peak_rss,
            failed,
            api_objects,
            api_bytes,
            samples,
            routes,
            steps,
        }
    }

    /// N servers on one host, each moved by an InstanceMigration of its own, all created at once.
    async fn migrations(&self, n: usize) -> Run {
        let label = format!("n{n}");
        let ns = self.namespace(&label);
        let names: Vec<String> = (0..n).map(|i| format!("{ns}-{i}")).collect();
        let servers = self.seed(&names, PLAIN_HOST);
        let api: Api<InstanceMigration> = Api::namespaced(self.client.clone(), &ns);
        let create = futures::stream::iter(servers.into_iter().enumerate())
            .map(|(i, server)| {
                let api = api.clone();
                async move {
                    let im: InstanceMigration = serde_json::from_value(serde_json::json!({
                        "apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration",
                        "metadata": {"name": format!("m-{i}")},
                        "spec": {"server": server, "source": {"secretName": "clouds", "cloud": "admin"},
                            "target": {"availabilityZone": "icehouse"}}
                    }))
                    .unwrap();
                    api.create(&PostParams::default(), &im).await.map(|_| ())
                }
            })
            .buffer_unordered(32)
            .try_collect::<()>();
        let work = async { create.await.unwrap() };
        self.measure(&format!("N = {n}"), &ns, n, self.ideal(n, n), work, async || true).await
    }

    /// Hosts havana-1 to havana-H with S servers each, drained at once, c migrations at a time each.
    async fn drain(&self, hosts: usize, per_host: usize, concurrent: usize) -> Run {
        let ns = self.namespace("drain");
        for h in 1..=hosts {
            let names: Vec<String> = (0..per_host).map(|i| format!("{ns}-h{h}-{i}")).collect();
            self.seed(&names, &format!("havana-{h}"));
        }
        let api: Api<ComputeNodeDrain> = Api::namespaced(self.client.clone(), &ns);
        let drained = async || {
            let drains = api.list(&Default::default()).await.unwrap().items;
            drains.len() == hosts
                && drains.iter().all(|d| d.status.as_ref().is_some_and(|s| s.phase == DrainPhase::Drained))
        };
        let create = async {
            for h in 1..=hosts {
                let drain: ComputeNodeDrain = serde_json::from_value(serde_json::json!({
                    "apiVersion": "osmo.dev/v1alpha1", "kind": "ComputeNodeDrain",
                    "metadata": {"name": format!("havana-{h}")},
                    "spec": {"cloud": {"secretName": "clouds", "cloud": "admin"}, "host": format!("havana-{h}"),
                        "mode": "Migrate", "maxConcurrent": concurrent, "afterDrain": "Keep",
                        "migrationTemplate": {"target": {"availabilityZone": "icehouse"}}}
                }))
                .unwrap();
                api.create(&PostParams::default(), &drain).await.unwrap();
            }
        };
        let label = format!("drain {hosts}×{per_host}");
        let n = hosts * per_host;
        // Each host's servers `concurrent` at a time, all hosts at once.
        let (ideal, rule) = self.ideal(n, hosts * concurrent);
        let per_host_bound = self.steps() * per_host.div_ceil(concurrent) as f64;
        let ideal = if per_host_bound > ideal {
            (per_host_bound, format!("{:.1} s of steps × ceil({per_host} / {concurrent}) per host", self.steps()))
        } else {
            (ideal, rule)
        };
        self.measure(&label, &ns, n, ideal, create, drained).await
    }
}

/// Step latencies of the order a cloud shows (a stop waits for the guest to shut down, a
/// snapshot uploads the disk, a boot copies the image to the host), a few times shorter to
/// keep the benchmark short, yet long beside what the operator spends on a step: sub-second
/// latencies would measure little but how fast Kubernetes takes writes. Answers come at once.
fn cloud_latencies() -> Latencies {
    let s = Duration::from_secs;
    Latencies {
        boot: s(15),
        stop: s(5),
        start: s(5),
        snapshot: s(20),
        delete: s(3),
        attach: s(2),
        detach: s(2),
        volume_create: s(5),
        volume_delete: s(2),
        request: Duration::ZERO,
    }
}

/// How a table row shows a run.
type Cell = dyn Fn(&Run) -> String;

fn print(runs: &[Run], plain_n: usize) {
    let column = |f: &dyn Fn(&Run) -> String| runs.iter().map(|r| format!("{:>16}", f(r))).collect::<String>();
    println!();
    println!("{:<34}{}   target", "", column(&|r| r.label.clone()));
    let rows: Vec<(&str, Box<Cell>, String)> = vec![
        ("migrations", Box::new(|r: &Run| r.migrations.to_string()), String::new()),
        ("failed", Box::new(|r: &Run| r.failed.len().to_string()), "0".into()),
        ("wall (s)", Box::new(|r: &Run| format!("{:.1}", r.wall)), String::new()),
        ("ideal (s)", Box::new(|r: &Run| format!("{:.1}", r.ideal)), String::new()),
        ("wall / ideal", Box::new(|r: &Run| format!("{:.2}", r.wall / r.ideal)), format!("<= {WALL_TARGET}")),
        (
            "OpenStack requests / migration",
            Box::new(|r: &Run| format!("{:.1}", r.requests)),
            format!("equal at N = 10 and N = {plain_n}"),
        ),
        ("Kubernetes writes / migration", Box::new(|r: &Run| format!("{:.1}", r.writes)), String::new()),
        ("operator CPU s / migration", Box::new(|r: &Run| format!("{:.4}", r.cpu)), String::new()),
        ("operator peak RSS (MiB)", Box::new(|r: &Run| format!("{:.1}", r.peak_rss)), String::new()),
        ("API server objects (all kinds)", Box::new(|r: &Run| format!("{:.0}", r.api_objects)), String::new()),
        ("API server storage (MiB)", Box::new(|r: &Run| format!("{:.1}", r.api_bytes / 1048576.0)), String::new()),
    ];
    for (name, value, target) in &rows {
        println!("{name:<34}{}   {target}", column(value.as_ref()));
    }
    for r in runs {
        println!("{}: ideal = {}", r.label, r.ideal_rule);
        for error in r.failed.iter().take(3) {
            println!("  failed: {error}");
        }
    }
    println!("\nmean step time (s), from the migrations' status:");
    let mut steps: Vec<&String> = runs.iter().flat_map(|r| r.steps.keys()).collect();
    steps.sort();
    steps.dedup();
    for step in steps {
        println!("{step:<34}{}", column(&|r| format!("{:.2}", r.steps.get(step).copied().unwrap_or(0.0))));
    }
    println!("\nKubernetes writes per migration by kind:");
    let mut kinds: Vec<&String> = runs.iter().flat_map(|r| r.writes_by_kind.keys()).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        println!("{kind:<34}{}", column(&|r| format!("{:.2}", r.writes_by_kind.get(kind).copied().unwrap_or(0.0))));
    }
    println!("\nOpenStack requests per migration by route:");
    let mut routes: Vec<&String> = runs.iter().flat_map(|r| r.routes.keys()).collect();
    routes.sort();
    routes.dedup();
    for route in routes {
        println!("{route:<60}{}", column(&|r| format!("{:.2}", r.routes.get(route).copied().unwrap_or(0.0))));
    }
}

#[tokio::main]
async fn main() {
    let plain_n = setting("OSMO_BENCH_SCALE_N", 1000);
    let baseline_n = setting("OSMO_BENCH_SCALE_BASELINE", 10);
    let hosts = setting("OSMO_BENCH_DRAIN_HOSTS", 50);
    let per_host = setting("OSMO_BENCH_DRAIN_SERVERS", 20);
    let concurrent = setting("OSMO_BENCH_DRAIN_CONCURRENT", 5);
    let plot_path = PathBuf::from(
        std::env::var("OSMO_BENCH_PLOT")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/scale.png").into()),
    );
    let kubeconfig = std::env::var("OSMO_E2E_KUBECONFIG").expect("run with hack/bench.sh scale");
    let latencies = cloud_latencies().with_env("OSMO_SIM");
    let zones = vec![
        Zone::new("havana", (0..=hosts).map(|h| format!("havana-{h}"))),
        Zone::new("icehouse", (1..=10).map(|h| format!("icehouse-{h}"))),
    ];
    // Room for every server and its replacement.
    let config =
        Config { latencies: latencies.clone(), zones, private_cidr: "10.0.0.0/16".into(), ..Config::default() };
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let clouds_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale-clouds.yaml");
    std::fs::write(&clouds_file, sim.clouds_yaml()).unwrap();
    let concurrency = setting("OSMO_CONCURRENCY", CONCURRENCY);
    let changes_per_cloud = setting("OSMO_OPENSTACK_CHANGES_PER_CLOUD", CHANGES_PER_CLOUD);
    let volume_share = setting("OSMO_BENCH_SCALE_VOLUMES", 0).min(100);
    let bench = Bench { client: kube_client(&kubeconfig).await, kubeconfig, sim, clouds_file, latencies, volume_share };
    bench.kubectl(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
    println!(
        "simulator at {} with latencies {:?}, {volume_share}% of servers with a data volume; the operator with --concurrency {concurrency}, --openstack-changes-per-cloud {changes_per_cloud}",
        bench.sim.addr(),
        bench.latencies
    );

    let baseline = bench.migrations(baseline_n).await;
    print(std::slice::from_ref(&baseline), plain_n);
    let plain = bench.migrations(plain_n).await;
    print(std::slice::from_ref(&plain), plain_n);
    let drain = bench.drain(hosts, per_host, concurrent).await;

    for (run, path) in [(&plain, plot_path.clone()), (&drain, plot_path.with_file_name("scale-drain.png"))] {
        let series = |rgb, pick: fn(&(f64, usize, usize)) -> f64| plot::Series {
            rgb,
            points: run.samples.iter().map(|s| (s.0, pick(s))).collect(),
        };
        plot::write(&path, &[series([31, 119, 180], |s| s.1 as f64), series([44, 160, 44], |s| s.2 as f64)]).unwrap();
        println!("{}: migrations in flight (blue) and completed (green) over seconds: {}", run.label, path.display());
    }
    let runs = [baseline, plain, drain];
    print(&runs, plain_n);
    let wall_met = runs.iter().all(|r| r.wall <= WALL_TARGET * r.ideal);
    let requests_met = (runs[0].requests - runs[1].requests).abs() < 0.05;
    println!(
        "\ntargets: wall within {WALL_TARGET}× the ideal {}; requests per migration equal at N = {baseline_n} and N = {plain_n} {}",
        if wall_met { "met" } else { "NOT met" },
        if requests_met { "met" } else { "NOT met" }
    );
}
