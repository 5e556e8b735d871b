//! MovingAddresses and their verification.

use super::*;

#[test]
fn with_addresses_mode_none_no_floating_ip_is_moved() {
    let mut run = Run::new(spec(json!({"addresses": {"mode": "None"}})), web_cloud("ACTIVE"));
    let done = run.finish().clone();

    assert_succeeded(&done);
    assert!(!run.actions().iter().any(|a| matches!(a, Action::AssociateFloatingIp { .. })), "{:?}", run.log);
    assert_eq!(run.cloud.floating_ips["fip-1"], None, "left where the source's deletion put it");
    assert_eq!(step_record(&done, MovingAddresses).result, StepResult::Succeeded);
}

#[test]
fn verification_fails_when_a_floating_ip_is_not_on_the_replacement() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.entering(MovingAddresses);
    // Resumed after a restart, MovingAddresses looks at the floating IPs only: Verifying looks
    // at the replacement afresh.
    let moved = plan(&run.input(), &Observed { floating_ips: run.cloud.floating_ips.clone(), ..Default::default() });
    assert_eq!((moved.status.phase, &moved.action, moved.requeue), (Verifying, &None, Some(Duration::ZERO)));
    run.status = Some(moved.status);
    run.cloud.floating_ips.insert("fip-1".into(), None);

    let failed = run.step();
    assert_eq!((&failed.action, failed.requeue), (&None, None));
    // The source is gone: nothing to roll back to, and the snapshot is kept.
    assert_failed(&failed.status, "AddressesNotMoved");
    assert!(failure_message(&failed.status).contains("snapshot img-1 is kept"), "{}", failure_message(&failed.status));
    assert_eq!(step_record(&failed.status, Verifying).result, StepResult::Failed);
    assert_eq!(failed.status.downtime, None);
    assert!(run.cloud.snapshot.is_some());
}

#[test]
fn a_floating_ip_without_a_replacement_port_is_not_verified_as_moved() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.entering(Booting);
    // The port is made and finished, then the replacement booted on it.
    run.step();
    assert!(is_boot(&run.step().action.unwrap()));
    // Booted by an earlier osmo on networks (no port in the status), and Neutron lists no
    // port on the replacement yet.
    run.status.as_mut().unwrap().target_ports.clear();
    run.cloud.target_ports.clear();

    run.finish();
    assert_ne!(run.phase(), Succeeded, "fip-1 is on {:?}", run.cloud.floating_ips["fip-1"]);
    assert!(run.cloud.snapshot.is_some(), "the snapshot is the only copy of the server");
}
