//! The InstanceMigration controller: observe OpenStack, let the planner decide, write the
//! status, then make the one change it asked for. A change whose answer shows its outcome is
//! followed at once in the same reconcile; a decision that needs another look ends the
//! reconcile (at once requeued when the look is due now), so that others get their turn.

mod claim;
mod execute;
#[cfg(test)]
mod nova_network_tests;
mod observe;
mod phase;
pub mod planner;
pub mod record;
pub mod summary;
mod user_data;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use crate::api::{
    ACCEPT_LOSS_ANNOTATION, Condition, InstanceMigration, InstanceMigrationSpec, InstanceMigrationStatus,
    MigrationPhase, RETRY_ANNOTATION, StepResult,
};
use crate::runtime::claim::Claim;
use crate::runtime::clouds::CloudError;
use crate::runtime::conditions::Refusal;
use crate::runtime::status::{self, HasConditions};
use crate::runtime::{ReconcileError, Shared, cached, finalizers};

use self::execute::Answer;
use self::planner::{Input, Observed};
use crate::openstack::compute::UserData;

/// Held on every InstanceMigration so that its deletion passes through the operator.
pub const FINALIZER: &str = "osmo.dev/instance-migration";

/// What the migration controller works with: the shared plumbing, when it started acting,
/// and what it keeps between reconciles.
pub struct Context {
    pub shared: Arc<Shared>,
    /// When this process became the leader: a step's timeout counts from then at the earliest.
    pub acting_since: jiff::Timestamp,
    memory: Memory,
}

impl Context {
    pub fn new(shared: Arc<Shared>, acting_since: jiff::Timestamp) -> Self {
        Context { shared, acting_since, memory: Memory::default() }
    }
}

impl HasConditions for InstanceMigration {
    type Status = InstanceMigrationStatus;
    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }
}

