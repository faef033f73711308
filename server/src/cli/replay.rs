//! `finch replay`: with `--check`, replays recorded threads without calling any model or
//! running any `sql`, and says whether each comes out as recorded — a regression check for
//! the engine and for graph changes. Without it, a what-if replay: the thread's runs again,
//! with the current graph and models, in a new thread, and what came out differently.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use engine::diff;
use engine::replay::{self, Replayed};
use uuid::Uuid;

use crate::cli::durable::store;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The threads to replay.
    #[arg(required_unless_present = "all")]
    threads: Vec<Uuid>,
    /// With `--check`: every thread a run started on since `--since`.
    #[arg(long, requires = "since", requires = "check", conflicts_with = "threads")]
    all: bool,
    /// With `--all`: a date (`2026-11-01`) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Compare every step with the recording, and exit 1 if a thread differs.
    #[arg(long)]
    check: bool,
    /// Replay with this graph file rather than the version each run ran: would the current
    /// files have done the same? Without `--check`: the graph the fork runs (by default, the
    /// thread's graph in `graphs/`).
    #[arg(long)]
    graph: Option<PathBuf>,
    /// Replay what follows this log entry (0, everything, by default). With `--check`, the run
    /// it is part of is replayed from there; without, the runs after it.
    #[arg(long, default_value_t = 0)]
    from: i64,
    /// Without `--check`: where the models' replies come from, `config` or `scripted:FILE`.
    #[arg(long, default_value = "config")]
    llm: String,
    /// Without `--check`: the configured models (`--llm config`, the default).
    #[arg(long, conflicts_with = "llm")]
    live: bool,
    /// Without `--check`: only this node asks the model; every other one gets its recorded
    /// replies.
    #[arg(long)]
    only: Option<String>,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
}

pub(crate) async fn run(args: ReplayArgs, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    if !args.check {
        return what_if(args, config).await;
    }
    let config = Config::read(config)?;
    let store = store(args.db.as_deref(), config.as_ref()).await?;
    let current = match &args.graph {
        Some(path) => Some(crate::cli::load_graph(path, config.as_ref())?),
        None => None,
    };
    let threads = match (args.all, args.since) {
        (true, Some(since)) => store
            .threads_since(since)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect(),
        _ => args.threads,
    };
    let mut same = true;
    for thread in threads {
        let from = (args.from > 0).then_some(args.from);
        match replay::check(&store, thread, current.as_ref(), from).await? {
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

/// A what-if replay of each thread into a new one: the thread ids, and what differs.
async fn what_if(args: ReplayArgs, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = Config::read(config)?;
    let store = store(args.db.as_deref(), config.as_ref()).await?;
    for thread in args.threads {
        let row = store.thread(thread).await?;
        let path = match &args.graph {
            Some(path) => path.clone(),
            None => crate::cli::graph_path(&row.graph)?,
        };
        let graph = crate::cli::load_graph(&path, config.as_ref())?;
        let choice = if args.live { "config" } else { args.llm.as_str() };
        let mut llm = crate::cli::run::llm_for_worker(choice, config.as_ref())?;
        if let Some(node) = &args.only {
            llm = Arc::new(replay::OnlyLive::new(&store, thread, args.from, node, llm).await?);
        }
        let worker = crate::cli::durable::worker(store.clone(), llm, config.as_ref(), None);
        let made = replay::what_if(&worker, thread, args.from, &graph).await?;
        let runs = if made.runs == 1 {
            "1 run".to_owned()
        } else {
            format!("{} runs", made.runs)
        };
        println!("thread {thread}: {runs} replayed into thread {}", made.fork);
        let (a, b) = (
            diff::Side { thread, at: None },
            diff::Side {
                thread: made.fork,
                at: None,
            },
        );
        let original = crate::cli::threads::stored_graph(&store, thread).await?;
        for change in diff::diff(&store, (a, &original), (b, &graph)).await? {
            let by = change
                .written_by
                .map(|w| format!(" (by `{}`)", w.node))
                .unwrap_or_default();
            println!(
                "  {}{by}: {}",
                change.field,
                serde_json::to_string(&change.patch)?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-01` (midnight UTC) or an RFC 3339 time.
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("`{text}` is not a date like 2026-11-01 or a time like 2026-11-01T12:00:00Z"))
}
