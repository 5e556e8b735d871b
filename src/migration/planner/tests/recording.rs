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
    let base = BootBase {
        flavor_id: FLAVOR_ID.into(),
        security_group_ids: vec![SECURITY_GROUP_ID.into()],
        ..Default::default()
    };
    assert_eq!(recorded.status.boot_base.as_deref(), Some(&base));

    // Booting uses the recorded base: it no longer needs the target cloud to resolve it.
    run.cloud.boot = Err(Refusal { reason: "FlavorNotFound", message: "gone".into() });
    assert_succeeded(run.finish());
    assert!(run.actions().contains(&boot(SNAPSHOT_ID, &[made_port("p-1")])));
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
            matches!(first.action, Some(Action::LockSource { .. } | Action::CreatePort { .. })),
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
    cloud.recording.as_mut().unwrap().flavor_size =
        Some(FlavorSize { disk_gb: 20, ephemeral_gb: 0, ram_mb: 2048, ..Default::default() });
    cloud.target_view = TargetView { flavor_disk_gb: 10, flavor_ram_mb: 4096, ..cloud.target_view };
    // Another flavor than the source's is the user's choice.
    let mapped = || spec(json!({"mappings": {"flavors": {"m1.small": "m1.other"}}}));
    let refused = Run::new(mapped(), cloud.clone()).step();
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
    assert_failed(&Run::new(mapped(), short_of_memory).step().status, "FlavorTooSmall");

    // A flavor of disk 0 boots any image; less memory than the source but enough for the image.
    let mut fits = cloud.clone();
    fits.target_view =
        TargetView { flavor_disk_gb: 0, flavor_ram_mb: 1024, image_min_ram_mb: Some(1024), ..cloud.target_view };
    assert_succeeded(Run::new(mapped(), fits.clone()).finish());
    // Unmapped, the target's flavor of the source's flavor's name must be the same flavor.
    let differs = Run::new(snapshot_spec(), fits).step();
    assert_failed(&differs.status, "FlavorDiffers");
    let message = failure_message(&differs.status);
    assert!(message.contains("RAM (MiB) 2048 in the source, 1024 in the target"), "{message}");
}

