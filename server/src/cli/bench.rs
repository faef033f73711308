//! `finch bench`: the workloads Finch is measured by, run through the real engine and store.
//!
//! Each run prints one JSON line with the keys of the reference scripts in
//! `../shared/bench/langgraph_anchor/` (`turns_per_s`, `lat_ms`, `cpu_ms_per_turn`, …), so
//! their `report.py` puts Finch's rows in the same table as the reference engine's.

mod probes;
mod w1;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Workload W1, "finance turn": 200 conversations of 5 turns over PostgreSQL.
    W1(w1::W1Args),
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::W1(args) => w1::run(args).await,
    }
}
