//! Chaos: the operator is killed with SIGKILL again and again while 20 migrations from the
//! first Nova into the second run (`target.cloud`), each time at an instant drawn from its own
//! progress, then runs undisturbed until every migration has ended. OpenStack itself (both
//! Novas, Glance, Neutron and Cinder) must then show each server moved exactly once, with
//! nothing lost, doubled or leaked: two of the servers boot from a volume and two more have
//! data volumes, and every volume must end on the server that stands for its source.
//!
//! A life is cut as the operator writes a status or sends a change in a phase the chaos has not
//! cut yet, or as it sends its n-th change (n at random), a little after or right away, so that
//! creates and deletes are cut off mid-request too. Nothing is timed by the wall clock alone:
//! on a busy machine a life simply lasts longer. Every phase is cut at least once (counted, and
//! asserted); then the operator must converge within a deadline that scales with what is left.
//!
//! The random draws come from a seeded xorshift; the seed is printed, and `OSMO_CHAOS_SEED`
//! replays a run's choices. Every operator life's logs are kept in a file named on failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use osmo::migration::planner::UID_KEY;

use crate::harness::{Operator, jsonpath, kubectl_ok, kubectl_stdin_ok};
use crate::migration::{add_floating_ip, assert_floating_ip_on, namespace_with_clouds, server_on_havana};
use crate::openstack::{deleted, fixtures, session, wait_gone};
use crate::parallel_nova::{INTO_NOVA2, NOVA2_HOST, nova2};
use crate::volumes::{assert_volumes_on, delete_volumes_left, server_with_volumes};

const MIGRATIONS: usize = 20;
/// Every third server has a floating IP.
const WITH_FLOATING_IP: usize = 3;
/// These servers boot from a volume, with two data volumes.
const VOLUME_BACKED: [usize; 2] = [1, 11];
/// These boot from the image, with two data volumes.
const WITH_DATA_VOLUMES: [usize; 2] = [2, 7];
/// The phases of a snapshot migration, in order: each must be cut at least once. A migration
/// `Pending` once acknowledged is recording (Recording's look starts from there; a recording
/// that ends with nothing changed goes on to Stopping in the same status write).
const PHASES: [&str; 8] = [
    "Recording",
    "Stopping",
    "Snapshotting",
    "DeletingSource",
    "Booting",
    "MovingAddresses",
    "Verifying",
    "CleaningUp",
];

/// The phase of [`PHASES`] a migration is in, by its status.
fn phase_index(phase: &str) -> Option<usize> {
    let phase = if phase == "Pending" { "Recording" } else { phase };
    PHASES.iter().position(|p| *p == phase)
}
/// Lives cut short: at least the first, then until every phase was cut, at most the second.
const KILLS: (usize, usize) = (20, 60);
/// The chaos also ends, once every phase was cut, when no more than this many migrations are
/// left running: the undisturbed operator must have some to end.
const LEFT_FOR_THE_END: usize = MIGRATIONS / 4;
/// Once every phase was cut, a life ends as it sends its n-th change, n drawn below this.
const CHANGES_PER_LIFE: u64 = 4;
/// The kill comes this long at most (ms) after what triggers it: at once cuts a request off.
const KILL_DELAY_MS: u64 = 300;
/// An operator that reaches neither leadership nor its trigger in this long is stuck: a guard,
/// far above what any life needs.
const STUCK: Duration = Duration::from_secs(180);
/// The undisturbed operator ends what is left within this, plus `PER_MIGRATION_LEFT` for each
/// migration not yet ended (they run side by side, so this is generous).
const CONVERGE: Duration = Duration::from_secs(60);
const PER_MIGRATION_LEFT: Duration = Duration::from_secs(30);

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

