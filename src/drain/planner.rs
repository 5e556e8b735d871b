//! Decides a ComputeNodeDrain's next status and changes from its spec, its status and what was
//! observed in OpenStack and Kubernetes. Pure: the controller observes and executes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{
    AfterDrain, ComputeNodeDrainSpec, ComputeNodeDrainStatus, ConditionStatus, DrainCounts, DrainMode, DrainPhase,
    DrainServerEntry, DrainServerState, MigrationPhase, MovePath, RETRY_ANNOTATION, ServerSelector, ServiceStatus,
    Strategy, condition_type, timestamp,
};
use crate::openstack::states::{ServiceState, ServiceStatus as NovaServiceStatus};
use crate::runtime::conditions::{self, Refusal, Setter, Validated};
use crate::validation::{self, FieldError};

/// Every problem of the spec that the schema could not catch.
pub fn validate(spec: &ComputeNodeDrainSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.host.chars().any(char::is_whitespace) {
        validation::error(&mut errors, "spec.host", "must not contain white space");
    }
    match (spec.mode, &spec.migration_template) {
        (DrainMode::Migrate, None) => {
            validation::error(&mut errors, "spec.migrationTemplate", "required when mode is Migrate")
        }
        (DrainMode::Migrate, Some(template)) => {
            validation::check_migration_options(template, &spec.cloud, "spec.migrationTemplate", &mut errors);
            if template.target.cloud.is_none() && template.target.host.as_deref() == Some(spec.host.as_str()) {
                validation::error(&mut errors, "spec.migrationTemplate.target.host", "must not be the drained host");
            }
        }
        (DrainMode::Wait, Some(_)) => {
            validation::error(&mut errors, "spec.migrationTemplate", "only used when mode is Migrate")
        }
        (DrainMode::Wait, None) => {}
    }
    if spec.mode == DrainMode::Migrate && spec.wait_deadline_seconds.is_some() {
        validation::error(&mut errors, "spec.waitDeadlineSeconds", "only used when mode is Wait");
    }
    if spec.mode == DrainMode::Wait && spec.succeeded_migration_retention_seconds.is_some() {
        validation::error(&mut errors, "spec.succeededMigrationRetentionSeconds", "only used when mode is Migrate");
    }
    if spec.force_down && spec.after_drain != AfterDrain::RetireService {
        validation::error(&mut errors, "spec.forceDown", "only used when afterDrain is RetireService");
    }
    let selection = &spec.selector;
    for (list, selectors) in
        [("include", &selection.include), ("exclude", &selection.exclude), ("priority", &selection.priority)]
    {
        for (i, selector) in selectors.iter().enumerate() {
            check_selector(selector, &format!("spec.selector.{list}[{i}]"), &mut errors);
        }
    }
    errors
}

fn check_selector(selector: &ServerSelector, at: &str, errors: &mut Vec<FieldError>) {
    if selector.ids.is_empty()
        && selector.name_pattern.is_none()
        && selector.project_id.is_none()
        && selector.metadata.is_empty()
    {
        validation::error(
            errors,
            at,
            "is empty and would match every server: give ids, namePattern, projectId or metadata",
        );
    }
    if selector.ids.iter().any(|id| id.trim().is_empty()) {
        validation::error(errors, format!("{at}.ids"), "must not contain empty IDs");
    }
}

/// Label on a drain's InstanceMigrations: the drain's UID (names may be too long for a label).
pub const DRAIN_UID_LABEL: &str = "osmo.dev/drain-uid";

/// Everything the planner decides from.
pub struct Input<'a> {
    pub spec: &'a ComputeNodeDrainSpec,
    pub status: Option<&'a ComputeNodeDrainStatus>,
    /// The drain's name: its InstanceMigrations are named after it.
    pub name: &'a str,
    pub generation: Option<i64>,
    pub deleting: bool,
    pub now: jiff::Timestamp,
}

