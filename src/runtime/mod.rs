//! Plumbing shared by the controllers: running them under leader election, status and
//! conditions, events, metrics, probes and shutdown.

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
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use self::http::Health;
use self::metrics::Metrics;
use self::status::HasConditions;
use crate::api::{ComputeNodeDrain, InstanceMigration};

/// What every reconciliation gets.
pub struct Context {
    pub client: Client,
    pub events: events::Events,
    pub metrics: Arc<Metrics>,
    pub clouds: clouds::Clouds,
    /// Every InstanceMigration, as the migration controller's watch sees them (to refuse a
    /// second migration of the same server).
    pub migrations: std::sync::OnceLock<kube::runtime::reflector::Store<crate::api::InstanceMigration>>,
    /// Every ComputeNodeDrain, as the drain controller's watch sees them (to refuse a second
    /// drain of the same host).
    pub drains: std::sync::OnceLock<kube::runtime::reflector::Store<crate::api::ComputeNodeDrain>>,
    /// When the controllers started acting (this process became the leader).
    pub acting_since: std::sync::OnceLock<jiff::Timestamp>,
    /// What the migration controller keeps between reconciles.
    pub migration_memory: crate::migration::Memory,
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
}

impl ReconcileError {
    /// A short label for the errors metric.
    pub fn label(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "kube",
            ReconcileError::OpenStack(_) => "openstack",
            ReconcileError::Cloud(_) => "cloud",
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
    /// Reconciliations of one kind that may run at once.
    pub concurrency: u16,
    /// OpenStack-changing requests that may run at once against one cloud.
    pub openstack_changes_per_cloud: usize,
}

/// Runs the operator until SIGTERM or SIGINT, or until it loses leadership (an error, so that
/// the process exits and never acts without the lease).
pub async fn run(config: RunConfig, client: Client) -> anyhow::Result<()> {
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
    let ctx = Arc::new(Context {
        events,
        clouds: clouds::Clouds::new(client.clone(), observer, config.openstack_changes_per_cloud),
        client: client.clone(),
        metrics: metrics.clone(),
        migrations: std::sync::OnceLock::new(),
        drains: std::sync::OnceLock::new(),
        acting_since: std::sync::OnceLock::new(),
        migration_memory: Default::default(),
    });

    let result = match &config.lease {
        None => {
            metrics.set_leader(true);
            run_controllers(&config, ctx, shutdown.clone()).await;
            Ok(())
        }
        Some(lease) => run_as_leader(&config, lease.clone(), ctx, shutdown.clone()).await,
    };
    shutdown.cancel();
    event_publisher.finish(Duration::from_secs(5)).await;
    http_task.await??;
    tracing::info!("stopped");
    result
}

async fn run_as_leader(
    config: &RunConfig,
    lease: leader::LeaseConfig,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop_election = CancellationToken::new();
    let (mut leading, election) = leader::spawn(ctx.client.clone(), lease.clone(), stop_election.clone());
    tracing::info!(lease = %lease.name, identity = %lease.identity, "waiting for leadership");
    let became_leader = tokio::select! {
        r = leading.wait_for(|l| *l) => r.is_ok(),
        _ = shutdown.cancelled() => false,
    };
    let mut lost = false;
    if became_leader {
        tracing::info!(identity = %lease.identity, "became leader; starting controllers");
        ctx.metrics.set_leader(true);
        let stop_controllers = shutdown.child_token();
        let leadership_lost = async {
            tokio::select! {
                _ = leading.wait_for(|l| !*l) => { stop_controllers.cancel(); true }
                _ = stop_controllers.cancelled() => false,
            }
        };
        // Controllers stop gracefully either way: in-flight reconciliations finish.
        (_, lost) = tokio::join!(run_controllers(config, ctx.clone(), stop_controllers.clone()), leadership_lost);
        ctx.metrics.set_leader(false);
    }
    stop_election.cancel();
    election.await?;
    if lost {
        anyhow::bail!("lost the leader lease; exiting so that only the new leader acts");
    }
    Ok(())
}

async fn run_controllers(config: &RunConfig, ctx: Arc<Context>, stop: CancellationToken) {
    let _ = ctx.acting_since.set(jiff::Timestamp::now());
    let migrations_api: Api<InstanceMigration> = scoped(&ctx.client, config);
    // Both kinds wake on spec changes and deletion (both bump the generation) and on their own
    // polling timers, not on the operator's own status writes: each wake costs OpenStack reads.
    let (reader, writer) = reflector::store();
    let events = watcher(migrations_api.clone(), watcher::Config::default()).default_backoff().reflect(writer);
    // After a restart, the migrations that progressed longest ago are taken up first.
    let triggers = fairness::applied_least_recently_served_first(events, reader.clone(), last_progress)
        .predicate_filter(predicates::generation, Default::default());
    let _ = ctx.migrations.set(reader.clone());
    let migrations = Controller::for_stream(triggers, reader);

    let (reader, writer) = reflector::store();
    let triggers = watcher(scoped::<ComputeNodeDrain>(&ctx.client, config), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let _ = ctx.drains.set(reader.clone());
    // A drain also wakes when one of its migrations changes phase (not on each status write).
    let children = watcher(migrations_api, watcher::Config::default().labels(crate::drain::planner::DRAIN_UID_LABEL))
        .default_backoff()
        .touched_objects()
        .predicate_filter(migration_phase, Default::default());
    let drains = Controller::for_stream(triggers, reader).owns_stream(children);
    tokio::join!(
        run_controller(migrations, ctx.clone(), stop.clone(), config.concurrency, crate::migration::reconcile),
        run_controller(drains, ctx, stop, config.concurrency, crate::drain::reconcile),
    );
}

fn scoped<K>(client: &Client, config: &RunConfig) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// When a migration last moved on: its latest step's start or end (never, before its first step).
fn last_progress(im: &InstanceMigration) -> Option<jiff::Timestamp> {
    let steps = im.status.as_ref()?.steps.iter();
    steps.flat_map(|s| [Some(&s.started_at), s.finished_at.as_ref()]).flatten().filter_map(|t| t.parse().ok()).max()
}

/// A predicate that changes with a migration's phase and deletion.
fn migration_phase(im: &InstanceMigration) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    im.status.as_ref().map(|s| s.phase).hash(&mut hasher);
    im.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs one kube-runtime controller until `stop`, letting in-flight reconciliations finish.
async fn run_controller<K, F, Fut>(
    controller: Controller<K>,
    ctx: Arc<Context>,
    stop: CancellationToken,
    concurrency: u16,
    reconcile: F,
) where
    K: HasConditions + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Debug + Unpin,
    F: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    controller
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile loop");
            }
        })
        .await;
}

fn error_policy<K: HasConditions>(obj: Arc<K>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let kind = K::kind(&());
    tracing::warn!(%error, kind = %kind, name = %kube::ResourceExt::name_any(obj.as_ref()), "reconcile failed; retrying");
    ctx.metrics.reconcile_failed(kind.to_string(), error.label());
    Action::requeue(Duration::from_secs(5))
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
