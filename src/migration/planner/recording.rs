//! Recording: the source is read and recorded, and whatever would make the move fail once the
//! source is deleted is refused here, before anything changes.

use super::volumes::delete_on_termination_attribute;
use super::{ComputeServiceView, Observed, Planner, ServerState, TargetServices, TargetView};
use crate::api::{MigrationPhase, NotKept, RecordedServer, Strategy};
use crate::openstack::compute::{
    BOOT_WITH_DEVICE_TAGS, BOOT_WITH_HOSTNAME, BOOT_WITH_TAGS, DESCRIPTION, UPDATE_DELETE_ON_TERMINATION,
};
use crate::openstack::states::ServerStatus;
use crate::runtime::conditions::Refusal;

impl Planner<'_> {
    pub(super) fn recording(&mut self, observed: &Observed) {
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
        let mut base = match &observed.boot {
            None => return self.poll(),
            Some(Err(refusal)) => return self.refuse(refusal),
            Some(Ok(base)) => base.clone(),
        };
        let Some(view) = &observed.target_view else { return self.poll() };
        if let Some(refusal) = self.boot_refusal(record, view) {
            return self.refuse(&refusal);
        }
        base.security_group_ids = match security_group_ids(record, view) {
            Ok(ids) => ids,
            Err(refusal) => return self.refuse(&refusal),
        };
        let not_kept = match not_kept(record, view) {
            Ok(not_kept) => not_kept,
            Err(refusal) => return self.refuse(&refusal),
        };
        let loss = self.ephemeral_data_loss(record);
        if let Some((reason, loss)) = &loss
            && !self.input.spec.options.accept_ephemeral_data_loss
        {
            let message = format!("{loss}. Set spec.acceptEphemeralDataLoss to migrate it without that data.");
            return self.refuse(&Refusal { reason, message });
        }
        self.status.accepted_data_loss = loss.map(|(_, loss)| format!("{loss} (spec.acceptEphemeralDataLoss)."));
        let mut not_kept = not_kept;
        if record.user_data_unreadable {
            if !self.input.spec.options.accept_unreadable_user_data {
                return self.refuse(&Refusal {
                    reason: "UserDataUnknown",
                    message: format!(
                        "whether server {} has user data cannot be read (Nova shows it to admins only, by its \
                         default policy): the replacement would boot without it. Migrate with admin credentials, \
                         or set spec.acceptUnreadableUserData.",
                        record.id
                    ),
                });
            }
            not_kept.push(NotKept {
                attribute: "user_data".into(),
                reason: "not readable with these credentials (Nova shows it to admins only); the replacement \
                         boots without it (spec.acceptUnreadableUserData)"
                    .into(),
            });
        }
        self.status.not_kept = not_kept;
        self.status.source = Some(Box::new(record.clone()));
        self.status.acting_project_id = observed.acting_project.clone();
        self.status.boot_base = Some(Box::new(base));
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

    /// Why a volume of the source cannot move to the replacement, if one cannot: it leaves the
    /// source only when the source is deleted, so whatever would keep it from attaching to the
    /// replacement is refused now.
    fn unmovable_volume(&self, record: &RecordedServer, view: &TargetView) -> Option<Refusal> {
        let refuse = |reason, message| Some(Refusal { reason, message });
        // A redeployed server has a fresh root disk: its source's root volume does not move.
        let redeploy = self.strategy() == Strategy::Redeploy;
        let moving: Vec<_> = record.volumes.iter().filter(|v| !(redeploy && v.root)).collect();
        let first = moving.first()?;
        if let Some((source, target)) = &view.volume_endpoints
            && target.as_ref() != Some(source)
        {
            return refuse(
                "VolumeServiceDiffers",
                format!(
                    "volume {} is in the Cinder at {source}, and the target's catalog has {}: a volume moves \
                     without a copy only within one Cinder",
                    first.id,
                    target.as_deref().unwrap_or("no block-storage service")
                ),
            );
        }
        // A redeployed source has its data volumes detached before it is deleted.
        let source_below = view.source_microversion.is_none_or(|v| v < UPDATE_DELETE_ON_TERMINATION);
        if let Some(volume) = moving.iter().find(|v| v.delete_on_termination).filter(|_| source_below && !redeploy) {
            return refuse(
                "VolumeWouldBeDeleted",
                format!(
                    "Nova deletes volume {} with the source, and the source's Nova changes that only from \
                     microversion {UPDATE_DELETE_ON_TERMINATION}",
                    volume.id
                ),
            );
        }
        let target = &self.input.spec.options.target;
        if target.cross_az_attach == Some(false) {
            let zone = target.availability_zone.as_deref();
            if let Some(volume) = moving.iter().find(|v| zone.is_none() || v.availability_zone.as_deref() != zone) {
                return refuse(
                    "VolumeZoneMismatch",
                    format!(
                        "volume {} is in Cinder's zone {:?}, and the target's Nova attaches only volumes of the \
                         server's zone (spec.target.crossAZAttach is false), which is {:?}",
                        volume.id,
                        volume.availability_zone.as_deref().unwrap_or("?"),
                        zone.unwrap_or("not named in spec.target.availabilityZone")
                    ),
                );
            }
        }
        None
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
        // A server booted from a volume boots from it again: no snapshot, whatever the flavor's disk.
        let from_snapshot = self.strategy() == Strategy::Snapshot && record.root_volume().is_none();
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
        self.unmovable_volume(record, view)
            .or_else(|| self.flavor_differs(record, view))
            .or_else(|| self.server_group_unplaceable(record))
            .or_else(|| self.not_allowed(record, view))
            .or_else(|| self.unavailable_place(view))
            .or_else(|| quota_exceeded(view))
            .or_else(|| self.unreachable_image(view))
            .or_else(|| unreachable_floating_ips(record, view))
            .or_else(|| self.unreproducible_port(record, view))
    }

    /// The target's flavor of the source's flavor's name, when it is not the same flavor (a
    /// flavor mapped in `spec.mappings.flavors` is the user's choice, and not compared).
    fn flavor_differs(&self, record: &RecordedServer, view: &TargetView) -> Option<Refusal> {
        let flavors = &self.input.spec.options.mappings.flavors;
        let mapped = [&record.flavor_name, &record.flavor_id].into_iter().flatten().any(|f| flavors.contains_key(f));
        let size = record.flavor_size.as_ref()?;
        if mapped {
            return None;
        }
        let mut differences = Vec::new();
        let mut compare = |what: &str, source: Option<u64>, target: u64| {
            if let Some(source) = source.filter(|source| *source != target) {
                differences.push(format!("{what} {source} in the source, {target} in the target"));
            }
        };
        compare("vCPUs", size.vcpus.map(u64::from), view.flavor_vcpus);
        compare("RAM (MiB)", Some(size.ram_mb), view.flavor_ram_mb);
        compare("root disk (GiB)", Some(size.disk_gb), view.flavor_disk_gb);
        compare("ephemeral disk (GiB)", Some(size.ephemeral_gb), view.flavor_ephemeral_gb);
        compare("swap (MiB)", size.swap_mb, view.flavor_swap_mb);
        if let (Some(source), Some(target)) = (&size.extra_specs, &view.flavor_extra_specs)
            && source != target
        {
            let keys: std::collections::BTreeSet<&String> = source
                .iter()
                .filter(|(k, v)| target.get(*k) != Some(v))
                .map(|(k, _)| k)
                .chain(target.keys().filter(|k| !source.contains_key(*k)))
                .collect();
            let keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
            differences.push(format!("extra specs differ ({})", keys.join(", ")));
        }
        if differences.is_empty() {
            return None;
        }
        let flavor = record.flavor_name.as_ref().or(record.flavor_id.as_ref()).cloned().unwrap_or_default();
        Some(Refusal {
            reason: "FlavorDiffers",
            message: format!(
                "the target's flavor {flavor:?} is not the source's: {}. Map the flavor explicitly in \
                 spec.mappings.flavors to accept the target's",
                differences.join("; ")
            ),
        })
    }

    /// A member of an affinity group whose other members (or, in a redeploy, the source
    /// itself) stay behind: Nova places the members of such a group on one host, so the
    /// replacement would boot nowhere in the target.
    fn server_group_unplaceable(&self, record: &RecordedServer) -> Option<Refusal> {
        let group = record.server_group.as_ref().filter(|g| g.policy == "affinity")?;
        let redeploy = self.strategy() == Strategy::Redeploy;
        if group.other_members.is_empty() && !redeploy {
            return None;
        }
        let behind = if redeploy && group.other_members.is_empty() {
            "the source itself, which runs until the replacement is verified".to_string()
        } else {
            format!("its other members ({})", group.other_members.join(", "))
        };
        Some(Refusal {
            reason: "ServerGroupAffinity",
            message: format!(
                "server {} is a member of server group {:?} with policy affinity: Nova would boot the replacement \
                 only on the host of {behind}, not in the target. Move the group's other members first, or take \
                 the server out of the group",
                record.id, group.name
            ),
        })
    }

    /// A call the boot needs that the acting credentials' role may not make, by OpenStack's
    /// default policies (admin only): the check is by role, since the policy itself cannot be
    /// read; a cloud whose policy lets another role make the call needs admin credentials here.
    fn not_allowed(&self, record: &RecordedServer, view: &TargetView) -> Option<Refusal> {
        let options = &self.input.spec.options;
        let recreates_ports =
            self.strategy() == Strategy::Snapshot && options.addresses.preserve_fixed_ips && !record.ports.is_empty();
        let call = match (&options.target.host, recreates_ports) {
            (Some(host), _) => format!("booting on a named host (spec.target.host {host:?}, Nova's policy)"),
            (None, true) => "creating a port with the source's MAC address (spec.addresses.preserveFixedIPs, \
                             Neutron's policy create_port:mac_address)"
                .to_string(),
            (None, false) => return None,
        };
        if view.roles.contains(ADMIN_ROLE) {
            return None;
        }
        let roles = view.roles.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        Some(Refusal {
            reason: "NotAllowed",
            message: format!(
                "the move needs {call}, which OpenStack allows the admin role only by default, and the acting \
                 credentials have roles [{roles}] in the target (checked by role, not by the cloud's policy \
                 files): migrate with admin credentials, or without that option."
            ),
        })
    }

    /// The named zone or host, when no nova-compute service there takes servers (enabled and
    /// up): the boot would end in ERROR with the source deleted.
    fn unavailable_place(&self, view: &TargetView) -> Option<Refusal> {
        let target = &self.input.spec.options.target;
        let services = match &view.services {
            TargetServices::NotNamed => return None,
            TargetServices::Listed(services) => services,
            // Booting on a named host needs admin anyway, and it cannot be checked: refused.
            TargetServices::NotListable if target.host.is_some() => {
                return Some(Refusal {
                    reason: "NotAllowed",
                    message: format!(
                        "the acting credentials may not list the target's compute services, so whether host {:?} \
                         takes servers cannot be checked: migrate with admin credentials.",
                        target.host.as_deref().unwrap_or_default()
                    ),
                });
            }
            // A zone takes any user's servers: not being able to check it (observe logs it) is
            // no reason to refuse.
            TargetServices::NotListable => return None,
        };
        let zone = target.availability_zone.as_deref();
        let there: Vec<&ComputeServiceView> = services
            .iter()
            .filter(|s| target.host.as_ref().is_none_or(|host| s.host == *host))
            .filter(|s| zone.is_none_or(|zone| s.zone.as_deref() == Some(zone)))
            .collect();
        if there.iter().any(|s| s.accepts_servers()) {
            return None;
        }
        // What is there: the host in whatever zone, or the zone's hosts.
        let seen = match &target.host {
            Some(host) => services.iter().filter(|s| s.host == *host).collect(),
            None => there,
        };
        let found: Vec<String> = seen
            .iter()
            .map(|s| {
                format!("{} in zone {:?}: {}, {}", s.host, s.zone.as_deref().unwrap_or_default(), s.status, s.state)
            })
            .collect();
        let found = if found.is_empty() { "no nova-compute service".to_string() } else { found.join("; ") };
        let (reason, field, place, fix) = match (&target.host, zone) {
            (Some(host), Some(zone)) => {
                ("TargetHostUnavailable", "spec.target.host", format!("host {host:?} in zone {zone:?}"), "host")
            }
            (Some(host), None) => ("TargetHostUnavailable", "spec.target.host", format!("host {host:?}"), "host"),
            (None, zone) => (
                "TargetZoneUnavailable",
                "spec.target.availabilityZone",
                format!("zone {:?}", zone.unwrap_or_default()),
                "zone",
            ),
        };
        Some(Refusal {
            reason,
            message: format!(
                "{field}: no nova-compute service of {place} takes servers (enabled and up; found {found}): Nova \
                 would not boot the replacement there. Enable its nova-compute service, or name another {fix}."
            ),
        })
    }

    /// A snapshot made in a Glance the target does not read (another cloud or region): Nova
    /// would not find it once the source is deleted.
    fn unreachable_image(&self, view: &TargetView) -> Option<Refusal> {
        let reach = view.image_reach.as_ref()?;
        let hidden = reach.seen_from_source && !reach.seen_from_target;
        let another_glance = reach.source_endpoint != reach.target_endpoint;
        if self.strategy() != Strategy::Snapshot || !(hidden || another_glance) {
            return None;
        }
        let why = if another_glance {
            format!(
                "the target's image endpoint is {}, the source's {}: the snapshot, made in the source's Glance, \
                 would not be found by the target's Nova",
                reach.target_endpoint, reach.source_endpoint
            )
        } else {
            format!("the source's image {} is not visible through the target's credentials", reach.image_id)
        };
        Some(Refusal {
            reason: "ImageNotReachable",
            message: format!(
                "{why}. Migrate between clouds that share one Glance, or use strategy Redeploy with an image of \
                 the target."
            ),
        })
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
}

/// What the target's Nova cannot take of the source at boot: refused where the loss matters
/// (a description or tags that someone set), listed where it is harmless (a hostname, which
/// Nova then derives from the name, as it did for the source unless it was set at its boot).
fn not_kept(record: &RecordedServer, view: &TargetView) -> Result<Vec<NotKept>, Refusal> {
    let below = |since| view.microversion.is_none_or(|v| v < since);
    let lost = [
        ("description", record.description.as_deref().is_some_and(|d| !d.is_empty()), DESCRIPTION),
        ("tags", !record.tags.is_empty(), BOOT_WITH_TAGS),
        ("volume device tags", record.volumes.iter().any(|v| v.tag.is_some()), BOOT_WITH_DEVICE_TAGS),
    ];
    if let Some((attribute, _, since)) = lost.into_iter().find(|(_, set, since)| *set && below(*since)) {
        return Err(Refusal {
            reason: "AttributeNotKept",
            message: format!(
                "the source has {attribute}, and the target's Nova boots a server with its {attribute} only from \
                 microversion {since} (osmo speaks {} with it): the replacement would lack them",
                view.microversion.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            ),
        });
    }
    let mut not_kept = Vec::new();
    if record.hostname.is_some() && below(BOOT_WITH_HOSTNAME) {
        not_kept.push(NotKept {
            attribute: "hostname".into(),
            reason: format!(
                "the target's Nova sets a hostname at boot only from microversion {BOOT_WITH_HOSTNAME}: the \
                 replacement's is derived from its name"
            ),
        });
    }
    if below(UPDATE_DELETE_ON_TERMINATION) {
        not_kept.extend(record.volumes.iter().filter(|v| v.delete_on_termination).map(|v| NotKept {
            attribute: delete_on_termination_attribute(&v.id),
            reason: format!(
                "the target's Nova changes it only from microversion {UPDATE_DELETE_ON_TERMINATION}: the volume stays \
                 when the replacement is deleted"
            ),
        }));
    }
    Ok(not_kept)
}

/// The role OpenStack's default policies reserve the calls above to.
const ADMIN_ROLE: &str = "admin";

/// Which quota of the acting project in the target cannot hold one more server of the
/// replacement's flavor. In one Nova, the source counts until it is deleted: the quota must
/// hold both for a moment (a redeploy boots before it deletes anyway).
fn quota_exceeded(view: &TargetView) -> Option<Refusal> {
    let quota = &view.quota;
    let needs = [
        ("instances (maxTotalInstances)", quota.instances, 1, ""),
        ("cores (maxTotalCores)", quota.cores, view.flavor_vcpus, ""),
        ("RAM (maxTotalRAMSize)", quota.ram_mb, view.flavor_ram_mb, " MiB"),
    ];
    let (name, usage, more, unit) = needs.into_iter().find(|(_, usage, more, _)| !usage.holds(*more))?;
    Some(Refusal {
        reason: "QuotaExceeded",
        message: format!(
            "the acting project's quota of {name} in the target is {}{unit} with {}{unit} used, and the \
             replacement needs {more}{unit} more (in one Nova, the source counts until it is deleted): raise the \
             quota, or free some.",
            usage.max, usage.used
        ),
    })
}

/// The ID of each of the source's security groups in the target, as Nova would resolve its
/// name to boot; or the refusal of a name that names no group, or more than one.
fn security_group_ids(record: &RecordedServer, view: &TargetView) -> Result<Vec<String>, Refusal> {
    let Some(groups) = &view.security_groups else { return Ok(Vec::new()) };
    let mut ids = Vec::new();
    for name in &record.security_groups {
        match groups.get(name).map(Vec::as_slice).unwrap_or_default() {
            [id] => ids.push(id.clone()),
            [] => {
                return Err(Refusal {
                    reason: "SecurityGroupNotFound",
                    message: format!(
                        "the source's security group {name:?} does not exist in the target project (nor shared \
                         with it): create it there first."
                    ),
                });
            }
            many => {
                return Err(Refusal {
                    reason: "SecurityGroupAmbiguous",
                    message: format!(
                        "{} security groups of the target project are named {name:?} ({}): rename all but one, \
                         so that the replacement gets the source's.",
                        many.len(),
                        many.join(", ")
                    ),
                });
            }
        }
    }
    Ok(ids)
}

/// Floating IPs of a Neutron the target's is not: an address belongs to its Neutron, and the
/// replacement could not have it.
fn unreachable_floating_ips(record: &RecordedServer, view: &TargetView) -> Option<Refusal> {
    let (source, target) = view.network_endpoints.as_ref()?;
    if source == target {
        return None;
    }
    let addresses: Vec<&str> = record.ports.iter().flat_map(|p| &p.floating_ips).map(|f| f.address.as_str()).collect();
    Some(Refusal {
        reason: "FloatingIpNotReachable",
        message: format!(
            "server {} has floating IPs {} in the Neutron at {source}, and the target's network endpoint is {target}: \
             an address cannot follow the server into another Neutron. Migrate between clouds that share one \
             Neutron, or release the floating IPs first",
            record.id,
            addresses.join(", ")
        ),
    })
}
