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

    // The replacement's port is made on the mapped network first.
    assert_eq!(run.entering(Booting).action, Some(create_port("p-1", "net-9", false)));
    assert_eq!(run.step().action, Some(finish_port("p-1", false)));
    let booting = run.step();
    assert_eq!(
        booting.action,
        Some(Action::Boot(Box::new(Replacement {
            name: "web-1".into(),
            image_id: Some(SNAPSHOT_ID.into()),
            flavor_id: FLAVOR_ID.into(),
            key_name: Some("deploy".into()),
            // The port carries the source port's security groups.
            security_groups: Vec::new(),
            availability_zone: Some("icehouse".into()),
            host: Some("icehouse-3".into()),
            nics: vec![made_port("p-1")],
            ..Default::default()
        })))
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
    assert_eq!(booting.action, Some(create_port("p-1", "net-1", false)));
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
            (Booting, create_port("p-1", "net-1", false)),
            (Booting, finish_port("p-1", false)),
            (Booting, boot(REDEPLOY_IMAGE_ID, &[made_port("p-1")])),
            // Straight from the stopped source's port to the replacement's.
            (MovingAddresses, associate("fip-1", "p-1-made", None)),
            (DeletingSource, delete_source()),
        ]
    );
    assert_succeeded(&done);
    assert_eq!(
        steps(&done),
        all_succeeded(&[Recording, Stopping, Booting, MovingAddresses, Verifying, DeletingSource])
    );
    assert_eq!(done.snapshot, None);
    assert_eq!(done.target_ports, [target_port("p-1", "p-1-made", PortOrigin::Created)]);
    // Stopped at t=0s, verified at t=25s; deleting the stopped source afterwards is no downtime.
    assert_eq!(done.downtime.as_deref(), Some("25.0s"));
    assert!(run.cloud.source.is_none());
}

#[test]
fn preserved_fixed_ips_recreate_the_port_and_boot_on_it() {
    let mut run = Run::new(spec(json!({"addresses": {"preserveFixedIPs": true}})), web_cloud("ACTIVE"));

    let recreating = run.entering(Booting);
    assert_eq!(recreating.action, Some(create_port("p-1", "net-1", true)));
    assert_eq!(recreating.status.phase, Booting);
    assert_eq!(recreating.requeue, Some(Duration::ZERO));
    assert_eq!(run.step().action, Some(finish_port("p-1", true)));

    let booting = run.step();
    assert_eq!(booting.action, Some(boot(SNAPSHOT_ID, &[on_port("p-1-recreated")])));
    assert_eq!(booting.status.target_ports, [target_port("p-1", "p-1-recreated", PortOrigin::Recreated)]);

    assert_succeeded(run.finish());
    // The floating IP keeps its fixed IP, which the recreated port carries.
    assert!(run.actions().contains(&associate("fip-1", "p-1-recreated", Some("10.0.0.5"))), "{:?}", run.log);
    assert_eq!(run.actions().iter().filter(|a| matches!(a, Action::CreatePort { .. })).count(), 1);
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
fn a_boot_error_after_the_source_is_deleted_fails_saying_what_remains() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    assert_eq!(run.entering(Booting).action, Some(create_port("p-1", "net-1", false)));
    run.step();
    assert!(is_boot(&run.step().action.unwrap()));

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
             replacement tgt-1 is ERROR; ports p-1-made (made for the replacement) are kept; floating IPs \
             203.0.113.9 stay allocated to the project."
        ),
        Booting,
    );
    assert_eq!(step_record(&failed.status, Booting).result, StepResult::Failed);
    assert!(run.cloud.snapshot.is_some(), "the snapshot is kept to boot from again");
}

/// `web-1` with two ports on `net-1` and one on `net-2`; the floating IP is on the second
/// port of `net-1`, and the port on `net-2` has one too.
fn three_port_server() -> RecordedServer {
    server(
        "ACTIVE",
        vec![
            port("p-a", "net-1", "10.0.0.5", None),
            port("p-b", "net-1", "10.0.0.6", Some(("fip-b", "203.0.113.9"))),
            port("p-c", "net-2", "10.1.0.5", Some(("fip-c", "203.0.113.10"))),
        ],
    )
}

