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

mod addresses;
mod boot;
mod cleanup;
mod deleting_source;
mod nova_network;
mod observed;
mod ports;
mod recording;
mod recovery;
mod rollback;
mod snapshot;
mod stopping;
mod verify;
mod volumes;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

pub use boot::{BootVolume, Nic, Replacement};
pub use nova_network::{AllocatedAddress, NovaNetworkState, NovaNetworkStep, PoolAddress, nova_network_step};
pub use observed::{
    AttachmentState, ComputeServiceView, FoundServer, ImageReach, ImageState, MadePort, Observed, PortSupport, Quota,
    QuotaUse, ServerState, TargetServices, TargetView, Twin, VolumeState,
};
pub use ports::needed_extensions;
pub use recovery::{releasable, retry_requested};

use crate::api::{
    ConditionStatus, InstanceMigrationSpec, InstanceMigrationStatus, MigrationPhase, PortOrigin, SnapshotStatus,
    StepRecord, StepResult, Strategy, TargetServerStatus, condition_type, timestamp,
};
use crate::openstack::states::{ImageStatus, ServerStatus};
use crate::runtime::conditions::{self, Setter, Validated};
use crate::validation::{self, FieldError};

/// Metadata key (server and image) carrying the migration's UID, so that what a crashed
/// operator created is found again instead of made twice.
pub const UID_KEY: &str = "osmo_migration_uid";

