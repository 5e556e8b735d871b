//! Servers with volumes: the volumes move to the replacement (never copied, never deleted),
//! a volume root disk is booted from again, and whatever would keep a volume from moving is
//! refused or rolled back while the source exists.

use super::*;
use crate::api::RecordedVolume;
use crate::openstack::session::Microversion;

fn volume(id: &str, device: &str, delete_on_termination: bool) -> RecordedVolume {
    RecordedVolume {
        id: id.into(),
        device: Some(device.into()),
        delete_on_termination,
        availability_zone: Some("nova".into()),
        size_gb: Some(1),
        ..Default::default()
    }
}

/// `web-1` with two data volumes: `data-1` (kept when the server is deleted) and `data-2`
/// (deleted with it, as Nova does for a volume made at boot).
fn with_data_volumes() -> Cloud {
    let mut record = web_server("ACTIVE");
    record.volumes = vec![volume("data-1", "/dev/vdb", false), volume("data-2", "/dev/vdc", true)];
    volume_cloud(record)
}

/// `web-1` booted from volume `root-1` (deleted with the server), with data volume `data-1`.
fn volume_backed() -> Cloud {
    let mut record = web_server("ACTIVE");
    record.image_id = None;
    record.volumes =
        vec![RecordedVolume { root: true, ..volume("root-1", "/dev/vda", true) }, volume("data-1", "/dev/vdb", false)];
    volume_cloud(record)
}

/// Both Novas speak a microversion that shows and changes `delete_on_termination`.
fn volume_cloud(record: RecordedServer) -> Cloud {
    let mut cloud = Cloud::new(record);
    cloud.target_view.microversion = Some(Microversion(2, 95));
    cloud.target_view.source_microversion = Some(Microversion(2, 95));
    cloud
}

fn keep(volume_id: &str, on: &str, delete: bool) -> Action {
    Action::SetDeleteOnTermination { server_id: on.into(), volume_id: volume_id.into(), delete }
}

fn booted(run: &Run) -> Replacement {
    run.actions()
        .into_iter()
        .find_map(|a| match a {
            Action::Boot(r) => Some(*r),
            _ => None,
        })
        .expect("a boot")
}

/// The volumes on the replacement, as (id, device, delete_on_termination).
fn on_target(run: &Run) -> Vec<(String, Option<String>, Option<bool>)> {
    let attachments = run.cloud.target_attachments.iter();
    attachments.map(|a| (a.volume_id.clone(), a.device.clone(), a.delete_on_termination)).collect()
}

#[test]
fn data_volumes_move_to_the_replacement_on_their_devices_and_none_is_deleted() {
    let mut run = Run::new(snapshot_spec(), with_data_volumes());
    let status = run.finish().clone();
    assert_succeeded(&status);
    // Nova is made to keep data-2 before the source goes, from a look that shows it.
    let actions = run.actions();
    let kept = actions.iter().position(|a| *a == keep("data-2", SOURCE_ID, false)).expect("data-2 kept");
    let deleted = actions.iter().position(|a| *a == delete_source()).expect("the source deleted");
    assert!(kept < deleted, "{actions:?}");
    assert!(!actions.contains(&keep("data-1", SOURCE_ID, false)), "data-1 was kept already");
    // Booted from the snapshot, with both volumes, in order, never deleted with a failed boot.
    let replacement = booted(&run);
    assert_eq!(replacement.image_id.as_deref(), Some(SNAPSHOT_ID));
    let volumes: Vec<_> =
        replacement.volumes.iter().map(|v| (v.volume_id.as_str(), v.root, v.device.as_deref())).collect();
    assert_eq!(volumes, [("data-1", false, Some("/dev/vdb")), ("data-2", false, Some("/dev/vdc"))]);
    assert!(replacement.volumes.iter().all(|v| !v.delete_on_termination));
    // Verified, then data-2's setting given back on the replacement.
    assert!(actions.contains(&keep("data-2", TARGET_ID, true)));
    assert_eq!(
        on_target(&run),
        [
            ("data-1".into(), Some("/dev/vdb".into()), Some(false)),
            ("data-2".into(), Some("/dev/vdc".into()), Some(true))
        ]
    );
    assert_eq!(run.cloud.volumes.keys().collect::<Vec<_>>(), ["data-1", "data-2"]);
    assert!(run.cloud.volumes.values().all(|v| v.attached_to == [TARGET_ID]));
    assert!(status.not_kept.is_empty(), "{:?}", status.not_kept);
}

