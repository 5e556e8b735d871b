//! Reads what the current phase needs from OpenStack (and the other migrations from the
//! controller's cache). Reads only: nothing here changes anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{
    AddressMode, BootBase, InstanceMigration, InstanceMigrationStatus, MigrationPhase, MigrationTarget, RecordedServer,
    Strategy, TargetPort,
};
use crate::openstack::compute::{Flavor, UserData};
use crate::openstack::image::Image;
use crate::openstack::nova_network::{BulkFloatingIp, LegacyFloatingIp};
use crate::openstack::{Error, Service, Session};
use crate::runtime::clouds::CloudError;
use crate::runtime::conditions::Refusal;

use super::Context;
use super::planner::needed_extensions;
use super::planner::{
    AllocatedAddress, AttachmentState, ComputeServiceView, FoundServer, ImageReach, ImageState, MadePort,
    NovaNetworkState, Observed, PoolAddress, PortSupport, Quota, QuotaUse, ServerState, TargetServices, TargetView,
    Twin, UID_KEY, VolumeState, late_twins_possible,
};
use super::record::{nova_network_floating_ips, record};
use crate::openstack::states::{self, ImageStatus, ServerStatus};

/// The sessions of the source and target clouds (the same one unless `target.cloud` is set),
/// scoped to the server's project when the migration acts in it.
#[derive(Clone)]
pub struct Sessions {
    pub source: Arc<Session>,
    pub target: Arc<Session>,
    /// The project they act in, when not the credentials' own.
    pub acting_project: Option<String>,
}

pub async fn sessions(
    ctx: &Context,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
) -> Result<Sessions, CloudError> {
    let namespace = im.namespace().unwrap_or_default();
    let acting_project = status.acting_project_id.clone();
    let session = async |cloud| match &acting_project {
        Some(project) => ctx.shared.clouds.session_in_project(&namespace, cloud, project).await,
        None => ctx.shared.clouds.session(&namespace, cloud).await,
    };
    let source = session(&im.spec.source).await?;
    let target = match &im.spec.options.target.cloud {
        Some(cloud) if *cloud != im.spec.source => session(cloud).await?,
        _ => source.clone(),
    };
    Ok(Sessions { source, target, acting_project })
}

/// Why a look at OpenStack gave no answer: the migration is refused (before anything
/// changed), or OpenStack failed.
enum Unanswered {
    Refused(Refusal),
    Failed(Error),
}

impl From<Refusal> for Unanswered {
    fn from(refusal: Refusal) -> Self {
        Unanswered::Refused(refusal)
    }
}

impl From<Error> for Unanswered {
    fn from(error: Error) -> Self {
        Unanswered::Failed(error)
    }
}

impl Unanswered {
    /// The refusal, for the planner to decide on; an OpenStack failure stays an error.
    fn refusal(self) -> Result<Refusal, Error> {
        match self {
            Unanswered::Refused(refusal) => Ok(refusal),
            Unanswered::Failed(error) => Err(error),
        }
    }
}

/// The description that marks a port osmo made for a source port, until the status holds its
/// ID (then it gets the source port's description).
pub fn port_marker(uid: &str, source_port_id: &str) -> String {
    format!("osmo:{uid}:{source_port_id}")
}

