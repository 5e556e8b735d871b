//! The container image, without a container engine (this machine has none): the Dockerfile
//! passes hadolint, builds the binary the chart runs, as the user the chart runs it as, from a
//! build context that holds everything cargo needs, with the locked dependencies.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{helm, repo};

/// The Dockerfile's build command. hack/test.sh runs it for the machine's own target (the musl
/// target only rustup can fetch); this test keeps the Dockerfile's line equal to it.
const BUILD: &str = "cargo build --release --locked --target x86_64-unknown-linux-musl --bin osmo";
const TARGET: &str = "x86_64-unknown-linux-musl";

/// One instruction: its keyword (upper case) and the rest of its line(s).
struct Instruction {
    keyword: String,
    rest: String,
}

/// The Dockerfile's stages, in order, each as its instructions (FROM first); continuation lines
/// are joined and comments dropped.
fn stages(dockerfile: &str) -> Vec<Vec<Instruction>> {
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    let mut line = String::new();
    for raw in dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()) {
        match raw.strip_suffix('\\') {
            Some(part) => line.push_str(part),
            None => {
                line.push_str(raw);
                let (keyword, rest) = line.split_once(' ').unwrap_or((&line, ""));
                let instruction = Instruction { keyword: keyword.to_uppercase(), rest: rest.trim().to_string() };
                if instruction.keyword == "FROM" {
                    stages.push(Vec::new());
                }
                stages.last_mut().expect("FROM first").push(instruction);
                line.clear();
            }
        }
    }
    stages
}

fn only<'a>(stage: &'a [Instruction], keyword: &str) -> &'a str {
    let found: Vec<_> = stage.iter().filter(|i| i.keyword == keyword).collect();
    assert_eq!(found.len(), 1, "expected one {keyword} in the stage");
    &found[0].rest
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = Command::new("hadolint").arg(repo().join("Dockerfile")).output().expect("hadolint (hack/tools.sh)");
    assert!(out.status.success(), "hadolint:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn the_image_runs_the_locked_static_binary_as_the_chart_expects() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stages = stages(&dockerfile);
    let [build, runtime] = &stages[..] else { panic!("expected a build stage and a runtime stage") };

    let builds: Vec<_> = build.iter().filter(|i| i.keyword == "RUN" && i.rest.contains("cargo build")).collect();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].rest, BUILD);
    assert!(build.iter().any(|i| i.keyword == "RUN" && i.rest.contains(&format!("rustup target add {TARGET}"))));
    // The tests build the same, for this machine's target.
    let test_script = std::fs::read_to_string(repo().join("hack/test.sh")).unwrap();
    let host_build = BUILD.replace(&format!(" --target {TARGET}"), "");
    assert!(test_script.lines().any(|l| l == host_build), "hack/test.sh does not run {host_build:?}");

    // A static binary on an empty base, with the version and commit as labels.
    assert_eq!(only(runtime, "FROM"), "scratch");
    let copies: Vec<&str> = runtime.iter().filter(|i| i.keyword == "COPY").map(|i| i.rest.as_str()).collect();
    assert!(copies.contains(&format!("--from=build /src/target/{TARGET}/release/osmo /osmo").as_str()), "{copies:?}");
    let labels = only(runtime, "LABEL");
    assert!(labels.contains("org.opencontainers.image.version=\"${VERSION}\""), "{labels}");
    assert!(labels.contains("org.opencontainers.image.revision=\"${COMMIT}\""), "{labels}");

    // The chart runs the image's entrypoint (it sets no command) with `run` as the image's
    // CMD does, as the image's user.
    let entrypoint: Vec<String> = serde_json::from_str(only(runtime, "ENTRYPOINT")).unwrap();
    let cmd: Vec<String> = serde_json::from_str(only(runtime, "CMD")).unwrap();
    assert_eq!((entrypoint.as_slice(), cmd.as_slice()), (&["/osmo".to_string()][..], &["run".to_string()][..]));
    let rendered = helm(&[
        "template",
        "osmo",
        repo().join("charts/osmo").to_str().unwrap(),
        "--show-only",
        "templates/deployment.yaml",
    ]);
    let deployment: Value = serde_saphyr::from_str(&rendered).unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert!(container.get("command").is_none(), "the chart overrides the image's entrypoint");
    assert_eq!(container["args"][0], cmd[0]);
    let user = format!("{}:{}", pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]);
    assert_eq!(only(runtime, "USER"), user);

    // The chart's default image tag is its appVersion: the binary's version.
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(repo().join("charts/osmo/Chart.yaml")).unwrap()).unwrap();
    let version = Command::new(env!("CARGO_BIN_EXE_osmo")).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        format!("osmo {}", chart["appVersion"].as_str().unwrap())
    );
}

#[test]
fn the_build_context_holds_what_the_locked_build_needs() {
    // Exactly what the build stage copies from the context, in a directory of its own; cargo
    // refuses a manifest whose tests or benches are missing, and --locked a stale Cargo.lock.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let context = tempdir("image-context");
    for copy in stages(&dockerfile)[0].iter().filter(|i| i.keyword == "COPY") {
        let paths: Vec<&str> = copy.rest.split_whitespace().collect();
        let (sources, _destination) = paths.split_at(paths.len() - 1);
        for source in sources {
            copy_tree(&repo().join(source), &context.join(source));
        }
    }
    let out = Command::new("cargo")
        .args(["fetch", "--locked", "--offline", "--target", TARGET])
        .current_dir(&context)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo fetch in the build context: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&context).unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{from:?}: {e}"));
    }
}
