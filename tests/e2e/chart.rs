//! The Helm chart, with the real helm: rendered with default and non-default values, refused
//! with wrong ones, and installed, upgraded and uninstalled on the real kube-apiserver, where
//! the operator then runs with the Deployment's own arguments under the release's
//! ServiceAccount.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    Env, Operator, env, eventually, jsonpath, kubectl, kubectl_ok, kubectl_stdin_ok, namespace, repo,
    service_account_kubeconfig,
};

fn chart() -> String {
    repo().join("charts/osmo").to_str().unwrap().to_string()
}

/// `helm template` of the chart as release `osmo` in `osmo-system`, with `--set` values.
fn render(values: &[&str]) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new("helm");
    cmd.args(["template", "osmo", &chart(), "--namespace", "osmo-system"]);
    for value in values {
        cmd.args(["--set", value]);
    }
    let out = cmd.output().expect("helm");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs.iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    kinds
}

fn container(docs: &[Value]) -> &Value {
    &find(docs, "Deployment").expect("a Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

fn env_var(docs: &[Value], name: &str) -> Value {
    container(docs)["env"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap()["value"].clone()
}

#[test]
fn the_chart_renders_a_hardened_least_privilege_operator_by_default() {
    let docs = render(&[]).unwrap();
    assert_eq!(
        kinds(&docs),
        ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]
    );
    let deployment = find(&docs, "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let osmo = container(&docs);
    assert_eq!(osmo["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(osmo["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(osmo["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(osmo["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(osmo["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(osmo["resources"]["requests"]["memory"].is_string() && osmo["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        args(&docs),
        [
            "run",
            "--listen=0.0.0.0:8080",
            "--concurrency=16",
            "--openstack-changes-per-cloud=8",
            "--lease-name=osmo-leader"
        ]
    );
    let service = find(&docs, "Service").unwrap();
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");

    // No wildcard anywhere; Secrets only read by name.
    for role in docs.iter().filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role") {
        for rule in role["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(!rule[field].as_array().unwrap().contains(&"*".into()), "wildcard in {rule}");
            }
            // Read by name, and created (a server's user data): never listed, changed or deleted.
            if rule["resources"].as_array().unwrap().contains(&"secrets".into()) {
                let verbs = &rule["verbs"];
                assert!(*verbs == serde_json::json!(["get"]) || *verbs == serde_json::json!(["create"]), "{rule}");
            }
        }
    }
}

#[test]
fn the_chart_renders_non_default_values() {
    let values = [
        "watchNamespace=team-a",
        "replicas=1",
        "leaderElection.enabled=false",
        "logLevel=debug",
        "concurrency=4",
        "openstackChangesPerCloud=2",
        "image.repository=registry.example/osmo",
        "image.tag=1.2.3",
        "metrics.port=9090",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prometheus",
        "podDisruptionBudget.enabled=true",
    ];
    let docs = render(&values).unwrap();
    let lint = Command::new("helm").args(["lint", "--strict", &chart(), "--set", &values.join(",")]).output().unwrap();
    assert!(lint.status.success(), "helm lint --strict: {}", String::from_utf8_lossy(&lint.stdout));
    // Watching one namespace: a Role there instead of a ClusterRole; without election, the
    // release's namespace still has its Leases: the claims on servers and hosts.
    assert_eq!(
        kinds(&docs),
        [
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    let role = find(&docs, "Role").unwrap();
    assert_eq!(role["metadata"]["namespace"], "team-a");
    let leases = docs.iter().find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "osmo-leases").unwrap();
    assert_eq!(leases["metadata"]["namespace"], "osmo-system");
    assert_eq!(leases["rules"][0]["verbs"], serde_json::json!(["get", "create", "update", "delete"]));
    assert_eq!(find(&docs, "RoleBinding").unwrap()["subjects"][0]["namespace"], "osmo-system");
    assert_eq!(find(&docs, "Deployment").unwrap()["spec"]["replicas"], 1);
    assert_eq!(container(&docs)["image"], "registry.example/osmo:1.2.3");
    assert_eq!(
        args(&docs),
        [
            "run",
            "--listen=0.0.0.0:9090",
            "--concurrency=4",
            "--openstack-changes-per-cloud=2",
            "--namespace=team-a",
            "--no-leader-election"
        ]
    );
    assert_eq!(env_var(&docs, "RUST_LOG"), "debug");
    let monitor = find(&docs, "ServiceMonitor").unwrap();
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], find(&docs, "Service").unwrap()["spec"]["ports"][0]["name"]);
    assert_eq!(find(&docs, "PodDisruptionBudget").unwrap()["spec"]["maxUnavailable"], 1);
}

#[test]
fn the_chart_narrows_secret_access_to_named_secrets() {
    let secret_rule = |docs: &[Value]| {
        let role = find(docs, "ClusterRole").expect("a ClusterRole");
        role["rules"].as_array().unwrap().iter().find(|r| r["resources"] == serde_json::json!(["secrets"])).cloned()
    };
    let any = secret_rule(&render(&[]).unwrap()).expect("a Secret rule");
    assert!(any.get("resourceNames").is_none(), "{any}");
    let named = secret_rule(&render(&["rbac.secretNames={clouds,admin-clouds}"]).unwrap()).expect("a Secret rule");
    assert_eq!(named["resourceNames"], serde_json::json!(["clouds", "admin-clouds"]));
    assert_eq!(named["verbs"], serde_json::json!(["get"]));
    assert!(render(&["rbac.secretNames={Not_A_Name}"]).unwrap_err().contains("secretNames"));
}

#[test]
fn the_chart_refuses_values_that_would_break_the_operator() {
    let two_leaders = render(&["replicas=2", "leaderElection.enabled=false"]).unwrap_err();
    assert!(two_leaders.contains("replicas > 1 needs leaderElection.enabled"), "{two_leaders}");
    let typo = render(&["logLevle=debug"]).unwrap_err();
    assert!(typo.contains("logLevle"), "{typo}");
    let zero = render(&["concurrency=0"]).unwrap_err();
    assert!(zero.contains("concurrency"), "{zero}");
}

/// `helm` as the admin, against the shared control plane.
fn helm(env: &Env, args: &[&str]) -> Output {
    Command::new("helm").env("KUBECONFIG", &env.admin_kubeconfig).args(args).output().expect("helm")
}

fn helm_ok(env: &Env, args: &[&str]) -> String {
    let out = helm(env, args);
    assert!(out.status.success(), "helm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn exists(env: &Env, args: &[&str]) -> bool {
    kubectl(env, &[&["get"], args].concat()).status.success()
}

/// Whether the release's ServiceAccount may `verb` `resource` in `namespace`.
fn release_can(env: &Env, release_ns: &str, account: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let who = format!("--as=system:serviceaccount:{release_ns}:{account}");
    let out = kubectl(env, &["auth", "can-i", verb, resource, "-n", namespace, &who]);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn the_chart_installs_upgrades_and_uninstalls() {
    let env = env();
    // Its own release name and namespace: the cluster-scoped names derive from the release, so
    // the shared `osmo` RBAC the other tests run under is left alone.
    let ns = namespace(env, "chart");
    let watched = namespace(env, "chartwatch");
    let release = format!("{ns}-osmo");
    let chart = chart();

    let notes = helm_ok(env, &["install", &release, &chart, "-n", &ns, "--set", "podDisruptionBudget.enabled=true"]);
    assert!(notes.contains("kubectl -n YOUR-NAMESPACE create secret generic clouds"), "{notes}");
    let leases = format!("{release}-leases");
    let installed = [
        ("deployment", release.clone()),
        ("serviceaccount", release.clone()),
        ("service", format!("{release}-metrics")),
        ("role", leases.clone()),
        ("rolebinding", leases),
    ];
    for (object, name) in installed.iter().chain([&("poddisruptionbudget", release.clone())]) {
        assert!(exists(env, &["-n", &ns, object, name]), "{object} {name} was not installed");
    }
    assert!(exists(env, &["clusterrole", &release]) && exists(env, &["clusterrolebinding", &release]));
    assert!(release_can(env, &ns, &release, "get", "secrets", "default"));
    assert!(release_can(env, &ns, &release, "create", "instancemigrations.osmo.dev", "default"));
    assert!(!release_can(env, &ns, &release, "list", "secrets", "default"));

    // Upgrade to one watched namespace: the ClusterRole goes, a Role in that namespace comes.
    helm_ok(env, &["upgrade", &release, &chart, "-n", &ns, "--set", &format!("watchNamespace={watched}")]);
    assert_eq!(jsonpath(env, &ns, &format!("deployment/{release}"), "{.metadata.generation}"), "2");
    assert!(!exists(env, &["clusterrole", &release]) && !exists(env, &["clusterrolebinding", &release]));
    assert!(exists(env, &["-n", &watched, "role", &release]));
    assert!(release_can(env, &ns, &release, "get", "secrets", &watched));
    assert!(!release_can(env, &ns, &release, "get", "secrets", "default"));
    assert!(!exists(env, &["-n", &ns, "poddisruptionbudget", &release]), "the PDB outlived its value");

    // The operator as the Deployment runs it: its arguments and log level, the release's
    // ServiceAccount, the pod's name and namespace. Pods never run on this control plane.
    let deployment: Value =
        serde_json::from_str(&kubectl_ok(env, &["-n", &ns, "get", "deployment", &release, "-o", "json"])).unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&format!("--namespace={watched}").as_str()), "{args:?}");
    let listen = args.iter().position(|a| a.starts_with("--listen=")).unwrap();
    args[listen] = "--listen=127.0.0.1:0";
    let vars = container["env"].as_array().unwrap();
    let log_level = vars.iter().find(|v| v["name"] == "RUST_LOG").unwrap()["value"].as_str().unwrap();
    let pod = format!("{release}-pod");
    let kubeconfig = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{release}.kubeconfig"));
    service_account_kubeconfig(env, &ns, &release, &kubeconfig);
    let operator = Operator::spawn(
        &kubeconfig,
        &release,
        &args,
        &[("RUST_LOG", log_level), ("POD_NAME", &pod), ("POD_NAMESPACE", &ns)],
    );
    eventually(Duration::from_secs(30), "the release's Lease to be held by the pod", || {
        (jsonpath(env, &ns, &format!("lease/{release}-leader"), "{.spec.holderIdentity}") == pod).then_some(())
    });
    let invalid = "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {name: web-1}\n\
                   spec: {server: web-1, source: {secretName: clouds, cloud: old}, target: {availabilityZone: icehouse}, strategy: Redeploy}\n";
    kubectl_stdin_ok(env, &["-n", &watched, "apply", "-f", "-"], invalid);
    kubectl_ok(env, &["-n", &watched, "wait", "--for=condition=Failed", "im/web-1", "--timeout=60s"]);
    assert_eq!(jsonpath(env, &watched, "im/web-1", "{.status.conditions[?(@.type==\"Failed\")].reason}"), "Invalid");
    kubectl_ok(env, &["-n", &watched, "delete", "im", "web-1", "--timeout=60s"]);
    drop(operator);

    helm_ok(env, &["uninstall", &release, "-n", &ns]);
    for (object, name) in &installed {
        assert!(!exists(env, &["-n", &ns, object, name]), "{object} {name} outlived the release");
    }
    assert!(!exists(env, &["-n", &watched, "role", &release]));
    // Helm never deletes CRDs (that would delete every resource): they stay.
    assert!(exists(env, &["crd", "instancemigrations.osmo.dev"]));
    kubectl_ok(env, &["delete", "namespace", &ns, &watched, "--wait=false"]);
}