#[tracing::instrument(skip_all, fields(namespace = im.metadata.namespace.as_deref(), name = im.metadata.name.as_deref(), uid = im.metadata.uid.as_deref()))]
pub async fn reconcile(im: Arc<InstanceMigration>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.shared.metrics.reconcile_started("InstanceMigration");
    let api: Api<InstanceMigration> = Api::namespaced(ctx.shared.client.clone(), &im.namespace().unwrap_or_default());
    // A finished migration is cached as a summary, and nothing happens to it until a change
    // brings it back whole. Nothing is ever decided from a summary: whole from the API server.
    if summary::finished(&im) {
        ctx.memory.forget(&im);
        return Ok(Action::await_change());
    }
    let im = cached::whole(&api, im).await?;
    // The watch may not have brought this operator's last status write yet: decisions build on
    // what was written (a step's first change assumes the step before was written as done).
    let im = ctx.memory.newest(im);
    // A migration acts on the spec it was accepted with; the spec submitted since is only
    // compared with it (and the difference reported).
    let submitted = im.spec.clone();
    let mut im = acting(im);
    let deleting = im.metadata.deletion_timestamp.is_some();
    let current = im.status.clone().unwrap_or_default();
    if deleting {
        if !im.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        if planner::releasable(&current, loss_accepted(&im)) {
            release(&api, &im, &ctx).await?;
            return Ok(Action::await_change());
        }
    } else if !im.finalizers().iter().any(|f| f == FINALIZER) {
        finalizers::ensure(&api, Arc::make_mut(&mut im), FINALIZER).await?;
        ctx.shared.metrics.kubernetes_write("InstanceMigration");
    }
    // A failed migration whose deletion is held, or that is asked to retry, is decided on;
    // any other that has ended only when its spec changed (to report the change).
    if summary::finished(&im) {
        ctx.memory.forget(&im);
        return Ok(Action::await_change());
    }

    let uid = im.uid().unwrap_or_default();
    let usual_steps = ctx.memory.usual_steps();
    let acting_since = ctx.acting_since;
    if im.status.is_none() && !deleting {
        // Seen for the first time: acknowledged before anything is asked of OpenStack, and the
        // slot handed on, so that every new resource shows a phase at once however busy we are.
        let now = jiff::Timestamp::now();
        let first = planner::acknowledge(&input(&im, &submitted, None, &uid, &usual_steps, acting_since, now));
        publish(&ctx, &mut (*im).clone(), first).await?;
        return Ok(Action::requeue(Duration::ZERO));
    }
    // Once the options are fixed the spec acted on was valid when accepted: a migration under
    // way is never left to act on no observation at all.
    let needs_openstack = !matches!(current.phase, MigrationPhase::Succeeded | MigrationPhase::Failed)
        && (planner::options_fixed(&current) || planner::validate(&im.spec).is_empty());
    let mut sessions = if needs_openstack { Some(observe::sessions(&ctx, &im, &current).await) } else { None };
    // A step ends when OpenStack was seen done, not when the answer came back: step times (and
    // the first look they set) must not grow by the time a look takes.
    let mut seen_at = jiff::Timestamp::now();
    tracing::debug!(migration = %im.name_any(), phase = ?current.phase, "looking at OpenStack");
    let mut observed = look(&ctx, sessions.as_ref(), &im, &current).await?;
    // The resource as this reconcile has written it: a phase that ends, or a change whose answer
    // shows its outcome, is followed at once, without waiting for the watch to bring it back.
    let mut now_written = (*im).clone();
    let mut claimed = match &sessions {
        Some(Ok(s)) => claim_server(&ctx, s, &im, &current, &mut observed).await?,
        _ => None,
    };
    let exit = 'turns: {
        for _ in 0..MAX_TURNS {
            let mut decision = planner::plan(
                &input(&im, &submitted, now_written.status.as_ref(), &uid, &usual_steps, acting_since, seen_at),
                &observed,
            );
            // A claim made in this reconcile is written with the first decision.
            if let Some(lease) = claimed.take() {
                decision.status.claim = Some(lease);
            }
            let decided_at = Instant::now();
            publish(&ctx, &mut now_written, decision.status.clone()).await?;
            // Recording may have found a server of another project: from now on, act in it.
            if let Some(Ok(s)) = &sessions
                && s.acting_project != decision.status.acting_project_id
            {
                sessions = Some(observe::sessions(&ctx, &im, &decision.status).await);
            }
            let (Some(Ok(s)), Some(action)) = (&sessions, decision.action.clone()) else {
                break 'turns Exit::decided(&decision, decided_at);
            };
            // One look per reconcile: a decision that needs another look (at once, or later)
            // ends it, so that a migration moving fast hands its slot on between looks and every
            // other resource gets its turn.
            let user_data = user_data_for(&ctx, &im, &decision.status, &action).await?;
            match execute::execute(&ctx, s, &im, &decision.status, action, user_data).await {
                Ok(Answer::Accepted) => break 'turns Exit::decided(&decision, decided_at),
                Ok(Answer::Made(made)) => {
                    publish(&ctx, &mut now_written, planner::hold(&decision.status, made)).await?;
                    break 'turns Exit::decided(&decision, decided_at);
                }
                Ok(answer) => {
                    answer.show(&mut observed);
                    seen_at = jiff::Timestamp::now();
                }
                Err(error) if error.is_transient() => return Err(ReconcileError::OpenStack(error)),
                Err(error) => {
                    // A change OpenStack refused for good: the planner rolls back or ends.
                    let failed = planner::fail(
                        &input(
                            &im,
                            &submitted,
                            Some(&decision.status),
                            &uid,
                            &usual_steps,
                            acting_since,
                            jiff::Timestamp::now(),
                        ),
                        "OpenStackError",
                        error.to_string(),
                    );
                    publish(&ctx, &mut now_written, failed.status).await?;
                    break 'turns Exit::ChangeFailed { requeue: failed.requeue };
                }
            }
        }
        Exit::OutOfTurns
    };
    match exit {
        Exit::Decided { requeue, decided_at } => done(&api, &now_written, requeue, decided_at, &ctx).await,
        Exit::ChangeFailed { requeue: after } => Ok(requeue(after)),
        Exit::OutOfTurns => Ok(Action::requeue(Duration::ZERO)),
    }
}

