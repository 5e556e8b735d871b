//! The `InstanceMigration` resource: one server moved from the old compute environment to the new.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CloudRef, Condition, timestamp};

/// Moves one OpenStack server to a new compute environment: record it, stop it, snapshot it,
/// delete it once the snapshot is active, boot its replacement from the snapshot in the target,
/// and move its addresses. Progress is in `status`; the operator never writes `spec`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "osmo.dev",
    version = "v1alpha1",
    kind = "InstanceMigration",
    namespaced,
    shortname = "im",
    category = "osmo",
    status = "InstanceMigrationStatus",
    derive = "PartialEq",
    doc = "Moves one OpenStack server to a new compute environment (snapshot, delete, boot from snapshot, move addresses).",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.server"),
    printcolumn(name = "Target", type_ = "string", json_path = ".status.targetDescription"),
    printcolumn(name = "New Server", type_ = "string", json_path = ".status.target.serverId", priority = "1"),
    printcolumn(name = "Downtime", type_ = "string", json_path = ".status.downtime", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct InstanceMigrationSpec {
    /// ID (preferred) or unique name of the server to move, as the source cloud knows it.
    #[schemars(length(min = 1, max = 255))]
    pub server: String,
    /// Credentials of the cloud that runs the server now.
    pub source: CloudRef,
    /// How and where the server moves.
    #[serde(flatten)]
    pub options: MigrationOptions,
}

/// How and where a server moves; shared by InstanceMigration and a drain's migrationTemplate.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationOptions {
    /// Where the replacement runs. At least one of `availabilityZone`, `host` or `cloud` must
    /// be given, so that the new server cannot land back in the old environment by accident.
    pub target: MigrationTarget,
    /// How the replacement is built. `Snapshot` (default) boots it from a snapshot of the
    /// source; `Redeploy` boots a fresh server from `redeploy.image` and keeps no data.
    #[serde(default)]
    pub strategy: Strategy,
    /// Settings of the `Redeploy` strategy; required when `strategy` is `Redeploy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeploy: Option<RedeploySpec>,
    /// How the server's addresses follow it to the replacement.
    #[serde(default)]
    pub addresses: AddressSpec,
    /// Stop the source before the snapshot, so that the snapshot is consistent (default true).
    #[serde(default = "default_true")]
    pub stop_source: bool,
    /// Accept that the data on the source flavor's ephemeral disk is lost (default false). A
    /// snapshot holds the root disk only: the replacement gets an empty ephemeral disk. Without
    /// this, a `Snapshot` migration of a server whose flavor has an ephemeral disk, or whose
    /// flavor's disks Nova does not show (before microversion 2.47), is refused before anything
    /// changes (reason `EphemeralDisk`). Swap holds no data to keep and needs no such consent.
    #[serde(default)]
    pub accept_ephemeral_data_loss: bool,
    /// Accept that the replacement boots without the source's user data when the credentials
    /// cannot read it (default false). Nova shows user data to admins only by its default
    /// policy: without this, a migration with other credentials is refused before anything
    /// changes (reason `UserDataUnknown`), since the source may have some.
    #[serde(default)]
    pub accept_unreadable_user_data: bool,
    /// What happens to the snapshot once the replacement is `ACTIVE` with its addresses:
    /// `Delete` (default) or `Retain`.
    #[serde(default)]
    pub snapshot_cleanup: SnapshotCleanup,
    /// Replacements for names or IDs of the source's flavor and networks in the target.
    #[serde(default)]
    pub mappings: Mappings,
    /// Per-step limits; a step that takes longer fails the migration with reason `Timeout`.
    /// Only time an operator watched counts (a restart starts the count again).
    #[serde(default)]
    pub timeouts: StepTimeouts,
}

fn default_true() -> bool {
    true
}

/// Where the replacement server runs.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationTarget {
    /// Credentials of the target cloud, when it is another cloud or region; defaults to the
    /// source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudRef>,
    /// Availability zone of the new compute environment, e.g. `icehouse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub availability_zone: Option<String>,
    /// A specific compute host in the target (admin only; Nova checks it exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub host: Option<String>,
    /// Whether the target's Nova attaches a volume of another availability zone than the
    /// server's: its `[cinder] cross_az_attach` (Nova's default, and osmo's, is true). Set false
    /// for a Nova that does not: a volume whose Cinder zone is not `availabilityZone` is then
    /// refused before anything changes (reason `VolumeZoneMismatch`), instead of failing to
    /// attach once the source is deleted.
    #[serde(default, rename = "crossAZAttach", skip_serializing_if = "Option::is_none")]
    pub cross_az_attach: Option<bool>,
}

