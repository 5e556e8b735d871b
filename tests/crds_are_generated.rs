//! The CRDs checked in under `crds/` are exactly what the Rust types generate.

#[test]
fn checked_in_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated = osmo::api::crd_files();
    let mut on_disk: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    on_disk.sort();
    let mut expected: Vec<_> = generated.iter().map(|(name, _)| name.clone()).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "crds/ holds other files than the generated ones");
    for (name, yaml) in generated {
        let checked_in = std::fs::read_to_string(dir.join(&name)).unwrap();
        assert!(checked_in == yaml, "crds/{name} is stale: run `cargo run -- crd --out-dir crds`");
    }
}
