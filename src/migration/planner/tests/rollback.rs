//! RollingBack, and deletion of the resource mid-way.

use super::*;

#[test]
fn a_killed_snapshot_is_rolled_back_and_the_source_restarted() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    assert_eq!(run.entering(Snapshotting).action, Some(lock_source()));
    assert_eq!(run.step().action, Some(create_snapshot()));

    let failed = run.step();
    assert_eq!((&failed.action, failed.requeue), (&None, Some(Duration::ZERO)));
    assert_rolling_back(&failed.status, "SnapshotFailed");
    assert_eq!(failure_message(&failed.status), "snapshot img-1 ended killed in Glance; rolling back");
    assert_eq!(step_record(&failed.status, Snapshotting).result, StepResult::Failed);
    assert_eq!(
        step_record(&failed.status, Snapshotting).message.as_deref(),
        Some("snapshot img-1 ended killed in Glance")
    );

    let deleting = run.step();
    assert_eq!(deleting.action, Some(delete_snapshot(SNAPSHOT_ID)));
    assert_rolling_back(&deleting.status, "SnapshotFailed");
    // Given back without osmo's lock, then started again.
    assert_eq!(run.step().action, Some(unlock_source()));
    let starting = run.step();
    assert_eq!(starting.action, Some(start_source()));
    assert_rolling_back(&starting.status, "SnapshotFailed");

    let ended = run.step();
    assert_eq!((&ended.action, ended.requeue), (&None, None));
    assert_failed(&ended.status, "SnapshotFailed");
    assert_eq!(
        failure_message(&ended.status),
        "snapshot img-1 ended killed in Glance. The source server is as it was."
    );
    assert_eq!(ended.status.last_error.as_deref(), Some("snapshot img-1 ended killed in Glance"));
    assert_eq!(ended.status.snapshot.as_ref().map(|s| s.status.as_str()), Some("deleted"));
    assert_eq!(
        steps(&ended.status),
        [
            (Recording, StepResult::Succeeded),
            (Stopping, StepResult::Succeeded),
            (Snapshotting, StepResult::Failed),
            (RollingBack, StepResult::Succeeded)
        ]
    );
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"));
    assert!(run.cloud.snapshot.is_none());
}

#[test]
fn a_snapshot_that_vanishes_is_rolled_back() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "saving";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    run.step();
    run.cloud.snapshot = None;

    let lost = run.step();
    assert_eq!(lost.action, None);
    assert_rolling_back(&lost.status, "SnapshotLost");

    assert_failed(run.finish(), "SnapshotLost");
    // Nothing left to delete: only the restart.
    assert_eq!(run.actions(), [stop_source(), lock_source(), create_snapshot(), unlock_source(), start_source()]);
}

#[test]
fn a_rollback_does_not_start_a_source_that_was_off() {
    let mut cloud = web_cloud("SHUTOFF");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);

    assert_failed(run.finish(), "SnapshotFailed");
    // Given back as it was: off, and without osmo's lock.
    assert_eq!(run.actions(), [lock_source(), create_snapshot(), delete_snapshot(SNAPSHOT_ID), unlock_source()]);
    let source = run.cloud.source.as_ref().unwrap();
    assert_eq!((source.status.as_str(), source.locked), ("SHUTOFF", false));
}

#[test]
fn a_redeploy_boot_error_deletes_the_replacement_and_restarts_the_source() {
    let mut cloud = redeploy_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(redeploy_spec(), cloud);
    run.entering(Booting);
    run.step();
    assert!(is_boot(&run.step().action.unwrap()));

    let failed = run.step();
    assert_rolling_back(&failed.status, "BootFailed");
    assert_eq!(run.step().action, Some(delete_target()));
    // Nova leaves the ports osmo made: they go with the replacement.
    assert_eq!(run.step().action, Some(Action::DeletePort { port_id: "p-1-made".into() }));
    assert_eq!(run.step().action, Some(start_source()));

    let ended = run.finish();
    assert_failed(ended, "BootFailed");
    assert_eq!(
        failure_message(ended),
        format!("replacement tgt-1 went to ERROR: {NO_VALID_HOST}. The source server is as it was.")
    );
    assert!(!run.actions().contains(&delete_source()));
    assert!(run.cloud.target.is_none());
    assert!(run.cloud.created_ports.is_empty() && run.status().target_ports.is_empty());
}