impl MigrationTarget {
    /// Where the replacement goes, in one line: `icehouse`, `icehouse/icehouse-1`, `cloud new: icehouse`.
    pub fn describe(&self) -> String {
        let place = [self.availability_zone.as_deref(), self.host.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        match &self.cloud {
            Some(cloud) if place.is_empty() => format!("cloud {}", cloud.cloud),
            Some(cloud) => format!("cloud {}: {place}", cloud.cloud),
            None => place,
        }
    }
}

/// How the replacement server is built.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Strategy {
    /// Snapshot the source, delete it, boot the replacement from the snapshot.
    #[default]
    Snapshot,
    /// Stop the source, boot a fresh server from a given image, then delete the source.
    Redeploy,
}

/// Settings of the `Redeploy` strategy.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedeploySpec {
    /// ID or name of the image the fresh server boots from.
    #[schemars(length(min = 1, max = 255))]
    pub image: String,
}

/// How addresses move from the source to the replacement.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpec {
    /// `Neutron` (default): move each floating IP to the matching port of the replacement.
    /// `NovaNetwork`: recreate the legacy floating-IP pools and allocate the same addresses.
    /// `None`: leave addresses alone.
    #[serde(default)]
    pub mode: AddressMode,
    /// Recreate the ports with the same fixed IPs and MAC addresses, so the replacement keeps
    /// its private addresses (Neutron only).
    #[serde(default, rename = "preserveFixedIPs")]
    pub preserve_fixed_ips: bool,
}

/// How floating addresses are moved.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AddressMode {
    /// Neutron floating IPs, moved with `PUT /v2.0/floatingips/{id}`.
    #[default]
    Neutron,
    /// Legacy nova-network floating IPs, recreated with `os-floating-ips-bulk`.
    NovaNetwork,
    /// Addresses are not touched.
    None,
}

/// What happens to the snapshot after a successful migration.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SnapshotCleanup {
    /// Delete the snapshot once the replacement is `ACTIVE` with its addresses.
    #[default]
    Delete,
    /// Keep the snapshot in Glance.
    Retain,
}

/// Names or IDs in the source mapped to names or IDs in the target.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mappings {
    /// Source flavor (name or ID) to target flavor; unmapped flavors keep their name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flavors: BTreeMap<String, String>,
    /// Source network (name or ID) to target network; unmapped networks stay the same.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, String>,
}

/// Limits, in seconds, for the steps that wait on OpenStack.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepTimeouts {
    /// Source reaches `SHUTOFF` (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub stop_seconds: Option<u32>,
    /// Snapshot reaches `active` in Glance (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub snapshot_seconds: Option<u32>,
    /// Source is gone after its deletion (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub delete_seconds: Option<u32>,
    /// Replacement reaches `ACTIVE` (default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub boot_seconds: Option<u32>,
    /// Addresses are in place on the replacement (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub addresses_seconds: Option<u32>,
}

/// Where a migration stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum MigrationPhase {
    /// Accepted, not started.
    #[default]
    Pending,
    /// Recording the source server in status.
    Recording,
    /// Stopping the source.
    Stopping,
    /// Creating the snapshot and waiting for Glance to call it `active`.
    Snapshotting,
    /// Deleting the source and waiting until it is gone.
    DeletingSource,
    /// Booting the replacement and waiting for `ACTIVE`.
    Booting,
    /// Moving floating IPs to the replacement.
    MovingAddresses,
    /// Checking the replacement and its addresses.
    Verifying,
    /// Deleting the snapshot.
    CleaningUp,
    /// Undoing what was done while the source still exists (restart it, delete the
    /// snapshot), after a failure or the resource's deletion.
    RollingBack,
    /// Done: the replacement runs with the source's addresses.
    Succeeded,
    /// Ended without success; conditions and `lastError` say why and what remains.
    Failed,
}

