//! Whole migrations, their pace, their time-outs and their resumption after a crash.

use super::*;

#[test]
fn a_snapshot_migration_walks_every_phase_to_success() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let done = run.finish().clone();

    // Verifying is decided from the look that sees the floating IPs moved.
    assert_eq!(run.phases(), [Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses, CleaningUp, Succeeded]);
    // Each change in the phase that owns it: the snapshot is deleted only after verification.
    assert_eq!(
        run.log,
        [
            (Stopping, stop_source()),
            (Snapshotting, lock_source()),
            (Snapshotting, create_snapshot()),
            (Snapshotting, protect_snapshot(true)),
            (DeletingSource, delete_source()),
            (Booting, create_port("p-1", "net-1", false)),
            (Booting, finish_port("p-1", false)),
            (Booting, boot(SNAPSHOT_ID, &[made_port("p-1")])),
            (MovingAddresses, associate("fip-1", "p-1-made", None)),
            (CleaningUp, protect_snapshot(false)),
            (CleaningUp, delete_snapshot(SNAPSHOT_ID)),
        ]
    );
    assert_succeeded(&done);
    let every_step =
        [Recording, Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses, Verifying, CleaningUp];
    assert_eq!(steps(&done), all_succeeded(&every_step));
    assert!(done.steps.iter().all(|s| s.finished_at.is_some() && s.message.is_none()));
    assert_eq!(done.source.as_deref(), Some(&web_server("ACTIVE")));
    assert_eq!(done.snapshot.as_ref().map(|s| s.status.as_str()), Some("deleted"));
    assert_eq!(
        done.target,
        Some(TargetServerStatus {
            server_id: TARGET_ID.into(),
            status: "ACTIVE".into(),
            host: Some(TARGET_HOST.into()),
            availability_zone: Some("icehouse".into()),
        })
    );
    assert_eq!(done.target_ports, [target_port("p-1", "p-1-made", PortOrigin::Created)]);
    // Down from the stop (t=0s) until the replacement was verified with its address (t=45s; the
    // source's lock, the snapshot's protection and making the port take steps of their own here,
    // more changes of the same reconcile in the controller).
    assert_eq!(done.downtime.as_deref(), Some("45.0s"));
    assert_eq!(done.last_error, None);
    assert_eq!(run.cloud.floating_ips["fip-1"].as_deref(), Some("p-1-made"));
    // Every decision asks to look again, except the last one.
    let (last, before) = run.decisions.split_last().unwrap();
    assert!(before.iter().all(|d| d.requeue.is_some()));
    assert_eq!(last.requeue, None);
}

#[test]
fn while_in_progress_the_conditions_name_the_phase() {
    let target = json!({
        "cloud": {"secretName": "clouds", "cloud": "new"},
        "availabilityZone": "icehouse",
        "host": "icehouse-3",
    });
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_view.services =
        TargetServices::Listed(vec![compute_service("icehouse-3", "icehouse", "enabled", "up")]);
    let mut run = Run::new(spec(json!({"target": target})), cloud);
    run.until(Snapshotting);
    let status = run.status();

    assert_progressing(status, Snapshotting);
    assert_eq!(
        condition(status, condition_type::PROGRESSING).message,
        "Snapshotting the source server and waiting for Glance to call the image active."
    );
    assert_condition(status, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert!(status.conditions.iter().all(|c| c.type_ != condition_type::FAILED), "{:?}", status.conditions);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.target_description.as_deref(), Some("cloud new: icehouse/icehouse-3"));
    assert_eq!(status.source.as_deref(), Some(&web_server("ACTIVE")));
    assert_eq!(
        steps(status),
        [(Recording, StepResult::Succeeded), (Stopping, StepResult::Succeeded), (Snapshotting, StepResult::Running)]
    );
}

#[test]
fn polling_slows_down_as_a_step_drags_on() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot = Some(image(SNAPSHOT_ID, "saving"));
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    let entered = run.now - SECONDS_PER_STEP;

    for (elapsed, interval) in
        [(0, Duration::from_millis(100)), (5, Duration::from_millis(2500)), (1000, Duration::from_secs(10))]
    {
        run.now = entered + elapsed;
        let waiting = run.decide();
        assert_eq!((waiting.status.phase, waiting.action), (Snapshotting, None));
        assert_eq!(waiting.requeue, Some(interval), "after {elapsed}s");
    }
}

