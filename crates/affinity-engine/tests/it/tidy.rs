//! The workspace's layering, checked against `cargo metadata` so it cannot drift:
//!
//! - only `affinity-server` depends on HTTP server frameworks (axum, tower, hyper);
//! - `affinity-server` reaches the store and the models only through the engine, whose async
//!   methods run blocking work on the blocking pool (invariant 6: CPU-heavy or blocking work
//!   never runs on the async runtime's threads; clippy's `disallowed-methods` in
//!   `crates/affinity-server/clippy.toml` keeps the engine's synchronous entry points out of it);
//! - the crate graph drawn in ARCHITECTURE.md is the real one;
//! - `unsafe` appears only in the model crate's CPU dispatch, and the build is portable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo metadata` of the workspace (its own packages only).
fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON")
}

/// Each workspace crate's normal (non-dev, non-build) dependencies, by name.
fn dependencies() -> Graph {
    let metadata = metadata();
    let mut graph = Graph::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_string();
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        graph.insert(name, deps);
    }
    graph
}

const HTTP_SERVER_CRATES: [&str; 5] = ["axum", "axum-core", "tower", "tower-http", "hyper"];

#[test]
fn only_the_server_knows_http() {
    for (name, deps) in dependencies() {
        if name == "affinity-server" {
            continue;
        }
        let http: Vec<&String> = deps
            .iter()
            .filter(|d| HTTP_SERVER_CRATES.contains(&d.as_str()))
            .collect();
        assert!(
            http.is_empty(),
            "{name} depends on {http:?}: only affinity-server may know HTTP"
        );
    }
}

#[test]
fn the_server_reaches_store_and_models_only_through_the_engine() {
    let graph = dependencies();
    let server = &graph["affinity-server"];
    for forbidden in ["affinity-store", "affinity-model", "rusqlite", "rayon"] {
        assert!(
            !server.contains(forbidden),
            "affinity-server depends on {forbidden}: call the engine's async methods instead, \
             which keep blocking work off the async runtime"
        );
    }
    assert!(server.contains("affinity-engine"));
}

/// The graph between `<!-- crate-graph -->` markers in ARCHITECTURE.md: one line per crate,
/// `name → dep, dep`.
fn drawn_graph() -> Graph {
    let text =
        std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let block = text
        .split("<!-- crate-graph -->")
        .nth(1)
        .expect("ARCHITECTURE.md has a <!-- crate-graph --> block");
    block
        .lines()
        .filter(|l| l.starts_with("affinity-"))
        .map(|l| {
            let (name, deps) = l.split_once('→').expect("name → deps");
            let deps = deps
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
            (name.trim().to_string(), deps)
        })
        .collect()
}

#[test]
fn architecture_md_draws_the_real_crate_graph() {
    let real: Graph = dependencies()
        .into_iter()
        .filter(|(name, _)| name.starts_with("affinity-"))
        .map(|(name, deps)| {
            let ours = deps
                .into_iter()
                .filter(|d| d.starts_with("affinity-"))
                .collect();
            (name, ours)
        })
        .collect();
    assert_eq!(
        drawn_graph(),
        real,
        "ARCHITECTURE.md's crate graph differs from Cargo.toml: redraw it"
    );
}

/// Rust source files under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The one `unsafe` is the model crate's call into the AVX2 copy of its hot loops, after the
/// CPU check (`crates/affinity-model/src/cpu.rs`); the workspace forbids it everywhere else,
/// and this test keeps the model crate's weaker `deny` from letting more in.
#[test]
fn unsafe_code_lives_only_in_the_cpu_dispatch() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let allowed = root.join("crates/affinity-model/src/cpu.rs");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .filter(|f| f.canonicalize().ok() != allowed.canonicalize().ok())
        .filter(|f| {
            std::fs::read_to_string(f).is_ok_and(|text| {
                text.lines()
                    .map(str::trim_start)
                    .filter(|l| !l.starts_with("//"))
                    // Spelled in two parts so that this line does not match itself.
                    .any(|l| {
                        l.contains(concat!("unsafe", " {")) || l.contains(concat!("unsafe", " fn"))
                    })
            })
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "unsafe code outside cpu.rs: {offenders:?}"
    );
}

/// One build runs on every x86-64 machine (the hot loops choose AVX2 at run time): the
/// workspace must not be compiled for the build machine's own CPU.
#[test]
fn the_build_is_portable() {
    let config = workspace_root().join(".cargo/config.toml");
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    let flags: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.contains("target-cpu"))
        .collect();
    assert!(flags.is_empty(), "{} sets {flags:?}", config.display());
}

/// The README's main command, `cargo run --release -- demo`, needs exactly one binary among the
/// workspace's default members (a second one, such as the fuzz driver, makes `cargo run` ask
/// which).
#[test]
fn cargo_run_has_one_binary_to_run() {
    let metadata = metadata();
    let defaults: BTreeSet<&str> = metadata["workspace_default_members"]
        .as_array()
        .expect("workspace_default_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let binaries: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| defaults.contains(id)))
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        binaries,
        ["affinity"],
        "binaries `cargo run` can choose from"
    );
}
