//! RollingBack: a failure while the source exists is undone (the replacement and the ports
//! osmo made for it, or the snapshot, deleted; its volumes' `delete_on_termination` given back;
//! the source started again if it was running). Without the source, the snapshot is kept: it
//! may be the server's only copy.

use std::time::Duration;

use super::{Action, Observed, Planner};
use crate::api::{ConditionStatus, MigrationPhase, Strategy, condition_type};
use crate::openstack::states::{ImageStatus, ServerStatus};

impl Planner<'_> {
    /// The resource is deleted while the source still exists: undo and stop.
    pub(super) fn abort(&mut self) {
        let message = "The resource was deleted; the migration stops and the source is left running.".to_string();
        self.status.last_error = Some(message.clone());
        self.status.fail_running_step(self.input.now, &message);
        self.status.phase = MigrationPhase::RollingBack;
        self.status.start_step(MigrationPhase::RollingBack, self.input.now);
        let failed = (condition_type::FAILED, ConditionStatus::Unknown);
        self.conditions().set(&mut self.status.conditions, failed.0, failed.1, "Deleted", &message);
        self.set_progress(
            MigrationPhase::RollingBack,
            "Undoing: the source is restarted if it was running and the snapshot deleted.",
        );
        self.requeue = Some(Duration::ZERO);
    }

    pub(super) fn rolling_back(&mut self, observed: &Observed) {
        if self.timed_out_quietly() {
            return self.finish_failed(
                "RollbackTimeout",
                &format!("Rolling back took too long. {}", self.what_remains_before_deletion(observed)),
            );
        }
        if let Some(target) = &observed.target
            && self.strategy() == Strategy::Redeploy
        {
            self.action = Some(Action::DeleteTarget { server_id: target.id.clone() });
            return self.poll();
        }
        // Nova deletes only the ports it made: those osmo made for the replacement go after it.
        if let Some(made) = observed.created_ports.values().next() {
            self.action = Some(Action::DeletePort { port_id: made.id.clone() });
            return self.poll();
        }
        self.status.target_ports.retain(|p| !p.origin.made_by_osmo());
        if let Some(image) = &observed.snapshot
            && !image.status.is_gone()
        {
            if observed.source.is_none() {
                // Without the source the snapshot may be the server's only copy: it is kept
                // (protected, if it was).
                let message = format!(
                    "{}. The source server no longer exists: its snapshot {} is kept (delete it once it is no \
                     longer needed).",
                    self.status.last_error.as_deref().unwrap_or("Failed").trim_end_matches('.'),
                    image.id
                );
                self.status.finish_running_step(self.input.now);
                return self.finish_failed(&self.failure_reason(), &message);
            }
            if image.protected {
                return self.protect_snapshot(&image.id, false);
            }
            self.action = Some(Action::DeleteSnapshot { image_id: image.id.clone() });
            return self.poll();
        }
        // A redeployed source gets its data volumes back, once the fresh server let them go.
        match self.reattach_volume(observed) {
            Ok(Some(action)) => {
                self.action = Some(action);
                return self.poll();
            }
            Err(()) => return self.poll(),
            Ok(None) => {}
        }
        // Nova deletes the volumes with the source again where it did before.
        let restore = observed
            .source
            .as_ref()
            .and_then(|s| self.restore_delete_on_termination(&s.id, observed.source_attachments.as_deref()));
        if let Some(action) = restore {
            self.action = Some(action);
            return self.poll();
        }
        if let Some(s) = observed.source.as_ref().filter(|s| s.locked && self.status.source_locked) {
            // Given back as it was: without osmo's lock, before it is started again.
            self.action = Some(Action::UnlockSource { server_id: s.id.clone() });
            return self.poll();
        }
        let was_running =
            self.status.source.as_ref().is_some_and(|s| ServerStatus::from(s.status.as_str()) == ServerStatus::Active);
        match &observed.source {
            Some(s) if was_running && s.settled(ServerStatus::Shutoff) => {
                self.action = Some(Action::StartSource { server_id: s.id.clone() });
                self.poll();
            }
            Some(s) if was_running && s.status != ServerStatus::Active => self.poll(),
            Some(s) if s.task_state.is_some() => self.poll(),
            // A create sent may still land: it is looked for (and deleted) until its fence ends.
            _ if self.create_in_flight() => self.poll(),
            _ => {
                if let Some(snapshot) = self.status.snapshot.as_mut() {
                    snapshot.status = ImageStatus::Deleted.to_string();
                }
                let reason = self.failure_reason();
                let error = self.status.last_error.clone().unwrap_or_default();
                let source = if observed.source.is_some() {
                    "The source server is as it was."
                } else {
                    "The source server no longer exists."
                };
                let message = format!("{}. {source}", error.trim_end_matches('.'));
                self.status.finish_running_step(self.input.now);
                self.finish_failed(&reason, message.trim());
            }
        }
    }

    fn timed_out_quietly(&self) -> bool {
        self.step_watched() > MigrationPhase::RollingBack.timeout(&self.input.spec.options.timeouts)
    }

    fn what_remains_before_deletion(&self, observed: &Observed) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &observed.source {
            parts.push(format!("source server {} is {}", s.id, s.status));
        }
        if let Some(i) = &observed.snapshot {
            parts.push(format!("snapshot {} is {}", i.id, i.status));
        }
        format!("What remains: {}.", parts.join("; "))
    }
}
