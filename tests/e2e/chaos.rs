//! Chaos: the operator is killed with SIGKILL at random instants while 20 migrations run, and
//! restarted each time, until every migration has ended. Then OpenStack itself must show each
//! server moved exactly once, with nothing lost, doubled or leaked.
//!
//! The kill instants come from a seeded xorshift; the seed is printed, and `OSMO_CHAOS_SEED`
//! replays a run. Every operator life's logs are kept in a file named on failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use osmo::migration::planner::UID_KEY;

use crate::harness::{Operator, jsonpath, kubectl_ok, kubectl_stdin_ok};
use crate::migration::{add_floating_ip, assert_floating_ip_on, namespace_with_clouds, server_on_havana};
use crate::openstack::{fixtures, session, wait_gone};

const MIGRATIONS: usize = 20;
/// Every third server has a floating IP.
const WITH_FLOATING_IP: usize = 3;
/// An operator life lasts between these (milliseconds): short enough to kill it in every
/// phase, long enough for it to reach OpenStack after its start.
const LIFE_MS: (u64, u64) = (1_500, 4_500);
/// A life also ends as it sends its n-th change to OpenStack, n drawn below this.
const CHANGES_PER_LIFE: u64 = 8;
const DEADLINE: Duration = Duration::from_secs(360);

/// xorshift64: a few lines of randomness that replay exactly from a printed seed.
struct Xorshift(u64);