/// How a reconcile's turns end.
enum Exit {
    /// The last decision stands: it says when to look again.
    Decided { requeue: Option<Duration>, decided_at: Instant },
    /// OpenStack refused a change for good, and the planner's verdict on it is written.
    ChangeFailed { requeue: Option<Duration> },
    /// The planner kept deciding: the next reconcile goes on at once.
    OutOfTurns,
}

impl Exit {
    fn decided(decision: &planner::Decision, decided_at: Instant) -> Exit {
        Exit::Decided { requeue: decision.requeue, decided_at }
    }
}

/// The resource with the spec its migration acts on.
fn acting(im: Arc<InstanceMigration>) -> Arc<InstanceMigration> {
    let spec = planner::acting_spec(&im.spec, im.status.as_ref());
    if *spec == im.spec {
        return im;
    }
    let spec = spec.clone();
    Arc::new(InstanceMigration { spec, ..(*im).clone() })
}

/// What the planner is given about the resource, with `status` as written last.
fn input<'a>(
    im: &'a InstanceMigration,
    submitted: &'a InstanceMigrationSpec,
    status: Option<&'a InstanceMigrationStatus>,
    uid: &'a str,
    usual_steps: &'a BTreeMap<MigrationPhase, Duration>,
    acting_since: jiff::Timestamp,
    seen_at: jiff::Timestamp,
) -> Input<'a> {
    Input {
        spec: &im.spec,
        submitted,
        status,
        generation: im.metadata.generation,
        uid,
        deleting: im.metadata.deletion_timestamp.is_some(),
        now: jiff::Timestamp::now(),
        seen_at,
        usual_steps,
        acting_since,
        retry: im.annotations().get(RETRY_ANNOTATION).map(String::as_str),
        loss_accepted: loss_accepted(im),
    }
}

/// Whether the `osmo.dev/accept-loss` annotation names this very resource.
fn loss_accepted(im: &InstanceMigration) -> bool {
    im.uid().is_some_and(|uid| im.annotations().get(ACCEPT_LOSS_ANNOTATION) == Some(&uid))
}

/// What the controller keeps between reconciles: when each step is usually done (so that the
/// first look at OpenStack comes about then), and the statuses it wrote that the watch has not
/// brought back yet, by UID.
#[derive(Default)]
struct Memory {
    usual: Mutex<BTreeMap<MigrationPhase, Usual>>,
    written: Mutex<HashMap<String, Written>>,
}

/// A status this operator wrote, and the resourceVersion the write gave the object.
struct Written {
    status: InstanceMigrationStatus,
    resource_version: Option<String>,
}

/// When a step is usually done, as learned from the steps before.
#[derive(Clone, Copy, Debug)]
struct Usual {
    time: Duration,
    /// A first look has come too early since this step was first learned: the usual time is
    /// known to within a look, and now moves in small steps.
    bracketed: bool,
}

impl Memory {
    /// A step seen done this much after its usual time was seen by the first look (a second
    /// look comes later than this).
    const FIRST_LOOK_SLACK: Duration = Duration::from_millis(30);
    /// A step not seen before is looked at every half of the time since it started (see the
    /// planner's `poll`): it ended between the look before, at two thirds of the time it was
    /// seen done, and that one. The middle is the best guess.
    const FIRST_SIGHTING: f64 = 5.0 / 6.0;
    /// A step seen done by the first look may have ended much sooner: the next first look comes
    /// this much earlier (a quarter until one comes too early, then a tenth).
    const EARLIER_UNBRACKETED: f64 = 0.75;
    const EARLIER: f64 = 0.9;
    /// A step seen done only by a later look: the next first look comes this much later, and no
    /// later than it was seen. One slow step moves it a little; steps slower for good, within
    /// a few migrations.
    const LATER: f64 = 1.15;