/// What the controller saw of the host in OpenStack and of the migrations in Kubernetes.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The host's nova-compute service; `None` when the host has none.
    pub service: Option<ServiceStatus>,
    /// The servers Nova lists for the host, of all projects (each one's own `host` is checked
    /// before it counts as the host's).
    pub servers: Vec<HostServer>,
    /// Servers Nova listed only partly (status `UNKNOWN`): their cell did not answer.
    pub partial: Vec<String>,
    /// The drain's own InstanceMigrations, and others that name a server of the host.
    pub migrations: Vec<KnownMigration>,
    /// Another drain that holds the host's claim (`namespace/name`): this one must not start.
    pub rival: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostServer {
    pub id: String,
    pub name: String,
    pub project_id: Option<String>,
    /// The host Nova's record names (`OS-EXT-SRV-ATTR:host`); `None` when absent.
    pub host: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// It boots from a volume (Nova shows no image).
    pub boots_from_volume: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownMigration {
    pub name: String,
    pub uid: String,
    /// The server it moves, as its spec names it.
    pub server: String,
    pub phase: Option<MigrationPhase>,
    /// It failed (or retries) past its point of no return: the source is deleted (or its
    /// addresses moved) and no verified replacement runs (`status.recovery`).
    pub past_point_of_no_return: bool,
    /// Created by this drain (labelled with its UID and controlled by it).
    pub owned: bool,
    /// Once it succeeded: the replacement server's ID, and when (its `Ready` condition).
    pub replacement: Option<String>,
    pub succeeded_at: Option<jiff::Timestamp>,
}

impl KnownMigration {
    fn ended(&self) -> bool {
        matches!(self.phase, Some(MigrationPhase::Succeeded | MigrationPhase::Failed))
    }
}

/// A change the planner asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Disable the host's nova-compute service with `spec.disableReason`.
    DisableService,
    /// Enable it again (a drain deleted before it was done).
    EnableService,
    /// Mark the service forced-down (`spec.forceDown`).
    ForceDownService,
    /// Delete the service record (`afterDrain: RetireService`).
    DeleteService,
    /// Create the InstanceMigration `name` for the server `server_id`.
    CreateMigration { name: String, server_id: String },
    /// Delete the drain's succeeded InstanceMigration `name` (that very one: `uid`), its
    /// retention passed and its summary kept in `status.servers`.
    DeleteMigration { name: String, uid: String },
}

#[derive(Debug)]
pub struct Decision {
    pub status: ComputeNodeDrainStatus,
    /// Done in order; the next one only when the previous succeeded.
    pub actions: Vec<Action>,
    pub requeue: Option<Duration>,
    /// Remove the finalizer once the actions are done.
    pub release: bool,
}

/// A drain has an InstanceMigration per server, named after both.
pub fn migration_name(drain: &str, server_id: &str) -> String {
    // Object names are at most 253 characters; the server ID keeps names distinct.
    let room = 253 - server_id.len() - 1;
    let drain: String = drain.chars().take(room).collect();
    format!("{}-{}", drain.trim_end_matches(['-', '.']), server_id.to_ascii_lowercase())
}

/// The host's nova-compute service, in the states a drain tells apart.
impl ServiceStatus {
    /// Still reporting.
    fn is_up(&self) -> bool {
        ServiceState::from(self.state.as_str()) == ServiceState::Up && !self.forced_down
    }

    /// The scheduler may place servers on the host.
    fn is_enabled(&self) -> bool {
        self.service_status() == NovaServiceStatus::Enabled
    }

    /// Disabled, with this reason.
    fn is_disabled_for(&self, reason: &str) -> bool {
        self.service_status() == NovaServiceStatus::Disabled && self.disabled_reason.as_deref() == Some(reason)
    }

    /// Listed with status `UNKNOWN` (microversion 2.69+): the host's cell does not answer.
    fn cell_down(&self) -> bool {
        self.service_status() == NovaServiceStatus::Unknown
    }

    fn service_status(&self) -> NovaServiceStatus {
        self.status.as_str().into()
    }
}

