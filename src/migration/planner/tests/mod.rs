//! Unit tests of the migration planner: every phase, failure and resume point.
//!
//! The planner is driven the way the controller drives it: [`Cloud`] stands in for OpenStack
//! and shows what it holds now ([`Cloud::observed`]); [`Run::step`] plans, writes the status
//! back and applies the one action to the cloud, as the executor would. A test walks to the
//! phase it is about ([`Run::until`]), changes the cloud there, and checks the next decision.
//!
//! Tests marked `#[ignore = "BUG: ..."]` describe planner bugs found while writing these tests;
//! they fail until the bug is fixed.

mod accepted_spec;
mod addresses;
mod boot;
mod cleanup;
mod fidelity;
mod flow;
mod nova_network;
mod recording;
mod recovery;
mod rollback;
mod snapshot;
mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;

use super::{
    Action, AllocatedAddress, AttachmentState, CREATE_FENCE, ComputeServiceView, Decision, ImageReach, ImageState,
    Input, Made, MadePort, Nic, NovaNetworkState, Observed, PoolAddress, PortSupport, Quota, QuotaUse, Replacement,
    ServerState, TargetServices, TargetView, Twin, VolumeState, acknowledge, acting_spec, fail, hold,
    late_twins_possible, plan, validate, worth_writing,
};
use crate::api::{
    BootBase, Condition, ConditionStatus, FlavorSize, InstanceMigrationSpec, InstanceMigrationStatus, MigrationPhase,
    PortOrigin, RecordedFixedIp, RecordedFloatingIp, RecordedNovaNetworkFloatingIp, RecordedPort, RecordedServer,
    SnapshotStatus, StepRecord, StepResult, TargetPort, TargetServerStatus, condition_type,
};
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
/// The target project's security group `default`.
const SECURITY_GROUP_ID: &str = "sg-default";
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
        ..Default::default()
    }
}

