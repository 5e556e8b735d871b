//! The OpenStack simulator (`sim/`, for scale runs) against osmo's client: the contract tests
//! of `openstack.rs` and `volumes_api.rs` that it answers, run on an in-process simulator. They
//! fail when the simulator's answers diverge from what the client expects of the real services
//! (the same functions run against those in `openstack.rs` and `volumes_api.rs`). The
//! simulator's RegionTwo (clouds `admin-nova2`, `demo-nova2`) is its one Nova, with the second
//! Nova's zone `juno` added ([`Config::for_contract_tests`]).
//!
//! `hack/sim.sh` runs the contract tests of `openstack.rs` and `volumes_api.rs` against a
//! simulator by name; those that need what the simulator does not do are skipped there:
//! - `application_credentials_authenticate`: Keystone administration and application
//!   credentials are not simulated.
//! - `a_fixed_ip_is_kept_by_recreating_its_port`: it reaches Nova at the real stack's port.
//! - `this_nova_has_no_nova_network`: the os-floating-ips proxy to Neutron is not simulated.
//! - `a_long_operation_outlives_short_lived_tokens`: needs the `admin-short` cloud, a Keystone
//!   of 20-second tokens.
//! - `tls_is_verified_with_the_clouds_ca_bundle`: no TLS; it does not touch OpenStack anyway.
//! - `compute_services_are_disabled_enabled_forced_down_and_retired`: it starts an extra
//!   nova-compute process.

use osmo::openstack::{Session, clouds};
use osmo_openstack_sim::{Config, Simulator};

use crate::openstack::{catalog_calls, migration_calls};
use crate::volumes_api::{cinder_calls, data_volume_beside_an_image, volume_moves};

async fn simulator() -> Simulator {
    Simulator::start(Config::for_contract_tests(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn session(sim: &Simulator, cloud: &str) -> Session {
    Session::new(clouds::parse(&sim.clouds_yaml(), cloud).unwrap(), None).unwrap()
}

#[tokio::test]
async fn the_simulator_answers_the_catalog_calls_as_the_client_expects() {
    let sim = simulator().await;
    catalog_calls(&session(&sim, "admin"), &session(&sim, "demo")).await;
}

#[tokio::test]
async fn the_simulator_answers_the_migration_calls_as_the_client_expects() {
    let sim = simulator().await;
    migration_calls(&session(&sim, "admin")).await;
    // Every request was one the simulator knows (none fell through to a 404 route).
    assert!(sim.request_count() > 20, "{:?}", sim.requests());
}

#[tokio::test]
async fn the_simulator_answers_the_cinder_calls_as_the_client_expects() {
    let sim = simulator().await;
    cinder_calls(&session(&sim, "admin"), &session(&sim, "admin-nova2")).await;
}

#[tokio::test]
async fn the_simulator_moves_volumes_between_servers_as_the_real_services_do() {
    let sim = simulator().await;
    volume_moves(&session(&sim, "admin"), &session(&sim, "admin-nova2")).await;
    assert!(sim.requests().keys().any(|route| route.starts_with("volume ")), "{:?}", sim.requests());
}

#[tokio::test]
async fn the_simulator_boots_an_image_with_a_data_volume_as_the_real_nova_does() {
    let sim = simulator().await;
    data_volume_beside_an_image(&session(&sim, "admin")).await;
}