/// The status the drain should have now and the changes that get it there.
pub fn plan(input: &Input<'_>, observed: Result<&Observed, &Refusal>) -> Decision {
    let (status, validated) = validated(input);
    if let Validated::Invalid(_) = validated {
        // Nothing was done on behalf of an invalid drain: it may go at once.
        return Decision { status, actions: vec![], requeue: None, release: input.deleting };
    }
    let observed = match observed {
        Ok(observed) => observed,
        // Nothing was changed yet, so a drain being deleted may go.
        Err(_) if input.deleting => return Decision { status, actions: vec![], requeue: None, release: true },
        Err(refusal) => {
            let planner = Planner { input, observed: &Observed::default(), status };
            return planner.fail(refusal.reason, refusal.message.clone());
        }
    };
    let mut planner = Planner { input, observed, status };
    if input.deleting {
        return planner.abort();
    }
    if planner.status.phase == DrainPhase::Retired {
        return planner.decide(vec![], None);
    }
    planner.status.service = observed.service.clone();
    if let Some(cause) = incompleteness(input.spec, observed) {
        return planner.listing_incomplete(&cause);
    }
    let Some(service) = observed.service.clone() else {
        if planner.status.phase == DrainPhase::Retiring {
            return planner.retired();
        }
        let message = format!("spec.host: host {} has no nova-compute service", input.spec.host);
        return planner.fail("ServiceNotFound", message);
    };
    planner.status.servers = entries(input, observed, &planner.status.servers);
    planner.count();
    planner.status.last_error = None;

    if input.spec.dry_run {
        return planner.dry_run();
    }
    if let (Some(rival), None) = (&observed.rival, &planner.status.cordoned_at) {
        let message = format!("spec.host: ComputeNodeDrain {rival} already drains host {}", input.spec.host);
        return planner.fail("Conflict", message);
    }
    if service.is_enabled() {
        if input.spec.paused {
            return planner.paused_before_cordon();
        }
        planner.status.phase = DrainPhase::Cordoning;
        let message = format!("Disabling nova-compute on {}.", input.spec.host);
        planner.progressing(true, "Cordoning", &message);
        return planner.decide(vec![Action::DisableService], Some(Duration::from_millis(500)));
    }
    planner.status.cordoned_at.get_or_insert_with(|| timestamp(input.now));
    planner.drain()
}

/// The status with the spec's validation applied: what the drain shows even when OpenStack
/// cannot be reached.
pub fn validated(input: &Input<'_>) -> (ComputeNodeDrainStatus, Validated) {
    let mut status = input.status.cloned().unwrap_or_default();
    status.observed_generation = input.generation;
    let validated =
        conditions::apply_validation(&mut status.conditions, &validate(input.spec), input.generation, input.now);
    match &validated {
        Validated::Invalid(message) => {
            status.phase = DrainPhase::Failed;
            status.last_error = Some(message.clone());
        }
        Validated::Corrected => {
            status.phase = DrainPhase::Pending;
            status.last_error = None;
        }
        Validated::Valid => {}
    }
    (status, validated)
}

struct Planner<'a> {
    input: &'a Input<'a>,
    observed: &'a Observed,
    status: ComputeNodeDrainStatus,
}

