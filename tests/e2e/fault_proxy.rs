//! A fault-injecting HTTP proxy for OpenStack APIs: one listener per upstream service port,
//! forwarding to the real service and rewriting the service URLs in answers (the Keystone
//! catalog, Location headers) so that the client keeps talking through the proxy. At set
//! rates it answers 503 without forwarding, forwards and then loses the answer (504: the
//! request took effect but the client cannot know), cuts the connection mid-answer, or delays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How often each fault happens, per request (0.0 to 1.0; the rest is forwarded intact).
#[derive(Clone, Debug, Default)]
pub struct FaultRates {
    /// Answer 503 without forwarding.
    pub unavailable: f64,
    /// Forward, then answer 504 instead of the real answer.
    pub lost_answer: f64,
    /// Forward, then cut the connection in the middle of the answer.
    pub reset: f64,
    /// Delay the request by `delay` before forwarding.
    pub delayed: f64,
    pub delay: Duration,
}

/// What the proxy did, for the test's assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub forwarded: u64,
    pub unavailable: u64,
    pub lost_answer: u64,
    pub reset: u64,
    pub delayed: u64,
}

struct Shared {
    rates: Mutex<FaultRates>,
    counts: Mutex<FaultCounts>,
    /// upstream "host:port" -> proxy "host:port", for rewriting answers.
    rewrites: Vec<(String, String)>,
    http: reqwest::Client,
    rng: AtomicU64,
}

struct Listener {
    shared: Arc<Shared>,
    upstream: String,
}

pub struct FaultProxy {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Proxies each of `upstream_ports` on 127.0.0.1, with no faults until [`set_rates`].
    pub fn start(upstream_ports: &[u16], seed: u64) -> FaultProxy {
        // Its own runtime, so that it keeps serving whatever the test's runtime does.
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listeners: Vec<_> = upstream_ports
            .iter()
            .map(|port| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.set_nonblocking(true).unwrap();
                (*port, listener)
            })
            .collect();
        let addresses: BTreeMap<u16, SocketAddr> =
            listeners.iter().map(|(p, l)| (*p, l.local_addr().unwrap())).collect();
        osmo::openstack::session::install_tls_provider();
        let rewrites = addresses.iter().map(|(p, a)| (format!("127.0.0.1:{p}"), a.to_string())).collect();
        let shared = Arc::new(Shared {
            rates: Mutex::new(FaultRates::default()),
            counts: Mutex::new(FaultCounts::default()),
            rewrites,
            http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap(),
            rng: AtomicU64::new(seed.max(1)),
        });
        for (port, listener) in listeners {
            let state = Arc::new(Listener { shared: shared.clone(), upstream: format!("http://127.0.0.1:{port}") });
            let app = Router::new().fallback(forward).with_state(state);
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            });
        }
        FaultProxy { shared, runtime: Some(runtime) }
    }

    pub fn set_rates(&self, rates: FaultRates) {
        *self.shared.rates.lock().unwrap() = rates;
    }

    pub fn counts(&self) -> FaultCounts {
        self.shared.counts.lock().unwrap().clone()
    }

    /// The proxy's URL for an upstream URL on 127.0.0.1.
    pub fn url_for(&self, upstream: &str) -> String {
        rewrite(&self.shared.rewrites, upstream)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn rewrite(rewrites: &[(String, String)], text: &str) -> String {
    rewrites.iter().fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

impl Shared {
    /// xorshift64*: deterministic for a seed, so a failing run can be repeated.
    fn roll(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

enum Fault {
    None,
    Unavailable,
    LostAnswer,
    Reset,
}

async fn forward(
    State(l): State<Arc<Listener>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &l.shared;
    let rates = shared.rates.lock().unwrap().clone();
    let (fault, delayed) = {
        let r = shared.roll();
        let fault = if r < rates.unavailable {
            Fault::Unavailable
        } else if r < rates.unavailable + rates.lost_answer {
            Fault::LostAnswer
        } else if r < rates.unavailable + rates.lost_answer + rates.reset {
            Fault::Reset
        } else {
            Fault::None
        };
        (fault, shared.roll() < rates.delayed)
    };
    if delayed {
        shared.counts.lock().unwrap().delayed += 1;
        tokio::time::sleep(rates.delay).await;
    }
    if let Fault::Unavailable = fault {
        shared.counts.lock().unwrap().unavailable += 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error": {"message": "injected: service unavailable", "code": 503}}"#,
        )
            .into_response();
    }
    let url = format!("{}{}", l.upstream, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut request = shared.http.request(method, url).body(body);
    for (name, value) in headers.iter() {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    let status = upstream.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if name == "content-length" || name == "transfer-encoding" || name == "connection" {
            continue;
        }
        let value = rewrite(&shared.rewrites, value.to_str().unwrap_or_default());
        if let Ok(v) = value.parse() {
            out_headers.insert(name.clone(), v);
        }
    }
    let text = rewrite(&shared.rewrites, &upstream.text().await.unwrap_or_default());
    match fault {
        Fault::LostAnswer => {
            shared.counts.lock().unwrap().lost_answer += 1;
            (StatusCode::GATEWAY_TIMEOUT, r#"{"error": {"message": "injected: answer lost", "code": 504}}"#)
                .into_response()
        }
        Fault::Reset => {
            shared.counts.lock().unwrap().reset += 1;
            // Headers go out, then the body fails: the client sees the connection cut.
            let cut =
                futures::stream::once(async { Err::<Bytes, _>(std::io::Error::other("injected: connection reset")) });
            let mut response = Response::new(Body::from_stream(cut));
            *response.status_mut() = status;
            response
        }
        _ => {
            shared.counts.lock().unwrap().forwarded += 1;
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = status;
            *response.headers_mut() = out_headers;
            response
        }
    }
}
