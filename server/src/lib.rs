//! The `finch` binary as a library: its command line, the HTTP API and the finance domain.
//!
//! `main.rs` only parses arguments; everything else lives here so the integration tests can
//! build the HTTP application in-process.

pub mod api;
pub mod assistant;
pub mod charts;
mod cli;
mod config;
pub mod demo;
pub mod finance;
mod limits;
pub mod runs;
pub mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Finch: a personal-finance assistant built on agent graphs that live in files.
#[derive(Debug, Parser)]
#[command(name = "finch", version, about)]
pub struct Args {
    /// The configuration file (model aliases and providers).
    #[arg(long, global = true, env = "FINCH_CONFIG", default_value = "finch.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (and credit recurring income) until SIGTERM.
    Serve(cli::serve::ServeArgs),
    /// Create the demo user with a year of activity, and print its login.
    SeedDemo(cli::serve::SeedDemoArgs),
    /// Seed a demo user and play a conversation that exercises every agent, printing the
    /// transcript (offline with scripted replies, or live with `--llm config`).
    Demo(cli::demo::DemoArgs),
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

/// Runs the command `args` names.
pub async fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Command::Serve(serve) => cli::serve::serve(serve, &args.config).await,
        Command::SeedDemo(seed) => cli::serve::seed_demo(seed).await,
        Command::Demo(demo) => cli::demo::run(demo, &args.config).await,
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