impl Planner<'_> {
    fn spec(&self) -> &ComputeNodeDrainSpec {
        self.input.spec
    }

    fn decide(self, actions: Vec<Action>, requeue: Option<Duration>) -> Decision {
        Decision { status: self.status, actions, requeue, release: false }
    }

    fn conditions(&self) -> Setter {
        Setter { generation: self.input.generation, now: self.input.now }
    }

    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        self.conditions().set(&mut self.status.conditions, type_, status, reason, message);
    }

    /// Sets `Progressing`, `Ready` and `Failed` to these values with one reason and message,
    /// and the status's message.
    fn report(&mut self, states: [bool; 3], reason: &str, message: &str) {
        self.conditions().report(&mut self.status.conditions, states, reason, message);
        self.status.message = Some(message.to_string());
    }

    /// `Progressing` says whether work goes on; `Ready` stays False and `Failed` False.
    fn progressing(&mut self, going: bool, reason: &str, message: &str) {
        self.report([going, false, false], reason, message);
    }

    fn fail(mut self, reason: &str, message: String) -> Decision {
        self.status.phase = DrainPhase::Failed;
        self.report([false, false, true], reason, &message);
        self.status.last_error = Some(message);
        self.decide(vec![], None)
    }

    fn count(&mut self) {
        let servers = &self.status.servers;
        let of = |state| servers.iter().filter(|e| e.state == state).count() as u32;
        let counts = DrainCounts {
            total: servers.len() as u32 - of(DrainServerState::ListedElsewhere),
            remaining: of(DrainServerState::Waiting) + of(DrainServerState::Failed) + of(DrainServerState::Lost),
            migrating: of(DrainServerState::Migrating),
            succeeded: of(DrainServerState::Migrated) + of(DrainServerState::Gone),
            failed: of(DrainServerState::Failed),
            excluded: of(DrainServerState::Excluded),
            lost: of(DrainServerState::Lost),
        };
        let mut progress = format!("{}/{}", counts.succeeded, counts.total - counts.excluded);
        if counts.excluded > 0 {
            progress.push_str(&format!(" ({} excluded)", counts.excluded));
        }
        self.status.progress = Some(progress);
        self.status.counts = Some(counts);
    }

    fn dry_run(mut self) -> Decision {
        self.status.phase = DrainPhase::Planned;
        let target = self.spec().migration_template.as_ref().map(|t| t.target.describe());
        let migrate = self.spec().mode == DrainMode::Migrate;
        let mut moving = 0;
        for entry in self.status.servers.iter_mut().filter(|e| e.state == DrainServerState::Waiting) {
            if migrate {
                entry.migration = Some(migration_name(self.input.name, &entry.id));
                entry.target = target.clone();
            }
            moving += 1;
        }
        let what = if migrate { "would be migrated" } else { "would be waited for" };
        let message = format!(
            "Dry run: {moving} server(s) of {} {what}, in the order listed in status.servers; nothing is changed.",
            self.spec().host
        );
        self.progressing(false, "DryRun", &message);
        self.decide(vec![], Some(Duration::from_secs(60)))
    }

    fn paused_before_cordon(mut self) -> Decision {
        self.status.phase = DrainPhase::Planned;
        let message = format!("Paused: nova-compute on {} is not disabled yet; nothing is changed.", self.spec().host);
        self.progressing(false, "Paused", &message);
        self.decide(vec![], None)
    }

    /// Nova's listing may lack servers of the host: nothing is concluded from it.
    fn listing_incomplete(mut self, cause: &str) -> Decision {
        self.status.phase = DrainPhase::Blocked;
        let message = format!(
            "Waiting for a complete listing of host {}: {cause}. Until then no migration starts, no server counts \
             as gone, and the host is never reported empty nor its service changed.",
            self.spec().host
        );
        self.progressing(true, "ListingIncomplete", &message);
        self.decide(vec![], Some(Duration::from_secs(30)))
    }

    /// The host is cordoned: move or wait for its servers, then report it drained; and delete
    /// the drain's succeeded migrations whose retention has passed.
    fn drain(self) -> Decision {
        let (expired, next_expiry) = self.expired_migrations();
        let mut decision = self.empty_host();
        decision.actions.extend(expired);
        decision.requeue = match (decision.requeue, next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        decision
    }

    /// The drain's own succeeded migrations that may go now (their retention passed, their
    /// summary in the status written before they are deleted, their server no longer listed
    /// on the host), and how long until the next one may.
    fn expired_migrations(&self) -> (Vec<Action>, Option<Duration>) {
        let Some(retention) = self.spec().succeeded_migration_retention_seconds else { return (vec![], None) };
        let retention = jiff::SignedDuration::from_secs(i64::try_from(retention).unwrap_or(i64::MAX));
        let mut expired = Vec::new();
        let mut next: Option<Duration> = None;
        for m in self.observed.migrations.iter().filter(|m| m.owned && m.phase == Some(MigrationPhase::Succeeded)) {
            let summarised = self.status.servers.iter().any(|e| {
                e.id == m.server
                    && e.migration.as_ref() == Some(&m.name)
                    && e.state == DrainServerState::Migrated
                    && e.migrated_at.is_some()
            });
            let listed = self.observed.servers.iter().any(|s| s.id == m.server);
            let Some(due) = m.succeeded_at.and_then(|at| at.checked_add(retention).ok()) else { continue };
            if !summarised || listed {
                continue;
            }
            if self.input.now >= due {
                expired.push(Action::DeleteMigration { name: m.name.clone(), uid: m.uid.clone() });
            } else {
                let left = due.duration_since(self.input.now).unsigned_abs();
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }
        (expired, next)
    }

    fn empty_host(mut self) -> Decision {
        let mut actions = Vec::new();
        let spec = self.input.spec;
        let lost: Vec<String> = self
            .status
            .servers
            .iter()
            .filter(|e| e.state == DrainServerState::Lost)
            .map(|e| format!("{} ({}): {}", e.name, e.id, e.problem.as_deref().unwrap_or("lost")))
            .collect();
        // A lost server says something went wrong past the point of no return: no other
        // server is put at the same risk until it is dealt with.
        if spec.mode == DrainMode::Migrate && !spec.paused && lost.is_empty() {
            let in_flight = self.observed.migrations.iter().filter(|m| m.owned && !m.ended()).count();
            let room = (spec.max_concurrent as usize).saturating_sub(in_flight);
            let target = spec.migration_template.as_ref().map(|t| t.target.describe());
            for entry in self.status.servers.iter_mut().filter(|e| e.state == DrainServerState::Waiting).take(room) {
                let name = migration_name(self.input.name, &entry.id);
                actions.push(Action::CreateMigration { name: name.clone(), server_id: entry.id.clone() });
                entry.migration = Some(name);
                entry.state = DrainServerState::Migrating;
                entry.target = target.clone();
            }
            self.count();
        }
        let may_remain = spec.selector.excluded_may_remain;
        let blocking: Vec<&DrainServerEntry> = self
            .status
            .servers
            .iter()
            .filter(|e| match e.state {
                DrainServerState::Waiting
                | DrainServerState::Migrating
                | DrainServerState::Failed
                | DrainServerState::Lost => true,
                DrainServerState::Excluded => !may_remain,
                DrainServerState::Migrated | DrainServerState::Gone | DrainServerState::ListedElsewhere => false,
            })
            .collect();
        if blocking.is_empty() {
            return self.drained();
        }
        let names = |state: DrainServerState| {
            blocking.iter().filter(|e| e.state == state).map(|e| e.name.as_str()).collect::<Vec<_>>()
        };
        let (waiting, migrating, failed, excluded) = (
            names(DrainServerState::Waiting),
            names(DrainServerState::Migrating),
            names(DrainServerState::Failed),
            names(DrainServerState::Excluded),
        );
        let mut remains = Vec::new();
        for (what, list) in [
            ("lost", &names(DrainServerState::Lost)),
            ("waiting", &waiting),
            ("migrating", &migrating),
            ("failed (delete their InstanceMigration to retry)", &failed),
            ("excluded", &excluded),
        ] {
            if !list.is_empty() {
                remains.push(format!("{what}: {}", list.join(", ")));
            }
        }
        let remains = remains.join("; ");
        let host = &spec.host;
        if !lost.is_empty() {
            self.status.phase = DrainPhase::Blocked;
            let message = format!(
                "Lost: {}. No new migration starts, and host {host} is never reported empty nor its service \
                 retired while a server is lost: once the cause is fixed, retry that InstanceMigration in place (a \
                 new value of its annotation {RETRY_ANNOTATION}); the entry clears when a migration of the server \
                 succeeds. Remaining {remains}.",
                lost.join("; ")
            );
            self.progressing(false, "ServerLost", &message);
            return self.decide(actions, Some(Duration::from_secs(30)));
        }
        let deadline_passed = self.wait_deadline().filter(|d| self.input.now >= *d).is_some();
        let stuck = migrating.is_empty()
            && (spec.mode == DrainMode::Wait && deadline_passed
                || spec.mode == DrainMode::Migrate && waiting.is_empty());
        if stuck {
            self.status.phase = DrainPhase::Blocked;
            let why = if deadline_passed { "the wait deadline passed" } else { "nothing more can be moved" };
            let message = format!("Host {host} is not empty and {why}. Remaining {remains}.");
            self.progressing(false, "Blocked", &message);
            return self.decide(actions, Some(Duration::from_secs(30)));
        }
        self.status.phase = DrainPhase::Draining;
        if spec.paused {
            let message = format!("Paused: no new migrations are started. Remaining {remains}.");
            self.progressing(false, "Paused", &message);
        } else {
            let message = format!("Emptying host {host}. Remaining {remains}.");
            self.progressing(true, "Draining", &message);
        }
        let mut poll = self.poll_interval();
        if let Some(deadline) = self.wait_deadline().filter(|_| spec.mode == DrainMode::Wait) {
            let until = deadline.duration_since(self.input.now).unsigned_abs();
            poll = poll.min(until.max(Duration::from_millis(100)));
        }
        self.decide(actions, Some(poll))
    }

    /// OpenStack is re-read for servers that leave or arrive: often at first, then less.
    fn poll_interval(&self) -> Duration {
        let since = self.cordoned_at().map(|t| self.input.now.duration_since(t).unsigned_abs()).unwrap_or_default();
        (since / 4).clamp(Duration::from_secs(2), Duration::from_secs(30))
    }

    fn cordoned_at(&self) -> Option<jiff::Timestamp> {
        self.status.cordoned_at.as_deref().and_then(|t| t.parse().ok())
    }

    fn wait_deadline(&self) -> Option<jiff::Timestamp> {
        let seconds = self.input.spec.wait_deadline_seconds?;
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        self.cordoned_at()?.checked_add(jiff::SignedDuration::from_secs(seconds)).ok()
    }

    /// No server blocks the host any more.
    fn drained(mut self) -> Decision {
        use ConditionStatus::{False, True};
        let host = self.spec().host.clone();
        let ready = format!("Host {host} is empty and ready to be redeployed.");
        if self.spec().after_drain == AfterDrain::Keep {
            self.status.phase = DrainPhase::Drained;
            self.report([false, true, false], "Drained", &ready);
            // New servers forced onto the host later are noticed.
            return self.decide(vec![], Some(Duration::from_secs(60)));
        }
        let service = self.observed.service.clone().expect("a drain without service never gets here");
        if !self.observed.servers.is_empty() {
            self.status.phase = DrainPhase::Blocked;
            let message = format!(
                "Host {host} has nothing left to drain (what Nova still lists for it may remain or names another \
                 host), but its service is never retired while a server remains ({}).",
                self.observed.servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            );
            self.progressing(false, "Blocked", &message);
            return self.decide(vec![], Some(Duration::from_secs(30)));
        }
        self.status.phase = DrainPhase::Retiring;
        self.set(condition_type::READY, True, "Drained", &ready);
        self.set(condition_type::FAILED, False, "Retiring", &ready);
        let (action, message, requeue) = match (service.is_up(), self.spec().force_down) {
            (true, true) => (
                Some(Action::ForceDownService),
                format!("Host {host} is empty; marking its nova-compute service forced down."),
                Duration::from_millis(500),
            ),
            (true, false) => (
                None,
                format!("Host {host} is empty; waiting for its nova-compute process to stop (the service is up)."),
                Duration::from_secs(5),
            ),
            (false, _) => (
                Some(Action::DeleteService),
                format!("Host {host} is empty and its nova-compute is down; deleting the service record."),
                Duration::from_millis(500),
            ),
        };
        self.set(condition_type::PROGRESSING, True, "Retiring", &message);
        self.status.message = Some(message);
        self.decide(action.into_iter().collect(), Some(requeue))
    }

    fn retired(mut self) -> Decision {
        self.status.phase = DrainPhase::Retired;
        self.status.service = None;
        let message =
            format!("Host {} is empty and its nova-compute service record is deleted: redeploy it.", self.spec().host);
        self.report([false, true, false], "Retired", &message);
        self.decide(vec![], None)
    }

    /// The drain is being deleted: start nothing new, let running migrations end, then give
    /// the host back to the scheduler unless it is done or the spec keeps it disabled.
    fn abort(mut self) -> Decision {
        let running: Vec<&str> =
            self.observed.migrations.iter().filter(|m| m.owned && !m.ended()).map(|m| m.name.as_str()).collect();
        if !running.is_empty() {
            let message = format!(
                "Being deleted: no new migrations; waiting for {} running one(s) to end: {}.",
                running.len(),
                running.join(", ")
            );
            self.progressing(true, "Aborting", &message);
            return self.decide(vec![], Some(Duration::from_secs(30)));
        }
        let done = emptied(&self.status);
        let ours = |s: &ServiceStatus| s.is_disabled_for(&self.input.spec.disable_reason);
        let enable = !done
            && !self.input.spec.keep_disabled_on_abort
            && self.status.cordoned_at.is_some()
            && self.observed.service.as_ref().is_some_and(ours);
        Decision {
            status: self.status,
            actions: if enable { vec![Action::EnableService] } else { vec![] },
            requeue: None,
            release: true,
        }
    }
}

/// Whether the drain emptied its host: deleting it then undoes nothing (the host stays
/// disabled, and every migration has ended), so it may go without a look at OpenStack.
pub fn emptied(status: &ComputeNodeDrainStatus) -> bool {
    matches!(status.phase, DrainPhase::Drained | DrainPhase::Retiring | DrainPhase::Retired)
}

/// Why Nova's listing of the host may lack some of its servers, if it may.
fn incompleteness(spec: &ComputeNodeDrainSpec, observed: &Observed) -> Option<String> {
    let host = &spec.host;
    let mut causes = Vec::new();
    if observed.service.as_ref().is_some_and(ServiceStatus::cell_down) {
        causes.push(format!(
            "Nova lists the nova-compute service of {host} with status UNKNOWN: its cell does not answer"
        ));
    }
    if !observed.partial.is_empty() {
        causes.push(format!(
            "Nova lists server(s) {} only partly (status UNKNOWN): their cell does not answer",
            observed.partial.join(", ")
        ));
    }
    let hostless: Vec<&str> = observed.servers.iter().filter(|s| s.host.is_none()).map(|s| s.id.as_str()).collect();
    if !hostless.is_empty() {
        causes.push(format!(
            "Nova lists server(s) {} without their host (OS-EXT-SRV-ATTR:host, shown to admins only), so whether they \
             are on {host} cannot be checked",
            hostless.join(", ")
        ));
    }
    (!causes.is_empty()).then(|| causes.join("; "))
}

/// How the drain's migration moves `server`, when the drain migrates.
fn move_path(spec: &ComputeNodeDrainSpec, server: &HostServer) -> Option<MovePath> {
    let template = spec.migration_template.as_ref().filter(|_| spec.mode == DrainMode::Migrate)?;
    Some(match template.strategy {
        Strategy::Redeploy => MovePath::Redeploy,
        Strategy::Snapshot if server.boots_from_volume => MovePath::Volume,
        Strategy::Snapshot => MovePath::Snapshot,
    })
}

/// One entry per server the drain knows: those Nova lists for the host now, and those that
/// were and left, in the order the drain handles them.
fn entries(input: &Input<'_>, observed: &Observed, previous: &[DrainServerEntry]) -> Vec<DrainServerEntry> {
    let host = input.spec.host.as_str();
    let selection = &input.spec.selector;
    let ours = |id: &str| observed.migrations.iter().find(|m| m.owned && m.server == id);
    let other = |id: &str| observed.migrations.iter().find(|m| !m.owned && !m.ended() && m.server == id);
    let by_migration = |m: &KnownMigration, entry: &mut DrainServerEntry| {
        entry.state = match m.phase {
            Some(MigrationPhase::Succeeded) => DrainServerState::Migrated,
            Some(MigrationPhase::Failed) => DrainServerState::Failed,
            _ => DrainServerState::Migrating,
        };
        entry.migration = Some(m.name.clone());
        entry.phase = m.phase;
        // Kept once the migration is gone: the drain's own record of the move.
        entry.replacement = m.replacement.clone();
        entry.migrated_at = m.succeeded_at.map(timestamp);
    };
    let mut entries: Vec<(usize, DrainServerEntry)> = Vec::new();
    for server in &observed.servers {
        let earlier = previous.iter().find(|e| e.id == server.id);
        let on_host = server.host.as_deref() == Some(host);
        let mut entry = DrainServerEntry {
            id: server.id.clone(),
            name: server.name.clone(),
            project_id: server.project_id.clone(),
            target: earlier.and_then(|e| e.target.clone()),
            path: move_path(input.spec, server),
            ..Default::default()
        };
        if let Some(m) = ours(&server.id).or_else(|| other(&server.id)) {
            by_migration(m, &mut entry);
        } else if !on_host {
            entry.state = DrainServerState::ListedElsewhere;
            let elsewhere = server.host.as_deref().unwrap_or("not given");
            entry.problem = Some(format!("Nova lists it for host {host}, but its host is {elsewhere}"));
        } else if let Some(why) = exclusion(selection, server) {
            entry.state = DrainServerState::Excluded;
            entry.excluded = Some(why);
        }
        if matches!(entry.state, DrainServerState::Excluded | DrainServerState::ListedElsewhere) {
            entry.path = None;
        }
        mark_lost(&mut entry, earlier, ours(&server.id), on_host);
        entries.push((priority(selection, server), entry));
    }
    for earlier in previous.iter().filter(|e| !observed.servers.iter().any(|s| s.id == e.id)) {
        let mut entry = earlier.clone();
        match ours(&earlier.id) {
            Some(m) => by_migration(m, &mut entry),
            None if !matches!(earlier.state, DrainServerState::Migrated | DrainServerState::Lost) => {
                entry.state = DrainServerState::Gone
            }
            None => {}
        }
        mark_lost(&mut entry, Some(earlier), ours(&earlier.id), false);
        let as_server = HostServer { id: entry.id.clone(), name: entry.name.clone(), ..Default::default() };
        entries.push((priority(selection, &as_server), entry));
    }
    entries.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.name.cmp(&y.name)).then_with(|| x.id.cmp(&y.id)));
    entries.into_iter().map(|(_, e)| e).collect()
}

