//! `finch replay`: replays recorded threads without calling any model or running any `sql`,
//! and says whether each comes out as recorded — a regression check for the engine and for
//! graph changes.

use std::path::PathBuf;
use std::process::ExitCode;

use engine::replay::{self, Replayed};
use uuid::Uuid;

use crate::cli::durable::store;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The threads to replay.
    #[arg(required = true)]
    threads: Vec<Uuid>,
    /// Compare every step with the recording, and exit 1 if a thread differs.
    #[arg(long)]
    check: bool,
    /// Replay with this graph file rather than the version each run ran: would the current
    /// files have done the same?
    #[arg(long)]
    graph: Option<PathBuf>,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
}

pub(crate) async fn run(args: ReplayArgs, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    if !args.check {
        anyhow::bail!(
            "only `finch replay --check` is available so far: replays into a new thread come with forks"
        );
    }
    let config = Config::read(config)?;
    let store = store(args.db.as_deref(), config.as_ref()).await?;
    let current = match &args.graph {
        Some(path) => Some(crate::cli::load_graph(path, config.as_ref())?),
        None => None,
    };
    let mut same = true;
    for thread in args.threads {
        match replay::check(&store, thread, current.as_ref()).await? {
            Replayed::Same { runs, steps } => {
                let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
                println!(
                    "thread {thread}: {}, {}, as recorded",
                    plural(runs, "run"),
                    plural(steps, "step")
                );
            }
            Replayed::Diverged(divergence) => {
                same = false;
                let node = divergence
                    .node
                    .map(|node| format!(", node `{node}`"))
                    .unwrap_or_default();
                let field = divergence
                    .field
                    .map(|field| format!(", field `{field}`"))
                    .unwrap_or_default();
                println!(
                    "thread {thread}: differs at entry {} (step {} of run {}){node}{field}: {}",
                    divergence.seq, divergence.step, divergence.run, divergence.message
                );
            }
        }
    }
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
