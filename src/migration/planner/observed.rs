//! What the planner is shown of OpenStack: the source, the snapshot, the replacement and what
//! else the current phase needs, in osmo's own terms.

use std::collections::{BTreeMap, BTreeSet};

use super::NovaNetworkState;
use crate::api::{BootBase, RecordedServer};
use crate::openstack::compute::UserData;
use crate::openstack::session::Microversion;
use crate::openstack::states::{self, ImageStatus, ServerStatus, ServiceState, ServiceStatus, VolumeStatus};
use crate::runtime::conditions::Refusal;

/// A server as OpenStack shows it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerState {
    pub id: String,
    pub name: String,
    pub project_id: Option<String>,
    pub status: ServerStatus,
    pub task_state: Option<String>,
    pub host: Option<String>,
    pub availability_zone: Option<String>,
    pub fault: Option<String>,
    /// Locked in Nova against changes by non-admins.
    pub locked: bool,
}

impl ServerState {
    /// In `status`, with no task under way.
    pub(super) fn settled(&self, status: ServerStatus) -> bool {
        self.status == status && self.task_state.is_none()
    }

    pub(super) fn is_deleting(&self) -> bool {
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

/// A recorded volume as Cinder shows it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeState {
    pub id: String,
    pub status: VolumeStatus,
    /// The servers Cinder has it attached to (or being attached to).
    pub attached_to: Vec<String>,
}

/// A volume attachment of a server, as Nova shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachmentState {
    pub volume_id: String,
    pub device: Option<String>,
    /// Whether deleting the server deletes the volume; `None` where Nova does not show it
    /// (before microversion 2.79).
    pub delete_on_termination: Option<bool>,
}

/// A server as found by its name or ID, before it is recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundServer {
    pub id: String,
    pub project_id: Option<String>,
}

/// What OpenStack shows now, as far as the current phase needs it.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Recording: the server `spec.server` names, once found (even if it is then refused): the
    /// controller claims it before anything else is decided, so that a server another migration
    /// is moving meets that migration's claim whatever state the move has put it in.
    pub found: Option<FoundServer>,
    /// Recording: the source, fully recorded, or why it cannot be migrated.
    pub recording: Option<Result<RecordedServer, Refusal>>,
    /// Recording: the server's project, when osmo must act in it with its credentials scoped
    /// to it (they are scoped to another).
    pub acting_project: Option<String>,
    /// Recording: the source's user data, kept in a Secret before the record is written.
    pub user_data: Option<UserData>,
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
    /// Ports osmo made for the replacement, by the source port they stand for.
    pub created_ports: BTreeMap<String, MadePort>,
    /// The replacement's ports as (port id, network id), in Neutron's order.
    pub target_ports: Vec<(String, String)>,
    /// Where each recorded floating IP points now (its port), by floating IP id.
    pub floating_ips: BTreeMap<String, Option<String>>,
    /// The target's nova-network floating IPs (address mode `NovaNetwork`).
    pub nova_network: Option<NovaNetworkState>,
    /// Late twins of the snapshot or the replacement (looked for once a create was repeated).
    pub twins: Vec<Twin>,
    /// The recorded volumes that Cinder shows, by ID (one missing is gone), where the phase
    /// needs them (`None`: not looked at).
    pub volumes: Option<BTreeMap<String, VolumeState>>,
    /// The source's volume attachments, where the phase needs them (`None`: not looked at).
    pub source_attachments: Option<Vec<AttachmentState>>,
    /// The replacement's volume attachments, where the phase needs them.
    pub target_attachments: Option<Vec<AttachmentState>>,
}

/// A port osmo made for the replacement, as Neutron shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MadePort {
    pub id: String,
    /// Its description is still osmo's marker, by which it is found until the status holds its
    /// ID; then it gets the source port's description (and tags).
    pub marked: bool,
}

