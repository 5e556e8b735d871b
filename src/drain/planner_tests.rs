//! The drain planner: validation, cordon, ordering, concurrency, selectors, new arrivals,
//! failure, waiting, retirement and abort, from (spec, status, observed) alone.

use std::time::Duration;

use serde_json::json;

use super::planner::*;
use crate::api::{
    ComputeNodeDrainSpec, ComputeNodeDrainStatus, ConditionStatus, DrainPhase, DrainServerState, MigrationPhase,
    MovePath, ServiceStatus,
};
use crate::runtime::conditions;

fn spec(extra: serde_json::Value) -> ComputeNodeDrainSpec {
    let mut base = json!({
        "cloud": {"secretName": "clouds", "cloud": "old"},
        "host": "havana-1",
        "mode": "Migrate",
        "migrationTemplate": {"target": {"availabilityZone": "icehouse"}},
    });
    base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn fields(spec: &ComputeNodeDrainSpec) -> Vec<String> {
    validate(spec).into_iter().map(|e| e.field).collect()
}

fn at(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn service(status: &str, state: &str) -> ServiceStatus {
    ServiceStatus {
        id: "svc-1".into(),
        status: status.into(),
        state: state.into(),
        disabled_reason: (status == "disabled").then(|| "osmo: draining for redeployment".into()),
        forced_down: false,
    }
}

fn server(id: &str, name: &str) -> HostServer {
    HostServer {
        id: id.into(),
        name: name.into(),
        project_id: Some("p1".into()),
        host: Some("havana-1".into()),
        ..Default::default()
    }
}

fn ours(server: &str, phase: Option<MigrationPhase>) -> KnownMigration {
    KnownMigration {
        name: migration_name("drain", server),
        uid: format!("uid-{server}"),
        server: server.into(),
        phase,
        owned: true,
        ..Default::default()
    }
}

/// The drain's migration of `server`, succeeded at `at` with the replacement `new-<server>`.
fn succeeded_at(server: &str, at_secs: i64) -> KnownMigration {
    KnownMigration {
        replacement: Some(format!("new-{server}")),
        succeeded_at: Some(at(at_secs)),
        ..ours(server, Some(MigrationPhase::Succeeded))
    }
}

fn deleted(decision: &Decision) -> Vec<&str> {
    decision
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteMigration { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// The host cordoned, holding `servers`, with the drain's `migrations`.
fn host(servers: &[(&str, &str)], migrations: Vec<KnownMigration>) -> Observed {
    Observed {
        service: Some(service("disabled", "up")),
        servers: servers.iter().map(|(id, name)| server(id, name)).collect(),
        migrations,
        ..Default::default()
    }
}

fn run(
    spec: &ComputeNodeDrainSpec,
    status: Option<&ComputeNodeDrainStatus>,
    observed: &Observed,
    now: i64,
) -> Decision {
    let input = Input { spec, status, name: "drain", generation: Some(1), deleting: false, now: at(now) };
    plan(&input, Ok(observed))
}

fn delete(spec: &ComputeNodeDrainSpec, status: &ComputeNodeDrainStatus, observed: &Observed) -> Decision {
    let input = Input { spec, status: Some(status), name: "drain", generation: Some(2), deleting: true, now: at(100) };
    plan(&input, Ok(observed))
}

fn created(decision: &Decision) -> Vec<&str> {
    decision
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateMigration { server_id, .. } => Some(server_id.as_str()),
            _ => None,
        })
        .collect()
}

fn condition(status: &ComputeNodeDrainStatus, type_: &str) -> (ConditionStatus, String) {
    let c = conditions::get(&status.conditions, type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status, c.reason.clone())
}

fn states(status: &ComputeNodeDrainStatus) -> Vec<(&str, DrainServerState)> {
    status.servers.iter().map(|e| (e.name.as_str(), e.state)).collect()
}

// --- validation ---

#[test]
fn defaults_are_valid() {
    let s = spec(json!({}));
    assert_eq!(s.max_concurrent, 1);
    assert_eq!(s.disable_reason, "osmo: draining for redeployment");
    assert!(fields(&s).is_empty());
}

#[test]
fn migrate_needs_a_template_and_wait_refuses_one() {
    assert_eq!(fields(&spec(json!({"migrationTemplate": null}))), ["spec.migrationTemplate"]);
    assert_eq!(fields(&spec(json!({"mode": "Wait"}))), ["spec.migrationTemplate"]);
    assert!(fields(&spec(json!({"mode": "Wait", "migrationTemplate": null, "waitDeadlineSeconds": 60}))).is_empty());
}

#[test]
fn the_template_is_checked_like_a_migration_and_may_not_target_the_drained_host() {
    let s = spec(json!({"migrationTemplate": {"target": {}}}));
    assert_eq!(fields(&s), ["spec.migrationTemplate.target"]);
    let s = spec(json!({"migrationTemplate": {"target": {"host": "havana-1"}}}));
    assert_eq!(fields(&s), ["spec.migrationTemplate.target.host"]);
}

#[test]
fn options_that_do_not_apply_are_named() {
    assert_eq!(fields(&spec(json!({"waitDeadlineSeconds": 60}))), ["spec.waitDeadlineSeconds"]);
    assert_eq!(fields(&spec(json!({"forceDown": true}))), ["spec.forceDown"]);
    assert!(fields(&spec(json!({"forceDown": true, "afterDrain": "RetireService"}))).is_empty());
}

#[test]
fn an_empty_selector_would_match_everything() {
    let s = spec(json!({"selector": {"exclude": [{"namePattern": "db-*"}, {}]}}));
    assert_eq!(fields(&s), ["spec.selector.exclude[1]"]);
}

#[test]
fn an_invalid_drain_fails_without_acting_and_a_corrected_one_starts_over() {
    let bad = spec(json!({"host": "havana 1"}));
    let failed = run(&bad, None, &Observed::default(), 0);
    assert_eq!(failed.status.phase, DrainPhase::Failed);
    assert!(failed.actions.is_empty());
    let reason = conditions::get(&failed.status.conditions, "Failed").unwrap();
    assert_eq!(reason.message, "spec.host: must not contain white space");
    let ok = run(&spec(json!({})), Some(&failed.status), &host(&[], vec![]), 1);
    assert_eq!(condition(&ok.status, "Accepted").0, ConditionStatus::True);
    assert_eq!(condition(&ok.status, "Failed").0, ConditionStatus::False);
    assert_ne!(ok.status.phase, DrainPhase::Failed);
}

// --- cordon ---

#[test]
fn an_enabled_service_is_disabled_first_and_nothing_else_happens() {
    let mut observed = host(&[("a", "web-a")], vec![]);
    observed.service = Some(service("enabled", "up"));
    let d = run(&spec(json!({})), None, &observed, 0);
    assert_eq!(d.actions, [Action::DisableService]);
    assert_eq!(d.status.phase, DrainPhase::Cordoning);
    assert_eq!(d.status.service.as_ref().unwrap().status, "enabled");
    assert!(d.status.cordoned_at.is_none());
}

#[test]
fn a_host_without_service_fails_naming_the_host() {
    let observed = Observed { service: None, ..Default::default() };
    let d = run(&spec(json!({})), None, &observed, 0);
    assert_eq!(d.status.phase, DrainPhase::Failed);
    assert_eq!(condition(&d.status, "Failed"), (ConditionStatus::True, "ServiceNotFound".into()));
    assert!(d.status.last_error.unwrap().contains("host havana-1 has no nova-compute service"));
    assert!(d.actions.is_empty());
}

#[test]
fn a_refused_cloud_fails_before_anything_changes() {
    let s = spec(json!({}));
    let input = Input { spec: &s, status: None, name: "drain", generation: Some(1), deleting: false, now: at(0) };
    let refusal =
        conditions::Refusal { reason: "SecretNotFound", message: "spec.cloud: Secret ns/clouds does not exist".into() };
    let d = plan(&input, Err(&refusal));
    assert_eq!(d.status.phase, DrainPhase::Failed);
    assert_eq!(condition(&d.status, "Failed"), (ConditionStatus::True, "SecretNotFound".into()));
    assert!(d.actions.is_empty() && !d.release);
}

#[test]
fn a_second_drain_of_the_host_is_refused_until_the_first_is_gone() {
    let mut observed = host(&[("a", "web-a")], vec![]);
    observed.service = Some(service("enabled", "up"));
    observed.rival = Some("first".into());
    let d = run(&spec(json!({})), None, &observed, 0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, DrainPhase::Failed);
    assert_eq!(condition(&d.status, "Failed"), (ConditionStatus::True, "Conflict".into()));
    assert!(d.status.last_error.as_ref().unwrap().contains("ComputeNodeDrain first already drains host havana-1"));
    // A dry run may look at a host another drain works on.
    assert_eq!(run(&spec(json!({"dryRun": true})), None, &observed, 0).status.phase, DrainPhase::Planned);
    observed.rival = None;
    assert_eq!(run(&spec(json!({})), Some(&d.status), &observed, 5).actions, [Action::DisableService]);
}

// --- migrate: order and concurrency ---

#[test]
fn migrations_start_in_name_order_never_more_than_max_concurrent() {
    let s = spec(json!({"maxConcurrent": 2}));
    let servers = [("c", "web-c"), ("a", "web-a"), ("d", "web-d"), ("b", "web-b")];
    let first = run(&s, None, &host(&servers, vec![]), 0);
    assert_eq!(first.status.phase, DrainPhase::Draining);
    assert_eq!(created(&first), ["a", "b"]);
    let a = first.status.servers.iter().find(|e| e.id == "a").unwrap();
    assert_eq!(a.migration.as_deref(), Some("drain-a"));
    assert_eq!(a.target.as_deref(), Some("icehouse"));
    assert_eq!(first.status.counts.as_ref().unwrap().migrating, 2);

    // Both run: nothing more starts, whatever the status said.
    let running = vec![ours("a", Some(MigrationPhase::Booting)), ours("b", None)];
    let second = run(&s, Some(&first.status), &host(&servers, running), 5);
    assert!(created(&second).is_empty());

    // One ended: exactly one more starts, the next by name.
    let one_done = vec![ours("a", Some(MigrationPhase::Succeeded)), ours("b", Some(MigrationPhase::Verifying))];
    let third = run(&s, Some(&second.status), &host(&[("c", "web-c"), ("d", "web-d"), ("b", "web-b")], one_done), 9);
    assert_eq!(created(&third), ["c"]);
    assert_eq!(third.status.progress.as_deref(), Some("1/4"));
}

#[test]
fn migrations_the_cache_does_not_show_yet_still_count() {
    // The status may lag; the migrations listed from the API server are what count.
    let s = spec(json!({"maxConcurrent": 1}));
    let d =
        run(&s, None, &host(&[("a", "web-a"), ("b", "web-b")], vec![ours("b", Some(MigrationPhase::Recording))]), 0);
    assert!(created(&d).is_empty());
    assert_eq!(states(&d.status), [("web-a", DrainServerState::Waiting), ("web-b", DrainServerState::Migrating)]);
}

#[test]
fn priority_selectors_go_first_then_names() {
    let s = spec(json!({"maxConcurrent": 3, "selector": {"priority": [{"namePattern": "db-*"}, {"ids": ["z"]}]}}));
    let d = run(&s, None, &host(&[("a", "web-a"), ("z", "web-z"), ("m", "db-main")], vec![]), 0);
    assert_eq!(created(&d), ["m", "z", "a"]);
}

#[test]
fn excluded_servers_are_listed_and_block_the_drain_unless_they_may_remain() {
    let s = spec(json!({"maxConcurrent": 5, "selector": {"exclude": [{"metadata": {"keep": "yes"}}]}}));
    let mut observed = host(&[("a", "web-a"), ("k", "keeper")], vec![]);
    observed.servers[1].metadata.insert("keep".into(), "yes".into());
    let d = run(&s, None, &observed, 0);
    assert_eq!(created(&d), ["a"]);
    let keeper = d.status.servers.iter().find(|e| e.id == "k").unwrap();
    assert_eq!(keeper.state, DrainServerState::Excluded);
    assert_eq!(keeper.excluded.as_deref(), Some("matches spec.selector.exclude[0]"));

    // Once web-a moved, only the excluded server remains: Blocked, naming it.
    let mut after = observed.clone();
    after.servers.remove(0);
    after.migrations = vec![ours("a", Some(MigrationPhase::Succeeded))];
    let blocked = run(&s, Some(&d.status), &after, 10);
    assert_eq!(blocked.status.phase, DrainPhase::Blocked);
    assert!(blocked.status.message.as_ref().unwrap().contains("excluded: keeper"), "{:?}", blocked.status.message);

    let mut may = s.clone();
    may.selector.excluded_may_remain = true;
    let drained = run(&may, Some(&d.status), &after, 10);
    assert_eq!(drained.status.phase, DrainPhase::Drained);
    assert_eq!(drained.status.progress.as_deref(), Some("1/1 (1 excluded)"));
}

#[test]
fn include_selectors_leave_out_everything_else() {
    let s = spec(json!({"maxConcurrent": 5, "selector": {"include": [{"projectId": "p2"}]}}));
    let mut observed = host(&[("a", "web-a"), ("b", "web-b")], vec![]);
    observed.servers[1].project_id = Some("p2".into());
    let d = run(&s, None, &observed, 0);
    assert_eq!(created(&d), ["b"]);
    assert_eq!(d.status.servers[0].excluded.as_deref(), Some("matches no spec.selector.include"));
}

#[test]
fn servers_arriving_after_the_cordon_are_migrated_too() {
    let s = spec(json!({"maxConcurrent": 2}));
    let first = run(&s, None, &host(&[("a", "web-a")], vec![]), 0);
    assert_eq!(created(&first), ["a"]);
    let arrived = host(&[("a", "web-a"), ("n", "forced-in")], vec![ours("a", Some(MigrationPhase::Snapshotting))]);
    let second = run(&s, Some(&first.status), &arrived, 20);
    assert_eq!(created(&second), ["n"]);
    assert_eq!(second.status.counts.as_ref().unwrap().total, 2);
}

#[test]
fn a_failed_migration_blocks_the_drain_until_it_is_deleted_then_it_is_retried() {
    let s = spec(json!({}));
    let first = run(&s, None, &host(&[("a", "web-a")], vec![]), 0);
    let failed =
        run(&s, Some(&first.status), &host(&[("a", "web-a")], vec![ours("a", Some(MigrationPhase::Failed))]), 30);
    assert_eq!(failed.status.phase, DrainPhase::Blocked);
    assert_eq!(states(&failed.status), [("web-a", DrainServerState::Failed)]);
    assert_eq!(failed.status.counts.as_ref().unwrap().failed, 1);
    assert!(failed.status.message.as_ref().unwrap().contains("delete their InstanceMigration to retry"));
    assert!(created(&failed).is_empty());

    let retried = run(&s, Some(&failed.status), &host(&[("a", "web-a")], vec![]), 60);
    assert_eq!(created(&retried), ["a"]);
    assert_eq!(retried.status.phase, DrainPhase::Draining);
}

#[test]
fn a_server_another_migration_moves_is_not_migrated_twice() {
    let s = spec(json!({}));
    let theirs = KnownMigration { name: "by-hand".into(), server: "a".into(), ..Default::default() };
    let d = run(&s, None, &host(&[("a", "web-a")], vec![theirs]), 0);
    assert!(created(&d).is_empty());
    assert_eq!(d.status.servers[0].migration.as_deref(), Some("by-hand"));
    assert_eq!(d.status.phase, DrainPhase::Draining);
}

#[test]
fn the_host_is_drained_when_every_migration_succeeded() {
    let s = spec(json!({"maxConcurrent": 2}));
    let first = run(&s, None, &host(&[("a", "web-a"), ("b", "web-b")], vec![]), 0);
    let done = vec![ours("a", Some(MigrationPhase::Succeeded)), ours("b", Some(MigrationPhase::Succeeded))];
    let d = run(&s, Some(&first.status), &host(&[], done.clone()), 40);
    assert_eq!(d.status.phase, DrainPhase::Drained);
    assert_eq!(condition(&d.status, "Ready"), (ConditionStatus::True, "Drained".into()));
    assert_eq!(condition(&d.status, "Progressing").0, ConditionStatus::False);
    assert_eq!(d.status.progress.as_deref(), Some("2/2"));
    assert_eq!(states(&d.status), [("web-a", DrainServerState::Migrated), ("web-b", DrainServerState::Migrated)]);
    assert!(d.actions.is_empty());
    // Still watched for servers forced onto the host later.
    assert!(d.requeue.is_some());

    // While a migration runs after its source left the host, the host is not drained yet.
    let running = vec![ours("a", Some(MigrationPhase::Succeeded)), ours("b", Some(MigrationPhase::Booting))];
    let not_yet = run(&s, Some(&first.status), &host(&[], running), 40);
    assert_eq!(not_yet.status.phase, DrainPhase::Draining);
}

// --- retention of succeeded migrations ---

#[test]
fn succeeded_migrations_go_after_their_retention_and_the_drain_keeps_their_summary() {
    let s = spec(json!({"maxConcurrent": 2, "succeededMigrationRetentionSeconds": 60}));
    let first = run(&s, None, &host(&[("a", "web-a"), ("b", "web-b")], vec![]), 0);
    let running = vec![succeeded_at("a", 100), ours("b", Some(MigrationPhase::Booting))];
    let kept = run(&s, Some(&first.status), &host(&[("b", "web-b")], running.clone()), 120);
    let a = &kept.status.servers[0];
    assert_eq!((a.state, a.replacement.as_deref()), (DrainServerState::Migrated, Some("new-a")));
    assert_eq!(a.migrated_at.as_deref(), Some(crate::api::timestamp(at(100)).as_str()));
    assert!(deleted(&kept).is_empty(), "kept for its retention");
    assert!(kept.requeue.unwrap() <= Duration::from_secs(40), "looked at again when it passes");

    let due = run(&s, Some(&kept.status), &host(&[("b", "web-b")], running), 160);
    assert_eq!(deleted(&due), [migration_name("drain", "a")]);
    assert!(due.actions.contains(&Action::DeleteMigration { name: migration_name("drain", "a"), uid: "uid-a".into() }));

    // Gone: the status still shows the server moved, with its replacement; nothing re-adds it.
    let after = run(&s, Some(&due.status), &host(&[], vec![succeeded_at("b", 170)]), 175);
    let a = &after.status.servers[0];
    assert_eq!((a.state, a.replacement.as_deref()), (DrainServerState::Migrated, Some("new-a")));
    assert_eq!(a.migration.as_deref(), Some(migration_name("drain", "a").as_str()));
    assert!(created(&after).is_empty());
    assert_eq!(after.status.phase, DrainPhase::Drained);
    assert_eq!(after.status.progress.as_deref(), Some("2/2"));
}

#[test]
fn failed_foreign_still_listed_or_unsummarised_migrations_are_never_deleted() {
    let s = spec(json!({"succeededMigrationRetentionSeconds": 0}));
    let first = run(&s, None, &host(&[("a", "web-a"), ("b", "web-b"), ("c", "web-c")], vec![]), 0);
    let failed = KnownMigration { succeeded_at: Some(at(10)), ..ours("a", Some(MigrationPhase::Failed)) };
    let by_hand = KnownMigration { owned: false, name: "by-hand".into(), ..succeeded_at("b", 10) };
    // Succeeded, but Nova still lists its server on the host.
    let still_listed = succeeded_at("c", 10);
    let d =
        run(&s, Some(&first.status), &host(&[("a", "web-a"), ("c", "web-c")], vec![failed, by_hand, still_listed]), 50);
    assert!(deleted(&d).is_empty(), "{:?}", d.actions);

    // Without a retention, succeeded migrations are kept for ever.
    let forever = spec(json!({}));
    let d = run(&forever, Some(&first.status), &host(&[], vec![succeeded_at("a", 10)]), 1_000_000);
    assert!(deleted(&d).is_empty());
    // Nor without knowing when it succeeded.
    let unknown = KnownMigration { succeeded_at: None, ..succeeded_at("a", 10) };
    let d = run(&s, Some(&first.status), &host(&[], vec![unknown]), 1_000_000);
    assert!(deleted(&d).is_empty());
}

#[test]
fn retention_applies_to_migrate_mode_only() {
    let s = spec(json!({"mode": "Wait", "migrationTemplate": null, "succeededMigrationRetentionSeconds": 60}));
    assert_eq!(fields(&s), ["spec.succeededMigrationRetentionSeconds"]);
}

#[test]
fn paused_starts_nothing_new_and_says_so() {
    let s = spec(json!({"paused": true}));
    let mut enabled = host(&[("a", "web-a")], vec![]);
    enabled.service = Some(service("enabled", "up"));
    let before = run(&s, None, &enabled, 0);
    assert!(before.actions.is_empty(), "paused before the cordon: the service is left alone");
    assert_eq!(before.status.phase, DrainPhase::Planned);

    let during = run(&s, None, &host(&[("a", "web-a"), ("b", "web-b")], vec![ours("a", None)]), 0);
    assert!(created(&during).is_empty());
    assert_eq!(during.status.phase, DrainPhase::Draining);
    assert_eq!(condition(&during.status, "Progressing"), (ConditionStatus::False, "Paused".into()));
}

#[test]
fn a_dry_run_plans_every_server_and_changes_nothing() {
    let s = spec(json!({"dryRun": true, "selector": {"exclude": [{"ids": ["x"]}]}}));
    let mut observed = host(&[("b", "web-b"), ("a", "web-a"), ("x", "web-x")], vec![]);
    observed.service = Some(service("enabled", "up"));
    observed.servers[0].boots_from_volume = true;
    let d = run(&s, None, &observed, 0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, DrainPhase::Planned);
    let plan: Vec<_> = d
        .status
        .servers
        .iter()
        .map(|e| (e.name.as_str(), e.migration.as_deref(), e.target.as_deref(), e.path))
        .collect();
    // Each with the path its migration would take: web-b boots from a volume, which moves.
    assert_eq!(
        plan,
        [
            ("web-a", Some("drain-a"), Some("icehouse"), Some(MovePath::Snapshot)),
            ("web-b", Some("drain-b"), Some("icehouse"), Some(MovePath::Volume)),
            ("web-x", None, None, None)
        ]
    );
    assert_eq!(condition(&d.status, "Progressing"), (ConditionStatus::False, "DryRun".into()));
    assert!(d.status.message.unwrap().contains("2 server(s) of havana-1 would be migrated"));
    let redeploy = spec(json!({"dryRun": true, "migrationTemplate": {"target": {"availabilityZone": "icehouse"},
        "strategy": "Redeploy", "redeploy": {"image": "cirros"}}}));
    let d = run(&redeploy, None, &observed, 0);
    assert!(d.status.servers.iter().all(|e| e.path == Some(MovePath::Redeploy)), "{:?}", d.status.servers);
}

// --- wait ---

fn wait_spec(deadline: Option<u64>) -> ComputeNodeDrainSpec {
    spec(json!({"mode": "Wait", "migrationTemplate": null, "waitDeadlineSeconds": deadline}))
}

#[test]
fn wait_mode_waits_for_owners_and_is_drained_when_they_are_gone() {
    let s = wait_spec(None);
    let first = run(&s, None, &host(&[("a", "web-a")], vec![]), 0);
    assert_eq!(first.status.phase, DrainPhase::Draining);
    assert!(first.actions.is_empty());
    assert_eq!(states(&first.status), [("web-a", DrainServerState::Waiting)]);
    let requeue = first.requeue.unwrap();
    assert!(requeue >= Duration::from_secs(2) && requeue <= Duration::from_secs(30), "{requeue:?}");

    let gone = run(&s, Some(&first.status), &host(&[], vec![]), 50);
    assert_eq!(gone.status.phase, DrainPhase::Drained);
    assert_eq!(states(&gone.status), [("web-a", DrainServerState::Gone)]);
}

#[test]
fn wait_mode_is_blocked_at_its_deadline_naming_what_remains() {
    let s = wait_spec(Some(60));
    let first = run(&s, None, &host(&[("a", "web-a"), ("b", "web-b")], vec![]), 0);
    assert!(first.requeue.unwrap() <= Duration::from_secs(60));
    let before = run(&s, Some(&first.status), &host(&[("a", "web-a"), ("b", "web-b")], vec![]), 59);
    assert_eq!(before.status.phase, DrainPhase::Draining);
    assert!(before.requeue.unwrap() <= Duration::from_secs(1), "the deadline is not overslept");
    let after = run(&s, Some(&first.status), &host(&[("b", "web-b")], vec![]), 61);
    assert_eq!(after.status.phase, DrainPhase::Blocked);
    assert!(after.status.message.as_ref().unwrap().contains("waiting: web-b"), "{:?}", after.status.message);
    assert_eq!(condition(&after.status, "Ready"), (ConditionStatus::False, "Blocked".into()));
    // Still watched: once the last server goes, the host is drained.
    let drained = run(&s, Some(&after.status), &host(&[], vec![]), 90);
    assert_eq!(drained.status.phase, DrainPhase::Drained);
}

#[test]
fn polls_slow_down_as_the_drain_goes_on() {
    let s = wait_spec(None);
    let first = run(&s, None, &host(&[("a", "web-a")], vec![]), 0);
    let later = run(&s, Some(&first.status), &host(&[("a", "web-a")], vec![]), 600);
    assert_eq!(first.requeue, Some(Duration::from_secs(2)));
    assert_eq!(later.requeue, Some(Duration::from_secs(30)));
}

// --- retire ---

fn retire_spec(force_down: bool) -> ComputeNodeDrainSpec {
    spec(json!({"afterDrain": "RetireService", "forceDown": force_down}))
}

#[test]
fn retirement_waits_for_the_service_to_go_down_then_deletes_it() {
    let s = retire_spec(false);
    let up = run(&s, None, &host(&[], vec![]), 0);
    assert_eq!(up.status.phase, DrainPhase::Retiring);
    assert!(up.actions.is_empty(), "never delete a service that still reports");
    assert_eq!(condition(&up.status, "Ready"), (ConditionStatus::True, "Drained".into()));

    let mut down = host(&[], vec![]);
    down.service = Some(service("disabled", "down"));
    let deleting = run(&s, Some(&up.status), &down, 30);
    assert_eq!(deleting.actions, [Action::DeleteService]);

    let gone = Observed { service: None, ..Default::default() };
    let retired = run(&s, Some(&deleting.status), &gone, 31);
    assert_eq!(retired.status.phase, DrainPhase::Retired);
    assert_eq!(condition(&retired.status, "Ready"), (ConditionStatus::True, "Retired".into()));
    assert!(retired.requeue.is_none());
}

#[test]
fn force_down_marks_the_service_down_instead_of_waiting() {
    let d = run(&retire_spec(true), None, &host(&[], vec![]), 0);
    assert_eq!(d.actions, [Action::ForceDownService]);
    let mut forced = host(&[], vec![]);
    forced.service.as_mut().unwrap().forced_down = true;
    let next = run(&retire_spec(true), Some(&d.status), &forced, 1);
    assert_eq!(next.actions, [Action::DeleteService]);
}

#[test]
fn a_service_is_never_retired_while_a_server_remains() {
    let mut s = retire_spec(false);
    s.selector.exclude = vec![serde_json::from_value(json!({"ids": ["k"]})).unwrap()];
    s.selector.excluded_may_remain = true;
    let mut down = host(&[("k", "keeper")], vec![]);
    down.service = Some(service("disabled", "down"));
    let d = run(&s, None, &down, 0);
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, DrainPhase::Blocked);
    assert!(d.status.message.unwrap().contains("never retired while a server remains (keeper)"));
}

// --- abort ---

#[test]
fn deleting_waits_for_running_migrations_then_enables_the_service() {
    let s = spec(json!({}));
    let draining = run(&s, None, &host(&[("a", "web-a"), ("b", "web-b")], vec![]), 0).status;
    let running = delete(&s, &draining, &host(&[("a", "web-a"), ("b", "web-b")], vec![ours("a", None)]));
    assert!(running.actions.is_empty() && !running.release, "no new migration, no release while one runs");
    assert_eq!(condition(&running.status, "Progressing"), (ConditionStatus::True, "Aborting".into()));

    let ended = delete(&s, &draining, &host(&[("b", "web-b")], vec![ours("a", Some(MigrationPhase::Succeeded))]));
    assert_eq!(ended.actions, [Action::EnableService]);
    assert!(ended.release);
}

#[test]
fn deleting_keeps_the_service_disabled_when_asked_done_or_disabled_by_someone_else() {
    let s = spec(json!({}));
    let draining = run(&s, None, &host(&[("a", "web-a")], vec![]), 0).status;
    let keep = spec(json!({"keepDisabledOnAbort": true}));
    assert!(delete(&keep, &draining, &host(&[("a", "web-a")], vec![])).actions.is_empty());

    let drained = run(&s, None, &host(&[], vec![]), 0).status;
    assert_eq!(drained.phase, DrainPhase::Drained);
    assert!(delete(&s, &drained, &host(&[], vec![])).actions.is_empty());

    let mut theirs = host(&[("a", "web-a")], vec![]);
    theirs.service.as_mut().unwrap().disabled_reason = Some("hardware fault".into());
    let d = delete(&s, &draining, &theirs);
    assert!(d.actions.is_empty() && d.release);
}

#[test]
fn a_drain_that_emptied_its_host_is_let_go_without_openstack_any_other_not() {
    // Deleted with its namespace, its cloud's Secret may be gone.
    let s = spec(json!({}));
    let draining = run(&s, None, &host(&[("a", "web-a")], vec![]), 0).status;
    assert!(!emptied(&draining), "its host must be enabled again");
    let drained = run(&s, None, &host(&[], vec![]), 0).status;
    assert!(emptied(&drained));
    let input =
        Input { spec: &s, status: Some(&drained), name: "drain", generation: Some(2), deleting: true, now: at(100) };
    let refusal = conditions::Refusal { reason: "SecretNotFound", message: "gone".into() };
    let d = plan(&input, Err(&refusal));
    assert!(d.actions.is_empty() && d.release);
}

#[test]
fn deleting_a_drain_that_never_cordoned_changes_nothing() {
    let s = spec(json!({"dryRun": true}));
    let planned = run(&s, None, &host(&[("a", "web-a")], vec![]), 0).status;
    let d = delete(&s, &planned, &host(&[("a", "web-a")], vec![]));
    assert!(d.actions.is_empty() && d.release);
}

#[test]
fn names_fit_kubernetes_and_stay_distinct() {
    assert_eq!(migration_name("drain-havana-1", "ABC-1"), "drain-havana-1-abc-1");
    let long = "d".repeat(300);
    let name = migration_name(&long, "0f6a3c1e-7b7d-4a44-9a3e-2f1d6c0b9e11");
    assert!(name.len() <= 253 && name.ends_with("-0f6a3c1e-7b7d-4a44-9a3e-2f1d6c0b9e11"));
}

#[test]
fn glob_patterns() {
    let m = |p: &str, n: &str| {
        let selector = json!({"namePattern": p});
        let d = run(
            &spec(json!({"maxConcurrent": 9, "selector": {"include": [selector]}})),
            None,
            &host(&[("x", n)], vec![]),
            0,
        );
        !created(&d).is_empty()
    };
    assert!(m("web-*", "web-1") && m("*", "") && m("w?b-*-z", "web-a-b-z") && m("*-1", "a-b-1"));
    assert!(!m("web-*", "db-1") && !m("w?b", "web-") && !m("a*b", "a-c"));
}

// --- what Nova lists ---

fn listed_on(id: &str, name: &str, host: Option<&str>) -> HostServer {
    HostServer { host: host.map(str::to_string), ..server(id, name) }
}

#[test]
fn a_server_nova_lists_on_another_host_is_never_migrated_nor_counted() {
    let s = spec(json!({"maxConcurrent": 3}));
    let mut observed = host(&[("a", "web-a")], vec![]);
    observed.servers.push(listed_on("b", "web-b", Some("icehouse-1")));
    let d = run(&s, None, &observed, 0);
    assert_eq!(created(&d), ["a"]);
    assert_eq!(
        states(&d.status),
        [("web-a", DrainServerState::Migrating), ("web-b", DrainServerState::ListedElsewhere)]
    );
    let problem = d.status.servers[1].problem.as_deref().unwrap();
    assert!(problem.contains("havana-1") && problem.contains("icehouse-1"), "{problem}");
    assert_eq!(d.status.counts.as_ref().unwrap().total, 1);

    // Once the host's own server has moved, the host is drained; the other never counted.
    observed.servers.remove(0);
    observed.migrations = vec![ours("a", Some(MigrationPhase::Succeeded))];
    let drained = run(&s, Some(&d.status), &observed, 30);
    assert_eq!(drained.status.phase, DrainPhase::Drained);
    assert_eq!(drained.status.progress.as_deref(), Some("1/1"));
    assert!(created(&drained).is_empty());

    // Its service is never retired while Nova lists a server for the host, wherever it is.
    let mut down = observed.clone();
    down.service = Some(service("disabled", "down"));
    let kept = run(&retire_spec(false), Some(&d.status), &down, 30);
    assert_eq!(kept.status.phase, DrainPhase::Blocked);
    assert!(kept.actions.is_empty());
}

/// The drain half-way: `a` migrated, `c` migrating (its source deleted), `b` still on the host.
fn half_way(s: &ComputeNodeDrainSpec) -> (ComputeNodeDrainStatus, Vec<KnownMigration>) {
    let first = run(s, None, &host(&[("a", "web-a"), ("b", "web-b"), ("c", "web-c")], vec![]), 0);
    let migrations = vec![ours("a", Some(MigrationPhase::Succeeded)), ours("c", Some(MigrationPhase::Booting))];
    let d = run(s, Some(&first.status), &host(&[("b", "web-b")], migrations.clone()), 30);
    let state = |id| d.status.servers.iter().find(|e| e.id == id).unwrap().state;
    assert_eq!([state("a"), state("c")], [DrainServerState::Migrated, DrainServerState::Migrating]);
    (d.status, migrations)
}

/// Asserts that the drain waits for a complete listing, naming `cause`, and concludes nothing.
fn assert_waits_for_listing(d: &Decision, before: &ComputeNodeDrainStatus, cause: &str) {
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, DrainPhase::Blocked);
    assert_eq!(condition(&d.status, "Progressing"), (ConditionStatus::True, "ListingIncomplete".into()));
    let message = d.status.message.as_deref().unwrap();
    assert!(message.contains(cause), "{message}");
    assert_eq!(d.status.servers, before.servers, "nothing is concluded from the listing");
    assert!(d.requeue.is_some());
}

