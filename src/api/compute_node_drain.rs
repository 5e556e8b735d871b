//! The `ComputeNodeDrain` resource: an old compute node emptied so it can be redeployed.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CloudRef, Condition};
use super::instance_migration::{MigrationOptions, MigrationPhase};

/// Empties one compute host: disables its nova-compute service (so nothing new lands there),
/// then waits for its servers to go or migrates them, a few at a time, with one child
/// InstanceMigration each. An empty host is reported `Drained`, ready to be redeployed.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "osmo.dev",
    version = "v1alpha1",
    kind = "ComputeNodeDrain",
    namespaced,
    shortname = "cnd",
    category = "osmo",
    status = "ComputeNodeDrainStatus",
    derive = "PartialEq",
    doc = "Empties one OpenStack compute host (disable, wait or migrate its servers) so that it can be redeployed.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode", priority = "1"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ComputeNodeDrainSpec {
    /// Credentials of the cloud the host belongs to (admin: the drain lists all projects).
    pub cloud: CloudRef,
    /// The compute host, as in `openstack compute service list`, e.g. `havana-1`.
    #[schemars(length(min = 1, max = 255))]
    pub host: String,
    /// `Wait`: wait for the servers to be deleted by their owners. `Migrate`: move each server
    /// with an InstanceMigration built from `migrationTemplate`.
    pub mode: DrainMode,
    /// The reason written on the disabled nova-compute service.
    #[serde(default = "default_disable_reason")]
    #[schemars(length(min = 1, max = 255))]
    pub disable_reason: String,
    /// How each server is migrated; required when `mode` is `Migrate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_template: Option<MigrationOptions>,
    /// The most InstanceMigrations of this drain in flight at once.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: u32,
    /// Which servers the drain moves, and in what order.
    #[serde(default)]
    pub selector: ServerSelection,
    /// With `mode: Wait`, how long to wait for the servers to go before the drain reports
    /// `Blocked` with the list of what remains. Unset: wait for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub wait_deadline_seconds: Option<u64>,
    /// What to do when the host is empty. `Keep` (default): leave the disabled service.
    /// `RetireService`: once the service is down, delete its record.
    #[serde(default)]
    pub after_drain: AfterDrain,
    /// With `RetireService`: mark the service forced-down instead of waiting for its process
    /// to stop reporting (only when the process is known to be stopped).
    #[serde(default)]
    pub force_down: bool,
    /// When the drain is deleted before it is done, leave the service disabled instead of
    /// enabling it again.
    #[serde(default)]
    pub keep_disabled_on_abort: bool,
    /// Fill `status` with the plan (which servers, in what order, to where) and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Stop creating new migrations; running ones finish.
    #[serde(default)]
    pub paused: bool,
    /// How long an InstanceMigration this drain created is kept once it has succeeded (and its
    /// server has left the host); then the drain deletes it, and `status.servers` keeps its
    /// summary (the replacement and when it succeeded). Unset: kept for ever. A failed one, and
    /// one the drain did not create, are never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_migration_retention_seconds: Option<u64>,
}

fn default_disable_reason() -> String {
    "osmo: draining for redeployment".to_string()
}

fn default_max_concurrent() -> u32 {
    1
}

/// How a drain empties the host.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DrainMode {
    /// Wait for the servers to be deleted by their owners.
    Wait,
    /// Migrate each server with an InstanceMigration.
    Migrate,
}

/// What to do with an empty host.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AfterDrain {
    /// Leave the disabled service as it is.
    #[default]
    Keep,
    /// Delete the nova-compute service record once its process is down.
    RetireService,
}

/// Which servers of the host a drain moves, and in what order.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSelection {
    /// Only servers matching one of these are moved (all servers when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<ServerSelector>,
    /// Servers matching one of these are left alone and listed as excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<ServerSelector>,
    /// Servers matching earlier entries move first; the rest follow by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority: Vec<ServerSelector>,
    /// Let excluded servers stay on the host: the drain reports `Drained` without them.
    #[serde(default)]
    pub excluded_may_remain: bool,
}