#[test]
fn a_step_ends_when_it_was_seen_done_and_the_next_starts_when_decided() {
    // Each look begins a second before the answer comes back and the planner decides.
    let decide_after_a_look = |run: &Run| {
        let mut input = run.input();
        input.seen_at = at(run.now - 1);
        plan(&input, &run.cloud.observed()).status
    };
    let step = |status: &InstanceMigrationStatus, name| status.steps.iter().find(|s| s.name == name).unwrap().clone();
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.now = 10;

    // Recording starts and ends in the decision made from the look that records.
    let recorded = decide_after_a_look(&run);
    assert_eq!(step(&recorded, Recording).finished_at, Some(crate::api::timestamp(at(10))));
    assert_eq!(step(&recorded, Stopping).started_at, crate::api::timestamp(at(10)));

    run.until(Stopping);
    run.cloud.source.as_mut().unwrap().status = "SHUTOFF".into();
    let stopped = decide_after_a_look(&run);
    assert_eq!(step(&stopped, Stopping).finished_at, Some(crate::api::timestamp(at(run.now - 1))));
    assert_eq!(step(&stopped, Snapshotting).started_at, crate::api::timestamp(at(run.now)));
}

#[test]
fn the_first_look_comes_when_the_step_was_done_before() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot = Some(image(SNAPSHOT_ID, "saving"));
    let mut run = Run::new(snapshot_spec(), cloud);
    run.usual_steps.insert(Snapshotting, Duration::from_millis(1500));
    run.until(Snapshotting);
    let entered = run.now - SECONDS_PER_STEP;

    // At the usual time; after it, soon, then less and less often.
    for (elapsed, interval) in [(0, 1500), (1, 500), (2, 250), (5, 1750)] {
        run.now = entered + elapsed;
        assert_eq!(run.decide().requeue, Some(Duration::from_millis(interval)), "after {elapsed}s");
    }
    // A first look that came too early is followed by one an eighth of the usual time later.
    run.usual_steps.insert(Snapshotting, Duration::from_secs(2));
    for (elapsed, interval) in [(0, 2000), (2, 250), (3, 500)] {
        run.now = entered + elapsed;
        assert_eq!(run.decide().requeue, Some(Duration::from_millis(interval)), "after {elapsed}s");
    }
    // A step that took long before is looked at early all the same, then every half of the
    // time since, once when it is usually done, and soon after.
    run.usual_steps.insert(Snapshotting, Duration::from_secs(15));
    for (elapsed, interval) in [(0, 2000), (2, 1000), (10, 5000), (12, 3000), (15, 1875), (19, 2000), (60, 10_000)] {
        run.now = entered + elapsed;
        assert_eq!(run.decide().requeue, Some(Duration::from_millis(interval)), "after {elapsed}s");
    }
    // Just short of the usual time: the look comes an eighth of it later.
    run.usual_steps.insert(Snapshotting, Duration::from_millis(15_020));
    run.now = entered + 15;
    assert_eq!(run.decide().requeue, Some(Duration::from_micros(1_877_500)));
}

#[test]
fn a_create_sent_again_makes_every_later_look_delete_late_twins() {
    // Creates sent once: no twin can come.
    assert!(!Run::new(snapshot_spec(), web_cloud("ACTIVE")).finish().create_repeated);

    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    // The snapshot was decided and written, and the operator died: its create may be in flight.
    assert_eq!(run.entering(Snapshotting).action, Some(lock_source()));
    run.status = Some(run.decide().status);
    run.now += CREATE_FENCE.as_secs() + 1;
    let again = run.step();
    assert_eq!(again.action, Some(create_snapshot()));
    assert!(again.status.create_repeated);

    // The first create lands late, after the second was recorded: the next look deletes it
    // before the phase goes on.
    run.cloud.twins.push(Twin::Image("img-late".into()));
    let twin = run.step();
    assert_eq!(twin.action, Some(Action::DeleteTwin(Twin::Image("img-late".into()))));
    assert_eq!(twin.status.phase, Snapshotting);
    assert_eq!(twin.status.deleted_twins, ["img-late"]);
    assert_eq!(twin.requeue, Some(Duration::ZERO));

    // So is a late replacement, however late (here once the real one runs).
    run.until(MovingAddresses);
    run.cloud.twins.push(Twin::Server("tgt-late".into()));
    assert_eq!(run.step().action, Some(Action::DeleteTwin(Twin::Server("tgt-late".into()))));
    let done = run.finish().clone();
    assert_succeeded(&done);
    assert_eq!(done.deleted_twins, ["img-late", "tgt-late"]);
    assert_eq!(done.target.map(|t| t.server_id).as_deref(), Some(TARGET_ID));
}

