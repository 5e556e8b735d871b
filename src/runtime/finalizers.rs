//! Finalizers held by the operator, added and removed with JSON patches that check the list
//! they change, so that another controller's finalizer is never lost.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Adds `name` to the object's finalizers, if missing; `obj` takes the written resourceVersion
/// (status writes are made on it).
pub async fn ensure<K>(api: &Api<K>, obj: &mut K, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if obj.finalizers().iter().any(|f| f == name) {
        return Ok(());
    }
    let patch = if obj.finalizers().is_empty() {
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": [name]}])
    } else {
        json!([{"op": "test", "path": "/metadata/finalizers", "value": obj.finalizers()}, {"op": "add", "path": "/metadata/finalizers/-", "value": name}])
    };
    let written = api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch).expect("a JSON patch")),
        )
        .await?;
    *obj.meta_mut() = written.meta().clone();
    Ok(())
}

/// Removes `name` from the object's finalizers, if present.
pub async fn remove<K>(api: &Api<K>, obj: &K, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(index) = obj.finalizers().iter().position(|f| f == name) else { return Ok(()) };
    let patch = json!([
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": name},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]);
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch).expect("a JSON patch")),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone already: nothing holds it any more.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