pub async fn observe(
    ctx: &Context,
    s: &Sessions,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
) -> Result<Observed, Error> {
    use MigrationPhase::*;
    let uid = im.uid().unwrap_or_default();
    let strategy = im.spec.options.strategy;
    let nova_network = im.spec.options.addresses.mode == AddressMode::NovaNetwork;
    let mut o = Observed::default();
    match status.phase {
        Pending | Recording => match record_source(ctx, s, im, &mut o.found).await {
            Err(unanswered) => {
                o.acting_project = s.acting_project.clone();
                o.recording = Some(Err(unanswered.refusal()?));
            }
            Ok(Recorded { record, user_data, seen, scoped }) => {
                o.user_data = user_data;
                // The next phase's first change is decided from this look, and a change whose
                // answer shows its outcome (a lock) is added to it.
                o.source = Some(seen);
                let acting = scoped.as_ref().unwrap_or(s);
                o.acting_project = acting.acting_project.clone();
                // Everything the replacement needs must exist in the target, for the project it
                // will belong to, before anything changes.
                match boot_base(acting, im, &record).await {
                    Ok((base, flavor, network_subnets)) => {
                        let view = target_view(acting, im, &record, &flavor).await?;
                        o.target_view = Some(TargetView { network_subnets, ..view });
                        o.boot = Some(Ok(base));
                    }
                    Err(unanswered) => o.boot = Some(Err(unanswered.refusal()?)),
                }
                o.recording = Some(Ok(record));
                // Whether the target can give the addresses back is known before anything changes.
                if nova_network {
                    match nova_network_or_refusal(&acting.target).await {
                        Ok(listing) => o.nova_network = Some(nova_network_view(&listing)),
                        Err(unanswered) => o.recording = Some(Err(unanswered.refusal()?)),
                    }
                }
            }
        },
        Stopping => o.source = source(s, status).await?,
        Snapshotting => {
            o.snapshot = snapshot(s, status, &uid).await?;
            // The source matters to make the snapshot; once it is active, it is deleted unseen.
            if status.snapshot.is_none() {
                o.source = source(s, status).await?;
            }
        }
        DeletingSource => {
            o.source = source(s, status).await?;
            match &o.source {
                // Gone: what the boot needs (a snapshot migration boots next).
                None if strategy == Strategy::Snapshot => boot_needs(s, im, status, &uid, &mut o).await?,
                None => {}
                // While Nova is deleting, only the source is watched.
                Some(src) if states::is_deleting(src.task_state.as_deref()) => {}
                // What replaces the source is checked afresh before each deletion request, and
                // that Nova keeps its volumes.
                Some(src) => {
                    match strategy {
                        Strategy::Snapshot => o.snapshot = snapshot(s, status, &uid).await?,
                        Strategy::Redeploy => o.target = target(s, status, &uid).await?,
                    }
                    if let Some(record) = status.source.as_ref().filter(|r| !r.volumes.is_empty()) {
                        o.source_attachments = Some(attachments(&s.source, &src.id).await?);
                        o.volumes = Some(volumes(&s.source, record).await?);
                    }
                }
            }
        }
        Booting => {
            o.target = target(s, status, &uid).await?;
            match &o.target {
                // Its ports matter once it is up (the floating IPs are moved to them next; nova-network
                // has none).
                Some(t) if t.status == ServerStatus::Active && !nova_network => {
                    o.target_ports = target_ports(s, &t.id).await?
                }
                Some(_) => {}
                None => boot_needs(s, im, status, &uid, &mut o).await?,
            }
        }
        MovingAddresses | Verifying => {
            if status.phase == Verifying {
                o.target = target(s, status, &uid).await?;
                if let Some(t) = o.target.as_ref().filter(|_| has_volumes(status)) {
                    o.target_attachments = Some(attachments(&s.target, &t.id).await?);
                }
                // A redeployed source is deleted next, from this look.
                if strategy == Strategy::Redeploy {
                    o.source = source(s, status).await?;
                }
            }
            if nova_network {
                o.nova_network = Some(nova_network_state(&s.target).await?);
            } else {
                o.floating_ips = floating_ips(s, status).await?;
            }
        }
        CleaningUp => o.snapshot = snapshot(s, status, &uid).await?,
        RollingBack => {
            o.source = source(s, status).await?;
            // Its volumes are given back as they were.
            if let (Some(src), Some(record)) = (&o.source, status.source.as_ref().filter(|_| has_volumes(status))) {
                o.source_attachments = Some(attachments(&s.source, &src.id).await?);
                o.volumes = Some(volumes(&s.source, record).await?);
            }
            o.snapshot = snapshot(s, status, &uid).await?;
            // Only a redeploy makes its replacement (and its ports) while the source exists.
            if strategy == Strategy::Redeploy {
                o.target = target(s, status, &uid).await?;
                if let Some(record) = &status.source {
                    o.created_ports = made_ports(s, record, status, &uid).await?;
                }
            }
        }
        Succeeded | Failed => {}
    }
    if late_twins_possible(status) {
        o.twins = twins(s, status, &uid, &o).await?;
    }
    Ok(o)
}

/// What a create sent before the last one made, landing late: tagged with the migration's
/// UID, but neither the snapshot or replacement recorded or just found (nor one already being
/// deleted).
async fn twins(s: &Sessions, status: &InstanceMigrationStatus, uid: &str, o: &Observed) -> Result<Vec<Twin>, Error> {
    let mut twins = Vec::new();
    let known = |id: &str, recorded: Option<&str>, found: Option<&str>| Some(id) == recorded || Some(id) == found;
    if let Some(record) = &status.source {
        let target = status.target.as_ref().map(|t| t.server_id.as_str());
        let servers = s.target.compute().servers_named(&record.name).await?;
        twins.extend(
            servers
                .into_iter()
                .filter(|srv| srv.metadata.get(UID_KEY).map(String::as_str) == Some(uid))
                .filter(|srv| !known(&srv.id, target, o.target.as_ref().map(|t| t.id.as_str())))
                .map(|srv| server_state(&srv))
                .filter(|srv| srv.status != ServerStatus::Deleted && !states::is_deleting(srv.task_state.as_deref()))
                .map(|srv| Twin::Server(srv.id)),
        );
    }
    let snapshot = status.snapshot.as_ref().map(|i| i.image_id.as_str());
    let images = s.source.image().images_with_property(UID_KEY, uid).await?;
    twins.extend(
        images
            .into_iter()
            .filter(|image| !known(&image.id, snapshot, o.snapshot.as_ref().map(|i| i.id.as_str())))
            .filter(|image| !ImageStatus::from(image.status.as_str()).is_gone())
            .map(|image| Twin::Image(image.id)),
    );
    Ok(twins)
}

