//! Recording: what is refused before anything changes, and what is recorded.

use super::*;

#[test]
fn a_new_migration_is_acknowledged_before_openstack_is_asked_and_goes_on_from_there() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let first = acknowledge(&run.input());
    assert_eq!(first.phase, MigrationPhase::Pending);
    assert_eq!(first.observed_generation, Some(1));
    assert_condition(&first, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert_condition(&first, condition_type::READY, ConditionStatus::False, "InProgress");
    assert!(first.steps.is_empty() && first.source.is_none());
    // The migration then goes on as if it had not been acknowledged apart.
    run.status = Some(first);
    assert_succeeded(run.finish());

    // A spec refused by validation is refused in the acknowledgment itself.
    let invalid = Run::new(spec(json!({"server": " web-1"})), web_cloud("ACTIVE"));
    let refused = acknowledge(&invalid.input());
    assert_eq!(refused.phase, Failed);
    assert_condition(&refused, condition_type::ACCEPTED, ConditionStatus::False, "Invalid");
}

#[test]
fn what_the_replacement_is_made_of_is_resolved_once_when_recording() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let recorded = run.step();
    let base = BootBase { flavor_id: FLAVOR_ID.into(), image_id: None, networks: BTreeMap::new() };
    assert_eq!(recorded.status.boot_base, Some(base));

    // Booting uses the recorded base: it no longer needs the target cloud to resolve it.
    run.cloud.boot = Err(Refusal { reason: "FlavorNotFound", message: "gone".into() });
    assert_succeeded(run.finish());
    assert!(run.actions().contains(&boot(SNAPSHOT_ID, &[network("net-1")])));
}

#[test]
fn stopping_is_skipped_when_the_source_is_off_or_must_not_be_stopped() {
    let cases = [
        ("Snapshot of a SHUTOFF source", snapshot_spec(), web_cloud("SHUTOFF")),
        ("Snapshot with stopSource false", spec(json!({"stopSource": false})), web_cloud("ACTIVE")),
        ("Redeploy of a SHUTOFF source", redeploy_spec(), redeploy_cloud("SHUTOFF")),
    ];
    for (case, spec, cloud) in cases {
        let expected_next =
            if spec.options.strategy == crate::api::Strategy::Snapshot { Snapshotting } else { Booting };
        let mut run = Run::new(spec, cloud);

        // The source was just recorded idle: its snapshot (or replacement) is made at once.
        let first = run.step();
        assert_eq!(first.status.phase, expected_next, "{case}");
        assert!(
            matches!(first.action, Some(Action::LockSource { .. } | Action::Boot(_))),
            "{case}: {:?}",
            first.action
        );
        let stopping = step_record(&first.status, Stopping);
        assert_eq!(stopping.result, StepResult::Skipped, "{case}");
        assert_eq!(stopping.finished_at.as_deref(), Some(stopping.started_at.as_str()), "{case}");

        assert_succeeded(run.finish());
        assert!(!run.actions().contains(&stop_source()), "{case}: {:?}", run.log);
    }
}

#[test]
fn a_server_of_another_project_is_migrated_acting_in_its_project() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.acting_project = Some("p-web".into());
    let mut run = Run::new(snapshot_spec(), cloud);
    // Recorded with the project, before the first change: every later change acts in it.
    let first_change = run.entering(Stopping);
    assert_eq!(first_change.status.acting_project_id.as_deref(), Some("p-web"));
    assert!(matches!(first_change.action, Some(Action::StopSource { .. })));
    assert_eq!(run.finish().phase, Succeeded);
    assert_eq!(run.status().acting_project_id.as_deref(), Some("p-web"));
}

