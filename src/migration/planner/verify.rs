//! Verifying: the replacement is `ACTIVE` with every address, seen in one look; downtime is
//! measured up to it.

use std::time::Duration;

use super::{Action, Observed, Planner};
use crate::api::{MigrationPhase, SnapshotCleanup, StepRecord, StepResult, Strategy};
use crate::openstack::states::ServerStatus;

impl Planner<'_> {
    pub(super) fn verifying(&mut self, observed: &Observed) {
        let Some(target) = &observed.target else {
            return self.fail("ReplacementVanished", "the replacement disappeared before it was verified".into());
        };
        self.record_target(target);
        let has_volumes = self.status.source.as_ref().is_some_and(|r| !r.volumes.is_empty());
        let attachments = match &observed.target_attachments {
            // Decided from the look that ended the phase before: the volumes are looked at first.
            None if has_volumes => return self.requeue = Some(Duration::ZERO),
            attachments => attachments.as_deref().unwrap_or_default(),
        };
        // A source that was off comes back off: the replacement (which Nova boots running) is
        // stopped once it has its addresses, and verified off.
        let verified_state = self.replacement_state();
        let was_off = verified_state == ServerStatus::Shutoff;
        let stopping = was_off && target.status == ServerStatus::Active && target.task_state.is_some();
        if !(target.settled(verified_state.clone()) || (was_off && target.settled(ServerStatus::Active)) || stopping) {
            return self.fail("ReplacementNotActive", format!("replacement {} is {}", target.id, target.status));
        }
        if !self.addresses_in_place(observed, &target.id) {
            return self.fail("AddressesNotMoved", "a floating IP is not on the replacement".into());
        }
        if let Some(problem) = self.volumes_not_attached(attachments) {
            return self.fail("VolumesNotAttached", format!("replacement {}: {problem}", target.id));
        }
        if !target.settled(verified_state) {
            if self.timed_out(MigrationPhase::Verifying) {
                return;
            }
            if !stopping {
                self.action = Some(Action::StopTarget { server_id: target.id.clone() });
            }
            return self.poll();
        }
        // Verified, for good (the source cannot come back): each volume is deleted with it
        // again where it was with the source.
        if let Some(action) = self.restore_delete_on_termination(&target.id, observed.target_attachments.as_deref()) {
            self.action = Some(action);
            return self.requeue = Some(Duration::ZERO);
        }
        self.record_downtime();
        self.advance(MigrationPhase::Verifying);
        match (self.status.phase, &self.status.snapshot, &observed.source) {
            // Verified just now: the snapshot goes (deleting one already gone is harmless).
            (MigrationPhase::CleaningUp, Some(snapshot), _)
                if self.input.spec.options.snapshot_cleanup == SnapshotCleanup::Delete && !snapshot.protected =>
            {
                self.action = Some(Action::DeleteSnapshot { image_id: snapshot.image_id.clone() });
                self.poll();
            }
            // A retained or protected snapshot needs no look.
            (MigrationPhase::CleaningUp, ..) => self.phase_step(observed),
            // A redeployed source goes last, decided from this look at it and at its
            // replacement; unseen, it is looked at again first.
            (MigrationPhase::DeletingSource, _, Some(_)) => self.phase_step(observed),
            _ => {}
        }
    }

    /// The state a verified replacement is in: the source's, when recorded (`SHUTOFF` or
    /// `ACTIVE`; others are refused at Recording).
    pub(super) fn replacement_state(&self) -> ServerStatus {
        match self.status.source.as_ref().map(|s| ServerStatus::from(s.status.as_str())) {
            Some(ServerStatus::Shutoff) => ServerStatus::Shutoff,
            _ => ServerStatus::Active,
        }
    }

    /// Downtime: from the source's stop (or deletion, when it was not running) to the
    /// replacement verified with its addresses.
    fn record_downtime(&mut self) {
        let started = self
            .status
            .steps
            .iter()
            .find(|s| s.name == MigrationPhase::Stopping && s.result != StepResult::Skipped)
            // Not stopped first: a redeployed source serves until its addresses move; a
            // snapshotted one until it is deleted.
            .or_else(|| {
                let down_from = match self.strategy() {
                    Strategy::Redeploy => MigrationPhase::MovingAddresses,
                    Strategy::Snapshot => MigrationPhase::DeletingSource,
                };
                self.status.steps.iter().find(|s| s.name == down_from)
            })
            .and_then(StepRecord::started);
        if let Some(start) = started {
            let seconds = self.input.now.duration_since(start).as_secs_f64().max(0.0);
            self.status.downtime = Some(format!("{seconds:.1}s"));
        }
    }
}
