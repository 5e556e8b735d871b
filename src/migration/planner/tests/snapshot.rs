//! Stopping, Snapshotting and DeletingSource: the source goes only with its replacement verified.

use super::*;

#[test]
fn the_source_is_deleted_only_while_its_snapshot_is_seen_active() {
    let unverified_states = [None, Some("saving"), Some("killed"), Some("pending_delete")];
    // The look that finds the snapshot active deletes the source; no other look does.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.before(DeletingSource);
    for unverified in unverified_states {
        let mut look = run.clone();
        look.cloud.snapshot = unverified.map(|s| image(SNAPSHOT_ID, s));
        let waiting = look.decide();
        assert_ne!(waiting.status.phase, DeletingSource, "snapshot {unverified:?}");
        assert_ne!(waiting.action, Some(delete_source()), "snapshot {unverified:?}");
    }
    let deleting = run.decide();
    assert_eq!(deleting.action, Some(delete_source()));
    assert_progressing(&deleting.status, DeletingSource);

    // Resumed in DeletingSource, the source still there: the snapshot is checked again.
    run.crash_entering(DeletingSource);
    for unverified in unverified_states {
        let mut look = run.clone();
        look.cloud.snapshot = unverified.map(|s| image(SNAPSHOT_ID, s));
        let refused = look.decide();
        assert_eq!(refused.action, None, "snapshot {unverified:?}");
        assert_eq!(condition(&refused.status, condition_type::FAILED).reason, "ReplacementNotVerified");
        assert!(
            refused.status.last_error.as_deref().unwrap().starts_with("refusing to delete source server src-1"),
            "{:?}",
            refused.status.last_error
        );
    }
    assert_eq!(run.decide().action, Some(delete_source()));
}

#[test]
fn the_look_that_sees_the_snapshot_active_deletes_the_source_unseen() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.before(DeletingSource);
    // Nova may still show the upload's task: it deletes the server anyway and keeps the
    // active snapshot, so the source needs no look of its own.
    run.cloud.source_mut().task_state = Some("image_uploading".into());
    let mut unseen = run.clone();
    unseen.cloud.source = None;
    for look in [run, unseen] {
        let deleting = look.decide();
        assert_eq!(deleting.action, Some(delete_source()));
        assert_progressing(&deleting.status, DeletingSource);
    }
}

#[test]
fn a_redeploy_deletes_the_source_only_once_the_replacement_is_active() {
    let rebooting = ServerState { task_state: Some("rebooting".into()), ..server_state(TARGET_ID, "ACTIVE") };
    let unverified_states = [None, Some(server_state(TARGET_ID, "BUILD")), Some(rebooting)];
    // The look that verifies the replacement deletes the source; no other look does.
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    run.before(DeletingSource);
    for unverified in unverified_states.clone() {
        let mut look = run.clone();
        look.cloud.target = unverified.clone();
        let unverified_look = look.decide();
        assert_eq!(unverified_look.action, None, "target {unverified:?}");
        assert_ne!(unverified_look.status.phase, DeletingSource, "target {unverified:?}");
    }
    let deleting = run.decide();
    assert_eq!(deleting.action, Some(delete_source()));
    assert_progressing(&deleting.status, DeletingSource);

    // Resumed in DeletingSource, the source still there: the replacement is checked again.
    run.crash_entering(DeletingSource);
    for unverified in unverified_states {
        let mut look = run.clone();
        look.cloud.target = unverified.clone();
        let refused = look.decide();
        assert_eq!(refused.action, None, "target {unverified:?}");
        assert_eq!(condition(&refused.status, condition_type::FAILED).reason, "ReplacementNotVerified");
    }
    assert_eq!(run.decide().action, Some(delete_source()));
}

