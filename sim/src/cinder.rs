//! Cinder v3 up to microversion 3.71: version discovery, volumes (show, list, create, delete)
//! and the `os-set_bootable` action. Attaching and detaching are Nova's (see `nova.rs`), as in
//! a real cloud where Nova drives Cinder's attachments.

use std::time::Instant;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::model::{Cloud, Event, Token, Volume, new_id, now_text};
use crate::{ApiError, ApiResult, Call, Latencies, keystone};

/// The newest microversion this Cinder speaks (Cinder 2023.2 and newer answer the same).
const MAX_VERSION: (u32, u32) = (3, 71);

fn fault(status: StatusCode, kind: &str, message: &str) -> ApiError {
    ApiError { status, body: json!({kind: {"code": status.as_u16(), "message": message}}) }
}

fn not_found(id: &str) -> ApiError {
    fault(StatusCode::NOT_FOUND, "itemNotFound", &format!("Volume {id} could not be found."))
}

fn bad_request(message: &str) -> ApiError {
    fault(StatusCode::BAD_REQUEST, "badRequest", message)
}

/// The microversion a request asks for (3.0 when none); `None` when it names one Cinder
/// cannot parse.
fn requested_version(call: &Call) -> Option<(u32, u32)> {
    let header = call.headers.get("openstack-api-version").and_then(|v| v.to_str().ok());
    match header.and_then(|v| v.trim().strip_prefix("volume ")).map(str::trim) {
        None => Some((3, 0)),
        Some("latest") => Some(MAX_VERSION),
        Some(v) => v.split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))),
    }
}

/// The microversion an answer names in its `OpenStack-API-Version` header.
pub fn answered_version(call: &Call) -> String {
    let (major, minor) = requested_version(call).filter(|v| *v <= MAX_VERSION).unwrap_or((3, 0));
    format!("{major}.{minor}")
}

