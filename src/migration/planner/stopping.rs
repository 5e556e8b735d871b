//! Stopping: the source is shut off, so that the snapshot holds all its data.

use super::{Action, Observed, Planner};
use crate::api::MigrationPhase;
use crate::openstack::states::ServerStatus;

impl Planner<'_> {
    pub(super) fn stopping(&mut self, observed: &Observed) {
        if self.input.deleting {
            return self.abort();
        }
        match &observed.source {
            None => self
                .fail("SourceVanished", format!("source server {} disappeared while being stopped", self.source_id())),
            Some(s) if s.settled(ServerStatus::Shutoff) => {
                // Seen off and idle just now: the snapshot (or the replacement) is made at once;
                // nothing of it can exist yet, as only the next phase makes it.
                self.advance(MigrationPhase::Stopping);
                self.phase_step(observed)
            }
            Some(s) if s.status == ServerStatus::Error => {
                self.fail("SourceError", format!("source server {} is in ERROR", s.id))
            }
            Some(_) if self.timed_out(MigrationPhase::Stopping) => {}
            Some(s) => {
                if s.task_state.is_none() {
                    self.action = Some(Action::StopSource { server_id: s.id.clone() });
                }
                self.poll();
            }
        }
    }
}