/// Matches servers; every field given must match.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSelector {
    /// Server IDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// A shell-style pattern on the server name (`*` and `?`), e.g. `web-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub name_pattern: Option<String>,
    /// The project (tenant) ID owning the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub project_id: Option<String>,
    /// Server metadata that must all be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Where a drain stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DrainPhase {
    /// Accepted, not started.
    #[default]
    Pending,
    /// Disabling the host's nova-compute service.
    Cordoning,
    /// Waiting for servers to go, or migrating them.
    Draining,
    /// Dry run or paused: the plan is in status, nothing changes.
    Planned,
    /// The host is empty and ready to be redeployed.
    Drained,
    /// Deleting the nova-compute service record.
    Retiring,
    /// The service record is deleted.
    Retired,
    /// Cannot go on without help (deadline passed, excluded servers remain); the message says
    /// what remains.
    Blocked,
    /// Ended without success.
    Failed,
}

/// Observed state of a ComputeNodeDrain.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeNodeDrainStatus {
    /// Where the drain stands.
    #[serde(default)]
    pub phase: DrainPhase,
    /// `Accepted`, `Progressing`, `Ready` and `Failed`, each with a reason and message.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Servers moved or gone out of the total, e.g. `3/5` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Counts of the host's servers by state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<DrainCounts>,
    /// The host's nova-compute service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceStatus>,
    /// One entry per server found on the host, in the order the drain handles them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<DrainServerEntry>,
    /// When the host was cordoned: the start of `waitDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordoned_at: Option<String>,
    /// The Lease, in the operator's namespace, by which this drain claimed its host
    /// cluster-wide before the cordon: while it holds it, any other drain of the host is
    /// refused (`Conflict`). Deleted once the drain is retired, failed or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// What the drain waits for or what blocks it, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last error met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Counts of the host's servers by state.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainCounts {
    pub total: u32,
    pub remaining: u32,
    pub migrating: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub excluded: u32,
    /// Servers whose migration failed after their source was deleted (state `Lost`).
    #[serde(default)]
    pub lost: u32,
}

/// The host's nova-compute service as last seen.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub id: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// `up` or `down`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default)]
    pub forced_down: bool,
}

/// One server of the host.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainServerEntry {
    pub id: String,
    pub name: String,
    /// The project (tenant) owning the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Where the server stands in this drain.
    #[serde(default)]
    pub state: DrainServerState,
    /// Why the server is left alone, when it is excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// Name of its InstanceMigration: the one created (or, in a dry run, that would be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    /// Phase of that migration when the drain last looked: it looks as it starts one and as
    /// one ends, not at each step (the migration's own status is current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MigrationPhase>,
    /// The replacement server's ID, once the migration succeeded (kept after the drain deletes
    /// that migration, see `spec.succeededMigrationRetentionSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// When the migration succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_at: Option<String>,
    /// Where the migration takes the server, e.g. `zone icehouse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How its migration moves it (mode `Migrate`; a dry run shows it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<MovePath>,
    /// Why the drain cannot count the server, when it is `Lost` or `ListedElsewhere`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// How a migration moves a server. Its volumes move in every path, never copied.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MovePath {
    /// A snapshot of its root disk, which the replacement boots from.
    Snapshot,
    /// It boots from a volume: the replacement boots from the same volume, with no snapshot.
    Volume,
    /// A fresh server from the template's image, with the data volumes.
    Redeploy,
}

/// Where one server of the host stands in its drain.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DrainServerState {
    /// On the host, not handled yet (mode `Migrate`) or waited for (mode `Wait`).
    #[default]
    Waiting,
    /// Its InstanceMigration runs.
    Migrating,
    /// Its InstanceMigration succeeded: the server runs elsewhere.
    Migrated,
    /// Left the host without a migration of this drain (deleted by its owner, or moved).
    Gone,
    /// Its InstanceMigration failed; the server is still on the host. Deleting that
    /// InstanceMigration lets the drain try again.
    Failed,
    /// Left alone by the selector.
    Excluded,
    /// Its InstanceMigration failed after deleting the source (or was deleted before the
    /// drain saw it end): the server may exist only as a snapshot. The drain is Blocked,
    /// starts no new migration and never reports the host empty; the entry stays (even once
    /// that InstanceMigration is deleted) until a migration of the server succeeds, e.g. that
    /// one retried in place.
    Lost,
    /// Nova listed it for the host, but its record names another host: never migrated, not
    /// counted as the host's.
    ListedElsewhere,
}