#[test]
fn an_ephemeral_disk_is_refused_unless_its_loss_is_accepted_and_then_said_in_status() {
    let mut ephemeral = web_server("ACTIVE");
    ephemeral.flavor_size = Some(FlavorSize { disk_gb: 1, ephemeral_gb: 5, ram_mb: 512, ..Default::default() });
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
    redeploy.target_view.flavor_ephemeral_gb = 5;
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

/// Refused at Recording with `reason`, before anything changed; the message it ends with.
fn refused_before_anything_changes(spec: InstanceMigrationSpec, cloud: Cloud, reason: &str) -> String {
    let refused = Run::new(spec, cloud).step();
    assert_eq!((&refused.action, refused.requeue), (&None, None), "{reason}");
    assert_failed(&refused.status, reason);
    assert_eq!((&refused.status.source, &refused.status.steps), (&None, &vec![]), "{reason}");
    let message = failure_message(&refused.status).to_string();
    assert!(message.ends_with("Nothing was changed."), "{message}");
    message
}

#[test]
fn a_target_zone_where_no_compute_service_takes_servers_is_refused_before_anything_changes() {
    let cases = [
        ("disabled", vec![compute_service(TARGET_HOST, "icehouse", "disabled", "up")]),
        ("down", vec![compute_service(TARGET_HOST, "icehouse", "enabled", "down")]),
        ("in another zone", vec![compute_service("havana-1", "havana", "enabled", "up")]),
        ("none at all", vec![]),
    ];
    for (case, services) in cases {
        let mut cloud = web_cloud("ACTIVE");
        cloud.target_view.services = TargetServices::Listed(services);
        let message = refused_before_anything_changes(snapshot_spec(), cloud, "TargetZoneUnavailable");
        assert!(message.starts_with(r#"spec.target.availabilityZone: no nova-compute service of zone "icehouse""#));
        assert!(message.contains("Enable"), "{case}: {message}");
    }
    let mut disabled = web_cloud("ACTIVE");
    disabled.target_view.services =
        TargetServices::Listed(vec![compute_service(TARGET_HOST, "icehouse", "disabled", "up")]);
    let message = refused_before_anything_changes(snapshot_spec(), disabled, "TargetZoneUnavailable");
    assert!(message.contains("icehouse-1 in zone \"icehouse\": disabled, up"), "{message}");

    // One host of the zone that takes servers is enough.
    let mut one_of_two = web_cloud("ACTIVE");
    one_of_two.target_view.services = TargetServices::Listed(vec![
        compute_service("icehouse-2", "icehouse", "disabled", "up"),
        compute_service(TARGET_HOST, "icehouse", "enabled", "up"),
    ]);
    assert_succeeded(Run::new(snapshot_spec(), one_of_two).finish());

    // Credentials that may not list services boot in a zone all the same: not checked, not refused.
    let mut unlisted = web_cloud("ACTIVE");
    unlisted.target_view.services = TargetServices::NotListable;
    unlisted.target_view.roles = BTreeSet::from(["member".into()]);
    assert_succeeded(Run::new(snapshot_spec(), unlisted).finish());
}

#[test]
fn a_target_host_that_takes_no_servers_is_refused_before_anything_changes() {
    let on_host = || spec(json!({"target": {"availabilityZone": "icehouse", "host": TARGET_HOST}}));
    let cases = [
        ("disabled", compute_service(TARGET_HOST, "icehouse", "disabled", "up")),
        ("down", compute_service(TARGET_HOST, "icehouse", "enabled", "down")),
        ("in another zone", compute_service(TARGET_HOST, "havana", "enabled", "up")),
    ];
    for (case, service) in cases {
        let mut cloud = web_cloud("ACTIVE");
        cloud.target_view.services = TargetServices::Listed(vec![service]);
        let message = refused_before_anything_changes(on_host(), cloud, "TargetHostUnavailable");
        assert!(message.starts_with(r#"spec.target.host: no nova-compute service of host "icehouse-1""#), "{case}");
    }
    // Admin credentials that may still not list services (another policy): not checkable, refused.
    let mut unlisted = web_cloud("ACTIVE");
    unlisted.target_view.services = TargetServices::NotListable;
    let message = refused_before_anything_changes(on_host(), unlisted, "NotAllowed");
    assert!(message.contains("may not list the target's compute services"), "{message}");

    assert_succeeded(Run::new(on_host(), web_cloud("ACTIVE")).finish());
}

#[test]
fn a_call_the_acting_role_may_not_make_is_refused_before_anything_changes() {
    let member = || {
        let mut cloud = web_cloud("ACTIVE");
        cloud.target_view.roles = BTreeSet::from(["member".into(), "reader".into()]);
        cloud
    };
    let on_host = spec(json!({"target": {"availabilityZone": "icehouse", "host": TARGET_HOST}}));
    let message = refused_before_anything_changes(on_host, member(), "NotAllowed");
    assert!(message.contains(r#"spec.target.host "icehouse-1""#) && message.contains("[member, reader]"), "{message}");
    assert!(message.contains("checked by role"), "{message}");

    let fixed_ips = spec(json!({"addresses": {"preserveFixedIPs": true}}));
    let message = refused_before_anything_changes(fixed_ips, member(), "NotAllowed");
    assert!(message.contains("MAC address (spec.addresses.preserveFixedIPs"), "{message}");

    // Neither option: the member's role does.
    assert_succeeded(Run::new(snapshot_spec(), member()).finish());
    // A redeploy makes its ports with new addresses (preserveFixedIPs is refused with it).
    let mut redeploy = redeploy_cloud("ACTIVE");
    redeploy.target_view.roles = BTreeSet::from(["member".into()]);
    assert_succeeded(Run::new(redeploy_spec(), redeploy).finish());
}

#[test]
fn a_target_quota_that_cannot_hold_the_replacement_is_refused_before_anything_changes() {
    let full = |quota: Quota, named: &str| {
        let mut cloud = web_cloud("ACTIVE");
        cloud.target_view.flavor_vcpus = 2;
        cloud.target_view.quota = quota;
        let message = refused_before_anything_changes(snapshot_spec(), cloud, "QuotaExceeded");
        assert!(message.contains(named), "{message}");
        message
    };
    let used = |max, used| QuotaUse { max, used };
    let message = full(Quota { instances: used(10, 10), ..Quota::default() }, "instances (maxTotalInstances)");
    assert!(message.contains("is 10 with 10 used") && message.contains("needs 1 more"), "{message}");
    full(Quota { cores: used(20, 19), ..Quota::default() }, "cores (maxTotalCores)");
    let message = full(Quota { ram_mb: used(1024, 1000), ..Quota::default() }, "RAM (maxTotalRAMSize)");
    assert!(message.contains("needs 512 MiB more"), "{message}");

    // Exactly enough, and unlimited (-1) however much is used.
    let mut fits = web_cloud("ACTIVE");
    fits.target_view.flavor_vcpus = 2;
    fits.target_view.quota = Quota { instances: used(10, 9), cores: used(20, 18), ram_mb: used(-1, 1_000_000) };
    assert_succeeded(Run::new(snapshot_spec(), fits).finish());
}

#[test]
fn security_groups_are_resolved_to_one_id_each_before_anything_changes_and_booted_by_id() {
    let mut ambiguous = web_cloud("ACTIVE");
    ambiguous.target_view.security_groups =
        Some(BTreeMap::from([("default".into(), vec!["sg-a".into(), "sg-b".into()])]));
    let message = refused_before_anything_changes(snapshot_spec(), ambiguous, "SecurityGroupAmbiguous");
    assert!(message.contains(r#"2 security groups of the target project are named "default" (sg-a, sg-b)"#));

    let mut missing = web_cloud("ACTIVE");
    missing.target_view.security_groups = Some(BTreeMap::new());
    let message = refused_before_anything_changes(snapshot_spec(), missing, "SecurityGroupNotFound");
    assert!(message.contains(r#"security group "default""#), "{message}");

    // Resolved and recorded; the boot names none, since its port carries the source port's.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    assert_eq!(run.step().status.boot_base.unwrap().security_group_ids, [SECURITY_GROUP_ID]);
    assert_succeeded(run.finish());
    let booted = run.actions().into_iter().find(is_boot);
    assert!(matches!(&booted, Some(Action::Boot(r)) if r.security_groups.is_empty()), "{booted:?}");

    // nova-network (no ports): Nova resolves the names, unique in a project.
    let mut nova_network = Cloud::new(server("ACTIVE", Vec::new()));
    nova_network.target_view.security_groups = None;
    let mut run = Run::new(snapshot_spec(), nova_network);
    assert_succeeded(run.finish());
    let booted = run.actions().into_iter().find(is_boot);
    assert!(matches!(&booted, Some(Action::Boot(r)) if r.security_groups == ["default"]), "{booted:?}");
}

#[test]
fn a_snapshot_the_target_cannot_read_is_refused_before_anything_changes() {
    let reach = |target_endpoint: &str, seen_from_target| ImageReach {
        source_endpoint: "http://glance-old:9292".into(),
        target_endpoint: target_endpoint.into(),
        image_id: "cirros-0.3".into(),
        seen_from_source: true,
        seen_from_target,
    };
    let with = |reach| {
        let mut cloud = web_cloud("ACTIVE");
        cloud.target_view.image_reach = Some(reach);
        cloud
    };
    let another_glance = with(reach("http://glance-new:9292", true));
    let message = refused_before_anything_changes(snapshot_spec(), another_glance, "ImageNotReachable");
    assert!(message.contains("http://glance-new:9292") && message.contains("http://glance-old:9292"), "{message}");
    let hidden = with(reach("http://glance-old:9292", false));
    let message = refused_before_anything_changes(snapshot_spec(), hidden, "ImageNotReachable");
    assert!(message.contains("image cirros-0.3 is not visible through the target's credentials"), "{message}");

    // One Glance that shows the image to both.
    assert_succeeded(Run::new(snapshot_spec(), with(reach("http://glance-old:9292", true))).finish());
    // A redeploy boots an image resolved in the target: the source's Glance does not matter.
    let mut redeploy = redeploy_cloud("ACTIVE");
    redeploy.target_view.image_reach = Some(reach("http://glance-new:9292", false));
    assert_succeeded(Run::new(redeploy_spec(), redeploy).finish());
}

#[test]
fn floating_ips_of_another_neutron_are_refused_before_anything_changes() {
    let with = |target: &str| {
        let mut cloud = web_cloud("ACTIVE");
        cloud.target_view.network_endpoints = Some(("http://neutron-old:9696".into(), target.into()));
        cloud
    };
    let message =
        refused_before_anything_changes(snapshot_spec(), with("http://neutron-new:9696"), "FloatingIpNotReachable");
    assert!(message.contains("203.0.113.9") && message.contains("http://neutron-new:9696"), "{message}");
    // One Neutron, reached from both clouds.
    assert_succeeded(Run::new(snapshot_spec(), with("http://neutron-old:9696")).finish());
}

#[test]
fn a_port_the_target_cannot_make_like_the_sources_is_refused_before_anything_changes() {
    // Another cloud's Neutron, which shows the port's security group but lacks an extension.
    let vrrp = |cloud: &mut Cloud| {
        let Ok(record) = cloud.recording.as_mut() else { unreachable!() };
        record.ports[0].allowed_address_pairs =
            vec![crate::api::RecordedAddressPair { ip_address: "10.0.0.100".into(), mac_address: None }];
        cloud.target_view.port_support =
            Some(PortSupport { security_groups: BTreeSet::from(["sg-1".into()]), ..Default::default() });
    };
    let mut lacking = web_cloud("ACTIVE");
    vrrp(&mut lacking);
    let message = refused_before_anything_changes(snapshot_spec(), lacking, "PortAttributeUnsupported");
    assert!(message.contains("source port p-1 needs the Neutron extensions allowed-address-pairs"), "{message}");

    let mut supported = web_cloud("ACTIVE");
    vrrp(&mut supported);
    supported.target_view.port_support.as_mut().unwrap().extensions = BTreeSet::from(["allowed-address-pairs".into()]);
    assert_succeeded(Run::new(snapshot_spec(), supported.clone()).finish());

    let mut hidden_group = supported;
    hidden_group.target_view.port_support.as_mut().unwrap().security_groups.clear();
    refused_before_anything_changes(snapshot_spec(), hidden_group, "SecurityGroupNotFound");

    // A preserved fixed IP needs its subnet on the network the port moves to.
    let mut mapped = web_cloud("ACTIVE");
    mapped.target_view.network_subnets = BTreeMap::from([("net-1".into(), vec!["other-subnet".into()])]);
    let fixed_ips = spec(json!({"addresses": {"preserveFixedIPs": true}}));
    let message = refused_before_anything_changes(fixed_ips, mapped, "SubnetNotFound");
    assert!(message.contains("fixed IP 10.0.0.5 on subnet net-1-subnet"), "{message}");
}