/// Observed state of an InstanceMigration.
// The largest records are boxed (the same JSON and schema): the operator's cache keeps a
// summary of every finished migration without them, which would otherwise still hold their
// whole size each.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceMigrationStatus {
    /// Where the migration stands.
    #[serde(default)]
    pub phase: MigrationPhase,
    /// `Accepted`, `Progressing`, `Ready` and `Failed`, each with a reason and message.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The spec the migration acts on: the one it was accepted with, recorded while nothing
    /// has changed in OpenStack and fixed from the first change on. A later edit of the spec
    /// never changes a running or finished migration: it is reported (`SpecChangeIgnored`) and
    /// ignored; delete and recreate the resource to migrate with other options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_spec: Option<Box<InstanceMigrationSpec>>,
    /// Where the replacement goes, in one line (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_description: Option<String>,
    /// Everything recorded about the source before it was changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<RecordedServer>>,
    /// The server's project, when the source credentials are scoped to another: osmo acts in
    /// it, with the same credentials scoped to it, so that the snapshot and the replacement
    /// belong to the server's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_project_id: Option<String>,
    /// The Lease, in the operator's namespace, by which this migration claimed its server
    /// cluster-wide before its first change: while it holds it, any other migration of the
    /// server is refused (`Conflict`). Deleted once the migration no longer needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// When osmo last sent a request that creates the snapshot or the replacement: until that
    /// request has had time to land, none is sent again (it may still be in flight from an
    /// operator that died), so that no twin is ever made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_sent_at: Option<String>,
    /// A create was sent again, after an earlier one was not seen to land in time: that one
    /// may still land, late. Every later look also looks for such a twin of the snapshot or
    /// the replacement (tagged with the migration's UID), and deletes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_repeated: bool,
    /// osmo locked the source in Nova once it was off, before its snapshot, so that nobody
    /// starts it and writes data the snapshot does not hold. The lock is lifted just before
    /// the source is deleted, or when a rollback gives it back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_locked: bool,
    /// The IDs of late twins (snapshots or servers) that osmo deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_twins: Vec<String>,
    /// What the replacement is made of in the target cloud, resolved when the source was
    /// recorded (so that booting needs no lookups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_base: Option<Box<BootBase>>,
    /// What the replacement will lack that the spec accepted losing
    /// (`acceptEphemeralDataLoss`), said when the source was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_data_loss: Option<String>,
    /// What of the source the replacement will not have, decided when the source was recorded:
    /// only what is harmless and documented (see the README's table); anything else that
    /// cannot be kept refuses the migration before anything changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_kept: Vec<NotKept>,
    /// The snapshot the replacement boots from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotStatus>,
    /// The replacement server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetServerStatus>,
    /// The replacement's port for each port of the source, as they are made or chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_ports: Vec<TargetPort>,
    /// Each step taken, with its start, end and result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
    /// Time from the source stopping to the replacement being `ACTIVE` with its addresses,
    /// e.g. `2.4s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<String>,
    /// The last error met, with the OpenStack request ID when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Set while the migration has failed (or is retrying) past its point of no return: the
    /// source is deleted (or its addresses moved) and no verified replacement runs. Such a
    /// migration can be retried in place, and its deletion waits until the loss is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// Annotation: a new value retries a migration that failed past its point of no return, from
/// the step that failed, with what it kept (the snapshot, the ports).
pub const RETRY_ANNOTATION: &str = "osmo.dev/retry";
/// Annotation: set to the resource's `metadata.uid` to accept that a migration which failed
/// past its point of no return is given up, so that deleting the resource lets it go. The
/// UID (not `true`) makes sure it was said of this very migration, after it failed.
pub const ACCEPT_LOSS_ANNOTATION: &str = "osmo.dev/accept-loss";

/// What a migration that failed past its point of no return needs to be retried.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// The phase that failed: a retry enters it again.
    pub phase: MigrationPhase,
    /// The replacement that failed (e.g. in `ERROR`): a retry deletes it before booting anew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_target: Option<String>,
    /// The `osmo.dev/retry` annotation when the migration failed: a retry needs another value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_annotation: Option<String>,
    /// How many retries were made.
    #[serde(default)]
    pub retries: u32,
}

/// The step log: one record per phase entered, the last one running until the phase ends.
impl InstanceMigrationStatus {
    /// The step under way, if any.
    pub fn running_step(&self) -> Option<&StepRecord> {
        self.steps.iter().rev().find(|s| s.result == StepResult::Running)
    }

    fn running_step_mut(&mut self) -> Option<&mut StepRecord> {
        self.steps.iter_mut().rev().find(|s| s.result == StepResult::Running)
    }

    /// Starts the step of `phase` (a phase entered again starts its record afresh).
    pub fn start_step(&mut self, phase: MigrationPhase, at: jiff::Timestamp) {
        self.steps.retain(|s| s.name != phase);
        self.steps.push(StepRecord {
            name: phase,
            started_at: timestamp(at),
            finished_at: None,
            result: StepResult::Running,
            message: None,
        });
    }

