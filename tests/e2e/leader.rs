//! Two replicas: one leads, the other stands by and takes over when the leader dies.

use std::time::{Duration, Instant};

use crate::harness::{
    OPERATOR_NAMESPACE, Operator, env, eventually, jsonpath, kubectl_ok, kubectl_stdin_ok, namespace,
};

fn migration(name: &str) -> String {
    format!(
        "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {{name: {name}}}\n\
         spec: {{server: {name}, source: {{secretName: clouds, cloud: old}}, target: {{availabilityZone: icehouse}}}}\n"
    )
}

fn holder(lease: &str) -> String {
    jsonpath(env(), OPERATOR_NAMESPACE, &format!("lease/{lease}"), "{.spec.holderIdentity}")
}

#[test]
fn a_standby_takes_over_within_20s_of_the_leaders_death() {
    let env = env();
    let ns = namespace(env, "leader");
    let lease = format!("osmo-{ns}");
    let mut a = Operator::start(env, &ns, "replica-a", &lease);
    a.wait_for_log("became leader", Duration::from_secs(30));
    let mut b = Operator::start(env, &ns, "replica-b", &lease);
    b.wait_for_log("waiting for leadership", Duration::from_secs(30));

    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("first"));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Accepted", "im/first", "--timeout=60s"]);
    assert_eq!(holder(&lease), "replica-a");
    assert!(b.get("/metrics").1.contains("osmo_leader 0"), "the standby claims to lead");
    assert!(!b.logs().contains("became leader"), "two leaders at once:\n{}", b.logs());
    assert_eq!(b.get("/readyz").0, 200, "a standby is ready: it serves as soon as it leads");

    let killed = Instant::now();
    a.kill();
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("second"));
    kubectl_ok(env, &["-n", &ns, "wait", "--for=condition=Accepted", "im/second", "--timeout=30s"]);
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(20), "the standby took {took:?} to act");
    assert_eq!(holder(&lease), "replica-b");
    assert!(b.get("/metrics").1.contains("osmo_leader 1"));

    // A graceful stop (SIGTERM) hands the lease over at once instead of letting it expire.
    let mut c = Operator::start(env, &ns, "replica-c", &lease);
    c.wait_for_log("waiting for leadership", Duration::from_secs(30));
    let stopped = Instant::now();
    let status = b.terminate(Duration::from_secs(20));
    assert!(status.success(), "SIGTERM should end the operator cleanly, got {status}");
    assert!(b.logs().contains("released lease"), "{}", b.logs());
    c.wait_for_log("became leader", Duration::from_secs(10));
    assert!(stopped.elapsed() < Duration::from_secs(10), "hand-over after SIGTERM took {:?}", stopped.elapsed());
    eventually(Duration::from_secs(10), "the lease to name replica-c", || {
        (holder(&lease) == "replica-c").then_some(())
    });
}

#[test]
fn a_deposed_leader_stops_at_once_though_a_reconcile_is_in_flight() {
    // The reconcile in flight waits on a Keystone that takes the connection and never answers
    // (for the client's 60-second request timeout).
    let (env, ns, keystone) = crate::status::namespace_with_a_silent_keystone("deposed");
    let lease = format!("osmo-{ns}");
    let mut a = Operator::start(env, &ns, "replica-a", &lease);
    a.wait_for_log("became leader", Duration::from_secs(30));
    kubectl_stdin_ok(env, &["-n", &ns, "apply", "-f", "-"], &migration("web-1"));
    keystone.set_nonblocking(true).unwrap();
    let _in_flight = eventually(Duration::from_secs(60), "the operator to call Keystone", || keystone.accept().ok());

    // Another replica holds the lease now (as once this one's renewals stop reaching the API).
    let usurp = r#"{"spec":{"holderIdentity":"replica-b"}}"#;
    kubectl_ok(env, &["-n", OPERATOR_NAMESPACE, "patch", "lease", &lease, "--type=merge", "-p", usurp]);
    // It stops within a few renewal periods, without waiting for the reconcile to finish.
    let status = a.wait_for_exit(Duration::from_secs(30));
    assert!(!status.success(), "a deposed leader exits with an error, got {status}");
    assert!(a.logs().contains("lost the leader lease"), "{}", a.logs());
    assert_eq!(holder(&lease), "replica-b", "the deposed leader wrote the lease again");
}
