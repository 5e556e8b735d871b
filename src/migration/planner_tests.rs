//! Unit tests of the migration planner: every phase, failure and resume point.
//!
//! The planner is driven the way the controller drives it: [`Cloud`] stands in for OpenStack
//! and shows what it holds now ([`Cloud::observed`]); [`Run::step`] plans, writes the status
//! back and applies the one action to the cloud, as the executor would. A test walks to the
//! phase it is about ([`Run::until`]), changes the cloud there, and checks the next decision.
//!
//! Tests marked `#[ignore = "BUG: ..."]` describe planner bugs found while writing these tests;
//! they fail until the bug is fixed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;

use super::planner::{
    Action, Decision, ImageState, Input, Made, NovaNetworkState, Observed, ServerState, TargetView, Twin, UID_KEY,
    acknowledge, acting_spec, fail, hold, plan, validate,
};
use crate::api::{
    BootBase, Condition, ConditionStatus, FlavorSize, InstanceMigrationSpec, InstanceMigrationStatus, MigrationPhase,
    RecordedFixedIp, RecordedFloatingIp, RecordedNovaNetworkFloatingIp, RecordedPort, RecordedServer, SnapshotStatus,
    StepRecord, StepResult, TargetPort, TargetServerStatus, condition_type,
};
use crate::openstack::compute::{NetworkAttachment, ServerCreate};
use crate::openstack::nova_network::{BulkFloatingIp, LegacyFloatingIp};
use crate::runtime::conditions::{self, Refusal};
use MigrationPhase::{
    Booting, CleaningUp, DeletingSource, Failed, MovingAddresses, Recording, RollingBack, Snapshotting, Stopping,
    Succeeded, Verifying,
};

/// The start of every run, in seconds since the epoch.
const T0: i64 = 1_700_000_000;
/// How long each reconcile of a [`Run`] takes, so that steps have distinct times.
const SECONDS_PER_STEP: i64 = 5;
/// Longer than any default step timeout.
const A_DAY: i64 = 86_400;
const MAX_STEPS: usize = 40;

const UID: &str = "0b5e7c1a-uid";
const SOURCE_ID: &str = "src-1";
const SNAPSHOT_ID: &str = "img-1";
const SNAPSHOT_SIZE: i64 = 2 << 30;
const TARGET_ID: &str = "tgt-1";
const TARGET_HOST: &str = "icehouse-1";
const FLAVOR_ID: &str = "flavor-9";
const REDEPLOY_IMAGE_ID: &str = "cirros-7";
const NO_VALID_HOST: &str = "No valid host was found";

fn at(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(T0 + seconds).unwrap()
}

// ---- specs and records ------------------------------------------------------------------

/// A valid spec (to the `icehouse` zone), with the top-level fields of `extra` replaced.
fn spec(extra: serde_json::Value) -> InstanceMigrationSpec {
    let mut spec = json!({
        "server": "web-1",
        "source": {"secretName": "clouds", "cloud": "old"},
        "target": {"availabilityZone": "icehouse"},
    });
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(spec).unwrap()
}

fn snapshot_spec() -> InstanceMigrationSpec {
    spec(json!({}))
}

fn redeploy_spec() -> InstanceMigrationSpec {
    spec(json!({"strategy": "Redeploy", "redeploy": {"image": "cirros"}}))
}

fn port(id: &str, network: &str, ip: &str, floating: Option<(&str, &str)>) -> RecordedPort {
    RecordedPort {
        id: id.into(),
        network_id: network.into(),
        mac_address: "fa:16:3e:00:00:01".into(),
        fixed_ips: vec![RecordedFixedIp { subnet_id: format!("{network}-subnet"), ip_address: ip.into() }],
        security_groups: vec!["sg-1".into()],
        floating_ips: floating
            .into_iter()
            .map(|(id, address)| RecordedFloatingIp {
                id: id.into(),
                address: address.into(),
                fixed_ip_address: Some(ip.into()),
            })
            .collect(),
    }
}

fn server(status: &str, ports: Vec<RecordedPort>) -> RecordedServer {
    RecordedServer {
        id: SOURCE_ID.into(),
        name: "web-1".into(),
        project_id: Some("project-1".into()),
        status: status.into(),
        flavor_name: Some("m1.small".into()),
        flavor_size: Some(FlavorSize { disk_gb: 1, ephemeral_gb: 0, ram_mb: 512 }),
        image_id: Some("cirros-0.3".into()),
        key_name: Some("deploy".into()),
        security_groups: vec!["default".into()],
        metadata: BTreeMap::from([("role".into(), "web".into())]),
        availability_zone: Some("havana".into()),
        host: Some("havana-1".into()),
        ports,
        ..Default::default()
    }
}

/// `web-1`: one port on `net-1` (10.0.0.5) with the floating IP `fip-1` (203.0.113.9).
fn web_server(status: &str) -> RecordedServer {
    server(status, vec![port("p-1", "net-1", "10.0.0.5", Some(("fip-1", "203.0.113.9")))])
}

/// `web-1` with a second port on `net-2` (10.1.0.5) and the floating IP `fip-2`.
fn two_port_server() -> RecordedServer {
    server(
        "ACTIVE",
        vec![
            port("p-1", "net-1", "10.0.0.5", Some(("fip-1", "203.0.113.9"))),
            port("p-2", "net-2", "10.1.0.5", Some(("fip-2", "203.0.113.10"))),
        ],
    )
}

/// A snapshot of the source, made in its project.
fn image(id: &str, status: &str) -> ImageState {
    ImageState {
        id: id.into(),
        status: status.into(),
        size: Some(SNAPSHOT_SIZE),
        checksum: Some("0cc175b9c0f1b6a8".into()),
        instance_uuid: Some(SOURCE_ID.into()),
        owner: Some("project-1".into()),
        protected: false,
    }
}

fn server_state(id: &str, status: &str) -> ServerState {
    ServerState { id: id.into(), status: status.into(), ..Default::default() }
}

// ---- the simulated cloud ----------------------------------------------------------------

/// OpenStack as the planner sees it, changed by the planner's actions as OpenStack would
/// change (at once, unless told otherwise).
#[derive(Clone, Debug)]
struct Cloud {
    recording: Result<RecordedServer, Refusal>,
    /// The server's project, when the credentials are scoped to another.
    acting_project: Option<String>,
    boot: Result<BootBase, Refusal>,
    target_view: TargetView,
    source: Option<ServerState>,
    snapshot: Option<ImageState>,
    target: Option<ServerState>,
    /// The source's ports that exist: all of them until the source is deleted.
    source_ports: BTreeSet<String>,
    /// Ports made before the source was booted, so that they survive its deletion.
    premade_ports: BTreeSet<String>,
    created_ports: BTreeMap<String, String>,
    target_ports: Vec<(String, String)>,
    floating_ips: BTreeMap<String, Option<String>>,
    /// nova-network in the target: empty, as in a new cloud, unless a test says otherwise.
    nova_network: NovaNetworkState,
    port_networks: BTreeMap<String, String>,
    /// The Glance status a new snapshot reaches.
    snapshot_becomes: &'static str,
    /// The Nova status a new replacement reaches.
    target_becomes: &'static str,
    /// What creates sent before the last ones made, landing late.
    twins: Vec<Twin>,
}

impl Cloud {
    fn new(record: RecordedServer) -> Cloud {
        let source = ServerState {
            host: record.host.clone(),
            availability_zone: record.availability_zone.clone(),
            ..server_state(&record.id, &record.status)
        };
        let ports = || record.ports.iter();
        Cloud {
            source: Some(source),
            snapshot: None,
            target: None,
            source_ports: ports().map(|p| p.id.clone()).collect(),
            premade_ports: BTreeSet::new(),
            created_ports: BTreeMap::new(),
            target_ports: Vec::new(),
            floating_ips: ports()
                .flat_map(|p| p.floating_ips.iter().map(|f| (f.id.clone(), Some(p.id.clone()))))
                .collect(),
            port_networks: ports().map(|p| (p.id.clone(), p.network_id.clone())).collect(),
            nova_network: NovaNetworkState::default(),
            boot: Ok(BootBase { flavor_id: FLAVOR_ID.into(), image_id: None, networks: BTreeMap::new() }),
            target_view: TargetView {
                key_pair_found: record.key_name.as_ref().map(|_| true),
                flavor_disk_gb: 1,
                flavor_ram_mb: 512,
                image_min_ram_mb: None,
            },
            snapshot_becomes: "active",
            target_becomes: "ACTIVE",
            twins: Vec::new(),
            recording: Ok(record),
            acting_project: None,
        }
    }

    fn source_mut(&mut self) -> &mut ServerState {
        self.source.as_mut().expect("the source exists")
    }

    /// Everything at once: the controller reads only what the phase needs, and the planner
    /// reads only that.
    fn observed(&self) -> Observed {
        Observed {
            recording: Some(self.recording.clone()),
            acting_project: self.acting_project.clone(),
            source: self.source.clone(),
            snapshot: self.snapshot.clone(),
            target: self.target.clone(),
            boot: Some(self.boot.clone()),
            target_view: Some(self.target_view.clone()),
            surviving_ports: self.source_ports.clone(),
            created_ports: self.created_ports.clone(),
            target_ports: self.target_ports.clone(),
            floating_ips: self.floating_ips.clone(),
            nova_network: Some(self.nova_network.clone()),
            twins: self.twins.clone(),
        }
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::DeleteTwin(twin) => self.twins.retain(|t| t != twin),
            Action::StopSource { .. } => self.source_mut().status = "SHUTOFF".into(),
            Action::StartSource { .. } => self.source_mut().status = "ACTIVE".into(),
            Action::CreateSnapshot { .. } => self.snapshot = Some(image(SNAPSHOT_ID, self.snapshot_becomes)),
            Action::DeleteSource { server_id } => {
                // Nova deletes the ports it made; Neutron unbinds their floating IPs;
                // nova-network disassociates its addresses but keeps them allocated.
                self.source = None;
                for address in &mut self.nova_network.allocated {
                    if address.instance_id.as_ref() == Some(server_id) {
                        address.instance_id = None;
                    }
                }
                let deleted: BTreeSet<String> = self.source_ports.difference(&self.premade_ports).cloned().collect();
                self.source_ports.retain(|p| !deleted.contains(p));
                for port in self.floating_ips.values_mut() {
                    if port.as_ref().is_some_and(|p| deleted.contains(p)) {
                        *port = None;
                    }
                }
            }
            Action::RecreatePort { source_port_id, network_id } => {
                let id = format!("{source_port_id}-recreated");
                self.port_networks.insert(id.clone(), network_id.clone());
                self.created_ports.insert(source_port_id.clone(), id);
            }
            Action::Boot(plan) => {
                let failed = self.target_becomes == "ERROR";
                self.target = Some(ServerState {
                    host: Some(TARGET_HOST.into()),
                    availability_zone: Some("icehouse".into()),
                    fault: if failed { Some(NO_VALID_HOST.into()) } else { None },
                    ..server_state(TARGET_ID, self.target_becomes)
                });
                self.target_ports = plan
                    .networks
                    .iter()
                    .enumerate()
                    .map(|(i, n)| match n {
                        NetworkAttachment::Port(id) => (id.clone(), self.port_networks[id].clone()),
                        NetworkAttachment::Network { id: net, .. } => (format!("tgt-port-{i}"), net.clone()),
                        NetworkAttachment::Auto => (format!("tgt-port-{i}"), "auto".into()),
                    })
                    .collect();
            }
            Action::AssociateFloatingIp { floating_ip_id, port_id, .. } => {
                self.floating_ips.insert(floating_ip_id.clone(), Some(port_id.clone()));
            }
            Action::CreateFloatingIpRange { ip_range, pool, interface } => {
                let address = ip_range.trim_end_matches("/32").to_string();
                self.nova_network.pools.push(bulk_address(&address, pool, interface.as_deref(), None));
            }
            Action::AllocateFloatingIp { pool } => {
                // Any free address of the pool.
                let free = self.nova_network.pools.iter_mut().find(|f| &f.pool == pool && f.project_id.is_none());
                let free = free.expect("a free address in the pool");
                free.project_id = Some("project-1".into());
                let allocated = allocated_address(&free.address, pool, None);
                self.nova_network.allocated.push(allocated);
            }
            Action::AddFloatingIp { server_id, address } => {
                let ours = self.nova_network.allocated.iter_mut().find(|f| &f.ip == address);
                ours.expect("an allocated address").instance_id = Some(server_id.clone());
            }
            Action::DeleteSnapshot { .. } => self.snapshot = None,
            Action::ProtectSnapshot { protected, .. } => {
                if let Some(snapshot) = self.snapshot.as_mut() {
                    snapshot.protected = *protected;
                }
            }
            Action::DeleteTarget { .. } => {
                self.target = None;
                self.target_ports.clear();
            }
        }
    }
}

