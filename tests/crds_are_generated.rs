//! The CRDs checked in under `crds/`, and the chart's copies Helm installs from
//! `charts/osmo/crds/`, are exactly what the Rust types generate.

fn assert_dir_holds_the_generated_crds(dir: &str, fix: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let generated = osmo::api::crd_files();
    let mut on_disk: Vec<_> =
        std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    on_disk.sort();
    let mut expected: Vec<_> = generated.iter().map(|(name, _)| name.clone()).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "{dir}/ holds other files than the generated ones");
    for (name, yaml) in generated {
        let checked_in = std::fs::read_to_string(path.join(&name)).unwrap();
        assert!(checked_in == yaml, "{dir}/{name} is stale: run `{fix}`");
    }
}

#[test]
fn checked_in_crds_match_the_types() {
    assert_dir_holds_the_generated_crds("crds", "cargo run -- crd --out-dir crds");
}

#[test]
fn the_chart_installs_the_same_crds() {
    assert_dir_holds_the_generated_crds("charts/osmo/crds", "cargo run -- crd --out-dir charts/osmo/crds");
}