/// What a boot needs that only OpenStack knows now: the recorded ports that survive, those
/// osmo made for the replacement, and the boot base when the status holds none (written by an
/// older osmo).
async fn boot_needs(
    s: &Sessions,
    im: &InstanceMigration,
    status: &InstanceMigrationStatus,
    uid: &str,
    o: &mut Observed,
) -> Result<(), Error> {
    let Some(record) = &status.source else { return Ok(()) };
    o.volumes = Some(volumes(&s.source, record).await?);
    if status.boot_base.is_none() {
        o.boot = Some(match boot_base(s, im, record).await {
            Ok((base, ..)) => Ok(base),
            Err(unanswered) => Err(unanswered.refusal()?),
        });
    }
    if record.ports.is_empty() {
        return Ok(());
    }
    // A redeployed source still has its ports: they are not the replacement's.
    if im.spec.options.strategy == Strategy::Snapshot {
        let ids: Vec<(&str, &str)> = record.ports.iter().map(|p| ("id", p.id.as_str())).collect();
        o.surviving_ports = s.target.network().ports(&ids).await?.into_iter().map(|p| p.id).collect();
    }
    o.created_ports = made_ports(s, record, status, uid).await?;
    Ok(())
}

/// Whether the source has volumes.
fn has_volumes(status: &InstanceMigrationStatus) -> bool {
    status.source.as_ref().is_some_and(|r| !r.volumes.is_empty())
}

/// The recorded volumes as Cinder shows them now (one it does not show is left out).
async fn volumes(session: &Session, record: &RecordedServer) -> Result<BTreeMap<String, VolumeState>, Error> {
    let mut seen = BTreeMap::new();
    for recorded in &record.volumes {
        if let Some(volume) = session.block_storage().volume(&recorded.id).await? {
            let attached_to = volume.attachments.into_iter().map(|a| a.server_id).collect();
            seen.insert(volume.id.clone(), VolumeState { id: volume.id, status: volume.status, attached_to });
        }
    }
    Ok(seen)
}

/// A server's volume attachments as Nova shows them now.
async fn attachments(session: &Session, server_id: &str) -> Result<Vec<AttachmentState>, Error> {
    let attachments = session.compute().volume_attachments(server_id).await?;
    Ok(attachments
        .into_iter()
        .map(|a| AttachmentState {
            volume_id: a.volume_id,
            device: a.device,
            delete_on_termination: a.delete_on_termination,
        })
        .collect())
}

fn server_state(server: &crate::openstack::compute::Server) -> ServerState {
    ServerState {
        id: server.id.clone(),
        name: server.name.clone(),
        project_id: server.tenant_id.clone(),
        status: server.status.as_str().into(),
        task_state: server.task_state.clone(),
        host: server.host.clone(),
        availability_zone: server.availability_zone.clone(),
        fault: server.fault.as_ref().map(|f| f.message.clone()),
        locked: server.locked == Some(true),
    }
}

/// The source; `None` once it is gone (Nova shows a deleted server as `DELETED` for a moment).
async fn source(s: &Sessions, status: &InstanceMigrationStatus) -> Result<Option<ServerState>, Error> {
    let Some(record) = &status.source else { return Ok(None) };
    let server = s.source.compute().server(&record.id).await?;
    Ok(server.as_ref().map(server_state).filter(|srv| srv.status != ServerStatus::Deleted))
}

/// The snapshot by its recorded id, or found by the migration's UID (a crash may have come
/// between its creation and the status write).
async fn snapshot(s: &Sessions, status: &InstanceMigrationStatus, uid: &str) -> Result<Option<ImageState>, Error> {
    let image = match &status.snapshot {
        Some(snapshot) => s.source.image().get(&snapshot.image_id).await?,
        None => s.source.image().images_with_property(UID_KEY, uid).await?.into_iter().next(),
    };
    Ok(image.map(image_state))
}

/// What the planner needs to know of a snapshot.
pub fn image_state(image: Image) -> ImageState {
    ImageState {
        instance_uuid: image.property("instance_uuid").map(str::to_string),
        status: image.status.as_str().into(),
        id: image.id,
        size: image.size,
        checksum: image.checksum,
        owner: image.owner,
        protected: image.protected,
    }
}

/// The replacement by its recorded id, or found by name and the migration's UID.
async fn target(s: &Sessions, status: &InstanceMigrationStatus, uid: &str) -> Result<Option<ServerState>, Error> {
    let compute = s.target.compute();
    let server = match &status.target {
        Some(t) => compute.server(&t.server_id).await?,
        None => {
            let Some(record) = &status.source else { return Ok(None) };
            let mut ours: Vec<_> = compute
                .servers_named(&record.name)
                .await?
                .into_iter()
                .filter(|srv| srv.metadata.get(UID_KEY).map(String::as_str) == Some(uid))
                .collect();
            // A create sent twice may have made two: the replacement is the one on the ports
            // osmo made for it (the floating IPs go to those ports); the other is a twin.
            let made: Vec<&str> = status.target_ports.iter().map(|p| p.port_id.as_str()).collect();
            let mut on_made_ports = None;
            if ours.len() > 1 && !made.is_empty() {
                for (i, srv) in ours.iter().enumerate() {
                    let ports = s.target.network().ports(&[("device_id", srv.id.as_str())]).await?;
                    if ports.iter().any(|p| made.contains(&p.id.as_str())) {
                        on_made_ports = Some(i);
                        break;
                    }
                }
            }
            match on_made_ports {
                Some(i) => Some(ours.swap_remove(i)),
                None => ours.into_iter().next(),
            }
        }
    };
    Ok(server.as_ref().map(server_state))
}

async fn target_ports(s: &Sessions, server_id: &str) -> Result<Vec<(String, String)>, Error> {
    Ok(s.target.network().ports(&[("device_id", server_id)]).await?.into_iter().map(|p| (p.id, p.network_id)).collect())
}

