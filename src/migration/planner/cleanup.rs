//! CleaningUp: the move is verified; the snapshot is unprotected and deleted (or kept). A
//! snapshot that will not go is noted, never a failure.

use super::{Action, Observed, Planner};
use crate::api::{MigrationPhase, SnapshotCleanup};
use crate::openstack::states::ImageStatus;

impl Planner<'_> {
    pub(super) fn cleaning_up(&mut self, observed: &Observed) {
        if let (Some(image), Some(recorded)) = (&observed.snapshot, self.status.snapshot.as_mut()) {
            recorded.protected = image.protected;
        }
        // The replacement is verified: the snapshot is no longer the only copy, and its
        // protection goes, whether it is kept or deleted.
        if let Some(snapshot) = self.status.snapshot.as_ref().filter(|s| s.protected) {
            let id = snapshot.image_id.clone();
            return self.protect_snapshot(&id, false);
        }
        if self.input.spec.options.snapshot_cleanup == SnapshotCleanup::Retain {
            return self.advance(MigrationPhase::CleaningUp);
        }
        match &observed.snapshot {
            // A volume-backed server has no snapshot.
            None if self.status.snapshot.is_none() => self.advance(MigrationPhase::CleaningUp),
            None => {
                if let Some(s) = self.status.snapshot.as_mut() {
                    s.status = ImageStatus::Deleted.to_string();
                }
                self.advance(MigrationPhase::CleaningUp)
            }
            Some(image) if image.status.is_gone() => {
                if let Some(s) = self.status.snapshot.as_mut() {
                    s.status = image.status.to_string();
                }
                self.advance(MigrationPhase::CleaningUp)
            }
            Some(image)
                if self.step_elapsed() > MigrationPhase::CleaningUp.timeout(&self.input.spec.options.timeouts) =>
            {
                // The server has moved: a snapshot that will not go is worth a note, not a failure.
                self.status.last_error =
                    Some(format!("snapshot {} could not be deleted in time; delete it by hand", image.id));
                self.advance(MigrationPhase::CleaningUp)
            }
            Some(image) => {
                self.action = Some(Action::DeleteSnapshot { image_id: image.id.clone() });
                self.poll();
            }
        }
    }
}
