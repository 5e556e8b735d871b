//! Invalid resources are refused by the API server's schema validation, naming the field.

use crate::harness::{env, kubectl, kubectl_stdin, namespace};

const IM: &str = "apiVersion: osmo.dev/v1alpha1\nkind: InstanceMigration\nmetadata: {name: bad}\n";
const CND: &str = "apiVersion: osmo.dev/v1alpha1\nkind: ComputeNodeDrain\nmetadata: {name: bad}\n";
const SOURCE: &str = "source: {secretName: clouds, cloud: old}";

#[test]
fn schema_rejects_invalid_resources_naming_the_field() {
    let env = env();
    let ns = namespace(env, "schema");
    let cases = [
        (format!("{IM}spec: {{{SOURCE}, target: {{availabilityZone: icehouse}}}}"), "spec.server"),
        (
            format!(
                "{IM}spec: {{server: web-1, {SOURCE}, target: {{availabilityZone: icehouse}}, strategy: Teleport}}"
            ),
            "spec.strategy",
        ),
        (
            format!(
                "{IM}spec: {{server: web-1, source: {{secretName: '', cloud: old}}, target: {{availabilityZone: icehouse}}}}"
            ),
            "spec.source.secretName",
        ),
        (
            format!(
                "{IM}spec: {{server: web-1, {SOURCE}, target: {{availabilityZone: icehouse}}, timeouts: {{stopSeconds: 0}}}}"
            ),
            "spec.timeouts.stopSeconds",
        ),
        (
            format!(
                "{IM}spec: {{server: web-1, {SOURCE}, target: {{availabilityZone: icehouse}}, addresses: {{mode: Bogus}}}}"
            ),
            "spec.addresses.mode",
        ),
        (format!("{IM}spec: {{server: web-1, {SOURCE}}}"), "spec.target"),
        (
            format!(
                "{CND}spec: {{cloud: {{secretName: clouds, cloud: old}}, host: havana-1, mode: Wait, maxConcurrent: 0}}"
            ),
            "spec.maxConcurrent",
        ),
        (format!("{CND}spec: {{cloud: {{secretName: clouds, cloud: old}}, host: havana-1}}"), "spec.mode"),
        (
            format!(
                "{CND}spec: {{cloud: {{secretName: clouds, cloud: old}}, host: havana-1, mode: Wait, afterDrain: Destroy}}"
            ),
            "spec.afterDrain",
        ),
        (format!("{CND}spec: {{cloud: {{secretName: clouds, cloud: old}}, host: '', mode: Wait}}"), "spec.host"),
    ];
    for (manifest, field) in &cases {
        // --validate=false: kubectl's own client-side check is skipped, so this is the API
        // server's schema validation speaking, as for Argo CD or any other client.
        let out = kubectl_stdin(env, &["-n", &ns, "apply", "--validate=false", "-f", "-"], manifest);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted, but should be refused for {field}:\n{manifest}");
        assert!(stderr.contains(field), "the error does not name {field}:\n{stderr}");
    }
    let left = kubectl(env, &["-n", &ns, "get", "im,cnd", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout), "", "a refused resource was stored");
}