    /// `im` with the status this operator wrote last (and the version it wrote it at), when the
    /// watch has not brought it yet.
    fn newest(&self, im: Arc<InstanceMigration>) -> Arc<InstanceMigration> {
        let uid = im.uid().unwrap_or_default();
        let mut written = self.written.lock().expect("never poisoned");
        match written.get(&uid) {
            Some(w) if im.status.as_ref() == Some(&w.status) => {
                written.remove(&uid);
                im
            }
            Some(w) => {
                let mut newest = (*im).clone();
                newest.status = Some(w.status.clone());
                newest.metadata.resource_version = w.resource_version.clone();
                Arc::new(newest)
            }
            None => im,
        }
    }

    fn wrote(&self, im: &InstanceMigration) {
        if let Some(status) = &im.status {
            let written = Written { status: status.clone(), resource_version: im.resource_version() };
            self.written.lock().expect("never poisoned").insert(im.uid().unwrap_or_default(), written);
        }
    }

    fn forget(&self, im: &InstanceMigration) {
        self.written.lock().expect("never poisoned").remove(&im.uid().unwrap_or_default());
    }

    /// Learns from a step seen done `took` after it started. A first look that sees the step
    /// done says only that it was done by then, so the next one tries earlier; learning only
    /// what was seen would never look earlier than once before.
    fn step_took(&self, phase: MigrationPhase, took: Duration) {
        let mut usual = self.usual.lock().expect("never poisoned");
        let next = match usual.get(&phase) {
            None => Usual { time: took.mul_f64(Self::FIRST_SIGHTING), bracketed: false },
            Some(before) if took <= before.time + Self::FIRST_LOOK_SLACK => {
                let earlier = if before.bracketed { Self::EARLIER } else { Self::EARLIER_UNBRACKETED };
                Usual { time: before.time.mul_f64(earlier), bracketed: before.bracketed }
            }
            Some(before) => Usual { time: before.time.mul_f64(Self::LATER).min(took), bracketed: true },
        };
        usual.insert(phase, next);
    }

    /// When each step is usually done.
    fn usual_steps(&self) -> BTreeMap<MigrationPhase, Duration> {
        self.usual.lock().expect("never poisoned").iter().map(|(phase, usual)| (*phase, usual.time)).collect()
    }
}

/// Decisions followed at once in one reconcile, at most (a guard against a planner that never
/// settles).
const MAX_TURNS: usize = 16;

/// What OpenStack shows now for the phase of `status`, or why the migration is refused.
async fn look(
    ctx: &Context,
    sessions: Option<&Result<observe::Sessions, CloudError>>,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
) -> Result<Observed, ReconcileError> {
    Ok(match sessions {
        None => Observed::default(),
        Some(Ok(s)) => match observe::observe(ctx, s, im, status).await {
            Ok(o) => keep_user_data(ctx, im, status, o).await?,
            Err(e) if started(status) || e.is_transient() => return Err(forget_if_refused(ctx, im, e)),
            // Before anything changed, a permanent error (e.g. refused credentials) ends it.
            Err(e) => refused("OpenStackError", e.to_string()),
        },
        Some(Err(e)) if started(status) => return Err(ReconcileError::Cloud(clone_cloud_error(e))),
        Some(Err(e)) => refused(e.reason(), format!("spec.source: {e}")),
    })
}

/// Keeps the user data Recording read in its Secret, before the record naming that Secret is
/// written; or refuses the migration when the operator may not keep it. Once a record names the
/// Secret, it was kept: later looks of a waiting Recording do not write it again.
async fn keep_user_data(
    ctx: &Context,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
    mut o: Observed,
) -> Result<Observed, ReconcileError> {
    let (Some(data), Some(Ok(record))) = (o.user_data.take(), &o.recording) else { return Ok(o) };
    let Some(name) = record.user_data_secret.clone() else { return Ok(o) };
    let kept = status.source.as_ref().and_then(|r| r.user_data_secret.as_deref()) == Some(name.as_str());
    if kept {
        return Ok(o);
    }
    if let Err(refusal) = user_data::store(&ctx.shared.client, im, &name, &data).await? {
        o.recording = Some(Err(refusal));
    }
    ctx.shared.metrics.kubernetes_write("Secret");
    Ok(o)
}

