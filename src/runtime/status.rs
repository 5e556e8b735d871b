//! Writing status: one server-side apply of the whole status under the operator's field
//! manager, on the object's version as this replica last knew it, and one Kubernetes event per
//! condition transition.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::conditions;
use crate::api::{Condition, ConditionStatus, condition_type};

/// The field manager that owns everything the operator writes.
pub const FIELD_MANAGER: &str = "osmo";

/// A resource kind whose status the operator owns.
pub trait HasConditions:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + Debug + DeserializeOwned + Serialize
{
    type Status: Serialize + Clone + PartialEq + Default + Debug;
    fn current_status(&self) -> Option<&Self::Status>;
    fn conditions(status: &Self::Status) -> &[Condition];
}

/// Applies `new` as the object's status when it differs from `old` (what the object has, or
/// what this reconciliation last wrote), then publishes an event for each condition
/// transition. Returns whether anything was written.
///
/// The write carries `obj`'s resourceVersion as a precondition, and `obj` takes the written
/// one: a status decided on an object someone has changed since (a deposed leader's, say) is
/// refused with 409 Conflict, never written over a newer one.
pub async fn publish<K: HasConditions>(
    ctx: &super::Shared,
    obj: &mut K,
    old: Option<&K::Status>,
    new: &K::Status,
) -> Result<bool, kube::Error> {
    super::cached::refuse_summary(obj)?;
    let kind = K::kind(&());
    let empty = K::Status::default();
    if old == Some(new) {
        return Ok(false);
    }
    let old = old.unwrap_or(&empty);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let mut body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    if let Some(version) = obj.resource_version() {
        body["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    let written =
        api.patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    ctx.metrics.kubernetes_write(&kind);
    obj.meta_mut().resource_version = written.meta().resource_version.clone();

    let reference = obj.object_ref(&());
    // An event is a courtesy (the status already says it all): it goes out in the background.
    for event in conditions::transitions(K::conditions(old), K::conditions(new)).into_iter().map(event_for) {
        ctx.events.publish(event, reference.clone()).await;
    }
    Ok(true)
}

/// Whether a write was refused because the object changed since it was read.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The event that announces a condition's new state.
fn event_for(condition: &Condition) -> Event {
    // A failure, or a drain that needs help, is a warning.
    let is_failure = (condition.status == ConditionStatus::True
        && [condition_type::FAILED, condition_type::SPEC_CHANGE_IGNORED, condition_type::DELETION_HELD]
            .contains(&condition.type_.as_str()))
        || condition.reason == "Blocked";
    Event {
        type_: if is_failure { EventType::Warning } else { EventType::Normal },
        reason: condition.reason.clone(),
        // The Events API caps notes at 1 kB.
        note: Some(truncate(&format!("{}={:?}: {}", condition.type_, condition.status, condition.message), 1000)),
        action: condition.type_.clone(),
        secondary: None,
    }
}

fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut end = max_bytes - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let text = "é".repeat(600);
        let cut = super::truncate(&text, 1000);
        assert!(cut.len() <= 1000 && cut.ends_with("..."));
        assert_eq!(super::truncate("short", 1000), "short");
    }
}
