//! Plumbing shared by the controllers: running them under leader election, status and
//! conditions, events, metrics, probes and shutdown.

pub mod backoff;
pub mod cached;
pub mod claim;
pub mod clouds;
pub mod conditions;
pub mod events;
pub mod fairness;
pub mod finalizers;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod status;

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use self::backoff::Backoff;
use self::http::Health;
use self::metrics::Metrics;
use self::status::HasConditions;

/// What every controller shares: the Kubernetes client, events, metrics, OpenStack sessions and
/// the claims on what they act on. Each controller keeps what only it needs in a context of its
/// own.
pub struct Shared {
    pub client: Client,
    pub events: events::Events,
    pub metrics: Arc<Metrics>,
    pub clouds: clouds::Clouds,
    pub claims: claim::Claims,
}

/// Why a reconciliation failed; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("OpenStack: {0}")]
    OpenStack(#[from] crate::openstack::Error),
    #[error("{0}")]
    Cloud(#[from] clouds::CloudError),
    /// A bug: the reconcile panicked. Retried with backoff like any failure, so that one
    /// resource's bug does not stop the controller for every other.
    #[error("the reconcile panicked: {0}")]
    Panicked(String),
}

impl ReconcileError {
    /// A short label for the errors metric.
    pub fn label(&self) -> &'static str {
        match self {
            ReconcileError::Kube(e) if status::is_conflict(e) => "conflict",
            ReconcileError::Kube(_) => "kube",
            ReconcileError::OpenStack(_) => "openstack",
            ReconcileError::Cloud(_) => "cloud",
            ReconcileError::Panicked(_) => "panic",
        }
    }
}

/// How `osmo run` is set up.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub listen: SocketAddr,
    /// Watch only this namespace; all namespaces when unset.
    pub namespace: Option<String>,
    /// Leader election; none when a single replica runs.
    pub lease: Option<leader::LeaseConfig>,
    /// The operator's own namespace, where its claims on servers and hosts are kept.
    pub claim_namespace: String,
    /// Reconciliations of one kind that may run at once.
    pub concurrency: u16,
    /// OpenStack-changing requests that may run at once against one cloud.
    pub openstack_changes_per_cloud: usize,
}

/// Runs the operator until SIGTERM or SIGINT, or until it loses leadership (an error, so that
/// the process exits and never acts without the lease). `controllers` runs while this process
/// leads, until the token it is given is cancelled.
pub async fn run<F, Fut>(config: RunConfig, client: Client, controllers: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Shared>, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let (bound, http_task) = http::serve(config.listen, metrics.clone(), health.clone(), shutdown.clone()).await?;
    tracing::info!(%bound, "serving /healthz, /readyz and /metrics");

    let version = client.apiserver_version().await?;
    tracing::info!(kubernetes = %version.git_version, "connected to the Kubernetes API");
    health.ready.store(true, Ordering::Relaxed);

    let reporter = Reporter { controller: "osmo".into(), instance: config.lease.as_ref().map(|l| l.identity.clone()) };
    let observer_metrics = metrics.clone();
    let observer: crate::openstack::session::RequestObserver =
        Arc::new(move |service, status| observer_metrics.openstack_request(&service.to_string(), status));
    let (events, event_publisher) = events::Events::start(Recorder::new(client.clone(), reporter), metrics.clone());
    let shared = Arc::new(Shared {
        events,
        clouds: clouds::Clouds::new(client.clone(), observer, config.openstack_changes_per_cloud),
        claims: claim::Claims::new(client.clone(), config.claim_namespace.clone(), metrics.clone()),
        client: client.clone(),
        metrics: metrics.clone(),
    });

    let result = match &config.lease {
        None => {
            metrics.set_leader(true);
            controllers(shared, shutdown.clone()).await;
            Ok(())
        }
        Some(lease) => run_as_leader(lease.clone(), shared, shutdown.clone(), controllers).await,
    };
    shutdown.cancel();
    event_publisher.finish(Duration::from_secs(5)).await;
    http_task.await??;
    tracing::info!("stopped");
    result
}

