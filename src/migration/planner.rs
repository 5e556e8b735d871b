//! Decides an InstanceMigration's next step from its spec, its status and what OpenStack
//! shows now. Pure: the controller observes, this decides, the executor acts.
//!
//! The order of phases is the safety argument:
//! - `Snapshot`: Recording, Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses,
//!   Verifying, CleaningUp. The source is deleted only from a look that sees the snapshot
//!   `active` in Glance; the snapshot is deleted only once the replacement is `ACTIVE` with its
//!   addresses.
//! - `Redeploy`: Recording, Stopping, Booting, MovingAddresses, Verifying, DeletingSource.
//!   The source is deleted last, once the fresh server carries its addresses.
//!
//! A phase's first change is decided from the look that ends the phase before, when that look
//! holds all it needs (e.g. the snapshot is made from the look that sees the source off): one
//! look and one status write fewer per step.
//!
//! Whatever fails while the source still exists is rolled back (the snapshot deleted, the
//! source started again if it was running); once the source is gone the migration goes on to
//! the end, or fails saying exactly what remains.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::states::{self, ImageStatus, ServerStatus};
use crate::api::{
    AddressMode, BootBase, ConditionStatus, InstanceMigrationSpec, InstanceMigrationStatus, MigrationPhase,
    RecordedNovaNetworkFloatingIp, RecordedServer, SnapshotCleanup, SnapshotStatus, StepRecord, StepResult, Strategy,
    TargetPort, TargetServerStatus, condition_type, timestamp,
};
use crate::openstack::compute::{NetworkAttachment, ServerCreate};
use crate::openstack::nova_network::{BulkFloatingIp, LegacyFloatingIp};
use crate::runtime::conditions::{self, Refusal, Setter, Validated};
use crate::validation::{self, FieldError};

/// Metadata key (server and image) carrying the migration's UID, so that what a crashed
/// operator created is found again instead of made twice.
pub const UID_KEY: &str = "osmo_migration_uid";

/// How long a create request may take to land in Nova after it was sent (its sender may have
/// died meanwhile); none is sent again before.
const CREATE_FENCE: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);
/// The shortest and longest wait between two looks at OpenStack.
const LOOK_INTERVAL_MIN: Duration = Duration::from_millis(50);
const LOOK_INTERVAL_MAX: Duration = Duration::from_secs(10);
/// The shortest wait between two looks at a step whose usual time is not known yet.
const UNKNOWN_STEP_LOOK_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// The first look at a step comes this late at most, however long it took before.
const FIRST_LOOK_AT_MOST: Duration = Duration::from_secs(2);

/// What the planner needs to know about the resource.
pub struct Input<'a> {
    /// The spec the migration acts on ([`acting_spec`]).
    pub spec: &'a InstanceMigrationSpec,
    /// The spec as the resource has it now: reported when it differs from the one acted on.
    pub submitted: &'a InstanceMigrationSpec,
    pub status: Option<&'a InstanceMigrationStatus>,
    pub generation: Option<i64>,
    pub uid: &'a str,
    /// The resource is being deleted: stop safely instead of going on, where that is safe.
    pub deleting: bool,
    pub now: jiff::Timestamp,
    /// When OpenStack was seen as `Observed` says: a step seen done ended then.
    pub seen_at: jiff::Timestamp,
    /// How long each step took at least in recent migrations: the first look at OpenStack
    /// comes then.
    pub usual_steps: &'a BTreeMap<MigrationPhase, Duration>,
    /// Since when this operator has been acting: a step's timeout counts from then at the
    /// earliest, so that time no operator watched (a restart, a failover) fails no step.
    pub acting_since: jiff::Timestamp,
}

/// A server as OpenStack shows it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerState {
    pub id: String,
    pub status: ServerStatus,
    pub task_state: Option<String>,
    pub host: Option<String>,
    pub availability_zone: Option<String>,
    pub fault: Option<String>,
}

impl ServerState {
    /// In `status`, with no task under way.
    fn settled(&self, status: ServerStatus) -> bool {
        self.status == status && self.task_state.is_none()
    }

    fn is_deleting(&self) -> bool {
        states::is_deleting(self.task_state.as_deref())
    }
}

/// An image as Glance shows it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageState {
    pub id: String,
    pub status: ImageStatus,
    pub size: Option<i64>,
    pub checksum: Option<String>,
    /// The server Nova made it from.
    pub instance_uuid: Option<String>,
    pub owner: Option<String>,
    pub protected: bool,
}

impl ImageState {
    /// Why this active snapshot is not verified to hold the recorded server, if it is not: no
    /// data, no checksum, another server's, or another project's.
    pub fn unverified(&self, source: &RecordedServer) -> Option<String> {
        let id = &self.id;
        if self.size.unwrap_or(0) <= 0 {
            return Some(format!("snapshot {id} holds no data (size {:?})", self.size));
        }
        if self.checksum.as_deref().is_none_or(str::is_empty) {
            return Some(format!("snapshot {id} has no checksum"));
        }
        if self.instance_uuid.as_deref() != Some(source.id.as_str()) {
            return Some(format!("snapshot {id} is of server {:?}, not of {}", self.instance_uuid, source.id));
        }
        match (&source.project_id, &self.owner) {
            (Some(project), owner) if owner.as_ref() != Some(project) => {
                Some(format!("snapshot {id} belongs to project {owner:?}, not to the server's {project}"))
            }
            _ => None,
        }
    }
}

/// What OpenStack shows now, as far as the current phase needs it.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Recording: the source, fully recorded, or why it cannot be migrated.
    pub recording: Option<Result<RecordedServer, Refusal>>,
    /// Recording: the server's project, when osmo must act in it with its credentials scoped
    /// to it (they are scoped to another).
    pub acting_project: Option<String>,
    /// The source server; `None` when it does not exist.
    pub source: Option<ServerState>,
    /// The snapshot (by recorded id, or found by the migration's UID).
    pub snapshot: Option<ImageState>,
    /// The replacement (by recorded id, or found by the migration's UID).
    pub target: Option<ServerState>,
    /// Recording (and Booting, when the status holds none): what the replacement is made of
    /// in the target cloud, or why it cannot be.
    pub boot: Option<Result<BootBase, Refusal>>,
    /// Recording: what else the boot needs, as the target shows it to the acting credentials.
    pub target_view: Option<TargetView>,
    /// Recorded ports that still exist.
    pub surviving_ports: BTreeSet<String>,
    /// Ports osmo created for this migration, by the source port they stand for.
    pub created_ports: BTreeMap<String, String>,
    /// The replacement's ports as (port id, network id), in Neutron's order.
    pub target_ports: Vec<(String, String)>,
    /// Where each recorded floating IP points now (its port), by floating IP id.
    pub floating_ips: BTreeMap<String, Option<String>>,
    /// The target's nova-network floating IPs (address mode `NovaNetwork`).
    pub nova_network: Option<NovaNetworkState>,
    /// Late twins of the snapshot or the replacement (looked for once a create was repeated).
    pub twins: Vec<Twin>,
}