/// How long a create request may take to land after it was sent (its sender may have died or
/// given up meanwhile); none is sent again before, and no migration ends before. It outlasts
/// the client's request timeout: a request given up on may still be carried out.
const CREATE_FENCE: jiff::SignedDuration =
    jiff::SignedDuration::from_secs(crate::openstack::session::REQUEST_TIMEOUT.as_secs() as i64 + 30);
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
    /// The `osmo.dev/retry` annotation: a new value retries a migration that failed past its
    /// point of no return.
    pub retry: Option<&'a str>,
    /// The `osmo.dev/accept-loss` annotation names this resource's UID.
    pub loss_accepted: bool,
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
    /// Locks the source (off, before its snapshot) so that nobody starts it meanwhile.
    LockSource {
        server_id: String,
    },
    /// Lifts osmo's lock from a source given back by a rollback.
    UnlockSource {
        server_id: String,
    },
    CreateSnapshot {
        server_id: String,
        name: String,
    },
    DeleteSource {
        server_id: String,
    },
    /// Whether Nova deletes a volume with the server it is attached to (microversion 2.85):
    /// false before the source is deleted, given back to the replacement once it is verified.
    SetDeleteOnTermination {
        server_id: String,
        volume_id: String,
        delete: bool,
    },
    /// Detaches a data volume from a redeployed source: the fresh server boots with it.
    DetachVolume {
        server_id: String,
        volume_id: String,
    },
    /// Attaches a data volume back to the source, as it was (a rollback of a redeploy).
    AttachVolume {
        server_id: String,
        volume: BootVolume,
    },
    /// A port for the replacement, made like the source's port (its fixed IPs and MAC too when
    /// `keep_addresses`), marked so that it is found again until the status holds its ID.
    CreatePort {
        source_port_id: String,
        network_id: String,
        keep_addresses: bool,
    },
    /// The made port, now in the status, gets the source port's description and tags in place
    /// of osmo's marker.
    FinishPort {
        source_port_id: String,
        port_id: String,
    },
    /// A port osmo made for a replacement that a rollback undoes.
    DeletePort {
        port_id: String,
    },
    Boot(Box<Replacement>),
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
    /// Stops the replacement of a source that was off.
    StopTarget {
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
        Some(status) if options_fixed(status) => status.accepted_spec.as_deref().unwrap_or(submitted),
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

/// Whether a create may land that is not the recorded snapshot or replacement: once one was
/// sent again, and while a rollback waits out the last one. Such late twins are looked for (and
/// deleted) on every look until the migration ends.
pub fn late_twins_possible(status: &InstanceMigrationStatus) -> bool {
    let ended = matches!(status.phase, MigrationPhase::Succeeded | MigrationPhase::Failed);
    let rolling_back_with_create_sent = status.phase == MigrationPhase::RollingBack && status.create_sent_at.is_some();
    !ended && (status.create_repeated || rolling_back_with_create_sent)
}

/// Whether `new` says more than `written`, the status written last. What only shows what every
/// look reads again (the snapshot's Glance status and size, the replacement's Nova status, host
/// and zone) waits for the next write worth making, at the latest the step's end: no decision
/// reads it back, and it changes a few times a step, each change a write to the API server.
/// Records of what was made, intents, protection, steps and conditions are always written.
pub fn worth_writing(written: &InstanceMigrationStatus, new: &InstanceMigrationStatus) -> bool {
    let mut shown = new.clone();
    if let (Some(snapshot), Some(before)) = (shown.snapshot.as_mut(), written.snapshot.as_ref())
        && snapshot.image_id == before.image_id
    {
        snapshot.status.clone_from(&before.status);
        snapshot.size_bytes = before.size_bytes;
    }
    if let (Some(target), Some(before)) = (shown.target.as_mut(), written.target.as_ref())
        && target.server_id == before.server_id
    {
        target.status.clone_from(&before.status);
        target.host.clone_from(&before.host);
        target.availability_zone.clone_from(&before.availability_zone);
    }
    shown != *written
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
    if p.status.phase == MigrationPhase::DeletingSource && p.strategy() == Strategy::Snapshot {
        // Nova refused to delete the source (e.g. 409, locked by its owner): it still exists,
        // stopped, and is given back as it was.
        p.fail_knowing(reason, message, true);
    } else {
        p.fail(reason, message);
    }
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
            self.status.accepted_spec = Some(Box::new(self.input.spec.clone()));
            return;
        }
        // Every condition holds for the generation just observed, since its edit changes
        // nothing (`kubectl wait` ignores a condition of an older generation).
        for condition in &mut self.status.conditions {
            condition.observed_generation = self.input.generation;
        }
        let differs = self.status.accepted_spec.as_deref().is_some_and(|accepted| accepted != self.input.submitted);
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
        if let Some(problem) = self.not_as_recorded(observed) {
            // Nothing is done to it, not even a rollback: it may be another server.
            let remains = self.what_remains();
            return self.finish_failed("NotAsRecorded", &format!("{problem}: osmo acts on nothing else. {remains}"));
        }
        self.phase_step(observed);
    }

    /// A server found by an ID from the status whose name or project is not the recorded
    /// one: a stale or altered status must never point a change (least of all a deletion) at
    /// another server.
    fn not_as_recorded(&self, observed: &Observed) -> Option<String> {
        let record = self.status.source.as_ref()?;
        let project = record.project_id.as_ref();
        // The replacement's project is the target credentials' (another cloud's may differ):
        // its name says it is this server's.
        let source_differs = |s: &ServerState| project.is_some_and(|p| s.project_id.as_ref() != Some(p));
        let checks = [("source", &observed.source, true), ("replacement", &observed.target, false)];
        checks.into_iter().find_map(|(what, server, with_project)| {
            let server = server.as_ref().filter(|s| s.name != record.name || (with_project && source_differs(s)))?;
            Some(format!(
                "{what} {} is named {:?} in project {:?}, not {:?} as recorded (project {:?})",
                server.id, server.name, server.project_id, record.name, project
            ))
        })
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
            Succeeded => {}
            Failed => self.failed(),
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
        let interval = match self.input.usual_steps.get(&self.status.phase).copied() {
            Some(usual) => {
                // The first look comes when the step is usually done, at most FIRST_LOOK_AT_MOST
                // late (a step quicker this time is not seen late), so that a step as quick as
                // before costs one look.
                let first = usual.min(FIRST_LOOK_AT_MOST);
                if elapsed + LOOK_INTERVAL_MIN <= first {
                    first - elapsed
                } else if elapsed + LOOK_INTERVAL_MIN <= usual {
                    // A longer step: then every half of the time since, with one look when it is
                    // usually done, so that it is seen done then, not up to half its time late.
                    (elapsed / 2).min(usual - elapsed)
                } else {
                    // Past the usual time, half the time since, and no less than an eighth of
                    // the usual time: the n-th look comes about 1.5^n times the first, so a 1 s
                    // step is seen done within half a second of it, a 10 min snapshot in a dozen
                    // looks.
                    (elapsed.saturating_sub(usual) / 2).max(usual / 8)
                }
                .clamp(LOOK_INTERVAL_MIN, LOOK_INTERVAL_MAX)
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
            let how_to_go_on = self.record_recovery().map(|hint| format!(" {hint}")).unwrap_or_default();
            self.finish_failed(reason, &format!("{message}. {remains}{how_to_go_on}"));
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
        if self.status.recovery.take().is_some()
            && conditions::get(&self.status.conditions, condition_type::DELETION_HELD).is_some()
        {
            let held = (condition_type::DELETION_HELD, ConditionStatus::False);
            self.conditions().set(&mut self.status.conditions, held.0, held.1, "Succeeded", &message);
        }
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
        if let Some(record) = s.source.as_ref().filter(|_| s.phase.source_deleted(self.strategy())) {
            let volumes: Vec<String> = record
                .volumes
                .iter()
                .map(|v| if v.root { format!("{} (its root disk)", v.id) } else { v.id.clone() })
                .collect();
            if !volumes.is_empty() {
                parts.push(format!("the source's volumes {} are kept in Cinder", volumes.join(", ")));
            }
        }
        let kept_ports = |keeps_addresses: bool| -> Vec<&str> {
            let kept = s.target_ports.iter().filter(|p| p.origin != PortOrigin::New);
            kept.filter(|p| p.origin.keeps_addresses() == keeps_addresses).map(|p| p.port_id.as_str()).collect()
        };
        for (keeps_addresses, what) in [(true, "with the source's addresses"), (false, "made for the replacement")] {
            let ports = kept_ports(keeps_addresses);
            if !ports.is_empty() {
                parts.push(format!("ports {} ({what}) are kept", ports.join(", ")));
            }
        }
        let neutron = s.source.iter().flat_map(|r| &r.ports).flat_map(|p| &p.floating_ips).map(|f| f.address.as_str());
        let nova_network = s.source.iter().flat_map(|r| &r.nova_network_floating_ips).map(|f| f.address.as_str());
        let fips: Vec<_> = neutron.chain(nova_network).collect();
        if !fips.is_empty() {
            parts.push(format!("floating IPs {} stay allocated to the project", fips.join(", ")));
        }
        if parts.is_empty() { "Nothing was changed.".into() } else { format!("What remains: {}.", parts.join("; ")) }
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
}