#[test]
fn a_volume_backed_server_boots_from_its_root_volume_without_a_snapshot() {
    let mut run = Run::new(snapshot_spec(), volume_backed());
    let status = run.finish().clone();
    assert_succeeded(&status);
    let actions = run.actions();
    assert!(!actions.iter().any(|a| matches!(a, Action::CreateSnapshot { .. })), "{actions:?}");
    assert_eq!(step_record(&status, Snapshotting).result, StepResult::Skipped);
    assert!(status.snapshot.is_none());
    let replacement = booted(&run);
    assert_eq!(replacement.image_id, None);
    let volumes: Vec<_> = replacement.volumes.iter().map(|v| (v.volume_id.as_str(), v.root)).collect();
    assert_eq!(volumes, [("root-1", true), ("data-1", false)]);
    // The root volume was made to outlive the source, and is deleted with the replacement again.
    assert!(actions.contains(&keep("root-1", SOURCE_ID, false)));
    assert!(actions.contains(&keep("root-1", TARGET_ID, true)));
    assert_eq!(run.cloud.volumes.len(), 2, "no volume deleted");
    assert!(status.downtime.is_some());
}

#[test]
fn the_source_is_deleted_only_from_a_look_that_shows_nova_keeping_every_volume() {
    let mut run = Run::new(snapshot_spec(), with_data_volumes());
    run.until(DeletingSource);
    // Nova has not answered yet: the look before the deletion still shows data-2 deleted with it.
    for _ in 0..3 {
        let decision = run.decide();
        assert_eq!(decision.action, Some(keep("data-2", SOURCE_ID, false)));
        run.status = Some(decision.status);
        run.now += SECONDS_PER_STEP;
    }
    run.cloud.source_attachments[1].delete_on_termination = Some(false);
    assert_eq!(run.decide().action, Some(delete_source()));
}

#[test]
fn a_volume_attached_after_recording_or_elsewhere_stops_the_deletion_and_is_given_back() {
    for change in ["attached since", "attached elsewhere", "detached"] {
        let mut run = Run::new(snapshot_spec(), with_data_volumes());
        run.before(DeletingSource);
        match change {
            "attached since" => run.cloud.source_attachments.push(AttachmentState {
                volume_id: "data-9".into(),
                device: Some("/dev/vdd".into()),
                delete_on_termination: Some(false),
            }),
            "attached elsewhere" => run.cloud.volumes.get_mut("data-1").unwrap().attached_to.push("other".into()),
            _ => {
                // Detached by someone else: Cinder shows it free.
                run.cloud.source_attachments.remove(0);
                let v = run.cloud.volumes.get_mut("data-1").unwrap();
                v.status = "available".into();
                v.attached_to.clear();
            }
        }
        let ended = run.finish().clone();
        assert_failed(&ended, "VolumesChanged");
        assert!(!run.actions().contains(&delete_source()), "{change}");
        // The source is given back as it was: data-2 is deleted with it again.
        assert!(run.cloud.source.is_some());
        assert_eq!(
            run.cloud.source_attachments.iter().find(|a| a.volume_id == "data-2").unwrap().delete_on_termination,
            Some(true),
            "{change}"
        );
        assert_eq!(run.cloud.volumes.len(), 2);
        if change == "detached" {
            // Put back on the source, as it was.
            assert!(
                run.actions()
                    .iter()
                    .any(|a| matches!(a, Action::AttachVolume { volume, .. } if volume.volume_id == "data-1"))
            );
            assert!(run.cloud.source_attachments.iter().any(|a| a.volume_id == "data-1"));
        }
    }
}

#[test]
fn a_rollback_gives_each_volume_its_delete_on_termination_back() {
    let mut cloud = with_data_volumes();
    // The snapshot fails after Nova was made to keep data-2: possible only with a failure
    // between the two (here, the resource deleted right before the deletion).
    cloud.snapshot_becomes = "active";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(DeletingSource);
    run.step();
    assert_eq!(run.log.last().map(|(_, a)| a.clone()), Some(keep("data-2", SOURCE_ID, false)));
    // A refused deletion (Nova's 409) fails the step; the source exists and is given back.
    let refused = fail(&run.input(), "OpenStackError", "Nova answered 409".into());
    run.status = Some(refused.status);
    let ended = run.finish().clone();
    assert_failed(&ended, "OpenStackError");
    assert!(run.actions().contains(&keep("data-2", SOURCE_ID, true)));
    assert_eq!(run.cloud.source_attachments[1].delete_on_termination, Some(true));
}