#[test]
fn partial_records_of_a_cell_that_does_not_answer_make_the_drain_wait() {
    let s = spec(json!({"maxConcurrent": 2, "afterDrain": "RetireService"}));
    let (status, migrations) = half_way(&s);
    // `b` and `c` are not in the listing: their cell gave only partial records.
    let mut observed = host(&[], migrations);
    observed.partial = vec!["b".into(), "c".into()];
    observed.service = Some(service("disabled", "down"));
    let d = run(&s, Some(&status), &observed, 60);
    assert_waits_for_listing(&d, &status, "server(s) b, c only partly (status UNKNOWN)");

    // The cell answers again: the drain goes on from where it was.
    observed.partial.clear();
    observed.servers = vec![server("b", "web-b")];
    let on = run(&s, Some(&d.status), &observed, 90);
    assert_eq!(on.status.phase, DrainPhase::Draining);
}

#[test]
fn a_service_of_a_cell_that_does_not_answer_makes_the_drain_wait_even_when_nothing_is_listed() {
    let s = spec(json!({"afterDrain": "RetireService", "forceDown": true}));
    let (status, _) = half_way(&s);
    // The host's cell is down: Nova skips its servers in a filtered listing, so the host looks
    // empty; only the service record tells.
    let unknown =
        ServiceStatus { id: String::new(), status: "UNKNOWN".into(), state: String::new(), ..Default::default() };
    let observed = Observed { service: Some(unknown), ..Default::default() };
    let d = run(&s, Some(&status), &observed, 60);
    assert_waits_for_listing(&d, &status, "nova-compute service of havana-1 with status UNKNOWN");
    assert!(!d.status.servers.iter().any(|e| e.state == DrainServerState::Gone));
}

