//! Booting: what the replacement is made of, and its ports.

use super::*;

#[test]
fn the_replacement_boots_with_the_record_the_target_and_the_uid() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.boot = Ok(BootBase {
        flavor_id: FLAVOR_ID.into(),
        image_id: None,
        networks: BTreeMap::from([("net-1".into(), "net-9".into())]),
        ..Default::default()
    });
    cloud.target_view.services =
        TargetServices::Listed(vec![compute_service("icehouse-3", "icehouse", "enabled", "up")]);
    let target = json!({"availabilityZone": "icehouse", "host": "icehouse-3"});
    let mut run = Run::new(spec(json!({"target": target, "mappings": {"networks": {"net-1": "net-9"}}})), cloud);

    let booting = run.entering(Booting);
    assert_eq!(
        booting.action,
        Some(Action::Boot(Replacement {
            name: "web-1".into(),
            image_id: SNAPSHOT_ID.into(),
            flavor_id: FLAVOR_ID.into(),
            key_name: Some("deploy".into()),
            security_groups: vec![SECURITY_GROUP_ID.into()],
            availability_zone: Some("icehouse".into()),
            host: Some("icehouse-3".into()),
            nics: vec![network("net-9")],
        }))
    );
    assert_progressing(&booting.status, Booting);
}

#[test]
fn a_status_without_a_boot_base_resolves_it_when_booting() {
    // Written by an osmo that did not record the base: it is resolved before the boot.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Booting);
    run.status.as_mut().unwrap().boot_base = None;
    // The boot decided before the crash may have been sent: none goes before it could land.
    run.now += CREATE_FENCE.as_secs() + 1;
    let mut unresolved = run.clone();
    unresolved.cloud.boot = Err(Refusal { reason: "FlavorNotFound", message: "flavor gone".into() });
    assert_failed(&unresolved.step().status, "FlavorNotFound");

    let booting = run.step();
    // Without security groups resolved at Recording, Nova resolves the recorded names.
    let Action::Boot(by_names) = boot(SNAPSHOT_ID, &[network("net-1")]) else { unreachable!() };
    let by_names = Replacement { security_groups: vec!["default".into()], ..by_names };
    assert_eq!(booting.action, Some(Action::Boot(by_names)));
    assert_eq!(booting.status.boot_base.map(|b| b.flavor_id), Some(FLAVOR_ID.to_string()));
}

#[test]
fn a_redeploy_boots_from_the_given_image_and_deletes_the_source_last() {
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    let done = run.finish().clone();

    assert_eq!(run.phases(), [Stopping, Booting, MovingAddresses, DeletingSource, Succeeded]);
    assert_eq!(
        run.log,
        [
            (Stopping, stop_source()),
            (Booting, boot(REDEPLOY_IMAGE_ID, &[network("net-1")])),
            // Straight from the stopped source's port to the replacement's.
            (MovingAddresses, associate("fip-1", "tgt-port-0", None)),
            (DeletingSource, delete_source()),
        ]
    );
    assert_succeeded(&done);
    assert_eq!(
        steps(&done),
        all_succeeded(&[Recording, Stopping, Booting, MovingAddresses, Verifying, DeletingSource])
    );
    assert_eq!(done.snapshot, None);
    assert_eq!(done.target_ports, [target_port("p-1", "tgt-port-0", PortOrigin::New)]);
    // Stopped at t=0s, verified at t=15s; deleting the stopped source afterwards is no downtime.
    assert_eq!(done.downtime.as_deref(), Some("15.0s"));
    assert!(run.cloud.source.is_none());
}

#[test]
fn preserved_fixed_ips_recreate_the_port_and_boot_on_it() {
    let mut run = Run::new(spec(json!({"addresses": {"preserveFixedIPs": true}})), web_cloud("ACTIVE"));

    let recreating = run.entering(Booting);
    assert_eq!(
        recreating.action,
        Some(Action::RecreatePort { source_port_id: "p-1".into(), network_id: "net-1".into() })
    );
    assert_eq!(recreating.status.phase, Booting);
    assert_eq!(recreating.requeue, Some(Duration::ZERO));

    let booting = run.step();
    assert_eq!(booting.action, Some(boot(SNAPSHOT_ID, &[on_port("p-1-recreated")])));
    assert_eq!(booting.status.target_ports, [target_port("p-1", "p-1-recreated", PortOrigin::Recreated)]);

    assert_succeeded(run.finish());
    // The floating IP keeps its fixed IP, which the recreated port carries.
    assert!(run.actions().contains(&associate("fip-1", "p-1-recreated", Some("10.0.0.5"))), "{:?}", run.log);
    assert_eq!(run.actions().iter().filter(|a| matches!(a, Action::RecreatePort { .. })).count(), 1);
}

