//! What the benchmarks share: a client of the kube-apiserver, and the operator's metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

/// A client acting as the kubeconfig at `path` says.
pub async fn kube_client(path: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The operator's /metrics, from its HTTP server at `addr`.
pub fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: osmo\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// Starts the operator on namespace `ns` alone, logging as `rust_log` says; returns it and the
/// address of its HTTP server. `OSMO_BENCH_LOG=FILE` keeps its log in FILE (the last started
/// operator's), with one line per OpenStack request.
pub fn start_operator(kubeconfig: &str, ns: &str, rust_log: &str) -> (Child, String) {
    let mut log = std::env::var_os("OSMO_BENCH_LOG").map(|path| std::fs::File::create(path).unwrap());
    let rust_log = if log.is_some() { "info,osmo::openstack::session=debug" } else { rust_log };
    let mut operator = Command::new(env!("CARGO_BIN_EXE_osmo"))
        .args(["run", "--listen", "127.0.0.1:0", "--namespace", ns, "--no-leader-election"])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", rust_log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(operator.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("operator exited").unwrap();
        if line.contains("serving /healthz") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["fields"]["bound"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(log) = log.as_mut() {
                writeln!(log, "{line}").unwrap();
            }
        }
    });
    (operator, addr)
}

/// The sum of a metric's samples (all label sets) in a /metrics text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}
