//! Verifying and CleaningUp: downtime, and a snapshot kept or deleted.

use super::*;

#[test]
fn without_a_stop_downtime_is_measured_from_the_source_deletion() {
    let mut run = Run::new(spec(json!({"stopSource": false})), web_cloud("ACTIVE"));
    let done = run.finish();
    let seconds = |at: &str| at.parse::<jiff::Timestamp>().unwrap().as_second() - T0;
    let deletion = seconds(&step_record(done, DeletingSource).started_at);
    let verified = seconds(step_record(done, Verifying).finished_at.as_deref().unwrap());
    // Making the port and giving it its description take a step each here.
    assert_eq!((deletion, verified), (15, 40));
    assert_eq!(done.downtime.as_deref(), Some("25.0s"));
}

#[test]
fn a_retained_snapshot_is_kept() {
    let mut run = Run::new(spec(json!({"snapshotCleanup": "Retain"})), web_cloud("ACTIVE"));
    let done = run.finish().clone();

    assert_succeeded(&done);
    assert!(!run.actions().iter().any(|a| matches!(a, Action::DeleteSnapshot { .. })), "{:?}", run.log);
    assert_eq!(step_record(&done, CleaningUp).result, StepResult::Succeeded);
    assert_eq!(
        done.snapshot,
        Some(SnapshotStatus {
            image_id: SNAPSHOT_ID.into(),
            status: "active".into(),
            size_bytes: Some(SNAPSHOT_SIZE),
            protected: false
        })
    );
    assert_eq!(run.cloud.snapshot, Some(image(SNAPSHOT_ID, "active")));
}

#[test]
fn a_snapshot_deletion_refused_for_good_is_noted_and_tried_again_never_a_failure() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.entering(CleaningUp);
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    // Glance answers 409 for good (a clone of it exists): the controller hands that to `fail`.
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    let refused = fail(&run.input(), "OpenStackError", "glance DELETE /v2/images/img-1: HTTP 409".into());
    assert_eq!(refused.status.phase, CleaningUp);
    assert!(refused.requeue.is_some());
    assert!(refused.status.last_error.as_deref().is_some_and(|e| e.contains("HTTP 409")), "{:?}", refused.status);
    run.status = Some(refused.status);
    // Tried again, then, past the step's time-out, the move succeeds with the note.
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    run.now += A_DAY;
    let done = run.step();
    assert_eq!(done.status.phase, Succeeded);
    assert_succeeded(&done.status);
}

#[test]
fn a_snapshot_that_will_not_be_deleted_is_noted_but_the_move_succeeds() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    // No longer the only copy once the replacement is verified: unprotected, then deleted.
    assert_eq!(run.entering(CleaningUp).action, Some(protect_snapshot(false)));
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    // Glance keeps it.
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    run.now += A_DAY;

    let done = run.step();
    assert_eq!(done.action, None);
    assert_eq!(done.status.phase, Succeeded);
    assert_eq!(
        done.status.last_error.as_deref(),
        Some("snapshot img-1 could not be deleted in time; delete it by hand")
    );
}

#[test]
fn a_retained_snapshot_is_unprotected_once_the_replacement_is_verified() {
    let mut run = Run::new(spec(json!({"snapshotCleanup": "Retain"})), web_cloud("ACTIVE"));
    assert_succeeded(run.finish());
    assert!(run.actions().contains(&protect_snapshot(false)));
    assert!(run.cloud.snapshot.as_ref().is_some_and(|i| !i.protected));
}