#[test]
fn a_snapshot_made_before_a_crash_is_adopted_not_made_again() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Snapshotting);
    // A crashed operator asked for it, but never wrote its id: it is found by the UID.
    run.cloud.snapshot = Some(image("img-7", "saving"));

    let adopted = run.step();
    assert_eq!(adopted.action, None);
    assert!(adopted.requeue.is_some_and(|d| d > Duration::ZERO));
    assert_eq!(
        adopted.status.snapshot,
        Some(SnapshotStatus {
            image_id: "img-7".into(),
            status: "saving".into(),
            size_bytes: Some(SNAPSHOT_SIZE),
            protected: false
        })
    );

    run.cloud.snapshot = Some(image("img-7", "active"));
    assert_succeeded(run.finish());
    assert!(!run.actions().contains(&create_snapshot()), "{:?}", run.log);
    assert!(run.actions().contains(&boot("img-7", &[made_port("p-1")])));
    assert!(run.actions().contains(&delete_snapshot("img-7")));
}

#[test]
fn refusing_to_delete_the_source_rolls_back() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(DeletingSource);
    // Someone deleted the snapshot before the resumed operator looked again.
    run.cloud.snapshot = None;

    let refused = run.step();
    assert_eq!(refused.action, None);
    assert_rolling_back(&refused.status, "ReplacementNotVerified");
    assert_failed(run.finish(), "ReplacementNotVerified");
    assert_eq!(run.actions().last(), Some(&start_source()));
}

#[test]
fn an_unverified_snapshot_never_lets_the_source_be_deleted() {
    type Spoil = fn(&mut ImageState);
    let unverified: [(&str, Spoil); 5] = [
        ("holds no data", |i| i.size = Some(0)),
        ("has no checksum", |i| i.checksum = None),
        ("is of server", |i| i.instance_uuid = Some("another-server".into())),
        ("is of server", |i| i.instance_uuid = None),
        ("belongs to project", |i| i.owner = Some("project-2".into())),
    ];
    for (why, spoil) in unverified {
        let mut run = snapshotting_run();
        let mut active = image(SNAPSHOT_ID, "active");
        spoil(&mut active);
        run.cloud.snapshot = Some(active);
        assert_rolling_back(&run.step().status, "SnapshotNotVerified");
        assert!(failure_message(run.status()).contains(why), "{why}: {}", failure_message(run.status()));
        assert_failed(run.finish(), "SnapshotNotVerified");
        assert!(!run.actions().contains(&delete_source()), "{why}: {:?}", run.actions());
        assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"), "{why}");
    }
}

#[test]
fn the_snapshot_is_protected_before_the_source_is_deleted_until_the_replacement_is_verified() {
    let mut run = snapshotting_run();
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    assert_eq!(run.step().action, Some(protect_snapshot(true)));
    let deleting = run.step();
    assert_eq!((deleting.status.phase, deleting.action), (DeletingSource, Some(delete_source())));
    assert!(deleting.status.snapshot.as_ref().is_some_and(|s| s.protected));

    // Someone lifts the protection while the source is still there: it is protected again
    // before the deletion is asked for again.
    let mut source = server_state(SOURCE_ID, "SHUTOFF");
    source.task_state = None;
    run.cloud.source = Some(source);
    run.cloud.snapshot.as_mut().unwrap().protected = false;
    assert_eq!(run.step().action, Some(protect_snapshot(true)));

    run.before(CleaningUp);
    assert!(run.cloud.snapshot.as_ref().is_some_and(|i| i.protected), "protected until verified");
    assert_succeeded(run.finish());
    assert_eq!(run.cloud.snapshot, None);
}

#[test]
fn a_source_id_that_names_another_server_is_never_acted_on() {
    // The status's ID now finds a server of another name (a stale or altered status): it is
    // neither deleted nor given back by a rollback.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(DeletingSource);
    run.cloud.source_mut().name = "payroll-db".into();
    let refused = run.step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "NotAsRecorded");
    assert!(failure_message(&refused.status).contains("source src-1 is named \"payroll-db\""));
    // Nor does one of another project.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Stopping);
    run.cloud.source_mut().project_id = Some("project-2".into());
    assert_eq!(run.step().action, None);
    assert_failed(run.status(), "NotAsRecorded");
}