/// What the target's Neutron shows the acting credentials of what the source's ports carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSupport {
    /// The aliases of the loaded extensions (read only when a port needs one).
    pub extensions: BTreeSet<String>,
    /// The ports' QoS policies that the target shows.
    pub qos_policies: BTreeSet<String>,
    /// The ports' security groups (by ID) that the target shows.
    pub security_groups: BTreeSet<String>,
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
    /// The replacement's flavor's virtual CPUs.
    pub flavor_vcpus: u64,
    pub flavor_ephemeral_gb: u64,
    pub flavor_swap_mb: u64,
    /// `None` when Nova does not show them.
    pub flavor_extra_specs: Option<BTreeMap<String, String>>,
    /// The microversion osmo speaks with the target's Nova.
    pub microversion: Option<Microversion>,
    /// The nova-compute services where `spec.target` places the replacement.
    pub services: TargetServices,
    /// The roles of the acting credentials in the target, in lower case (as policies compare
    /// them).
    pub roles: BTreeSet<String>,
    /// The acting project's quota and usage in the target's Nova.
    pub quota: Quota,
    /// The IDs of the security groups of the source's groups' names that the target's Neutron
    /// shows the acting project, as Nova looks them up to boot: the project's own and, for a
    /// name it lacks, those shared with it. `None` for nova-network, where Nova resolves names,
    /// unique in a project.
    pub security_groups: Option<BTreeMap<String, Vec<String>>>,
    /// Whether the target reads the source's Glance; `None` when both are one cloud.
    pub image_reach: Option<ImageReach>,
    /// The network endpoints of the source's and the target's catalogs, when the source has
    /// floating IPs and the two are different clouds: an address stays in its Neutron.
    pub network_endpoints: Option<(String, String)>,
    /// What the target's Neutron has of what the source's ports carry; `None` when both are
    /// one cloud (its Neutron made the source's ports).
    pub port_support: Option<PortSupport>,
    /// The subnets of each target network that stands for a source's network (mapped, or in
    /// another cloud), by the source's network ID.
    pub network_subnets: BTreeMap<String, Vec<String>>,
    /// The microversion osmo speaks with the source's Nova (which makes the source keep its
    /// volumes), when the source has volumes.
    pub source_microversion: Option<Microversion>,
    /// The block-storage endpoints of the source's and the target's catalogs (`None` where the
    /// target's has none), when the source has volumes and the two are different clouds: a
    /// volume moves only within its Cinder.
    pub volume_endpoints: Option<(String, Option<String>)>,
}

/// The target's nova-compute services in the zone or on the host `spec.target` names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TargetServices {
    /// `spec.target` names neither a zone nor a host: the scheduler picks any.
    #[default]
    NotNamed,
    /// The acting credentials may not list them (Nova's default policy: admin only).
    NotListable,
    /// The services of the named host, or of every host when only a zone is named.
    Listed(Vec<ComputeServiceView>),
}

/// A nova-compute service of the target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComputeServiceView {
    pub host: String,
    pub zone: Option<String>,
    pub status: ServiceStatus,
    pub state: ServiceState,
}

impl ComputeServiceView {
    /// Enabled and up: the scheduler places servers here.
    pub fn accepts_servers(&self) -> bool {
        self.status == ServiceStatus::Enabled && self.state == ServiceState::Up
    }
}

/// One quota of a project: its maximum (-1: unlimited) and what is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaUse {
    pub max: i64,
    pub used: i64,
}

impl Default for QuotaUse {
    fn default() -> Self {
        QuotaUse { max: -1, used: 0 }
    }
}

impl QuotaUse {
    /// Whether `more` fits below the maximum.
    pub fn holds(&self, more: u64) -> bool {
        self.max < 0 || self.used.saturating_add(i64::try_from(more).unwrap_or(i64::MAX)) <= self.max
    }
}

/// A project's quota in Nova, as far as one more server needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub instances: QuotaUse,
    pub cores: QuotaUse,
    pub ram_mb: QuotaUse,
}

/// Where a snapshot of the source would live, against what the target reads: the image
/// endpoints of both clouds' catalogs, and whether each shows the source's image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageReach {
    pub source_endpoint: String,
    pub target_endpoint: String,
    pub image_id: String,
    pub seen_from_source: bool,
    pub seen_from_target: bool,
}

/// A second snapshot or replacement, made by a create that landed after it was sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Twin {
    Server(String),
    Image(String),
}

impl Twin {
    pub(super) fn id(&self) -> &str {
        match self {
            Twin::Server(id) | Twin::Image(id) => id,
        }
    }
}
