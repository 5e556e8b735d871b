//! Credentials stay where they belong: a broken `clouds.yaml` leaves its password nowhere the
//! operator writes, and a Keystone that redirects gets no credential through to the address it
//! names.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{Env, Operator, env, jsonpath, kubectl_ok, kubectl_stdin_ok, namespace};
use crate::migration::wait_condition;

/// The Secret `clouds` in `ns`, holding `yaml` as its `clouds.yaml`.
fn clouds_secret(env: &Env, ns: &str, yaml: &str) {
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "clouds"},
        "stringData": {"clouds.yaml": yaml},
    });
    kubectl_stdin_ok(env, &["-n", ns, "apply", "-f", "-"], &secret.to_string());
}

/// An InstanceMigration `name` of a server of cloud `admin` in the Secret `clouds`; the
/// server is never looked up, as the credentials fail first.
fn migration(env: &Env, ns: &str, name: &str) {
    let manifest = format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: {name}}}\n\
         spec: {{server: web-1, source: {{secretName: clouds, cloud: admin}}, target: {{availabilityZone: icehouse}}}}\n"
    );
    kubectl_stdin_ok(env, &["-n", ns, "apply", "-f", "-"], &manifest);
}

fn failed_reason(env: &Env, ns: &str, name: &str) -> String {
    jsonpath(env, ns, &format!("im/{name}"), "{.status.conditions[?(@.type==\"Failed\")].reason}")
}

#[test]
fn a_broken_clouds_yaml_leaves_its_password_nowhere() {
    const PASSWORD: &str = "e2e-Zq9-hunter2-wX";
    let env = env();
    let ns = namespace(env, "leak");
    // The password's quote is never closed: the YAML error's position lies past its line.
    let yaml = format!(
        "clouds:\n  admin:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: admin\n      \
         password: \"{PASSWORD}\n      project_name: admin\n"
    );
    clouds_secret(env, &ns, &yaml);
    let op = Operator::start(env, &ns, "leak", &format!("osmo-{ns}"));
    migration(env, &ns, "web");
    wait_condition(env, &ns, "web", "Failed", 60);
    assert_eq!(failed_reason(env, &ns, "web"), "CloudInvalid");
    let last_error = jsonpath(env, &ns, "im/web", "{.status.lastError}");
    assert!(last_error.contains("clouds.yaml line 7, column 7"), "{last_error}");

    let shown = [
        ("the resource", kubectl_ok(env, &["-n", &ns, "get", "im", "-o", "yaml"])),
        ("the events", kubectl_ok(env, &["-n", &ns, "get", "events", "-o", "yaml"])),
        ("the events (events.k8s.io)", kubectl_ok(env, &["-n", &ns, "get", "events.events.k8s.io", "-o", "yaml"])),
        ("the operator's logs", op.logs()),
    ];
    for (where_, text) in shown {
        assert!(!text.contains(PASSWORD), "the password is in {where_}:\n{text}");
    }
}

/// A server on 127.0.0.1 answering every request with `head` (status line and headers, no
/// body), counting the connections it gets.
struct CannedServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl CannedServer {
    fn start(head: String) -> CannedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                counted.fetch_add(1, Ordering::SeqCst);
                read_request(&mut stream);
                let _ = write!(stream, "{head}Content-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        CannedServer { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request, its body included: closing on unread bytes resets the connection.
fn read_request(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn a_keystone_that_redirects_gets_no_credential_through() {
    const PASSWORD: &str = "e2e-Redirected-Pa55";
    let env = env();
    let ns = namespace(env, "redirect");
    let elsewhere = CannedServer::start("HTTP/1.1 404 Not Found\r\n".to_string());
    let keystone = CannedServer::start(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{}/v3/auth/tokens\r\n",
        elsewhere.addr
    ));
    let yaml = format!(
        "clouds:\n  admin:\n    auth:\n      auth_url: http://{}/v3\n      username: admin\n      password: {PASSWORD}\n      project_name: admin\n",
        keystone.addr
    );
    clouds_secret(env, &ns, &yaml);
    let op = Operator::start(env, &ns, "redirect", &format!("osmo-{ns}"));
    migration(env, &ns, "web");
    wait_condition(env, &ns, "web", "Failed", 60);
    assert!(keystone.connections() >= 1, "the operator never asked Keystone");
    assert_eq!(elsewhere.connections(), 0, "the redirect was followed, with the password");
    assert_eq!(failed_reason(env, &ns, "web"), "OpenStackError");
    let last_error = jsonpath(env, &ns, "im/web", "{.status.lastError}");
    let expected = format!("keystone POST /auth/tokens: HTTP 307, a redirect to {}, not followed", elsewhere.addr);
    assert!(last_error.contains(&expected), "{last_error}");
    assert!(!op.logs().contains(PASSWORD));
}
