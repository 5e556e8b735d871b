//! The chart's RBAC is all the operator has (every operator in these tests runs under it),
//! and it has no more than it needs.

use crate::harness::{OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, env, kubectl};

fn can(verb: &str, resource: &str, namespace: &str) -> bool {
    let who = format!("--as=system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    let out = kubectl(env(), &["auth", "can-i", verb, resource, "-n", namespace, &who]);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn the_service_account_has_least_privilege() {
    for (verb, resource) in [
        ("watch", "instancemigrations.osmo.dev"),
        ("patch", "instancemigrations.osmo.dev/status"),
        ("patch", "computenodedrains.osmo.dev/status"),
        ("create", "events.events.k8s.io"),
        ("get", "secrets"),
    ] {
        assert!(can(verb, resource, "default"), "cannot {verb} {resource}");
    }
    assert!(can("update", "leases.coordination.k8s.io", OPERATOR_NAMESPACE));
    for (verb, resource, ns) in [
        ("update", "instancemigrations.osmo.dev", "default"),
        ("delete", "computenodedrains.osmo.dev", "default"),
        ("list", "secrets", "default"),
        ("watch", "secrets", "default"),
        ("create", "pods", "default"),
        ("update", "leases.coordination.k8s.io", "default"),
        ("*", "*", "default"),
    ] {
        assert!(!can(verb, resource, ns), "may {verb} {resource} in {ns}, which it does not need");
    }
}
