//! Reads the host from OpenStack and the drain's migrations from Kubernetes. Reads only.

use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};

use crate::api::{
    ComputeNodeDrain, ConditionStatus, InstanceMigration, InstanceMigrationStatus, MigrationPhase, ServiceStatus,
    condition_type,
};
use crate::openstack::Session;
use crate::openstack::compute::ComputeService;
use crate::runtime::ReconcileError;
use crate::runtime::conditions;

use super::Context;
use super::planner::{DRAIN_UID_LABEL, HostServer, KnownMigration, Observed};

/// What the planner sees, plus the service record the executor changes.
pub struct Observation {
    pub planner: Observed,
    pub service: Option<ComputeService>,
}

pub async fn observe(
    ctx: &Context,
    session: &Session,
    drain: &ComputeNodeDrain,
) -> Result<Observation, ReconcileError> {
    let host = &drain.spec.host;
    let compute = session.compute();
    let listing = compute.servers_on_host(host).await?;
    // Read after the listing: a cell that did not answer it is then seen still down (Nova
    // waits for a cell up to its timeout before it skips it).
    let service = compute.compute_services(Some(host)).await?.into_iter().find(|s| s.host == *host);
    let servers: Vec<HostServer> = listing
        .servers
        .into_iter()
        .map(|s| HostServer {
            boots_from_volume: s.image_id.is_none(),
            id: s.id,
            name: s.name,
            project_id: s.tenant_id,
            host: s.host,
            metadata: s.metadata,
        })
        .collect();
    Ok(Observation {
        planner: Observed {
            service: service.as_ref().map(service_status),
            migrations: migrations(ctx, drain, &servers).await?,
            servers,
            partial: listing.partial,
            rival: None,
        },
        service: service.filter(|s| !s.cell_down()),
    })
}

/// The drain's own InstanceMigrations, read from the API server rather than a cache so that
/// one just created is always counted against `maxConcurrent`; and the others of its
/// namespace that name a server of the host (from the migration controller's cache).
async fn migrations(
    ctx: &Context,
    drain: &ComputeNodeDrain,
    servers: &[HostServer],
) -> Result<Vec<KnownMigration>, kube::Error> {
    let namespace = drain.namespace().unwrap_or_default();
    let uid = drain.uid().unwrap_or_default();
    let api: Api<InstanceMigration> = Api::namespaced(ctx.shared.client.clone(), &namespace);
    let known = |im: &InstanceMigration, owned| KnownMigration {
        name: im.name_any(),
        uid: im.uid().unwrap_or_default(),
        server: im.spec.server.clone(),
        phase: im.status.as_ref().map(|s| s.phase),
        past_point_of_no_return: im.status.as_ref().is_some_and(|s| s.recovery.is_some()),
        owned,
        replacement: succeeded(im).and_then(|s| Some(s.target.as_ref()?.server_id.clone())),
        succeeded_at: succeeded(im).and_then(|s| {
            let ready = conditions::get(&s.conditions, condition_type::READY)?;
            (ready.status == ConditionStatus::True).then(|| ready.last_transition_time.parse().ok())?
        }),
    };
    let labelled = api.list(&ListParams::default().labels(&format!("{DRAIN_UID_LABEL}={uid}"))).await?;
    // Labelled and controlled by the drain: made by it (a label alone can be copied).
    let made_by_drain = |im: &InstanceMigration| {
        im.owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == uid && o.kind == ComputeNodeDrain::kind(&()))
    };
    let mut found: Vec<KnownMigration> =
        labelled.items.iter().filter(|im| made_by_drain(im)).map(|im| known(im, true)).collect();
    for im in ctx.migrations.state() {
        let names_host_server = servers.iter().any(|s| s.id == im.spec.server || s.name == im.spec.server);
        if im.namespace().as_deref() == Some(namespace.as_str())
            && names_host_server
            && !found.iter().any(|k| k.name == im.name_any())
        {
            let mut other = known(&im, false);
            // A migration naming the server by name is about the same server.
            if let Some(s) = servers.iter().find(|s| s.name == other.server) {
                other.server = s.id.clone();
            }
            found.push(other);
        }
    }
    Ok(found)
}

/// The status of a migration that succeeded.
fn succeeded(im: &InstanceMigration) -> Option<&InstanceMigrationStatus> {
    im.status.as_ref().filter(|s| s.phase == MigrationPhase::Succeeded)
}

fn service_status(service: &ComputeService) -> ServiceStatus {
    ServiceStatus {
        id: service.id.clone(),
        status: service.status.clone(),
        state: service.state.clone(),
        disabled_reason: service.disabled_reason.clone().filter(|r| !r.is_empty()),
        forced_down: service.forced_down.unwrap_or(false),
    }
}
