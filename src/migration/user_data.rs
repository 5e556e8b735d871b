//! The source's user data, kept for the replacement in a Secret owned by the migration.
//!
//! User data may hold secrets (cloud-init passwords, tokens): it never goes to the status,
//! which whoever may read the migration reads, nor to logs or events. The replacement boots
//! with it after the source is deleted, possibly after a restart of the operator, so it is
//! written to a Secret in the migration's namespace before the record is, and the Secret is
//! owned by the migration (Kubernetes deletes it with the migration).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};

use crate::api::InstanceMigration;
use crate::openstack::compute::UserData;
use crate::runtime::conditions::Refusal;

/// The key of the Secret that holds the user data (base64, as Nova takes it).
const KEY: &str = "userData";

/// Writes the user data to the Secret `name` and reads it back; the refusal of a migration
/// whose user data the operator may not keep (its RBAC, e.g. `rbac.secretNames`, does not let
/// it create or read that Secret). The operator may create Secrets but change none: a Secret
/// of that name is this migration's (the name holds its UID), written by an earlier look, and
/// must hold the same user data.
pub async fn store(
    client: &kube::Client,
    im: &InstanceMigration,
    name: &str,
    data: &UserData,
) -> Result<Result<(), Refusal>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &im.namespace().unwrap_or_default());
    let mut secret = Secret {
        data: Some([(KEY.to_string(), ByteString(data.0.clone().into_bytes()))].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    secret.metadata.name = Some(name.to_string());
    secret.metadata.owner_references = im.controller_owner_ref(&()).map(|owner| vec![owner]);
    secret.metadata.labels = Some([("app.kubernetes.io/managed-by".to_string(), "osmo".to_string())].into());
    let not_kept = |why: String| Refusal {
        reason: "UserDataNotKept",
        message: format!(
            "the server has user data, which osmo keeps for the replacement in Secret {name} of the migration's \
             namespace, and {why}"
        ),
    };
    let forbidden = |e: &kube::core::Status| {
        not_kept(format!(
            "the operator may not create and read that Secret ({}): allow it to (the chart's rbac.secretNames \
             limits what it may read)",
            e.message
        ))
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(kube::Error::Api(e)) if e.code == 403 => return Ok(Err(forbidden(&e))),
        Err(e) => return Err(e),
    }
    match read(client, im, name).await {
        Ok(Some(kept)) if kept == *data => Ok(Ok(())),
        Ok(_) => Ok(Err(not_kept(
            "that Secret holds other user data than the server has now (it changed between two looks): delete \
             the Secret and the migration, and migrate again"
                .to_string(),
        ))),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(Err(forbidden(&e))),
        Err(e) => Err(e),
    }
}

/// The user data kept in the Secret `name`, or `None` when the Secret is gone.
pub async fn read(client: &kube::Client, im: &InstanceMigration, name: &str) -> Result<Option<UserData>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &im.namespace().unwrap_or_default());
    let Some(secret) = api.get_opt(name).await? else { return Ok(None) };
    Ok(secret
        .data
        .and_then(|mut data| data.remove(KEY))
        .map(|bytes| UserData(String::from_utf8_lossy(&bytes.0).into_owned())))
}