/// What ends a life.
#[derive(Debug)]
enum Trigger {
    /// The operator writes a status or sends a change in this phase.
    Phase(&'static str),
    /// The operator sends its n-th change to OpenStack.
    Changes(usize),
}

impl Trigger {
    fn pulled(&self, op: &Operator) -> bool {
        match self {
            // Recording starts with a look at a Pending migration.
            Trigger::Phase("Recording") => {
                op.count_logs_with_all(&["looking at OpenStack", "\"phase\":\"Pending\""]) > 0
            }
            Trigger::Phase(phase) => op.count_logs(&format!("\"phase\":\"{phase}\"")) > 0,
            Trigger::Changes(n) => op.count_logs("changing OpenStack") >= *n,
        }
    }
}

/// The migrations an operator life looked at in OpenStack.
fn looked_at(op: &Operator) -> std::collections::BTreeSet<String> {
    op.logs()
        .lines()
        .filter(|l| l.contains("looking at OpenStack"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| l["fields"]["migration"].as_str().map(str::to_string))
        .collect()
}

fn ended(phases: &BTreeMap<String, String>) -> usize {
    phases.values().filter(|p| matches!(p.as_str(), "Succeeded" | "Failed")).count()
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
    let (admin, nova2) = (session("admin"), nova2());
    let f = fixtures(&admin).await;
    let made = futures::future::join_all((0..MIGRATIONS).map(|i| {
        let (admin, f) = (&admin, &f);
        async move {
            if VOLUME_BACKED.contains(&i) || WITH_DATA_VOLUMES.contains(&i) {
                let (id, volumes) = server_with_volumes(admin, f, VOLUME_BACKED.contains(&i)).await;
                (id, Some(volumes))
            } else {
                (server_on_havana(admin, f, &[]).await, None)
            }
        }
    }))
    .await;
    let mut volumes = BTreeMap::new();
    let mut sources = Vec::new();
    for (i, (id, its_volumes)) in made.into_iter().enumerate() {
        sources.push(id);
        if let Some(its_volumes) = its_volumes {
            volumes.insert(i, its_volumes);
        }
    }
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
                 spec: {{server: {id}, source: {{secretName: clouds, cloud: admin}}, target: {INTO_NOVA2}}}\n"
            )
        })
        .collect();
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &manifests.join("---\n"));

    let mut rng = Xorshift(seed());
    let log_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{ns}.log"));
    let mut log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut cut: BTreeMap<&str, usize> = PHASES.iter().map(|p| (*p, 0)).collect();
    let mut kills = 0;
    let mut lives = 0;
    let mut life = |log: &mut std::fs::File, op: &Operator| {
        lives += 1;
        writeln!(log, "---- life {lives} ----\n{}", op.logs()).unwrap();
        // Restarts must stay cheap: one login per cloud (the source's and the target's), however
        // many migrations resume.
        let logins = op.count_logs("issued a Keystone token");
        assert!(logins <= 2, "life {lives} logged in to Keystone {logins} times; logs: {}", log_path.display());
    };
    while kills < KILLS.1 {
        let before = phases(&ns);
        let all_cut = cut.values().all(|n| *n > 0);
        let running = MIGRATIONS - ended(&before);
        if running == 0 || (all_cut && (kills >= KILLS.0 || running <= LEFT_FOR_THE_END)) {
            break;
        }
        // The earliest phase not cut yet that a migration has still to pass through (the
        // migrations move on, so a late phase waits for them), else the n-th change.
        let earliest = before.values().filter_map(|p| phase_index(p)).min();
        let trigger = match PHASES.iter().enumerate().find(|(i, p)| cut[*p] == 0 && Some(*i) >= earliest) {
            Some((_, phase)) => Trigger::Phase(phase),
            None => Trigger::Changes(rng.between(1, CHANGES_PER_LIFE) as usize),
        };
        let mut op = Operator::start(env, &ns, "chaos", &lease);
        op.wait_for_log("became leader", STUCK);
        // A migration may pass the phase between two looks: the n-th change ends the life then.
        let fallback = Trigger::Changes(rng.between(2 * CHANGES_PER_LIFE, 6 * CHANGES_PER_LIFE) as usize);
        let born = Instant::now();
        let mut checked = Instant::now();
        while !trigger.pulled(&op) && !fallback.pulled(&op) && born.elapsed() < STUCK {
            // Once every migration has ended, nothing more comes.
            if checked.elapsed() > Duration::from_secs(1) {
                if ended(&phases(&ns)) == MIGRATIONS {
                    break;
                }
                checked = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Half the kills come at once (mid-request when the trigger was a change), half a
        // little later.
        if rng.between(0, 2) == 1 {
            std::thread::sleep(Duration::from_millis(rng.between(0, KILL_DELAY_MS)));
        }
        op.kill();
        kills += 1;
        let now = phases(&ns);
        for phase in now.values().filter_map(|p| phase_index(p)).map(|i| PHASES[i]) {
            *cut.get_mut(phase).unwrap() += 1;
        }
        let looked_at = looked_at(&op);
        writeln!(
            log,
            "==== kill {kills} ({trigger:?}) after {:?}, {} of {} running migrations looked at: {now:?}",
            born.elapsed(),
            looked_at.len(),
            MIGRATIONS - ended(&before),
        )
        .unwrap();
        life(&mut log, &op);
    }
    let chaos_took = started.elapsed();
    println!("{kills} kills in {chaos_took:?}; migrations in each phase at a kill: {cut:?}");
    let never: Vec<_> = cut.iter().filter(|(_, n)| **n == 0).map(|(p, _)| *p).collect();
    assert!(never.is_empty(), "no kill cut a migration in {never:?}; operator logs: {}", log_path.display());

    // Undisturbed, the operator ends everything, in time proportional to what is left.
    let left = MIGRATIONS - ended(&phases(&ns));
    let deadline = CONVERGE + PER_MIGRATION_LEFT * left as u32;
    let op = Operator::start(env, &ns, "chaos", &lease);
    let converging = Instant::now();
    let converged = loop {
        let all_ended = ended(&phases(&ns)) == MIGRATIONS;
        if all_ended || converging.elapsed() > deadline {
            break all_ended;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    life(&mut log, &op);
    drop(op);
    assert!(
        converged,
        "{left} migrations left after the chaos did not end within {deadline:?}: {:?}\noperator logs: {}",
        phases(&ns),
        log_path.display()
    );
    println!("{MIGRATIONS} migrations ended: {left} of them after the chaos, in {:?}", converging.elapsed());

    let succeeded_announcements = ready_events(&ns);
    let mut left = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let im = format!("im/m{i}");
        let uid = jsonpath(env, &ns, &im, "{.metadata.uid}");
        let phase = jsonpath(env, &ns, &im, "{.status.phase}");
        // Every server the migration made, in either Nova (replacements keep the name).
        let mut ours = Vec::new();
        for nova in [&admin, &nova2] {
            let named = nova.compute().servers_named(&names[i]).await.unwrap();
            ours.extend(named.into_iter().filter(|s| s.metadata.get(UID_KEY) == Some(&uid)));
        }
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
                    (target.as_str(), "ACTIVE", Some(NOVA2_HOST)),
                    "m{i}"
                );
                assert!(deleted(&admin, source).await, "m{i}: the source is still there");
                let steps = jsonpath(env, &ns, &im, "{range .status.steps[*]}{.name}={.result} {end}");
                let snapshotting = if VOLUME_BACKED.contains(&i) { "Skipped" } else { "Succeeded" };
                assert_eq!(
                    steps.trim(),
                    format!(
                        "Recording=Succeeded Stopping=Succeeded Snapshotting={snapshotting} DeletingSource=Succeeded Booting=Succeeded MovingAddresses=Succeeded Verifying=Succeeded CleaningUp=Succeeded"
                    ),
                    "m{i}: each step once, in order"
                );
                if let Some(its_volumes) = volumes.get(&i) {
                    assert_volumes_on(&nova2, &target, its_volumes).await;
                }
                left.push(target);
            }
            "Failed" => {
                // Only a rollback may fail it: the source runs where it ran, and nothing was made.
                let server = admin.compute().server(source).await.unwrap();
                let server = server.unwrap_or_else(|| panic!("m{i} failed and its source is lost"));
                assert_eq!((server.status.as_str(), server.host.as_deref()), ("ACTIVE", Some("havana-1")), "m{i}");
                assert!(ours.is_empty(), "m{i} failed but left a replacement");
                if let Some(its_volumes) = volumes.get(&i) {
                    let attached = admin.compute().volume_attachments(source).await.unwrap();
                    let mut attached: Vec<&str> = attached.iter().map(|a| a.volume_id.as_str()).collect();
                    attached.sort();
                    let mut wanted = its_volumes.all();
                    wanted.sort();
                    assert_eq!(attached, wanted, "m{i}: the source's volumes");
                }
                left.push(source.clone());
            }
            other => panic!("m{i} ended {other}"),
        }
        if let Some(fip) = fips.get(&i) {
            assert_floating_ip_on(&admin, fip, left.last().unwrap()).await;
        }
    }
    let havana = admin.compute().servers_on_host("havana-1").await.unwrap().servers;
    let stranded: Vec<_> = havana.iter().filter(|s| sources.contains(&s.id) && !left.contains(&s.id)).collect();
    assert!(stranded.is_empty(), "sources left on havana-1: {stranded:?}");

    // What is left: replacements in the second Nova, sources of failed migrations in the first.
    for nova in [&admin, &nova2] {
        for id in &left {
            nova.compute().delete_server(id).await.unwrap();
        }
        for id in &left {
            wait_gone(nova, id).await;
        }
    }
    for fip in fips.values() {
        admin.network().delete_floating_ip(fip).await.unwrap();
    }
    for its_volumes in volumes.values() {
        delete_volumes_left(&admin, its_volumes).await;
    }
}
