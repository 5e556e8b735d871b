//! Snapshotting: the source's snapshot is made, verified and protected, and the source is
//! deleted from the look that sees it so.

use std::time::Duration;

use super::{Action, Observed, Planner};
use crate::api::{MigrationPhase, SnapshotStatus};
use crate::openstack::states::ImageStatus;

impl Planner<'_> {
    pub(super) fn snapshotting(&mut self, observed: &Observed) {
        if self.input.deleting {
            return self.abort();
        }
        if self.status.source.as_ref().is_some_and(|r| r.root_volume().is_some()) {
            // Its root disk is a volume, which the replacement boots from: nothing to copy.
            self.mark_skipped(MigrationPhase::Snapshotting);
            self.advance(MigrationPhase::Snapshotting);
            return self.phase_step(observed);
        }
        if let Some(image) = &observed.snapshot {
            self.status.snapshot = Some(SnapshotStatus {
                image_id: image.id.clone(),
                status: image.status.to_string(),
                size_bytes: image.size,
                protected: image.protected,
            });
            self.status.create_sent_at = None;
        }
        // The source is looked at only when the snapshot is to be made.
        let source_vanished = || format!("source server {} disappeared during its snapshot", self.source_id());
        match (&observed.snapshot, &observed.source) {
            (None, _) if self.status.snapshot.is_some() => {
                self.fail("SnapshotLost", "the snapshot disappeared from Glance before it was active".into())
            }
            (None, None) => self.fail("SourceVanished", source_vanished()),
            (None, Some(source)) if !source.locked && source.task_state.is_none() && !self.create_in_flight() => {
                // Off from now on: nobody starts it and writes what the snapshot would not hold.
                // Nova's answer shows the lock, and the snapshot is made from this look.
                self.status.source_locked = true;
                self.action = Some(Action::LockSource { server_id: source.id.clone() });
                self.requeue = Some(Duration::ZERO);
            }
            (None, Some(source)) => {
                if source.task_state.is_none() && !self.create_in_flight() {
                    let name =
                        format!("osmo-{}", self.status.source.as_ref().map(|s| s.name.as_str()).unwrap_or("server"));
                    self.send_create(Action::CreateSnapshot { server_id: source.id.clone(), name });
                }
                self.poll();
            }
            (Some(image), _) if image.status == ImageStatus::Killed || image.status.is_gone() => {
                self.fail("SnapshotFailed", format!("snapshot {} ended {} in Glance", image.id, image.status))
            }
            (Some(image), _) if image.status == ImageStatus::Active => {
                let recorded = self.status.source.clone().unwrap_or_default();
                if let Some(why) = image.unverified(&recorded) {
                    return self.fail("SnapshotNotVerified", why);
                }
                // About to be the only copy: nobody may delete it until the replacement is verified.
                if !image.protected {
                    return self.protect_snapshot(&image.id, true);
                }
                // Glance holds the whole snapshot, protected: the source is deleted from this
                // very look. Nova deletes a server whatever task it is finishing, and keeps an
                // active snapshot of a server deleted during its upload; a source already gone
                // makes the deletion a no-op. A source with volumes is looked at first: Nova
                // must be seen keeping them.
                self.advance(MigrationPhase::Snapshotting);
                if recorded.volumes.is_empty() {
                    self.delete_source()
                }
            }
            _ if self.timed_out(MigrationPhase::Snapshotting) => {}
            _ => self.poll(),
        }
    }

    /// Protects the snapshot (or lifts that); Glance's answer shows the outcome, and the
    /// decision goes on from it at once.
    pub(super) fn protect_snapshot(&mut self, image_id: &str, protected: bool) {
        self.action = Some(Action::ProtectSnapshot { image_id: image_id.to_string(), protected });
        self.requeue = Some(Duration::ZERO);
    }
}