#[test]
fn a_server_listed_without_its_host_makes_the_drain_wait() {
    let s = spec(json!({}));
    let (status, migrations) = half_way(&s);
    let mut observed = host(&[], migrations);
    observed.servers.push(listed_on("x", "web-x", None));
    let d = run(&s, Some(&status), &observed, 60);
    assert_waits_for_listing(&d, &status, "server(s) x without their host");
    assert!(created(&d).is_empty());
}

// --- lost servers ---

fn lost_child(server: &str) -> KnownMigration {
    KnownMigration { past_point_of_no_return: true, ..ours(server, Some(MigrationPhase::Failed)) }
}

/// Asserts the drain is Blocked on the lost server `name`, starting nothing.
fn assert_blocked_on_loss(d: &Decision, name: &str) {
    assert_eq!(d.status.phase, DrainPhase::Blocked);
    assert_eq!(condition(&d.status, "Progressing").1, "ServerLost");
    let message = d.status.message.as_deref().unwrap();
    let migration = migration_name("drain", &name[4..]);
    assert!(message.contains(name) && message.contains(&migration), "{message}");
    assert!(created(d).is_empty() && d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.counts.as_ref().unwrap().lost, 1);
}

#[test]
fn a_server_lost_by_its_migration_blocks_the_drain_even_once_that_migration_is_deleted() {
    let s = spec(json!({"afterDrain": "RetireService", "forceDown": true}));
    let (status, _) = half_way(&s);
    // `c`'s migration failed after deleting the source: no new migration starts for `b`.
    let failed = vec![ours("a", Some(MigrationPhase::Succeeded)), lost_child("c")];
    let d = run(&s, Some(&status), &host(&[("b", "web-b")], failed), 60);
    assert_blocked_on_loss(&d, "web-c");
    let entry = d.status.servers.iter().find(|e| e.id == "c").unwrap();
    assert_eq!(entry.state, DrainServerState::Lost);
    assert!(entry.problem.as_deref().unwrap().contains("failed past its point of no return"));

    // Its InstanceMigration is deleted and `b` goes: the host looks empty, yet the loss stays.
    let only_a = vec![ours("a", Some(MigrationPhase::Succeeded))];
    let after = run(&s, Some(&d.status), &host(&[], only_a.clone()), 90);
    assert_blocked_on_loss(&after, "web-c");
    let again = run(&s, Some(&after.status), &host(&[], only_a), 120);
    assert_blocked_on_loss(&again, "web-c");
    assert!(!matches!(again.status.phase, DrainPhase::Drained | DrainPhase::Retiring | DrainPhase::Retired));
}

