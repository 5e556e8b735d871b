//! What the end-to-end tests share: the real control plane started by `hack/kube-up.sh`
//! (its admin kubeconfig in `OSMO_E2E_KUBECONFIG`), the CRDs and the chart's RBAC installed
//! once, the operator run as a process under the chart's ServiceAccount, and `kubectl`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Namespace of the chart's ServiceAccount in the tests.
pub const OPERATOR_NAMESPACE: &str = "osmo-system";
pub const OPERATOR_SERVICE_ACCOUNT: &str = "osmo";

pub struct Env {
    /// Admin (system:masters): what the tests act as, like a cluster operator would.
    pub admin_kubeconfig: PathBuf,
    /// The chart's ServiceAccount, by a token from `kubectl create token`.
    pub operator_kubeconfig: PathBuf,
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shared environment, set up once per test run.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let admin_kubeconfig = PathBuf::from(
            std::env::var("OSMO_E2E_KUBECONFIG")
                .expect("OSMO_E2E_KUBECONFIG is not set: run the tests with hack/test.sh"),
        );
        let env = Env {
            operator_kubeconfig: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator.kubeconfig"),
            admin_kubeconfig,
        };
        install_crds_and_rbac(&env);
        env
    })
}

fn install_crds_and_rbac(env: &Env) {
    kubectl_ok(env, &["apply", "-f", repo().join("crds").to_str().unwrap()]);
    kubectl_ok(
        env,
        &[
            "wait",
            "--for=condition=Established",
            "crd/instancemigrations.osmo.dev",
            "crd/computenodedrains.osmo.dev",
            "--timeout=60s",
        ],
    );
    let ns = kubectl(env, &["create", "namespace", OPERATOR_NAMESPACE]);
    assert!(ns.status.success() || String::from_utf8_lossy(&ns.stderr).contains("AlreadyExists"), "{ns:?}");
    let rbac = helm(&[
        "template",
        "osmo",
        repo().join("charts/osmo").to_str().unwrap(),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ]);
    kubectl_stdin_ok(env, &["apply", "-f", "-"], &rbac);
    service_account_kubeconfig(env, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, &env.operator_kubeconfig);
}