fn bulk_address(address: &str, pool: &str, interface: Option<&str>, project: Option<&str>) -> BulkFloatingIp {
    BulkFloatingIp {
        address: address.into(),
        pool: pool.into(),
        interface: interface.map(Into::into),
        project_id: project.map(Into::into),
        instance_uuid: None,
        fixed_ip: None,
    }
}

fn allocated_address(address: &str, pool: &str, server: Option<&str>) -> LegacyFloatingIp {
    LegacyFloatingIp {
        id: format!("id-{address}"),
        ip: address.into(),
        pool: pool.into(),
        fixed_ip: None,
        instance_id: server.map(Into::into),
    }
}

/// `web-1` in a nova-network cloud: no ports, the address 10.10.10.3 of pool `public` (eth0).
fn nova_network_cloud() -> Cloud {
    let mut record = server("ACTIVE", Vec::new());
    record.nova_network_floating_ips = vec![RecordedNovaNetworkFloatingIp {
        address: "10.10.10.3".into(),
        pool: "public".into(),
        interface: Some("eth0".into()),
        fixed_ip_address: Some("192.168.1.5".into()),
    }];
    Cloud::new(record)
}

fn nova_network_spec() -> InstanceMigrationSpec {
    spec(json!({"addresses": {"mode": "NovaNetwork"}}))
}

fn web_cloud(status: &str) -> Cloud {
    Cloud::new(web_server(status))
}

/// A cloud where `redeploy.image` resolves to [`REDEPLOY_IMAGE_ID`].
fn redeploy_cloud(status: &str) -> Cloud {
    let mut cloud = web_cloud(status);
    cloud.boot = Ok(BootBase { image_id: Some(REDEPLOY_IMAGE_ID.into()), ..cloud.boot.unwrap() });
    cloud
}

// ---- the controller loop ----------------------------------------------------------------

/// One migration, reconciled step by step against a [`Cloud`].
#[derive(Clone)]
struct Run {
    spec: InstanceMigrationSpec,
    cloud: Cloud,
    status: Option<InstanceMigrationStatus>,
    generation: i64,
    deleting: bool,
    /// Seconds since [`T0`].
    now: i64,
    decisions: Vec<Decision>,
    /// Each action taken, with the phase that asked for it.
    log: Vec<(MigrationPhase, Action)>,
    usual_steps: BTreeMap<MigrationPhase, Duration>,
    /// Seconds since [`T0`] when the operator started acting.
    acting_since: i64,
}

impl Run {
    fn new(spec: InstanceMigrationSpec, cloud: Cloud) -> Run {
        Run {
            spec,
            cloud,
            status: None,
            generation: 1,
            deleting: false,
            now: 0,
            decisions: vec![],
            log: vec![],
            usual_steps: BTreeMap::new(),
            acting_since: 0,
        }
    }

    /// As the controller gives it: the spec acted on, and `spec` as submitted.
    fn input(&self) -> Input<'_> {
        Input {
            spec: acting_spec(&self.spec, self.status.as_ref()),
            submitted: &self.spec,
            status: self.status.as_ref(),
            generation: Some(self.generation),
            uid: UID,
            deleting: self.deleting,
            now: at(self.now),
            seen_at: at(self.now),
            usual_steps: &self.usual_steps,
            acting_since: at(self.acting_since),
        }
    }

    /// What the planner decides now, without acting on it.
    fn decide(&self) -> Decision {
        let mut observed = self.cloud.observed();
        // As the controller does: twins are looked for only once a create was repeated.
        if !self.status.as_ref().is_some_and(|s| s.create_repeated) {
            observed.twins.clear();
        }
        plan(&self.input(), &observed)
    }

    /// One reconcile: decide, write the status, make the change.
    fn step(&mut self) -> Decision {
        let decision = self.decide();
        let mut status = decision.status.clone();
        if let Some(action) = &decision.action {
            self.cloud.apply(action);
            // The controller writes what it made at once, so that the next look finds it by id.
            let made = match action {
                Action::CreateSnapshot { .. } => Some(Made::Snapshot(SNAPSHOT_ID.into())),
                Action::Boot(_) => Some(Made::Target(TARGET_ID.into())),
                _ => None,
            };
            if let Some(made) = made {
                status = hold(&status, made);
            }
            self.log.push((status.phase, action.clone()));
        }
        self.status = Some(status);
        self.decisions.push(decision.clone());
        self.now += SECONDS_PER_STEP;
        decision
    }

    /// Steps until the next decision would enter `phase` (made from the look that ends the
    /// phase before, and often with the new phase's first change).
    fn before(&mut self, phase: MigrationPhase) {
        for _ in 0..MAX_STEPS {
            if self.decide().status.phase == phase {
                return;
            }
            self.step();
        }
        panic!("never about to enter {phase:?}; stuck in {:?} after {:?}", self.phase(), self.log);
    }

    /// Steps into `phase`, returning the decision that entered it.
    fn entering(&mut self, phase: MigrationPhase) -> Decision {
        self.before(phase);
        self.step()
    }

    /// The decision entering `phase` is written, and then the operator crashes: its change is
    /// never made.
    fn crash_entering(&mut self, phase: MigrationPhase) {
        self.before(phase);
        self.status = Some(self.decide().status);
    }

    /// Steps until the migration is in `phase` (having entered it, and made its first change
    /// if it makes one at once).
    fn until(&mut self, phase: MigrationPhase) {
        for _ in 0..MAX_STEPS {
            if self.phase() == phase {
                return;
            }
            self.step();
        }
        panic!("never reached {phase:?}; stuck in {:?} after {:?}", self.phase(), self.log);
    }

    fn finish(&mut self) -> &InstanceMigrationStatus {
        self.until_any(&[Succeeded, Failed]);
        self.status()
    }

    fn until_any(&mut self, phases: &[MigrationPhase]) {
        for _ in 0..MAX_STEPS {
            if phases.contains(&self.phase()) {
                return;
            }
            self.step();
        }
        panic!("never reached {phases:?}; stuck in {:?} after {:?}", self.phase(), self.log);
    }

    fn phase(&self) -> MigrationPhase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }

    fn status(&self) -> &InstanceMigrationStatus {
        self.status.as_ref().expect("planned at least once")
    }

    fn actions(&self) -> Vec<Action> {
        self.log.iter().map(|(_, action)| action.clone()).collect()
    }

    /// The phases the decisions ended in, each once per stay.
    fn phases(&self) -> Vec<MigrationPhase> {
        let mut phases: Vec<_> = self.decisions.iter().map(|d| d.status.phase).collect();
        phases.dedup();
        phases
    }
}

// ---- expected actions and status parts --------------------------------------------------

fn stop_source() -> Action {
    Action::StopSource { server_id: SOURCE_ID.into() }
}

fn start_source() -> Action {
    Action::StartSource { server_id: SOURCE_ID.into() }
}

fn create_snapshot() -> Action {
    Action::CreateSnapshot { server_id: SOURCE_ID.into(), name: "osmo-web-1".into() }
}

fn delete_source() -> Action {
    Action::DeleteSource { server_id: SOURCE_ID.into() }
}

fn protect_snapshot(protected: bool) -> Action {
    Action::ProtectSnapshot { image_id: SNAPSHOT_ID.into(), protected }
}

fn delete_snapshot(image_id: &str) -> Action {
    Action::DeleteSnapshot { image_id: image_id.into() }
}

fn delete_target() -> Action {
    Action::DeleteTarget { server_id: TARGET_ID.into() }
}

fn associate(floating_ip: &str, port: &str, fixed_ip: Option<&str>) -> Action {
    Action::AssociateFloatingIp {
        floating_ip_id: floating_ip.into(),
        port_id: port.into(),
        fixed_ip: fixed_ip.map(Into::into),
    }
}

fn network(id: &str) -> NetworkAttachment {
    NetworkAttachment::Network { id: id.into(), fixed_ip: None }
}

fn on_port(id: &str) -> NetworkAttachment {
    NetworkAttachment::Port(id.into())
}

/// The security groups of a boot: none when every network is an existing port (ports carry
/// their own).
fn groups_for(networks: &[NetworkAttachment]) -> Vec<String> {
    if networks.iter().all(|n| matches!(n, NetworkAttachment::Port(_))) { Vec::new() } else { vec!["default".into()] }
}

/// The boot of `web-1` into the `icehouse` zone.
fn boot(image_id: &str, networks: &[NetworkAttachment]) -> Action {
    Action::Boot(ServerCreate {
        name: "web-1".into(),
        image_id: image_id.into(),
        flavor_id: FLAVOR_ID.into(),
        key_name: Some("deploy".into()),
        security_groups: groups_for(networks),
        metadata: BTreeMap::from([("role".into(), "web".into()), (UID_KEY.into(), UID.into())]),
        availability_zone: Some("icehouse".into()),
        host: None,
        networks: networks.to_vec(),
        idempotency_key: UID_KEY.into(),
    })
}

fn is_boot(action: &Action) -> bool {
    matches!(action, Action::Boot(_))
}

fn target_port(source_port: &str, port: &str, origin: &str) -> TargetPort {
    TargetPort { source_port_id: source_port.into(), port_id: port.into(), origin: origin.into() }
}

fn steps(status: &InstanceMigrationStatus) -> Vec<(MigrationPhase, StepResult)> {
    status.steps.iter().map(|s| (s.name, s.result)).collect()
}

fn all_succeeded(phases: &[MigrationPhase]) -> Vec<(MigrationPhase, StepResult)> {
    phases.iter().map(|p| (*p, StepResult::Succeeded)).collect()
}

fn step_record(status: &InstanceMigrationStatus, phase: MigrationPhase) -> &StepRecord {
    status.steps.iter().find(|s| s.name == phase).unwrap_or_else(|| panic!("no {phase:?} step in {:?}", status.steps))
}

fn condition<'a>(status: &'a InstanceMigrationStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", status.conditions))
}

fn failure_message(status: &InstanceMigrationStatus) -> &str {
    &condition(status, condition_type::FAILED).message
}

#[track_caller]
fn assert_condition(status: &InstanceMigrationStatus, type_: &str, expected: ConditionStatus, reason: &str) {
    let c = condition(status, type_);
    assert_eq!((c.status, c.reason.as_str()), (expected, reason), "{type_} condition: {}", c.message);
    assert_eq!(c.observed_generation, status.observed_generation, "{type_} condition's generation");
}