#[test]
fn a_step_that_outlasts_its_timeout_fails_with_reason_timeout() {
    struct Case {
        phase: MigrationPhase,
        /// Keeps OpenStack from finishing the step's first change.
        stall: fn(&mut Cloud),
        error: &'static str,
        rolls_back: bool,
    }
    let cases = [
        Case {
            phase: Stopping,
            stall: |c| c.source_mut().task_state = Some("powering-off".into()),
            error: "Stopping took longer than 300s",
            rolls_back: true,
        },
        Case {
            phase: Snapshotting,
            stall: |c| c.snapshot = Some(image(SNAPSHOT_ID, "saving")),
            error: "Snapshotting took longer than 3600s",
            rolls_back: true,
        },
        Case {
            phase: DeletingSource,
            stall: |c| {
                c.source =
                    Some(ServerState { task_state: Some("deleting".into()), ..server_state(SOURCE_ID, "SHUTOFF") })
            },
            error: "DeletingSource took longer than 600s",
            rolls_back: false,
        },
        Case {
            phase: Booting,
            stall: |c| c.target = Some(server_state(TARGET_ID, "BUILD")),
            error: "Booting took longer than 900s",
            rolls_back: false,
        },
        Case {
            phase: MovingAddresses,
            stall: |c| _ = c.floating_ips.insert("fip-1".into(), None),
            error: "MovingAddresses took longer than 300s",
            rolls_back: false,
        },
    ];
    for case in cases {
        let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
        run.entering(case.phase);
        (case.stall)(&mut run.cloud);
        run.now += A_DAY;

        let timed_out = run.step();
        let phase = case.phase;
        assert_eq!(timed_out.action, None, "{phase:?}");
        if case.rolls_back {
            assert_rolling_back(&timed_out.status, "Timeout");
        } else {
            assert_failed(&timed_out.status, "Timeout");
        }
        assert_eq!(timed_out.status.last_error.as_deref(), Some(case.error), "{phase:?}");
        let step = step_record(&timed_out.status, phase);
        assert_eq!((step.result, step.message.as_deref()), (StepResult::Failed, Some(case.error)), "{phase:?}");
    }
}

