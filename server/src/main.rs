//! `finch`: the command line and the HTTP server of Finch.
//!
//! One binary with subcommands, as crates.io and Vector do. This file only parses arguments;
//! the commands live in the library (`lib.rs`).

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator: a turn allocates many small JSON values, and
/// glibc's malloc and free took a quarter of the engine's CPU in `finch bench w1`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    server::run(server::Args::parse()).await
}
