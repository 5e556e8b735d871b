//! The chart's RBAC is all the operator has (every operator in these tests runs under it),
//! and it has no more than it needs.

use crate::harness::{OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, env, kubectl};

fn can(verb: &str, resource: &str, namespace: &str) -> bool {
    let who = format!("--as=system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    // `kind/x` would ask about the object named x: a subresource is asked for by flag.
    let mut args = vec!["auth", "can-i", verb, "-n", namespace, &who];
    let subresource;
    match resource.split_once('/') {
        Some((kind, sub)) => {
            subresource = format!("--subresource={sub}");
            args.extend([kind, subresource.as_str()]);
        }
        None => args.push(resource),
    }
    let out = kubectl(env(), &args);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn the_service_account_has_least_privilege() {
    for (verb, resource) in [
        ("watch", "instancemigrations.osmo.dev"),
        ("create", "instancemigrations.osmo.dev"),
        // A drain's succeeded children, once their retention passed.
        ("delete", "instancemigrations.osmo.dev"),
        ("update", "computenodedrains.osmo.dev/finalizers"),
        ("patch", "instancemigrations.osmo.dev/status"),
        ("patch", "computenodedrains.osmo.dev/status"),
        ("create", "events.events.k8s.io"),
        ("get", "secrets"),
        ("create", "secrets"),
    ] {
        assert!(can(verb, resource, "default"), "cannot {verb} {resource}");
    }
    // Its Leases: the leader's, and the claims on servers and hosts (deleted when released).
    for verb in ["get", "create", "update", "delete"] {
        assert!(can(verb, "leases.coordination.k8s.io", OPERATOR_NAMESPACE), "cannot {verb} leases");
    }
    for (verb, resource, ns) in [
        ("update", "instancemigrations.osmo.dev", "default"),
        ("update", "instancemigrations.osmo.dev/finalizers", "default"),
        ("update", "computenodedrains.osmo.dev/status", "default"),
        ("delete", "computenodedrains.osmo.dev", "default"),
        ("list", "secrets", "default"),
        ("watch", "secrets", "default"),
        ("update", "secrets", "default"),
        ("patch", "secrets", "default"),
        ("delete", "secrets", "default"),
        ("create", "pods", "default"),
        ("update", "leases.coordination.k8s.io", "default"),
        ("delete", "leases.coordination.k8s.io", "default"),
        ("list", "leases.coordination.k8s.io", OPERATOR_NAMESPACE),
        ("*", "*", "default"),
    ] {
        assert!(!can(verb, resource, ns), "may {verb} {resource} in {ns}, which it does not need");
    }
}