#[test]
fn a_refused_server_fails_without_changing_anything() {
    let reason = "VolumesAttached";
    let refusal = "server src-1 has volumes attached (vol-1): osmo does not migrate volumes yet";
    let mut cloud = web_cloud("ACTIVE");
    cloud.recording = Err(Refusal { reason, message: refusal.into() });
    let mut run = Run::new(snapshot_spec(), cloud);

    let refused = run.step();
    assert_eq!((&refused.action, refused.requeue), (&None, None));
    assert_failed(&refused.status, reason);
    assert_eq!(failure_message(&refused.status), format!("{refusal} Nothing was changed."));
    assert_eq!(refused.status.last_error.as_deref(), Some(refusal));
    assert_eq!(refused.status.steps, []);
    assert_eq!(refused.status.source, None);
}

#[test]
fn a_key_pair_the_acting_user_does_not_have_in_the_target_is_refused_before_anything_changes() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_view.key_pair_found = Some(false);
    let mut run = Run::new(snapshot_spec(), cloud);
    let refused = run.step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "KeyPairNotUsable");
    let message = failure_message(&refused.status);
    assert!(message.contains(r#"key pair "deploy""#) && message.contains("cloud old"), "{message}");
    assert!(message.contains("owner") && message.ends_with("Nothing was changed."), "{message}");
    assert_eq!(refused.status.source, None);

    // Not looked up is not found: the boot would not be sure to work.
    let mut unseen = web_cloud("ACTIVE");
    unseen.target_view.key_pair_found = None;
    assert_failed(&Run::new(snapshot_spec(), unseen).step().status, "KeyPairNotUsable");

    // A server without a key pair needs none.
    let mut keyless = web_server("ACTIVE");
    keyless.key_name = None;
    assert_succeeded(Run::new(snapshot_spec(), Cloud::new(keyless)).finish());
}

#[test]
fn a_replacement_flavor_smaller_than_the_snapshot_needs_is_refused_before_anything_changes() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.recording.as_mut().unwrap().flavor_size = Some(FlavorSize { disk_gb: 20, ephemeral_gb: 0, ram_mb: 2048 });
    cloud.target_view = TargetView { flavor_disk_gb: 10, flavor_ram_mb: 4096, ..cloud.target_view };
    let refused = Run::new(snapshot_spec(), cloud.clone()).step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "FlavorTooSmall");
    let message = failure_message(&refused.status);
    assert!(message.contains("10 GiB") && message.contains("at least 20 GiB"), "{message}");

    // Memory below the image's min_ram.
    let mut short_of_memory = cloud.clone();
    short_of_memory.target_view = TargetView {
        flavor_disk_gb: 20,
        flavor_ram_mb: 512,
        image_min_ram_mb: Some(1024),
        ..cloud.target_view.clone()
    };
    assert_failed(&Run::new(snapshot_spec(), short_of_memory).step().status, "FlavorTooSmall");

    // A flavor of disk 0 boots any image; less memory than the source but enough for the image.
    let mut fits = cloud.clone();
    fits.target_view =
        TargetView { flavor_disk_gb: 0, flavor_ram_mb: 1024, image_min_ram_mb: Some(1024), ..cloud.target_view };
    assert_succeeded(Run::new(snapshot_spec(), fits).finish());
}

#[test]
fn an_ephemeral_disk_is_refused_unless_its_loss_is_accepted_and_then_said_in_status() {
    let mut ephemeral = web_server("ACTIVE");
    ephemeral.flavor_size = Some(FlavorSize { disk_gb: 1, ephemeral_gb: 5, ram_mb: 512 });
    let refused = Run::new(snapshot_spec(), Cloud::new(ephemeral.clone())).step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "EphemeralDisk");
    let message = failure_message(&refused.status);
    assert!(message.contains("ephemeral disk of 5 GiB") && message.contains("acceptEphemeralDataLoss"), "{message}");

    let mut accepted = Run::new(spec(json!({"acceptEphemeralDataLoss": true})), Cloud::new(ephemeral.clone()));
    assert_succeeded(accepted.finish());
    let said = accepted.status().accepted_data_loss.as_deref().unwrap_or_default();
    assert!(said.contains("ephemeral disk of 5 GiB"), "{said}");

    // A redeploy keeps no data: nothing to accept.
    let mut redeploy = redeploy_cloud("ACTIVE");
    redeploy.recording = Ok(ephemeral);
    assert_succeeded(Run::new(redeploy_spec(), redeploy).finish());
}