/// The ports osmo made for the replacement, by the source port each stands for: those the
/// status holds, by ID, and those made since its last write, by their marker.
async fn made_ports(
    s: &Sessions,
    record: &RecordedServer,
    status: &InstanceMigrationStatus,
    uid: &str,
) -> Result<BTreeMap<String, MadePort>, Error> {
    let network = s.target.network();
    let mut made = BTreeMap::new();
    let known: Vec<&TargetPort> = status.target_ports.iter().filter(|p| p.origin.made_by_osmo()).collect();
    if !known.is_empty() {
        let ids: Vec<(&str, &str)> = known.iter().map(|p| ("id", p.port_id.as_str())).collect();
        for port in network.ports(&ids).await? {
            let Some(source) = known.iter().find(|k| k.port_id == port.id) else { continue };
            let marked = port.description == port_marker(uid, &source.source_port_id);
            made.insert(source.source_port_id.clone(), MadePort { id: port.id, marked });
        }
    }
    // A port made since the last write, or again after one in the status vanished.
    let markers: Vec<(String, String)> = record
        .ports
        .iter()
        .filter(|p| !made.contains_key(&p.id))
        .map(|p| (p.id.clone(), port_marker(uid, &p.id)))
        .collect();
    if !markers.is_empty() {
        let filters: Vec<(&str, &str)> = markers.iter().map(|(_, m)| ("description", m.as_str())).collect();
        for port in network.ports(&filters).await? {
            if let Some((source, _)) = markers.iter().find(|(_, m)| *m == port.description) {
                made.insert(source.clone(), MadePort { id: port.id, marked: true });
            }
        }
    }
    Ok(made)
}

async fn floating_ips(
    s: &Sessions,
    status: &InstanceMigrationStatus,
) -> Result<BTreeMap<String, Option<String>>, Error> {
    let ids: Vec<(&str, &str)> = status
        .source
        .iter()
        .flat_map(|r| &r.ports)
        .flat_map(|p| &p.floating_ips)
        .map(|f| ("id", f.id.as_str()))
        .collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(s.target.network().floating_ips(&ids).await?.into_iter().map(|f| (f.id, f.port_id)).collect())
}

/// The project's addresses and every pool's of nova-network in a cloud, as Nova lists them.
type NovaNetworkListing = (Vec<LegacyFloatingIp>, Vec<BulkFloatingIp>);

async fn nova_network_listing(session: &Session) -> Result<NovaNetworkListing, Error> {
    let legacy = session.nova_network();
    Ok((legacy.floating_ips().await?, legacy.bulk_floating_ips().await?))
}

/// What the planner needs of a nova-network listing.
fn nova_network_view((allocated, pools): &NovaNetworkListing) -> NovaNetworkState {
    NovaNetworkState {
        allocated: allocated
            .iter()
            .map(|f| AllocatedAddress { ip: f.ip.clone(), instance_id: f.instance_id.clone() })
            .collect(),
        pools: pools
            .iter()
            .map(|f| PoolAddress { address: f.address.clone(), pool: f.pool.clone(), project_id: f.project_id.clone() })
            .collect(),
    }
}

async fn nova_network_state(session: &Session) -> Result<NovaNetworkState, Error> {
    Ok(nova_network_view(&nova_network_listing(session).await?))
}

/// nova-network's listing, or the refusal of a migration that asks for it where it does not run.
async fn nova_network_or_refusal(session: &Session) -> Result<NovaNetworkListing, Unanswered> {
    nova_network_listing(session).await.map_err(|e| match e {
        Error::NovaNetworkUnavailable { .. } => Unanswered::Refused(Refusal {
            reason: "NovaNetworkUnavailable",
            message: format!("spec.addresses.mode: NovaNetwork, but {e}"),
        }),
        e => Unanswered::Failed(e),
    })
}

/// The Secret that keeps a migration's copy of the source's user data.
pub fn user_data_secret_name(uid: &str) -> String {
    format!("osmo-user-data-{uid}")
}

/// What Recording read of the source.
struct Recorded {
    record: RecordedServer,
    user_data: Option<UserData>,
    /// The source as it was seen.
    seen: ServerState,
    /// The sessions in the server's project, when they are not the credentials' own.
    scoped: Option<Sessions>,
}

