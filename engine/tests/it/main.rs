//! The engine's integration tests, in one binary: graph files in, diagnostics and drawings out.
//!
//! Fixtures live in `data/`: `valid/` must load with no diagnostic at all, each file in
//! `invalid/` shows one kind of error and each in `warning/` one kind of warning (files named
//! `_*.yaml` are subgraphs the others use). Rendered diagnostics are insta snapshots.

mod draw;
mod durable;
mod fork;
mod graph_schema;
mod llm;
mod registry;
mod replay;
mod resume;
mod run;
mod sandbox;
mod validation;
mod versions;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use engine::{LoadOptions, Project};

/// The engine crate's folder; tests run there, so fixture paths are relative to it.
fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root.
fn repo_root() -> PathBuf {
    crate_dir()
        .parent()
        .expect("the engine is in the workspace")
        .to_path_buf()
}

/// The project of the test fixtures.
fn fixtures() -> Project {
    Project::at("tests/it/data")
}

/// Model aliases the fixtures may use, as a `finch.toml` would define them.
fn fixture_options() -> LoadOptions {
    LoadOptions {
        models: Some(BTreeSet::from(["fast".to_owned(), "chat".to_owned()])),
        tools: Vec::new(),
    }
}

/// `path` relative to the engine crate, so snapshots do not depend on where the repo is.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(crate_dir()).unwrap_or(path).to_path_buf()
}

/// Graph files under `dir`, recursively (not `*.<what>.yaml` files, not `_*` helpers).
fn graph_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("readable folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if engine::graph::is_graph_file(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