/// Working on `phase`: Progressing says so, Ready is False for the same reason.
#[track_caller]
fn assert_progressing(status: &InstanceMigrationStatus, phase: MigrationPhase) {
    assert_eq!(status.phase, phase);
    let reason = format!("{phase:?}");
    assert_condition(status, condition_type::PROGRESSING, ConditionStatus::True, &reason);
    // Ready changes only when the migration ends, so that each step makes one event.
    assert_condition(status, condition_type::READY, ConditionStatus::False, "InProgress");
}

/// Undoing after a failure: Failed stays Unknown, with the failure's reason, until it is done.
#[track_caller]
fn assert_rolling_back(status: &InstanceMigrationStatus, reason: &str) {
    assert_progressing(status, RollingBack);
    assert_condition(status, condition_type::FAILED, ConditionStatus::Unknown, reason);
    assert!(failure_message(status).ends_with("; rolling back") || reason == "Deleted", "{}", failure_message(status));
    assert_eq!(status.steps.last().map(|s| (s.name, s.result)), Some((RollingBack, StepResult::Running)));
}

#[track_caller]
fn assert_failed(status: &InstanceMigrationStatus, reason: &str) {
    assert_eq!(status.phase, Failed, "lastError: {:?}", status.last_error);
    assert_condition(status, condition_type::FAILED, ConditionStatus::True, reason);
    assert_condition(status, condition_type::PROGRESSING, ConditionStatus::False, reason);
    assert_condition(status, condition_type::READY, ConditionStatus::False, reason);
}

#[track_caller]
fn assert_succeeded(status: &InstanceMigrationStatus) {
    assert_eq!(status.phase, Succeeded, "lastError: {:?}", status.last_error);
    assert_condition(status, condition_type::READY, ConditionStatus::True, "Succeeded");
    assert_condition(status, condition_type::PROGRESSING, ConditionStatus::False, "Succeeded");
    assert_condition(status, condition_type::FAILED, ConditionStatus::False, "Succeeded");
    assert_condition(status, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    let target = status.target.as_ref().expect("a replacement");
    assert_eq!(
        condition(status, condition_type::READY).message,
        format!("The server runs as {} on {}, with its addresses.", target.server_id, TARGET_HOST)
    );
}

// ---- happy paths ------------------------------------------------------------------------

#[test]
fn a_snapshot_migration_walks_every_phase_to_success() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let done = run.finish().clone();

    // Verifying is decided from the look that sees the floating IPs moved.
    assert_eq!(run.phases(), [Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses, CleaningUp, Succeeded]);
    // Each change in the phase that owns it: the snapshot is deleted only after verification.
    assert_eq!(
        run.log,
        [
            (Stopping, stop_source()),
            (Snapshotting, create_snapshot()),
            (Snapshotting, protect_snapshot(true)),
            (DeletingSource, delete_source()),
            (Booting, boot(SNAPSHOT_ID, &[network("net-1")])),
            (MovingAddresses, associate("fip-1", "tgt-port-0", None)),
            (CleaningUp, protect_snapshot(false)),
            (CleaningUp, delete_snapshot(SNAPSHOT_ID)),
        ]
    );
    assert_succeeded(&done);
    let every_step =
        [Recording, Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses, Verifying, CleaningUp];
    assert_eq!(steps(&done), all_succeeded(&every_step));
    assert!(done.steps.iter().all(|s| s.finished_at.is_some() && s.message.is_none()));
    assert_eq!(done.source, Some(web_server("ACTIVE")));
    assert_eq!(done.snapshot.as_ref().map(|s| s.status.as_str()), Some("deleted"));
    assert_eq!(
        done.target,
        Some(TargetServerStatus {
            server_id: TARGET_ID.into(),
            status: "ACTIVE".into(),
            host: Some(TARGET_HOST.into()),
            availability_zone: Some("icehouse".into()),
        })
    );
    assert_eq!(done.target_ports, [target_port("p-1", "tgt-port-0", "New")]);
    // Down from the stop (t=0s) until the replacement was verified with its address (t=30s; the
    // snapshot's protection takes a step of its own here, one more change of the same reconcile
    // in the controller).
    assert_eq!(done.downtime.as_deref(), Some("30.0s"));
    assert_eq!(done.last_error, None);
    assert_eq!(run.cloud.floating_ips["fip-1"].as_deref(), Some("tgt-port-0"));
    // Every decision asks to look again, except the last one.
    let (last, before) = run.decisions.split_last().unwrap();
    assert!(before.iter().all(|d| d.requeue.is_some()));
    assert_eq!(last.requeue, None);
}

#[test]
fn a_new_migration_is_acknowledged_before_openstack_is_asked_and_goes_on_from_there() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let first = acknowledge(&run.input());
    assert_eq!(first.phase, MigrationPhase::Pending);
    assert_eq!(first.observed_generation, Some(1));
    assert_condition(&first, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert_condition(&first, condition_type::READY, ConditionStatus::False, "InProgress");
    assert!(first.steps.is_empty() && first.source.is_none());
    // The migration then goes on as if it had not been acknowledged apart.
    run.status = Some(first);
    assert_succeeded(run.finish());

    // A spec refused by validation is refused in the acknowledgment itself.
    let invalid = Run::new(spec(json!({"server": " web-1"})), web_cloud("ACTIVE"));
    let refused = acknowledge(&invalid.input());
    assert_eq!(refused.phase, Failed);
    assert_condition(&refused, condition_type::ACCEPTED, ConditionStatus::False, "Invalid");
}

#[test]
fn the_replacement_boots_with_the_record_the_target_and_the_uid() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.boot = Ok(BootBase {
        flavor_id: FLAVOR_ID.into(),
        image_id: None,
        networks: BTreeMap::from([("net-1".into(), "net-9".into())]),
    });
    let target = json!({"availabilityZone": "icehouse", "host": "icehouse-3"});
    let mut run = Run::new(spec(json!({"target": target, "mappings": {"networks": {"net-1": "net-9"}}})), cloud);

    let booting = run.entering(Booting);
    assert_eq!(
        booting.action,
        Some(Action::Boot(ServerCreate {
            name: "web-1".into(),
            image_id: SNAPSHOT_ID.into(),
            flavor_id: FLAVOR_ID.into(),
            key_name: Some("deploy".into()),
            security_groups: vec!["default".into()],
            metadata: BTreeMap::from([("role".into(), "web".into()), (UID_KEY.into(), UID.into())]),
            availability_zone: Some("icehouse".into()),
            host: Some("icehouse-3".into()),
            networks: vec![network("net-9")],
            idempotency_key: UID_KEY.into(),
        }))
    );
    assert_progressing(&booting.status, Booting);
}

#[test]
fn what_the_replacement_is_made_of_is_resolved_once_when_recording() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let recorded = run.step();
    let base = BootBase { flavor_id: FLAVOR_ID.into(), image_id: None, networks: BTreeMap::new() };
    assert_eq!(recorded.status.boot_base, Some(base));

    // Booting uses the recorded base: it no longer needs the target cloud to resolve it.
    run.cloud.boot = Err(Refusal { reason: "FlavorNotFound", message: "gone".into() });
    assert_succeeded(run.finish());
    assert!(run.actions().contains(&boot(SNAPSHOT_ID, &[network("net-1")])));
}

#[test]
fn a_status_without_a_boot_base_resolves_it_when_booting() {
    // Written by an osmo that did not record the base: it is resolved before the boot.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Booting);
    run.status.as_mut().unwrap().boot_base = None;
    // The boot decided before the crash may have been sent: none goes before it could land.
    run.now += 31;
    let mut unresolved = run.clone();
    unresolved.cloud.boot = Err(Refusal { reason: "FlavorNotFound", message: "flavor gone".into() });
    assert_failed(&unresolved.step().status, "FlavorNotFound");

    let booting = run.step();
    assert_eq!(booting.action, Some(boot(SNAPSHOT_ID, &[network("net-1")])));
    assert_eq!(booting.status.boot_base.map(|b| b.flavor_id), Some(FLAVOR_ID.to_string()));
}

#[test]
fn a_redeploy_boots_from_the_given_image_and_deletes_the_source_last() {
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    let done = run.finish().clone();

    assert_eq!(run.phases(), [Stopping, Booting, MovingAddresses, DeletingSource, Succeeded]);
    assert_eq!(
        run.log,
        [
            (Stopping, stop_source()),
            (Booting, boot(REDEPLOY_IMAGE_ID, &[network("net-1")])),
            // Straight from the stopped source's port to the replacement's.
            (MovingAddresses, associate("fip-1", "tgt-port-0", None)),
            (DeletingSource, delete_source()),
        ]
    );
    assert_succeeded(&done);
    assert_eq!(
        steps(&done),
        all_succeeded(&[Recording, Stopping, Booting, MovingAddresses, Verifying, DeletingSource])
    );
    assert_eq!(done.snapshot, None);
    assert_eq!(done.target_ports, [target_port("p-1", "tgt-port-0", "New")]);
    // Stopped at t=0s, verified at t=15s; deleting the stopped source afterwards is no downtime.
    assert_eq!(done.downtime.as_deref(), Some("15.0s"));
    assert!(run.cloud.source.is_none());
}

#[test]
fn stopping_is_skipped_when_the_source_is_off_or_must_not_be_stopped() {
    let cases = [
        ("Snapshot of a SHUTOFF source", snapshot_spec(), web_cloud("SHUTOFF")),
        ("Snapshot with stopSource false", spec(json!({"stopSource": false})), web_cloud("ACTIVE")),
        ("Redeploy of a SHUTOFF source", redeploy_spec(), redeploy_cloud("SHUTOFF")),
    ];
    for (case, spec, cloud) in cases {
        let expected_next =
            if spec.options.strategy == crate::api::Strategy::Snapshot { Snapshotting } else { Booting };
        let mut run = Run::new(spec, cloud);

        // The source was just recorded idle: its snapshot (or replacement) is made at once.
        let first = run.step();
        assert_eq!(first.status.phase, expected_next, "{case}");
        assert!(
            matches!(first.action, Some(Action::CreateSnapshot { .. } | Action::Boot(_))),
            "{case}: {:?}",
            first.action
        );
        let stopping = step_record(&first.status, Stopping);
        assert_eq!(stopping.result, StepResult::Skipped, "{case}");
        assert_eq!(stopping.finished_at.as_deref(), Some(stopping.started_at.as_str()), "{case}");

        assert_succeeded(run.finish());
        assert!(!run.actions().contains(&stop_source()), "{case}: {:?}", run.log);
    }
}

#[test]
fn without_a_stop_downtime_is_measured_from_the_source_deletion() {
    let mut run = Run::new(snapshot_spec(), web_cloud("SHUTOFF"));
    let done = run.finish();
    let seconds = |at: &str| at.parse::<jiff::Timestamp>().unwrap().as_second() - T0;
    let deletion = seconds(&step_record(done, DeletingSource).started_at);
    let verified = seconds(step_record(done, Verifying).finished_at.as_deref().unwrap());
    assert_eq!((deletion, verified), (10, 25));
    assert_eq!(done.downtime.as_deref(), Some("15.0s"));
}

#[test]
fn a_retained_snapshot_is_kept() {
    let mut run = Run::new(spec(json!({"snapshotCleanup": "Retain"})), web_cloud("ACTIVE"));
    let done = run.finish().clone();

    assert_succeeded(&done);
    assert!(!run.actions().iter().any(|a| matches!(a, Action::DeleteSnapshot { .. })), "{:?}", run.log);
    assert_eq!(step_record(&done, CleaningUp).result, StepResult::Succeeded);
    assert_eq!(
        done.snapshot,
        Some(SnapshotStatus {
            image_id: SNAPSHOT_ID.into(),
            status: "active".into(),
            size_bytes: Some(SNAPSHOT_SIZE),
            protected: false
        })
    );
    assert_eq!(run.cloud.snapshot, Some(image(SNAPSHOT_ID, "active")));
}