/// What the target shows the acting credentials of what the boot needs beyond the boot base,
/// so that whatever would make the boot fail is refused before anything changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetView {
    /// Whether the acting user has a key pair of the source's key pair's name in the target
    /// (`None` when the source has no key pair).
    pub key_pair_found: Option<bool>,
    /// The replacement's flavor: root disk (GiB; 0 boots any image) and memory (MiB).
    pub flavor_disk_gb: u64,
    pub flavor_ram_mb: u64,
    /// The `min_ram` (MiB) of the image the source was booted from, which its snapshot keeps,
    /// when Glance shows it.
    pub image_min_ram_mb: Option<u64>,
}

/// A second snapshot or replacement, made by a create that landed after it was sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Twin {
    Server(String),
    Image(String),
}

impl Twin {
    fn id(&self) -> &str {
        match self {
            Twin::Server(id) | Twin::Image(id) => id,
        }
    }
}

/// nova-network's floating IPs in the target, as the target's credentials see them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NovaNetworkState {
    /// Allocated to the project (`os-floating-ips`).
    pub allocated: Vec<LegacyFloatingIp>,
    /// Every address of every pool (`os-floating-ips-bulk`).
    pub pools: Vec<BulkFloatingIp>,
}

/// What a recorded nova-network address needs next to be on the replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NovaNetworkStep {
    /// It is on the replacement.
    Done,
    /// The address does not exist: add it to its pool, alone as the pool's one free address.
    CreateRange { ip_range: String, pool: String, interface: Option<String> },
    /// It is the one free address of its pool: allocating from the pool gets exactly it.
    Allocate { pool: String },
    /// The project holds it, free or still on the source: put it on the replacement (Nova
    /// moves it off the source).
    Associate,
    /// It cannot be had in the target, and why.
    Unavailable(String),
}

/// The next step for `address` of the server `source` towards the server `on` (none yet
/// while recording).
pub fn nova_network_step(
    address: &RecordedNovaNetworkFloatingIp,
    source: &str,
    on: Option<&str>,
    target: &NovaNetworkState,
) -> NovaNetworkStep {
    let wanted = address.address.as_str();
    if let Some(ours) = target.allocated.iter().find(|f| f.ip == wanted) {
        return match ours.instance_id.as_deref() {
            Some(server) if Some(server) == on => NovaNetworkStep::Done,
            None => NovaNetworkStep::Associate,
            Some(server) if server == source => NovaNetworkStep::Associate,
            // Another server of the project uses it: it is not this migration's to take.
            Some(other) => {
                NovaNetworkStep::Unavailable(format!("floating IP {wanted} is on server {other} in the target"))
            }
        };
    }
    let free_others =
        |pool: &str| target.pools.iter().any(|f| f.pool == pool && f.address != wanted && f.project_id.is_none());
    // nova-network allocates any free address of a pool: an explicit address only when it is
    // the pool's one free address.
    let not_alone = |pool: &str| {
        NovaNetworkStep::Unavailable(format!(
            "floating IP {wanted}: pool {pool:?} in the target has other free addresses, so nova-network cannot allocate exactly this one"
        ))
    };
    match target.pools.iter().find(|f| f.address == wanted) {
        Some(taken) if taken.project_id.is_some() => NovaNetworkStep::Unavailable(format!(
            "floating IP {wanted} is allocated to project {} in the target",
            taken.project_id.as_deref().unwrap_or_default()
        )),
        Some(free) if free_others(&free.pool) => not_alone(&free.pool),
        Some(free) => NovaNetworkStep::Allocate { pool: free.pool.clone() },
        None if free_others(&address.pool) => not_alone(&address.pool),
        None => NovaNetworkStep::CreateRange {
            ip_range: format!("{wanted}/32"),
            pool: address.pool.clone(),
            interface: address.interface.clone(),
        },
    }
}

/// One change in OpenStack, done after the status is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    StopSource {
        server_id: String,
    },
    StartSource {
        server_id: String,
    },
    CreateSnapshot {
        server_id: String,
        name: String,
    },
    DeleteSource {
        server_id: String,
    },
    /// A port with the source port's fixed IPs and MAC (`preserveFixedIPs`).
    RecreatePort {
        source_port_id: String,
        network_id: String,
    },
    Boot(ServerCreate),
    AssociateFloatingIp {
        floating_ip_id: String,
        port_id: String,
        fixed_ip: Option<String>,
    },
    /// nova-network: add addresses to a pool (`os-floating-ips-bulk`).
    CreateFloatingIpRange {
        ip_range: String,
        pool: String,
        interface: Option<String>,
    },
    /// nova-network: allocate an address of a pool to the project.
    AllocateFloatingIp {
        pool: String,
    },
    /// nova-network: put an allocated address on a server (`addFloatingIp`).
    AddFloatingIp {
        server_id: String,
        address: String,
    },
    /// Protects the snapshot from deletion (or lifts that before it is deleted).
    ProtectSnapshot {
        image_id: String,
        protected: bool,
    },
    DeleteSnapshot {
        image_id: String,
    },
    DeleteTarget {
        server_id: String,
    },
    DeleteTwin(Twin),
}

/// What a change made that the status must hold at once: the next observation looks for it
/// by this id, and notices if it vanishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Made {
    Snapshot(String),
    Target(String),
}

/// The planner's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: InstanceMigrationStatus,
    pub action: Option<Action>,
    /// Look again after this long (OpenStack is polled; Kubernetes changes wake us anyway).
    pub requeue: Option<Duration>,
}

/// Every problem of the spec that the schema could not catch.
pub fn validate(spec: &InstanceMigrationSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.server.trim() != spec.server {
        validation::error(&mut errors, "spec.server", "must not start or end with white space");
    }
    validation::check_migration_options(&spec.options, &spec.source, "spec", &mut errors);
    errors
}

/// Whether the migration may have changed something in OpenStack: from then on its spec is
/// the one it was accepted with (until then, the spec may still be corrected).
pub fn options_fixed(status: &InstanceMigrationStatus) -> bool {
    use MigrationPhase::*;
    let nothing_changed = status.source.is_none() && status.snapshot.is_none() && status.target.is_none();
    !(matches!(status.phase, Pending | Recording | Failed) && nothing_changed)
}

