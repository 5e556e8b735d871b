//! The InstanceMigration controller: read the resource, let the planner decide its status, write it.

pub mod planner;

use std::sync::Arc;

use kube::runtime::controller::Action;

use crate::api::{Condition, InstanceMigration, InstanceMigrationStatus};
use crate::runtime::status::HasConditions;
use crate::runtime::{Context, ReconcileError, reconcile_status};

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
    reconcile_status(im, &ctx, FINALIZER, |im, now| {
        planner::plan(&im.spec, im.status.as_ref(), im.metadata.generation, now)
    })
    .await
}