#[test]
fn with_addresses_mode_none_no_floating_ip_is_moved() {
    let mut run = Run::new(spec(json!({"addresses": {"mode": "None"}})), web_cloud("ACTIVE"));
    let done = run.finish().clone();

    assert_succeeded(&done);
    assert!(!run.actions().iter().any(|a| matches!(a, Action::AssociateFloatingIp { .. })), "{:?}", run.log);
    assert_eq!(run.cloud.floating_ips["fip-1"], None, "left where the source's deletion put it");
    assert_eq!(step_record(&done, MovingAddresses).result, StepResult::Succeeded);
}

#[test]
fn preserved_fixed_ips_recreate_the_port_and_boot_on_it() {
    let mut run = Run::new(spec(json!({"addresses": {"preserveFixedIPs": true}})), web_cloud("ACTIVE"));

    let recreating = run.entering(Booting);
    assert_eq!(
        recreating.action,
        Some(Action::RecreatePort { source_port_id: "p-1".into(), network_id: "net-1".into() })
    );
    assert_eq!(recreating.status.phase, Booting);
    assert_eq!(recreating.requeue, Some(Duration::ZERO));

    let booting = run.step();
    assert_eq!(booting.action, Some(boot(SNAPSHOT_ID, &[on_port("p-1-recreated")])));
    assert_eq!(booting.status.target_ports, [target_port("p-1", "p-1-recreated", "Recreated")]);

    assert_succeeded(run.finish());
    // The floating IP keeps its fixed IP, which the recreated port carries.
    assert!(run.actions().contains(&associate("fip-1", "p-1-recreated", Some("10.0.0.5"))), "{:?}", run.log);
    assert_eq!(run.actions().iter().filter(|a| matches!(a, Action::RecreatePort { .. })).count(), 1);
}

#[test]
fn a_premade_port_that_survives_the_source_is_reused() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.premade_ports.insert("p-1".into());
    let mut run = Run::new(snapshot_spec(), cloud);
    let done = run.finish().clone();

    assert_succeeded(&done);
    // The floating IP stays on the surviving port: there is nothing to move.
    assert_eq!(
        run.log,
        [
            (Stopping, stop_source()),
            (Snapshotting, create_snapshot()),
            (Snapshotting, protect_snapshot(true)),
            (DeletingSource, delete_source()),
            (Booting, boot(SNAPSHOT_ID, &[on_port("p-1")])),
            (CleaningUp, protect_snapshot(false)),
            (CleaningUp, delete_snapshot(SNAPSHOT_ID)),
        ]
    );
    assert_eq!(done.target_ports, [target_port("p-1", "p-1", "Reused")]);
}

#[test]
fn new_ports_are_matched_to_the_source_ports_by_network() {
    let mut run = Run::new(snapshot_spec(), Cloud::new(two_port_server()));
    assert_eq!(run.entering(Booting).action, Some(boot(SNAPSHOT_ID, &[network("net-1"), network("net-2")])));
    // Neutron lists the replacement's ports in an order of its own.
    run.cloud.target_ports = vec![("tp-b".into(), "net-2".into()), ("tp-a".into(), "net-1".into())];

    let booted = run.step();
    assert_progressing(&booted.status, MovingAddresses);
    assert_eq!(booted.status.target_ports, [target_port("p-1", "tp-a", "New"), target_port("p-2", "tp-b", "New")]);
    // One floating IP per step, each to the port on its network, with no fixed IP forced.
    assert_eq!(booted.action, Some(associate("fip-1", "tp-a", None)));
    assert_eq!(run.step().action, Some(associate("fip-2", "tp-b", None)));
    assert_succeeded(run.finish());
}

#[test]
fn while_in_progress_the_conditions_name_the_phase() {
    let target = json!({
        "cloud": {"secretName": "clouds", "cloud": "new"},
        "availabilityZone": "icehouse",
        "host": "icehouse-3",
    });
    let mut run = Run::new(spec(json!({"target": target})), web_cloud("ACTIVE"));
    run.until(Snapshotting);
    let status = run.status();

    assert_progressing(status, Snapshotting);
    assert_eq!(
        condition(status, condition_type::PROGRESSING).message,
        "Snapshotting the source server and waiting for Glance to call the image active."
    );
    assert_condition(status, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert!(status.conditions.iter().all(|c| c.type_ != condition_type::FAILED), "{:?}", status.conditions);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.target_description.as_deref(), Some("cloud new: icehouse/icehouse-3"));
    assert_eq!(status.source, Some(web_server("ACTIVE")));
    assert_eq!(
        steps(status),
        [(Recording, StepResult::Succeeded), (Stopping, StepResult::Succeeded), (Snapshotting, StepResult::Running)]
    );
}

#[test]
fn polling_slows_down_as_a_step_drags_on() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot = Some(image(SNAPSHOT_ID, "saving"));
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    let entered = run.now - SECONDS_PER_STEP;

    for (elapsed, interval) in
        [(0, Duration::from_millis(100)), (5, Duration::from_millis(2500)), (1000, Duration::from_secs(10))]
    {
        run.now = entered + elapsed;
        let waiting = run.decide();
        assert_eq!((waiting.status.phase, waiting.action), (Snapshotting, None));
        assert_eq!(waiting.requeue, Some(interval), "after {elapsed}s");
    }
}

#[test]
fn a_step_ends_when_it_was_seen_done_and_the_next_starts_when_decided() {
    // Each look begins a second before the answer comes back and the planner decides.
    let decide_after_a_look = |run: &Run| {
        let mut input = run.input();
        input.seen_at = at(run.now - 1);
        plan(&input, &run.cloud.observed()).status
    };
    let step = |status: &InstanceMigrationStatus, name| status.steps.iter().find(|s| s.name == name).unwrap().clone();
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.now = 10;

    // Recording starts and ends in the decision made from the look that records.
    let recorded = decide_after_a_look(&run);
    assert_eq!(step(&recorded, Recording).finished_at, Some(crate::api::timestamp(at(10))));
    assert_eq!(step(&recorded, Stopping).started_at, crate::api::timestamp(at(10)));

    run.until(Stopping);
    run.cloud.source.as_mut().unwrap().status = "SHUTOFF".into();
    let stopped = decide_after_a_look(&run);
    assert_eq!(step(&stopped, Stopping).finished_at, Some(crate::api::timestamp(at(run.now - 1))));
    assert_eq!(step(&stopped, Snapshotting).started_at, crate::api::timestamp(at(run.now)));
}

#[test]
fn the_first_look_comes_when_the_step_was_done_before() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot = Some(image(SNAPSHOT_ID, "saving"));
    let mut run = Run::new(snapshot_spec(), cloud);
    run.usual_steps.insert(Snapshotting, Duration::from_millis(1500));
    run.until(Snapshotting);
    let entered = run.now - SECONDS_PER_STEP;

    // At the usual time; after it, soon, then less and less often.
    for (elapsed, interval) in [(0, 1500), (1, 500), (2, 250), (5, 1750)] {
        run.now = entered + elapsed;
        assert_eq!(run.decide().requeue, Some(Duration::from_millis(interval)), "after {elapsed}s");
    }
    // A first look that came too early is followed by one an eighth of the usual time later.
    run.usual_steps.insert(Snapshotting, Duration::from_secs(2));
    for (elapsed, interval) in [(0, 2000), (2, 250), (3, 500)] {
        run.now = entered + elapsed;
        assert_eq!(run.decide().requeue, Some(Duration::from_millis(interval)), "after {elapsed}s");
    }
    // A step that took long before is looked at early all the same.
    run.usual_steps.insert(Snapshotting, Duration::from_secs(600));
    run.now = entered;
    assert_eq!(run.decide().requeue, Some(Duration::from_secs(2)));
}

#[test]
fn a_server_of_another_project_is_migrated_acting_in_its_project() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.acting_project = Some("p-web".into());
    let mut run = Run::new(snapshot_spec(), cloud);
    // Recorded with the project, before the first change: every later change acts in it.
    let first_change = run.entering(Stopping);
    assert_eq!(first_change.status.acting_project_id.as_deref(), Some("p-web"));
    assert!(matches!(first_change.action, Some(Action::StopSource { .. })));
    assert_eq!(run.finish().phase, Succeeded);
    assert_eq!(run.status().acting_project_id.as_deref(), Some("p-web"));
}

// ---- safety -----------------------------------------------------------------------------

#[test]
fn the_source_is_deleted_only_while_its_snapshot_is_seen_active() {
    let unverified_states = [None, Some("saving"), Some("killed"), Some("pending_delete")];
    // The look that finds the snapshot active deletes the source; no other look does.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.before(DeletingSource);
    for unverified in unverified_states {
        let mut look = run.clone();
        look.cloud.snapshot = unverified.map(|s| image(SNAPSHOT_ID, s));
        let waiting = look.decide();
        assert_ne!(waiting.status.phase, DeletingSource, "snapshot {unverified:?}");
        assert_ne!(waiting.action, Some(delete_source()), "snapshot {unverified:?}");
    }
    let deleting = run.decide();
    assert_eq!(deleting.action, Some(delete_source()));
    assert_progressing(&deleting.status, DeletingSource);

    // Resumed in DeletingSource, the source still there: the snapshot is checked again.
    run.crash_entering(DeletingSource);
    for unverified in unverified_states {
        let mut look = run.clone();
        look.cloud.snapshot = unverified.map(|s| image(SNAPSHOT_ID, s));
        let refused = look.decide();
        assert_eq!(refused.action, None, "snapshot {unverified:?}");
        assert_eq!(condition(&refused.status, condition_type::FAILED).reason, "ReplacementNotVerified");
        assert!(
            refused.status.last_error.as_deref().unwrap().starts_with("refusing to delete source server src-1"),
            "{:?}",
            refused.status.last_error
        );
    }
    assert_eq!(run.decide().action, Some(delete_source()));
}

#[test]
fn the_look_that_sees_the_snapshot_active_deletes_the_source_unseen() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.before(DeletingSource);
    // Nova may still show the upload's task: it deletes the server anyway and keeps the
    // active snapshot, so the source needs no look of its own.
    run.cloud.source_mut().task_state = Some("image_uploading".into());
    let mut unseen = run.clone();
    unseen.cloud.source = None;
    for look in [run, unseen] {
        let deleting = look.decide();
        assert_eq!(deleting.action, Some(delete_source()));
        assert_progressing(&deleting.status, DeletingSource);
    }
}

#[test]
fn a_create_sent_again_makes_every_later_look_delete_late_twins() {
    // Creates sent once: no twin can come.
    assert!(!Run::new(snapshot_spec(), web_cloud("ACTIVE")).finish().create_repeated);

    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    // The snapshot was decided and written, and the operator died: its create may be in flight.
    run.crash_entering(Snapshotting);
    run.now += 31;
    let again = run.step();
    assert_eq!(again.action, Some(create_snapshot()));
    assert!(again.status.create_repeated);

    // The first create lands late, after the second was recorded: the next look deletes it
    // before the phase goes on.
    run.cloud.twins.push(Twin::Image("img-late".into()));
    let twin = run.step();
    assert_eq!(twin.action, Some(Action::DeleteTwin(Twin::Image("img-late".into()))));
    assert_eq!(twin.status.phase, Snapshotting);
    assert_eq!(twin.status.deleted_twins, ["img-late"]);
    assert_eq!(twin.requeue, Some(Duration::ZERO));

    // So is a late replacement, however late (here once the real one runs).
    run.until(MovingAddresses);
    run.cloud.twins.push(Twin::Server("tgt-late".into()));
    assert_eq!(run.step().action, Some(Action::DeleteTwin(Twin::Server("tgt-late".into()))));
    let done = run.finish().clone();
    assert_succeeded(&done);
    assert_eq!(done.deleted_twins, ["img-late", "tgt-late"]);
    assert_eq!(done.target.map(|t| t.server_id).as_deref(), Some(TARGET_ID));
}

