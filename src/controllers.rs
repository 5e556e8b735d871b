//! The wiring: both controllers, their watches and their contexts, run with the shared
//! plumbing of `runtime`. The one module that knows every controller.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::{Controller, WatchStreamExt, predicates, reflector, watcher};
use tokio_util::sync::CancellationToken;

use crate::api::{ACCEPT_LOSS_ANNOTATION, ComputeNodeDrain, InstanceMigration, MigrationPhase, RETRY_ANNOTATION};
use crate::runtime::{self, RunConfig, Shared};
use crate::{drain, migration};

/// Runs the operator: both controllers while this process leads.
pub async fn run(config: RunConfig, client: kube::Client) -> anyhow::Result<()> {
    let watch = Watch { namespace: config.namespace.clone(), concurrency: config.concurrency };
    runtime::run(config, client, move |shared, stop| run_controllers(shared, watch, stop)).await
}

/// Objects per page of a watch's listing (at start and after a relist). A page is parsed whole,
/// field managers' records and all, before the cache strips its objects: the allocator keeps
/// what the largest page took, with the cached objects scattered through it. With 3,000
/// finished migrations stored, pages of 500 (the usual default) left the operator at 55 MiB
/// resident, pages of 100 at 34 MiB (`benches/memory.rs`).
const LIST_PAGE_SIZE: u32 = 100;

/// What the controllers watch, and how many reconciles of a kind run at once.
struct Watch {
    namespace: Option<String>,
    concurrency: u16,
}

async fn run_controllers(shared: Arc<Shared>, watch: Watch, stop: CancellationToken) {
    let acting_since = jiff::Timestamp::now();
    let client = &shared.client;
    let namespace = watch.namespace.as_deref();
    let migrations_api = runtime::scoped::<InstanceMigration>(client, namespace);
    // Both kinds wake on spec changes and deletion (both bump the generation), a migration also
    // on the annotations that retry it or accept its loss, and on their own polling timers; not
    // on the operator's own status writes: each wake costs OpenStack reads.
    let (migrations, writer) = reflector::store();
    let listing = || watcher::Config::default().page_size(LIST_PAGE_SIZE);
    let events =
        watcher(migrations_api.clone(), listing()).default_backoff().modify(migration::summary::cached).reflect(writer);
    // After a restart, the migrations that progressed longest ago are taken up first.
    let triggers = runtime::fairness::applied_least_recently_served_first(events, migrations.clone(), last_progress)
        .predicate_filter(migration_wake, Default::default());
    let migration_controller = Controller::for_stream(triggers, migrations.clone());

    let (drains, writer) = reflector::store();
    let triggers = watcher(runtime::scoped::<ComputeNodeDrain>(client, namespace), listing())
        .default_backoff()
        .modify(runtime::cached::cached)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    // A drain also wakes when one of its migrations ends, or fails past its point of no return
    // (what frees a slot or holds the drain back): not on each phase, as each wake lists its
    // host's servers in Nova (a third of a drain's requests, slowing its own migrations).
    let children = watcher(migrations_api, listing().labels(drain::planner::DRAIN_UID_LABEL))
        .default_backoff()
        .touched_objects()
        .predicate_filter(migration_outcome, Default::default());
    let drain_controller = Controller::for_stream(triggers, drains).owns_stream(children);

    let migration_ctx = Arc::new(migration::Context::new(shared.clone(), acting_since));
    let drain_ctx = Arc::new(drain::Context { shared: shared.clone(), migrations });
    let metrics = &shared.metrics;
    tokio::join!(
        runtime::run_controller(
            migration_controller,
            migration_ctx,
            metrics.clone(),
            stop.clone(),
            watch.concurrency,
            migration::reconcile
        ),
        runtime::run_controller(
            drain_controller,
            drain_ctx,
            metrics.clone(),
            stop,
            watch.concurrency,
            drain::reconcile
        ),
    );
}

/// When a migration last moved on: its latest step's start or end (never, before its first step).
fn last_progress(im: &InstanceMigration) -> Option<jiff::Timestamp> {
    let steps = im.status.as_ref()?.steps.iter();
    steps.flat_map(|s| [Some(&s.started_at), s.finished_at.as_ref()]).flatten().filter_map(|t| t.parse().ok()).max()
}

/// A predicate that changes with a migration's generation and the annotations a user acts on
/// a failed migration with.
fn migration_wake(im: &InstanceMigration) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    im.metadata.generation.hash(&mut hasher);
    for annotation in [RETRY_ANNOTATION, ACCEPT_LOSS_ANNOTATION] {
        im.annotations().get(annotation).hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// A predicate that changes when a migration ends (and how), fails past its point of no
/// return, or is being deleted.
fn migration_outcome(im: &InstanceMigration) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let status = im.status.as_ref();
    status
        .map(|s| s.phase)
        .filter(|p| matches!(p, MigrationPhase::Succeeded | MigrationPhase::Failed))
        .hash(&mut hasher);
    status.is_some_and(|s| s.recovery.is_some()).hash(&mut hasher);
    im.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{InstanceMigrationStatus, Recovery};

    #[test]
    fn a_drain_wakes_when_a_migration_ends_or_fails_past_its_point_of_no_return_not_at_each_step() {
        let at = |phase, recovery: Option<Recovery>| {
            let mut im: InstanceMigration = serde_json::from_value(serde_json::json!({
                "apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration", "metadata": {"name": "m"},
                "spec": {"server": "web", "source": {"secretName": "clouds", "cloud": "old"}, "target": {}}
            }))
            .unwrap();
            im.status = Some(InstanceMigrationStatus { phase, recovery, ..Default::default() });
            migration_outcome(&im)
        };
        let running = at(MigrationPhase::Stopping, None);
        assert_eq!(at(MigrationPhase::Booting, None), running);
        assert_ne!(at(MigrationPhase::Succeeded, None), running);
        assert_ne!(at(MigrationPhase::Failed, None), at(MigrationPhase::Succeeded, None));
        let retrying =
            at(MigrationPhase::Booting, Some(Recovery { phase: MigrationPhase::Booting, ..Default::default() }));
        assert_ne!(retrying, running);
    }
}
