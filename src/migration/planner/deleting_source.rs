//! DeletingSource: the one destructive step, taken only with what replaces the source verified
//! in the same look, and with Nova seen keeping every volume the source has.

use std::time::Duration;

use super::volumes::VolumesKept;
use super::{Action, Observed, Planner};
use crate::api::{MigrationPhase, Strategy};
use crate::openstack::states::ImageStatus;

impl Planner<'_> {
    pub(super) fn deleting_source(&mut self, observed: &Observed) {
        match &observed.source {
            None => {
                // Gone: a snapshot migration boots at once, with the surviving ports just read
                // (no replacement can exist yet: only Booting makes one).
                self.advance(MigrationPhase::DeletingSource);
                self.phase_step(observed)
            }
            Some(_) if self.timed_out(MigrationPhase::DeletingSource) => {}
            Some(source) if source.is_deleting() => self.poll(),
            Some(source) => {
                // The one destructive step: only with the replacement's material verified now.
                let recorded = self.status.source.clone().unwrap_or_default();
                let snapshot = observed.snapshot.as_ref().filter(|i| i.status == ImageStatus::Active);
                if let Some(image) = snapshot.filter(|i| !i.protected && i.unverified(&recorded).is_none()) {
                    return self.protect_snapshot(&image.id, true);
                }
                let verified = match self.strategy() {
                    // The root volume is what replaces it: it is checked with the other volumes.
                    Strategy::Snapshot if recorded.root_volume().is_some() => true,
                    Strategy::Snapshot => snapshot.is_some_and(|i| i.protected && i.unverified(&recorded).is_none()),
                    Strategy::Redeploy => observed.target.as_ref().is_some_and(|t| t.settled(self.replacement_state())),
                };
                if !verified {
                    return self.fail_knowing(
                        "ReplacementNotVerified",
                        format!(
                            "refusing to delete source server {}: what replaces it is not verified to exist",
                            source.id
                        ),
                        true,
                    );
                }
                match self.volumes_kept(observed) {
                    VolumesKept::Yes => self.delete_source(),
                    VolumesKept::NotSeen => self.requeue = Some(Duration::ZERO),
                    VolumesKept::WouldDelete(volume_id) => {
                        self.action = Some(Action::SetDeleteOnTermination {
                            server_id: source.id.clone(),
                            volume_id,
                            delete: false,
                        });
                        self.requeue = Some(Duration::ZERO);
                    }
                    VolumesKept::Changed(problem) => self.fail_knowing(
                        "VolumesChanged",
                        format!("refusing to delete source server {}: {problem}", source.id),
                        true,
                    ),
                }
            }
        }
    }

    pub(super) fn delete_source(&mut self) {
        self.action = Some(Action::DeleteSource { server_id: self.source_id() });
        self.poll();
    }
}