pub fn handle(cloud: &mut Cloud, call: &Call, latencies: &Latencies, now: Instant) -> ApiResult {
    let segments = call.segments.as_slice();
    if segments == ["v3"] && call.method == Method::GET {
        let (major, minor) = MAX_VERSION;
        return Ok((
            StatusCode::OK,
            json!({"versions": [{"id": "v3.0", "status": "CURRENT", "version": format!("{major}.{minor}"),
                "min_version": "3.0", "updated": "2023-08-31T00:00:00Z",
                "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                    {"rel": "self", "href": format!("{}/volume/v3/", call.base_url)}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]}]}),
        ));
    }
    let token = keystone::authenticate(cloud, call)?;
    let Some(("v3", project, rest)) = segments.split_first().and_then(|(v, r)| Some((*v, r.first()?, &r[1..]))) else {
        return Err(fault(StatusCode::NOT_FOUND, "itemNotFound", "The resource could not be found."));
    };
    if *project != token.project_id {
        return Err(bad_request("Malformed request url"));
    }
    match requested_version(call) {
        Some(v) if ((3, 0)..=MAX_VERSION).contains(&v) => {}
        Some((major, minor)) => {
            let (max_major, max_minor) = MAX_VERSION;
            return Err(fault(
                StatusCode::NOT_ACCEPTABLE,
                "computeFault",
                &format!(
                    "Version {major}.{minor} is not supported by the API. Minimum is 3.0 and maximum is {max_major}.{max_minor}."
                ),
            ));
        }
        None => {
            return Err(bad_request("API Version String is of invalid format. Must be of format MajorNum.MinorNum."));
        }
    }
    match (call.method.clone(), rest) {
        (Method::GET, ["volumes", "detail"]) => {
            let volumes: Vec<Value> = cloud
                .volumes
                .values()
                .filter(|v| v.project_id == token.project_id)
                .map(|v| render(call, v, &token))
                .collect();
            Ok((StatusCode::OK, json!({"volumes": volumes})))
        }
        (Method::GET, ["volumes", id]) => {
            let volume = visible(cloud, &token, id)?;
            Ok((StatusCode::OK, json!({"volume": render(call, volume, &token)})))
        }
        (Method::POST, ["volumes"]) => create(cloud, call, &token, latencies, now),
        (Method::DELETE, ["volumes", id]) => {
            let volume = visible(cloud, &token, id)?;
            if volume.status != "available" {
                return Err(bad_request(
                    "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.",
                ));
            }
            let volume = cloud.volumes.get_mut(*id).expect("visible");
            volume.status = "deleting";
            volume.updated = Some(now_text());
            cloud.schedule(now + latencies.volume_delete, Event::VolumeDeleted(id.to_string()));
            Ok((StatusCode::ACCEPTED, Value::Null))
        }
        (Method::POST, ["volumes", id, "action"]) => {
            visible(cloud, &token, id)?;
            let body = call.json(bad_request)?;
            match body.get("os-set_bootable").map(|a| &a["bootable"]) {
                Some(flag) => {
                    let bootable = match flag {
                        Value::Bool(b) => *b,
                        Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                        Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                        _ => return Err(bad_request("Invalid value for 'bootable'.")),
                    };
                    let volume = cloud.volumes.get_mut(*id).expect("visible");
                    volume.bootable = bootable;
                    volume.updated = Some(now_text());
                    Ok((StatusCode::OK, Value::Null))
                }
                None => Err(bad_request("osmo-openstack-sim does only the volume action os-set_bootable")),
            }
        }
        _ => Err(fault(StatusCode::NOT_FOUND, "itemNotFound", "The resource could not be found.")),
    }
}

/// A volume the token may see (its project's, or any for an admin).
fn visible<'a>(cloud: &'a Cloud, token: &Token, id: &str) -> Result<&'a Volume, ApiError> {
    cloud.volumes.get(id).filter(|v| token.is_admin() || v.project_id == token.project_id).ok_or_else(|| not_found(id))
}

fn create(cloud: &mut Cloud, call: &Call, token: &Token, latencies: &Latencies, now: Instant) -> ApiResult {
    let body = call.json(bad_request)?;
    let spec = body
        .get("volume")
        .and_then(Value::as_object)
        .ok_or_else(|| bad_request("Missing required element 'volume' in request body."))?;
    let size = spec.get("size").and_then(Value::as_u64).filter(|s| *s >= 1).ok_or_else(|| {
        bad_request("Invalid input for field/attribute size. Value: None. None is not of type 'integer', 'string'")
    })?;
    let text = |field: &str| spec.get(field).and_then(Value::as_str).map(str::to_string);
    let volume = Volume {
        id: new_id(),
        name: text("name"),
        description: text("description"),
        project_id: token.project_id.clone(),
        user_id: token.user_id.clone(),
        size,
        status: "creating",
        bootable: false,
        attachment: None,
        created: now_text(),
        updated: None,
    };
    cloud.schedule(now + latencies.volume_create, Event::VolumeCreated(volume.id.clone()));
    let view = render(call, &volume, token);
    cloud.volumes.insert(volume.id.clone(), volume);
    Ok((StatusCode::ACCEPTED, json!({"volume": view})))
}

/// Cinder's detailed volume view at 3.71 (the fields any 3.x shows; `bootable` a string).
fn render(call: &Call, v: &Volume, token: &Token) -> Value {
    let link = |rel: &str, version: &str| json!({"rel": rel, "href": format!("{}/volume{version}/{}/volumes/{}", call.base_url, v.project_id, v.id)});
    // Cinder shows an attachment once it is attached (not while Nova reserves the volume).
    let attachments: Vec<Value> = v
        .attachment
        .iter()
        .filter(|_| matches!(v.status, "in-use" | "detaching"))
        .map(|a| {
            json!({"id": v.id, "attachment_id": a.id, "volume_id": v.id, "server_id": a.server_id,
                "host_name": if token.is_admin() { json!(a.host) } else { Value::Null },
                "device": a.device, "attached_at": a.attached_at})
        })
        .collect();
    let mut volume = json!({
        "id": v.id, "status": v.status, "size": v.size, "availability_zone": "nova",
        "created_at": v.created, "updated_at": v.updated, "name": v.name, "description": v.description,
        "volume_type": "__DEFAULT__", "snapshot_id": null, "source_volid": null, "metadata": {},
        "links": [link("self", "/v3"), link("bookmark", "")], "user_id": v.user_id,
        "bootable": if v.bootable { "true" } else { "false" }, "encrypted": false, "replication_status": null,
        "consistencygroup_id": null, "multiattach": false, "attachments": attachments, "group_id": null,
        "shared_targets": false, "service_uuid": null, "cluster_name": null,
        "volume_type_id": "5ad0e1b6-0000-4000-8000-00000000d3f4", "consumes_quota": true,
    });
    if token.is_admin() {
        for (field, value) in [
            ("migration_status", Value::Null),
            ("provider_id", Value::Null),
            ("os-vol-tenant-attr:tenant_id", json!(v.project_id)),
            ("os-vol-mig-status-attr:migstat", Value::Null),
            ("os-vol-mig-status-attr:name_id", Value::Null),
            ("os-vol-host-attr:host", json!("osmo-sim@fake#fake")),
        ] {
            volume[field] = value;
        }
    }
    volume
}
