//! A finished migration as the cache keeps it: nothing more happens to it until its spec, its
//! annotations or its deletion change, and each of those brings the whole object back through
//! the watch. Until then it costs next to nothing: the summary keeps what decides that it has
//! finished, what the drain reads of it (server, phase, whether it is past its point of no
//! return) and when it last moved on (the order after a restart).

use kube::ResourceExt;

use crate::api::{InstanceMigration, InstanceMigrationStatus, MigrationPhase, RETRY_ANNOTATION};
use crate::runtime::cached;

use super::{FINALIZER, planner};

/// Whether nothing more will happen to the migration without a change of its spec, its
/// annotations or its deletion: it has ended, on its current spec, holds its finalizer, and is
/// not asked to retry.
pub fn finished(im: &InstanceMigration) -> bool {
    let Some(status) = &im.status else { return false };
    matches!(status.phase, MigrationPhase::Succeeded | MigrationPhase::Failed)
        && status.observed_generation == im.metadata.generation
        && im.metadata.deletion_timestamp.is_none()
        && im.finalizers().iter().any(|f| f == FINALIZER)
        && !planner::retry_requested(status, im.annotations().get(RETRY_ANNOTATION).map(String::as_str))
}

/// The object as the cache keeps it: stripped, and summarised once finished.
pub fn cached(im: &mut InstanceMigration) {
    cached::cached(im);
    if !finished(im) {
        return;
    }
    let Some(status) = im.status.take() else { return };
    let last_step = status.steps.iter().max_by_key(|s| s.finished_at.as_ref().unwrap_or(&s.started_at)).cloned();
    im.status = Some(InstanceMigrationStatus {
        phase: status.phase,
        observed_generation: status.observed_generation,
        recovery: status.recovery,
        steps: last_step.into_iter().collect(),
        ..Default::default()
    });
    let spec = &mut im.spec;
    spec.source.secret_name = String::new();
    spec.source.cloud = String::new();
    spec.options.target = Default::default();
    spec.options.redeploy = None;
    spec.options.mappings = Default::default();
    let meta = &mut im.metadata;
    meta.owner_references = None;
    meta.labels = None;
    cached::mark_summary(im);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Recovery, StepRecord, StepResult};

    fn succeeded() -> InstanceMigration {
        let mut im: InstanceMigration = serde_json::from_value(serde_json::json!({
            "apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration",
            "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1", "generation": 1,
                "finalizers": [FINALIZER], "labels": {"osmo.dev/drain-uid": "d"}},
            "spec": {"server": "web-1", "source": {"secretName": "clouds", "cloud": "old"},
                "target": {"availabilityZone": "icehouse"}, "mappings": {"networks": {"a": "b"}}}
        }))
        .unwrap();
        let step = |name, at: &str| StepRecord {
            name,
            started_at: at.into(),
            finished_at: Some(at.into()),
            result: StepResult::Succeeded,
            message: None,
        };
        im.status = Some(InstanceMigrationStatus {
            phase: MigrationPhase::Succeeded,
            observed_generation: Some(1),
            target_description: Some("availability zone icehouse".into()),
            steps: vec![
                step(MigrationPhase::Stopping, "2026-11-30T10:00:00Z"),
                step(MigrationPhase::CleaningUp, "2026-11-30T10:05:00Z"),
            ],
            ..Default::default()
        });
        im
    }

    #[test]
    fn a_finished_migration_is_cached_as_a_summary_of_what_is_read_of_it() {
        let mut im = succeeded();
        cached(&mut im);
        assert!(cached::is_summary(&im));
        assert!(finished(&im), "a summary still says it has finished");
        let status = im.status.as_ref().unwrap();
        assert_eq!(status.phase, MigrationPhase::Succeeded);
        assert_eq!(status.target_description, None);
        assert_eq!(status.steps.len(), 1);
        assert_eq!(status.steps[0].name, MigrationPhase::CleaningUp, "when it last moved on");
        assert_eq!(im.spec.server, "web-1", "the drain reads which server it moved");
        assert!(im.spec.options.mappings.networks.is_empty());
    }

    #[test]
    fn a_migration_that_may_still_act_is_cached_whole() {
        let whole = |change: fn(&mut InstanceMigration)| {
            let mut im = succeeded();
            change(&mut im);
            cached(&mut im);
            !cached::is_summary(&im)
        };
        assert!(whole(|im| im.status.as_mut().unwrap().phase = MigrationPhase::Booting), "under way");
        assert!(whole(|im| im.metadata.generation = Some(2)), "a spec change not acted on yet");
        assert!(
            whole(|im| im.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH))),
            "being deleted"
        );
        assert!(whole(|im| im.metadata.finalizers = None), "not taken up yet");
        assert!(
            whole(|im| {
                let status = im.status.as_mut().unwrap();
                status.phase = MigrationPhase::Failed;
                status.recovery = Some(Recovery { phase: MigrationPhase::Booting, ..Default::default() });
                im.metadata.annotations = Some([(RETRY_ANNOTATION.to_string(), "1".to_string())].into());
            }),
            "asked to retry"
        );
    }

    #[test]
    fn a_status_is_never_written_from_a_summary() {
        // The whole record would be replaced by the few fields the summary keeps.
        let mut im = succeeded();
        cached(&mut im);
        assert!(cached::refuse_summary(&im).is_err());
        assert!(cached::refuse_summary(&succeeded()).is_ok());
    }
}
