//! An OpenStack simulator for scale runs: one HTTP server that answers the subset of Keystone
//! v3, Nova (microversion 2.95), Glance v2, Neutron v2.0 and Cinder v3 (microversion 3.71)
//! that osmo uses, with the JSON shapes of the real services, everything in memory, and
//! servers, images and volumes that change state after set latencies (boot, stop, start,
//! snapshot, delete, volume create, attach, detach, volume delete).
//!
//! Its catalog has regions RegionOne and RegionTwo, both pointing at the same services: the
//! real test stack's RegionTwo is a second Nova sharing the rest; here it is the same Nova
//! (clouds `admin-nova2` and `demo-nova2` reach it through RegionTwo).
//!
//! It is test tooling, not part of the operator: the scale benchmark starts it in-process
//! ([`Simulator::start`]); `osmo-openstack-sim` runs it alone (see `hack/sim.sh`). Every request
//! is counted by route ([`Simulator::requests`]), so that a benchmark can tell how many a
//! migration cost.
//!
//! What it does not do (the contract tests that need it are skipped against it, see
//! `hack/sim.sh`): application credentials, Keystone administration, nova-network, TLS,
//! microversions below 2.53 for services and their older answer shapes, extra nova-compute
//! processes, quotas (every limit is -1), a second Nova, volume snapshots, backups, types,
//! multiattach and encryption.

mod cinder;
mod glance;
mod keystone;
mod model;
mod neutron;
mod nova;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub use model::Zone;

/// How long OpenStack takes for each transition.
#[derive(Clone, Debug)]
pub struct Latencies {
    /// BUILD → ACTIVE.
    pub boot: Duration,
    /// ACTIVE → SHUTOFF.
    pub stop: Duration,
    /// SHUTOFF → ACTIVE.
    pub start: Duration,
    /// createImage → image `active` (`queued`, then `saving` half-way).
    pub snapshot: Duration,
    /// DELETE → the server is gone (with its volumes deleted on termination).
    pub delete: Duration,
    /// A volume `attaching` → `in-use` (attached at boot or later).
    pub attach: Duration,
    /// A volume `detaching` → `available`, and gone from the server's attachments.
    pub detach: Duration,
    /// A new volume `creating` → `available`.
    pub volume_create: Duration,
    /// A volume `deleting` → gone.
    pub volume_delete: Duration,
    /// Added to every answer, as a real API's own processing time.
    pub request: Duration,
}

impl Default for Latencies {
    fn default() -> Self {
        let ms = Duration::from_millis;
        Latencies {
            boot: ms(1000),
            stop: ms(200),
            start: ms(200),
            snapshot: ms(500),
            delete: ms(500),
            attach: ms(200),
            detach: ms(200),
            volume_create: ms(200),
            volume_delete: ms(200),
            request: ms(0),
        }
    }
}

impl Latencies {
    /// These, each overridden by `{prefix}_{BOOT,STOP,START,SNAPSHOT,DELETE,ATTACH,DETACH,
    /// VOLUME_CREATE,VOLUME_DELETE,REQUEST}_MS` when set.
    pub fn with_env(self, prefix: &str) -> Self {
        let mut latencies = self;
        for (name, field) in [
            ("BOOT", &mut latencies.boot),
            ("STOP", &mut latencies.stop),
            ("START", &mut latencies.start),
            ("SNAPSHOT", &mut latencies.snapshot),
            ("DELETE", &mut latencies.delete),
            ("ATTACH", &mut latencies.attach),
            ("DETACH", &mut latencies.detach),
            ("VOLUME_CREATE", &mut latencies.volume_create),
            ("VOLUME_DELETE", &mut latencies.volume_delete),
            ("REQUEST", &mut latencies.request),
        ] {
            if let Some(ms) = std::env::var(format!("{prefix}_{name}_MS")).ok().and_then(|v| v.parse().ok()) {
                *field = Duration::from_millis(ms);
            }
        }
        latencies
    }
}