#[test]
fn a_loss_clears_only_when_a_migration_of_the_server_succeeds() {
    let s = spec(json!({}));
    let (status, _) = half_way(&s);
    let lost = run(&s, Some(&status), &host(&[("b", "web-b")], vec![lost_child("c")]), 60);
    assert_blocked_on_loss(&lost, "web-c");

    // Retried in place (its status still says it is past its point of no return): running
    // again is not enough, even for a drain that never saw it failed.
    let retrying = vec![KnownMigration { phase: Some(MigrationPhase::Booting), ..lost_child("c") }];
    let d = run(&s, Some(&lost.status), &host(&[("b", "web-b")], retrying.clone()), 90);
    assert_blocked_on_loss(&d, "web-c");
    assert_blocked_on_loss(&run(&s, Some(&status), &host(&[("b", "web-b")], retrying), 90), "web-c");

    let succeeded = vec![ours("c", Some(MigrationPhase::Succeeded))];
    let d = run(&s, Some(&d.status), &host(&[("b", "web-b")], succeeded), 120);
    let entry = d.status.servers.iter().find(|e| e.id == "c").unwrap();
    assert_eq!((entry.state, entry.problem.as_deref()), (DrainServerState::Migrated, None));
    assert_eq!(created(&d), ["b"]);
    assert_eq!(d.status.phase, DrainPhase::Draining);
}