/// Records the source, or says why it cannot be migrated: not found, ambiguous, volumes,
/// another project. (Another migration's claim on it is checked by the controller.)
async fn record_source(
    ctx: &Context,
    s: &Sessions,
    im: &InstanceMigration,
    found_server: &mut Option<FoundServer>,
) -> Result<Recorded, Unanswered> {
    let wanted = &im.spec.server;
    let found = s.source.compute().find_server(wanted).await?;
    let server = match found.as_slice() {
        [] => {
            return Err(Refusal {
                reason: "ServerNotFound",
                message: format!("spec.server: no server {wanted:?} in cloud {}", im.spec.source.cloud),
            }
            .into());
        }
        [one] => one,
        many => {
            return Err(Refusal {
                reason: "ServerAmbiguous",
                message: format!("spec.server: {} servers are named {wanted:?}; give the server's ID", many.len()),
            }
            .into());
        }
    };
    *found_server = Some(FoundServer { id: server.id.clone(), project_id: server.tenant_id.clone() });
    let scoped = sessions_in_server_project(ctx, s, im, server).await?;
    // The rest is read as the server's project sees it.
    let s = scoped.as_ref().unwrap_or(s);
    let nova_network = im.spec.options.addresses.mode == AddressMode::NovaNetwork;
    // A nova-network cloud has no Neutron: its addresses are Nova's.
    // Addresses, volumes and groups are read at once (see `target_view`).
    let addresses = async {
        if nova_network {
            return Ok((Vec::new(), Vec::new()));
        }
        let ports = s.source.network().ports(&[("device_id", &server.id)]).await?;
        let port_filters: Vec<(&str, &str)> = ports.iter().map(|p| ("port_id", p.id.as_str())).collect();
        let fips =
            if port_filters.is_empty() { Vec::new() } else { s.source.network().floating_ips(&port_filters).await? };
        Ok((ports, fips))
    };
    // A failed read fails the recording: it never stands for "no volumes".
    let volumes = async {
        let attachments = s.source.compute().volume_attachments(&server.id).await?;
        futures::future::try_join_all(attachments.into_iter().map(|attachment| async {
            let volume = s.source.block_storage().volume(&attachment.volume_id).await?;
            Ok((attachment, volume))
        }))
        .await
    };
    let source_compute = s.source.compute();
    let ((ports, fips), volumes, groups) = futures::try_join!(addresses, volumes, source_compute.server_groups())?;
    let mut recorded = record(server, &volumes, &ports, &fips, &groups)?;
    let user_data = server.user_data.clone().flatten();
    if user_data.is_some() {
        recorded.user_data_secret = Some(user_data_secret_name(&im.uid().unwrap_or_default()));
    }
    if nova_network {
        let (allocated, pools) = nova_network_or_refusal(&s.source).await?;
        recorded.nova_network_floating_ips = nova_network_floating_ips(&server.id, &allocated, &pools);
    }
    Ok(Recorded { record: recorded, user_data, seen: server_state(server), scoped })
}

/// The sessions to act on `server` with: none when the credentials are scoped to the server's
/// project (or to no project); scoped to the server's project when every cloud's credentials
/// can be (a password user with a role there); else why not, before anything changes. A
/// snapshot and a replacement belong to the project that makes them. The sessions that pass
/// are kept, for every later change to act with.
async fn sessions_in_server_project(
    ctx: &Context,
    s: &Sessions,
    im: &InstanceMigration,
    server: &crate::openstack::compute::Server,
) -> Result<Option<Sessions>, Unanswered> {
    let (Some(owner), Some(own)) = (server.tenant_id.as_deref(), s.source.project_id().await?) else {
        return Ok(None);
    };
    if owner == own {
        return Ok(None);
    }
    let refusal = |cloud: &crate::api::CloudRef, why: String| Refusal {
        reason: "WrongProject",
        message: format!(
            "server {} belongs to project {owner}, and the credentials of cloud {} cannot act in it: {why}",
            server.id, cloud.cloud
        ),
    };
    let target_cloud = im.spec.options.target.cloud.as_ref().filter(|c| **c != im.spec.source);
    let mut clouds = vec![(&im.spec.source, &s.source)];
    clouds.extend(target_cloud.map(|cloud| (cloud, &s.target)));
    let namespace = im.namespace().unwrap_or_default();
    let mut scoped = Vec::new();
    for (cloud, session) in clouds {
        let session = match ctx.shared.clouds.in_project(&namespace, cloud, session, owner) {
            Ok(session) => session,
            Err(e) => return Err(refusal(cloud, e.to_string()).into()),
        };
        // Logging in scoped to the project is the test: Keystone refuses a user with no role there.
        match session.project_id().await {
            Ok(_) => scoped.push(session),
            Err(e @ Error::Auth { .. }) => return Err(refusal(cloud, e.to_string()).into()),
            Err(e) => return Err(e.into()),
        }
    }
    let source = scoped[0].clone();
    // One session for one cloud: `boot_base` tells the clouds apart by it.
    let target = scoped.get(1).cloned().unwrap_or_else(|| source.clone());
    Ok(Some(Sessions { source, target, acting_project: Some(owner.to_string()) }))
}