#[test]
fn the_boot_waits_for_the_volumes_to_leave_the_deleted_source() {
    let mut cloud = volume_backed();
    cloud.detach_looks = 3;
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Booting);
    let mut waited = 0;
    while !run.actions().iter().any(is_boot) {
        let decision = run.step();
        if !decision.action.as_ref().is_some_and(is_boot) && decision.action.is_none() {
            waited += 1;
        }
        assert!(waited < MAX_STEPS, "never booted");
    }
    assert!(waited >= 2, "booted while a volume was still detaching: {:?}", run.log);
    assert_succeeded(run.finish());
}

#[test]
fn a_volume_lost_or_taken_after_the_deletion_fails_saying_where_the_volumes_are() {
    for (what, reason) in [("lost", "VolumeLost"), ("taken", "VolumeTaken"), ("error", "VolumeFailed")] {
        let mut cloud = with_data_volumes();
        cloud.detach_looks = 2;
        let mut run = Run::new(snapshot_spec(), cloud);
        run.until(Booting);
        match what {
            "lost" => {
                run.cloud.volumes.remove("data-1");
            }
            "taken" => {
                let v = run.cloud.volumes.get_mut("data-1").unwrap();
                v.status = "in-use".into();
                v.attached_to = vec!["intruder".into()];
            }
            _ => run.cloud.volumes.get_mut("data-1").unwrap().status = "error".into(),
        }
        let ended = run.finish().clone();
        assert_failed(&ended, reason);
        assert!(!run.actions().iter().any(is_boot), "{what}");
        assert!(
            failure_message(&ended).contains("the source's volumes data-1, data-2 are kept in Cinder"),
            "{}",
            failure_message(&ended)
        );
    }
}

#[test]
fn a_failed_replacement_is_deleted_without_its_volumes_and_the_retry_boots_with_them() {
    let mut cloud = volume_backed();
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    let failed = run.finish().clone();
    assert_failed(&failed, "BootFailed");
    assert!(failure_message(&failed).contains("root-1 (its root disk)"), "{}", failure_message(&failed));
    run.cloud.target_becomes = "ACTIVE";
    run.retry = Some("1".into());
    run.step();
    assert_succeeded(run.finish());
    assert!(run.actions().contains(&delete_target()));
    assert_eq!(run.cloud.volumes.len(), 2, "the failed replacement took no volume with it");
    assert!(run.cloud.volumes.values().all(|v| v.attached_to == ["tgt-2"]));
}

#[test]
fn a_crash_at_any_step_of_a_volume_move_replans_the_same_change() {
    for (cloud, spec) in [(volume_backed(), snapshot_spec()), (redeploy_volume_backed(), redeploy_spec())] {
        let strategy = spec.options.strategy;
        for phase in [DeletingSource, Booting, Verifying] {
            let mut run = Run::new(spec.clone(), cloud.clone());
            run.until(phase);
            // The first change the phase makes: its status is written, then the operator dies.
            let first = loop {
                let decision = run.decide();
                if decision.action.is_some() || decision.status.phase != phase {
                    break decision;
                }
                run.step();
            };
            // A create is asked for again only once it can no longer land (see flow.rs).
            if first.action.is_none() || matches!(first.action, Some(Action::Boot(_))) {
                continue;
            }
            run.status = Some(first.status.clone());
            assert_eq!(run.decide(), first, "{strategy:?}, {phase:?}");
        }
    }
}

