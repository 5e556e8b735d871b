//! Address mode `NovaNetwork`.

use super::*;

fn moving_addresses_actions(run: &Run) -> Vec<Action> {
    run.log.iter().filter(|(phase, _)| *phase == MovingAddresses).map(|(_, a)| a.clone()).collect()
}

fn create_range() -> Action {
    Action::CreateFloatingIpRange {
        ip_range: "10.10.10.3/32".into(),
        pool: "public".into(),
        interface: Some("eth0".into()),
    }
}

fn allocate_from_public() -> Action {
    Action::AllocateFloatingIp { pool: "public".into() }
}

fn add_to_target() -> Action {
    Action::AddFloatingIp { server_id: TARGET_ID.into(), address: "10.10.10.3".into() }
}

#[test]
fn nova_network_is_a_valid_address_mode() {
    assert!(validate(&nova_network_spec()).is_empty());
}

#[test]
fn in_a_new_cloud_the_pool_is_recreated_the_address_allocated_then_added() {
    let mut run = Run::new(nova_network_spec(), nova_network_cloud());
    assert_succeeded(run.finish());
    assert_eq!(moving_addresses_actions(&run), [create_range(), allocate_from_public(), add_to_target()]);
    assert!(run.actions().contains(&boot(SNAPSHOT_ID, &[Nic::Auto])), "{:?}", run.actions());
    let on_target = run.cloud.nova_network.allocated.iter().find(|f| f.ip == "10.10.10.3").unwrap();
    assert_eq!(on_target.instance_id.as_deref(), Some(TARGET_ID));
}

#[test]
fn in_the_same_cloud_the_kept_address_is_only_added() {
    let mut cloud = nova_network_cloud();
    cloud.nova_network = NovaNetworkState {
        allocated: vec![allocated_address("10.10.10.3", Some(SOURCE_ID))],
        pools: vec![pool_address("10.10.10.3", "public", Some("project-1"))],
    };
    let mut run = Run::new(nova_network_spec(), cloud);
    assert_succeeded(run.finish());
    assert_eq!(moving_addresses_actions(&run), [add_to_target()]);
}

#[test]
fn a_redeploy_moves_the_address_off_the_source_before_deleting_it() {
    let mut cloud = nova_network_cloud();
    cloud.boot = Ok(BootBase { image_id: Some(REDEPLOY_IMAGE_ID.into()), ..cloud.boot.unwrap() });
    cloud.nova_network = NovaNetworkState {
        allocated: vec![allocated_address("10.10.10.3", Some(SOURCE_ID))],
        pools: vec![pool_address("10.10.10.3", "public", Some("project-1"))],
    };
    let redeploy =
        spec(json!({"strategy": "Redeploy", "redeploy": {"image": "cirros"}, "addresses": {"mode": "NovaNetwork"}}));
    let mut run = Run::new(redeploy, cloud);
    assert_succeeded(run.finish());
    assert_eq!(moving_addresses_actions(&run), [add_to_target()]);
    assert_eq!(run.actions().last(), Some(&delete_source()), "the source goes last");
}

#[test]
fn an_address_the_target_cannot_give_back_is_refused_before_anything_changes() {
    let taken = NovaNetworkState {
        pools: vec![pool_address("10.10.10.3", "public", Some("other-project"))],
        ..Default::default()
    };
    let crowded = NovaNetworkState { pools: vec![pool_address("10.10.10.9", "public", None)], ..Default::default() };
    let in_use = NovaNetworkState {
        allocated: vec![allocated_address("10.10.10.3", Some("another-server"))],
        pools: vec![pool_address("10.10.10.3", "public", Some("project-1"))],
    };
    for (state, says) in [
        (taken, "allocated to project other-project"),
        (crowded, "other free addresses"),
        (in_use, "is on server another-server"),
    ] {
        let mut cloud = nova_network_cloud();
        cloud.nova_network = state;
        let mut run = Run::new(nova_network_spec(), cloud);
        let ended = run.finish();
        assert_failed(ended, "AddressUnavailable");
        assert!(failure_message(ended).contains(says), "{}", failure_message(ended));
        assert!(failure_message(ended).ends_with("Nothing was changed."), "{}", failure_message(ended));
        assert!(run.actions().is_empty(), "{:?}", run.actions());
    }
}

#[test]
fn an_interrupted_address_move_resumes_where_it_stopped() {
    let mut run = Run::new(nova_network_spec(), nova_network_cloud());
    run.until(MovingAddresses);
    // The look that saw the replacement up made the first change.
    assert_eq!(run.actions().last(), Some(&create_range()));
    // A restarted operator sees the range made and allocates, rather than creating it again.
    assert_eq!(run.decide().action, Some(allocate_from_public()));
    run.step();
    assert_eq!(run.decide().action, Some(add_to_target()));
}

#[test]
fn an_address_lost_before_verification_fails_saying_what_remains() {
    let mut run = Run::new(nova_network_spec(), nova_network_cloud());
    run.until(Verifying);
    run.cloud.nova_network.allocated.clear();
    let ended = run.finish();
    assert_failed(ended, "AddressesNotMoved");
    assert!(failure_message(ended).contains("floating IPs 10.10.10.3"), "{}", failure_message(ended));
}
