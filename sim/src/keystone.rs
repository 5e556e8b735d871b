//! Keystone v3: password authentication, scoped to a project by id or name, with the catalog
//! pointing at the simulator itself (Cinder's endpoint names the token's project, as real
//! catalogs do). Tokens are checked by the other services.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::model::{Cloud, Token, new_id};
use crate::{ApiError, ApiResult, Call};

/// Where the handler leaves the token for the X-Subject-Token header (taken out of the body).
pub const SUBJECT_TOKEN: &str = "__x_subject_token";

/// How long a token lives.
const TOKEN_LIFE: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

fn error(status: StatusCode, title: &str, message: &str) -> ApiError {
    ApiError { status, body: json!({"error": {"code": status.as_u16(), "title": title, "message": message}}) }
}

pub fn unauthorized() -> ApiError {
    error(StatusCode::UNAUTHORIZED, "Unauthorized", "The request you have made requires authentication.")
}

fn bad_request(message: &str) -> ApiError {
    error(StatusCode::BAD_REQUEST, "Bad Request", message)
}

/// The token a request carries, if Keystone issued it.
pub fn authenticate(cloud: &Cloud, call: &Call) -> Result<Token, ApiError> {
    call.headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|token| cloud.tokens.get(token))
        .cloned()
        .ok_or_else(unauthorized)
}

pub fn handle(cloud: &mut Cloud, call: &Call) -> ApiResult {
    match (call.method, call.segments.as_slice()) {
        (&Method::GET, ["v3"]) => Ok((
            StatusCode::OK,
            json!({"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": format!("{}/identity/v3/", call.base_url)}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}}),
        )),
        (&Method::POST, ["v3", "auth", "tokens"]) => issue(cloud, call),
        _ => Err(error(StatusCode::NOT_FOUND, "Not Found", "The resource could not be found.")),
    }
}

fn issue(cloud: &mut Cloud, call: &Call) -> ApiResult {
    let body = call.json(bad_request)?;
    let auth = &body["auth"];
    let methods = auth["identity"]["methods"].as_array().cloned().unwrap_or_default();
    if methods != [json!("password")] {
        return Err(unauthorized());
    }
    let user = &auth["identity"]["password"]["user"];
    let found = cloud.users.iter().find(|u| user["id"] == u.id.as_str() || user["name"] == u.name.as_str());
    let password_ok = user["password"].as_str() == Some(call.password);
    let Some(user) = found.filter(|_| password_ok).cloned() else { return Err(unauthorized()) };
    let scope = &auth["scope"]["project"];
    let project_id = match (scope["id"].as_str(), scope["name"].as_str()) {
        (Some(id), _) => id.to_string(),
        (None, Some(name)) => {
            cloud.projects.iter().find(|(_, n)| *n == name).map(|(id, _)| id.clone()).ok_or_else(unauthorized)?
        }
        // Unscoped and domain-scoped tokens carry no catalog osmo could use.
        (None, None) => return Err(bad_request("osmo-openstack-sim issues project-scoped tokens only")),
    };
    let Some(roles) = user.roles.get(&project_id).cloned() else { return Err(unauthorized()) };
    let project_name = cloud.projects.get(&project_id).cloned().ok_or_else(unauthorized)?;
    let token = format!("gAAAAA{}", new_id().replace('-', ""));
    cloud.tokens.insert(
        token.clone(),
        Token { user_id: user.id.clone(), project_id: project_id.clone(), roles: roles.clone() },
    );
    let issued = jiff::Timestamp::now();
    let expires = issued + TOKEN_LIFE;
    let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S.000000Z").to_string();
    // Both regions reach the same services (see the crate's documentation).
    let endpoints = |path: &str| -> Value {
        let each = ["RegionOne", "RegionTwo"].into_iter().flat_map(|region| {
            ["public", "internal", "admin"].map(|interface| {
                json!({"id": new_id(), "interface": interface,
                "region": region, "region_id": region, "url": format!("{}/{path}", call.base_url)})
            })
        });
        Value::Array(each.collect())
    };
    let catalog = json!([
        {"type": "identity", "name": "keystone", "id": new_id(), "endpoints": endpoints("identity/v3")},
        {"type": "compute", "name": "nova", "id": new_id(), "endpoints": endpoints("compute/v2.1")},
        {"type": "image", "name": "glance", "id": new_id(), "endpoints": endpoints("image")},
        {"type": "network", "name": "neutron", "id": new_id(), "endpoints": endpoints("network")},
        {"type": "block-storage", "name": "cinder", "id": new_id(),
            "endpoints": endpoints(&format!("volume/v3/{project_id}"))},
    ]);
    let domain = json!({"id": "default", "name": "Default"});
    Ok((
        StatusCode::CREATED,
        json!({
            SUBJECT_TOKEN: token,
            "token": {
                "methods": ["password"], "expires_at": time(expires), "issued_at": time(issued),
                "audit_ids": [new_id()],
                "user": {"id": user.id, "name": user.name, "domain": domain, "password_expires_at": null},
                "project": {"id": project_id, "name": project_name, "domain": domain},
                "roles": roles.iter().map(|r| json!({"id": format!("role-{r}"), "name": r})).collect::<Vec<_>>(),
                "is_domain": false,
                "catalog": catalog,
            }
        }),
    ))
}
