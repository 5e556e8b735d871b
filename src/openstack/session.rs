//! One authenticated connection to a cloud: Keystone v3 token and catalog, cached and renewed;
//! requests with a timeout, retries of transient failures with backoff and jitter, and typed
//! errors. The token never leaves this module except as a request header.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::clouds::{AuthMethod, CloudConfig};
use super::error::{Error, Service, TransportKind, error_message};

/// How transient failures are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 6, first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`: exponential, capped, with "full jitter" so that
    /// many clients retrying at once spread out.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponential = self.first_delay.saturating_mul(1 << attempt.saturating_sub(1).min(16));
        exponential.min(self.max_delay).mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// How long a request may take before its sender gives up on it. The service may still carry
/// out a request given up on: whoever sends a create again waits longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a request may be sent again after a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Repeating it cannot do harm (GET, PUT, DELETE, and actions whose repetition fails
    /// harmlessly).
    Idempotent,
    /// Repeating it could create a twin: it is sent once, and whoever decides to send it again
    /// knows it may meet what the first attempt made.
    Never,
}

/// A Nova or Cinder API microversion, e.g. 2.53 or 3.71.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u32, pub u32);

impl Microversion {
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.split_once('.')?;
        Some(Microversion(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl std::fmt::Display for Microversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// One API request.
pub struct Request {
    pub service: Service,
    pub method: Method,
    /// Path below the service's endpoint, with its query string.
    pub path: String,
    pub body: Option<serde_json::Value>,
    pub microversion: Option<Microversion>,
    pub retry: Retry,
    /// The body's media type, when not plain JSON (Glance's JSON patches).
    pub content_type: Option<&'static str>,
    /// The path is below the API's version root (the endpoint's URL up to its version, e.g.
    /// `/v3` of Cinder's `/v3/{project_id}`), where the version document is.
    pub at_version_root: bool,
}

impl Request {
    pub fn new(service: Service, method: Method, path: impl Into<String>) -> Self {
        let retry = if method == Method::POST { Retry::Never } else { Retry::Idempotent };
        Request {
            service,
            method,
            path: path.into(),
            body: None,
            microversion: None,
            retry,
            content_type: None,
            at_version_root: false,
        }
    }
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
    /// A JSON body of another media type than `application/json`.
    pub fn json_as(mut self, content_type: &'static str, body: serde_json::Value) -> Self {
        self.content_type = Some(content_type);
        self.json(body)
    }
    pub fn microversion(mut self, version: Microversion) -> Self {
        self.microversion = Some(version);
        self
    }
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
    pub fn at_version_root(mut self) -> Self {
        self.at_version_root = true;
        self
    }
}

/// A successful answer.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    service: Service,
    path: String,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode {
            service: self.service,
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Called once per HTTP attempt with the service and the status (0 when no answer came), so
/// that requests can be counted.
pub type RequestObserver = Arc<dyn Fn(Service, u16) + Send + Sync>;

struct Token {
    secret: SecretString,
    expires_at: jiff::Timestamp,
    /// Renew this long before expiry.
    margin: jiff::SignedDuration,
    catalog: Vec<CatalogEntry>,
    project_id: Option<String>,
    /// The names of the roles the token carries in its project.
    roles: Vec<String>,
}

#[derive(Deserialize, Clone, Debug)]
struct CatalogEntry {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize, Clone, Debug)]
struct Endpoint {
    interface: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
    url: String,
}

/// An authenticated session with one cloud.
pub struct Session {
    http: reqwest::Client,
    config: CloudConfig,
    token: tokio::sync::Mutex<Option<Arc<Token>>>,
    retry: RetryPolicy,
    observer: Option<RequestObserver>,
    compute_version: tokio::sync::OnceCell<Option<Microversion>>,
    block_storage_version: tokio::sync::OnceCell<Option<Microversion>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("auth_url", &self.config.auth.auth_url).finish_non_exhaustive()
    }
}

impl Session {
    /// A session for `config`; `cacert` is a PEM bundle trusted on top of the system's.
    pub fn new(config: CloudConfig, cacert: Option<&[u8]>) -> Result<Self, Error> {
        install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("osmo/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token, and on 307 or 308 Keystone's password body, to
            // whatever address it names: none is followed.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = cacert {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("cacert is not a PEM bundle: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if !config.verify {
            tracing::warn!(auth_url = %config.auth.auth_url, "TLS verification is off for this cloud (verify: false)");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| Error::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Session {
            http,
            config,
            token: tokio::sync::Mutex::new(None),
            retry: RetryPolicy::default(),
            observer: None,
            compute_version: tokio::sync::OnceCell::new(),
            block_storage_version: tokio::sync::OnceCell::new(),
        })
    }

    /// A session of the same credentials (and TLS settings) scoped to another project; it logs
    /// in on its first request, where Keystone refuses a user with no role in the project.
    pub fn in_project(&self, project_id: &str) -> Result<Session, Error> {
        Ok(Session {
            http: self.http.clone(),
            config: self.config.in_project(project_id)?,
            token: tokio::sync::Mutex::new(None),
            retry: self.retry.clone(),
            observer: self.observer.clone(),
            compute_version: tokio::sync::OnceCell::new(),
            block_storage_version: tokio::sync::OnceCell::new(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_observer(mut self, observer: RequestObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    /// Sends a request, renewing the token once on 401 and retrying transient failures of
    /// requests that may be repeated.
    pub async fn send(&self, request: Request) -> Result<Response, Error> {
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.token().await?;
            match self.send_once(&request, &token).await {
                Err(e) if e.status() == Some(401) && !renewed => {
                    // Rejected before anything happened: safe to send again with a new token.
                    renewed = true;
                    self.forget_token(&token).await;
                }
                Err(e)
                    if e.is_transient() && request.retry == Retry::Idempotent && attempt < self.retry.max_attempts =>
                {
                    let pause = self.retry.delay(attempt, jitter());
                    tracing::debug!(error = %e, attempt, ?pause, "transient OpenStack error; retrying");
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// Sends a request once (renewing the token on 401), with no retry.
    async fn send_once_authenticated(&self, request: &Request) -> Result<Response, Error> {
        let token = self.token().await?;
        match self.send_once(request, &token).await {
            Err(e) if e.status() == Some(401) => {
                self.forget_token(&token).await;
                let token = self.token().await?;
                self.send_once(request, &token).await
            }
            other => other,
        }
    }

    /// Sends a creating request once. After a transient failure the request may have made
    /// something all the same (the answer was lost): `find_existing` looks for it, and the error
    /// is returned when nothing is found. Sending again is the caller's decision, so that every
    /// resend is recorded where late twins are looked for. `created` reads a successful answer.
    pub async fn create_once<T, F, Fut>(
        &self,
        request: &Request,
        find_existing: F,
        created: impl Fn(&Response) -> Result<T, Error>,
    ) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, Error>>,
    {
        match self.send_once_authenticated(request).await {
            Ok(response) => created(&response),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "create request failed transiently; looking for what it may have made");
                tokio::time::sleep(self.retry.delay(1, jitter())).await;
                find_existing().await?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn send_once(&self, request: &Request, token: &Token) -> Result<Response, Error> {
        let endpoint = endpoint_url(&token.catalog, request.service, &self.config)?;
        let base = if request.at_version_root { version_root(&endpoint) } else { &endpoint };
        let url = format!("{base}{}", request.path);
        let mut builder =
            self.http.request(request.method.clone(), &url).header("X-Auth-Token", token.secret.expose_secret());
        if let Some(v) = request.microversion {
            builder = match request.service {
                Service::BlockStorage => builder.header("OpenStack-API-Version", format!("volume {v}")),
                _ => builder
                    .header("OpenStack-API-Version", format!("compute {v}"))
                    .header("X-OpenStack-Nova-API-Version", v.to_string()),
            };
        }
        if let Some(body) = &request.body {
            builder = match request.content_type {
                Some(media_type) => builder
                    .header(reqwest::header::CONTENT_TYPE, media_type)
                    .body(serde_json::to_vec(body).expect("a JSON value serializes")),
                None => builder.json(body),
            };
        }
        let started = std::time::Instant::now();
        let result = builder.send().await;
        let status = result.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
        tracing::debug!(service = %request.service, method = %request.method, path = %request.path, status, elapsed_ms = started.elapsed().as_millis() as u64, "OpenStack request");
        self.observe(request.service, status);
        let response = result.map_err(|e| transport_error(request, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| transport_error(request, &e))?;
        if is_redirect(status) {
            return Err(redirect_error(request, status, &headers));
        }
        if status >= 400 {
            return Err(Error::Api {
                service: request.service,
                method: request.method.to_string(),
                path: request.path.clone(),
                status,
                request_id: request_id(&headers),
                message: error_message(&String::from_utf8_lossy(&body)),
            });
        }
        Ok(Response { status, headers, body, service: request.service, path: request.path.clone() })
    }

    fn observe(&self, service: Service, status: u16) {
        if let Some(observer) = &self.observer {
            observer(service, status);
        }
    }

    async fn token(&self) -> Result<Arc<Token>, Error> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && jiff::Timestamp::now() < token.expires_at - token.margin
        {
            return Ok(token.clone());
        }
        let token = Arc::new(self.issue_token().await?);
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn forget_token(&self, stale: &Arc<Token>) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| Arc::ptr_eq(t, stale)) {
            *cached = None;
        }
    }

    async fn issue_token(&self) -> Result<Token, Error> {
        let url = format!("{}/auth/tokens", identity_v3_url(&self.config.auth.auth_url));
        let body = auth_body(&self.config)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.issue_token_once(&url, &body).await;
            match result {
                Err(e) if e.is_transient() && attempt < self.retry.max_attempts => {
                    tokio::time::sleep(self.retry.delay(attempt, jitter())).await;
                }
                other => return other,
            }
        }
    }

    async fn issue_token_once(&self, url: &str, body: &serde_json::Value) -> Result<Token, Error> {
        let request = Request::new(Service::Identity, Method::POST, "/auth/tokens");
        let result = self.http.post(url).json(body).send().await;
        self.observe(Service::Identity, result.as_ref().map(|r| r.status().as_u16()).unwrap_or(0));
        let response = result.map_err(|e| transport_error(&request, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| transport_error(&request, &e))?;
        if is_redirect(status) {
            return Err(redirect_error(&request, status, &headers));
        }
        if status == 401 || status == 403 || status == 404 {
            return Err(Error::Auth {
                auth_url: self.config.auth.auth_url.clone(),
                status,
                message: error_message(&text),
            });
        }
        if status >= 400 {
            return Err(Error::Api {
                service: Service::Identity,
                method: "POST".into(),
                path: "/auth/tokens".into(),
                status,
                request_id: request_id(&headers),
                message: error_message(&text),
            });
        }
        let secret = headers
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(|v| SecretString::from(v.to_string()))
            .ok_or_else(|| decode_error("/auth/tokens", "no X-Subject-Token header"))?;
        #[derive(Deserialize)]
        struct Body {
            token: TokenBody,
        }
        #[derive(Deserialize)]
        struct TokenBody {
            expires_at: String,
            #[serde(default)]
            issued_at: Option<String>,
            #[serde(default)]
            catalog: Vec<CatalogEntry>,
            #[serde(default)]
            project: Option<Project>,
            #[serde(default)]
            roles: Vec<Role>,
        }
        #[derive(Deserialize)]
        struct Project {
            id: String,
        }
        #[derive(Deserialize)]
        struct Role {
            name: String,
        }
        let parsed: Body = serde_json::from_str(&text).map_err(|e| decode_error("/auth/tokens", &e.to_string()))?;
        let expires_at = parse_time(&parsed.token.expires_at)?;
        let issued_at =
            parsed.token.issued_at.as_deref().map(parse_time).transpose()?.unwrap_or_else(jiff::Timestamp::now);
        tracing::debug!(%expires_at, "issued a Keystone token");
        Ok(Token {
            secret,
            expires_at,
            margin: renew_margin(issued_at, expires_at),
            catalog: parsed.token.catalog,
            project_id: parsed.token.project.map(|p| p.id),
            roles: parsed.token.roles.into_iter().map(|r| r.name).collect(),
        })
    }

    /// The project the session's token is scoped to (none for a domain-scoped token).
    pub async fn project_id(&self) -> Result<Option<String>, Error> {
        Ok(self.token().await?.project_id.clone())
    }

    /// The names of the roles the session's token carries in its project, as Keystone issued it.
    pub async fn role_names(&self) -> Result<Vec<String>, Error> {
        Ok(self.token().await?.roles.clone())
    }

    /// The base URL the session sends a service's requests to, from its catalog.
    pub async fn endpoint(&self, service: Service) -> Result<String, Error> {
        endpoint_url(&self.token().await?.catalog, service, &self.config)
    }

    /// The compute API's microversion to use: the newest both Nova and osmo support; `None`
    /// for a Nova without microversions (the v2 API).
    pub async fn compute_microversion(&self) -> Result<Option<Microversion>, Error> {
        self.compute_version
            .get_or_try_init(|| async {
                let response = self.send(Request::new(Service::Compute, Method::GET, "/")).await?;
                #[derive(Deserialize)]
                struct Root {
                    version: Version,
                }
                #[derive(Deserialize)]
                struct Version {
                    #[serde(default)]
                    version: String,
                    #[serde(default)]
                    min_version: String,
                }
                let root: Root = response.json()?;
                let chosen = negotiate(
                    Service::Compute,
                    &root.version.min_version,
                    &root.version.version,
                    super::compute::NEWEST_SUPPORTED,
                )?;
                tracing::debug!(server_max = %root.version.version, chosen = ?chosen, "negotiated the Nova microversion");
                Ok(chosen)
            })
            .await
            .copied()
    }

    /// The block-storage API's microversion to use: the newest both Cinder and osmo support,
    /// from the v3 version document; `None` when Cinder names none (v3.0 then).
    pub async fn block_storage_microversion(&self) -> Result<Option<Microversion>, Error> {
        self.block_storage_version
            .get_or_try_init(|| async {
                let request = Request::new(Service::BlockStorage, Method::GET, "/").at_version_root();
                #[derive(Deserialize)]
                struct Root {
                    versions: Vec<Version>,
                }
                #[derive(Deserialize)]
                struct Version {
                    id: String,
                    #[serde(default)]
                    version: String,
                    #[serde(default)]
                    min_version: String,
                }
                let root: Root = self.send(request).await?.json()?;
                let chosen = match root.versions.iter().find(|v| v.id.starts_with("v3")) {
                    Some(v3) => {
                        negotiate(Service::BlockStorage, &v3.min_version, &v3.version, super::volume::NEWEST_SUPPORTED)?
                    }
                    None => None,
                };
                tracing::debug!(chosen = ?chosen, "negotiated the Cinder microversion");
                Ok(chosen)
            })
            .await
            .copied()
    }
}

/// Installs the process's TLS crypto provider (ring, as kube uses), which reqwest needs before
/// any client is built. Installing it again is a no-op.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The newest microversion both sides support; `None` when the service has none (Nova's v2).
pub fn negotiate(
    service: Service,
    server_min: &str,
    server_max: &str,
    client_max: Microversion,
) -> Result<Option<Microversion>, Error> {
    let Some(max) = Microversion::parse(server_max) else { return Ok(None) };
    let min = Microversion::parse(server_min).unwrap_or(Microversion(client_max.0, 1));
    if client_max < min {
        return Err(Error::Unsupported(format!(
            "{service} requires microversion {min} or newer; osmo supports up to {client_max}"
        )));
    }
    Ok(Some(max.min(client_max)))
}

/// An endpoint's URL up to and including its API version segment (`/v3` of
/// `http://cinder/v3/{project_id}`); the URL itself when it names no version.
fn version_root(url: &str) -> &str {
    let is_version = |segment: &str| {
        segment.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.split('.').all(|p| p.parse::<u32>().is_ok()))
    };
    let mut end = 0;
    for segment in url.split('/') {
        end += segment.len();
        if is_version(segment) {
            return &url[..end];
        }
        end += 1;
    }
    url
}

/// How long before expiry a token is renewed: a quarter of its life, at most five minutes.
fn renew_margin(issued: jiff::Timestamp, expires: jiff::Timestamp) -> jiff::SignedDuration {
    let life = expires.duration_since(issued);
    (life / 4).min(jiff::SignedDuration::from_mins(5))
}

fn parse_time(text: &str) -> Result<jiff::Timestamp, Error> {
    // Keystone writes "2026-11-22T01:00:00.000000Z".
    text.parse().map_err(|e: jiff::Error| decode_error("/auth/tokens", &format!("bad time {text:?}: {e}")))
}

fn decode_error(path: &str, message: &str) -> Error {
    Error::Decode { service: Service::Identity, path: path.into(), message: message.into() }
}

fn identity_v3_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") { base.to_string() } else { format!("{base}/v3") }
}

fn auth_body(config: &CloudConfig) -> Result<serde_json::Value, Error> {
    use serde_json::{Value, json};
    let a = &config.auth;
    let domain = |id: &Option<String>, name: &Option<String>| -> Option<Value> {
        id.as_ref().map(|id| json!({"id": id})).or_else(|| name.as_ref().map(|n| json!({"name": n})))
    };
    match config.auth_method()? {
        AuthMethod::ApplicationCredential => {
            let secret = a.application_credential_secret.as_ref().ok_or_else(|| {
                Error::Config("application credential auth needs application_credential_secret".into())
            })?;
            let mut credential = json!({"secret": secret.expose_secret()});
            if let Some(id) = &a.application_credential_id {
                credential["id"] = json!(id);
            } else if let Some(name) = &a.application_credential_name {
                credential["name"] = json!(name);
                credential["user"] = user_ref(config)?;
            } else {
                return Err(Error::Config(
                    "application credential auth needs application_credential_id or application_credential_name".into(),
                ));
            }
            Ok(
                json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": credential}}}),
            )
        }
        AuthMethod::Password => {
            let password =
                a.password.as_ref().ok_or_else(|| Error::Config("password auth needs auth.password".into()))?;
            let mut user = user_ref(config)?;
            user["password"] = json!(password.expose_secret());
            let scope = if let Some(id) = &a.project_id {
                Some(json!({"project": {"id": id}}))
            } else if let Some(name) = &a.project_name {
                let domain = domain(&a.project_domain_id, &a.project_domain_name)
                    .or_else(|| domain(&a.user_domain_id, &a.user_domain_name))
                    .unwrap_or_else(|| json!({"id": "default"}));
                Some(json!({"project": {"name": name, "domain": domain}}))
            } else {
                domain(&a.domain_id, &a.domain_name).map(|d| json!({"domain": d}))
            };
            let mut body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}});
            if let Some(scope) = scope {
                body["auth"]["scope"] = scope;
            }
            Ok(body)
        }
    }
}

fn user_ref(config: &CloudConfig) -> Result<serde_json::Value, Error> {
    use serde_json::json;
    let a = &config.auth;
    if let Some(id) = &a.user_id {
        return Ok(json!({"id": id}));
    }
    let name = a.username.as_ref().ok_or_else(|| Error::Config("auth needs username or user_id".into()))?;
    let domain = a
        .user_domain_id
        .as_ref()
        .map(|id| json!({"id": id}))
        .or_else(|| a.user_domain_name.as_ref().map(|n| json!({"name": n})))
        .unwrap_or_else(|| json!({"id": "default"}));
    Ok(json!({"name": name, "domain": domain}))
}

/// The base URL of a service for the cloud's region and interface, without a trailing slash
/// and, for Glance and Neutron, without the API version the paths carry themselves.
fn endpoint_url(catalog: &[CatalogEntry], service: Service, config: &CloudConfig) -> Result<String, Error> {
    let interface = config.interface();
    let region = config.region_name.as_deref();
    let url = service
        .catalog_types()
        .iter()
        .flat_map(|service_type| catalog.iter().filter(move |e| e.service_type == *service_type))
        .flat_map(|e| &e.endpoints)
        .find(|ep| {
            ep.interface == interface
                && region.is_none_or(|r| ep.region.as_deref() == Some(r) || ep.region_id.as_deref() == Some(r))
        })
        .map(|ep| ep.url.trim_end_matches('/').to_string())
        .ok_or_else(|| Error::NoEndpoint {
            service_type: service.catalog_type().into(),
            interface: interface.clone(),
            region: region.map(str::to_string),
        })?;
    Ok(match service {
        Service::Image => url.trim_end_matches("/v2").to_string(),
        Service::Network => url.trim_end_matches("/v2.0").to_string(),
        _ => url,
    })
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-openstack-request-id", "x-compute-request-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(str::to_string))
}

fn is_redirect(status: u16) -> bool {
    (300..400).contains(&status)
}

/// A redirect answer, naming where it points by host and port only (a URL's user part may
/// hold credentials).
fn redirect_error(request: &Request, status: u16, headers: &HeaderMap) -> Error {
    let location = headers.get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
    let to = location.and_then(|l| url::Url::parse(l).ok()).and_then(|url| {
        let host = url.host_str()?;
        Some(url.port().map_or_else(|| host.to_string(), |port| format!("{host}:{port}")))
    });
    Error::Redirect {
        service: request.service,
        method: request.method.to_string(),
        path: request.path.clone(),
        status,
        to,
    }
}

fn transport_error(request: &Request, error: &reqwest::Error) -> Error {
    let kind = if error.is_timeout() {
        TransportKind::Timeout
    } else if is_tls_failure(error) {
        TransportKind::Tls
    } else if error.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    };
    // reqwest's message names the URL, which holds no secret; the token is a header.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    Error::Transport {
        service: request.service,
        method: request.method.to_string(),
        path: request.path.clone(),
        kind,
        message,
    }
}

/// Whether a rustls error is somewhere in the chain of causes. An `io::Error` hides the error
/// it wraps from `source()`, so the walk looks inside it.
fn is_tls_failure(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<rustls::Error>() {
            return true;
        }
        cause = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// A number in [0, 1) that differs between calls and processes; good enough to spread retries.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(std::time::Instant::now()) % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openstack::clouds::parse;

    fn config(extra: &str) -> CloudConfig {
        parse(&format!("clouds:\n  c:\n    auth:\n      auth_url: http://k:5000\n{extra}"), "c").unwrap()
    }

    #[test]
    fn password_auth_is_project_scoped_with_default_domains() {
        let body =
            auth_body(&config("      username: admin\n      password: pw\n      project_name: admin\n")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "pw"}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
            }})
        );
    }

    #[test]
    fn application_credential_auth_has_no_scope() {
        let body = auth_body(&config("      application_credential_id: ac\n      application_credential_secret: s\n"))
            .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "ac", "secret": "s"}}}})
        );
    }

    #[test]
    fn missing_password_is_a_config_error() {
        let e = auth_body(&config("      username: admin\n")).unwrap_err();
        assert_eq!(e.to_string(), "password auth needs auth.password");
    }

    #[test]
    fn auth_url_gets_v3_once() {
        assert_eq!(identity_v3_url("http://k:5000"), "http://k:5000/v3");
        assert_eq!(identity_v3_url("http://k:5000/v3/"), "http://k:5000/v3");
    }

    fn catalog() -> Vec<CatalogEntry> {
        serde_json::from_value(serde_json::json!([
            {"type": "compute", "endpoints": [
                {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "http://nova-one/v2.1"},
                {"interface": "internal", "region": "RegionOne", "url": "http://nova-internal/v2.1"},
                {"interface": "public", "region": "RegionTwo", "url": "http://nova-two/v2.1/"}]},
            {"type": "image", "endpoints": [{"interface": "public", "region": "RegionOne", "url": "http://glance/v2"}]},
            {"type": "network", "endpoints": [{"interface": "public", "region": "RegionOne", "url": "http://neutron/"}]},
            {"type": "volumev3", "endpoints": [{"interface": "public", "region": "RegionOne", "url": "http://cinder-legacy/v3/p"}]},
            {"type": "block-storage", "endpoints": [{"interface": "public", "region": "RegionOne", "url": "http://cinder/v3/p"}]}
        ]))
        .unwrap()
    }

    #[test]
    fn endpoints_follow_region_and_interface() {
        let mut c = config("      username: a\n      password: p\n");
        c.region_name = Some("RegionTwo".into());
        assert_eq!(endpoint_url(&catalog(), Service::Compute, &c).unwrap(), "http://nova-two/v2.1");
        c.region_name = Some("RegionOne".into());
        c.interface = Some("internal".into());
        assert_eq!(endpoint_url(&catalog(), Service::Compute, &c).unwrap(), "http://nova-internal/v2.1");
        assert_eq!(
            endpoint_url(&catalog(), Service::Image, &c).unwrap_err().to_string(),
            "the service catalog has no image endpoint with interface internal in region RegionOne"
        );
        c.interface = None;
        assert_eq!(endpoint_url(&catalog(), Service::Image, &c).unwrap(), "http://glance");
        assert_eq!(endpoint_url(&catalog(), Service::Network, &c).unwrap(), "http://neutron");
        assert_eq!(
            endpoint_url(&catalog(), Service::BlockStorage, &c).unwrap(),
            "http://cinder/v3/p",
            "the official type first"
        );
        let legacy: Vec<_> = catalog().into_iter().filter(|e| e.service_type != "block-storage").collect();
        assert_eq!(endpoint_url(&legacy, Service::BlockStorage, &c).unwrap(), "http://cinder-legacy/v3/p");
    }

    #[test]
    fn microversions_are_negotiated_down_to_what_both_support() {
        let ours = Microversion(2, 95);
        let nova = Service::Compute;
        assert_eq!(negotiate(nova, "2.1", "2.104", ours).unwrap(), Some(ours));
        assert_eq!(negotiate(nova, "2.1", "2.38", ours).unwrap(), Some(Microversion(2, 38)));
        assert_eq!(negotiate(nova, "", "", ours).unwrap(), None, "a v2 Nova has no microversions");
        let too_new = negotiate(nova, "2.96", "2.99", ours).unwrap_err();
        assert_eq!(too_new.to_string(), "nova requires microversion 2.96 or newer; osmo supports up to 2.95");
        assert!(Microversion(2, 9) < Microversion(2, 10));
        let cinder = Service::BlockStorage;
        assert_eq!(negotiate(cinder, "3.0", "3.79", Microversion(3, 71)).unwrap(), Some(Microversion(3, 71)));
        assert_eq!(negotiate(cinder, "3.0", "3.59", Microversion(3, 71)).unwrap(), Some(Microversion(3, 59)));
    }

    #[test]
    fn the_version_root_drops_what_follows_the_version() {
        assert_eq!(version_root("http://cinder:8776/v3/4f9a"), "http://cinder:8776/v3");
        assert_eq!(version_root("https://cloud/volume/v3"), "https://cloud/volume/v3");
        assert_eq!(version_root("http://nova/compute/v2.1"), "http://nova/compute/v2.1");
        assert_eq!(version_root("http://v3.example:8776/v3/p"), "http://v3.example:8776/v3");
        assert_eq!(version_root("http://cinder:8776"), "http://cinder:8776");
    }

    #[test]
    fn tokens_are_renewed_a_quarter_life_early_at_most_five_minutes() {
        let issued = jiff::Timestamp::from_second(0).unwrap();
        assert_eq!(
            renew_margin(issued, issued + jiff::SignedDuration::from_secs(20)),
            jiff::SignedDuration::from_secs(5)
        );
        assert_eq!(
            renew_margin(issued, issued + jiff::SignedDuration::from_hours(1)),
            jiff::SignedDuration::from_mins(5)
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(800));
        assert_eq!(p.delay(30, 1.0), Duration::from_secs(5));
        assert_eq!(p.delay(3, 0.0), Duration::from_millis(400));
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }
}