#[test]
fn a_premade_port_that_survives_the_source_is_reused() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.premade_ports.insert("p-1".into());
    let mut run = Run::new(snapshot_spec(), cloud);
    let done = run.finish().clone();

    assert_succeeded(&done);
    // The floating IP stays on the surviving port: there is nothing to move.
    assert_eq!(
        run.log,
        [
            (Stopping, stop_source()),
            (Snapshotting, lock_source()),
            (Snapshotting, create_snapshot()),
            (Snapshotting, protect_snapshot(true)),
            (DeletingSource, delete_source()),
            (Booting, boot(SNAPSHOT_ID, &[on_port("p-1")])),
            (CleaningUp, protect_snapshot(false)),
            (CleaningUp, delete_snapshot(SNAPSHOT_ID)),
        ]
    );
    assert_eq!(done.target_ports, [target_port("p-1", "p-1", PortOrigin::Reused)]);
}

#[test]
fn new_ports_are_matched_to_the_source_ports_by_network() {
    let mut run = Run::new(snapshot_spec(), Cloud::new(two_port_server()));
    assert_eq!(run.entering(Booting).action, Some(boot(SNAPSHOT_ID, &[network("net-1"), network("net-2")])));
    // Neutron lists the replacement's ports in an order of its own.
    run.cloud.target_ports = vec![("tp-b".into(), "net-2".into()), ("tp-a".into(), "net-1".into())];

    let booted = run.step();
    assert_progressing(&booted.status, MovingAddresses);
    assert_eq!(
        booted.status.target_ports,
        [target_port("p-1", "tp-a", PortOrigin::New), target_port("p-2", "tp-b", PortOrigin::New)]
    );
    // One floating IP per step, each to the port on its network, with no fixed IP forced.
    assert_eq!(booted.action, Some(associate("fip-1", "tp-a", None)));
    assert_eq!(run.step().action, Some(associate("fip-2", "tp-b", None)));
    assert_succeeded(run.finish());
}

#[test]
fn a_boot_error_after_the_source_is_deleted_fails_saying_what_remains() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    assert!(is_boot(&run.entering(Booting).action.unwrap()));

    let failed = run.step();
    assert_eq!((&failed.action, failed.requeue), (&None, None));
    // No RollingBack: there is no source to go back to.
    assert_failed(&failed.status, "BootFailed");
    let error = format!("replacement tgt-1 went to ERROR: {NO_VALID_HOST}");
    assert_eq!(failed.status.last_error.as_deref(), Some(error.as_str()));
    assert_past_no_return(
        &failed.status,
        &format!(
            "{error}. What remains: source server web-1 (src-1) is deleted; snapshot img-1 is kept; \
             replacement tgt-1 is ERROR; floating IPs 203.0.113.9 stay allocated to the project."
        ),
        Booting,
    );
    assert_eq!(step_record(&failed.status, Booting).result, StepResult::Failed);
    assert!(run.cloud.snapshot.is_some(), "the snapshot is kept to boot from again");
}

#[test]
fn a_replacement_made_before_a_crash_is_adopted_not_booted_again() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Booting);
    // Booted by a crashed operator, found by name and UID.
    run.cloud.target = Some(server_state("tgt-7", "BUILD"));
    run.cloud.target_ports = vec![("tp-7".into(), "net-1".into())];

    let adopted = run.step();
    assert_eq!(adopted.action, None);
    assert_eq!(adopted.status.phase, Booting);
    assert_eq!(
        adopted.status.target.as_ref().map(|t| (t.server_id.as_str(), t.status.as_str())),
        Some(("tgt-7", "BUILD"))
    );

    run.cloud.target.as_mut().unwrap().status = "ACTIVE".into();
    let booted = run.step();
    assert_eq!(booted.status.phase, MovingAddresses);
    assert_eq!(booted.status.target_ports, [target_port("p-1", "tp-7", PortOrigin::New)]);
    run.finish();
    assert!(!run.actions().iter().any(is_boot), "{:?}", run.log);
    assert!(run.actions().contains(&associate("fip-1", "tp-7", None)));
}

#[test]
fn new_ports_on_a_mapped_network_do_not_take_another_networks_port() {
    let mut cloud = Cloud::new(two_port_server());
    cloud.boot = Ok(BootBase {
        flavor_id: FLAVOR_ID.into(),
        image_id: None,
        networks: BTreeMap::from([("net-1".into(), "net-x".into())]),
        ..Default::default()
    });
    let mut run = Run::new(spec(json!({"mappings": {"networks": {"net-1": "net-x"}}})), cloud);
    assert_eq!(run.entering(Booting).action, Some(boot(SNAPSHOT_ID, &[network("net-x"), network("net-2")])));
    run.cloud.target_ports = vec![("tp-b".into(), "net-2".into()), ("tp-a".into(), "net-x".into())];

    let booted = run.step();
    assert_eq!(
        booted.status.target_ports,
        [target_port("p-1", "tp-a", PortOrigin::New), target_port("p-2", "tp-b", PortOrigin::New)]
    );
}
