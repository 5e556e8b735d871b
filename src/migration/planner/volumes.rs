//! The source's volumes: moved, never copied, never deleted. Nova is seen keeping each before
//! the source is deleted; each is booted with by the replacement once free of the source (a
//! redeployed source has its data volumes detached first); each gets its
//! `delete_on_termination` back once the move is verified; a rollback puts each back on the
//! source as it was.

use std::time::Duration;

use super::{Action, AttachmentState, BootVolume, Observed, Planner};
use crate::api::{MigrationPhase, NotKept, RecordedVolume, Strategy};
use crate::openstack::states::VolumeStatus;

/// Whether Nova keeps the source's volumes when it deletes the source, as one look shows.
pub(super) enum VolumesKept {
    Yes,
    /// The source's attachments were not looked at yet.
    NotSeen,
    /// Nova would delete this volume with the source.
    WouldDelete(String),
    /// Not as recorded: a volume detached, attached elsewhere, or attached since.
    Changed(String),
}

impl Planner<'_> {
    /// Whether the look shows Nova keeping every recorded volume when it deletes the source: of a
    /// `Snapshot` move, each is in Cinder, attached to the source alone and not deleted with it;
    /// a redeployed source, deleted last, has only its root volume (if it boots from one: the
    /// fresh server has its own, and the source's goes as Nova says), its data volumes are on the
    /// replacement. A volume attached since Recording, which nothing would move, stops it.
    pub(super) fn volumes_kept(&self, observed: &Observed) -> VolumesKept {
        let Some(record) = &self.status.source else { return VolumesKept::Yes };
        if record.volumes.is_empty() {
            return VolumesKept::Yes;
        }
        let (Some(attachments), Some(seen_volumes)) = (&observed.source_attachments, &observed.volumes) else {
            return VolumesKept::NotSeen;
        };
        if let Some(extra) = attachments.iter().find(|a| !record.volumes.iter().any(|v| v.id == a.volume_id)) {
            return VolumesKept::Changed(format!(
                "volume {} was attached to it after it was recorded",
                extra.volume_id
            ));
        }
        if self.strategy() == Strategy::Redeploy {
            let data = record.volumes.iter().filter(|v| !v.root);
            return match data.into_iter().find(|v| attachments.iter().any(|a| a.volume_id == v.id)) {
                Some(volume) => VolumesKept::Changed(format!("data volume {} is attached to it again", volume.id)),
                None => VolumesKept::Yes,
            };
        }
        for volume in &record.volumes {
            let Some(attachment) = attachments.iter().find(|a| a.volume_id == volume.id) else {
                return VolumesKept::Changed(format!("volume {} is no longer attached to it", volume.id));
            };
            match seen_volumes.get(&volume.id) {
                None => return VolumesKept::Changed(format!("volume {} is gone from Cinder", volume.id)),
                Some(seen) if seen.attached_to.iter().any(|server| *server != record.id) => {
                    return VolumesKept::Changed(format!(
                        "volume {} is attached to server {} too",
                        volume.id,
                        seen.attached_to.join(", ")
                    ));
                }
                Some(_) => {}
            }
            if attachment.delete_on_termination != Some(false) {
                return VolumesKept::WouldDelete(volume.id.clone());
            }
        }
        VolumesKept::Yes
    }

    /// The change that puts a volume that left the source back on it as it was (a rollback of a
    /// redeploy, once the fresh server is gone), if one is due; `Err(())` while one is still
    /// being detached from the fresh server or attached. A volume gone from Cinder, or taken by
    /// another server meanwhile, cannot be: the failure says so.
    pub(super) fn reattach_volume(&mut self, observed: &Observed) -> Result<Option<Action>, ()> {
        let (Some(record), Some(source)) = (self.status.source.clone(), &observed.source) else { return Ok(None) };
        if record.volumes.is_empty() {
            return Ok(None);
        }
        // Not looked at yet: the next look shows them.
        let (Some(attachments), Some(seen_volumes)) = (&observed.source_attachments, &observed.volumes) else {
            return Err(());
        };
        let replacement = self.status.target.as_ref().map(|t| t.server_id.as_str());
        for volume in record.volumes.iter().filter(|v| !attachments.iter().any(|a| a.volume_id == v.id)) {
            let seen = seen_volumes.get(&volume.id);
            let lost = match seen {
                None => format!("volume {} is gone from Cinder and was not attached back", volume.id),
                Some(seen) if seen.status == VolumeStatus::Available => {
                    return Ok(Some(Action::AttachVolume {
                        server_id: source.id.clone(),
                        volume: on_server(volume, volume.delete_on_termination),
                    }));
                }
                // On its way: off the fresh server, or onto the source.
                Some(seen)
                    if matches!(
                        seen.status,
                        VolumeStatus::Detaching | VolumeStatus::Attaching | VolumeStatus::Reserved
                    ) || seen.attached_to.iter().all(|s| Some(s.as_str()) == replacement || *s == source.id) =>
                {
                    return Err(());
                }
                Some(seen) => format!(
                    "volume {} is {} on server {} and was not attached back",
                    volume.id,
                    seen.status,
                    seen.attached_to.join(", ")
                ),
            };
            let error = self.status.last_error.get_or_insert_default();
            if !error.contains(&lost) {
                error.push_str(&format!("; {lost}"));
            }
        }
        Ok(None)
    }

    /// The recorded volumes to boot the replacement with (`Snapshot`: all; `Redeploy`: the data
    /// volumes, as a fresh server has a root disk of its own), once Cinder shows each free of the
    /// source: Nova detaches them from a deleted source in the background; a redeployed source,
    /// still there, has them detached first, one at a time. `None` while one is not free, or once
    /// the migration failed for one.
    pub(super) fn volumes_to_attach(&mut self, observed: &Observed) -> Option<Vec<BootVolume>> {
        let record = self.status.source.clone()?;
        let redeploy = self.strategy() == Strategy::Redeploy;
        let moving = record.volumes.iter().filter(|v| !(redeploy && v.root));
        // Root first: Nova boots from the block device of boot index 0.
        let (roots, data): (Vec<_>, Vec<_>) = moving.partition(|v| v.root);
        if roots.is_empty() && data.is_empty() {
            return Some(Vec::new());
        }
        // Decided from the look that ended the phase before: Cinder is looked at first.
        let Some(seen_volumes) = &observed.volumes else {
            self.requeue = Some(Duration::ZERO);
            return None;
        };
        let mut volumes = Vec::new();
        let mut waiting = false;
        for volume in roots.into_iter().chain(data) {
            let Some(seen) = seen_volumes.get(&volume.id) else {
                self.fail("VolumeLost", format!("volume {} of the source is gone from Cinder", volume.id));
                return None;
            };
            let on_source_only = seen.attached_to.iter().all(|server| *server == record.id);
            match &seen.status {
                VolumeStatus::Available => {}
                VolumeStatus::Error | VolumeStatus::ErrorDeleting | VolumeStatus::Deleting => {
                    self.fail(
                        "VolumeFailed",
                        format!("volume {} of the source is {} in Cinder", volume.id, seen.status),
                    );
                    return None;
                }
                VolumeStatus::InUse if redeploy && on_source_only && !seen.attached_to.is_empty() => {
                    self.action =
                        Some(Action::DetachVolume { server_id: record.id.clone(), volume_id: volume.id.clone() });
                    self.poll();
                    return None;
                }
                // Being detached from the source.
                _ if on_source_only => waiting = true,
                _ => {
                    let others = seen.attached_to.join(", ");
                    self.fail(
                        "VolumeTaken",
                        format!("volume {} of the source was attached to server {others} meanwhile", volume.id),
                    );
                    return None;
                }
            }
            volumes.push(on_server(volume, false));
        }
        if waiting {
            if !self.timed_out(MigrationPhase::Booting) {
                self.poll();
            }
            return None;
        }
        Some(volumes)
    }

    /// Why the look does not show every recorded volume attached to the replacement, if it
    /// does not. A device Nova chose otherwise (it may ignore the one asked for) is noted.
    pub(super) fn volumes_not_attached(&mut self, attachments: &[AttachmentState]) -> Option<String> {
        let record = self.status.source.clone()?;
        // A redeployed server has a fresh root disk of its own.
        let redeploy = self.strategy() == Strategy::Redeploy;
        for volume in record.volumes.iter().filter(|v| !(redeploy && v.root)) {
            let Some(attachment) = attachments.iter().find(|a| a.volume_id == volume.id) else {
                return Some(format!("volume {} of the source is not attached to it", volume.id));
            };
            if let (Some(asked), Some(given)) = (&volume.device, &attachment.device)
                && asked != given
            {
                let attribute = format!("volumes[{}].device", volume.id);
                if !self.status.not_kept.iter().any(|n| n.attribute == attribute) {
                    self.status.not_kept.push(NotKept {
                        attribute,
                        reason: format!("Nova attached it as {given}, not {asked} as on the source"),
                    });
                }
            }
        }
        None
    }

    /// The change that gives a volume its recorded `delete_on_termination` back on `server_id`
    /// (the verified replacement, or the source a rollback gives back), if one is due: osmo made
    /// it false before the source could be deleted. Where the target's Nova cannot change it,
    /// Recording noted that it is not kept.
    pub(super) fn restore_delete_on_termination(
        &self,
        server_id: &str,
        attachments: Option<&[AttachmentState]>,
    ) -> Option<Action> {
        let record = self.status.source.as_ref()?;
        let attachments = attachments?;
        let due = record.volumes.iter().filter(|v| v.delete_on_termination).filter(|v| {
            let attribute = delete_on_termination_attribute(&v.id);
            !self.status.not_kept.iter().any(|n| n.attribute == attribute)
        });
        due.into_iter().find_map(|volume| {
            let attachment = attachments.iter().find(|a| a.volume_id == volume.id)?;
            (attachment.delete_on_termination == Some(false)).then(|| Action::SetDeleteOnTermination {
                server_id: server_id.to_string(),
                volume_id: volume.id.clone(),
                delete: true,
            })
        })
    }
}

/// The recorded volume attached as the source had it, deleted with its server as `delete` says.
fn on_server(volume: &RecordedVolume, delete: bool) -> BootVolume {
    BootVolume {
        volume_id: volume.id.clone(),
        root: volume.root,
        device: volume.device.clone(),
        tag: volume.tag.clone(),
        delete_on_termination: delete,
    }
}

/// How `status.notKept` names a volume's `delete_on_termination`.
pub(super) fn delete_on_termination_attribute(volume_id: &str) -> String {
    format!("volumes[{volume_id}].deleteOnTermination")
}