/// What else the boot needs, as the target shows it to the acting credentials: the key pair
/// is looked up as the acting user, since a key pair belongs to the user who made it.
async fn target_view(
    s: &Sessions,
    im: &InstanceMigration,
    record: &RecordedServer,
    flavor: &Flavor,
) -> Result<TargetView, Error> {
    let compute = s.target.compute();
    let same_cloud = Arc::ptr_eq(&s.source, &s.target);
    let snapshot = im.spec.options.strategy == Strategy::Snapshot;
    // The reads are independent, and made at once: one after another, they were most of the
    // time a move takes to start.
    let key_pair_found = async {
        match &record.key_name {
            Some(name) => Ok(Some(compute.key_pair(name).await?.is_some())),
            None => Ok(None),
        }
    };
    // The source booted with its flavor's memory: the image's min_ram matters only below that.
    let less_memory = record.flavor_size.as_ref().is_none_or(|size| flavor.ram < size.ram_mb);
    let image_min_ram_mb = async {
        match &record.image_id {
            Some(image) if less_memory => Ok(s.source.image().get(image).await?.and_then(|i| i.min_ram)),
            _ => Ok(None),
        }
    };
    // nova-network has no Neutron: Nova resolves its groups' names, unique in a project.
    let security_groups = async {
        match im.spec.options.addresses.mode {
            AddressMode::NovaNetwork => Ok(None),
            _ => Ok(Some(security_groups_by_name(&s.target, &record.security_groups).await?)),
        }
    };
    let image_reach = async {
        match &record.image_id {
            Some(image) if snapshot && !same_cloud => Ok(Some(image_reach(s, image).await?)),
            _ => Ok(None),
        }
    };
    let network_endpoints = async {
        match record.ports.iter().any(|p| !p.floating_ips.is_empty()) {
            true if !same_cloud => {
                Ok(Some((s.source.endpoint(Service::Network).await?, s.target.endpoint(Service::Network).await?)))
            }
            _ => Ok(None),
        }
    };
    let port_support = async {
        match same_cloud {
            true => Ok(None),
            false => Ok(Some(port_support(&s.target, record).await?)),
        }
    };
    let source_microversion = async {
        match record.volumes.is_empty() {
            true => Ok(None),
            false => s.source.compute_microversion().await,
        }
    };
    let volume_endpoints = async {
        match record.volumes.is_empty() {
            false if !same_cloud => {
                let target = match s.target.endpoint(Service::BlockStorage).await {
                    Ok(url) => Some(url),
                    Err(Error::NoEndpoint { .. }) => None,
                    Err(e) => return Err(e),
                };
                Ok(Some((s.source.endpoint(Service::BlockStorage).await?, target)))
            }
            _ => Ok(None),
        }
    };
    let (
        key_pair_found,
        image_min_ram_mb,
        limits,
        security_groups,
        microversion,
        services,
        roles,
        image_reach,
        network_endpoints,
        port_support,
        source_microversion,
        volume_endpoints,
    ) = futures::try_join!(
        key_pair_found,
        image_min_ram_mb,
        compute.limits(),
        security_groups,
        s.target.compute_microversion(),
        target_services(&s.target, &im.spec.options.target),
        s.target.role_names(),
        image_reach,
        network_endpoints,
        port_support,
        source_microversion,
        volume_endpoints,
    )?;
    let usage = |max, used| QuotaUse { max, used };
    Ok(TargetView {
        key_pair_found,
        flavor_disk_gb: flavor.disk,
        flavor_ram_mb: flavor.ram,
        flavor_vcpus: flavor.vcpus.into(),
        flavor_ephemeral_gb: flavor.ephemeral,
        flavor_swap_mb: flavor.swap,
        flavor_extra_specs: flavor.extra_specs.clone(),
        microversion,
        image_min_ram_mb,
        services,
        roles: roles.iter().map(|role| role.to_lowercase()).collect(),
        quota: Quota {
            instances: usage(limits.max_total_instances, limits.total_instances_used),
            cores: usage(limits.max_total_cores, limits.total_cores_used),
            ram_mb: usage(limits.max_total_ram_size, limits.total_ram_used),
        },
        security_groups,
        image_reach,
        network_endpoints,
        port_support,
        network_subnets: BTreeMap::new(),
        source_microversion,
        volume_endpoints,
    })
}

/// What the target's Neutron has of what the source's ports carry, each read only when a port
/// carries it: the extensions their attributes need, their QoS policies and security groups.
async fn port_support(session: &Session, record: &RecordedServer) -> Result<PortSupport, Error> {
    let network = session.network();
    let mut support = PortSupport::default();
    if record.ports.iter().any(|p| !needed_extensions(p).is_empty()) {
        support.extensions = network.extensions().await?.into_iter().map(|e| e.alias).collect();
    }
    let policies: Vec<(&str, &str)> =
        record.ports.iter().filter_map(|p| p.qos_policy_id.as_deref()).map(|id| ("id", id)).collect();
    if !policies.is_empty() {
        support.qos_policies = network.qos_policies(&policies).await?.into_iter().map(|p| p.id).collect();
    }
    let groups: Vec<(&str, &str)> =
        record.ports.iter().flat_map(|p| &p.security_groups).map(|id| ("id", id.as_str())).collect();
    if !groups.is_empty() {
        support.security_groups = network.security_groups(&groups).await?.into_iter().map(|g| g.id).collect();
    }
    Ok(support)
}

/// The target's nova-compute services on the named host (or all, for a named zone); listing
/// them is admin-only by Nova's default policy, and a 403 says they cannot be checked.
async fn target_services(session: &Session, target: &MigrationTarget) -> Result<TargetServices, Error> {
    if target.availability_zone.is_none() && target.host.is_none() {
        return Ok(TargetServices::NotNamed);
    }
    match session.compute().compute_services(target.host.as_deref()).await {
        Ok(services) => Ok(TargetServices::Listed(
            services
                .into_iter()
                .map(|s| ComputeServiceView {
                    status: s.status.as_str().into(),
                    state: s.state.as_str().into(),
                    host: s.host,
                    zone: s.zone,
                })
                .collect(),
        )),
        Err(e) if e.status() == Some(403) => {
            tracing::info!(
                target = %target.describe(),
                "the acting credentials may not list the target's compute services: whether the target takes \
                 servers is not checked"
            );
            Ok(TargetServices::NotListable)
        }
        Err(e) => Err(e),
    }
}

