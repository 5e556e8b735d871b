//! Runs the OpenStack simulator alone, e.g. for the contract tests (`hack/sim.sh`).
//!
//! `osmo-openstack-sim [LISTEN] [CLOUDS_YAML]`: listens on LISTEN (default 127.0.0.1:0),
//! writes the clouds.yaml of its users to CLOUDS_YAML (default: standard output), prints
//! `listening on ADDR` on standard error once it answers, and runs until stopped. Latencies:
//! `OSMO_SIM_{BOOT,STOP,START,SNAPSHOT,DELETE,ATTACH,DETACH,VOLUME_CREATE,VOLUME_DELETE,REQUEST}_MS`.

use osmo_openstack_sim::{Config, Latencies, Simulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".into()).parse()?;
    let clouds = args.next();
    let config = Config { latencies: Latencies::default().with_env("OSMO_SIM"), ..Config::for_contract_tests() };
    let sim = Simulator::start(config, listen).await?;
    match clouds {
        Some(path) => std::fs::write(path, sim.clouds_yaml())?,
        None => print!("{}", sim.clouds_yaml()),
    }
    eprintln!("listening on {}", sim.addr());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
