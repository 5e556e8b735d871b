//! Glance v2: the snapshot images.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use super::compute::{ignore_not_found, query_value};
use super::error::{Error, Service};
use super::session::{Request, Session};

/// An image as Glance describes it; custom properties are top-level fields.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `queued`, `saving`, `active`, `killed`, `deleted`, `pending_delete`, ...
    pub status: String,
    #[serde(default)]
    pub size: Option<i64>,
    /// The MD5 of the image data, once uploaded (`os_hash_value` carries a stronger hash).
    #[serde(default)]
    pub checksum: Option<String>,
    /// The project that owns the image.
    #[serde(default)]
    pub owner: Option<String>,
    /// A protected image cannot be deleted, by anyone, until it is unprotected.
    #[serde(default)]
    pub protected: bool,
    /// The memory (MiB) a server booted from it needs at least.
    #[serde(default)]
    pub min_ram: Option<u64>,
    #[serde(flatten)]
    pub properties: BTreeMap<String, serde_json::Value>,
}

impl Image {
    /// Whether `project` sees it without being made a member: its own, public or community.
    pub fn visible_to(&self, project: &str) -> bool {
        self.owner.as_deref() == Some(project) || matches!(self.property("visibility"), Some("public" | "community"))
    }

    /// A custom property as text.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(|v| v.as_str())
    }
}

/// Glance, through a session.
pub struct Images<'a> {
    session: &'a Session,
}

impl Session {
    pub fn image(&self) -> Images<'_> {
        Images { session: self }
    }
}

impl Images<'_> {
    /// An image, or `None` when it does not exist.
    pub async fn get(&self, id: &str) -> Result<Option<Image>, Error> {
        match self.session.send(Request::new(Service::Image, Method::GET, format!("/v2/images/{id}"))).await {
            Ok(r) => Ok(Some(r.json()?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Images whose custom property `key` is `value` (e.g. the migration's UID).
    pub async fn images_with_property(&self, key: &str, value: &str) -> Result<Vec<Image>, Error> {
        #[derive(Deserialize)]
        struct Body {
            images: Vec<Image>,
        }
        let path = format!("/v2/images?{}={}", query_value(key), query_value(value));
        let body: Body = self.session.send(Request::new(Service::Image, Method::GET, path)).await?.json()?;
        Ok(body.images)
    }

    /// Images with this exact name.
    pub async fn images_named(&self, name: &str) -> Result<Vec<Image>, Error> {
        #[derive(Deserialize)]
        struct Body {
            images: Vec<Image>,
        }
        let path = format!("/v2/images?name={}", query_value(name));
        let body: Body = self.session.send(Request::new(Service::Image, Method::GET, path)).await?.json()?;
        Ok(body.images)
    }

    /// Protects an image from deletion, or lifts that; returns the image as Glance now has it.
    pub async fn set_protected(&self, id: &str, protected: bool) -> Result<Image, Error> {
        let patch = serde_json::json!([{"op": "replace", "path": "/protected", "value": protected}]);
        let request = Request::new(Service::Image, Method::PATCH, format!("/v2/images/{id}"))
            .json_as("application/openstack-images-v2.1-json-patch", patch);
        self.session.send(request).await?.json()
    }

    /// Deletes an image; one already gone is not an error.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        ignore_not_found(
            self.session.send(Request::new(Service::Image, Method::DELETE, format!("/v2/images/{id}"))).await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_properties_are_kept() {
        let image: Image = serde_json::from_value(serde_json::json!({
            "id": "i1", "name": "snap", "status": "active", "size": 1024,
            "osmo.dev/migration": "uid-1", "min_disk": 0, "visibility": "private"
        }))
        .unwrap();
        assert_eq!(image.property("osmo.dev/migration"), Some("uid-1"));
        assert_eq!(image.size, Some(1024));
    }
}