impl Xorshift {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

fn seed() -> u64 {
    let seed = std::env::var("OSMO_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("chaos seed: {seed} (replay with OSMO_CHAOS_SEED={seed})");
    seed.max(1)
}

/// Each migration's phase, by name, as `kubectl get` shows it.
fn phases(ns: &str) -> BTreeMap<String, String> {
    let out = kubectl_ok(
        crate::harness::env(),
        &["-n", ns, "get", "im", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}{end}"],
    );
    out.lines().filter_map(|l| l.split_once('=')).map(|(n, p)| (n.to_string(), p.to_string())).collect()
}

/// How many times each migration was announced `Ready=True` (events, with their repeats).
fn ready_events(ns: &str) -> BTreeMap<String, u64> {
    let out = kubectl_ok(crate::harness::env(), &["-n", ns, "get", "events.events.k8s.io", "-o", "json"]);
    let events: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut counts = BTreeMap::new();
    for e in events["items"].as_array().unwrap() {
        if e["action"] == "Ready" && e["reason"] == "Succeeded" {
            let name = e["regarding"]["name"].as_str().unwrap().to_string();
            *counts.entry(name).or_default() += e["series"]["count"].as_u64().unwrap_or(1);
        }
    }
    counts
}

#[tokio::test]
async fn killing_the_operator_at_random_instants_loses_nothing() {
    let (env, ns) = namespace_with_clouds("chaos");
    let lease = format!("osmo-{ns}");
    let admin = session("admin");
    let f = fixtures(&admin).await;
    let sources: Vec<String> =
        futures::future::join_all((0..MIGRATIONS).map(|_| server_on_havana(&admin, &f, &[]))).await;
    let mut names = Vec::new();
    for id in &sources {
        names.push(admin.compute().server(id).await.unwrap().unwrap().name);
    }
    let mut fips = BTreeMap::new();
    for (i, id) in sources.iter().enumerate().filter(|(i, _)| i % WITH_FLOATING_IP == 0) {
        fips.insert(i, add_floating_ip(&admin, &f, id).await.id);
    }
    let manifests: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: m{i}}}\n\
                 spec: {{server: {id}, source: {{secretName: clouds, cloud: admin}}, target: {{availabilityZone: icehouse}}}}\n"
            )
        })
        .collect();
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &manifests.join("---\n"));

    let mut rng = Xorshift(seed());
    let log_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{ns}.log"));
    let mut log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut kills = 0;
    loop {
        let ended = phases(&ns).values().filter(|p| matches!(p.as_str(), "Succeeded" | "Failed")).count();
        if ended == MIGRATIONS {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "after {kills} kills in {:?}, migrations still running: {:?}\noperator logs: {}",
            started.elapsed(),
            phases(&ns),
            log_path.display()
        );
        let mut op = Operator::start(env, &ns, "chaos", &lease);
        // The chaos itself: the operator dies at a random instant, or just as it sends its
        // n-th change to OpenStack (n at random), whichever comes first, so that creates and
        // deletes are cut off mid-request too.
        let born = Instant::now();
        let life = Duration::from_millis(rng.between(LIFE_MS.0, LIFE_MS.1));
        let changes = rng.between(1, CHANGES_PER_LIFE) as usize;
        while born.elapsed() < life && op.count_logs("changing OpenStack") < changes {
            std::thread::sleep(Duration::from_millis(10));
        }
        op.kill();
        kills += 1;
        writeln!(log, "---- life {kills} ----\n{}", op.logs()).unwrap();
        // Restarts must stay cheap: one login per cloud, however many migrations resume.
        let logins = op.count_logs("issued a Keystone token");
        assert!(logins <= 1, "life {kills} logged in to Keystone {logins} times; logs: {}", log_path.display());
    }
    println!("{MIGRATIONS} migrations ended after {kills} kills in {:?}", started.elapsed());

    let succeeded_announcements = ready_events(&ns);
    let mut left = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let im = format!("im/m{i}");
        let uid = jsonpath(env, &ns, &im, "{.metadata.uid}");
        let phase = jsonpath(env, &ns, &im, "{.status.phase}");
        // Every server the migration made, wherever it landed (replacements keep the name).
        let ours: Vec<_> = admin
            .compute()
            .servers_named(&names[i])
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.metadata.get(UID_KEY) == Some(&uid))
            .collect();
        let announced = succeeded_announcements.get(&format!("m{i}")).copied().unwrap_or(0);
        assert!(announced <= 1, "m{i}: announced Ready {announced} times");
        let snapshots = admin.image().images_with_property(UID_KEY, &uid).await.unwrap();
        assert!(snapshots.iter().all(|i| i.status == "deleted"), "m{i}: a snapshot leaked: {snapshots:?}");
        match phase.as_str() {
            "Succeeded" => {
                assert_eq!(ours.len(), 1, "m{i}: {} replacements: {ours:?}", ours.len());
                let target = jsonpath(env, &ns, &im, "{.status.target.serverId}");
                assert_eq!(
                    (ours[0].id.as_str(), ours[0].status.as_str(), ours[0].host.as_deref()),
                    (target.as_str(), "ACTIVE", Some("icehouse-1")),
                    "m{i}"
                );
                assert!(admin.compute().server(source).await.unwrap().is_none(), "m{i}: the source is still there");
                let steps = jsonpath(env, &ns, &im, "{range .status.steps[*]}{.name}={.result} {end}");
                assert_eq!(
                    steps.trim(),
                    "Recording=Succeeded Stopping=Succeeded Snapshotting=Succeeded DeletingSource=Succeeded Booting=Succeeded MovingAddresses=Succeeded Verifying=Succeeded CleaningUp=Succeeded",
                    "m{i}: each step once, in order"
                );
                left.push(target);
            }
            "Failed" => {
                // Only a rollback may fail it: the source runs where it ran, and nothing was made.
                let server = admin.compute().server(source).await.unwrap();
                let server = server.unwrap_or_else(|| panic!("m{i} failed and its source is lost"));
                assert_eq!((server.status.as_str(), server.host.as_deref()), ("ACTIVE", Some("havana-1")), "m{i}");
                assert!(ours.is_empty(), "m{i} failed but left a replacement");
                left.push(source.clone());
            }
            other => panic!("m{i} ended {other}"),
        }
        if let Some(fip) = fips.get(&i) {
            assert_floating_ip_on(&admin, fip, left.last().unwrap()).await;
        }
    }
    let havana = admin.compute().servers_on_host("havana-1").await.unwrap();
    let stranded: Vec<_> = havana.iter().filter(|s| sources.contains(&s.id) && !left.contains(&s.id)).collect();
    assert!(stranded.is_empty(), "sources left on havana-1: {stranded:?}");

    for id in &left {
        admin.compute().delete_server(id).await.unwrap();
    }
    for id in &left {
        wait_gone(&admin, id).await;
    }
    for fip in fips.values() {
        admin.network().delete_floating_ip(fip).await.unwrap();
    }
}
