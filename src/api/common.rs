//! Types shared by both resources: cloud references, conditions and the timestamp format.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the operator finds OpenStack credentials: a Secret in the resource's namespace whose
/// key `clouds.yaml` holds a standard OpenStack `clouds.yaml`, and the name of one cloud in it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudRef {
    /// Name of the Secret, in the same namespace, with the key `clouds.yaml` (and, if the cloud
    /// uses a private CA, the PEM bundle its `cacert` names as another key).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Name of the cloud entry under `clouds:` in that `clouds.yaml`.
    #[schemars(length(min = 1, max = 253))]
    pub cloud: String,
}

/// A standard Kubernetes condition, as `kubectl wait --for=condition=TYPE` reads it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Kind of condition: `Accepted`, `Progressing`, `Ready` or `Failed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One CamelCase word a program can match on, such as `Invalid` or `Succeeded`.
    pub reason: String,
    /// What happened, for people; names the field at fault when the spec is invalid.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The three values of a condition's status.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The condition types osmo sets on both resources.
pub mod condition_type {
    /// The spec passed validation (schema and operator checks).
    pub const ACCEPTED: &str = "Accepted";
    /// Work is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// The resource reached its goal (migration succeeded, node drained).
    pub const READY: &str = "Ready";
    /// The resource ended without reaching its goal; the reason and message say why.
    pub const FAILED: &str = "Failed";
    /// The spec was edited after the migration changed something in OpenStack: the edit is
    /// ignored, since a migration acts on the options it was accepted with.
    pub const SPEC_CHANGE_IGNORED: &str = "SpecChangeIgnored";
    /// The resource is being deleted, but its migration failed past its point of no return and
    /// its status is the only record of what remains: it stays until retried or the loss is
    /// accepted.
    pub const DELETION_HELD: &str = "DeletionHeld";
}

/// A point in time, RFC 3339 in UTC, to the millisecond (steps often take less than a second).
pub fn timestamp(at: jiff::Timestamp) -> String {
    at.round(jiff::Unit::Millisecond).map(|t| t.to_string()).unwrap_or_else(|_| at.to_string())
}