#[test]
fn a_redeploy_deletes_the_source_only_once_the_replacement_is_active() {
    let rebooting = ServerState { task_state: Some("rebooting".into()), ..server_state(TARGET_ID, "ACTIVE") };
    let unverified_states = [None, Some(server_state(TARGET_ID, "BUILD")), Some(rebooting)];
    // The look that verifies the replacement deletes the source; no other look does.
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    run.before(DeletingSource);
    for unverified in unverified_states.clone() {
        let mut look = run.clone();
        look.cloud.target = unverified.clone();
        let unverified_look = look.decide();
        assert_eq!(unverified_look.action, None, "target {unverified:?}");
        assert_ne!(unverified_look.status.phase, DeletingSource, "target {unverified:?}");
    }
    let deleting = run.decide();
    assert_eq!(deleting.action, Some(delete_source()));
    assert_progressing(&deleting.status, DeletingSource);

    // Resumed in DeletingSource, the source still there: the replacement is checked again.
    run.crash_entering(DeletingSource);
    for unverified in unverified_states {
        let mut look = run.clone();
        look.cloud.target = unverified.clone();
        let refused = look.decide();
        assert_eq!(refused.action, None, "target {unverified:?}");
        assert_eq!(condition(&refused.status, condition_type::FAILED).reason, "ReplacementNotVerified");
    }
    assert_eq!(run.decide().action, Some(delete_source()));
}

#[test]
fn verification_fails_when_a_floating_ip_is_not_on_the_replacement() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.entering(MovingAddresses);
    // Resumed after a restart, MovingAddresses looks at the floating IPs only: Verifying looks
    // at the replacement afresh.
    let moved = plan(&run.input(), &Observed { floating_ips: run.cloud.floating_ips.clone(), ..Default::default() });
    assert_eq!((moved.status.phase, &moved.action, moved.requeue), (Verifying, &None, Some(Duration::ZERO)));
    run.status = Some(moved.status);
    run.cloud.floating_ips.insert("fip-1".into(), None);

    let failed = run.step();
    assert_eq!((&failed.action, failed.requeue), (&None, None));
    // The source is gone: nothing to roll back to, and the snapshot is kept.
    assert_failed(&failed.status, "AddressesNotMoved");
    assert!(failure_message(&failed.status).contains("snapshot img-1 is kept"), "{}", failure_message(&failed.status));
    assert_eq!(step_record(&failed.status, Verifying).result, StepResult::Failed);
    assert_eq!(failed.status.downtime, None);
    assert!(run.cloud.snapshot.is_some());
}

// ---- failures and rollback --------------------------------------------------------------

#[test]
fn a_refused_server_fails_without_changing_anything() {
    let reason = "VolumesAttached";
    let refusal = "server src-1 has volumes attached (vol-1): osmo does not migrate volumes yet";
    let mut cloud = web_cloud("ACTIVE");
    cloud.recording = Err(Refusal { reason, message: refusal.into() });
    let mut run = Run::new(snapshot_spec(), cloud);

    let refused = run.step();
    assert_eq!((&refused.action, refused.requeue), (&None, None));
    assert_failed(&refused.status, reason);
    assert_eq!(failure_message(&refused.status), format!("{refusal} Nothing was changed."));
    assert_eq!(refused.status.last_error.as_deref(), Some(refusal));
    assert_eq!(refused.status.steps, []);
    assert_eq!(refused.status.source, None);
}

#[test]
fn a_key_pair_the_acting_user_does_not_have_in_the_target_is_refused_before_anything_changes() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_view.key_pair_found = Some(false);
    let mut run = Run::new(snapshot_spec(), cloud);
    let refused = run.step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "KeyPairNotUsable");
    let message = failure_message(&refused.status);
    assert!(message.contains(r#"key pair "deploy""#) && message.contains("cloud old"), "{message}");
    assert!(message.contains("owner") && message.ends_with("Nothing was changed."), "{message}");
    assert_eq!(refused.status.source, None);

    // Not looked up is not found: the boot would not be sure to work.
    let mut unseen = web_cloud("ACTIVE");
    unseen.target_view.key_pair_found = None;
    assert_failed(&Run::new(snapshot_spec(), unseen).step().status, "KeyPairNotUsable");

    // A server without a key pair needs none.
    let mut keyless = web_server("ACTIVE");
    keyless.key_name = None;
    assert_succeeded(Run::new(snapshot_spec(), Cloud::new(keyless)).finish());
}

#[test]
fn a_replacement_flavor_smaller_than_the_snapshot_needs_is_refused_before_anything_changes() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.recording.as_mut().unwrap().flavor_size = Some(FlavorSize { disk_gb: 20, ephemeral_gb: 0, ram_mb: 2048 });
    cloud.target_view = TargetView { flavor_disk_gb: 10, flavor_ram_mb: 4096, ..cloud.target_view };
    let refused = Run::new(snapshot_spec(), cloud.clone()).step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "FlavorTooSmall");
    let message = failure_message(&refused.status);
    assert!(message.contains("10 GiB") && message.contains("at least 20 GiB"), "{message}");

    // Memory below the image's min_ram.
    let mut short_of_memory = cloud.clone();
    short_of_memory.target_view = TargetView {
        flavor_disk_gb: 20,
        flavor_ram_mb: 512,
        image_min_ram_mb: Some(1024),
        ..cloud.target_view.clone()
    };
    assert_failed(&Run::new(snapshot_spec(), short_of_memory).step().status, "FlavorTooSmall");

    // A flavor of disk 0 boots any image; less memory than the source but enough for the image.
    let mut fits = cloud.clone();
    fits.target_view =
        TargetView { flavor_disk_gb: 0, flavor_ram_mb: 1024, image_min_ram_mb: Some(1024), ..cloud.target_view };
    assert_succeeded(Run::new(snapshot_spec(), fits).finish());
}

#[test]
fn an_ephemeral_disk_is_refused_unless_its_loss_is_accepted_and_then_said_in_status() {
    let mut ephemeral = web_server("ACTIVE");
    ephemeral.flavor_size = Some(FlavorSize { disk_gb: 1, ephemeral_gb: 5, ram_mb: 512 });
    let refused = Run::new(snapshot_spec(), Cloud::new(ephemeral.clone())).step();
    assert_eq!(refused.action, None);
    assert_failed(&refused.status, "EphemeralDisk");
    let message = failure_message(&refused.status);
    assert!(message.contains("ephemeral disk of 5 GiB") && message.contains("acceptEphemeralDataLoss"), "{message}");

    let mut accepted = Run::new(spec(json!({"acceptEphemeralDataLoss": true})), Cloud::new(ephemeral.clone()));
    assert_succeeded(accepted.finish());
    let said = accepted.status().accepted_data_loss.as_deref().unwrap_or_default();
    assert!(said.contains("ephemeral disk of 5 GiB"), "{said}");

    // A redeploy keeps no data: nothing to accept.
    let mut redeploy = redeploy_cloud("ACTIVE");
    redeploy.recording = Ok(ephemeral);
    assert_succeeded(Run::new(redeploy_spec(), redeploy).finish());
}

#[test]
fn a_flavor_whose_disks_are_not_shown_is_refused_unless_the_loss_is_accepted() {
    let mut unknown = web_server("ACTIVE");
    unknown.flavor_size = None;
    let refused = Run::new(snapshot_spec(), Cloud::new(unknown.clone())).step();
    assert_failed(&refused.status, "EphemeralDiskUnknown");
    assert!(failure_message(&refused.status).contains("cannot be checked"));
    let mut accepted = Run::new(spec(json!({"acceptEphemeralDataLoss": true})), Cloud::new(unknown));
    assert_succeeded(accepted.finish());
    assert!(accepted.status().accepted_data_loss.as_deref().unwrap_or_default().contains("cannot be checked"));
    // Without an ephemeral disk there is nothing to say.
    let mut plain = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    assert_eq!(plain.finish().accepted_data_loss, None);
}

#[test]
fn a_killed_snapshot_is_rolled_back_and_the_source_restarted() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    assert_eq!(run.entering(Snapshotting).action, Some(create_snapshot()));

    let failed = run.step();
    assert_eq!((&failed.action, failed.requeue), (&None, Some(Duration::ZERO)));
    assert_rolling_back(&failed.status, "SnapshotFailed");
    assert_eq!(failure_message(&failed.status), "snapshot img-1 ended killed in Glance; rolling back");
    assert_eq!(step_record(&failed.status, Snapshotting).result, StepResult::Failed);
    assert_eq!(
        step_record(&failed.status, Snapshotting).message.as_deref(),
        Some("snapshot img-1 ended killed in Glance")
    );

    let deleting = run.step();
    assert_eq!(deleting.action, Some(delete_snapshot(SNAPSHOT_ID)));
    assert_rolling_back(&deleting.status, "SnapshotFailed");
    let starting = run.step();
    assert_eq!(starting.action, Some(start_source()));
    assert_rolling_back(&starting.status, "SnapshotFailed");

    let ended = run.step();
    assert_eq!((&ended.action, ended.requeue), (&None, None));
    assert_failed(&ended.status, "SnapshotFailed");
    assert_eq!(
        failure_message(&ended.status),
        "snapshot img-1 ended killed in Glance. The source server is as it was."
    );
    assert_eq!(ended.status.last_error.as_deref(), Some("snapshot img-1 ended killed in Glance"));
    assert_eq!(ended.status.snapshot.as_ref().map(|s| s.status.as_str()), Some("deleted"));
    assert_eq!(
        steps(&ended.status),
        [
            (Recording, StepResult::Succeeded),
            (Stopping, StepResult::Succeeded),
            (Snapshotting, StepResult::Failed),
            (RollingBack, StepResult::Succeeded)
        ]
    );
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"));
    assert!(run.cloud.snapshot.is_none());
}

#[test]
fn a_snapshot_that_vanishes_is_rolled_back() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "saving";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    run.step();
    run.cloud.snapshot = None;

    let lost = run.step();
    assert_eq!(lost.action, None);
    assert_rolling_back(&lost.status, "SnapshotLost");

    assert_failed(run.finish(), "SnapshotLost");
    // Nothing left to delete: only the restart.
    assert_eq!(run.actions(), [stop_source(), create_snapshot(), start_source()]);
}

#[test]
fn a_rollback_does_not_start_a_source_that_was_off() {
    let mut cloud = web_cloud("SHUTOFF");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);

    assert_failed(run.finish(), "SnapshotFailed");
    assert_eq!(run.actions(), [create_snapshot(), delete_snapshot(SNAPSHOT_ID)]);
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("SHUTOFF"));
}

#[test]
fn a_boot_error_after_the_source_is_deleted_fails_saying_what_remains() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    assert!(is_boot(&run.entering(Booting).action.unwrap()));

    let failed = run.step();
    assert_eq!((&failed.action, failed.requeue), (&None, None));
    // No RollingBack: there is no source to go back to.
    assert_failed(&failed.status, "BootFailed");
    let error = format!("replacement tgt-1 went to ERROR: {NO_VALID_HOST}");
    assert_eq!(failed.status.last_error.as_deref(), Some(error.as_str()));
    assert_eq!(
        failure_message(&failed.status),
        format!(
            "{error}. What remains: source server web-1 (src-1) is deleted; snapshot img-1 is kept; \
             replacement tgt-1 is ERROR; floating IPs 203.0.113.9 stay allocated to the project."
        )
    );
    assert_eq!(step_record(&failed.status, Booting).result, StepResult::Failed);
    assert!(run.cloud.snapshot.is_some(), "the snapshot is kept to boot from again");
}