/// Writes a kubeconfig at `path` that acts as ServiceAccount `namespace/name`, by a token from
/// `kubectl create token`, as a pod of the chart's Deployment would. The file appears whole
/// (another test run beside this one may be starting an operator with it).
pub fn service_account_kubeconfig(env: &Env, namespace: &str, name: &str, path: &Path) {
    let token = kubectl_ok(env, &["create", "token", name, "-n", namespace, "--duration=4h"]);
    let written = path.with_extension(format!("{}.part", std::process::id()));
    std::fs::copy(&env.admin_kubeconfig, &written).unwrap();
    let config = written.to_str().unwrap();
    run_ok(Command::new("kubectl").args([
        "--kubeconfig",
        config,
        "config",
        "set-credentials",
        name,
        &format!("--token={}", token.trim()),
    ]));
    run_ok(Command::new("kubectl").args([
        "--kubeconfig",
        config,
        "config",
        "set-context",
        "--current",
        &format!("--user={name}"),
    ]));
    std::fs::rename(&written, path).unwrap();
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub fn helm(args: &[&str]) -> String {
    run_ok(Command::new("helm").args(args))
}

/// `kubectl` as the admin.
pub fn kubectl(env: &Env, args: &[&str]) -> Output {
    run(Command::new("kubectl").env("KUBECONFIG", &env.admin_kubeconfig).args(args))
}

pub fn kubectl_ok(env: &Env, args: &[&str]) -> String {
    run_ok(Command::new("kubectl").env("KUBECONFIG", &env.admin_kubeconfig).args(args))
}

/// `kubectl` as the admin with `input` on standard input.
pub fn kubectl_stdin(env: &Env, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", &env.admin_kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

pub fn kubectl_stdin_ok(env: &Env, args: &[&str], input: &str) -> String {
    let out = kubectl_stdin(env, args, input);
    assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh namespace for one test, so tests can run side by side.
pub fn namespace(env: &Env, test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("e2e-{test}-{:x}", nanos ^ std::process::id());
    kubectl_ok(env, &["create", "namespace", &name]);
    name
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `deadline`.
pub fn eventually<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `osmo run` process under the chart's ServiceAccount; killed when dropped.
pub struct Operator {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    pub listen: SocketAddr,
}

impl Operator {
    /// Starts the operator watching `namespace` only, with its own lease name.
    pub fn start(env: &Env, namespace: &str, identity: &str, lease: &str) -> Operator {
        let args = [
            "run",
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            namespace,
            "--identity",
            identity,
            "--lease-name",
            lease,
            "--lease-namespace",
            OPERATOR_NAMESPACE,
        ];
        Operator::spawn(&env.operator_kubeconfig, identity, &args, &[("RUST_LOG", "info,osmo=debug")])
    }

    /// Starts `osmo` with `args` and `vars` as a ServiceAccount's `kubeconfig`; `tag` marks its
    /// log lines. The HTTP server must listen on port 0 of 127.0.0.1.
    pub fn spawn(kubeconfig: &Path, tag: &str, args: &[&str], vars: &[(&str, &str)]) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_osmo"))
            .args(args)
            .envs(vars.iter().copied())
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start osmo");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stderr = child.stderr.take().unwrap();
        let tag = tag.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("OSMO_E2E_VERBOSE").is_some() {
                    eprintln!("[{tag}] {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut op = Operator { child, logs, listen: "0.0.0.0:0".parse().unwrap() };
        let line = op.wait_for_log("serving /healthz", Duration::from_secs(30));
        let bound: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        op.listen = bound["fields"]["bound"].as_str().unwrap().parse().unwrap();
        op
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_log(&mut self, needle: &str, deadline: Duration) -> String {
        eventually(deadline, &format!("log line {needle:?}"), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("operator exited with {status} before logging {needle:?}:\n{}", self.logs());
            }
            self.logs.lock().unwrap().iter().find(|l| l.contains(needle)).cloned()
        })
    }

    /// How many log lines so far contain `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        self.logs.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// How many log lines so far contain every one of `needles`.
    pub fn count_logs_with_all(&self, needles: &[&str]) -> usize {
        self.logs.lock().unwrap().iter().filter(|l| needles.iter().all(|n| l.contains(n))).count()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as Kubernetes stops a pod; returns the exit status.
    pub fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        run_ok(Command::new("kill").args(["-TERM", &self.pid().to_string()]));
        eventually(deadline, "the operator to exit after SIGTERM", || self.child.try_wait().unwrap())
    }

    /// Waits for the operator to exit on its own; returns the exit status.
    pub fn wait_for_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        eventually(deadline, "the operator to exit", || self.child.try_wait().unwrap())
    }

    /// GET a path of the operator's HTTP server; returns (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.listen).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: osmo\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (code, body)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSONPath read with kubectl, e.g. `{.status.phase}`.
pub fn jsonpath(env: &Env, namespace: &str, resource: &str, path: &str) -> String {
    let out = kubectl(env, &["-n", namespace, "get", resource, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl wait --for=<wait_for> <resource>` (e.g. `condition=Ready`, `im/web`); on time-out,
/// fails showing the resource's status.
pub fn wait_for(env: &Env, namespace: &str, resource: &str, wait_for: &str, seconds: u32) {
    let out = kubectl(
        env,
        &["-n", namespace, "wait", &format!("--for={wait_for}"), resource, &format!("--timeout={seconds}s")],
    );
    if !out.status.success() {
        let status = jsonpath(env, namespace, resource, "{.status}");
        panic!("{resource} did not reach {wait_for}: {}\nstatus: {status}", String::from_utf8_lossy(&out.stderr));
    }
}
