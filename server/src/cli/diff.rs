//! `finch diff`: what differs between two thread states, field by field, and who wrote it.

use std::process::ExitCode;

use engine::diff::{self, Side};
use uuid::Uuid;

use crate::cli::durable::store;
use crate::cli::threads::stored_graph;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The first state: `THREAD` (its latest) or `THREAD@SEQ` (after that log entry).
    a: String,
    /// The second state, the same way; writers are looked up on this side.
    b: String,
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    format: DiffFormat,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DiffFormat {
    Human,
    Json,
}

pub(crate) async fn run(args: DiffArgs, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (a, b) = (side(&args.a)?, side(&args.b)?);
    let config = Config::read(config)?;
    let store = store(args.db.as_deref(), config.as_ref()).await?;
    let (graph_a, graph_b) = (
        stored_graph(&store, a.thread).await?,
        stored_graph(&store, b.thread).await?,
    );
    let changes = diff::diff(&store, (a, &graph_a), (b, &graph_b)).await?;
    match args.format {
        DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&changes)?),
        DiffFormat::Human if changes.is_empty() => println!("no difference"),
        DiffFormat::Human => {
            for change in &changes {
                let writer = change
                    .written_by
                    .as_ref()
                    .map(|w| format!(" (written by `{}`, entry {}, step {})", w.node, w.seq, w.step))
                    .unwrap_or_default();
                println!("{}{writer}", change.field);
                for op in serde_json::to_value(&change.patch)?
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let path = op["path"].as_str().unwrap_or_default();
                    let value = op.get("value").map(|v| format!(" {v}")).unwrap_or_default();
                    println!(
                        "  {} {}{path}{value}",
                        op["op"].as_str().unwrap_or("?"),
                        change.field
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `THREAD` or `THREAD@SEQ`.
fn side(text: &str) -> anyhow::Result<Side> {
    let (thread, at) = match text.split_once('@') {
        Some((thread, seq)) => (
            thread,
            Some(
                seq.parse::<i64>()
                    .map_err(|_| anyhow::anyhow!("`{seq}` is not a log entry number"))?,
            ),
        ),
        None => (text, None),
    };
    let thread: Uuid = thread
        .parse()
        .map_err(|_| anyhow::anyhow!("`{thread}` is not a thread id"))?;
    Ok(Side { thread, at })
}
