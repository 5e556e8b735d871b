//! Glance v2: images shown, listed with filters (custom properties too), protected, deleted.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::model::{Cloud, Token, now_text};
use crate::{ApiError, ApiResult, Call, keystone};

/// Glance's `limit_param_default`: a listing without `limit` holds so many images.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;

/// Glance answers errors as text (`404 Not Found\n\n<message>\n\n`).
fn error(status: StatusCode, message: &str) -> ApiError {
    let reason = status.canonical_reason().unwrap_or_default();
    ApiError { status, body: json!(format!("{} {reason}\n\n{message}\n\n", status.as_u16())) }
}

fn not_found(id: &str) -> ApiError {
    error(StatusCode::NOT_FOUND, &format!("No image found with ID {id}"))
}

fn may_see(image: &serde_json::Map<String, Value>, token: &Token) -> bool {
    token.is_admin()
        || image["owner"] == token.project_id.as_str()
        || matches!(image["visibility"].as_str(), Some("public" | "community"))
}

pub fn handle(cloud: &mut Cloud, call: &Call) -> ApiResult {
    let token = keystone::authenticate(cloud, call)?;
    match (call.method.clone(), call.segments.as_slice()) {
        (Method::GET, ["v2", "images"]) => {
            let limit = call.query_value("limit").and_then(|l| l.parse().ok()).unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
            let filters: Vec<&(String, String)> = call
                .query
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "limit" | "marker" | "sort_key" | "sort_dir" | "sort"))
                .collect();
            let marker = call.query_value("marker");
            let images: Vec<&serde_json::Map<String, Value>> = cloud
                .images
                .values()
                .rev()
                .skip_while(|i| marker.is_some_and(|m| i["id"] != m))
                .skip(usize::from(marker.is_some()))
                .filter(|i| may_see(i, &token))
                .filter(|i| filters.iter().all(|(k, v)| i.get(k).is_some_and(|value| matches(value, v))))
                .take(limit + 1)
                .collect();
            let mut body = json!({"images": images.iter().take(limit).collect::<Vec<_>>(), "first": "/v2/images", "schema": "/v2/schemas/images"});
            if images.len() > limit {
                body["next"] = json!(format!(
                    "/v2/images?marker={}&limit={limit}",
                    images[limit - 1]["id"].as_str().unwrap_or_default()
                ));
            }
            Ok((StatusCode::OK, body))
        }
        (Method::GET, ["v2", "images", id]) => {
            let image = cloud.images.get(*id).filter(|i| may_see(i, &token)).ok_or_else(|| not_found(id))?;
            Ok((StatusCode::OK, json!(image)))
        }
        (Method::PATCH, ["v2", "images", id]) => {
            let content_type = call.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !content_type.starts_with("application/openstack-images-v2.1-json-patch") {
                return Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Content-Type"));
            }
            let patch = call.json(|m| error(StatusCode::BAD_REQUEST, m))?;
            let image = cloud.images.get_mut(*id).filter(|i| may_see(i, &token)).ok_or_else(|| not_found(id))?;
            if image["owner"] != token.project_id.as_str() && !token.is_admin() {
                return Err(error(StatusCode::FORBIDDEN, "You are not permitted to modify this image."));
            }
            for op in patch.as_array().into_iter().flatten() {
                let field = op["path"].as_str().unwrap_or_default().trim_start_matches('/').to_string();
                match op["op"].as_str() {
                    Some("replace" | "add") if field == "protected" && !op["value"].is_boolean() => {
                        return Err(error(StatusCode::BAD_REQUEST, "Invalid value for protected"));
                    }
                    Some("replace" | "add") => {
                        image.insert(field, op["value"].clone());
                    }
                    Some("remove") => {
                        image.remove(&field);
                    }
                    _ => return Err(error(StatusCode::BAD_REQUEST, "Unable to find the operation")),
                }
            }
            image.insert("updated_at".into(), json!(now_text()));
            Ok((StatusCode::OK, json!(image)))
        }
        (Method::DELETE, ["v2", "images", id]) => {
            let image = cloud.images.get(*id).filter(|i| may_see(i, &token)).ok_or_else(|| not_found(id))?;
            if image["owner"] != token.project_id.as_str() && !token.is_admin() {
                return Err(error(StatusCode::FORBIDDEN, "You are not permitted to delete this image."));
            }
            if image["protected"] == true {
                return Err(error(StatusCode::FORBIDDEN, &format!("Image {id} is protected and cannot be deleted.")));
            }
            cloud.images.remove(*id);
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        _ => Err(error(StatusCode::NOT_FOUND, "The resource could not be found.")),
    }
}

fn matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Bool(b) => b.to_string().eq_ignore_ascii_case(wanted),
        Value::Number(n) => n.to_string() == wanted,
        _ => false,
    }
}