    /// The step under way succeeded at `at`.
    pub fn finish_running_step(&mut self, at: jiff::Timestamp) {
        if let Some(running) = self.running_step_mut() {
            running.result = StepResult::Succeeded;
            running.finished_at = Some(timestamp(at));
        }
    }

    /// The step under way failed at `at`, for this reason.
    pub fn fail_running_step(&mut self, at: jiff::Timestamp, message: &str) {
        if let Some(running) = self.running_step_mut() {
            running.result = StepResult::Failed;
            running.finished_at = Some(timestamp(at));
            running.message = Some(message.to_string());
        }
    }
}

/// The source server as it was before the migration changed anything.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedServer {
    pub id: String,
    pub name: String,
    /// The project (tenant) owning the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// `ACTIVE`, `SHUTOFF`, ... when recorded.
    pub status: String,
    /// The flavor's ID (Nova below microversion 2.47) or, from 2.47, only its name is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_name: Option<String>,
    /// The sizes of the flavor's disks and memory, as Nova shows them from microversion 2.47
    /// (absent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_size: Option<FlavorSize>,
    /// Image the server was booted from; empty for a volume-backed server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<RecordedPort>,
    /// Its nova-network floating IPs (address mode `NovaNetwork`), with their pools.
    #[serde(default, rename = "novaNetworkFloatingIPs", skip_serializing_if = "Vec::is_empty")]
    pub nova_network_floating_ips: Vec<RecordedNovaNetworkFloatingIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<RecordedVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub config_drive: bool,
    /// The hostname Nova gave it (shown to admins), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The Secret, in the migration's namespace and owned by it, that holds the source's user
    /// data (key `userData`, base64 as Nova takes it): user data may hold secrets, and the
    /// status is readable by whoever may read the migration. The replacement boots with it
    /// after the source is deleted, so it must outlive a restart of the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_secret: Option<String>,
    /// Nova did not show whether it has user data (to credentials without the admin role).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_data_unreadable: bool,
    /// The server group it is a member of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_group: Option<RecordedServerGroup>,
}

/// An attribute of the source the replacement does not keep, and why.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotKept {
    /// The attribute as Nova names it, e.g. `hostname`.
    pub attribute: String,
    pub reason: String,
}

/// The server group the source is a member of.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedServerGroup {
    pub id: String,
    pub name: String,
    /// `affinity`, `anti-affinity`, `soft-affinity` or `soft-anti-affinity`.
    pub policy: String,
    /// The other members, when recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_members: Vec<String>,
}

/// The sizes of a flavor.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlavorSize {
    /// Root disk, GiB (0: the image's size).
    #[serde(rename = "diskGB")]
    pub disk_gb: u64,
    /// Ephemeral disk, GiB: not in a snapshot.
    #[serde(rename = "ephemeralGB")]
    pub ephemeral_gb: u64,
    /// Memory, MiB.
    #[serde(rename = "ramMB")]
    pub ram_mb: u64,
    #[serde(default, rename = "vCPUs", skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// Swap, MiB.
    #[serde(default, rename = "swapMB", skip_serializing_if = "Option::is_none")]
    pub swap_mb: Option<u64>,
    /// The flavor's extra specs, when Nova shows them (to admins, by its default policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_specs: Option<BTreeMap<String, String>>,
}

/// A nova-network floating IP of the source, and the pool it came from.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedNovaNetworkFloatingIp {
    pub address: String,
    pub pool: String,
    /// The pool's network interface on the nova-network hosts, e.g. `eth0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The fixed IP it mapped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_ip_address: Option<String>,
}

/// One port of the source server, with what its user set on it: the replacement's port is
/// made from this.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedPort {
    pub id: String,
    pub network_id: String,
    pub mac_address: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed_ips: Vec<RecordedFixedIp>,
    /// Security group IDs of the port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floating_ips: Vec<RecordedFloatingIp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Further addresses the port may send from (e.g. a keepalived/VRRP address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_address_pairs: Vec<RecordedAddressPair>,
    /// `false` when the port's anti-spoofing and security groups are off (absent: Neutron's
    /// default, on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_security_enabled: Option<bool>,
    #[serde(default, rename = "qosPolicyID", skip_serializing_if = "Option::is_none")]
    pub qos_policy_id: Option<String>,
    /// `binding:vnic_type` when not `normal` (e.g. `direct` for SR-IOV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnic_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_dhcp_opts: Vec<RecordedDhcpOption>,
    /// The DNS name (Neutron's `dns-integration` extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// An allowed address pair of a port.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedAddressPair {
    /// An address or CIDR.
    pub ip_address: String,
    /// The MAC it may be sent from; absent when it is the port's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// A DHCP option Neutron gives a port.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedDhcpOption {
    pub opt_name: String,
    pub opt_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
}

