//! Objects as the caches keep them: without what no decision reads and that is most of their
//! size, so that tens of thousands of stored resources fit in little memory. A resource that
//! has finished may be kept as a summary: only what deciding that it has finished reads (and
//! what the other controllers read of it). A summary is never decided on nor written from: a
//! reconcile that must act on one reads the whole object first.

use std::sync::Arc;

use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Strips what no decision reads: the field managers' records and `kubectl apply`'s copy of
/// the spec.
pub fn cached<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    // Also whatever marked a summary: only this process makes them.
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        // An emptied map still holds its node (half a KiB for each object).
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Marks `obj` as a summary; the caller has replaced its spec and status with one. The mark is
/// an empty list of field managers: the cache keeps none otherwise, the API server never
/// serves an empty one, and it costs no memory (an annotation would cost a map node).
pub fn mark_summary<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = Some(Vec::new());
}

/// Whether `obj` is a summary, not the whole object.
pub fn is_summary<K: Resource>(obj: &K) -> bool {
    obj.meta().managed_fields.as_ref().is_some_and(Vec::is_empty)
}

/// The whole object: `obj` itself, or for a summary, the object as the API server has it now.
pub async fn whole<K>(api: &Api<K>, obj: Arc<K>) -> Result<Arc<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if !is_summary(obj.as_ref()) {
        return Ok(obj);
    }
    tracing::debug!(name = %obj.name_any(), "reading the whole object of a cached summary");
    Ok(Arc::new(api.get(&obj.name_any()).await?))
}

/// Refuses a write decided from a summary: it would replace the whole status with the little
/// the summary keeps.
pub fn refuse_summary<K: Resource>(obj: &K) -> Result<(), kube::Error> {
    if is_summary(obj) {
        let message = format!("refused to write {} from the cache's summary of it", obj.name_any());
        return Err(kube::Error::Service(message.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;

    #[test]
    fn the_cache_keeps_no_field_managers_nor_kubectls_copy_of_the_spec() {
        let mut obj = ConfigMap::default();
        obj.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        obj.metadata.annotations =
            Some([(LAST_APPLIED_ANNOTATION.to_string(), "{}".to_string()), ("team".into(), "a".into())].into());
        cached(&mut obj);
        assert_eq!(obj.metadata.managed_fields, None);
        assert_eq!(obj.metadata.annotations, Some([("team".to_string(), "a".to_string())].into()));
        // With kubectl's copy the only annotation, no (emptied) map is kept.
        obj.metadata.annotations = Some([(LAST_APPLIED_ANNOTATION.to_string(), "{}".to_string())].into());
        cached(&mut obj);
        assert_eq!(obj.metadata.annotations, None);
    }

    #[test]
    fn a_summary_is_never_written_and_only_this_process_makes_one() {
        let mut obj = ConfigMap::default();
        assert!(refuse_summary(&obj).is_ok());
        mark_summary(&mut obj);
        assert!(is_summary(&obj));
        assert!(refuse_summary(&obj).is_err());
        // An object as the watch brings it is whole, whatever it carries.
        cached(&mut obj);
        assert!(!is_summary(&obj));
    }
}
