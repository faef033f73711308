//! `finch`: the command line (and, later, the HTTP server) of Finch.
//!
//! One binary with subcommands, as crates.io and Vector do. This file only parses arguments
//! and dispatches; each command group lives in `cli/`.

mod cli;
mod config;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: a turn allocates many small JSON values, and
/// glibc's malloc and free took a quarter of the engine's CPU in `finch bench w1`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Finch: a personal-finance assistant built on agent graphs that live in files.
#[derive(Debug, Parser)]
#[command(name = "finch", version, about)]
struct Args {
    /// The configuration file (model aliases and providers).
    #[arg(long, global = true, env = "FINCH_CONFIG", default_value = "finch.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, draw, test and describe graph files.
    #[command(subcommand)]
    Graph(cli::graph::GraphCommand),
    /// Run a graph once and print its events and outcome.
    Run(cli::run::RunArgs),
    /// Apply the database migrations that are not applied yet.
    Migrate {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
    /// List or prune durable threads.
    #[command(subcommand)]
    Threads(cli::threads::ThreadsCommand),
    /// Show one durable thread: its state, its log, its graph version.
    #[command(subcommand)]
    Thread(cli::threads::ThreadCommand),
    /// Take over runs whose worker went away, and start queued runs.
    Worker(cli::worker::WorkerArgs),
    /// What differs between two thread states, field by field, and which node wrote it.
    Diff(cli::diff::DiffArgs),
    /// Replay recorded threads without calling anything, and check they come out the same.
    Replay(cli::replay::ReplayArgs),
    /// Run a benchmark workload and print its figures as one JSON line.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Graph(command) => cli::graph::run(command, &args.config).await,
        Command::Run(run) => cli::run::run(run, &args.config).await,
        Command::Migrate { db } => cli::migrate(db.as_deref()).await,
        Command::Threads(command) => cli::threads::threads(command, &args.config).await,
        Command::Thread(command) => cli::threads::thread(command, &args.config).await,
        Command::Worker(worker) => cli::worker::run(worker, &args.config).await,
        Command::Replay(replay) => cli::replay::run(replay, &args.config).await,
        Command::Diff(diff) => cli::diff::run(diff, &args.config).await,
        Command::Bench(command) => cli::bench::run(command).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