/// The user data the replacement boots with, for a boot: `Some(None)` when its Secret is gone.
async fn user_data_for(
    ctx: &Context,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
    action: &planner::Action,
) -> Result<Option<Option<UserData>>, ReconcileError> {
    let secret = status.source.as_ref().and_then(|r| r.user_data_secret.as_deref());
    match (action, secret) {
        (planner::Action::Boot(_), Some(name)) => Ok(Some(user_data::read(&ctx.shared.client, im, name).await?)),
        _ => Ok(None),
    }
}

/// Ends a reconcile: gives up the claim on the server once the migration no longer needs it,
/// releases a deleted resource once its migration has ended (and any loss was accepted), and
/// says when to look again. `im` holds the status written last.
async fn done(
    api: &Api<InstanceMigration>,
    im: &InstanceMigration,
    requeue_after: Option<Duration>,
    decided_at: Instant,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let status = im.status.clone().unwrap_or_default();
    if im.metadata.deletion_timestamp.is_some() && planner::releasable(&status, loss_accepted(im)) {
        release(api, im, ctx).await?;
    } else if let Some(name) = status.claim.as_deref().filter(|_| !claim::needs_claim(&status)) {
        ctx.shared.claims.release(name, im).await?;
    }
    if summary::finished(im) {
        // Nothing more is written: what was is not kept for ever (a later reconcile before the
        // watch brings it decides from an older version, and its write is refused).
        ctx.memory.forget(im);
    }
    // The planner timed the next look from its decision: writing and changing since count.
    Ok(requeue(requeue_after.map(|after| after.saturating_sub(decided_at.elapsed()))))
}

/// Lets a deleted resource go, with its claim on the server, and forgets it.
async fn release(api: &Api<InstanceMigration>, im: &InstanceMigration, ctx: &Context) -> Result<(), ReconcileError> {
    if let Some(name) = im.status.as_ref().and_then(|s| s.claim.as_deref()) {
        ctx.shared.claims.release(name, im).await?;
    }
    finalizers::remove(api, im, FINALIZER).await?;
    ctx.shared.metrics.kubernetes_write("InstanceMigration");
    ctx.memory.forget(im);
    Ok(())
}

/// Claims the recorded server for this migration, cluster-wide, before its first change;
/// returns the claim's name when it is new. Another migration's live claim refuses a migration
/// that has changed nothing yet; one that has (started before claims existed) goes on, with a
/// warning.
async fn claim_server(
    ctx: &Context,
    s: &observe::Sessions,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
    observed: &mut Observed,
) -> Result<Option<String>, ReconcileError> {
    if status.claim.is_some() || im.metadata.deletion_timestamp.is_some() || !claim::needs_claim(status) {
        return Ok(None);
    }
    let under_way = started(status);
    // Claimed as soon as it is found, before its state is judged: another migration's stop,
    // lock or snapshot must not hide that migration behind a refusal of its own.
    let (project_id, server_id) = match (&observed.found, &status.source) {
        (Some(found), _) => (found.project_id.as_deref(), found.id.clone()),
        (_, Some(record)) if under_way => (record.project_id.as_deref(), record.id.clone()),
        _ => return Ok(None),
    };
    let key = claim::server_key(&s.source.config().auth.auth_url, project_id, &server_id);
    let still_holds = |other: &InstanceMigration| other.status.as_ref().is_none_or(claim::needs_claim);
    match ctx.shared.claims.claim(&key, im, still_holds).await? {
        Claim::Held(lease) => {
            tracing::info!(migration = %im.name_any(), claim = %lease, "claimed {}", key.words());
            Ok(Some(lease))
        }
        Claim::Refused { lease, holder } => {
            let message = format!(
                "server {server_id} is already being migrated by InstanceMigration {holder} (claim {lease} in namespace {})",
                ctx.shared.claims.namespace()
            );
            if under_way {
                tracing::warn!(migration = %im.name_any(), %message, "a migration under way holds no claim on its server");
            } else {
                *observed = refused("Conflict", message);
            }
            Ok(None)
        }
    }
}

