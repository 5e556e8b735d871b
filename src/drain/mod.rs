//! The ComputeNodeDrain controller: read the resource, let the planner decide its status, write it.

pub mod planner;

use std::sync::Arc;

use kube::runtime::controller::Action;

use crate::api::{ComputeNodeDrain, ComputeNodeDrainStatus, Condition};
use crate::runtime::status::HasConditions;
use crate::runtime::{Context, ReconcileError, reconcile_status};

/// Held on every ComputeNodeDrain so that its deletion passes through the operator.
pub const FINALIZER: &str = "osmo.dev/compute-node-drain";

impl HasConditions for ComputeNodeDrain {
    type Status = ComputeNodeDrainStatus;
    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }
}

pub async fn reconcile(drain: Arc<ComputeNodeDrain>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    reconcile_status(drain, &ctx, FINALIZER, |drain, now| {
        planner::plan(&drain.spec, drain.status.as_ref(), drain.metadata.generation, now)
    })
    .await
}