#[test]
fn a_rollback_that_outlasts_its_timeout_ends_saying_what_remains() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(RollingBack);
    run.now += A_DAY;

    let ended = run.step();
    assert_eq!((&ended.action, ended.requeue), (&None, None));
    assert_failed(&ended.status, "RollbackTimeout");
    assert_eq!(
        failure_message(&ended.status),
        "Rolling back took too long. What remains: source server src-1 is SHUTOFF; snapshot img-1 is killed."
    );
}

#[test]
fn deleting_while_stopping_rolls_back_and_restarts_the_source() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.deleting = true;

    let aborted = run.step();
    assert_eq!((&aborted.action, aborted.requeue), (&None, Some(Duration::ZERO)));
    assert_rolling_back(&aborted.status, "Deleted");
    assert_eq!(step_record(&aborted.status, Stopping).result, StepResult::Failed);

    assert_failed(run.finish(), "Deleted");
    assert_eq!(run.actions(), [stop_source(), start_source()]);
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"));
}

#[test]
fn deleting_while_snapshotting_deletes_the_snapshot_and_restarts_the_source() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "saving";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    run.step();
    run.deleting = true;

    let aborted = run.step();
    assert_eq!(aborted.action, None);
    assert_rolling_back(&aborted.status, "Deleted");
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    assert_eq!(run.step().action, Some(unlock_source()));
    assert_eq!(run.step().action, Some(start_source()));
    assert_failed(run.finish(), "Deleted");
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"));
}

#[test]
fn a_rollback_ends_only_once_a_create_in_flight_can_no_longer_land() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    assert_eq!(run.entering(Snapshotting).action, Some(lock_source()));
    // The snapshot's create is written as sent, and its answer never comes.
    let sent = run.decide();
    assert_eq!(sent.action, Some(create_snapshot()));
    run.status = Some(sent.status);
    run.deleting = true;
    let sent_at = run.now;

    let aborted = run.step();
    assert_rolling_back(&aborted.status, "Deleted");
    assert_eq!(run.step().action, Some(unlock_source()));
    assert_eq!(run.step().action, Some(start_source()));
    // The source runs again, but the create may still land: the rollback waits it out.
    while run.now < sent_at + CREATE_FENCE.as_secs() - SECONDS_PER_STEP {
        assert_eq!((run.step().action, run.phase()), (None, RollingBack), "at {}s", run.now - sent_at);
    }
    // It lands late, and is deleted before the migration ends.
    run.cloud.snapshot = Some(image("img-late", "active"));
    assert_eq!(run.step().action, Some(delete_snapshot("img-late")));
    assert_failed(run.finish(), "Deleted");
    assert!(run.now >= sent_at + CREATE_FENCE.as_secs());
    assert_eq!(run.cloud.snapshot, None);
}

#[test]
fn deleting_a_snapshot_migration_after_the_source_is_gone_finishes_it() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.before(Booting);
    run.deleting = true;

    let booting = run.step();
    assert_eq!(booting.action, Some(create_port("p-1", "net-1", false)));
    assert_progressing(&booting.status, Booting);
    assert_succeeded(run.finish());
}

#[test]
fn deleting_a_redeploy_while_booting_rolls_back() {
    let mut cloud = redeploy_cloud("ACTIVE");
    cloud.target_becomes = "BUILD";
    let mut run = Run::new(redeploy_spec(), cloud);
    assert_eq!(run.entering(Booting).action, Some(create_port("p-1", "net-1", false)));
    // The port is made; the operator dies before the status holds its ID, and the resource is
    // deleted meanwhile: the port is found by its marker and deleted too.
    run.deleting = true;

    let aborted = run.step();
    assert_eq!(aborted.action, None);
    assert_rolling_back(&aborted.status, "Deleted");
    assert_eq!(run.step().action, Some(Action::DeletePort { port_id: "p-1-made".into() }));
    assert_eq!(run.step().action, Some(start_source()));
    assert_failed(run.finish(), "Deleted");
    assert!(run.cloud.target.is_none() && run.cloud.created_ports.is_empty());
    assert!(!run.actions().contains(&delete_source()));
}

