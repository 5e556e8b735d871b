//! The InstanceMigration controller: observe OpenStack, let the planner decide, write the
//! status, then make the one change it asked for.

mod execute;
#[cfg(test)]
mod nova_network_tests;
mod observe;
pub mod planner;
#[cfg(test)]
mod planner_tests;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use crate::api::{
    Condition, InstanceMigration, InstanceMigrationStatus, MigrationPhase, SnapshotStatus, StepResult,
    TargetServerStatus,
};
use crate::runtime::clouds::CloudError;
use crate::runtime::status::{self, HasConditions};
use crate::runtime::{Context, ReconcileError, finalizers};

use self::execute::Made;
use self::planner::{Input, Observed, Refusal};

/// Held on every InstanceMigration so that its deletion passes through the operator.
pub const FINALIZER: &str = "osmo.dev/instance-migration";

impl HasConditions for InstanceMigration {
    type Status = InstanceMigrationStatus;
    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }
}

pub async fn reconcile(im: Arc<InstanceMigration>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile_started("InstanceMigration");
    let api: Api<InstanceMigration> = Api::namespaced(ctx.client.clone(), &im.namespace().unwrap_or_default());
    let deleting = im.metadata.deletion_timestamp.is_some();
    let current = im.status.clone().unwrap_or_default();
    let terminal = matches!(current.phase, MigrationPhase::Succeeded | MigrationPhase::Failed);
    if deleting {
        if !im.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        if terminal {
            finalizers::remove(&api, im.as_ref(), FINALIZER).await?;
            ctx.metrics.kubernetes_write("InstanceMigration");
            return Ok(Action::await_change());
        }
    } else if !im.finalizers().iter().any(|f| f == FINALIZER) {
        finalizers::ensure(&api, im.as_ref(), FINALIZER).await?;
        ctx.metrics.kubernetes_write("InstanceMigration");
    }
    if terminal && current.observed_generation == im.metadata.generation {
        return Ok(Action::await_change());
    }

    let uid = im.uid().unwrap_or_default();
    let input = Input {
        spec: &im.spec,
        status: im.status.as_ref(),
        generation: im.metadata.generation,
        uid: &uid,
        deleting,
        now: jiff::Timestamp::now(),
    };
    let needs_openstack = !matches!(current.phase, MigrationPhase::Succeeded | MigrationPhase::Failed)
        && planner::validate(&im.spec).is_empty();
    let sessions = if needs_openstack { Some(observe::sessions(&ctx, &im).await) } else { None };
    let observed = match &sessions {
        None => Observed::default(),
        Some(Ok(s)) => match observe::observe(&ctx, s, &im, &current).await {
            Ok(o) => o,
            Err(e) if started(&current) || e.is_transient() => return Err(forget_if_refused(&ctx, &im, e)),
            // Before anything changed, a permanent error (e.g. refused credentials) ends it.
            Err(e) => refused("OpenStackError", e.to_string()),
        },
        Some(Err(e)) if started(&current) => return Err(ReconcileError::Cloud(clone_cloud_error(e))),
        Some(Err(e)) => refused(cloud_reason(e), format!("spec.source: {e}")),
    };
    let decision = planner::plan(&input, &observed);
    publish(&ctx, &im, &current, &decision.status).await?;

    if let (Some(action), Some(Ok(s))) = (decision.action, &sessions) {
        match execute::execute(&ctx, s, &im, &decision.status, action).await {
            Ok(None) => {}
            Ok(Some(made)) => {
                let mut learned = decision.status.clone();
                learned.create_sent_at = None;
                match made {
                    Made::Snapshot(id) => {
                        learned.snapshot =
                            Some(SnapshotStatus { image_id: id, status: "queued".into(), size_bytes: None })
                    }
                    Made::Target(id) => {
                        learned.target =
                            Some(TargetServerStatus { server_id: id, status: "BUILD".into(), ..Default::default() })
                    }
                }
                publish(&ctx, &im, &decision.status, &learned).await?;
            }
            Err(error) if error.is_transient() => return Err(ReconcileError::OpenStack(error)),
            Err(error) => {
                // A change OpenStack refused for good: the planner rolls back or ends.
                let after = Input { status: Some(&decision.status), ..input };
                let failed = planner::fail(&after, "OpenStackError", error.to_string());
                publish(&ctx, &im, &decision.status, &failed.status).await?;
                return Ok(requeue(failed.requeue));
            }
        }
    }
    if deleting && matches!(decision.status.phase, MigrationPhase::Succeeded | MigrationPhase::Failed) {
        finalizers::remove(&api, im.as_ref(), FINALIZER).await?;
        ctx.metrics.kubernetes_write("InstanceMigration");
    }
    Ok(requeue(decision.requeue))
}

fn requeue(after: Option<Duration>) -> Action {
    match after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    }
}

/// Whether the migration has changed anything in OpenStack yet.
fn started(status: &InstanceMigrationStatus) -> bool {
    !matches!(status.phase, MigrationPhase::Pending | MigrationPhase::Recording)
}

fn refused(reason: &'static str, message: String) -> Observed {
    Observed { recording: Some(Err(Refusal { reason, message })), ..Default::default() }
}

fn cloud_reason(e: &CloudError) -> &'static str {
    match e {
        CloudError::SecretNotFound { .. } => "SecretNotFound",
        CloudError::Invalid(_) => "CloudInvalid",
        CloudError::Kube(_) => "KubernetesError",
    }
}

fn clone_cloud_error(e: &CloudError) -> CloudError {
    CloudError::Invalid(e.to_string())
}

/// Credentials refused mid-way may have been rotated: build the session afresh next time.
fn forget_if_refused(ctx: &Context, im: &InstanceMigration, e: crate::openstack::Error) -> ReconcileError {
    if matches!(e, crate::openstack::Error::Auth { .. }) {
        let ns = im.namespace().unwrap_or_default();
        ctx.clouds.forget(&ns, &im.spec.source);
        if let Some(target) = &im.spec.options.target.cloud {
            ctx.clouds.forget(&ns, target);
        }
    }
    ReconcileError::OpenStack(e)
}

/// Writes the status and counts what ended in this change.
async fn publish(
    ctx: &Context,
    im: &InstanceMigration,
    old: &InstanceMigrationStatus,
    new: &InstanceMigrationStatus,
) -> Result<(), ReconcileError> {
    // `old` is what this reconciliation saw or last wrote, so that each transition makes one event.
    status::publish(ctx, im, im.status.as_ref().map(|_| old), new).await?;
    for step in &new.steps {
        let was_open = old
            .steps
            .iter()
            .find(|s| s.name == step.name && s.started_at == step.started_at)
            .is_none_or(|s| s.finished_at.is_none());
        if let (true, Some(finished), StepResult::Succeeded | StepResult::Failed) =
            (was_open, &step.finished_at, step.result)
            && let (Ok(start), Ok(end)) =
                (step.started_at.parse::<jiff::Timestamp>(), finished.parse::<jiff::Timestamp>())
        {
            ctx.metrics.migration_step(&format!("{:?}", step.name), end.duration_since(start).as_secs_f64());
        }
    }
    if old.phase != new.phase {
        match new.phase {
            MigrationPhase::Succeeded => {
                ctx.metrics.migration_ended("succeeded");
                if let Some(seconds) = new.downtime.as_deref().and_then(|d| d.trim_end_matches('s').parse::<f64>().ok())
                {
                    ctx.metrics.migration_downtime(seconds);
                }
            }
            MigrationPhase::Failed => ctx.metrics.migration_ended("failed"),
            _ => {}
        }
    }
    Ok(())
}
