//! osmo's Argo CD health checks give, on objects the operator really wrote (captured by the
//! end-to-end tests), the health Argo CD must show; and they know every phase of the API.

#[path = "support/argocd.rs"]
mod argocd;

use argocd::{CAPTURES, customization_dir, health, read_test_file};

#[test]
fn every_committed_case_gives_its_health() {
    for crd in osmo::api::crds() {
        let kind = crd.spec.names.kind.as_str();
        let cases = read_test_file(kind).tests;
        let captured: Vec<(String, &str)> =
            CAPTURES.iter().filter(|c| c.kind == kind).map(|c| (format!("testdata/{}", c.file), c.health)).collect();
        let committed: Vec<(String, &str)> =
            cases.iter().map(|c| (c.input_path.clone(), c.health_status.status.as_str())).collect();
        assert_eq!(committed, captured, "{kind}/health_test.yaml does not list the captured states");
        for case in &cases {
            let text = std::fs::read_to_string(customization_dir(kind).join(&case.input_path)).unwrap();
            let object: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            assert_eq!(health(kind, &object), case.health_status, "{kind} {}", case.input_path);
        }
    }
}

#[test]
fn every_phase_of_the_api_has_a_health() {
    for crd in osmo::api::crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let phases = schema["openAPIV3Schema"]["properties"]["status"]["properties"]["phase"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind}: no phase enum in {schema}"))
            .clone();
        for phase in phases {
            let object = serde_json::json!({
                "kind": kind,
                "metadata": {"name": "x", "generation": 1},
                "status": {"phase": phase, "observedGeneration": 1, "conditions": []},
            });
            let got = health(&kind, &object);
            let expected = match (kind.as_str(), phase.as_str().unwrap()) {
                (_, "Succeeded" | "Drained" | "Retired") => "Healthy",
                (_, "Failed" | "Blocked") => "Degraded",
                ("ComputeNodeDrain", "Planned") => "Suspended",
                _ => "Progressing",
            };
            assert_eq!(got.status, expected, "{kind} in phase {phase}");
            assert!(got.message.starts_with(phase.as_str().unwrap()), "{kind} in phase {phase}: {got:?}");
        }
    }
}
