//! Recording: the source is read and recorded, and whatever would make the move fail once the
//! source is deleted is refused here, before anything changes.

use super::{Observed, Planner, ServerState, TargetView};
use crate::api::{MigrationPhase, RecordedServer, Strategy};
use crate::migration::states::ServerStatus;
use crate::runtime::conditions::Refusal;

impl Planner<'_> {
    pub(super) fn recording(&mut self, observed: &Observed) {
        let record = match &observed.recording {
            None => return self.poll(),
            Some(Err(refusal)) => return self.refuse(refusal),
            Some(Ok(_)) if self.input.deleting => {
                return self
                    .finish_failed("Deleted", "The resource was deleted before the migration changed anything.");
            }
            // The target's nova-network addresses come with the record.
            Some(Ok(_)) if self.nova_network() && observed.nova_network.is_none() => return self.poll(),
            Some(Ok(record)) => record,
        };
        if let Some(problem) = self.unavailable_address(record, observed) {
            let refusal = Refusal { reason: "AddressUnavailable", message: format!("{problem}.") };
            return self.refuse(&refusal);
        }
        let base = match &observed.boot {
            None => return self.poll(),
            Some(Err(refusal)) => return self.refuse(refusal),
            Some(Ok(base)) => base.clone(),
        };
        let Some(view) = &observed.target_view else { return self.poll() };
        if let Some(refusal) = self.boot_refusal(record, view) {
            return self.refuse(&refusal);
        }
        let loss = self.ephemeral_data_loss(record);
        if let Some((reason, loss)) = &loss
            && !self.input.spec.options.accept_ephemeral_data_loss
        {
            let message = format!("{loss}. Set spec.acceptEphemeralDataLoss to migrate it without that data.");
            return self.refuse(&Refusal { reason, message });
        }
        self.status.accepted_data_loss = loss.map(|(_, loss)| format!("{loss} (spec.acceptEphemeralDataLoss)."));
        self.status.source = Some(record.clone());
        self.status.acting_project_id = observed.acting_project.clone();
        self.status.boot_base = Some(base);
        self.advance(MigrationPhase::Recording);
        if !(self.input.spec.options.stop_source && ServerStatus::from(record.status.as_str()) == ServerStatus::Active)
        {
            // Nothing to stop: skip straight to the phase after Stopping.
            self.mark_skipped(MigrationPhase::Stopping);
            self.advance(MigrationPhase::Stopping);
        }
        // The source was read just now, idle (a busy one is refused): the next phase makes its
        // first change from that. Nothing was made yet that another look could find.
        let seen = ServerState { id: record.id.clone(), status: record.status.as_str().into(), ..Default::default() };
        self.phase_step(&Observed { source: Some(seen), ..Default::default() });
    }

    /// Ends a migration that cannot start, before anything changed.
    fn refuse(&mut self, refusal: &Refusal) {
        self.status.steps.retain(|s| s.name != MigrationPhase::Recording);
        self.finish_failed(refusal.reason, &format!("{} Nothing was changed.", refusal.message));
        self.status.last_error = Some(refusal.message.clone());
    }

    /// What would make the replacement's boot fail, once the source is deleted.
    fn boot_refusal(&self, record: &RecordedServer, view: &TargetView) -> Option<Refusal> {
        if let Some(key) = &record.key_name
            && view.key_pair_found != Some(true)
        {
            let options = &self.input.spec.options;
            let cloud = options.target.cloud.as_ref().unwrap_or(&self.input.spec.source);
            return Some(Refusal {
                reason: "KeyPairNotUsable",
                message: format!(
                    "the source's key pair {key:?} is not visible to the credentials of cloud {} in the target: a key \
                     pair belongs to the user who made it, in one Nova, and Nova refuses to boot the replacement \
                     with another user's. Migrate with the credentials of the key pair's owner, or import the same \
                     public key as {key:?} for this user in the target",
                    cloud.cloud
                ),
            });
        }
        // Nova boots from a snapshot only on a flavor whose disk holds the snapshot's min_disk
        // (the source flavor's root disk; its image's own min_disk is not known, the check
        // then passes) and whose memory holds its min_ram (the source image's).
        let min_disk = record.flavor_size.as_ref().map_or(0, |size| size.disk_gb);
        let min_ram = view.image_min_ram_mb.unwrap_or(0);
        let disk_short = view.flavor_disk_gb != 0 && view.flavor_disk_gb < min_disk;
        let from_snapshot = self.strategy() == Strategy::Snapshot;
        if from_snapshot && (disk_short || view.flavor_ram_mb < min_ram) {
            return Some(Refusal {
                reason: "FlavorTooSmall",
                message: format!(
                    "the replacement's flavor has {} GiB of disk and {} MiB of memory, and the snapshot of server \
                     {} needs at least {min_disk} GiB (the source flavor's root disk) and {min_ram} MiB (its \
                     image's min_ram): map the flavor to a larger one in spec.mappings.flavors",
                    view.flavor_disk_gb, view.flavor_ram_mb, record.id
                ),
            });
        }
        None
    }

    /// What the replacement would lack, with the reason to refuse it: the data on the flavor's
    /// ephemeral disk, which a snapshot does not hold (a redeploy keeps no data anyway).
    fn ephemeral_data_loss(&self, record: &RecordedServer) -> Option<(&'static str, String)> {
        if self.strategy() != Strategy::Snapshot {
            return None;
        }
        let flavor = record.flavor_name.as_ref().or(record.flavor_id.as_ref()).cloned().unwrap_or_default();
        match &record.flavor_size {
            Some(size) if size.ephemeral_gb == 0 => None,
            Some(size) => Some((
                "EphemeralDisk",
                format!(
                    "flavor {flavor:?} of server {} has an ephemeral disk of {} GiB, which a snapshot does not \
                     hold: its data would be lost",
                    record.id, size.ephemeral_gb
                ),
            )),
            // Not known is not none: fail closed.
            None => Some((
                "EphemeralDiskUnknown",
                format!(
                    "whether flavor {flavor:?} of server {} has an ephemeral disk cannot be checked (Nova shows a \
                     server's flavor sizes from microversion 2.47): data on one would be lost",
                    record.id
                ),
            )),
        }
    }
}
