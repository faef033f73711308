//! The `finch` binary's integration tests: it is run the way a user runs it.
//!
//! The engine's own tests cover what each check finds; these check what the command line
//! makes of it — exit codes, formats, default paths.

mod graph;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, where `finch` is meant to be run.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Runs `finch` with `args` in the repository root.
fn finch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_finch"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("FINCH_CONFIG")
        .output()
        .expect("finch runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