/// The IDs of the target project's security groups of the source's groups' names, as Nova
/// looks them up to boot: the project's own, and for a name it lacks, those shared with it.
async fn security_groups_by_name(session: &Session, names: &[String]) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if names.is_empty() {
        return Ok(by_name);
    }
    let project = session.project_id().await?;
    let own: Vec<(&str, &str)> = project.iter().map(|p| ("project_id", p.as_str())).collect();
    let mut groups = session.network().security_groups(&own).await?;
    if names.iter().any(|name| !groups.iter().any(|g| g.name == *name)) {
        match session.network().security_groups(&[("shared", "True")]).await {
            Ok(shared) => {
                let new: Vec<_> = shared.into_iter().filter(|g| !groups.iter().any(|own| own.id == g.id)).collect();
                groups.extend(new);
            }
            // A Neutron without the shared filter shares none this way.
            Err(e) if e.status() == Some(400) => {}
            Err(e) => return Err(e),
        }
    }
    for group in groups.into_iter().filter(|g| names.contains(&g.name)) {
        by_name.entry(group.name).or_default().push(group.id);
    }
    Ok(by_name)
}

/// Whether the target reads the Glance the snapshot would be made in: both clouds' image
/// endpoints, and whether each shows the source's image.
async fn image_reach(s: &Sessions, image_id: &str) -> Result<ImageReach, Error> {
    Ok(ImageReach {
        source_endpoint: s.source.endpoint(Service::Image).await?,
        target_endpoint: s.target.endpoint(Service::Image).await?,
        image_id: image_id.to_string(),
        seen_from_source: s.source.image().get(image_id).await?.is_some(),
        seen_from_target: s.target.image().get(image_id).await?.is_some(),
    })
}

/// The flavor, networks and image of the replacement, resolved in the target cloud, with the
/// flavor's sizes and, by the source's network, the subnets of the network it moves to.
async fn boot_base(
    s: &Sessions,
    im: &InstanceMigration,
    record: &RecordedServer,
) -> Result<(BootBase, Flavor, BTreeMap<String, Vec<String>>), Unanswered> {
    let mappings = &im.spec.options.mappings;
    let source_flavor = record.flavor_name.clone().or_else(|| record.flavor_id.clone()).unwrap_or_default();
    let by_id = record.flavor_id.as_ref().and_then(|id| mappings.flavors.get(id));
    let wanted_flavor = mappings.flavors.get(&source_flavor).or(by_id).cloned().unwrap_or(source_flavor.clone());
    let Some(flavor) = s.target.compute().find_flavor(&wanted_flavor).await? else {
        let field = if wanted_flavor == source_flavor {
            "the source's flavor".to_string()
        } else {
            format!("spec.mappings.flavors[{source_flavor:?}]")
        };
        return Err(Refusal {
            reason: "FlavorNotFound",
            message: format!("{field}: flavor {wanted_flavor:?} does not exist in the target cloud"),
        }
        .into());
    };
    // Names are resolved as the server's project sees them: never another project's.
    let project = record.project_id.as_deref();
    let (mut networks, mut subnets) = (BTreeMap::new(), BTreeMap::new());
    for port in &record.ports {
        let mapped = match mappings.networks.get(&port.network_id) {
            Some(m) => Some(m.clone()),
            None if mappings.networks.is_empty() => None,
            None => {
                let name =
                    s.source.network().networks(&[("id", &port.network_id)]).await?.into_iter().next().map(|n| n.name);
                name.and_then(|n| mappings.networks.get(&n).cloned())
            }
        };
        let same_cloud = Arc::ptr_eq(&s.source, &s.target);
        let wanted = match mapped {
            Some(m) => m,
            None if same_cloud => continue,
            None => port.network_id.clone(),
        };
        let by_id = s.target.network().networks(&[("id", &wanted)]).await?.into_iter().next();
        let found = match by_id {
            Some(net) => Named::One(net),
            None => in_project_view(s.target.network().networks(&[("name", &wanted)]).await?, |n| {
                project.is_none_or(|p| n.usable_by(p))
            }),
        };
        match found {
            Named::One(net) => {
                networks.insert(port.network_id.clone(), net.id.clone());
                subnets.insert(port.network_id.clone(), net.subnets);
            }
            Named::None => {
                return Err(Refusal {
                    reason: "NetworkNotFound",
                    message: format!(
                        "spec.mappings.networks: network {wanted:?} (for the source's network {}) does not exist in the target cloud, among the networks the server's project may use",
                        port.network_id
                    ),
                }
                .into());
            }
            Named::Several(ids) => {
                return Err(Refusal {
                    reason: "NetworkAmbiguous",
                    message: format!(
                        "spec.mappings.networks: several networks the server's project may use are named {wanted:?} in the target ({}): map to one by its ID",
                        ids.join(", ")
                    ),
                }
                .into());
            }
        }
    }
    let image_id = match (&im.spec.options.strategy, &im.spec.options.redeploy) {
        (Strategy::Redeploy, Some(redeploy)) => {
            let image = match s.target.image().get(&redeploy.image).await? {
                Some(i) => Named::One(i),
                None => in_project_view(s.target.image().images_named(&redeploy.image).await?, |i| {
                    project.is_none_or(|p| i.visible_to(p))
                }),
            };
            match image {
                Named::One(i) if ImageStatus::from(i.status.as_str()) == ImageStatus::Active => Some(i.id),
                Named::Several(ids) => {
                    return Err(Refusal {
                        reason: "ImageAmbiguous",
                        message: format!(
                            "spec.redeploy.image: several images the server's project sees are named {:?} in the target ({}): name one by its ID",
                            redeploy.image,
                            ids.join(", ")
                        ),
                    }
                    .into());
                }
                _ => {
                    return Err(Refusal {
                        reason: "ImageNotFound",
                        message: format!(
                            "spec.redeploy.image: no active image {:?} in the target cloud",
                            redeploy.image
                        ),
                    }
                    .into());
                }
            }
        }
        _ => None,
    };
    let server_group_id = match &record.server_group {
        None => None,
        Some(group) if s.source.endpoint(Service::Compute).await? == s.target.endpoint(Service::Compute).await? => {
            Some(group.id.clone())
        }
        Some(group) => Some(target_server_group(s, group, project).await?),
    };
    // The security groups' IDs are the planner's to decide, from the target view.
    let security_group_ids = Vec::new();
    Ok((
        BootBase { flavor_id: flavor.id.clone(), image_id, networks, security_group_ids, server_group_id },
        flavor,
        subnets,
    ))
}

