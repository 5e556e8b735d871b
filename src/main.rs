use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use osmo::runtime::{RunConfig, leader::LeaseConfig};

/// osmo, the OpenStack Migration Operator.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (uses the in-cluster config, or KUBECONFIG).
    Run(RunArgs),
    /// Print both CustomResourceDefinitions as YAML.
    Crd {
        /// Write one file per CRD into this directory instead.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Address of the HTTP server for /healthz, /readyz and /metrics.
    #[arg(long, env = "OSMO_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "OSMO_NAMESPACE")]
    namespace: Option<String>,
    /// Reconciliations of one kind that may run at once.
    #[arg(long, env = "OSMO_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// OpenStack-changing requests that may run at once against one cloud, across all
    /// migrations and drains.
    #[arg(long, env = "OSMO_OPENSTACK_CHANGES_PER_CLOUD", default_value_t = 8)]
    openstack_changes_per_cloud: usize,
    /// Run without leader election (only when a single replica runs).
    #[arg(long, env = "OSMO_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "OSMO_LEASE_NAME", default_value = "osmo-leader")]
    lease_name: String,
    /// The operator's namespace: of the leader's Lease and of the claims on servers and hosts
    /// (default: the pod's namespace, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the pod name, else host name and PID).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a lease that is not renewed stays valid for the other replicas.
    #[arg(long, default_value_t = 12)]
    lease_duration_seconds: u64,
    /// Seconds after which a leader that cannot renew steps down (less than the lease duration).
    #[arg(long, default_value_t = 7)]
    renew_deadline_seconds: u64,
    /// Seconds between attempts to acquire or renew the lease.
    #[arg(long, default_value_t = 2)]
    retry_period_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { out_dir } => {
            for (file, yaml) in osmo::api::crd_files() {
                match &out_dir {
                    Some(dir) => std::fs::write(dir.join(file), yaml)?,
                    None => print!("---\n{yaml}"),
                }
            }
            Ok(())
        }
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let client = kube::Client::try_default().await?;
            let operator_namespace =
                args.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
            let lease = if args.no_leader_election {
                None
            } else {
                anyhow::ensure!(
                    args.renew_deadline_seconds + 2 * args.retry_period_seconds < args.lease_duration_seconds,
                    "--renew-deadline-seconds plus twice --retry-period-seconds must be less than --lease-duration-seconds"
                );
                Some(LeaseConfig {
                    namespace: operator_namespace.clone(),
                    identity: args.identity.unwrap_or_else(default_identity),
                    name: args.lease_name,
                    lease_duration: Duration::from_secs(args.lease_duration_seconds),
                    renew_deadline: Duration::from_secs(args.renew_deadline_seconds),
                    retry_period: Duration::from_secs(args.retry_period_seconds),
                })
            };
            let config = RunConfig {
                listen: args.listen,
                namespace: args.namespace,
                lease,
                claim_namespace: operator_namespace,
                concurrency: args.concurrency,
                openstack_changes_per_cloud: args.openstack_changes_per_cloud,
            };
            osmo::controllers::run(config, client).await
        }
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "osmo".into());
    format!("{}-{}", host.trim(), std::process::id())
}