#[test]
fn a_server_that_left_the_host_while_its_migration_failed_or_vanished_is_lost_not_gone() {
    let s = spec(json!({}));
    let (status, _) = half_way(&s);
    // Failed, the status not saying the source was deleted (a delete that timed out and went
    // through later), and the server is no longer on the host.
    let failed = run(&s, Some(&status), &host(&[("b", "web-b")], vec![ours("c", Some(MigrationPhase::Failed))]), 60);
    assert_blocked_on_loss(&failed, "web-c");

    // Running, then deleted before the drain saw it end, and the server is gone.
    let vanished = run(&s, Some(&status), &host(&[("b", "web-b")], vec![]), 60);
    assert_blocked_on_loss(&vanished, "web-c");
    let problem = vanished.status.servers.iter().find(|e| e.id == "c").unwrap().problem.clone().unwrap();
    assert!(problem.contains("deleted before the drain saw it end"), "{problem}");

    // A failed migration whose server is still on the host is retried as before.
    let on_host = host(&[("b", "web-b"), ("c", "web-c")], vec![ours("c", Some(MigrationPhase::Failed))]);
    let d = run(&s, Some(&status), &on_host, 60);
    assert_eq!(d.status.servers.iter().find(|e| e.id == "c").unwrap().state, DrainServerState::Failed);
}