#[test]
fn a_step_fails_only_strictly_after_its_timeout() {
    let mut run = Run::new(spec(json!({"timeouts": {"stopSeconds": 30}})), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.cloud.source_mut().task_state = Some("powering-off".into());
    let entered = run.now - SECONDS_PER_STEP;

    run.now = entered + 30;
    let waiting = run.decide();
    assert_eq!((waiting.status.phase, waiting.action), (Stopping, None));

    run.now = entered + 31;
    let timed_out = run.decide();
    assert_rolling_back(&timed_out.status, "Timeout");
    assert_eq!(timed_out.status.last_error.as_deref(), Some("Stopping took longer than 30s"));
}

#[test]
fn time_no_operator_watched_fails_no_step() {
    let mut run = Run::new(spec(json!({"timeouts": {"stopSeconds": 30}})), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.cloud.source_mut().task_state = Some("powering-off".into());
    let entered = run.now - SECONDS_PER_STEP;

    // The operator was down for an hour and started again 20 s ago: the step has 10 s left.
    run.now = entered + 3600;
    run.acting_since = run.now - 20;
    assert_eq!(run.decide().status.phase, Stopping);
    run.now += 11;
    assert_rolling_back(&run.decide().status, "Timeout");
}

#[test]
fn a_refused_openstack_change_rolls_back_or_ends_like_any_failure() {
    // Glance refuses the snapshot for good: the source still exists, so it is rolled back.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Snapshotting);
    let refused = fail(&run.input(), "OpenStackError", "Glance answered 413: image too large".into());
    assert_eq!((&refused.action, refused.requeue), (&None, Some(Duration::ZERO)));
    assert_rolling_back(&refused.status, "OpenStackError");
    assert_eq!(failure_message(&refused.status), "Glance answered 413: image too large; rolling back");
    assert_eq!(step_record(&refused.status, Snapshotting).result, StepResult::Failed);

    // Nova refuses the boot for good: the source is gone, so it ends saying what remains.
    run.crash_entering(Booting);
    let refused = fail(&run.input(), "OpenStackError", "Nova answered 400: flavor unusable".into());
    assert_eq!((&refused.action, refused.requeue), (&None, None));
    assert_failed(&refused.status, "OpenStackError");
    assert_past_no_return(
        &refused.status,
        "Nova answered 400: flavor unusable. What remains: source server web-1 (src-1) is deleted; \
         snapshot img-1 is kept; floating IPs 203.0.113.9 stay allocated to the project.",
        Booting,
    );
}

#[test]
fn planning_again_after_a_crash_repeats_the_same_decision() {
    for phase in [Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses, CleaningUp] {
        let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
        run.before(phase);
        assert_replanning_repeats(run);
    }
    let mut run = Run::new(spec(json!({"addresses": {"preserveFixedIPs": true}})), web_cloud("ACTIVE"));
    run.before(Booting);
    assert_replanning_repeats(run);

    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(RollingBack);
    assert_replanning_repeats(run);
}

#[test]
fn an_operation_under_way_is_not_requested_again() {
    for (phase, task_state) in
        [(Stopping, "powering-off"), (Snapshotting, "image_snapshot"), (DeletingSource, "deleting")]
    {
        let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
        run.crash_entering(phase);
        run.cloud.source_mut().task_state = Some(task_state.into());

        let waiting = run.decide();
        assert_eq!((waiting.status.phase, &waiting.action), (phase, &None), "Nova is {task_state}");
        assert!(waiting.requeue.is_some_and(|d| d > Duration::ZERO));
    }
}

#[test]
fn a_phase_outside_the_strategys_order_never_leads_to_success() {
    // A status left in a phase the strategy does not have (written by another strategy).
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    run.until(Booting);
    let mut status = run.status().clone();
    status.phase = CleaningUp;
    status.accepted_spec = None;
    run.status = Some(status);
    let ended = run.finish().clone();
    assert_failed(&ended, "PhaseOutOfOrder");
}

/// The status is written before the action is made; a crash between the two replans from the
/// written status with OpenStack unchanged, and must ask for the same change again. A create
/// is asked for again only once the first request has had time to land: it may have been
/// sent before the crash and still make its snapshot or server.
#[track_caller]
fn assert_replanning_repeats(mut run: Run) {
    let first = run.decide();
    assert!(first.action.is_some(), "{:?} asks for nothing", first.status.phase);
    run.status = Some(first.status.clone());
    if matches!(first.action, Some(Action::CreateSnapshot { .. } | Action::Boot(_))) {
        // Longer than the client waits for an answer: a request given up on may still land.
        run.now += crate::openstack::session::REQUEST_TIMEOUT.as_secs() as i64 + 1;
        assert_eq!(run.decide().action, None, "a create sent after the request timeout may still land");
        run.now += CREATE_FENCE.as_secs();
        assert_eq!(run.decide().action, first.action);
        return;
    }
    assert_eq!(run.decide(), first);
}

#[test]
fn what_every_look_reads_again_waits_for_a_write_worth_making() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Booting);
    let written = run.status.clone().unwrap();
    let mut new = written.clone();
    new.snapshot =
        Some(SnapshotStatus { status: "saving".into(), size_bytes: Some(1), ..written.snapshot.clone().unwrap() });
    new.target = Some(TargetServerStatus {
        server_id: TARGET_ID.into(),
        status: "ACTIVE".into(),
        host: Some("elsewhere".into()),
        availability_zone: Some("elsewhere".into()),
    });
    let mut before = new.clone();
    before.target = Some(TargetServerStatus { status: "BUILD".into(), host: None, ..new.target.clone().unwrap() });
    assert!(!worth_writing(&before, &new), "only what a look shows changed");
    assert!(!worth_writing(&written, &written.clone()));

    // What was made, protection, steps and conditions are written at once.
    let other_target = TargetServerStatus { server_id: "tgt-2".into(), ..new.target.clone().unwrap() };
    let made = InstanceMigrationStatus { target: Some(other_target), ..new.clone() };
    assert!(worth_writing(&before, &made), "another replacement");
    assert!(worth_writing(&written, &new), "the first replacement recorded");
    let mut protected = new.clone();
    protected.snapshot.as_mut().unwrap().protected ^= true;
    assert!(worth_writing(&before, &protected));
    let mut other_image = new.clone();
    other_image.snapshot.as_mut().unwrap().image_id = "img-2".into();
    assert!(worth_writing(&before, &other_image));
    let mut next_phase = new.clone();
    next_phase.phase = MovingAddresses;
    assert!(worth_writing(&before, &next_phase));
}