#[test]
fn a_flavor_whose_disks_are_not_shown_is_refused_unless_the_loss_is_accepted() {
    let mut unknown = web_server("ACTIVE");
    unknown.flavor_size = None;
    let refused = Run::new(snapshot_spec(), Cloud::new(unknown.clone())).step();
    assert_failed(&refused.status, "EphemeralDiskUnknown");
    assert!(failure_message(&refused.status).contains("cannot be checked"));
    let mut accepted = Run::new(spec(json!({"acceptEphemeralDataLoss": true})), Cloud::new(unknown));
    assert_succeeded(accepted.finish());
    assert!(accepted.status().accepted_data_loss.as_deref().unwrap_or_default().contains("cannot be checked"));
    // Without an ephemeral disk there is nothing to say.
    let mut plain = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    assert_eq!(plain.finish().accepted_data_loss, None);
}

#[test]
fn deleting_before_anything_changed_fails_with_nothing_to_undo() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.deleting = true;
    let pending = run.step();
    assert_eq!((&pending.action, pending.requeue), (&None, None));
    assert_failed(&pending.status, "Deleted");
    assert_eq!(
        failure_message(&pending.status),
        "The resource was deleted before the migration started; nothing was changed."
    );

    // Recording had begun (the first look found nothing yet) when the deletion came.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.status = Some(InstanceMigrationStatus { phase: Recording, ..Default::default() });
    run.deleting = true;
    let recording = run.step();
    assert_eq!((&recording.action, recording.requeue), (&None, None));
    assert_failed(&recording.status, "Deleted");
    assert_eq!(failure_message(&recording.status), "The resource was deleted before the migration changed anything.");
    assert_eq!(recording.status.source, None);
}

#[test]
fn an_invalid_spec_fails_naming_the_field() {
    let cases = [
        (spec(json!({"target": {}})), "spec.target"),
        (spec(json!({"strategy": "Redeploy"})), "spec.redeploy.image"),
        (spec(json!({"server": " web-1"})), "spec.server"),
    ];
    for (spec, field) in cases {
        let fields: Vec<_> = validate(&spec).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, [field]);

        let mut run = Run::new(spec, web_cloud("ACTIVE"));
        let refused = run.step();
        assert_eq!((&refused.action, refused.requeue), (&None, None), "{field}");
        assert_failed(&refused.status, "Invalid");
        assert_condition(&refused.status, condition_type::ACCEPTED, ConditionStatus::False, "Invalid");
        let message = failure_message(&refused.status);
        assert!(message.starts_with(&format!("{field}: ")), "{message}");
        assert_eq!(refused.status.last_error.as_deref(), Some(message));
        assert_eq!((&refused.status.source, &refused.status.steps), (&None, &vec![]));
    }
}

#[test]
fn a_corrected_spec_starts_afresh() {
    let mut run = Run::new(spec(json!({"target": {}})), web_cloud("ACTIVE"));
    assert_failed(&run.step().status, "Invalid");

    run.spec = snapshot_spec();
    run.generation = 2;
    let fresh = run.step();
    assert_progressing(&fresh.status, Stopping);
    assert_condition(&fresh.status, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert_condition(&fresh.status, condition_type::FAILED, ConditionStatus::False, "Valid");
    assert_eq!(fresh.status.last_error, None);
    assert_eq!(fresh.status.observed_generation, Some(2));
    assert_eq!(steps(&fresh.status), [(Recording, StepResult::Succeeded), (Stopping, StepResult::Running)]);
    assert_succeeded(run.finish());
}