/// What the simulated cloud holds at start.
#[derive(Clone, Debug)]
pub struct Config {
    pub latencies: Latencies,
    /// Availability zones and their compute hosts (one nova-compute service each).
    pub zones: Vec<Zone>,
    /// The password of users `admin` and `demo`.
    pub password: String,
    /// The CIDR of subnet `private-subnet` of network `private` (shared).
    pub private_cidr: String,
    /// The CIDR of subnet `public-subnet` of the external network `public`.
    pub public_cidr: String,
}

impl Default for Config {
    /// The shape of the project's real test cloud (`hack/openstack/up.sh`): zones `havana`
    /// (host havana-1) and `icehouse` (host icehouse-1), flavor m1.tiny, image `base`,
    /// networks `private` (198.51.100.0/24) and `public` (203.0.113.0/24).
    fn default() -> Self {
        Config {
            latencies: Latencies::default(),
            zones: vec![Zone::new("havana", ["havana-1"]), Zone::new("icehouse", ["icehouse-1"])],
            password: "osmo-sim".into(),
            private_cidr: "198.51.100.0/24".into(),
            public_cidr: "203.0.113.0/24".into(),
        }
    }
}

impl Config {
    /// The default cloud with zone `juno` (host `juno-1`) added, where the real test stack's
    /// second Nova has its compute host: the contract tests boot there through RegionTwo.
    pub fn for_contract_tests() -> Self {
        let mut config = Config::default();
        config.zones.push(Zone::new("juno", ["juno-1"]));
        config
    }
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    base_url: String,
    latencies: Latencies,
    password: String,
    cloud: Mutex<model::Cloud>,
    requests: Mutex<BTreeMap<String, u64>>,
}

impl Simulator {
    /// Starts the simulator on `listen` (port 0: any free port) in the current tokio runtime.
    pub async fn start(config: Config, listen: SocketAddr) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let cloud = model::Cloud::new(&config).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let shared = Arc::new(Shared {
            base_url,
            latencies: config.latencies.clone(),
            password: config.password.clone(),
            cloud: Mutex::new(cloud),
            requests: Mutex::default(),
        });
        let state = shared.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { handle(state, method, uri, headers, body).await }
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the simulator's server failed");
        });
        Ok(Simulator { addr, shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Keystone's URL, as a clouds.yaml's `auth_url`.
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.shared.base_url)
    }

    /// A clouds.yaml with clouds `admin` (admin of project `admin`) and `demo` (member of
    /// project `demo`) in region RegionOne, and the same users as `admin-nova2` and
    /// `demo-nova2` in RegionTwo, as the real test stack names them.
    pub fn clouds_yaml(&self) -> String {
        let cloud = |name: &str, user: &str, region: &str| {
            format!(
                "  {name}:\n    auth:\n      auth_url: {}\n      username: {user}\n      password: {}\n      project_name: {user}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {region}\n    interface: public\n    identity_api_version: 3\n",
                self.auth_url(),
                self.shared.password
            )
        };
        format!(
            "clouds:\n{}{}{}{}",
            cloud("admin", "admin", "RegionOne"),
            cloud("demo", "demo", "RegionOne"),
            cloud("admin-nova2", "admin", "RegionTwo"),
            cloud("demo-nova2", "demo", "RegionTwo")
        )
    }

    /// The requests answered so far, by service, method and route (IDs replaced by `{id}`).
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The number of requests answered so far.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.lock().unwrap().values().sum()
    }

    /// Adds servers as if booted long ago (ACTIVE on `host`, on network `private`, of project
    /// `admin`), without counting requests or waiting: a large cloud set up at once. Returns
    /// their IDs.
    pub fn seed_servers(&self, names: &[String], host: &str, flavor: &str) -> Result<Vec<String>, String> {
        self.shared.cloud.lock().unwrap().seed_servers(names, host, flavor)
    }

    /// Gives each of these servers a data volume (1 GiB, `in-use` on `/dev/sdb`, not deleted
    /// with the server), as if attached long ago, without counting requests. Returns the
    /// volumes' IDs.
    pub fn seed_data_volumes(&self, servers: &[String]) -> Result<Vec<String>, String> {
        let mut cloud = self.shared.cloud.lock().unwrap();
        servers.iter().map(|server| cloud.seed_data_volume(server)).collect()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An API error as the services give it.
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

pub(crate) type ApiResult = Result<(StatusCode, serde_json::Value), ApiError>;

/// What a handler needs of the request.
pub(crate) struct Call<'a> {
    pub method: &'a Method,
    /// The path below the service's prefix, split at `/`, without empty segments.
    pub segments: Vec<&'a str>,
    /// The query, in order, decoded.
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub base_url: &'a str,
    /// The users' password, which the simulator was started with.
    pub password: &'a str,
}

