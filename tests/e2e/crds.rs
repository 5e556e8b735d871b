use std::time::Duration;

use crate::harness::{env, eventually, kubectl, kubectl_ok};

#[test]
fn both_crds_are_established_and_explained() {
    let env = env();
    for crd in ["instancemigrations.osmo.dev", "computenodedrains.osmo.dev"] {
        let established = kubectl_ok(
            env,
            &["get", "crd", crd, "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}"],
        );
        assert_eq!(established, "True", "{crd}");
    }
    // The API server publishes new schemas to OpenAPI a moment after the CRD is established.
    let explained = eventually(Duration::from_secs(60), "kubectl explain instancemigration.spec", || {
        let out = kubectl(env, &["explain", "instancemigration.spec"]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(explained.contains("ID (preferred) or unique name of the server to move"), "{explained}");
    assert!(explained.contains("strategy"), "{explained}");
    let max_concurrent =
        eventually(Duration::from_secs(60), "kubectl explain computenodedrain.spec.maxConcurrent", || {
            let out = kubectl(env, &["explain", "computenodedrain.spec.maxConcurrent"]);
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        });
    assert!(max_concurrent.contains("The most InstanceMigrations of this drain in flight at once"), "{max_concurrent}");
}

#[test]
fn short_names_and_the_osmo_category_resolve() {
    let env = env();
    let resources = kubectl_ok(env, &["api-resources", "--api-group=osmo.dev", "-o", "wide"]);
    for expected in ["instancemigrations", "im ", "computenodedrains", "cnd ", "osmo"] {
        assert!(resources.contains(expected), "{expected:?} missing from:\n{resources}");
    }
    let out = kubectl(env, &["get", "osmo", "--all-namespaces"]);
    assert!(out.status.success(), "kubectl get osmo: {}", String::from_utf8_lossy(&out.stderr));
}