fn requeue(after: Option<Duration>) -> Action {
    match after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    }
}

/// Whether the migration has changed anything in OpenStack yet.
fn started(status: &InstanceMigrationStatus) -> bool {
    !matches!(status.phase, MigrationPhase::Pending | MigrationPhase::Recording)
}

fn refused(reason: &'static str, message: String) -> Observed {
    Observed { recording: Some(Err(Refusal { reason, message })), ..Default::default() }
}

fn clone_cloud_error(e: &CloudError) -> CloudError {
    CloudError::Invalid(e.to_string())
}

/// Credentials refused mid-way may have been rotated: build the session afresh next time.
fn forget_if_refused(ctx: &Context, im: &InstanceMigration, e: crate::openstack::Error) -> ReconcileError {
    if matches!(e, crate::openstack::Error::Auth { .. }) {
        let ns = im.namespace().unwrap_or_default();
        ctx.shared.clouds.forget(&ns, &im.spec.source);
        if let Some(target) = &im.spec.options.target.cloud {
            ctx.shared.clouds.forget(&ns, target);
        }
    }
    ReconcileError::OpenStack(e)
}

/// Writes the status (and keeps it in `im`) and counts what ended in this change.
async fn publish(
    ctx: &Context,
    im: &mut InstanceMigration,
    new: InstanceMigrationStatus,
) -> Result<(), ReconcileError> {
    // The old status is what this reconcile wrote last: each transition makes one event.
    let old = im.status.clone();
    if old.as_ref().is_some_and(|old| !planner::worth_writing(old, &new)) {
        return Ok(());
    }
    match status::publish(&ctx.shared, im, old.as_ref(), &new).await {
        Ok(true) => tracing::debug!(migration = %im.name_any(), phase = ?new.phase, "status written"),
        Ok(false) => {}
        Err(e) => {
            if status::is_conflict(&e) {
                // Changed meanwhile (by a user, or another replica): what this replica wrote
                // before is no longer the newest.
                ctx.memory.forget(im);
            }
            return Err(e.into());
        }
    }
    let old = im.status.replace(new).unwrap_or_default();
    ctx.memory.wrote(im);
    let new = im.status.as_ref().expect("just set");
    for step in &new.steps {
        let was_open = old
            .steps
            .iter()
            .find(|s| s.name == step.name && s.started_at == step.started_at)
            .is_none_or(|s| s.finished_at.is_none());
        if let (true, StepResult::Succeeded | StepResult::Failed, Some(took)) = (was_open, step.result, step.took()) {
            ctx.shared.metrics.migration_step(&format!("{:?}", step.name), took.as_secs_f64());
            if step.result == StepResult::Succeeded {
                ctx.memory.step_took(step.name, took);
            }
        }
    }
    if old.phase != new.phase {
        match new.phase {
            MigrationPhase::Succeeded => {
                ctx.shared.metrics.migration_ended("succeeded");
                if let Some(seconds) = new.downtime.as_deref().and_then(|d| d.trim_end_matches('s').parse::<f64>().ok())
                {
                    ctx.shared.metrics.migration_downtime(seconds);
                }
            }
            MigrationPhase::Failed => ctx.shared.metrics.migration_ended("failed"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(phase: MigrationPhase) -> Arc<InstanceMigration> {
        let mut im: InstanceMigration = serde_json::from_value(serde_json::json!({
            "apiVersion": "osmo.dev/v1alpha1", "kind": "InstanceMigration",
            "metadata": {"name": "web", "uid": "uid-1"},
            "spec": {"server": "web-1", "source": {"secretName": "clouds", "cloud": "old"}, "target": {"availabilityZone": "icehouse"}}
        }))
        .unwrap();
        im.status = Some(InstanceMigrationStatus { phase, ..Default::default() });
        Arc::new(im)
    }

    #[test]
    fn first_looks_come_earlier_while_they_see_the_step_done_and_a_little_later_when_not() {
        let memory = Memory::default();
        let ms = Duration::from_millis;
        let usual = |memory: &Memory| memory.usual_steps()[&MigrationPhase::Stopping];
        // Unknown at first: done between the look before (at 400 ms) and the one that saw it.
        memory.step_took(MigrationPhase::Stopping, ms(600));
        assert_eq!(usual(&memory), ms(500));
        // Seen done by the first look: perhaps done much sooner.
        memory.step_took(MigrationPhase::Stopping, ms(510));
        assert_eq!(usual(&memory), ms(375));
        // Not done at the first look: a little later next time...
        memory.step_took(MigrationPhase::Stopping, ms(480));
        let after_miss = ms(375).mul_f64(1.15);
        assert_eq!(usual(&memory), after_miss);
        // ...from which a first look that sees it done comes a tenth earlier.
        memory.step_took(MigrationPhase::Stopping, ms(440));
        assert_eq!(usual(&memory), after_miss.mul_f64(0.9));
        // One slow step moves it by a seventh, not to its time.
        memory.step_took(MigrationPhase::Stopping, ms(3000));
        assert_eq!(usual(&memory), after_miss.mul_f64(0.9).mul_f64(1.15));
        // Never later than the step was seen.
        let seen = usual(&memory) + ms(40);
        memory.step_took(MigrationPhase::Stopping, seen);
        assert_eq!(usual(&memory), seen);
        // Steps slower for good are followed within a few migrations.
        for _ in 0..6 {
            memory.step_took(MigrationPhase::Stopping, ms(900));
        }
        assert!(usual(&memory) > ms(800), "{:?}", usual(&memory));
        // Each step is learned on its own.
        assert!(!memory.usual_steps().contains_key(&MigrationPhase::Booting));
    }

    #[tokio::test]
    async fn a_status_is_never_written_from_the_caches_summary() {
        // Written, the summary's few fields would replace the whole record of the migration.
        let ctx = super::nova_network_tests::context();
        let mut im = (*migration(MigrationPhase::Succeeded)).clone();
        im.metadata.generation = Some(1);
        im.metadata.finalizers = Some(vec![FINALIZER.into()]);
        im.status.as_mut().unwrap().observed_generation = Some(1);
        summary::cached(&mut im);
        assert!(cached::is_summary(&im));
        let rewritten = InstanceMigrationStatus { downtime: Some("1s".into()), ..im.status.clone().unwrap() };
        let error = publish(&ctx, &mut im, rewritten).await.unwrap_err();
        assert!(error.to_string().contains("from the cache's summary"), "{error}");
    }

    #[test]
    fn a_status_written_but_not_yet_watched_is_decided_from_at_the_version_written() {
        let memory = Memory::default();
        let mut written = (*migration(MigrationPhase::Snapshotting)).clone();
        written.metadata.resource_version = Some("12".into());
        memory.wrote(&written);

        // The watch still shows the status before: the written one counts, and the next write
        // is made on the version this one gave the object.
        let lagging = memory.newest(migration(MigrationPhase::Stopping));
        assert_eq!(lagging.status.as_ref().map(|s| s.phase), Some(MigrationPhase::Snapshotting));
        assert_eq!(lagging.metadata.resource_version.as_deref(), Some("12"));
        // Once the watch has brought it, the watched object is used again.
        memory.newest(migration(MigrationPhase::Snapshotting));
        let later = memory.newest(migration(MigrationPhase::Booting));
        assert_eq!(later.status.as_ref().map(|s| s.phase), Some(MigrationPhase::Booting));
    }
}
