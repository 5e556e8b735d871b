//! Typed OpenStack errors, classified as transient (retry) or permanent (report).

use std::fmt;

/// One OpenStack API error or failure to reach an API. Never holds a token or a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The service answered with an error status.
    #[error("{service} {method} {path}: HTTP {status}{}: {message}", request_id.as_deref().map(|id| format!(" (request {id})")).unwrap_or_default())]
    Api { service: Service, method: String, path: String, status: u16, request_id: Option<String>, message: String },
    /// The service answered with a redirect, which osmo does not follow: it would carry the
    /// token, or Keystone's password body, to whatever address the answer names.
    #[error("{service} {method} {path}: HTTP {status}, a redirect{}, not followed: credentials go only to the auth_url and the catalog's endpoints", to.as_deref().map(|host| format!(" to {host}")).unwrap_or_default())]
    Redirect { service: Service, method: String, path: String, status: u16, to: Option<String> },
    /// The service could not be reached, or did not answer in time.
    #[error("{service} {method} {path}: {kind}: {message}")]
    Transport { service: Service, method: String, path: String, kind: TransportKind, message: String },
    /// Keystone refused the credentials.
    #[error("authentication failed at {auth_url}: HTTP {status}: {message}")]
    Auth { auth_url: String, status: u16, message: String },
    /// The catalog has no usable endpoint for a service.
    #[error("the service catalog has no {service_type} endpoint with interface {interface}{}", region.as_deref().map(|r| format!(" in region {r}")).unwrap_or_default())]
    NoEndpoint { service_type: String, interface: String, region: Option<String> },
    /// The clouds.yaml or the Secret holding it is unusable.
    #[error("{0}")]
    Config(String),
    /// Legacy nova-network APIs are gone from this Nova (HTTP 404 or 410).
    #[error("nova-network is not available in this cloud: {path} answered HTTP {status}")]
    NovaNetworkUnavailable { path: String, status: u16 },
    /// The cloud's Nova is too old or too new for a call.
    #[error("{0}")]
    Unsupported(String),
    /// A response did not have the expected shape.
    #[error("{service} {path}: unexpected response: {message}")]
    Decode { service: Service, path: String, message: String },
}

/// Why a request did not get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Timeout,
    Connect,
    /// The TLS handshake failed (e.g. an untrusted certificate): not worth retrying.
    Tls,
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Timeout => "timed out",
            TransportKind::Connect => "connection failed",
            TransportKind::Tls => "TLS handshake failed",
            TransportKind::Other => "request failed",
        })
    }
}

/// The OpenStack services osmo talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Identity,
    Compute,
    Image,
    Network,
    /// Cinder, v3.
    BlockStorage,
}

impl Service {
    /// The service type in the Keystone catalog.
    pub fn catalog_type(self) -> &'static str {
        self.catalog_types()[0]
    }

    /// Every type a cloud may register the service under, the official one first: Cinder's v3
    /// API is `block-storage` or, in many clouds, still `volumev3`.
    pub fn catalog_types(self) -> &'static [&'static str] {
        match self {
            Service::Identity => &["identity"],
            Service::Compute => &["compute"],
            Service::Image => &["image"],
            Service::Network => &["network"],
            Service::BlockStorage => &["block-storage", "volumev3"],
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Identity => "keystone",
            Service::Compute => "nova",
            Service::Image => "glance",
            Service::Network => "neutron",
            Service::BlockStorage => "cinder",
        })
    }
}

impl Error {
    /// Worth retrying: timeouts, connection failures, 5xx, 429, and Nova's 409 for a server
    /// busy with another task. Everything else is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { kind, .. } => *kind != TransportKind::Tls,
            Error::Api { status, service, message, .. } => {
                matches!(status, 500 | 502 | 503 | 504 | 429)
                    || (*status == 409 && *service == Service::Compute && is_task_state_conflict(message))
            }
            _ => false,
        }
    }

    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Nova says 409 both for "busy, try later" (task state) and for requests that can never
/// succeed in the current state (e.g. stopping a stopped server); only the first is transient.
fn is_task_state_conflict(message: &str) -> bool {
    message.contains("task_state") && !message.contains("vm_state")
}

/// The human message of an OpenStack error body: `{"itemNotFound": {"message": ..}}` (Nova),
/// `{"NeutronError": {"message": ..}}`, `{"error": {"message": ..}}` (Keystone), or Glance's
/// text. Cut to a bounded size.
pub fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        let obj = v.as_object()?;
        obj.values()
            .find_map(|inner| inner.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .or_else(|| obj.get("message").and_then(|m| m.as_str()).map(str::to_string))
    });
    let text = from_json.unwrap_or_else(|| body.split_whitespace().collect::<Vec<_>>().join(" "));
    let mut cut: String = text.chars().take(500).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(service: Service, status: u16, message: &str) -> Error {
        Error::Api {
            service,
            method: "POST".into(),
            path: "/x".into(),
            status,
            request_id: Some("req-1".into()),
            message: message.into(),
        }
    }

    #[test]
    fn classification() {
        assert!(api(Service::Compute, 503, "").is_transient());
        assert!(api(Service::Network, 500, "").is_transient());
        assert!(
            api(Service::Compute, 409, "Cannot 'os-stop' instance x while it is in task_state image_snapshot")
                .is_transient()
        );
        assert!(
            !api(Service::Compute, 409, "Cannot 'os-stop' instance x while it is in vm_state stopped").is_transient()
        );
        assert!(!api(Service::Compute, 404, "").is_transient());
        assert!(!api(Service::Compute, 400, "").is_transient());
        let timeout = Error::Transport {
            service: Service::Image,
            method: "GET".into(),
            path: "/".into(),
            kind: TransportKind::Timeout,
            message: String::new(),
        };
        assert!(timeout.is_transient());
        let untrusted = Error::Transport {
            service: Service::Identity,
            method: "POST".into(),
            path: "/auth/tokens".into(),
            kind: TransportKind::Tls,
            message: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(!untrusted.is_transient(), "an untrusted certificate does not heal by retrying");
        assert!(!Error::Auth { auth_url: "u".into(), status: 401, message: String::new() }.is_transient());
    }

    #[test]
    fn messages_name_service_status_and_request_id() {
        let e = api(Service::Compute, 404, "Flavor m1.huge could not be found.");
        assert_eq!(e.to_string(), "nova POST /x: HTTP 404 (request req-1): Flavor m1.huge could not be found.");
    }

    #[test]
    fn error_bodies_of_each_service_are_understood() {
        assert_eq!(
            error_message(r#"{"itemNotFound": {"message": "Instance x could not be found.", "code": 404}}"#),
            "Instance x could not be found."
        );
        assert_eq!(
            error_message(
                r#"{"NeutronError": {"type": "PortNotFound", "message": "Port y could not be found.", "detail": ""}}"#
            ),
            "Port y could not be found."
        );
        assert_eq!(
            error_message(
                r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(
            error_message("<html><body>404 Not Found\n\nThe resource could not be found.</body></html>"),
            "<html><body>404 Not Found The resource could not be found.</body></html>"
        );
        assert!(error_message(&"x".repeat(2000)).len() <= 503);
    }
}