#[test]
fn each_port_is_made_from_its_source_port_in_order_and_keeps_its_floating_ip() {
    // Two ports on one network and the other network mapped: pairing by network or by
    // Neutron's listing order could swap them; each port is made for its source port instead.
    let mut cloud = Cloud::new(three_port_server());
    cloud.boot = Ok(BootBase {
        flavor_id: FLAVOR_ID.into(),
        networks: BTreeMap::from([("net-1".into(), "net-x".into()), ("net-2".into(), "net-y".into())]),
        ..Default::default()
    });
    let mut run = Run::new(spec(json!({"mappings": {"networks": {"net-1": "net-x", "net-2": "net-y"}}})), cloud);
    run.until(MovingAddresses);
    let booting: Vec<Action> =
        run.log.iter().filter(|(phase, _)| *phase == Booting).map(|(_, action)| action.clone()).collect();
    assert_eq!(
        booting,
        [
            create_port("p-a", "net-x", false),
            finish_port("p-a", false),
            create_port("p-b", "net-x", false),
            finish_port("p-b", false),
            create_port("p-c", "net-y", false),
            finish_port("p-c", false),
            boot(SNAPSHOT_ID, &[made_port("p-a"), made_port("p-b"), made_port("p-c")]),
        ]
    );
    assert_eq!(
        run.status().target_ports,
        [
            target_port("p-a", "p-a-made", PortOrigin::Created),
            target_port("p-b", "p-b-made", PortOrigin::Created),
            target_port("p-c", "p-c-made", PortOrigin::Created),
        ]
    );
    // Neutron lists the replacement's ports in an order of its own: it does not matter.
    run.cloud.target_ports.reverse();
    assert_succeeded(run.finish());
    assert_eq!(run.cloud.floating_ips["fip-b"].as_deref(), Some("p-b-made"));
    assert_eq!(run.cloud.floating_ips["fip-c"].as_deref(), Some("p-c-made"));
}

#[test]
fn a_port_made_before_a_crash_is_found_by_its_marker_not_made_again() {
    let mut run = Run::new(snapshot_spec(), Cloud::new(three_port_server()));
    // The port for p-a is made; the operator dies before the status holds its ID.
    assert_eq!(run.entering(Booting).action, Some(create_port("p-a", "net-1", false)));
    assert!(run.status().target_ports.is_empty());

    let found = run.step();
    assert_eq!(found.action, Some(finish_port("p-a", false)));
    // Its ID is written with the decision that takes its marker away.
    assert_eq!(found.status.target_ports, [target_port("p-a", "p-a-made", PortOrigin::Created)]);
    assert_succeeded(run.finish());
    let creates = run.actions().into_iter().filter(|a| matches!(a, Action::CreatePort { .. })).count();
    assert_eq!(creates, 3, "{:?}", run.log);
}

#[test]
fn a_made_port_that_vanished_before_the_boot_is_made_again() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.entering(Booting);
    run.step();
    // Someone deleted it after osmo recorded it.
    run.cloud.created_ports.clear();

    assert_eq!(run.step().action, Some(create_port("p-1", "net-1", false)));
    assert_succeeded(run.finish());
    assert_eq!(run.status().target_ports, [target_port("p-1", "p-1-made", PortOrigin::Created)]);
}

#[test]
fn a_replacement_an_earlier_osmo_booted_on_networks_gets_its_ports_paired() {
    // Written by an osmo that let Nova make the ports: the replacement is found by its UID,
    // booted on networks, with no port in the status.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Booting);
    run.cloud.target = Some(server_state("tgt-7", "BUILD"));
    run.cloud.target_ports = vec![("tp-7".into(), "net-1".into())];

    let adopted = run.step();
    assert_eq!(adopted.action, None);
    assert_eq!(adopted.status.target.as_ref().map(|t| t.server_id.as_str()), Some("tgt-7"));

    run.cloud.target.as_mut().unwrap().status = "ACTIVE".into();
    let booted = run.step();
    assert_eq!(booted.status.phase, MovingAddresses);
    assert_eq!(booted.status.target_ports, [target_port("p-1", "tp-7", PortOrigin::New)]);
    run.finish();
    assert!(!run.actions().iter().any(|a| is_boot(a) || matches!(a, Action::CreatePort { .. })), "{:?}", run.log);
    assert!(run.actions().contains(&associate("fip-1", "tp-7", None)));
}

#[test]
fn a_status_with_ports_of_origin_new_still_parses() {
    let old: TargetPort =
        serde_json::from_value(json!({"sourcePortId": "p-1", "portId": "tp-7", "origin": "New"})).unwrap();
    assert_eq!(old, target_port("p-1", "tp-7", PortOrigin::New));
    assert!(!old.origin.made_by_osmo() && !old.origin.keeps_addresses());
}