#[test]
fn a_redeploy_boot_error_deletes_the_replacement_and_restarts_the_source() {
    let mut cloud = redeploy_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(redeploy_spec(), cloud);
    run.entering(Booting);

    let failed = run.step();
    assert_rolling_back(&failed.status, "BootFailed");
    assert_eq!(run.step().action, Some(delete_target()));
    assert_eq!(run.step().action, Some(start_source()));

    let ended = run.finish();
    assert_failed(ended, "BootFailed");
    assert_eq!(
        failure_message(ended),
        format!("replacement tgt-1 went to ERROR: {NO_VALID_HOST}. The source server is as it was.")
    );
    assert!(!run.actions().contains(&delete_source()));
    assert!(run.cloud.target.is_none());
}

#[test]
fn a_step_that_outlasts_its_timeout_fails_with_reason_timeout() {
    struct Case {
        phase: MigrationPhase,
        /// Keeps OpenStack from finishing the step's first change.
        stall: fn(&mut Cloud),
        error: &'static str,
        rolls_back: bool,
    }
    let cases = [
        Case {
            phase: Stopping,
            stall: |c| c.source_mut().task_state = Some("powering-off".into()),
            error: "Stopping took longer than 300s",
            rolls_back: true,
        },
        Case {
            phase: Snapshotting,
            stall: |c| c.snapshot = Some(image(SNAPSHOT_ID, "saving")),
            error: "Snapshotting took longer than 3600s",
            rolls_back: true,
        },
        Case {
            phase: DeletingSource,
            stall: |c| {
                c.source =
                    Some(ServerState { task_state: Some("deleting".into()), ..server_state(SOURCE_ID, "SHUTOFF") })
            },
            error: "DeletingSource took longer than 600s",
            rolls_back: false,
        },
        Case {
            phase: Booting,
            stall: |c| c.target = Some(server_state(TARGET_ID, "BUILD")),
            error: "Booting took longer than 900s",
            rolls_back: false,
        },
        Case {
            phase: MovingAddresses,
            stall: |c| _ = c.floating_ips.insert("fip-1".into(), None),
            error: "MovingAddresses took longer than 300s",
            rolls_back: false,
        },
    ];
    for case in cases {
        let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
        run.entering(case.phase);
        (case.stall)(&mut run.cloud);
        run.now += A_DAY;

        let timed_out = run.step();
        let phase = case.phase;
        assert_eq!(timed_out.action, None, "{phase:?}");
        if case.rolls_back {
            assert_rolling_back(&timed_out.status, "Timeout");
        } else {
            assert_failed(&timed_out.status, "Timeout");
        }
        assert_eq!(timed_out.status.last_error.as_deref(), Some(case.error), "{phase:?}");
        let step = step_record(&timed_out.status, phase);
        assert_eq!((step.result, step.message.as_deref()), (StepResult::Failed, Some(case.error)), "{phase:?}");
    }
}

#[test]
fn a_snapshot_deletion_refused_for_good_is_noted_and_tried_again_never_a_failure() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.entering(CleaningUp);
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    // Glance answers 409 for good (a clone of it exists): the controller hands that to `fail`.
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    let refused = fail(&run.input(), "OpenStackError", "glance DELETE /v2/images/img-1: HTTP 409".into());
    assert_eq!(refused.status.phase, CleaningUp);
    assert!(refused.requeue.is_some());
    assert!(refused.status.last_error.as_deref().is_some_and(|e| e.contains("HTTP 409")), "{:?}", refused.status);
    run.status = Some(refused.status);
    // Tried again, then, past the step's time-out, the move succeeds with the note.
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    run.now += A_DAY;
    let done = run.step();
    assert_eq!(done.status.phase, Succeeded);
    assert_succeeded(&done.status);
}

#[test]
fn a_snapshot_that_will_not_be_deleted_is_noted_but_the_move_succeeds() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    // No longer the only copy once the replacement is verified: unprotected, then deleted.
    assert_eq!(run.entering(CleaningUp).action, Some(protect_snapshot(false)));
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    // Glance keeps it.
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    run.now += A_DAY;

    let done = run.step();
    assert_eq!(done.action, None);
    assert_eq!(done.status.phase, Succeeded);
    assert_eq!(
        done.status.last_error.as_deref(),
        Some("snapshot img-1 could not be deleted in time; delete it by hand")
    );
}

#[test]
fn a_step_fails_only_strictly_after_its_timeout() {
    let mut run = Run::new(spec(json!({"timeouts": {"stopSeconds": 30}})), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.cloud.source_mut().task_state = Some("powering-off".into());
    let entered = run.now - SECONDS_PER_STEP;

    run.now = entered + 30;
    let waiting = run.decide();
    assert_eq!((waiting.status.phase, waiting.action), (Stopping, None));

    run.now = entered + 31;
    let timed_out = run.decide();
    assert_rolling_back(&timed_out.status, "Timeout");
    assert_eq!(timed_out.status.last_error.as_deref(), Some("Stopping took longer than 30s"));
}

#[test]
fn time_no_operator_watched_fails_no_step() {
    let mut run = Run::new(spec(json!({"timeouts": {"stopSeconds": 30}})), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.cloud.source_mut().task_state = Some("powering-off".into());
    let entered = run.now - SECONDS_PER_STEP;

    // The operator was down for an hour and started again 20 s ago: the step has 10 s left.
    run.now = entered + 3600;
    run.acting_since = run.now - 20;
    assert_eq!(run.decide().status.phase, Stopping);
    run.now += 11;
    assert_rolling_back(&run.decide().status, "Timeout");
}

#[test]
fn a_rollback_that_outlasts_its_timeout_ends_saying_what_remains() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(RollingBack);
    run.now += A_DAY;

    let ended = run.step();
    assert_eq!((&ended.action, ended.requeue), (&None, None));
    assert_failed(&ended.status, "RollbackTimeout");
    assert_eq!(
        failure_message(&ended.status),
        "Rolling back took too long. What remains: source server src-1 is SHUTOFF; snapshot img-1 is killed."
    );
}

#[test]
fn a_refused_openstack_change_rolls_back_or_ends_like_any_failure() {
    // Glance refuses the snapshot for good: the source still exists, so it is rolled back.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Snapshotting);
    let refused = fail(&run.input(), "OpenStackError", "Glance answered 413: image too large".into());
    assert_eq!((&refused.action, refused.requeue), (&None, Some(Duration::ZERO)));
    assert_rolling_back(&refused.status, "OpenStackError");
    assert_eq!(failure_message(&refused.status), "Glance answered 413: image too large; rolling back");
    assert_eq!(step_record(&refused.status, Snapshotting).result, StepResult::Failed);

    // Nova refuses the boot for good: the source is gone, so it ends saying what remains.
    run.crash_entering(Booting);
    let refused = fail(&run.input(), "OpenStackError", "Nova answered 400: flavor unusable".into());
    assert_eq!((&refused.action, refused.requeue), (&None, None));
    assert_failed(&refused.status, "OpenStackError");
    assert_eq!(
        failure_message(&refused.status),
        "Nova answered 400: flavor unusable. What remains: source server web-1 (src-1) is deleted; \
         snapshot img-1 is kept; floating IPs 203.0.113.9 stay allocated to the project."
    );
}

// ---- resuming after a crash -------------------------------------------------------------

/// The status is written before the action is made; a crash between the two replans from the
/// written status with OpenStack unchanged, and must ask for the same change again. A create
/// is asked for again only once the first request has had time to land: it may have been
/// sent before the crash and still make its snapshot or server.
#[track_caller]
fn assert_replanning_repeats(mut run: Run) {
    let first = run.decide();
    assert!(first.action.is_some(), "{:?} asks for nothing", first.status.phase);
    run.status = Some(first.status.clone());
    if matches!(first.action, Some(Action::CreateSnapshot { .. } | Action::Boot(_))) {
        run.now += 10;
        assert_eq!(run.decide().action, None, "a create sent 10 s ago may still land");
        run.now += 21;
        assert_eq!(run.decide().action, first.action);
        return;
    }
    assert_eq!(run.decide(), first);
}

#[test]
fn planning_again_after_a_crash_repeats_the_same_decision() {
    for phase in [Stopping, Snapshotting, DeletingSource, Booting, MovingAddresses, CleaningUp] {
        let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
        run.before(phase);
        assert_replanning_repeats(run);
    }
    let mut run = Run::new(spec(json!({"addresses": {"preserveFixedIPs": true}})), web_cloud("ACTIVE"));
    run.before(Booting);
    assert_replanning_repeats(run);

    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(RollingBack);
    assert_replanning_repeats(run);
}

#[test]
fn a_snapshot_made_before_a_crash_is_adopted_not_made_again() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Snapshotting);
    // A crashed operator asked for it, but never wrote its id: it is found by the UID.
    run.cloud.snapshot = Some(image("img-7", "saving"));

    let adopted = run.step();
    assert_eq!(adopted.action, None);
    assert!(adopted.requeue.is_some_and(|d| d > Duration::ZERO));
    assert_eq!(
        adopted.status.snapshot,
        Some(SnapshotStatus {
            image_id: "img-7".into(),
            status: "saving".into(),
            size_bytes: Some(SNAPSHOT_SIZE),
            protected: false
        })
    );

    run.cloud.snapshot = Some(image("img-7", "active"));
    assert_succeeded(run.finish());
    assert!(!run.actions().contains(&create_snapshot()), "{:?}", run.log);
    assert!(run.actions().contains(&boot("img-7", &[network("net-1")])));
    assert!(run.actions().contains(&delete_snapshot("img-7")));
}

#[test]
fn a_replacement_made_before_a_crash_is_adopted_not_booted_again() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(Booting);
    // Booted by a crashed operator, found by name and UID.
    run.cloud.target = Some(server_state("tgt-7", "BUILD"));
    run.cloud.target_ports = vec![("tp-7".into(), "net-1".into())];

    let adopted = run.step();
    assert_eq!(adopted.action, None);
    assert_eq!(adopted.status.phase, Booting);
    assert_eq!(
        adopted.status.target.as_ref().map(|t| (t.server_id.as_str(), t.status.as_str())),
        Some(("tgt-7", "BUILD"))
    );

    run.cloud.target.as_mut().unwrap().status = "ACTIVE".into();
    let booted = run.step();
    assert_eq!(booted.status.phase, MovingAddresses);
    assert_eq!(booted.status.target_ports, [target_port("p-1", "tp-7", "New")]);
    run.finish();
    assert!(!run.actions().iter().any(is_boot), "{:?}", run.log);
    assert!(run.actions().contains(&associate("fip-1", "tp-7", None)));
}

#[test]
fn an_operation_under_way_is_not_requested_again() {
    for (phase, task_state) in
        [(Stopping, "powering-off"), (Snapshotting, "image_snapshot"), (DeletingSource, "deleting")]
    {
        let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
        run.crash_entering(phase);
        run.cloud.source_mut().task_state = Some(task_state.into());

        let waiting = run.decide();
        assert_eq!((waiting.status.phase, &waiting.action), (phase, &None), "Nova is {task_state}");
        assert!(waiting.requeue.is_some_and(|d| d > Duration::ZERO));
    }
}

