//! A scripted stand-in for Keystone and Nova/Glance/Neutron on 127.0.0.1, for unit tests of
//! the client's behaviour (token renewal, retries, legacy APIs) with recorded answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::clouds;
use super::session::Session;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    /// Path and query, below the service root (e.g. `/v2.1/servers/detail?..`).
    pub path: String,
    pub body: String,
    pub token: Option<String>,
    /// The `OpenStack-API-Version` header, e.g. `volume 3.71`.
    pub api_version: Option<String>,
}

/// An answer: status, extra headers, body.
pub type Reply = (u16, Vec<(&'static str, String)>, String);

type Script = Box<dyn FnMut(&Call) -> Reply + Send>;

struct FakeState {
    addr: SocketAddr,
    token_lifetime_secs: i64,
    nova_max: String,
    issued: Mutex<u32>,
    calls: Mutex<Vec<Call>>,
    script: Mutex<Script>,
    /// The image endpoint its catalog names, when another fake's (one Glance for two clouds).
    image_url: Mutex<Option<String>>,
}

pub struct FakeCloud {
    state: Arc<FakeState>,
}

impl FakeCloud {
    /// Starts the fake; `script` answers every request but token issue and the Nova root.
    pub async fn start(nova_max: &str, script: impl FnMut(&Call) -> Reply + Send + 'static) -> FakeCloud {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = Arc::new(FakeState {
            addr: listener.local_addr().unwrap(),
            token_lifetime_secs: 3600,
            nova_max: nova_max.to_string(),
            issued: Mutex::new(0),
            calls: Mutex::new(Vec::new()),
            script: Mutex::new(Box::new(script)),
            image_url: Mutex::new(None),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeCloud { state }
    }

    /// A `clouds.yaml` whose cloud `fake` is this fake, with password auth.
    pub fn clouds_yaml(&self, password: &str) -> String {
        clouds_yaml(&format!("http://{}/v3", self.state.addr), password)
    }

    /// The fake's address, e.g. to serve other APIs from its script.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.state.addr
    }

    /// Names `other`'s image endpoint in the tokens' catalogs from now on: the two clouds
    /// share one Glance.
    pub fn share_glance_of(&self, other: &FakeCloud) {
        *self.state.image_url.lock().unwrap() = Some(format!("http://{}", other.state.addr));
    }

    /// A session against the fake with password auth.
    pub fn session(&self, password: &str) -> Session {
        session(&format!("http://{}/v3", self.state.addr), password)
    }

    /// Every request but token issue, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> u32 {
        *self.state.issued.lock().unwrap()
    }
}

/// A `clouds.yaml` whose cloud `fake` logs in at `auth_url` with password auth.
pub fn clouds_yaml(auth_url: &str, password: &str) -> String {
    format!(
        "clouds:\n  fake:\n    auth:\n      auth_url: {auth_url}\n      username: admin\n      password: {password}\n      project_name: admin\n"
    )
}

/// A session of cloud `fake` logging in at `auth_url` with password auth, retrying quickly.
pub fn session(auth_url: &str, password: &str) -> Session {
    let retry = super::session::RetryPolicy { first_delay: std::time::Duration::from_millis(5), ..Default::default() };
    Session::new(clouds::parse(&clouds_yaml(auth_url, password), "fake").unwrap(), None).unwrap().with_retry(retry)
}

/// A server on 127.0.0.1 that reads each request and gives every one the same answer,
/// counting the connections: a server that redirects, or where a redirect points.
pub struct CannedServer {
    addr: SocketAddr,
    connections: Arc<AtomicU32>,
}

impl CannedServer {
    /// Answers every request `status` with `headers` and no body.
    pub async fn start(status: u16, headers: &[(&str, &str)]) -> CannedServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let head: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
        let answer = format!("HTTP/1.1 {status} Canned\r\n{head}Content-Length: 0\r\nConnection: close\r\n\r\n");
        let connections = Arc::new(AtomicU32::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    // The whole request is read first: closing on unread bytes resets the connection.
                    read_request(&mut stream).await;
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        CannedServer { addr, connections }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request: the head, then as many bytes as its Content-Length says.
async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_string()))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn handle(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    if method == Method::POST && path == "/v3/auth/tokens" {
        if !body.contains("\"secret\"") {
            let error = r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;
            return (StatusCode::UNAUTHORIZED, error).into_response();
        }
        let n = {
            let mut issued = state.issued.lock().unwrap();
            *issued += 1;
            *issued
        };
        let now = jiff::Timestamp::now();
        let expires = now + jiff::SignedDuration::from_secs(state.token_lifetime_secs);
        let base = format!("http://{}", state.addr);
        let image = state.image_url.lock().unwrap().clone().unwrap_or_else(|| base.clone());
        let token = serde_json::json!({"token": {
        "issued_at": now.to_string(), "expires_at": expires.to_string(),
        "roles": [{"id": "r-1", "name": "admin"}, {"id": "r-2", "name": "member"}],
        "catalog": [
            {"type": "compute", "endpoints": [{"interface": "public", "region": "RegionOne", "url": format!("{base}/v2.1")}]},
            {"type": "image", "endpoints": [{"interface": "public", "region": "RegionOne", "url": image}]},
            {"type": "network", "endpoints": [{"interface": "public", "region": "RegionOne", "url": base}]},
            {"type": "volumev3", "endpoints": [{"interface": "public", "region": "RegionOne", "url": format!("{base}/v3/p-1")}]},
        ]}});
        return (StatusCode::CREATED, [("X-Subject-Token", format!("tok-{n}"))], token.to_string()).into_response();
    }
    if method == Method::GET && path == "/v2.1/" {
        let version = serde_json::json!({"version": {"id": "v2.1", "status": "CURRENT", "min_version": "2.1", "version": state.nova_max}});
        return (StatusCode::OK, version.to_string()).into_response();
    }
    let call = Call {
        method,
        path,
        body,
        token: headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()).map(str::to_string),
        api_version: headers.get("OpenStack-API-Version").and_then(|v| v.to_str().ok()).map(str::to_string),
    };
    state.calls.lock().unwrap().push(call.clone());
    let (status, extra, text) = (state.script.lock().unwrap())(&call);
    let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response.headers_mut().insert("x-openstack-request-id", "req-fake".parse().unwrap());
    response
}

pub fn ok(body: serde_json::Value) -> Reply {
    (200, vec![], body.to_string())
}

pub fn status(code: u16, message: &str) -> Reply {
    (code, vec![], serde_json::json!({"error": {"message": message, "code": code}}).to_string())
}