#[test]
fn what_would_keep_a_volume_from_moving_is_refused_before_anything_changes() {
    let refused = |spec: InstanceMigrationSpec, cloud: Cloud| {
        let mut run = Run::new(spec, cloud);
        let status = run.finish().clone();
        assert!(run.actions().is_empty(), "{:?}", run.actions());
        conditions::get(&status.conditions, condition_type::FAILED).map(|c| c.reason.clone()).unwrap_or_default()
    };
    let mut other_cinder = volume_backed();
    other_cinder.target_view.volume_endpoints = Some(("http://cinder-a/v3".into(), Some("http://cinder-b/v3".into())));
    assert_eq!(refused(snapshot_spec(), other_cinder), "VolumeServiceDiffers");
    let mut no_cinder = volume_backed();
    no_cinder.target_view.volume_endpoints = Some(("http://cinder-a/v3".into(), None));
    assert_eq!(refused(snapshot_spec(), no_cinder), "VolumeServiceDiffers");

    let mut old_nova = with_data_volumes();
    old_nova.target_view.source_microversion = Some(Microversion(2, 79));
    assert_eq!(refused(snapshot_spec(), old_nova), "VolumeWouldBeDeleted");

    let same_zone_only = spec(json!({"target": {"availabilityZone": "icehouse", "crossAZAttach": false}}));
    assert_eq!(refused(same_zone_only, with_data_volumes()), "VolumeZoneMismatch");
    let mut in_zone = with_data_volumes();
    if let Ok(record) = in_zone.recording.as_mut() {
        record.volumes.iter_mut().for_each(|v| v.availability_zone = Some("icehouse".into()));
    }
    let same_zone_only = spec(json!({"target": {"availabilityZone": "icehouse", "crossAZAttach": false}}));
    assert_succeeded(Run::new(same_zone_only, in_zone).finish());
}

#[test]
fn a_target_nova_that_cannot_change_delete_on_termination_keeps_the_volume_and_says_so() {
    let mut cloud = with_data_volumes();
    cloud.target_view.microversion = Some(Microversion(2, 60));
    let mut run = Run::new(snapshot_spec(), cloud);
    let status = run.finish().clone();
    assert_succeeded(&status);
    assert!(!run.actions().contains(&keep("data-2", TARGET_ID, true)));
    let not_kept: Vec<_> = status.not_kept.iter().map(|n| n.attribute.as_str()).collect();
    assert_eq!(not_kept, ["volumes[data-2].deleteOnTermination"]);
}

/// [`volume_backed`], where `redeploy.image` resolves to [`REDEPLOY_IMAGE_ID`].
fn redeploy_volume_backed() -> Cloud {
    let mut cloud = volume_backed();
    cloud.boot = Ok(BootBase { image_id: Some(REDEPLOY_IMAGE_ID.into()), ..cloud.boot.unwrap() });
    cloud
}

#[test]
fn a_redeploy_moves_the_data_volumes_and_boots_a_root_disk_of_its_own() {
    let mut run = Run::new(redeploy_spec(), redeploy_volume_backed());
    assert_succeeded(run.finish());
    let actions = run.actions();
    let detached = actions
        .iter()
        .position(|a| *a == Action::DetachVolume { server_id: SOURCE_ID.into(), volume_id: "data-1".into() });
    let boot = actions.iter().position(is_boot);
    assert!(detached.is_some() && detached < boot, "{actions:?}");
    let replacement = booted(&run);
    assert_eq!(replacement.image_id.as_deref(), Some(REDEPLOY_IMAGE_ID));
    assert_eq!(replacement.volumes.iter().map(|v| v.volume_id.as_str()).collect::<Vec<_>>(), ["data-1"]);
    assert_eq!(on_target(&run), [("data-1".into(), Some("/dev/vdb".into()), Some(false))]);
    // The source's root volume went with it, as Nova was told (a redeploy keeps no root disk).
    assert_eq!(run.cloud.volumes.keys().collect::<Vec<_>>(), ["data-1"]);
}

#[test]
fn a_failed_redeploy_puts_the_data_volumes_back_on_the_source_as_they_were() {
    let mut cloud = redeploy_volume_backed();
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(redeploy_spec(), cloud);
    let ended = run.finish().clone();
    assert_failed(&ended, "BootFailed");
    assert!(run.actions().contains(&delete_target()));
    let on_source: Vec<_> =
        run.cloud.source_attachments.iter().map(|a| (a.volume_id.as_str(), a.delete_on_termination)).collect();
    assert_eq!(on_source, [("root-1", Some(true)), ("data-1", Some(false))]);
    assert_eq!(run.cloud.volumes.len(), 2);
    assert!(run.cloud.volumes.values().all(|v| v.attached_to == [SOURCE_ID]));
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"));
}