/// The spec a migration acts on: the one it was accepted with once its options are fixed
/// (a migration accepted before osmo recorded it acts on the spec as it is), else the spec as
/// submitted.
pub fn acting_spec<'a>(
    submitted: &'a InstanceMigrationSpec,
    status: Option<&'a InstanceMigrationStatus>,
) -> &'a InstanceMigrationSpec {
    match status {
        Some(status) if options_fixed(status) => status.accepted_spec.as_ref().unwrap_or(submitted),
        _ => submitted,
    }
}

pub fn plan(input: &Input<'_>, observed: &Observed) -> Decision {
    let mut status = input.status.cloned().unwrap_or_default();
    status.observed_generation = input.generation;
    status.target_description = Some(input.spec.options.target.describe()).filter(|d| !d.is_empty());
    let mut p = Planner { input, status, action: None, requeue: None };
    p.step(observed);
    p.accept_or_report_spec();
    Decision { status: p.status, action: p.action, requeue: p.requeue }
}

/// The first status of a resource the operator has just seen: accepted (or refused) and
/// `Pending`, written before anything is asked of OpenStack, so that a busy operator shows at
/// once that it has seen it.
pub fn acknowledge(input: &Input<'_>) -> InstanceMigrationStatus {
    let mut status = input.status.cloned().unwrap_or_default();
    status.observed_generation = input.generation;
    status.target_description = Some(input.spec.options.target.describe()).filter(|d| !d.is_empty());
    let mut p = Planner { input, status, action: None, requeue: None };
    if p.validate() {
        p.set_progress(MigrationPhase::Pending, MigrationPhase::Pending.description());
    }
    p.accept_or_report_spec();
    p.status
}

/// The status `status` becomes with what its change made (the create it sent has landed).
pub fn hold(status: &InstanceMigrationStatus, made: Made) -> InstanceMigrationStatus {
    let mut status = status.clone();
    status.create_sent_at = None;
    match made {
        Made::Snapshot(id) => {
            status.snapshot = Some(SnapshotStatus {
                image_id: id,
                status: ImageStatus::Queued.to_string(),
                size_bytes: None,
                protected: false,
            })
        }
        Made::Target(id) => {
            status.target = Some(TargetServerStatus {
                server_id: id,
                status: ServerStatus::Build.to_string(),
                ..Default::default()
            })
        }
    }
    status
}

/// The status after an OpenStack change failed for good: rolled back while the source
/// exists, otherwise ended saying what remains.
pub fn fail(input: &Input<'_>, reason: &'static str, message: String) -> Decision {
    let mut status = input.status.cloned().unwrap_or_default();
    status.observed_generation = input.generation;
    let mut p = Planner { input, status, action: None, requeue: None };
    p.fail(reason, message);
    p.accept_or_report_spec();
    Decision { status: p.status, action: p.action, requeue: p.requeue }
}

struct Planner<'a> {
    input: &'a Input<'a>,
    status: InstanceMigrationStatus,
    action: Option<Action>,
    requeue: Option<Duration>,
}

