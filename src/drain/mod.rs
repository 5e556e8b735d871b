//! The ComputeNodeDrain controller: observe the host and the drain's migrations, let the
//! planner decide, write the status, then make the changes it asked for.

mod execute;
mod observe;
pub mod planner;
#[cfg(test)]
mod planner_tests;

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;

use crate::api::{ComputeNodeDrain, ComputeNodeDrainStatus, Condition, DrainPhase, InstanceMigration};
use crate::openstack::Session;
use crate::runtime::claim::{Claim, Key};
use crate::runtime::conditions::{Refusal, Validated};
use crate::runtime::status::{self, HasConditions};
use crate::runtime::{ReconcileError, Shared, finalizers};

use self::planner::{Input, Observed};

/// Held on every ComputeNodeDrain so that its deletion passes through the operator.
pub const FINALIZER: &str = "osmo.dev/compute-node-drain";

/// What the drain controller works with: the shared plumbing, and the migrations as the watch
/// sees them (to find other migrations of the host's servers).
pub struct Context {
    pub shared: Arc<Shared>,
    pub migrations: Store<InstanceMigration>,
}

impl HasConditions for ComputeNodeDrain {
    type Status = ComputeNodeDrainStatus;
    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }
}

#[tracing::instrument(skip_all, fields(namespace = drain.metadata.namespace.as_deref(), name = drain.metadata.name.as_deref(), uid = drain.metadata.uid.as_deref()))]
pub async fn reconcile(mut drain: Arc<ComputeNodeDrain>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.shared.metrics.reconcile_started("ComputeNodeDrain");
    let api: Api<ComputeNodeDrain> = Api::namespaced(ctx.shared.client.clone(), &drain.namespace().unwrap_or_default());
    let deleting = drain.metadata.deletion_timestamp.is_some();
    let held = drain.finalizers().iter().any(|f| f == FINALIZER);
    if deleting && !held {
        return Ok(Action::await_change());
    }
    if !held {
        finalizers::ensure(&api, Arc::make_mut(&mut drain), FINALIZER).await?;
        ctx.shared.metrics.kubernetes_write("ComputeNodeDrain");
    }
    let current = drain.status.clone().unwrap_or_default();
    let input = Input {
        spec: &drain.spec,
        status: drain.status.as_ref(),
        name: &drain.name_any(),
        generation: drain.metadata.generation,
        deleting,
        now: jiff::Timestamp::now(),
    };
    // A new spec is acknowledged (accepted or refused) at once, before OpenStack is asked.
    let (validated, verdict) = planner::validated(&input);
    // The drain as this reconcile has written it: each write is made on the version before.
    let mut written = (*drain).clone();
    publish(&ctx, &mut written, drain.status.as_ref(), &validated).await?;
    let needs_openstack = !matches!(verdict, Validated::Invalid(_)) && current.phase != DrainPhase::Retired;
    let namespace = drain.namespace().unwrap_or_default();
    let mut session = None;
    let mut observation = None;
    let mut observed: Result<Observed, Refusal> = if !needs_openstack {
        Ok(Observed::default())
    } else {
        match ctx.shared.clouds.session(&namespace, &drain.spec.cloud).await {
            // Its cloud's Secret may be gone (deleted with the namespace): a drain that emptied
            // its host is let go without it, any other waits for it.
            Err(e) if started(&current) && !(deleting && planner::emptied(&current)) => return Err(e.into()),
            Err(e) => Err(Refusal { reason: e.reason(), message: format!("spec.cloud: {e}") }),
            Ok(s) => match observe::observe(&ctx, &s, &drain).await {
                Ok(o) => {
                    session = Some(s);
                    Ok(observation.insert(o).planner.clone())
                }
                Err(ReconcileError::OpenStack(e)) if !started(&current) && !e.is_transient() => {
                    Err(Refusal { reason: "OpenStackError", message: e.to_string() })
                }
                Err(e) => return Err(record_error(&ctx, &mut written, &validated, e).await),
            },
        }
    };
    let mut claimed = None;
    if let (Some(session), Ok(observed)) = (&session, &mut observed) {
        (claimed, observed.rival) = claim_host(&ctx, session, &drain, &current).await?;
    }
    let mut decision = planner::plan(&input, observed.as_ref());
    if claimed.is_some() {
        decision.status.claim = claimed;
    }
    publish(&ctx, &mut written, Some(&validated), &decision.status).await?;

    if let Some(session) = &session {
        let service = observation.as_ref().and_then(|o| o.service.as_ref());
        for action in decision.actions {
            if let Err(e) = execute::execute(&ctx, session, &drain, service, action).await {
                return Err(record_error(&ctx, &mut written, &decision.status, e).await);
            }
        }
    }
    let ended = matches!(decision.status.phase, DrainPhase::Failed | DrainPhase::Retired);
    if let Some(lease) = decision.status.claim.as_deref().filter(|_| decision.release || ended) {
        ctx.shared.claims.release(lease, drain.as_ref()).await?;
    }
    if decision.release {
        finalizers::remove(&api, drain.as_ref(), FINALIZER).await?;
        ctx.shared.metrics.kubernetes_write("ComputeNodeDrain");
        return Ok(Action::await_change());
    }
    Ok(decision.requeue.map(Action::requeue).unwrap_or_else(Action::await_change))
}