/// A fixed IP of a port.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedFixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

/// A floating IP bound to a port.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedFloatingIp {
    pub id: String,
    pub address: String,
    /// The fixed IP it maps to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_ip_address: Option<String>,
}

impl RecordedServer {
    /// The volume the server boots from, if it boots from one.
    pub fn root_volume(&self) -> Option<&RecordedVolume> {
        self.volumes.iter().find(|v| v.root)
    }
}

/// A volume attached to the source: it is not copied, it moves to the replacement.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedVolume {
    pub id: String,
    /// The device Nova shows it on (e.g. `/dev/vdb`): the replacement asks for the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// True when deleting the server would delete the volume. osmo makes it false before the
    /// source is deleted and gives it back to the replacement once the move is verified.
    pub delete_on_termination: bool,
    /// The server boots from it: its root disk, which the replacement boots from in turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root: bool,
    /// The attachment's device tag (Nova microversion 2.49 or newer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Cinder's availability zone of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiattach: bool,
}

/// The snapshot image.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    pub image_id: String,
    /// Glance status: `queued`, `saving`, `active`, `deleted`, ... As seen by the last look that
    /// wrote the status: current at least at each step's end.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// osmo protected it from deletion (Glance's `protected`) while it is the server's only
    /// copy: from before the source is deleted until the replacement is verified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
}

/// The parts of the replacement that are resolved in the target cloud.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootBase {
    pub flavor_id: String,
    /// Image to boot for `Redeploy` (`redeploy.image` resolved); the snapshot otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Source network id -> target network id, for networks that are mapped or in another cloud.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, String>,
    /// The source's security groups, resolved by name to one ID each in the target project: the
    /// replacement boots with these IDs (two groups may share a name).
    #[serde(default, rename = "securityGroupIDs", skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// The server group the replacement joins: the source's in one Nova, the one of the same
    /// name and policy in the target's project in another.
    #[serde(default, rename = "serverGroupID", skip_serializing_if = "Option::is_none")]
    pub server_group_id: Option<String>,
}

/// The replacement server.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetServerStatus {
    pub server_id: String,
    /// Nova status: `BUILD`, `ACTIVE`, `ERROR`, ... As seen by the last look that wrote the
    /// status: current at least at each step's end.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

/// Which port of the replacement stands for a port of the source.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetPort {
    pub source_port_id: String,
    pub port_id: String,
    pub origin: PortOrigin,
}

/// How a port of the replacement came to be.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PortOrigin {
    /// The source's own port, which survived it.
    Reused,
    /// Made by osmo before the boot, like the source's, with its fixed IPs and MAC
    /// (`preserveFixedIPs`).
    Recreated,
    /// Made by osmo before the boot, like the source's, on the same (or the mapped) network
    /// with a new address.
    Created,
    /// Made by Nova on the same (or the mapped) network, with a new address (a replacement
    /// booted by an earlier osmo, which let Nova make the ports).
    #[default]
    New,
}

impl PortOrigin {
    /// Whether osmo made the port for the replacement (Nova does not delete it with a server).
    pub fn made_by_osmo(self) -> bool {
        matches!(self, PortOrigin::Recreated | PortOrigin::Created)
    }

    /// Whether the port has the source port's fixed IPs.
    pub fn keeps_addresses(self) -> bool {
        matches!(self, PortOrigin::Reused | PortOrigin::Recreated)
    }
}

/// One step of a migration.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// The phase the step belongs to.
    pub name: MigrationPhase,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub result: StepResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl StepRecord {
    /// When the step started (none when the status holds no valid time).
    pub fn started(&self) -> Option<jiff::Timestamp> {
        self.started_at.parse().ok()
    }

    /// How long the step took, once it has ended.
    pub fn took(&self) -> Option<std::time::Duration> {
        let finished: jiff::Timestamp = self.finished_at.as_deref()?.parse().ok()?;
        Some(finished.duration_since(self.started()?).unsigned_abs())
    }
}

/// How a step ended.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StepResult {
    #[default]
    Running,
    Succeeded,
    Failed,
    Skipped,
}
