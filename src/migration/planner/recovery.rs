//! A migration that failed past its point of no return (the source deleted, or its addresses
//! moved, with no verified replacement): what it keeps is recorded, a retry enters the failed
//! step again, and deleting the resource waits until the loss is accepted, because its status
//! is the only record of the snapshot, ports and floating IPs.

use std::time::Duration;

use super::Planner;
use crate::api::{
    ACCEPT_LOSS_ANNOTATION, ConditionStatus, InstanceMigrationStatus, MigrationPhase, RETRY_ANNOTATION, Recovery,
    condition_type,
};
use crate::runtime::conditions;

/// Whether a deleted resource may go: its migration has ended, and did not end past its point
/// of no return unless that loss was accepted.
pub fn releasable(status: &InstanceMigrationStatus, loss_accepted: bool) -> bool {
    matches!(status.phase, MigrationPhase::Succeeded | MigrationPhase::Failed)
        && (status.recovery.is_none() || loss_accepted)
}

/// Whether the `osmo.dev/retry` annotation asks a failed migration to retry now.
pub fn retry_requested(status: &InstanceMigrationStatus, retry: Option<&str>) -> bool {
    status.phase == MigrationPhase::Failed
        && status.recovery.as_ref().is_some_and(|r| retry.is_some_and(|v| r.retry_annotation.as_deref() != Some(v)))
}

impl Planner<'_> {
    /// Records what a retry needs, when the migration fails past its point of no return in the
    /// current phase; returns how to go on, for the failure's message.
    pub(super) fn record_recovery(&mut self) -> Option<String> {
        use MigrationPhase::*;
        let phase = self.status.phase;
        if self.status.source.is_none() || matches!(phase, Pending | Recording | RollingBack | Failed | Succeeded) {
            return None;
        }
        let retries = self.status.recovery.as_ref().map_or(0, |r| r.retries);
        // A replacement that failed to boot is replaced by the retry; any other is kept.
        let failed_target = self.status.target.as_ref().filter(|_| phase == Booting).map(|t| t.server_id.clone());
        self.status.recovery =
            Some(Recovery { phase, failed_target, retry_annotation: self.input.retry.map(str::to_string), retries });
        Some(format!(
            "Once the cause is fixed, retry from {phase:?} by giving the annotation {RETRY_ANNOTATION} a new value; \
             to give the server up, set the annotation {ACCEPT_LOSS_ANNOTATION} to this resource's metadata.uid \
             (deleting the resource waits for one of the two)."
        ))
    }

    /// A failed migration: retried when asked; while it is being deleted, held until its loss
    /// is accepted.
    pub(super) fn failed(&mut self) {
        let Some(recovery) = self.status.recovery.clone() else { return };
        if retry_requested(&self.status, self.input.retry) {
            return self.retry(recovery);
        }
        let (status, reason, message) = match (self.input.deleting, self.input.loss_accepted) {
            (true, false) => (
                ConditionStatus::True,
                "LossNotAccepted",
                format!(
                    "This migration failed after its point of no return ({:?}), and its status is the only record \
                     of what remains of the server: the resource stays until it is retried (annotation \
                     {RETRY_ANNOTATION} with a new value) or the loss is accepted (annotation \
                     {ACCEPT_LOSS_ANNOTATION} set to its metadata.uid).",
                    recovery.phase
                ),
            ),
            (_, true) => (ConditionStatus::False, "LossAccepted", "The loss was accepted.".to_string()),
            (false, false) => return,
        };
        let setter = self.conditions();
        setter.set(&mut self.status.conditions, condition_type::DELETION_HELD, status, reason, &message);
    }

    /// Enters the failed phase again, with what the migration kept.
    fn retry(&mut self, recovery: Recovery) {
        let phase = recovery.phase;
        let retry = self.input.retry.unwrap_or_default().to_string();
        self.status.recovery =
            Some(Recovery { retry_annotation: Some(retry.clone()), retries: recovery.retries + 1, ..recovery });
        self.status.last_error = None;
        let message = format!("Retrying from {phase:?} ({RETRY_ANNOTATION}={retry}).");
        let setter = self.conditions();
        setter.set(&mut self.status.conditions, condition_type::FAILED, ConditionStatus::False, "Retrying", &message);
        if conditions::get(&self.status.conditions, condition_type::DELETION_HELD).is_some() {
            let held = condition_type::DELETION_HELD;
            setter.set(&mut self.status.conditions, held, ConditionStatus::False, "Retrying", &message);
        }
        self.status.phase = phase;
        self.status.start_step(phase, self.input.now);
        self.set_progress(phase, phase.description());
        self.requeue = Some(Duration::ZERO);
    }
}