/// The server group of the source's group's name and policy in another Nova, in the server's
/// project. Not made by osmo (yet): a group it would make is one more thing to undo.
async fn target_server_group(
    s: &Sessions,
    group: &crate::api::RecordedServerGroup,
    project: Option<&str>,
) -> Result<String, Unanswered> {
    let found: Vec<String> = s
        .target
        .compute()
        .server_groups()
        .await?
        .into_iter()
        .filter(|g| g.name == group.name && g.policy() == group.policy)
        .filter(|g| project.is_none_or(|p| g.project_id.as_deref().is_none_or(|owner| owner == p)))
        .map(|g| g.id)
        .collect();
    match found.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(Refusal {
            reason: "ServerGroupNotFound",
            message: format!(
                "the source is a member of server group {:?} ({}), and the target's Nova has no group of that name \
                 and policy in the server's project: create it there first",
                group.name, group.policy
            ),
        }
        .into()),
        many => Err(Refusal {
            reason: "ServerGroupAmbiguous",
            message: format!(
                "the target's Nova has {} server groups named {:?} with policy {} in the server's project ({}): \
                 delete all but one",
                many.len(),
                group.name,
                group.policy,
                many.join(", ")
            ),
        }
        .into()),
    }
}

/// What a name resolves to among what a project may use.
#[derive(Debug, PartialEq)]
enum Named<T> {
    None,
    One(T),
    /// Several: their IDs.
    Several(Vec<String>),
}

/// The one of `candidates` (all of one name, as an admin may see them) that `usable` keeps.
fn in_project_view<T: HasId>(candidates: Vec<T>, usable: impl Fn(&T) -> bool) -> Named<T> {
    let mut usable: Vec<T> = candidates.into_iter().filter(|c| usable(c)).collect();
    match usable.len() {
        0 => Named::None,
        1 => Named::One(usable.remove(0)),
        _ => Named::Several(usable.iter().map(|c| c.id().to_string()).collect()),
    }
}

trait HasId {
    fn id(&self) -> &str;
}

impl HasId for crate::openstack::network::Network {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for Image {
    fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openstack::network::Network;

    fn network(id: &str, project: &str, shared: bool) -> Network {
        serde_json::from_value(
            serde_json::json!({"id": id, "name": "private", "project_id": project, "shared": shared}),
        )
        .unwrap()
    }

    #[test]
    fn a_name_resolves_among_what_the_servers_project_may_use_and_refuses_ambiguity() {
        let usable_by_p1 = |n: &Network| n.usable_by("p1");
        // Another project's network of that name is not this server's to use.
        let found = in_project_view(vec![network("other", "p2", false), network("own", "p1", false)], usable_by_p1);
        assert_eq!(found, Named::One(network("own", "p1", false)));
        assert_eq!(in_project_view(vec![network("other", "p2", false)], usable_by_p1), Named::None);
        // Its own and a shared one of the same name: which one is not guessed.
        let both = vec![network("own", "p1", false), network("shared", "p2", true)];
        assert_eq!(in_project_view(both, usable_by_p1), Named::Several(vec!["own".into(), "shared".into()]));
    }

    #[test]
    fn an_image_is_seen_by_its_owner_and_everyone_when_public_or_community() {
        let image = |owner: &str, visibility: &str| -> Image {
            serde_json::from_value(
                serde_json::json!({"id": "i", "status": "active", "owner": owner, "visibility": visibility}),
            )
            .unwrap()
        };
        assert!(image("p1", "private").visible_to("p1"));
        assert!(!image("p2", "private").visible_to("p1"));
        assert!(!image("p2", "shared").visible_to("p1"));
        assert!(image("p2", "public").visible_to("p1") && image("p2", "community").visible_to("p1"));
    }
}
