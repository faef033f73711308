//! The `finch` binary's integration tests: it is run the way a user runs it.
//!
//! The engine's own tests cover what each check finds; these check what the command line
//! makes of it — exit codes, formats, default paths.

mod api;
mod demo;
mod durable;
mod graph;
mod run;

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
    finch_with_env(args, &[], &[])
}

/// Runs `finch` with environment variables set and removed.
fn finch_with_env(args: &[&str], set: &[(&str, &str)], remove: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_finch"));
    command
        .args(args)
        .current_dir(repo_root())
        .env_remove("FINCH_CONFIG");
    for (name, value) in set {
        command.env(name, value);
    }
    for name in remove {
        command.env_remove(name);
    }
    command.output().expect("finch runs")
}

/// A file in the target folder with `content`, named for the test and the process.
fn temp_file(name: &str, content: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", std::process::id()));
    std::fs::write(&path, content).expect("writable target folder");
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
