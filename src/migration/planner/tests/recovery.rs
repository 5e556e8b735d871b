//! A migration failed past its point of no return: retried in place, and never let go
//! unnoticed.

use super::*;
use crate::migration::planner::{releasable, retry_requested};

/// A snapshot migration whose replacement went to ERROR after the source was deleted.
fn failed_boot() -> Run {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Failed);
    let status = run.status();
    assert_eq!(status.recovery.as_ref().map(|r| r.failed_target.as_deref()), Some(Some(TARGET_ID)));
    assert!(run.cloud.source.is_none() && run.cloud.snapshot.is_some());
    run
}

#[test]
fn a_boot_failure_after_deletion_is_retried_in_place_replacing_the_failed_replacement() {
    let mut run = failed_boot();
    // Nothing happens until asked.
    assert_eq!((run.step().action, run.phase()), (None, Failed));

    run.cloud.target_becomes = "ACTIVE";
    run.retry = Some("1".into());
    let retrying = run.step();
    assert_eq!((&retrying.action, retrying.requeue), (&None, Some(Duration::ZERO)));
    assert_progressing(&retrying.status, Booting);
    assert_condition(&retrying.status, condition_type::FAILED, ConditionStatus::False, "Retrying");
    assert_eq!(retrying.status.recovery.as_ref().map(|r| r.retries), Some(1));
    // The replacement that failed goes first; then one is booted from the kept snapshot.
    assert_eq!(run.step().action, Some(delete_target()));
    assert!(is_boot(&run.step().action.unwrap()));
    let done = run.finish().clone();
    assert_succeeded(&done);
    assert_eq!(done.target.map(|t| t.server_id).as_deref(), Some("tgt-2"));
    assert_eq!(done.recovery, None);
    assert!(run.cloud.snapshot.is_none(), "the snapshot is deleted once the move is verified");
}

#[test]
fn a_retry_that_fails_again_waits_for_another_value() {
    let mut run = failed_boot();
    run.retry = Some("1".into());
    run.step();
    run.until(Failed);
    let recovery = run.status().recovery.clone().unwrap();
    assert_eq!((recovery.retries, recovery.retry_annotation.as_deref()), (1, Some("1")));
    assert_eq!(recovery.failed_target.as_deref(), Some("tgt-2"), "the second replacement failed");
    assert!(!retry_requested(run.status(), Some("1")));
    assert_eq!((run.step().action, run.phase()), (None, Failed));

    run.retry = Some("2".into());
    assert_eq!(run.step().status.phase, Booting);
}

#[test]
fn a_retry_annotation_present_before_the_failure_does_not_retry_it() {
    // E.g. kept in git: only a value given after the failure retries.
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.retry = Some("from-git".into());
    run.until(Failed);
    assert!(!retry_requested(run.status(), Some("from-git")));
    assert_eq!((run.step().action, run.phase()), (None, Failed));
}

#[test]
fn deleting_a_migration_failed_past_no_return_is_held_until_the_loss_is_accepted() {
    let mut run = failed_boot();
    assert!(!releasable(run.status(), false));
    run.deleting = true;
    let held = run.step();
    assert_eq!(held.status.phase, Failed);
    assert_condition(&held.status, condition_type::DELETION_HELD, ConditionStatus::True, "LossNotAccepted");
    assert!(!releasable(&held.status, false));

    run.loss_accepted = true;
    let accepted = run.step();
    assert_condition(&accepted.status, condition_type::DELETION_HELD, ConditionStatus::False, "LossAccepted");
    assert!(releasable(&accepted.status, true));
}

#[test]
fn a_deleted_migration_retried_goes_on_to_the_end_and_is_let_go() {
    let mut run = failed_boot();
    run.deleting = true;
    run.step();
    run.cloud.target_becomes = "ACTIVE";
    run.retry = Some("1".into());
    assert_eq!(run.step().status.phase, Booting);
    let done = run.finish().clone();
    assert_succeeded(&done);
    assert_condition(&done, condition_type::DELETION_HELD, ConditionStatus::False, "Succeeded");
    assert!(releasable(&done, false));
}

#[test]
fn a_failure_while_the_source_exists_needs_no_recovery() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.finish();
    assert_eq!((run.phase(), &run.status().recovery), (Failed, &None));
    assert!(releasable(run.status(), false));
    run.retry = Some("1".into());
    assert_eq!((run.step().action, run.phase()), (None, Failed));
}

#[test]
fn what_remains_names_the_ports_kept_for_the_replacement() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(spec(json!({"addresses": {"preserveFixedIPs": true}})), cloud);
    run.until(Failed);
    let message = failure_message(run.status());
    assert!(message.contains("ports p-1-recreated (with the source's addresses) are kept"), "{message}");
}