/// Marks the entry `Lost` when the server may exist only as what its migration left (a
/// snapshot): its migration failed past its point of no return, or failed or vanished unseen
/// while the server left the host. A loss is kept in the drain's own status, so that it
/// outlives the InstanceMigration; only a migration of the server that succeeds clears it.
fn mark_lost(
    entry: &mut DrainServerEntry,
    earlier: Option<&DrainServerEntry>,
    migration: Option<&KnownMigration>,
    on_host: bool,
) {
    use DrainServerState::{Failed, ListedElsewhere, Lost, Migrating};
    let failed = migration.filter(|m| m.phase == Some(MigrationPhase::Failed));
    let earlier_migration = earlier.and_then(|e| e.migration.as_deref()).unwrap_or("(unnamed)");
    let problem = match (migration, earlier.map(|e| e.state)) {
        (Some(m), _) if m.phase == Some(MigrationPhase::Succeeded) => None,
        (Some(m), _) if m.past_point_of_no_return => Some(format!(
            "InstanceMigration {} failed past its point of no return: the source is deleted and no verified \
             replacement runs",
            m.name
        )),
        _ if failed.is_some() && !on_host => {
            failed.map(|m| format!("InstanceMigration {} failed and the server is no longer on the host", m.name))
        }
        (_, Some(Lost)) => earlier.and_then(|e| e.problem.clone()),
        (None, Some(Failed)) if !on_host => Some(format!(
            "InstanceMigration {earlier_migration} failed and was deleted, and the server is no longer on the host"
        )),
        (None, Some(Migrating)) if !on_host => Some(format!(
            "InstanceMigration {earlier_migration} was deleted before the drain saw it end, and the server is no \
             longer on the host"
        )),
        _ => None,
    };
    match problem {
        Some(problem) => {
            entry.state = Lost;
            entry.problem = Some(problem);
        }
        None if entry.state != ListedElsewhere => entry.problem = None,
        None => {}
    }
}

/// Why the selector leaves a server alone, if it does.
fn exclusion(selection: &crate::api::ServerSelection, server: &HostServer) -> Option<String> {
    if let Some(i) = selection.exclude.iter().position(|s| matches(s, server)) {
        return Some(format!("matches spec.selector.exclude[{i}]"));
    }
    if !selection.include.is_empty() && !selection.include.iter().any(|s| matches(s, server)) {
        return Some("matches no spec.selector.include".to_string());
    }
    None
}

/// The index of the first priority selector the server matches; the unmatched go last.
fn priority(selection: &crate::api::ServerSelection, server: &HostServer) -> usize {
    selection.priority.iter().position(|s| matches(s, server)).unwrap_or(selection.priority.len())
}

fn matches(selector: &ServerSelector, server: &HostServer) -> bool {
    (selector.ids.is_empty() || selector.ids.contains(&server.id))
        && selector.name_pattern.as_deref().is_none_or(|p| glob(p, &server.name))
        && selector.project_id.as_ref().is_none_or(|p| server.project_id.as_ref() == Some(p))
        && selector.metadata.iter().all(|(k, v)| server.metadata.get(k) == Some(v))
}

/// Shell-style matching with `*` (any run of characters) and `?` (one character).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}
