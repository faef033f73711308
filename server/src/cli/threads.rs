//! `finch threads list|prune` and `finch thread show|history|migrate`: durable threads.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use uuid::Uuid;

use super::durable::store;
use super::{graph_path, load_graph};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub(crate) enum ThreadsCommand {
    /// List threads, most recently updated first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
    /// Delete threads not updated for a while (and all they hold).
    Prune {
        /// How old a thread must be: `30d`, `12h`, `15m` or `90s`.
        #[arg(long)]
        older_than: String,
        /// Keep this many of the most recently updated threads anyway.
        #[arg(long, default_value_t = 0)]
        keep_last: i64,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ThreadCommand {
    /// A thread's state, now or after log entry `--at`.
    Show {
        id: Uuid,
        /// A log entry (`seq`, as `finch thread history` lists them).
        #[arg(long)]
        at: Option<i64>,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
    /// A thread's log: each step, its nodes and the fields they wrote.
    History {
        id: Uuid,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
    /// A new thread from this one's state after log entry `--at` (the latest by default), with
    /// edits; it runs the same graph version, and the original is not touched.
    Fork {
        id: Uuid,
        #[arg(long)]
        at: Option<i64>,
        /// `PATH=JSON`: a field, or a path inside one (`rows.0.total`), and its new value.
        #[arg(long = "set", value_name = "PATH=JSON")]
        edits: Vec<String>,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
    /// Move a thread to the current version of its graph (from `graphs/`, or `--graph PATH`).
    Migrate {
        id: Uuid,
        #[arg(long)]
        graph: Option<String>,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
}

pub(crate) async fn threads(command: ThreadsCommand, config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::read(config)?;
    match command {
        ThreadsCommand::List { limit, db } => {
            let store = store(db.as_deref(), config.as_ref()).await?;
            for thread in store.threads(limit).await? {
                let runs = store.runs(thread.id).await?;
                let status = runs.last().map_or("no runs", |run| run.status.as_str());
                let updated = thread.updated_at.format("%Y-%m-%d %H:%M:%S");
                println!(
                    "{}  {:<16} {}  {updated}  {status}",
                    thread.id,
                    thread.graph,
                    &thread.graph_version[..12]
                );
            }
        }
        ThreadsCommand::Prune {
            older_than,
            keep_last,
            db,
        } => {
            let age = parse_age(&older_than)?;
            let store = store(db.as_deref(), config.as_ref()).await?;
            let deleted = store.prune(chrono::Utc::now() - age, keep_last).await?;
            println!("deleted {deleted} thread(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn thread(command: ThreadCommand, config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::read(config)?;
    match command {
        ThreadCommand::Show { id, at, db } => {
            let store = store(db.as_deref(), config.as_ref()).await?;
            let graph = stored_graph(&store, id).await?;
            let head = store.head(&graph, id, at).await?;
            println!(
                "thread {id}, graph {} ({}), after entry {}",
                graph.name,
                &graph.version[..12],
                head.seq
            );
            if let Some(position) = &head.position {
                let next: Vec<&str> = position.next.iter().map(|id| id.as_str()).collect();
                println!(
                    "next: {}",
                    if next.is_empty() {
                        "nothing (ended)".to_owned()
                    } else {
                        next.join(", ")
                    }
                );
            }
            println!("{}", serde_json::to_string_pretty(&head.state)?);
            for (node, state) in store.inside(id, at).await? {
                println!("inside `{node}`:\n{}", serde_json::to_string_pretty(&state)?);
            }
        }
        ThreadCommand::History { id, db } => {
            let store = store(db.as_deref(), config.as_ref()).await?;
            store.thread(id).await?;
            for entry in store.history(id).await? {
                let fields: Vec<String> = entry
                    .writes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|write| {
                        format!(
                            "{}.{}",
                            write["node"].as_str().unwrap_or("?"),
                            write["field"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                let run = entry.run_id.simple().to_string();
                let when = entry.created_at.format("%H:%M:%S%.3f");
                let waiting: Vec<&str> = entry.position["waiting"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(id, _)| id.as_str())
                    .collect();
                let nodes = match (entry.step, waiting.is_empty()) {
                    (0, _) if entry.nodes == ["fork"] => "fork".to_owned(),
                    (0, _) => "input".to_owned(),
                    (_, false) => format!("(paused: {} waits)", waiting.join(", ")),
                    (_, true) => entry.nodes.join(", "),
                };
                let version = entry
                    .graph_version
                    .as_deref()
                    .map_or("?", |v| &v[..12.min(v.len())]);
                println!(
                    "{:>4}  run {} ({version})  step {:>2}  {when}  {nodes}  → {}",
                    entry.seq,
                    &run[..8],
                    entry.step,
                    fields.join(", ")
                );
            }
        }
        ThreadCommand::Fork { id, at, edits, db } => {
            let edits = edits
                .iter()
                .map(|edit| parse_edit(edit))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let store = store(db.as_deref(), config.as_ref()).await?;
            let graph = stored_graph(&store, id).await?;
            let fork = store.fork(&graph, id, at, &edits).await?;
            println!("{}", fork.id);
        }
        ThreadCommand::Migrate { id, graph, db } => {
            let store = store(db.as_deref(), config.as_ref()).await?;
            let thread = store.thread(id).await?;
            let path = graph_path(graph.as_deref().unwrap_or(&thread.graph))?;
            let current = load_graph(&path, config.as_ref())?;
            if current.name != thread.graph {
                bail!(
                    "thread {id} runs graph `{}`, not `{}`",
                    thread.graph,
                    current.name
                );
            }
            store.pin(id, &current).await?;
            println!(
                "thread {id}: {} → {}",
                &thread.graph_version[..12],
                &current.version[..12]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The graph version a thread is pinned to.
pub(crate) async fn stored_graph(
    store: &engine::store::Store,
    thread: Uuid,
) -> anyhow::Result<engine::Graph> {
    let row = store.thread(thread).await?;
    let files = std::sync::Arc::new(store.version_files(&row.graph_version).await?);
    engine::load_source(files.clone(), &files.graph, &Default::default()).map_err(|d| {
        anyhow::anyhow!(
            "the stored graph no longer loads:\n{}",
            engine::diagnostic::render(&d)
        )
    })
}

/// `PATH=JSON` as an edit; a value that is not JSON is taken as text.
fn parse_edit(text: &str) -> anyhow::Result<engine::store::Edit> {
    let Some((path, value)) = text.split_once('=') else {
        bail!("`{text}` is not an edit: write `PATH=JSON`, like `last=\"hi\"` or `rows.0.total=\"12.50\"`");
    };
    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok(engine::store::Edit {
        path: path.trim().to_owned(),
        value,
    })
}

/// `30d`, `12h`, `15m`, `90s` as a duration.
fn parse_age(text: &str) -> anyhow::Result<chrono::Duration> {
    let (number, unit) = text.split_at(text.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let number: i64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a duration like `30d`"))?;
    Ok(match unit {
        "d" => chrono::Duration::days(number),
        "h" => chrono::Duration::hours(number),
        "m" => chrono::Duration::minutes(number),
        "s" | "" => chrono::Duration::seconds(number),
        _ => bail!("`{text}`: the unit is one of d, h, m, s"),
    })
}