impl Planner<'_> {
    /// Records the spec acted on while it may still change, and once the options are fixed
    /// reports a submitted spec that differs from it (ignored; a warning event says so).
    fn accept_or_report_spec(&mut self) {
        // The decision that fixes the options is made with the spec it records.
        if self.input.status.is_none_or(|before| !options_fixed(before)) {
            self.status.accepted_spec = Some(self.input.spec.clone());
            return;
        }
        // Every condition holds for the generation just observed, since its edit changes
        // nothing (`kubectl wait` ignores a condition of an older generation).
        for condition in &mut self.status.conditions {
            condition.observed_generation = self.input.generation;
        }
        let differs = self.status.accepted_spec.as_ref().is_some_and(|accepted| accepted != self.input.submitted);
        let reported = conditions::get(&self.status.conditions, condition_type::SPEC_CHANGE_IGNORED).is_some();
        let (status, reason, message) = match (differs, reported) {
            (true, _) => (
                ConditionStatus::True,
                "MigrationStarted",
                format!(
                    "The spec was changed (generation {}) after the migration changed something in OpenStack. \
                     A migration acts on the options it was accepted with (status.acceptedSpec): the change is \
                     ignored. To migrate with other options, delete this InstanceMigration and create a new one.",
                    self.input.generation.unwrap_or_default()
                ),
            ),
            (false, true) => (
                ConditionStatus::False,
                "AsAccepted",
                "The spec is the one the migration was accepted with.".to_string(),
            ),
            (false, false) => return,
        };
        let setter = self.conditions();
        setter.set(&mut self.status.conditions, condition_type::SPEC_CHANGE_IGNORED, status, reason, &message);
    }

    fn step(&mut self, observed: &Observed) {
        if !self.validate() {
            return;
        }
        if let Some(twin) = observed.twins.first() {
            // A create that landed late made a second snapshot or replacement: it goes first,
            // and the phase goes on from the next look.
            if !self.status.deleted_twins.iter().any(|id| id == twin.id()) {
                self.status.deleted_twins.push(twin.id().to_string());
            }
            self.action = Some(Action::DeleteTwin(twin.clone()));
            self.requeue = Some(Duration::ZERO);
            return;
        }
        self.phase_step(observed);
    }

    /// Validates the spec while it may still be corrected (until something has changed in
    /// OpenStack); whether the migration may go on.
    fn validate(&mut self) -> bool {
        use MigrationPhase::*;
        let (generation, now) = (self.input.generation, self.input.now);
        let nothing_changed =
            self.status.source.is_none() && self.status.snapshot.is_none() && self.status.target.is_none();
        if !(matches!(self.status.phase, Pending | Recording | Failed) && nothing_changed) {
            return true;
        }
        match conditions::apply_validation(&mut self.status.conditions, &validate(self.input.spec), generation, now) {
            Validated::Invalid(message) => {
                self.status.phase = Failed;
                self.status.last_error = Some(message);
                false
            }
            Validated::Corrected => {
                self.status = InstanceMigrationStatus {
                    conditions: std::mem::take(&mut self.status.conditions),
                    ..Default::default()
                };
                self.status.observed_generation = generation;
                self.status.target_description =
                    Some(self.input.spec.options.target.describe()).filter(|d| !d.is_empty());
                true
            }
            Validated::Valid => true,
        }
    }

    /// Decides from `observed` what the current phase does next.
    fn phase_step(&mut self, observed: &Observed) {
        use MigrationPhase::*;
        match self.status.phase {
            Succeeded | Failed => {}
            Pending if self.input.deleting => self.finish_failed(
                "Deleted",
                "The resource was deleted before the migration started; nothing was changed.",
            ),
            Pending => {
                self.enter(Recording);
                self.recording(observed)
            }
            Recording => self.recording(observed),
            Stopping => self.stopping(observed),
            Snapshotting => self.snapshotting(observed),
            DeletingSource => self.deleting_source(observed),
            Booting => self.booting(observed),
            MovingAddresses => self.moving_addresses(observed),
            Verifying => self.verifying(observed),
            CleaningUp => self.cleaning_up(observed),
            RollingBack => self.rolling_back(observed),
        }
    }

    fn strategy(&self) -> Strategy {
        self.input.spec.options.strategy
    }

    /// The reason of the failure being rolled back.
    fn failure_reason(&self) -> String {
        conditions::get(&self.status.conditions, condition_type::FAILED)
            .map(|c| c.reason.clone())
            .unwrap_or_else(|| "Failed".into())
    }

    /// Moves to the phase after `from` in the strategy's order (or to success). A phase outside
    /// that order never leads anywhere, least of all to success.
    fn advance(&mut self, from: MigrationPhase) {
        let strategy = self.strategy();
        if from != MigrationPhase::Recording && !MigrationPhase::order(strategy).contains(&from) {
            return self.fail(
                "PhaseOutOfOrder",
                format!("phase {from:?} is not a step of the {strategy:?} strategy; the migration stops here"),
            );
        }
        match from.next(strategy) {
            Some(phase) => self.enter(phase),
            None => self.succeed(),
        }
    }

    /// Ends the running step and starts `phase`.
    fn enter(&mut self, phase: MigrationPhase) {
        self.end_running_step();
        self.status.phase = phase;
        self.status.start_step(phase, self.input.now);
        self.set_progress(phase, phase.description());
        self.requeue = Some(Duration::ZERO);
    }

    /// `Progressing` names the step (one event per step); `Ready` stays `InProgress` meanwhile,
    /// so that it changes, with an event, only when the migration ends.
    fn set_progress(&mut self, phase: MigrationPhase, message: &str) {
        let reason = format!("{phase:?}");
        let conditions = self.conditions();
        conditions.set(
            &mut self.status.conditions,
            condition_type::PROGRESSING,
            ConditionStatus::True,
            &reason,
            message,
        );
        conditions.set(
            &mut self.status.conditions,
            condition_type::READY,
            ConditionStatus::False,
            "InProgress",
            message,
        );
    }

    fn conditions(&self) -> Setter {
        Setter { generation: self.input.generation, now: self.input.now }
    }

    /// How long the current step has run.
    fn step_elapsed(&self) -> Duration {
        self.status
            .running_step()
            .and_then(StepRecord::started)
            .map(|t| self.input.now.duration_since(t).unsigned_abs())
            .unwrap_or_default()
    }

    /// How long the running step has been watched by this operator.
    fn step_watched(&self) -> Duration {
        let acting = Duration::try_from(self.input.now.duration_since(self.input.acting_since)).unwrap_or_default();
        self.step_elapsed().min(acting)
    }

    /// Polls again soon: often at first, then less, as OpenStack's transitions take from a
    /// fraction of a second (stop) to minutes (a large snapshot).
    fn poll(&mut self) {
        let elapsed = self.step_elapsed();
        // The first look comes when the step is usually done (at most FIRST_LOOK_AT_MOST late),
        // so that a step as quick as before costs one look.
        let usual = self.input.usual_steps.get(&self.status.phase).map(|d| (*d).min(FIRST_LOOK_AT_MOST));
        let interval = match usual {
            Some(usual) if elapsed + LOOK_INTERVAL_MIN <= usual => usual - elapsed,
            // Then half the time since, and no less than an eighth of the usual time: the n-th
            // look comes about 1.5^n times the first, so a 1 s step is seen done within half a
            // second of it, a 10 min snapshot in a dozen looks.
            Some(usual) => {
                ((elapsed.saturating_sub(usual) / 2).max(usual / 8)).clamp(LOOK_INTERVAL_MIN, LOOK_INTERVAL_MAX)
            }
            // A step not seen before is looked at a little less eagerly.
            None => (elapsed / 2).clamp(UNKNOWN_STEP_LOOK_INTERVAL_MIN, LOOK_INTERVAL_MAX),
        };
        self.requeue = Some(interval);
    }

    /// Fails the migration if the current step ran out of time; returns whether it did.
    fn timed_out(&mut self, phase: MigrationPhase) -> bool {
        let limit = phase.timeout(&self.input.spec.options.timeouts);
        if self.step_watched() > limit {
            self.fail("Timeout", format!("{phase:?} took longer than {}s", limit.as_secs()));
            return true;
        }
        false
    }

    /// Something went wrong: roll back while the source exists, else stop and say what remains.
    fn fail(&mut self, reason: &'static str, message: String) {
        let cleaning_up = MigrationPhase::CleaningUp;
        if self.status.phase == cleaning_up && MigrationPhase::order(self.strategy()).contains(&cleaning_up) {
            // The move is verified: a snapshot that will not go (a copy-on-write clone of it may
            // exist, as on Ceph) is worth a note and another try, never a failure. The step's
            // time-out ends the tries, with the note.
            self.status.last_error = Some(format!("the snapshot is not deleted yet, retrying: {message}"));
            return self.poll();
        }
        let source_exists = self.status.phase.source_may_exist(self.strategy());
        self.fail_knowing(reason, message, source_exists);
    }

    /// Like [`fail`](Self::fail), where the caller has just seen whether the source exists.
    fn fail_knowing(&mut self, reason: &'static str, message: String, source_exists: bool) {
        self.status.fail_running_step(self.input.now, &message);
        self.status.last_error = Some(message.clone());
        if source_exists && self.status.source.is_some() && self.status.phase != MigrationPhase::RollingBack {
            // Failed stays Unknown until the rollback is done, so that `kubectl wait
            // --for=condition=Failed` returns with the source restored.
            let rolling_back = format!("{message}; rolling back");
            let failed = (condition_type::FAILED, ConditionStatus::Unknown);
            self.conditions().set(&mut self.status.conditions, failed.0, failed.1, reason, &rolling_back);
            self.status.phase = MigrationPhase::RollingBack;
            self.status.start_step(MigrationPhase::RollingBack, self.input.now);
            self.set_progress(
                MigrationPhase::RollingBack,
                "Undoing: the source is restarted if it was running and the snapshot deleted.",
            );
            self.requeue = Some(Duration::ZERO);
        } else {
            let remains = self.what_remains();
            self.finish_failed(reason, &format!("{message}. {remains}"));
        }
    }

    /// Ends in `Failed` with the given reason (the source untouched or restored, or what
    /// remains listed in the message).
    fn finish_failed(&mut self, reason: &str, message: &str) {
        self.status.phase = MigrationPhase::Failed;
        if self.status.last_error.is_none() {
            self.status.last_error = Some(message.to_string());
        }
        self.conditions().report(&mut self.status.conditions, [false, false, true], reason, message);
        self.requeue = None;
    }

    /// The running step was seen done (a step started from the very look that shows it done
    /// ends as it starts).
    fn end_running_step(&mut self) {
        let seen_at = self.input.seen_at;
        let started = self.status.running_step().and_then(StepRecord::started);
        self.status.finish_running_step(seen_at.max(started.unwrap_or(seen_at)));
    }

    fn succeed(&mut self) {
        self.end_running_step();
        self.status.phase = MigrationPhase::Succeeded;
        let target = self
            .status
            .target
            .as_ref()
            .map(|t| format!("{} on {}", t.server_id, t.host.as_deref().unwrap_or("?")))
            .unwrap_or_default();
        let message = format!("The server runs as {target}, with its addresses.");
        self.conditions().report(&mut self.status.conditions, [false, true, false], "Succeeded", &message);
        self.requeue = None;
    }

    /// What a failed migration leaves behind, for people to act on.
    fn what_remains(&self) -> String {
        let s = &self.status;
        let mut parts = Vec::new();
        if let Some(source) = &s.source {
            let state = if s.phase.source_deleted(self.strategy()) { "is deleted" } else { "still exists" };
            parts.push(format!("source server {} ({}) {state}", source.name, source.id));
        }
        if let Some(snapshot) = &s.snapshot {
            parts.push(format!("snapshot {} is kept", snapshot.image_id));
        }
        if let Some(target) = &s.target {
            parts.push(format!("replacement {} is {}", target.server_id, target.status));
        }
        let neutron = s.source.iter().flat_map(|r| &r.ports).flat_map(|p| &p.floating_ips).map(|f| f.address.as_str());
        let nova_network = s.source.iter().flat_map(|r| &r.nova_network_floating_ips).map(|f| f.address.as_str());
        let fips: Vec<_> = neutron.chain(nova_network).collect();
        if !fips.is_empty() {
            parts.push(format!("floating IPs {} stay allocated to the project", fips.join(", ")));
        }
        if parts.is_empty() { "Nothing was changed.".into() } else { format!("What remains: {}.", parts.join("; ")) }
    }

    // ---- phases -------------------------------------------------------------------------

    fn recording(&mut self, observed: &Observed) {
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

    fn nova_network(&self) -> bool {
        self.input.spec.options.addresses.mode == AddressMode::NovaNetwork
    }

    /// A recorded nova-network address that the target cannot give back, before anything
    /// changes.
    fn unavailable_address(&self, record: &RecordedServer, observed: &Observed) -> Option<String> {
        let target = observed.nova_network.as_ref()?;
        record.nova_network_floating_ips.iter().find_map(|fip| match nova_network_step(fip, &record.id, None, target) {
            NovaNetworkStep::Unavailable(problem) => Some(problem),
            _ => None,
        })
    }

    fn mark_skipped(&mut self, phase: MigrationPhase) {
        if let Some(step) = self.status.steps.iter_mut().find(|s| s.name == phase) {
            step.result = StepResult::Skipped;
            step.finished_at = Some(step.started_at.clone());
        }
    }

    fn source_id(&self) -> String {
        self.status.source.as_ref().map(|s| s.id.clone()).unwrap_or_default()
    }

    fn stopping(&mut self, observed: &Observed) {
        if self.input.deleting {
            return self.abort();
        }
        match &observed.source {
            None => self
                .fail("SourceVanished", format!("source server {} disappeared while being stopped", self.source_id())),
            Some(s) if s.settled(ServerStatus::Shutoff) => {
                // Seen off and idle just now: the snapshot (or the replacement) is made at once;
                // nothing of it can exist yet, as only the next phase makes it.
                self.advance(MigrationPhase::Stopping);
                self.phase_step(observed)
            }
            Some(s) if s.status == ServerStatus::Error => {
                self.fail("SourceError", format!("source server {} is in ERROR", s.id))
            }
            Some(_) if self.timed_out(MigrationPhase::Stopping) => {}
            Some(s) => {
                if s.task_state.is_none() {
                    self.action = Some(Action::StopSource { server_id: s.id.clone() });
                }
                self.poll();
            }
        }
    }

    fn snapshotting(&mut self, observed: &Observed) {
        if self.input.deleting {
            return self.abort();
        }
        if let Some(image) = &observed.snapshot {
            self.status.snapshot = Some(SnapshotStatus {
                image_id: image.id.clone(),
                status: image.status.to_string(),
                size_bytes: image.size,
                protected: image.protected,
            });
            self.status.create_sent_at = None;
        }
        // The source is looked at only when the snapshot is to be made.
        let source_vanished = || format!("source server {} disappeared during its snapshot", self.source_id());
        match (&observed.snapshot, &observed.source) {
            (None, _) if self.status.snapshot.is_some() => {
                self.fail("SnapshotLost", "the snapshot disappeared from Glance before it was active".into())
            }
            (None, None) => self.fail("SourceVanished", source_vanished()),
            (None, Some(source)) => {
                if source.task_state.is_none() && !self.create_in_flight() {
                    let name =
                        format!("osmo-{}", self.status.source.as_ref().map(|s| s.name.as_str()).unwrap_or("server"));
                    self.send_create(Action::CreateSnapshot { server_id: source.id.clone(), name });
                }
                self.poll();
            }
            (Some(image), _) if image.status == ImageStatus::Killed || image.status.is_gone() => {
                self.fail("SnapshotFailed", format!("snapshot {} ended {} in Glance", image.id, image.status))
            }
            (Some(image), _) if image.status == ImageStatus::Active => {
                let recorded = self.status.source.clone().unwrap_or_default();
                if let Some(why) = image.unverified(&recorded) {
                    return self.fail("SnapshotNotVerified", why);
                }
                // About to be the only copy: nobody may delete it until the replacement is verified.
                if !image.protected {
                    return self.protect_snapshot(&image.id, true);
                }
                // Glance holds the whole snapshot, protected: the source is deleted from this
                // very look. Nova deletes a server whatever task it is finishing, and keeps an
                // active snapshot of a server deleted during its upload; a source already gone
                // makes the deletion a no-op.
                self.advance(MigrationPhase::Snapshotting);
                self.delete_source()
            }
            _ if self.timed_out(MigrationPhase::Snapshotting) => {}
            _ => self.poll(),
        }
    }

    fn deleting_source(&mut self, observed: &Observed) {
        match &observed.source {
            None => {
                // Gone: a snapshot migration boots at once, with the surviving ports just read
                // (no replacement can exist yet: only Booting makes one).
                self.advance(MigrationPhase::DeletingSource);
                self.phase_step(observed)
            }
            Some(_) if self.timed_out(MigrationPhase::DeletingSource) => {}
            Some(source) if source.is_deleting() => self.poll(),
            Some(source) => {
                // The one destructive step: only with the replacement's material verified now.
                let recorded = self.status.source.clone().unwrap_or_default();
                let snapshot = observed.snapshot.as_ref().filter(|i| i.status == ImageStatus::Active);
                if let Some(image) = snapshot.filter(|i| !i.protected && i.unverified(&recorded).is_none()) {
                    return self.protect_snapshot(&image.id, true);
                }
                let verified = match self.strategy() {
                    Strategy::Snapshot => snapshot.is_some_and(|i| i.protected && i.unverified(&recorded).is_none()),
                    Strategy::Redeploy => observed.target.as_ref().is_some_and(|t| t.settled(ServerStatus::Active)),
                };
                if !verified {
                    return self.fail_knowing(
                        "ReplacementNotVerified",
                        format!(
                            "refusing to delete source server {}: what replaces it is not verified to exist",
                            source.id
                        ),
                        true,
                    );
                }
                self.delete_source()
            }
        }
    }

    /// Protects the snapshot (or lifts that); Glance's answer shows the outcome, and the
    /// decision goes on from it at once.
    fn protect_snapshot(&mut self, image_id: &str, protected: bool) {
        self.action = Some(Action::ProtectSnapshot { image_id: image_id.to_string(), protected });
        self.requeue = Some(Duration::ZERO);
    }

    fn delete_source(&mut self) {
        self.action = Some(Action::DeleteSource { server_id: self.source_id() });
        self.poll();
    }

    fn booting(&mut self, observed: &Observed) {
        if self.input.deleting && self.strategy() == Strategy::Redeploy {
            return self.abort();
        }
        if let Some(target) = &observed.target {
            self.record_target(target);
            return match &target.status {
                ServerStatus::Active if target.task_state.is_none() => {
                    self.assign_new_ports(observed);
                    // The floating IPs were read with the replacement's ports: move them now.
                    self.advance(MigrationPhase::Booting);
                    self.phase_step(observed)
                }
                ServerStatus::Error => self.fail(
                    "BootFailed",
                    format!(
                        "replacement {} went to ERROR: {}",
                        target.id,
                        target.fault.as_deref().unwrap_or("no fault given")
                    ),
                ),
                _ if self.timed_out(MigrationPhase::Booting) => {}
                _ => self.poll(),
            };
        }
        if self.create_in_flight() {
            return self.poll();
        }
        let base = match (&self.status.boot_base, &observed.boot) {
            (Some(base), _) | (None, Some(Ok(base))) => base.clone(),
            // A status written before the base was recorded: it is resolved now.
            (None, None) => return self.poll(),
            (None, Some(Err(refusal))) => return self.fail(refusal.reason, refusal.message.clone()),
        };
        self.status.boot_base = Some(base.clone());
        let Some(record) = self.status.source.clone() else {
            return self.fail("NoRecord", "the source was not recorded".into());
        };
        let image_id = match self.strategy() {
            Strategy::Snapshot => self.status.snapshot.as_ref().map(|s| s.image_id.clone()),
            Strategy::Redeploy => base.image_id.clone(),
        };
        let Some(image_id) = image_id else {
            return self.fail("NoImage", "no image to boot the replacement from".into());
        };
        let mut networks = Vec::new();
        for port in &record.ports {
            let target_network =
                base.networks.get(&port.network_id).cloned().unwrap_or_else(|| port.network_id.clone());
            let reuse = self.strategy() == Strategy::Snapshot && observed.surviving_ports.contains(&port.id);
            if reuse {
                self.remember_port(&port.id, &port.id, "Reused");
                networks.push(NetworkAttachment::Port(port.id.clone()));
            } else if self.strategy() == Strategy::Snapshot && self.input.spec.options.addresses.preserve_fixed_ips {
                match observed.created_ports.get(&port.id) {
                    Some(created) => {
                        self.remember_port(&port.id, created, "Recreated");
                        networks.push(NetworkAttachment::Port(created.clone()));
                    }
                    None => {
                        // One port at a time; the boot comes once every port exists.
                        self.action =
                            Some(Action::RecreatePort { source_port_id: port.id.clone(), network_id: target_network });
                        self.requeue = Some(Duration::ZERO);
                        return;
                    }
                }
            } else {
                networks.push(NetworkAttachment::Network { id: target_network, fixed_ip: None });
            }
        }
        if networks.is_empty() && self.nova_network() {
            // nova-network has no ports: the project's network gives the fixed IP that the
            // floating IPs map to.
            networks.push(NetworkAttachment::Auto);
        }
        let target = &self.input.spec.options.target;
        let mut metadata = record.metadata.clone();
        metadata.insert(UID_KEY.to_string(), self.input.uid.to_string());
        // Existing ports carry their own security groups; Nova applies these to the ports it
        // makes.
        let all_ports = !networks.is_empty() && networks.iter().all(|n| matches!(n, NetworkAttachment::Port(_)));
        self.send_create(Action::Boot(ServerCreate {
            name: record.name.clone(),
            image_id,
            flavor_id: base.flavor_id,
            key_name: record.key_name.clone(),
            security_groups: if all_ports { Vec::new() } else { record.security_groups.clone() },
            metadata,
            availability_zone: target.availability_zone.clone(),
            host: target.host.clone(),
            networks,
            idempotency_key: UID_KEY.to_string(),
        }));
        self.poll();
    }

    /// Whether a create sent earlier may still land: Nova finishes a request whose sender is
    /// gone, and a lookup before it has cannot see what it makes.
    fn create_in_flight(&self) -> bool {
        let sent = self.status.create_sent_at.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
        sent.is_some_and(|sent| self.input.now.duration_since(sent) < CREATE_FENCE)
    }

    fn send_create(&mut self, action: Action) {
        // An earlier create was never seen to land: it still may, late.
        self.status.create_repeated |= self.status.create_sent_at.is_some();
        self.status.create_sent_at = Some(timestamp(self.input.now));
        self.action = Some(action);
    }

    fn record_target(&mut self, target: &ServerState) {
        self.status.create_sent_at = None;
        self.status.target = Some(TargetServerStatus {
            server_id: target.id.clone(),
            status: target.status.to_string(),
            host: target.host.clone(),
            availability_zone: target.availability_zone.clone(),
        });
    }

    fn remember_port(&mut self, source_port_id: &str, port_id: &str, origin: &str) {
        if !self.status.target_ports.iter().any(|p| p.source_port_id == source_port_id) {
            self.status.target_ports.push(TargetPort {
                source_port_id: source_port_id.into(),
                port_id: port_id.into(),
                origin: origin.into(),
            });
        }
    }

    /// Matches the replacement's new ports to the source's ports, network by network.
    fn assign_new_ports(&mut self, observed: &Observed) {
        let Some(record) = self.status.source.clone() else { return };
        let taken: BTreeSet<String> = self.status.target_ports.iter().map(|p| p.port_id.clone()).collect();
        let mut free: Vec<&(String, String)> =
            observed.target_ports.iter().filter(|(id, _)| !taken.contains(id)).collect();
        // Exact network matches first; then ports on mapped networks take what is left, in order.
        for exact in [true, false] {
            for port in &record.ports {
                if self.status.target_ports.iter().any(|p| p.source_port_id == port.id) {
                    continue;
                }
                let found = if exact {
                    free.iter().position(|(_, net)| *net == port.network_id)
                } else {
                    (!free.is_empty()).then_some(0)
                };
                if let Some(i) = found {
                    let (id, _) = free.remove(i);
                    self.remember_port(&port.id, id, "New");
                }
            }
        }
        let order: Vec<&str> = record.ports.iter().map(|p| p.id.as_str()).collect();
        self.status.target_ports.sort_by_key(|t| order.iter().position(|id| *id == t.source_port_id));
    }

    /// Each recorded floating IP and the port (and fixed IP) it must end on.
    fn floating_ip_targets(&self) -> Vec<(String, String, Option<String>)> {
        let Some(record) = &self.status.source else { return Vec::new() };
        let mut out = Vec::new();
        for port in &record.ports {
            let Some(target) = self.status.target_ports.iter().find(|p| p.source_port_id == port.id) else { continue };
            for fip in &port.floating_ips {
                let fixed = if target.origin == "New" { None } else { fip.fixed_ip_address.clone() };
                out.push((fip.id.clone(), target.port_id.clone(), fixed));
            }
        }
        out
    }

    /// A source port with floating IPs for which the replacement has no port, if any.
    fn unmatched_floating_ip(&self) -> Option<String> {
        let record = self.status.source.as_ref()?;
        let lost = record
            .ports
            .iter()
            .filter(|p| !p.floating_ips.is_empty())
            .find(|p| !self.status.target_ports.iter().any(|t| t.source_port_id == p.id))?;
        Some(format!(
            "no port of the replacement stands for source port {} (floating IP {})",
            lost.id, lost.floating_ips[0].address
        ))
    }

    fn moving_addresses(&mut self, observed: &Observed) {
        match self.input.spec.options.addresses.mode {
            AddressMode::None => {}
            AddressMode::NovaNetwork => return self.moving_nova_network_addresses(observed),
            AddressMode::Neutron => {
                if let Some(problem) = self.unmatched_floating_ip() {
                    return self.fail("AddressesNotMoved", problem);
                }
                // Floating IPs not looked at are moved as well: moving one again is harmless.
                for (fip, port, fixed) in self.floating_ip_targets() {
                    if observed.floating_ips.get(&fip).cloned().flatten().as_deref() != Some(port.as_str()) {
                        if self.timed_out(MigrationPhase::MovingAddresses) {
                            return;
                        }
                        // One at a time: Neutron's answer (or the next look) shows where it went.
                        self.action =
                            Some(Action::AssociateFloatingIp { floating_ip_id: fip, port_id: port, fixed_ip: fixed });
                        self.poll();
                        return;
                    }
                }
            }
        }
        self.advance(MigrationPhase::MovingAddresses);
        // Verified from this reconcile's look at the replacement and Neutron's answers to the
        // moves; without a look at the replacement (after a restart), Verifying looks afresh.
        if observed.target.is_some() {
            self.phase_step(observed)
        }
    }

    /// Each recorded address in turn: recreated in its pool, allocated, put on the replacement.
    fn moving_nova_network_addresses(&mut self, observed: &Observed) {
        let Some(target) = &observed.nova_network else { return self.poll() };
        let server_id = self.status.target.as_ref().map(|t| t.server_id.clone()).unwrap_or_default();
        let source_id = self.source_id();
        let addresses = self.status.source.iter().flat_map(|r| r.nova_network_floating_ips.clone()).collect::<Vec<_>>();
        for fip in addresses {
            let action = match nova_network_step(&fip, &source_id, Some(&server_id), target) {
                NovaNetworkStep::Done => continue,
                NovaNetworkStep::Unavailable(problem) => return self.fail("AddressesNotMoved", problem),
                NovaNetworkStep::CreateRange { ip_range, pool, interface } => {
                    Action::CreateFloatingIpRange { ip_range, pool, interface }
                }
                NovaNetworkStep::Allocate { pool } => Action::AllocateFloatingIp { pool },
                NovaNetworkStep::Associate => Action::AddFloatingIp { server_id, address: fip.address },
            };
            if self.timed_out(MigrationPhase::MovingAddresses) {
                return;
            }
            // One change at a time: each is seen by the next observation before the next.
            self.action = Some(action);
            return self.poll();
        }
        self.advance(MigrationPhase::MovingAddresses);
    }

    /// Whether every recorded address is on the replacement, as the target shows it now.
    fn addresses_in_place(&self, observed: &Observed, server_id: &str) -> bool {
        match self.input.spec.options.addresses.mode {
            AddressMode::None => true,
            AddressMode::NovaNetwork => observed.nova_network.as_ref().is_some_and(|target| {
                self.status.source.iter().flat_map(|r| &r.nova_network_floating_ips).all(|fip| {
                    nova_network_step(fip, &self.source_id(), Some(server_id), target) == NovaNetworkStep::Done
                })
            }),
            AddressMode::Neutron => {
                self.unmatched_floating_ip().is_none()
                    && self.floating_ip_targets().iter().all(|(fip, port, _)| {
                        observed.floating_ips.get(fip).cloned().flatten().as_deref() == Some(port.as_str())
                    })
            }
        }
    }

    fn verifying(&mut self, observed: &Observed) {
        let Some(target) = &observed.target else {
            return self.fail("ReplacementVanished", "the replacement disappeared before it was verified".into());
        };
        self.record_target(target);
        if !target.settled(ServerStatus::Active) {
            return self.fail("ReplacementNotActive", format!("replacement {} is {}", target.id, target.status));
        }
        if !self.addresses_in_place(observed, &target.id) {
            return self.fail("AddressesNotMoved", "a floating IP is not on the replacement".into());
        }
        self.record_downtime();
        self.advance(MigrationPhase::Verifying);
        match (self.status.phase, &self.status.snapshot, &observed.source) {
            // Verified just now: the snapshot goes (deleting one already gone is harmless).
            (MigrationPhase::CleaningUp, Some(snapshot), _)
                if self.input.spec.options.snapshot_cleanup == SnapshotCleanup::Delete && !snapshot.protected =>
            {
                self.action = Some(Action::DeleteSnapshot { image_id: snapshot.image_id.clone() });
                self.poll();
            }
            // A retained or protected snapshot needs no look.
            (MigrationPhase::CleaningUp, ..) => self.phase_step(observed),
            // A redeployed source goes last, decided from this look at it and at its
            // replacement; unseen, it is looked at again first.
            (MigrationPhase::DeletingSource, _, Some(_)) => self.phase_step(observed),
            _ => {}
        }
    }

    /// Downtime: from the source's stop (or deletion, when it was not running) to the
    /// replacement verified with its addresses.
    fn record_downtime(&mut self) {
        let started = self
            .status
            .steps
            .iter()
            .find(|s| s.name == MigrationPhase::Stopping && s.result != StepResult::Skipped)
            // Not stopped first: a redeployed source serves until its addresses move; a
            // snapshotted one until it is deleted.
            .or_else(|| {
                let down_from = match self.strategy() {
                    Strategy::Redeploy => MigrationPhase::MovingAddresses,
                    Strategy::Snapshot => MigrationPhase::DeletingSource,
                };
                self.status.steps.iter().find(|s| s.name == down_from)
            })
            .and_then(StepRecord::started);
        if let Some(start) = started {
            let seconds = self.input.now.duration_since(start).as_secs_f64().max(0.0);
            self.status.downtime = Some(format!("{seconds:.1}s"));
        }
    }

    fn cleaning_up(&mut self, observed: &Observed) {
        if let (Some(image), Some(recorded)) = (&observed.snapshot, self.status.snapshot.as_mut()) {
            recorded.protected = image.protected;
        }
        // The replacement is verified: the snapshot is no longer the only copy, and its
        // protection goes, whether it is kept or deleted.
        if let Some(snapshot) = self.status.snapshot.as_ref().filter(|s| s.protected) {
            let id = snapshot.image_id.clone();
            return self.protect_snapshot(&id, false);
        }
        if self.input.spec.options.snapshot_cleanup == SnapshotCleanup::Retain {
            return self.advance(MigrationPhase::CleaningUp);
        }
        match &observed.snapshot {
            None => {
                if let Some(s) = self.status.snapshot.as_mut() {
                    s.status = ImageStatus::Deleted.to_string();
                }
                self.advance(MigrationPhase::CleaningUp)
            }
            Some(image) if image.status.is_gone() => {
                if let Some(s) = self.status.snapshot.as_mut() {
                    s.status = image.status.to_string();
                }
                self.advance(MigrationPhase::CleaningUp)
            }
            Some(image)
                if self.step_elapsed() > MigrationPhase::CleaningUp.timeout(&self.input.spec.options.timeouts) =>
            {
                // The server has moved: a snapshot that will not go is worth a note, not a failure.
                self.status.last_error =
                    Some(format!("snapshot {} could not be deleted in time; delete it by hand", image.id));
                self.advance(MigrationPhase::CleaningUp)
            }
            Some(image) => {
                self.action = Some(Action::DeleteSnapshot { image_id: image.id.clone() });
                self.poll();
            }
        }
    }

    /// The resource is deleted while the source still exists: undo and stop.
    fn abort(&mut self) {
        let message = "The resource was deleted; the migration stops and the source is left running.".to_string();
        self.status.last_error = Some(message.clone());
        self.status.fail_running_step(self.input.now, &message);
        self.status.phase = MigrationPhase::RollingBack;
        self.status.start_step(MigrationPhase::RollingBack, self.input.now);
        let failed = (condition_type::FAILED, ConditionStatus::Unknown);
        self.conditions().set(&mut self.status.conditions, failed.0, failed.1, "Deleted", &message);
        self.set_progress(
            MigrationPhase::RollingBack,
            "Undoing: the source is restarted if it was running and the snapshot deleted.",
        );
        self.requeue = Some(Duration::ZERO);
    }

    fn rolling_back(&mut self, observed: &Observed) {
        if self.timed_out_quietly() {
            return self.finish_failed(
                "RollbackTimeout",
                &format!("Rolling back took too long. {}", self.what_remains_before_deletion(observed)),
            );
        }
        if let Some(target) = &observed.target
            && self.strategy() == Strategy::Redeploy
        {
            self.action = Some(Action::DeleteTarget { server_id: target.id.clone() });
            return self.poll();
        }
        if let Some(image) = &observed.snapshot
            && !image.status.is_gone()
        {
            if observed.source.is_none() {
                // Without the source the snapshot may be the server's only copy: it is kept
                // (protected, if it was).
                let message = format!(
                    "{}. The source server no longer exists: its snapshot {} is kept (delete it once it is no \
                     longer needed).",
                    self.status.last_error.as_deref().unwrap_or("Failed").trim_end_matches('.'),
                    image.id
                );
                self.status.finish_running_step(self.input.now);
                return self.finish_failed(&self.failure_reason(), &message);
            }
            if image.protected {
                return self.protect_snapshot(&image.id, false);
            }
            self.action = Some(Action::DeleteSnapshot { image_id: image.id.clone() });
            return self.poll();
        }
        let was_running =
            self.status.source.as_ref().is_some_and(|s| ServerStatus::from(s.status.as_str()) == ServerStatus::Active);
        match &observed.source {
            Some(s) if was_running && s.settled(ServerStatus::Shutoff) => {
                self.action = Some(Action::StartSource { server_id: s.id.clone() });
                self.poll();
            }
            Some(s) if was_running && s.status != ServerStatus::Active => self.poll(),
            Some(s) if s.task_state.is_some() => self.poll(),
            _ => {
                if let Some(snapshot) = self.status.snapshot.as_mut() {
                    snapshot.status = ImageStatus::Deleted.to_string();
                }
                let reason = self.failure_reason();
                let error = self.status.last_error.clone().unwrap_or_default();
                let source = if observed.source.is_some() {
                    "The source server is as it was."
                } else {
                    "The source server no longer exists."
                };
                let message = format!("{}. {source}", error.trim_end_matches('.'));
                self.status.finish_running_step(self.input.now);
                self.finish_failed(&reason, message.trim());
            }
        }
    }

    fn timed_out_quietly(&self) -> bool {
        self.step_watched() > MigrationPhase::RollingBack.timeout(&self.input.spec.options.timeouts)
    }

    fn what_remains_before_deletion(&self, observed: &Observed) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &observed.source {
            parts.push(format!("source server {} is {}", s.id, s.status));
        }
        if let Some(i) = &observed.snapshot {
            parts.push(format!("snapshot {} is {}", i.id, i.status));
        }
        format!("What remains: {}.", parts.join("; "))
    }
}