fn server(status: &str, ports: Vec<RecordedPort>) -> RecordedServer {
    RecordedServer {
        id: SOURCE_ID.into(),
        name: "web-1".into(),
        project_id: Some("project-1".into()),
        status: status.into(),
        flavor_name: Some("m1.small".into()),
        flavor_size: Some(FlavorSize { disk_gb: 1, ephemeral_gb: 0, ram_mb: 512, ..Default::default() }),
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

/// A nova-compute service of the target.
fn compute_service(host: &str, zone: &str, status: &str, state: &str) -> ComputeServiceView {
    ComputeServiceView { host: host.into(), zone: Some(zone.into()), status: status.into(), state: state.into() }
}

/// A server of `web-1`'s name and project (the source, or its replacement).
fn server_state(id: &str, status: &str) -> ServerState {
    ServerState {
        id: id.into(),
        name: "web-1".into(),
        project_id: Some("project-1".into()),
        status: status.into(),
        ..Default::default()
    }
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
    /// Ports osmo made for the replacement, by the source port they stand for.
    created_ports: BTreeMap<String, MadePort>,
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
    /// The source's project, where its replacement is made.
    source_project: Option<String>,
    /// How many replacements were booted: the first is [`TARGET_ID`], the next `tgt-2`...
    booted: usize,
    /// Cinder's volumes (one deleted is gone from here).
    volumes: BTreeMap<String, VolumeState>,
    /// The source's and the replacement's volume attachments, as Nova shows them.
    source_attachments: Vec<AttachmentState>,
    target_attachments: Vec<AttachmentState>,
    /// Looks that a volume of a deleted server stays `detaching` (Nova detaches in the background).
    detach_looks: usize,
}

impl Cloud {
    fn new(record: RecordedServer) -> Cloud {
        let source = ServerState {
            name: record.name.clone(),
            project_id: record.project_id.clone(),
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
            boot: Ok(BootBase { flavor_id: FLAVOR_ID.into(), ..Default::default() }),
            target_view: TargetView {
                key_pair_found: record.key_name.as_ref().map(|_| true),
                // The source's flavor, of the same name in the target.
                flavor_disk_gb: record.flavor_size.as_ref().map_or(1, |f| f.disk_gb),
                flavor_ram_mb: record.flavor_size.as_ref().map_or(512, |f| f.ram_mb),
                flavor_ephemeral_gb: record.flavor_size.as_ref().map_or(0, |f| f.ephemeral_gb),
                flavor_vcpus: 1,
                services: TargetServices::Listed(vec![compute_service(TARGET_HOST, "icehouse", "enabled", "up")]),
                roles: BTreeSet::from(["admin".into()]),
                security_groups: Some(BTreeMap::from([("default".into(), vec![SECURITY_GROUP_ID.into()])])),
                ..TargetView::default()
            },
            snapshot_becomes: "active",
            target_becomes: "ACTIVE",
            twins: Vec::new(),
            booted: 0,
            volumes: record
                .volumes
                .iter()
                .map(|v| {
                    let attached_to = vec![record.id.clone()];
                    (v.id.clone(), VolumeState { id: v.id.clone(), status: "in-use".into(), attached_to })
                })
                .collect(),
            source_attachments: record
                .volumes
                .iter()
                .map(|v| AttachmentState {
                    volume_id: v.id.clone(),
                    device: v.device.clone(),
                    delete_on_termination: Some(v.delete_on_termination),
                })
                .collect(),
            target_attachments: Vec::new(),
            detach_looks: 0,
            source_project: record.project_id.clone(),
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
            // The controller's to claim; the planner never reads it.
            found: None,
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
            user_data: None,
            volumes: Some(self.volumes.clone()),
            source_attachments: self.source.as_ref().map(|_| self.source_attachments.clone()),
            target_attachments: self.target.as_ref().map(|_| self.target_attachments.clone()),
        }
    }

    /// Nova detaches a deleted server's volumes, and deletes those it was told to.
    fn detach_all(&mut self, server_id: &str, attachments: Vec<AttachmentState>) {
        for attachment in attachments {
            if attachment.delete_on_termination != Some(false) {
                self.volumes.remove(&attachment.volume_id);
                continue;
            }
            if let Some(volume) = self.volumes.get_mut(&attachment.volume_id) {
                volume.attached_to.retain(|s| s != server_id);
                if volume.attached_to.is_empty() {
                    volume.status = if self.detach_looks > 0 { "detaching" } else { "available" }.into();
                }
            }
        }
    }

    /// One look later: volumes being detached are free.
    fn settle_volumes(&mut self) {
        let mut detaching = self.volumes.values_mut().filter(|v| v.status.as_str() == "detaching").peekable();
        if detaching.peek().is_some() && self.detach_looks > 0 {
            self.detach_looks -= 1;
        } else {
            detaching.for_each(|volume| volume.status = "available".into());
        }
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::DeleteTwin(twin) => self.twins.retain(|t| t != twin),
            Action::StopSource { .. } => self.source_mut().status = "SHUTOFF".into(),
            Action::StartSource { .. } => {
                // Nova starts a locked server for admins only: the planner unlocks it first.
                assert!(!self.source_mut().locked, "the source is started while still locked");
                self.source_mut().status = "ACTIVE".into()
            }
            Action::LockSource { .. } => self.source_mut().locked = true,
            Action::StopTarget { .. } => self.target.as_mut().expect("a replacement").status = "SHUTOFF".into(),
            Action::UnlockSource { .. } => self.source_mut().locked = false,
            Action::CreateSnapshot { .. } => self.snapshot = Some(image(SNAPSHOT_ID, self.snapshot_becomes)),
            Action::DeleteSource { server_id } => {
                // Nova deletes the ports it made; Neutron unbinds their floating IPs;
                // nova-network disassociates its addresses but keeps them allocated.
                self.source = None;
                let attachments = std::mem::take(&mut self.source_attachments);
                self.detach_all(server_id, attachments);
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
            Action::CreatePort { source_port_id, network_id, keep_addresses } => {
                let id = made_port_id(source_port_id, *keep_addresses);
                self.port_networks.insert(id.clone(), network_id.clone());
                self.created_ports.insert(source_port_id.clone(), MadePort { id, marked: true });
            }
            Action::FinishPort { source_port_id, .. } => {
                self.created_ports.get_mut(source_port_id).expect("the port was made").marked = false;
            }
            Action::DeletePort { port_id } => self.created_ports.retain(|_, made| made.id != *port_id),
            Action::Boot(plan) => {
                let failed = self.target_becomes == "ERROR";
                self.booted += 1;
                let id = if self.booted == 1 { TARGET_ID.to_string() } else { format!("tgt-{}", self.booted) };
                for volume in &plan.volumes {
                    let seen = self.volumes.get_mut(&volume.volume_id).expect("a volume Cinder has");
                    assert_eq!(seen.status.as_str(), "available", "booted with a volume that is not free");
                    seen.status = "in-use".into();
                    seen.attached_to = vec![id.clone()];
                }
                self.target_attachments = plan
                    .volumes
                    .iter()
                    .map(|v| AttachmentState {
                        volume_id: v.volume_id.clone(),
                        device: v.device.clone(),
                        delete_on_termination: Some(v.delete_on_termination),
                    })
                    .collect();
                self.target = Some(ServerState {
                    name: plan.name.clone(),
                    project_id: self.source_project.clone(),
                    host: Some(TARGET_HOST.into()),
                    availability_zone: Some("icehouse".into()),
                    fault: if failed { Some(NO_VALID_HOST.into()) } else { None },
                    ..server_state(&id, self.target_becomes)
                });
                self.target_ports = plan
                    .nics
                    .iter()
                    .enumerate()
                    .map(|(i, n)| match n {
                        Nic::Port(id) => (id.clone(), self.port_networks[id.as_str()].clone()),
                        Nic::Auto => (format!("tgt-port-{i}"), "auto".into()),
                    })
                    .collect();
            }
            Action::AssociateFloatingIp { floating_ip_id, port_id, .. } => {
                self.floating_ips.insert(floating_ip_id.clone(), Some(port_id.clone()));
            }
            Action::CreateFloatingIpRange { ip_range, pool, .. } => {
                let address = ip_range.trim_end_matches("/32").to_string();
                self.nova_network.pools.push(pool_address(&address, pool, None));
            }
            Action::AllocateFloatingIp { pool } => {
                // Any free address of the pool.
                let free = self.nova_network.pools.iter_mut().find(|f| &f.pool == pool && f.project_id.is_none());
                let free = free.expect("a free address in the pool");
                free.project_id = Some("project-1".into());
                let allocated = allocated_address(&free.address, None);
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
            Action::DeleteTarget { server_id } => {
                self.target = None;
                self.target_ports.clear();
                let attachments = std::mem::take(&mut self.target_attachments);
                self.detach_all(server_id, attachments);
            }
            Action::DetachVolume { server_id, volume_id } => {
                assert_eq!(self.source.as_ref().map(|s| s.id.as_str()), Some(server_id.as_str()));
                let (detached, kept) =
                    std::mem::take(&mut self.source_attachments).into_iter().partition(|a| a.volume_id == *volume_id);
                self.source_attachments = kept;
                // Detaching never deletes.
                let detached =
                    detached.into_iter().map(|a| AttachmentState { delete_on_termination: Some(false), ..a });
                self.detach_all(server_id, detached.collect());
            }
            Action::AttachVolume { server_id, volume } => {
                let seen = self.volumes.get_mut(&volume.volume_id).expect("a volume Cinder has");
                assert_eq!(seen.status.as_str(), "available", "attached a volume that is not free");
                seen.status = "in-use".into();
                seen.attached_to = vec![server_id.clone()];
                self.source_attachments.push(AttachmentState {
                    volume_id: volume.volume_id.clone(),
                    device: volume.device.clone(),
                    delete_on_termination: Some(volume.delete_on_termination),
                });
            }
            Action::SetDeleteOnTermination { server_id, volume_id, delete } => {
                let attachments = match (&self.source, &self.target) {
                    (Some(s), _) if s.id == *server_id => &mut self.source_attachments,
                    (_, Some(t)) if t.id == *server_id => &mut self.target_attachments,
                    _ => panic!("{server_id} is neither the source nor the replacement"),
                };
                let attachment = attachments.iter_mut().find(|a| a.volume_id == *volume_id).expect("attached");
                attachment.delete_on_termination = Some(*delete);
            }
        }
    }
}

fn pool_address(address: &str, pool: &str, project: Option<&str>) -> PoolAddress {
    PoolAddress { address: address.into(), pool: pool.into(), project_id: project.map(Into::into) }
}

fn allocated_address(address: &str, server: Option<&str>) -> AllocatedAddress {
    AllocatedAddress { ip: address.into(), instance_id: server.map(Into::into) }
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
    /// The `osmo.dev/retry` annotation.
    retry: Option<String>,
    /// The `osmo.dev/accept-loss` annotation names the resource.
    loss_accepted: bool,
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
            retry: None,
            loss_accepted: false,
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
            retry: self.retry.as_deref(),
            loss_accepted: self.loss_accepted,
        }
    }

    /// What the planner decides now, without acting on it.
    fn decide(&self) -> Decision {
        let mut observed = self.cloud.observed();
        // As the controller does: twins are looked for only when one may come.
        if !self.status.as_ref().is_some_and(late_twins_possible) {
            observed.twins.clear();
        }
        // Volumes and attachments are read only by the phases that need them: a phase entered
        // from the look of the phase before must look at them first.
        let phase = self.phase();
        if !matches!(phase, DeletingSource | Booting | RollingBack) {
            observed.volumes = None;
            observed.source_attachments = None;
        }
        if phase != Verifying {
            observed.target_attachments = None;
        }
        plan(&self.input(), &observed)
    }

    /// One reconcile: decide, write the status, make the change.
    fn step(&mut self) -> Decision {
        self.cloud.settle_volumes();
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

fn lock_source() -> Action {
    Action::LockSource { server_id: SOURCE_ID.into() }
}

fn unlock_source() -> Action {
    Action::UnlockSource { server_id: SOURCE_ID.into() }
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

fn on_port(id: &str) -> Nic {
    Nic::Port(id.into())
}

/// The ID the simulated Neutron gives the port osmo makes for `source_port`.
fn made_port_id(source_port: &str, keep_addresses: bool) -> String {
    format!("{source_port}-{}", if keep_addresses { "recreated" } else { "made" })
}

/// The port osmo made (with a new address) for `source_port`.
fn made_port(source_port: &str) -> Nic {
    on_port(&made_port_id(source_port, false))
}

fn create_port(source_port: &str, network: &str, keep_addresses: bool) -> Action {
    Action::CreatePort { source_port_id: source_port.into(), network_id: network.into(), keep_addresses }
}

fn finish_port(source_port: &str, keep_addresses: bool) -> Action {
    Action::FinishPort { source_port_id: source_port.into(), port_id: made_port_id(source_port, keep_addresses) }
}

/// The security groups of a boot: none when every network is an existing port (ports carry
/// their own).
fn groups_for(networks: &[Nic]) -> Vec<String> {
    if networks.iter().all(|n| matches!(n, Nic::Port(_))) { Vec::new() } else { vec![SECURITY_GROUP_ID.into()] }
}

/// The boot of `web-1` into the `icehouse` zone.
fn boot(image_id: &str, networks: &[Nic]) -> Action {
    Action::Boot(Box::new(Replacement {
        name: "web-1".into(),
        image_id: Some(image_id.into()),
        flavor_id: FLAVOR_ID.into(),
        key_name: Some("deploy".into()),
        security_groups: groups_for(networks),
        availability_zone: Some("icehouse".into()),
        host: None,
        nics: networks.to_vec(),
        ..Default::default()
    }))
}

fn is_boot(action: &Action) -> bool {
    matches!(action, Action::Boot(_))
}

fn target_port(source_port: &str, port: &str, origin: PortOrigin) -> TargetPort {
    TargetPort { source_port_id: source_port.into(), port_id: port.into(), origin }
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

/// A migration held in Snapshotting (the snapshot still saving), with the spec it was
/// accepted with recorded.
fn snapshotting_run() -> Run {
    let mut cloud = web_cloud("ACTIVE");
    cloud.snapshot_becomes = "saving";
    let mut run = Run::new(snapshot_spec(), cloud);
    run.until(Snapshotting);
    run.step();
    assert_eq!(run.status().accepted_spec.as_deref(), Some(&snapshot_spec()));
    run
}

/// Failed past the point of no return in `phase`: the message says what remains (`remains`),
/// then how to retry or give up; the status keeps what a retry needs.
fn assert_past_no_return(status: &InstanceMigrationStatus, remains: &str, phase: MigrationPhase) {
    let message = failure_message(status);
    assert!(message.starts_with(remains), "{message}");
    assert!(
        message.ends_with(&format!(
            "retry from {phase:?} by giving the annotation osmo.dev/retry a new value; to give the server up, set \
             the annotation osmo.dev/accept-loss to this resource's metadata.uid (deleting the resource waits for \
             one of the two)."
        )),
        "{message}"
    );
    assert_eq!(status.recovery.as_ref().map(|r| r.phase), Some(phase));
}