/// Whether a drain holds its claim on the host: until it is retired or failed (or its
/// finalizer goes).
fn holds_host(status: Option<&ComputeNodeDrainStatus>) -> bool {
    status.is_none_or(|s| !matches!(s.phase, DrainPhase::Failed | DrainPhase::Retired))
}

/// Claims the host for this drain, cluster-wide, before the cordon, and keeps checking it holds
/// it (a drain's claim is read each time: drains are few). Returns the claim, and the other
/// drain that holds it instead (the planner refuses a drain that has not cordoned yet).
async fn claim_host(
    ctx: &Context,
    session: &Session,
    drain: &ComputeNodeDrain,
    status: &ComputeNodeDrainStatus,
) -> Result<(Option<String>, Option<String>), ReconcileError> {
    if drain.spec.dry_run || drain.metadata.deletion_timestamp.is_some() || !holds_host(Some(status)) {
        return Ok((None, None));
    }
    let key = Key::host(&session.config().auth.auth_url, &drain.spec.host);
    match ctx.shared.claims.claim(&key, drain, |other: &ComputeNodeDrain| holds_host(other.status.as_ref())).await? {
        Claim::Held(lease) => Ok((Some(lease), None)),
        Claim::Refused { lease, holder } => {
            if started(status) {
                tracing::warn!(drain = %drain.name_any(), claim = %lease, %holder, "a drain under way holds no claim on its host");
            }
            Ok((None, Some(holder)))
        }
    }
}

/// Whether the drain has changed anything in OpenStack yet.
fn started(status: &ComputeNodeDrainStatus) -> bool {
    status.cordoned_at.is_some()
}

/// Shows an error that will be retried in the status, so that `kubectl describe` tells why
/// the drain does not move.
async fn record_error(
    ctx: &Context,
    drain: &mut ComputeNodeDrain,
    status: &ComputeNodeDrainStatus,
    error: ReconcileError,
) -> ReconcileError {
    if let ReconcileError::OpenStack(crate::openstack::Error::Auth { .. }) = &error {
        ctx.shared.clouds.forget(&drain.namespace().unwrap_or_default(), &drain.spec.cloud);
    }
    let mut with_error = status.clone();
    with_error.last_error = Some(error.to_string());
    if let Err(e) = status::publish(&ctx.shared, drain, Some(status), &with_error).await {
        tracing::warn!(error = %e, drain = %drain.name_any(), "could not record the error in status");
    }
    error
}

/// Writes the status and counts drains that reached an end.
async fn publish(
    ctx: &Context,
    drain: &mut ComputeNodeDrain,
    old: Option<&ComputeNodeDrainStatus>,
    new: &ComputeNodeDrainStatus,
) -> Result<(), ReconcileError> {
    status::publish(&ctx.shared, drain, old, new).await?;
    if old.is_none_or(|old| old.phase != new.phase) {
        match new.phase {
            DrainPhase::Drained | DrainPhase::Retired | DrainPhase::Blocked | DrainPhase::Failed => {
                ctx.shared.metrics.drain_reached(&format!("{:?}", new.phase))
            }
            _ => {}
        }
    }
    Ok(())
}
