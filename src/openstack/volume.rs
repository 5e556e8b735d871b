//! Cinder v3: the volumes a server boots from or carries, as Cinder sees them.

use reqwest::Method;
use serde::Deserialize;

use super::compute::lenient_bool;
use super::error::{Error, Service};
use super::session::{Microversion, Request, Session};
use super::states::VolumeStatus;

/// The newest Cinder microversion osmo has been tested against (2023.1 and newer Cinders
/// have it). A volume shows its attachments with their IDs, `multiattach` and `encrypted`
/// at every 3.x microversion; a newer one is asked for only to read what Cinder says as
/// that release says it.
pub const NEWEST_SUPPORTED: Microversion = Microversion(3, 71);

/// A volume.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Volume {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(deserialize_with = "volume_status")]
    pub status: VolumeStatus,
    /// GiB.
    pub size: u64,
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The volume type's name.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Whether it may be attached to several servers at once.
    #[serde(default)]
    pub multiattach: bool,
    /// Whether its data is encrypted with a key in the key manager.
    #[serde(default)]
    pub encrypted: bool,
    /// Whether a server may boot from it (Cinder says `"true"` or `"false"`).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub bootable: bool,
    #[serde(default)]
    pub attachments: Vec<VolumeAttachmentRecord>,
}

/// One attachment of a volume, as Cinder records it.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VolumeAttachmentRecord {
    pub server_id: String,
    /// The Cinder attachment's ID (absent from attachments made by the legacy
    /// `os-attach` flow of old Novas).
    #[serde(default)]
    pub attachment_id: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
}

/// Cinder, through a session.
pub struct BlockStorage<'a> {
    session: &'a Session,
}

impl Session {
    pub fn block_storage(&self) -> BlockStorage<'_> {
        BlockStorage { session: self }
    }
}

impl BlockStorage<'_> {
    async fn request(&self, method: Method, path: impl Into<String>) -> Result<Request, Error> {
        let request = Request::new(Service::BlockStorage, method, path);
        Ok(match self.session.block_storage_microversion().await? {
            Some(v) => request.microversion(v),
            None => request,
        })
    }

    /// A volume, or `None` when it does not exist (any more).
    pub async fn volume(&self, id: &str) -> Result<Option<Volume>, Error> {
        #[derive(Deserialize)]
        struct Body {
            volume: Volume,
        }
        match self.session.send(self.request(Method::GET, format!("/volumes/{id}")).await?).await {
            Ok(r) => Ok(Some(r.json::<Body>()?.volume)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn volume_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<VolumeStatus, D::Error> {
    Ok(VolumeStatus::from(String::deserialize(d)?.as_str()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_volume_decodes_cinders_string_booleans_and_attachments() {
        let volume: Volume = serde_json::from_value(json!({
            "id": "v1", "name": "root", "status": "in-use", "size": 1, "availability_zone": "nova",
            "volume_type": "__DEFAULT__", "multiattach": false, "encrypted": true, "bootable": "true",
            "attachments": [{"id": "v1", "attachment_id": "a1", "volume_id": "v1", "server_id": "s1",
                "host_name": null, "device": "/dev/vda", "attached_at": "2026-12-01T22:00:00.000000"}],
            "metadata": {}, "os-vol-host-attr:host": "cinder-1@fake#fake"
        }))
        .unwrap();
        assert_eq!(volume.status, VolumeStatus::InUse);
        assert!(volume.bootable && volume.encrypted && !volume.multiattach);
        assert_eq!(
            volume.attachments,
            vec![VolumeAttachmentRecord {
                server_id: "s1".into(),
                attachment_id: Some("a1".into()),
                device: Some("/dev/vda".into())
            }]
        );
        let not_bootable: Volume =
            serde_json::from_value(json!({"id": "v2", "status": "available", "size": 2, "bootable": "false"})).unwrap();
        assert!(!not_bootable.bootable);
    }

    #[test]
    fn missing_fields_take_their_defaults() {
        let volume: Volume = serde_json::from_value(
            json!({"id": "v3", "name": null, "status": "maintenance", "size": 10, "volume_type": null}),
        )
        .unwrap();
        assert_eq!((volume.name, volume.volume_type, volume.availability_zone), (None, None, None));
        assert_eq!(volume.status, VolumeStatus::Maintenance);
        assert!(!volume.bootable && !volume.multiattach && !volume.encrypted && volume.attachments.is_empty());
        let legacy: VolumeAttachmentRecord = serde_json::from_value(json!({"server_id": "s1"})).unwrap();
        assert_eq!((legacy.attachment_id, legacy.device), (None, None));
    }
}