#[test]
fn a_failure_that_leaves_the_source_in_place_does_not_call_it_deleted() {
    // Redeploy: the replacement breaks during verification; the stopped source is untouched.
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    run.entering(MovingAddresses);
    run.cloud.target.as_mut().unwrap().status = "ERROR".into();
    let failed = run.step();
    assert_failed(&failed.status, "ReplacementNotActive");
    assert!(run.cloud.source.is_some());
    assert!(!failure_message(&failed.status).contains("is deleted"), "{}", failure_message(&failed.status));

    // Snapshot: Glance refuses to delete the snapshot while rolling back; the source is there.
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(RollingBack);
    let refused = fail(&run.input(), "OpenStackError", "Glance answered 403".into());
    assert!(run.cloud.source.is_some());
    assert!(!failure_message(&refused.status).contains("is deleted"), "{}", failure_message(&refused.status));
}

#[test]
fn a_rollback_after_the_source_vanished_does_not_say_it_is_as_it_was() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.cloud.source = None;

    assert_rolling_back(&run.step().status, "SourceVanished");
    let ended = run.finish();
    assert_failed(ended, "SourceVanished");
    assert!(!failure_message(ended).contains("as it was"), "{}", failure_message(ended));
}

#[test]
fn the_message_after_a_deletion_rollback_reads_cleanly() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.deleting = true;

    let ended = run.finish();
    assert_failed(ended, "Deleted");
    assert!(!failure_message(ended).contains(".."), "{}", failure_message(ended));
}

#[test]
fn a_rollback_without_the_source_keeps_the_snapshot() {
    let mut run = snapshotting_run();
    run.deleting = true;
    assert_rolling_back(&run.step().status, "Deleted");
    // Someone deleted the source meanwhile, and the snapshot is complete: it may be the only copy.
    run.cloud.source = None;
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));

    let failed = run.finish().clone();
    assert_failed(&failed, "Deleted");
    assert!(!run.actions().contains(&delete_snapshot(SNAPSHOT_ID)), "{:?}", run.actions());
    assert!(
        failure_message(&failed).contains(&format!("its snapshot {SNAPSHOT_ID} is kept")),
        "{}",
        failure_message(&failed)
    );
}

#[test]
fn a_rollback_unprotects_the_snapshot_before_deleting_it() {
    let mut run = snapshotting_run();
    run.cloud.snapshot.as_mut().unwrap().protected = true;
    run.deleting = true;
    assert_rolling_back(&run.step().status, "Deleted");
    assert_failed(run.finish(), "Deleted");
    let undo = [protect_snapshot(false), delete_snapshot(SNAPSHOT_ID), unlock_source(), start_source()];
    assert!(run.actions().ends_with(&undo), "{:?}", run.actions());
}

#[test]
fn a_source_deletion_refused_by_nova_is_rolled_back() {
    // E.g. 409: the owner locked the server after it was recorded.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(DeletingSource);
    assert_eq!(run.status().phase, DeletingSource);
    let refused = fail(&run.input(), "OpenStackError", "Nova answered 409: Instance src-1 is locked".into());
    assert_rolling_back(&refused.status, "OpenStackError");
    run.status = Some(refused.status);
    let done = run.finish().clone();
    assert_failed(&done, "OpenStackError");
    assert_eq!(done.recovery, None);
    assert!(run.cloud.snapshot.is_none(), "the snapshot is deleted: the source is the copy");
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.clone()), Some("ACTIVE".into()));
    assert!(run.actions().contains(&protect_snapshot(false)) && run.actions().contains(&start_source()));
}
