//! The options a migration was accepted with: later edits never change it.

use super::*;

#[test]
fn editing_the_spec_of_a_migration_that_failed_after_deleting_the_source_does_not_restart_it() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    let failed = run.finish().clone();
    assert_failed(&failed, "BootFailed");

    // A typo, then its fix; the controller does not look at OpenStack for a Failed migration.
    for (spec, generation) in [(spec(json!({"target": {}})), 2), (snapshot_spec(), 3)] {
        run.spec = spec;
        run.generation = generation;
        let decision = plan(&run.input(), &Observed::default());
        run.status = Some(decision.status);
    }
    let status = run.status();
    assert_eq!(status.phase, Failed);
    assert_eq!((&status.source, &status.snapshot), (&failed.source, &failed.snapshot));
    assert_eq!(status.target, failed.target);
}

#[test]
fn a_strategy_switched_while_snapshotting_is_ignored_and_reported() {
    let mut run = snapshotting_run();
    edit(&mut run, redeploy_spec());

    let reported = run.step();
    assert_eq!(reported.status.observed_generation, Some(2));
    assert_condition(&reported.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::True, "MigrationStarted");
    assert!(
        condition(&reported.status, condition_type::SPEC_CHANGE_IGNORED)
            .message
            .contains("delete this InstanceMigration")
    );
    // Still a snapshot migration: it waits for its snapshot, then boots from it.
    assert_eq!((reported.status.phase, reported.action), (Snapshotting, None));
    assert_moved_as_accepted(&mut run);
}

#[test]
fn a_spec_made_invalid_while_snapshotting_changes_nothing_the_migration_does() {
    let mut run = snapshotting_run();
    // Redeploy without an image: refused by validation, were the migration not under way.
    let invalid = spec(json!({"strategy": "Redeploy", "server": " web-1 "}));
    assert!(!validate(&invalid).is_empty());
    edit(&mut run, invalid);

    let reported = run.step();
    assert_condition(&reported.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::True, "MigrationStarted");
    assert_condition(&reported.status, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert_eq!(reported.status.last_error, None);
    assert_moved_as_accepted(&mut run);
}

#[test]
fn a_strategy_switched_once_the_source_is_gone_keeps_the_snapshot_and_boots_from_it() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Booting);
    edit(&mut run, redeploy_spec());
    assert_succeeded(run.finish());
    // The snapshot is deleted only at the end, once the replacement is verified.
    assert_eq!(run.actions().last(), Some(&delete_snapshot(SNAPSHOT_ID)));
    assert!(run.actions().iter().filter(|a| **a == delete_snapshot(SNAPSHOT_ID)).count() == 1);
    assert!(run.phases().contains(&CleaningUp));
}

#[test]
fn an_edit_taken_back_is_no_longer_reported() {
    let mut run = snapshotting_run();
    edit(&mut run, redeploy_spec());
    run.step();
    edit(&mut run, snapshot_spec());
    let back = run.step();
    assert_condition(&back.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::False, "AsAccepted");
}

#[test]
fn a_finished_migration_reports_a_later_edit_and_stays_as_it_ended() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let done = run.finish().clone();
    edit(&mut run, redeploy_spec());
    let after = run.step();
    assert_eq!(after.action, None);
    assert_condition(&after.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::True, "MigrationStarted");
    assert_eq!((after.status.phase, &after.status.target, &after.status.steps), (Succeeded, &done.target, &done.steps));
}

#[test]
fn until_something_changed_the_spec_acted_on_follows_the_edits() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let first = acknowledge(&run.input());
    assert_eq!(first.accepted_spec.as_deref(), Some(&snapshot_spec()));
    run.status = Some(first);
    let other = spec(json!({"target": {"availabilityZone": "icehouse-2"}}));
    edit(&mut run, other.clone());
    let recorded = run.step();
    assert_eq!(recorded.status.accepted_spec.as_deref(), Some(&other));
    assert!(conditions::get(&recorded.status.conditions, condition_type::SPEC_CHANGE_IGNORED).is_none());
}

/// The spec is edited (a new generation) to `spec`.
fn edit(run: &mut Run, spec: InstanceMigrationSpec) {
    run.spec = spec;
    run.generation += 1;
}

/// The whole snapshot migration of `web-1`, as accepted, whatever the spec says since.
fn assert_moved_as_accepted(run: &mut Run) {
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    assert_succeeded(run.finish());
    assert_eq!(
        run.actions(),
        [
            stop_source(),
            lock_source(),
            create_snapshot(),
            protect_snapshot(true),
            delete_source(),
            create_port("p-1", "net-1", false),
            finish_port("p-1", false),
            boot(SNAPSHOT_ID, &[made_port("p-1")]),
            associate("fip-1", "p-1-made", None),
            protect_snapshot(false),
            delete_snapshot(SNAPSHOT_ID),
        ]
    );
    assert_eq!(run.status().accepted_spec.as_deref(), Some(&snapshot_spec()));
}
