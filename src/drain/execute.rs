//! Carries out the planner's changes: the service record under the cloud's concurrency
//! limit, and the drain's InstanceMigrations in Kubernetes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use crate::api::{ComputeNodeDrain, InstanceMigration, InstanceMigrationSpec};
use crate::openstack::Session;
use crate::openstack::compute::ComputeService;
use crate::runtime::ReconcileError;

use super::Context;
use super::planner::{Action, DRAIN_UID_LABEL};

pub async fn execute(
    ctx: &Context,
    session: &Session,
    drain: &ComputeNodeDrain,
    service: Option<&ComputeService>,
    action: Action,
) -> Result<(), ReconcileError> {
    tracing::info!(drain = %drain.name_any(), ?action, "acting");
    match action {
        Action::CreateMigration { name, server_id } => return create_migration(ctx, drain, name, server_id).await,
        Action::DeleteMigration { name, uid } => return delete_migration(ctx, drain, name, uid).await,
        _ => {}
    }
    let Some(service) = service else { return Ok(()) };
    let _permit = ctx.shared.clouds.change_permit(session).await;
    let compute = session.compute();
    match action {
        Action::DisableService => compute.disable_service(service, &drain.spec.disable_reason).await.map(drop),
        Action::EnableService => compute.enable_service(service).await.map(drop),
        Action::ForceDownService => compute.force_down_service(service, true).await.map(drop),
        Action::DeleteService => compute.delete_service(service).await,
        Action::CreateMigration { .. } | Action::DeleteMigration { .. } => unreachable!("handled above"),
    }?;
    Ok(())
}

/// Creates the InstanceMigration of one server, owned by the drain (so that deleting the drain
/// collects it) and labelled with its UID. An existing one of that name is the one an earlier
/// attempt made.
async fn create_migration(
    ctx: &Context,
    drain: &ComputeNodeDrain,
    name: String,
    server_id: String,
) -> Result<(), ReconcileError> {
    let namespace = drain.namespace().unwrap_or_default();
    let template = drain.spec.migration_template.clone().expect("validated: Migrate has a template");
    let owner = OwnerReference {
        api_version: ComputeNodeDrain::api_version(&()).into_owned(),
        kind: ComputeNodeDrain::kind(&()).into_owned(),
        name: drain.name_any(),
        uid: drain.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let migration = InstanceMigration {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some([(DRAIN_UID_LABEL.to_string(), drain.uid().unwrap_or_default())].into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: InstanceMigrationSpec { server: server_id.clone(), source: drain.spec.cloud.clone(), options: template },
        status: None,
    };
    let api: Api<InstanceMigration> = Api::namespaced(ctx.shared.client.clone(), &namespace);
    match api.create(&PostParams::default(), &migration).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    ctx.shared.metrics.kubernetes_write("InstanceMigration");
    ctx.shared.metrics.drain_migration_created();
    let event = Event {
        type_: EventType::Normal,
        reason: "MigrationCreated".into(),
        note: Some(format!("InstanceMigration {name} moves server {server_id}")),
        action: "Migrate".into(),
        secondary: None,
    };
    ctx.shared.events.publish(event, drain.object_ref(&())).await;
    Ok(())
}

/// Deletes one of the drain's succeeded InstanceMigrations, that very one (by UID): one of the
/// same name made since is not it.
async fn delete_migration(
    ctx: &Context,
    drain: &ComputeNodeDrain,
    name: String,
    uid: String,
) -> Result<(), ReconcileError> {
    let api: Api<InstanceMigration> =
        Api::namespaced(ctx.shared.client.clone(), &drain.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        // Gone already, or replaced by another of that name: nothing of ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    ctx.shared.metrics.kubernetes_write("InstanceMigration");
    let event = Event {
        type_: EventType::Normal,
        reason: "MigrationDeleted".into(),
        note: Some(format!(
            "InstanceMigration {name} succeeded and its retention passed; status.servers keeps its summary"
        )),
        action: "Retain".into(),
        secondary: None,
    };
    ctx.shared.events.publish(event, drain.object_ref(&())).await;
    Ok(())
}