async fn run_as_leader<F, Fut>(
    lease: leader::LeaseConfig,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    controllers: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Shared>, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let stop_election = CancellationToken::new();
    let (mut leading, election) = leader::spawn(shared.client.clone(), lease.clone(), stop_election.clone());
    tracing::info!(lease = %lease.name, identity = %lease.identity, "waiting for leadership");
    let became_leader = tokio::select! {
        r = leading.wait_for(|l| *l) => r.is_ok(),
        _ = shutdown.cancelled() => false,
    };
    let mut lost = false;
    if became_leader {
        tracing::info!(identity = %lease.identity, "became leader; starting controllers");
        shared.metrics.set_leader(true);
        let stop_controllers = shutdown.child_token();
        let running = controllers(shared.clone(), stop_controllers.clone());
        // Asked to stop, the controllers finish their in-flight reconciliations. Deposed, they
        // are dropped at once: a reconciliation cut off at its next await writes nothing more,
        // and the lease is lost only `renew_deadline` after the last renewal, well before
        // another replica may take it.
        lost = tokio::select! {
            () = running => false,
            _ = leading.wait_for(|l| !*l) => true,
        };
        shared.metrics.set_leader(false);
    }
    stop_election.cancel();
    election.await?;
    if lost {
        anyhow::bail!("lost the leader lease; exiting so that only the new leader acts");
    }
    Ok(())
}

/// The API of a namespaced kind, in the watched namespace or in all.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs one kube-runtime controller until `stop`, letting in-flight reconciliations finish. A
/// failed reconcile is retried after a backoff of its own resource, reset by a success.
pub async fn run_controller<K, C, F, Fut>(
    controller: Controller<K>,
    ctx: Arc<C>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    concurrency: u16,
    reconcile: F,
) where
    K: HasConditions + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Debug + Unpin,
    C: Send + Sync + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    let retries = Arc::new(Retries { ctx, metrics, backoff: Backoff::default() });
    let mut reconcile = reconcile;
    let reconcile = move |obj: Arc<K>, retries: Arc<Retries<C>>| {
        let reconciled = contain_panic(reconcile(obj.clone(), retries.ctx.clone()));
        async move {
            let result = reconciled.await;
            if result.is_ok() {
                retries.backoff.succeeded(&backoff_key(obj.as_ref()));
            }
            result
        }
    };
    controller
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy::<K, C>, retries)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile loop");
            }
        })
        .await;
}

/// `reconciled`, with a panic turned into an error: a panicking reconcile would otherwise end
/// the controller's whole stream, and every resource of the kind would wait for a restart.
async fn contain_panic(
    reconciled: impl Future<Output = Result<Action, ReconcileError>>,
) -> Result<Action, ReconcileError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(reconciled).catch_unwind().await.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        tracing::error!(%message, "the reconcile panicked (a bug); retrying with backoff");
        Err(ReconcileError::Panicked(message))
    })
}

/// A controller's context with what its failed reconciles need.
struct Retries<C> {
    ctx: Arc<C>,
    metrics: Arc<Metrics>,
    backoff: Backoff,
}

/// A resource's key in the backoff: its UID, so that a new resource of the same name starts
/// afresh.
fn backoff_key<K: HasConditions>(obj: &K) -> String {
    obj.uid().unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
}

fn error_policy<K: HasConditions, C>(obj: Arc<K>, error: &ReconcileError, retries: Arc<Retries<C>>) -> Action {
    let kind = K::kind(&());
    let after = retries.backoff.failed(&backoff_key(obj.as_ref()));
    if matches!(error, ReconcileError::Kube(e) if status::is_conflict(e)) {
        // Someone changed the object since it was read (a user's edit, or another replica):
        // decided again from the newer one.
        tracing::info!(kind = %kind, name = %obj.name_any(), retry_in = ?after, "object changed meanwhile; deciding again");
    } else {
        tracing::warn!(%error, kind = %kind, name = %obj.name_any(), retry_in = ?after, "reconcile failed; retrying");
    }
    retries.metrics.reconcile_failed(kind.to_string(), error.label());
    Action::requeue(after)
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconcile_is_an_error_to_retry_not_the_end_of_the_controller() {
        let panicked = contain_panic(async { panic!("a planner bug") }).await;
        match panicked {
            Err(ReconcileError::Panicked(message)) => assert_eq!(message, "a planner bug"),
            other => panic!("{other:?}"),
        }
        assert_eq!(ReconcileError::Panicked(String::new()).label(), "panic");
        let formatted = contain_panic(async { panic!("step {} of {}", 3, 8) }).await;
        assert!(matches!(formatted, Err(ReconcileError::Panicked(m)) if m == "step 3 of 8"));
        assert!(contain_panic(async { Ok(Action::await_change()) }).await.is_ok());
    }
}
