//! osmo's Argo CD health checks (`deploy/argocd/osmo.dev/<Kind>/`, in Argo CD's
//! resource_customizations layout), run as Argo CD runs them: Lua 5.1, the object as the
//! global `obj`, the script returning `{status, message}`. Shared by the plain test of the
//! committed cases and the end-to-end test that captures them from real runs.

use std::path::PathBuf;

use mlua::{Lua, LuaOptions, LuaSerdeExt, StdLib};
use serde::{Deserialize, Serialize};

/// One state captured from the operator in the end-to-end tests: the kind, the testdata file
/// (`testdata/<file>` beside the kind's `health.lua`) and the health Argo CD must show for it.
pub struct Capture {
    pub kind: &'static str,
    pub file: &'static str,
    pub health: &'static str,
}

/// Every captured state, in the order of each kind's `health_test.yaml`. A state is added here
/// and driven in `tests/e2e/argocd.rs`; `OSMO_UPDATE_ARGOCD_TESTDATA=1` writes its testdata.
pub const CAPTURES: &[Capture] = &[
    Capture { kind: "InstanceMigration", file: "unobserved-generation.yaml", health: "Progressing" },
    Capture { kind: "InstanceMigration", file: "invalid.yaml", health: "Degraded" },
    Capture { kind: "InstanceMigration", file: "snapshotting.yaml", health: "Progressing" },
    Capture { kind: "InstanceMigration", file: "succeeded.yaml", health: "Healthy" },
    Capture { kind: "InstanceMigration", file: "deletion-pending.yaml", health: "Progressing" },
    Capture { kind: "ComputeNodeDrain", file: "unobserved-generation.yaml", health: "Progressing" },
    Capture { kind: "ComputeNodeDrain", file: "invalid.yaml", health: "Degraded" },
    Capture { kind: "ComputeNodeDrain", file: "failed.yaml", health: "Degraded" },
    Capture { kind: "ComputeNodeDrain", file: "planned.yaml", health: "Suspended" },
    Capture { kind: "ComputeNodeDrain", file: "draining.yaml", health: "Progressing" },
    Capture { kind: "ComputeNodeDrain", file: "blocked.yaml", health: "Degraded" },
    Capture { kind: "ComputeNodeDrain", file: "drained.yaml", health: "Healthy" },
    Capture { kind: "ComputeNodeDrain", file: "retired.yaml", health: "Healthy" },
    Capture { kind: "ComputeNodeDrain", file: "deletion-pending.yaml", health: "Progressing" },
];

/// What Argo CD shows for a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub message: String,
}

/// One case of a `health_test.yaml`, in Argo CD's format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestCase {
    pub health_status: Health,
    pub input_path: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TestFile {
    pub tests: Vec<TestCase>,
}

pub fn customization_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd/osmo.dev").join(kind)
}

pub fn read_test_file(kind: &str) -> TestFile {
    let text = std::fs::read_to_string(customization_dir(kind).join("health_test.yaml")).unwrap_or_default();
    if text.trim().is_empty() { TestFile::default() } else { serde_saphyr::from_str(&text).unwrap() }
}

/// Runs `kind`'s health.lua on `object`.
pub fn health(kind: &str, object: &serde_json::Value) -> Health {
    let script = std::fs::read_to_string(customization_dir(kind).join("health.lua")).unwrap();
    // Argo CD opens only these libraries (and no io or os) for health scripts.
    let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default()).unwrap();
    // JSON null becomes nil, as in Argo CD's conversion of the object.
    let options = mlua::serde::SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false);
    lua.globals().set("obj", lua.to_value_with(object, options).unwrap()).unwrap();
    let result: mlua::Table = lua.load(&script).set_name(format!("{kind}/health.lua")).eval().unwrap();
    Health { status: result.get("status").unwrap(), message: result.get("message").unwrap() }
}