// ---- deletion of the resource -----------------------------------------------------------

#[test]
fn deleting_before_anything_changed_fails_with_nothing_to_undo() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.deleting = true;
    let pending = run.step();
    assert_eq!((&pending.action, pending.requeue), (&None, None));
    assert_failed(&pending.status, "Deleted");
    assert_eq!(
        failure_message(&pending.status),
        "The resource was deleted before the migration started; nothing was changed."
    );

    // Recording had begun (the first look found nothing yet) when the deletion came.
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.status = Some(InstanceMigrationStatus { phase: Recording, ..Default::default() });
    run.deleting = true;
    let recording = run.step();
    assert_eq!((&recording.action, recording.requeue), (&None, None));
    assert_failed(&recording.status, "Deleted");
    assert_eq!(failure_message(&recording.status), "The resource was deleted before the migration changed anything.");
    assert_eq!(recording.status.source, None);
}

#[test]
fn deleting_while_stopping_rolls_back_and_restarts_the_source() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.deleting = true;

    let aborted = run.step();
    assert_eq!((&aborted.action, aborted.requeue), (&None, Some(Duration::ZERO)));
    assert_rolling_back(&aborted.status, "Deleted");
    assert_eq!(step_record(&aborted.status, Stopping).result, StepResult::Failed);

    assert_failed(run.finish(), "Deleted");
    assert_eq!(run.actions(), [stop_source(), start_source()]);
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"));
}

#[test]
fn deleting_while_snapshotting_deletes_the_snapshot_and_restarts_the_source() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "saving";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    run.step();
    run.deleting = true;

    let aborted = run.step();
    assert_eq!(aborted.action, None);
    assert_rolling_back(&aborted.status, "Deleted");
    assert_eq!(run.step().action, Some(delete_snapshot(SNAPSHOT_ID)));
    assert_eq!(run.step().action, Some(start_source()));
    assert_failed(run.finish(), "Deleted");
    assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"));
}

#[test]
fn deleting_a_snapshot_migration_after_the_source_is_gone_finishes_it() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.before(Booting);
    run.deleting = true;

    let booting = run.step();
    assert_eq!(booting.action, Some(boot(SNAPSHOT_ID, &[network("net-1")])));
    assert_progressing(&booting.status, Booting);
    assert_succeeded(run.finish());
}

#[test]
fn deleting_a_redeploy_while_booting_rolls_back() {
    let mut cloud = redeploy_cloud("ACTIVE");
    cloud.target_becomes = "BUILD";
    let mut run = Run::new(redeploy_spec(), cloud);
    assert!(is_boot(&run.entering(Booting).action.unwrap()));
    run.deleting = true;

    let aborted = run.step();
    assert_eq!(aborted.action, None);
    assert_rolling_back(&aborted.status, "Deleted");
    assert_eq!(run.step().action, Some(delete_target()));
    assert_eq!(run.step().action, Some(start_source()));
    assert_failed(run.finish(), "Deleted");
    assert!(run.cloud.target.is_none());
    assert!(!run.actions().contains(&delete_source()));
}

// ---- validation -------------------------------------------------------------------------

#[test]
fn an_invalid_spec_fails_naming_the_field() {
    let cases = [
        (spec(json!({"target": {}})), "spec.target"),
        (spec(json!({"strategy": "Redeploy"})), "spec.redeploy.image"),
        (spec(json!({"server": " web-1"})), "spec.server"),
    ];
    for (spec, field) in cases {
        let fields: Vec<_> = validate(&spec).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, [field]);

        let mut run = Run::new(spec, web_cloud("ACTIVE"));
        let refused = run.step();
        assert_eq!((&refused.action, refused.requeue), (&None, None), "{field}");
        assert_failed(&refused.status, "Invalid");
        assert_condition(&refused.status, condition_type::ACCEPTED, ConditionStatus::False, "Invalid");
        let message = failure_message(&refused.status);
        assert!(message.starts_with(&format!("{field}: ")), "{message}");
        assert_eq!(refused.status.last_error.as_deref(), Some(message));
        assert_eq!((&refused.status.source, &refused.status.steps), (&None, &vec![]));
    }
}

#[test]
fn a_corrected_spec_starts_afresh() {
    let mut run = Run::new(spec(json!({"target": {}})), web_cloud("ACTIVE"));
    assert_failed(&run.step().status, "Invalid");

    run.spec = snapshot_spec();
    run.generation = 2;
    let fresh = run.step();
    assert_progressing(&fresh.status, Stopping);
    assert_condition(&fresh.status, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert_condition(&fresh.status, condition_type::FAILED, ConditionStatus::False, "Valid");
    assert_eq!(fresh.status.last_error, None);
    assert_eq!(fresh.status.observed_generation, Some(2));
    assert_eq!(steps(&fresh.status), [(Recording, StepResult::Succeeded), (Stopping, StepResult::Running)]);
    assert_succeeded(run.finish());
}

// ---- bugs found -------------------------------------------------------------------------

#[test]
fn refusing_to_delete_the_source_rolls_back() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.crash_entering(DeletingSource);
    // Someone deleted the snapshot before the resumed operator looked again.
    run.cloud.snapshot = None;

    let refused = run.step();
    assert_eq!(refused.action, None);
    assert_rolling_back(&refused.status, "ReplacementNotVerified");
    assert_failed(run.finish(), "ReplacementNotVerified");
    assert_eq!(run.actions().last(), Some(&start_source()));
}

#[test]
fn a_failure_that_leaves_the_source_in_place_does_not_call_it_deleted() {
    // Redeploy: the replacement breaks during verification; the stopped source is untouched.
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    run.entering(MovingAddresses);
    run.cloud.target.as_mut().unwrap().status = "ERROR".into();
    let failed = run.step();
    assert_failed(&failed.status, "ReplacementNotActive");
    assert!(run.cloud.source.is_some());
    assert!(!failure_message(&failed.status).contains("is deleted"), "{}", failure_message(&failed.status));

    // Snapshot: Glance refuses to delete the snapshot while rolling back; the source is there.
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "killed";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(RollingBack);
    let refused = fail(&run.input(), "OpenStackError", "Glance answered 403".into());
    assert!(run.cloud.source.is_some());
    assert!(!failure_message(&refused.status).contains("is deleted"), "{}", failure_message(&refused.status));
}

#[test]
fn editing_the_spec_of_a_migration_that_failed_after_deleting_the_source_does_not_restart_it() {
    let mut cloud = web_cloud("ACTIVE");
    cloud.target_becomes = "ERROR";
    let mut run = Run::new(snapshot_spec(), cloud);
    let failed = run.finish().clone();
    assert_failed(&failed, "BootFailed");

    // A typo, then its fix; the controller does not look at OpenStack for a Failed migration.
    for (spec, generation) in [(spec(json!({"target": {}})), 2), (snapshot_spec(), 3)] {
        run.spec = spec;
        run.generation = generation;
        let decision = plan(&run.input(), &Observed::default());
        run.status = Some(decision.status);
    }
    let status = run.status();
    assert_eq!(status.phase, Failed);
    assert_eq!((&status.source, &status.snapshot), (&failed.source, &failed.snapshot));
    assert_eq!(status.target, failed.target);
}

#[test]
fn new_ports_on_a_mapped_network_do_not_take_another_networks_port() {
    let mut cloud = Cloud::new(two_port_server());
    cloud.boot = Ok(BootBase {
        flavor_id: FLAVOR_ID.into(),
        image_id: None,
        networks: BTreeMap::from([("net-1".into(), "net-x".into())]),
    });
    let mut run = Run::new(spec(json!({"mappings": {"networks": {"net-1": "net-x"}}})), cloud);
    assert_eq!(run.entering(Booting).action, Some(boot(SNAPSHOT_ID, &[network("net-x"), network("net-2")])));
    run.cloud.target_ports = vec![("tp-b".into(), "net-2".into()), ("tp-a".into(), "net-x".into())];

    let booted = run.step();
    assert_eq!(booted.status.target_ports, [target_port("p-1", "tp-a", "New"), target_port("p-2", "tp-b", "New")]);
}

#[test]
fn a_floating_ip_without_a_replacement_port_is_not_verified_as_moved() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.entering(Booting);
    // Neutron lists no port on the replacement yet.
    run.cloud.target_ports.clear();

    run.finish();
    assert_ne!(run.phase(), Succeeded, "fip-1 is on {:?}", run.cloud.floating_ips["fip-1"]);
    assert!(run.cloud.snapshot.is_some(), "the snapshot is the only copy of the server");
}

#[test]
fn a_rollback_after_the_source_vanished_does_not_say_it_is_as_it_was() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.cloud.source = None;

    assert_rolling_back(&run.step().status, "SourceVanished");
    let ended = run.finish();
    assert_failed(ended, "SourceVanished");
    assert!(!failure_message(ended).contains("as it was"), "{}", failure_message(ended));
}

#[test]
fn the_message_after_a_deletion_rollback_reads_cleanly() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Stopping);
    run.deleting = true;

    let ended = run.finish();
    assert_failed(ended, "Deleted");
    assert!(!failure_message(ended).contains(".."), "{}", failure_message(ended));
}

// ---- nova-network ------------------------------------------------------------------------

fn moving_addresses_actions(run: &Run) -> Vec<Action> {
    run.log.iter().filter(|(phase, _)| *phase == MovingAddresses).map(|(_, a)| a.clone()).collect()
}

fn create_range() -> Action {
    Action::CreateFloatingIpRange {
        ip_range: "10.10.10.3/32".into(),
        pool: "public".into(),
        interface: Some("eth0".into()),
    }
}

fn allocate_from_public() -> Action {
    Action::AllocateFloatingIp { pool: "public".into() }
}

fn add_to_target() -> Action {
    Action::AddFloatingIp { server_id: TARGET_ID.into(), address: "10.10.10.3".into() }
}

#[test]
fn nova_network_is_a_valid_address_mode() {
    assert!(validate(&nova_network_spec()).is_empty());
}

#[test]
fn in_a_new_cloud_the_pool_is_recreated_the_address_allocated_then_added() {
    let mut run = Run::new(nova_network_spec(), nova_network_cloud());
    assert_succeeded(run.finish());
    assert_eq!(moving_addresses_actions(&run), [create_range(), allocate_from_public(), add_to_target()]);
    assert!(run.actions().contains(&boot(SNAPSHOT_ID, &[NetworkAttachment::Auto])), "{:?}", run.actions());
    let on_target = run.cloud.nova_network.allocated.iter().find(|f| f.ip == "10.10.10.3").unwrap();
    assert_eq!(on_target.instance_id.as_deref(), Some(TARGET_ID));
}

#[test]
fn in_the_same_cloud_the_kept_address_is_only_added() {
    let mut cloud = nova_network_cloud();
    cloud.nova_network = NovaNetworkState {
        allocated: vec![allocated_address("10.10.10.3", "public", Some(SOURCE_ID))],
        pools: vec![bulk_address("10.10.10.3", "public", Some("eth0"), Some("project-1"))],
    };
    let mut run = Run::new(nova_network_spec(), cloud);
    assert_succeeded(run.finish());
    assert_eq!(moving_addresses_actions(&run), [add_to_target()]);
}