impl Call<'_> {
    pub fn query_values(&self, key: &str) -> Vec<&str> {
        self.query.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; a 400 of `service`'s shape when it is not.
    pub fn json(&self, bad_request: fn(&str) -> ApiError) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(self.body).map_err(|e| bad_request(&format!("Malformed request body: {e}")))
    }
}

async fn handle(shared: Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if !shared.latencies.request.is_zero() {
        tokio::time::sleep(shared.latencies.request).await;
    }
    let path = uri.path();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let (service, rest) = match path.trim_start_matches('/').split_once('/') {
        Some((service, rest)) => (service, rest),
        None => (path.trim_start_matches('/'), ""),
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    count(&shared, service, &method, &segments);
    let call = Call {
        method: &method,
        segments,
        query,
        headers: &headers,
        body: &body,
        base_url: &shared.base_url,
        password: &shared.password,
    };
    let now = std::time::Instant::now();
    let mut cloud = shared.cloud.lock().unwrap();
    cloud.advance(now);
    let mut response = match service {
        "identity" => keystone::handle(&mut cloud, &call),
        "compute" => nova::handle(&mut cloud, &call, &shared.latencies, now),
        "image" => glance::handle(&mut cloud, &call),
        "network" => neutron::handle(&mut cloud, &call),
        "volume" => cinder::handle(&mut cloud, &call, &shared.latencies, now),
        _ => Err(ApiError { status: StatusCode::NOT_FOUND, body: serde_json::json!({"message": "no such service"}) }),
    };
    drop(cloud);
    let mut extra = HeaderMap::new();
    if service == "compute" {
        let version = HeaderValue::from_static("compute 2.95");
        extra.insert("openstack-api-version", version);
        extra.insert("x-openstack-nova-api-version", HeaderValue::from_static("2.95"));
        extra.insert("vary", HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"));
    }
    if service == "volume" {
        let version = format!("volume {}", cinder::answered_version(&call));
        extra.insert("openstack-api-version", HeaderValue::from_str(&version).expect("an ASCII version"));
        extra.insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    }
    if let Ok((_, body)) = &mut response
        && let Some(token) = body.as_object_mut().and_then(|o| o.remove(keystone::SUBJECT_TOKEN))
        && let Some(value) = token.as_str().and_then(|t| HeaderValue::from_str(t).ok())
    {
        extra.insert("x-subject-token", value);
    }
    if let Ok((_, body)) = &mut response
        && let Some(location) = body.as_object_mut().and_then(|o| o.remove(nova::LOCATION))
        && let Some(value) = location.as_str().and_then(|l| HeaderValue::from_str(l).ok())
    {
        extra.insert("location", value);
    }
    let request_id = format!("req-{}", model::new_id());
    extra.insert("x-openstack-request-id", HeaderValue::from_str(&request_id).expect("an ASCII id"));
    let (status, body) = match response {
        Ok(answer) => answer,
        Err(ApiError { status, body }) => (status, body),
    };
    if body.is_null() {
        (status, extra).into_response()
    } else if let serde_json::Value::String(text) = body {
        extra.insert("content-type", HeaderValue::from_static("text/plain; charset=UTF-8"));
        (status, extra, text).into_response()
    } else {
        extra.insert("content-type", HeaderValue::from_static("application/json"));
        (status, extra, body.to_string()).into_response()
    }
}

/// Counts a request under its route, with IDs (segments holding a digit, past the first)
/// replaced by `{id}` so that routes add up across servers.
fn count(shared: &Shared, service: &str, method: &Method, segments: &[&str]) {
    let route: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| if i > 0 && s.bytes().any(|b| b.is_ascii_digit()) && s.len() > 8 { "{id}" } else { s })
        .collect();
    let key = format!("{service} {method} /{}", route.join("/"));
    *shared.requests.lock().unwrap().entry(key).or_default() += 1;
}
