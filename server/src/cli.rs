//! The subcommands, one module per group, and what they share: finding a graph's project,
//! loading a graph with the configuration's model aliases, connecting to the database.

pub(crate) mod bench;
mod cases;
pub(crate) mod demo;
pub(crate) mod diff;
pub(crate) mod durable;
pub(crate) mod graph;
pub(crate) mod replay;
pub(crate) mod run;
pub(crate) mod sandbox;
pub(crate) mod serve;
pub(crate) mod threads;
mod watch;
pub(crate) mod worker;

use std::path::{Path, PathBuf};

use anyhow::bail;
use engine::{Graph, LoadOptions, Project};

use crate::config::Config;

/// The project of a graph file: the nearest folder upwards with `prompts/` or `schemas/`.
pub(crate) fn project_of(graph: &Path) -> Project {
    let dir = graph
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    project_of_folder(dir)
}

/// The project of the graphs in `dir`: the nearest folder from `dir` upwards with `prompts/`
/// or `schemas/`.
pub(crate) fn project_of_folder(dir: &Path) -> Project {
    // Walk up from the absolute folder (`.` has no parent), then keep paths relative to the
    // current folder when they are below it, so messages stay short.
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let root = absolute
        .ancestors()
        .find(|folder| folder.join("prompts").is_dir() || folder.join("schemas").is_dir())
        .unwrap_or(&absolute);
    let current = std::env::current_dir().unwrap_or_default();
    match root.strip_prefix(&current) {
        Ok(relative) if relative.as_os_str().is_empty() => Project::at(""),
        Ok(relative) => Project::at(relative),
        Err(_) => Project::at(root),
    }
}

pub(crate) fn load_options(config: Option<&Config>) -> LoadOptions {
    LoadOptions {
        models: config.map(Config::model_aliases),
        tools: crate::tools::specs(),
    }
}

/// A graph by name (in `graphs/`) or path.
pub(crate) fn graph_path(name: &str) -> anyhow::Result<PathBuf> {
    let path = match Path::new(name).is_file() {
        true => PathBuf::from(name),
        false => Path::new("graphs").join(format!("{name}.yaml")),
    };
    if !path.is_file() {
        bail!("no graph `{name}`: expected a file path or graphs/{name}.yaml");
    }
    Ok(path)
}

/// Loads a graph, or prints its errors and fails.
pub(crate) fn load_graph(path: &Path, config: Option<&Config>) -> anyhow::Result<Graph> {
    match engine::load_with(&project_of(path), path, &load_options(config)) {
        Ok(graph) => Ok(graph),
        Err(diagnostics) => {
            for diagnostic in diagnostics.iter().filter(|d| d.is_error()) {
                eprintln!("{diagnostic}\n");
            }
            bail!(
                "`{}` has errors; `finch graph check {}` lists them",
                path.display(),
                path.display()
            )
        }
    }
}

/// A pool for `url`, connected when first used.
pub(crate) fn database(url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_lazy(url)
        .map_err(|err| anyhow::anyhow!("the database URL is not usable ({err}); check --db or DATABASE_URL"))
}

/// `finch migrate`.
pub(crate) async fn migrate(db: Option<&str>) -> anyhow::Result<std::process::ExitCode> {
    durable::store(db, None).await?;
    println!("the database is migrated");
    Ok(std::process::ExitCode::SUCCESS)
}