#[test]
fn a_redeploy_moves_the_address_off_the_source_before_deleting_it() {
    let mut cloud = nova_network_cloud();
    cloud.boot = Ok(BootBase { image_id: Some(REDEPLOY_IMAGE_ID.into()), ..cloud.boot.unwrap() });
    cloud.nova_network = NovaNetworkState {
        allocated: vec![allocated_address("10.10.10.3", "public", Some(SOURCE_ID))],
        pools: vec![bulk_address("10.10.10.3", "public", Some("eth0"), Some("project-1"))],
    };
    let redeploy =
        spec(json!({"strategy": "Redeploy", "redeploy": {"image": "cirros"}, "addresses": {"mode": "NovaNetwork"}}));
    let mut run = Run::new(redeploy, cloud);
    assert_succeeded(run.finish());
    assert_eq!(moving_addresses_actions(&run), [add_to_target()]);
    assert_eq!(run.actions().last(), Some(&delete_source()), "the source goes last");
}

#[test]
fn an_address_the_target_cannot_give_back_is_refused_before_anything_changes() {
    let taken = NovaNetworkState {
        pools: vec![bulk_address("10.10.10.3", "public", None, Some("other-project"))],
        ..Default::default()
    };
    let crowded =
        NovaNetworkState { pools: vec![bulk_address("10.10.10.9", "public", None, None)], ..Default::default() };
    let in_use = NovaNetworkState {
        allocated: vec![allocated_address("10.10.10.3", "public", Some("another-server"))],
        pools: vec![bulk_address("10.10.10.3", "public", None, Some("project-1"))],
    };
    for (state, says) in [
        (taken, "allocated to project other-project"),
        (crowded, "other free addresses"),
        (in_use, "is on server another-server"),
    ] {
        let mut cloud = nova_network_cloud();
        cloud.nova_network = state;
        let mut run = Run::new(nova_network_spec(), cloud);
        let ended = run.finish();
        assert_failed(ended, "AddressUnavailable");
        assert!(failure_message(ended).contains(says), "{}", failure_message(ended));
        assert!(failure_message(ended).ends_with("Nothing was changed."), "{}", failure_message(ended));
        assert!(run.actions().is_empty(), "{:?}", run.actions());
    }
}

#[test]
fn an_interrupted_address_move_resumes_where_it_stopped() {
    let mut run = Run::new(nova_network_spec(), nova_network_cloud());
    run.until(MovingAddresses);
    // The look that saw the replacement up made the first change.
    assert_eq!(run.actions().last(), Some(&create_range()));
    // A restarted operator sees the range made and allocates, rather than creating it again.
    assert_eq!(run.decide().action, Some(allocate_from_public()));
    run.step();
    assert_eq!(run.decide().action, Some(add_to_target()));
}

#[test]
fn an_address_lost_before_verification_fails_saying_what_remains() {
    let mut run = Run::new(nova_network_spec(), nova_network_cloud());
    run.until(Verifying);
    run.cloud.nova_network.allocated.clear();
    let ended = run.finish();
    assert_failed(ended, "AddressesNotMoved");
    assert!(failure_message(ended).contains("floating IPs 10.10.10.3"), "{}", failure_message(ended));
}

// ---- the options a migration was accepted with --------------------------------------------

/// A migration held in Snapshotting (the snapshot still saving), with the spec it was
/// accepted with recorded.
fn snapshotting_run() -> Run {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "saving";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    run.step();
    assert_eq!(run.status().accepted_spec.as_ref(), Some(&snapshot_spec()));
    run
}

/// The spec is edited (a new generation) to `spec`.
fn edit(run: &mut Run, spec: InstanceMigrationSpec) {
    run.spec = spec;
    run.generation += 1;
}

/// The whole snapshot migration of `web-1`, as accepted, whatever the spec says since.
fn assert_moved_as_accepted(run: &mut Run) {
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    assert_succeeded(run.finish());
    assert_eq!(
        run.actions(),
        [
            stop_source(),
            create_snapshot(),
            protect_snapshot(true),
            delete_source(),
            boot(SNAPSHOT_ID, &[network("net-1")]),
            associate("fip-1", "tgt-port-0", None),
            protect_snapshot(false),
            delete_snapshot(SNAPSHOT_ID),
        ]
    );
    assert_eq!(run.status().accepted_spec.as_ref(), Some(&snapshot_spec()));
}

#[test]
fn a_strategy_switched_while_snapshotting_is_ignored_and_reported() {
    let mut run = snapshotting_run();
    edit(&mut run, redeploy_spec());

    let reported = run.step();
    assert_eq!(reported.status.observed_generation, Some(2));
    assert_condition(&reported.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::True, "MigrationStarted");
    assert!(
        condition(&reported.status, condition_type::SPEC_CHANGE_IGNORED)
            .message
            .contains("delete this InstanceMigration")
    );
    // Still a snapshot migration: it waits for its snapshot, then boots from it.
    assert_eq!((reported.status.phase, reported.action), (Snapshotting, None));
    assert_moved_as_accepted(&mut run);
}

#[test]
fn a_spec_made_invalid_while_snapshotting_changes_nothing_the_migration_does() {
    let mut run = snapshotting_run();
    // Redeploy without an image: refused by validation, were the migration not under way.
    let invalid = spec(json!({"strategy": "Redeploy", "server": " web-1 "}));
    assert!(!validate(&invalid).is_empty());
    edit(&mut run, invalid);

    let reported = run.step();
    assert_condition(&reported.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::True, "MigrationStarted");
    assert_condition(&reported.status, condition_type::ACCEPTED, ConditionStatus::True, "Valid");
    assert_eq!(reported.status.last_error, None);
    assert_moved_as_accepted(&mut run);
}

#[test]
fn a_strategy_switched_once_the_source_is_gone_keeps_the_snapshot_and_boots_from_it() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    run.until(Booting);
    edit(&mut run, redeploy_spec());
    assert_succeeded(run.finish());
    // The snapshot is deleted only at the end, once the replacement is verified.
    assert_eq!(run.actions().last(), Some(&delete_snapshot(SNAPSHOT_ID)));
    assert!(run.actions().iter().filter(|a| **a == delete_snapshot(SNAPSHOT_ID)).count() == 1);
    assert!(run.phases().contains(&CleaningUp));
}

#[test]
fn an_edit_taken_back_is_no_longer_reported() {
    let mut run = snapshotting_run();
    edit(&mut run, redeploy_spec());
    run.step();
    edit(&mut run, snapshot_spec());
    let back = run.step();
    assert_condition(&back.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::False, "AsAccepted");
}

#[test]
fn a_finished_migration_reports_a_later_edit_and_stays_as_it_ended() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let done = run.finish().clone();
    edit(&mut run, redeploy_spec());
    let after = run.step();
    assert_eq!(after.action, None);
    assert_condition(&after.status, condition_type::SPEC_CHANGE_IGNORED, ConditionStatus::True, "MigrationStarted");
    assert_eq!((after.status.phase, &after.status.target, &after.status.steps), (Succeeded, &done.target, &done.steps));
}

#[test]
fn until_something_changed_the_spec_acted_on_follows_the_edits() {
    let mut run = Run::new(snapshot_spec(), web_cloud("ACTIVE"));
    let first = acknowledge(&run.input());
    assert_eq!(first.accepted_spec.as_ref(), Some(&snapshot_spec()));
    run.status = Some(first);
    let other = spec(json!({"target": {"availabilityZone": "icehouse-2"}}));
    edit(&mut run, other.clone());
    let recorded = run.step();
    assert_eq!(recorded.status.accepted_spec.as_ref(), Some(&other));
    assert!(conditions::get(&recorded.status.conditions, condition_type::SPEC_CHANGE_IGNORED).is_none());
}

#[test]
fn a_rollback_without_the_source_keeps_the_snapshot() {
    let mut run = snapshotting_run();
    run.deleting = true;
    assert_rolling_back(&run.step().status, "Deleted");
    // Someone deleted the source meanwhile, and the snapshot is complete: it may be the only copy.
    run.cloud.source = None;
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));

    let failed = run.finish().clone();
    assert_failed(&failed, "Deleted");
    assert!(!run.actions().contains(&delete_snapshot(SNAPSHOT_ID)), "{:?}", run.actions());
    assert!(
        failure_message(&failed).contains(&format!("its snapshot {SNAPSHOT_ID} is kept")),
        "{}",
        failure_message(&failed)
    );
}

#[test]
fn a_phase_outside_the_strategys_order_never_leads_to_success() {
    // A status left in a phase the strategy does not have (written by another strategy).
    let mut run = Run::new(redeploy_spec(), redeploy_cloud("ACTIVE"));
    run.until(Booting);
    let mut status = run.status().clone();
    status.phase = CleaningUp;
    status.accepted_spec = None;
    run.status = Some(status);
    let ended = run.finish().clone();
    assert_failed(&ended, "PhaseOutOfOrder");
}

// ---- the snapshot, the server's only copy ---------------------------------------------------

#[test]
fn an_unverified_snapshot_never_lets_the_source_be_deleted() {
    type Spoil = fn(&mut ImageState);
    let unverified: [(&str, Spoil); 5] = [
        ("holds no data", |i| i.size = Some(0)),
        ("has no checksum", |i| i.checksum = None),
        ("is of server", |i| i.instance_uuid = Some("another-server".into())),
        ("is of server", |i| i.instance_uuid = None),
        ("belongs to project", |i| i.owner = Some("project-2".into())),
    ];
    for (why, spoil) in unverified {
        let mut run = snapshotting_run();
        let mut active = image(SNAPSHOT_ID, "active");
        spoil(&mut active);
        run.cloud.snapshot = Some(active);
        assert_rolling_back(&run.step().status, "SnapshotNotVerified");
        assert!(failure_message(run.status()).contains(why), "{why}: {}", failure_message(run.status()));
        assert_failed(run.finish(), "SnapshotNotVerified");
        assert!(!run.actions().contains(&delete_source()), "{why}: {:?}", run.actions());
        assert_eq!(run.cloud.source.as_ref().map(|s| s.status.as_str()), Some("ACTIVE"), "{why}");
    }
}

#[test]
fn the_snapshot_is_protected_before_the_source_is_deleted_until_the_replacement_is_verified() {
    let mut run = snapshotting_run();
    run.cloud.snapshot = Some(image(SNAPSHOT_ID, "active"));
    assert_eq!(run.step().action, Some(protect_snapshot(true)));
    let deleting = run.step();
    assert_eq!((deleting.status.phase, deleting.action), (DeletingSource, Some(delete_source())));
    assert!(deleting.status.snapshot.as_ref().is_some_and(|s| s.protected));

    // Someone lifts the protection while the source is still there: it is protected again
    // before the deletion is asked for again.
    let mut source = server_state(SOURCE_ID, "SHUTOFF");
    source.task_state = None;
    run.cloud.source = Some(source);
    run.cloud.snapshot.as_mut().unwrap().protected = false;
    assert_eq!(run.step().action, Some(protect_snapshot(true)));

    run.before(CleaningUp);
    assert!(run.cloud.snapshot.as_ref().is_some_and(|i| i.protected), "protected until verified");
    assert_succeeded(run.finish());
    assert_eq!(run.cloud.snapshot, None);
}

#[test]
fn a_retained_snapshot_is_unprotected_once_the_replacement_is_verified() {
    let mut run = Run::new(spec(json!({"snapshotCleanup": "Retain"})), web_cloud("ACTIVE"));
    assert_succeeded(run.finish());
    assert!(run.actions().contains(&protect_snapshot(false)));
    assert!(run.cloud.snapshot.as_ref().is_some_and(|i| !i.protected));
}

#[test]
fn a_rollback_unprotects_the_snapshot_before_deleting_it() {
    let mut run = snapshotting_run();
    run.cloud.snapshot.as_mut().unwrap().protected = true;
    run.deleting = true;
    assert_rolling_back(&run.step().status, "Deleted");
    assert_failed(run.finish(), "Deleted");
    assert!(run.actions().ends_with(&[protect_snapshot(false), delete_snapshot(SNAPSHOT_ID), start_source()]));
}
