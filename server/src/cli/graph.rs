//! `finch graph check|show|schema`: graph files without running them.
//!
//! A graph's project (its `prompts/` and `schemas/` folders) is the nearest folder, from the
//! graph's own folder up, that has either of them: `graphs/x.yaml` uses the repository's
//! `prompts/`, and `examples/demo/demo.yaml` uses `examples/demo/prompts/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use engine::Diagnostic;
use engine::graph::{draw, is_graph_file};

use super::{graph_path, load_graph, load_options, project_of};
use crate::config::Config;

/// Folders `finch graph check` reads when given no paths.
const DEFAULT_ROOTS: &[&str] = &["graphs", "examples"];

#[derive(Debug, Subcommand)]
pub(crate) enum GraphCommand {
    /// Check graph files: every problem, with file:line:column and a hint.
    ///
    /// Exits 0 when there is no error (and no warning with --deny-warnings), 1 otherwise.
    Check {
        /// Graph files, or folders to search for them. Default: graphs/ and examples/.
        paths: Vec<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
    },
    /// Draw a graph: every edge and route, subgraphs as clusters.
    Show {
        /// A graph name (in graphs/) or the path of a graph file.
        name: String,
        #[arg(long, value_enum, default_value_t = ShowFormat::Mermaid)]
        format: ShowFormat,
    },
    /// Run the test cases beside graphs (`<graph>.cases.yaml`), with scripted model replies.
    ///
    /// Exits 0 when every case passes, 1 otherwise.
    Test {
        /// Graph files, or folders to search for them. Default: graphs/ and examples/.
        paths: Vec<PathBuf>,
        /// A PostgreSQL server where cases with `sql` get a fresh database each.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: Option<String>,
    },
    /// Print the JSON Schema of graph files (committed as schemas/graph.schema.json).
    Schema,
    /// Load every graph in a folder, print its version, then reload it whenever a graph,
    /// template or schema changes, printing what changed, until Ctrl-C.
    Watch {
        /// The folder of the graphs; its project's prompts/ and schemas/ are watched too.
        #[arg(long, default_value = "graphs")]
        graphs: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CheckFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ShowFormat {
    Mermaid,
    Dot,
    Json,
}

pub(crate) async fn run(command: GraphCommand, config: &Path) -> anyhow::Result<ExitCode> {
    match command {
        GraphCommand::Test { paths, db } => super::cases::test(&paths, db.as_deref(), config).await,
        GraphCommand::Check {
            paths,
            deny_warnings,
            format,
        } => check(&paths, deny_warnings, format, config),
        GraphCommand::Show { name, format } => show(&name, format, config),
        GraphCommand::Watch { graphs } => super::watch::watch(&graphs, config).await,
        GraphCommand::Schema => {
            print!("{}", engine::graph_json_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(
    paths: &[PathBuf],
    deny_warnings: bool,
    format: CheckFormat,
    config: &Path,
) -> anyhow::Result<ExitCode> {
    let options = load_options(Config::read(config)?.as_ref());
    let files = graph_files(paths)?;
    let mut diagnostics = Vec::new();
    for file in &files {
        let project = project_of(file);
        match engine::load_with(&project, file, &options) {
            Ok(graph) => diagnostics.extend(graph.warnings),
            Err(found) => diagnostics.extend(found),
        }
    }
    engine::diagnostic::normalize(&mut diagnostics);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    match format {
        CheckFormat::Human => print_human(&diagnostics, files.len(), errors, warnings),
        CheckFormat::Json => {
            let report = serde_json::json!({
                "graphs": files,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diagnostics,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    let failed = errors > 0 || (deny_warnings && warnings > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_human(diagnostics: &[Diagnostic], graphs: usize, errors: usize, warnings: usize) {
    for diagnostic in diagnostics {
        println!("{diagnostic}\n");
    }
    let counted = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let summary = match (errors, warnings) {
        (0, 0) => "no problems".to_owned(),
        _ => format!("{}, {}", counted(errors, "error"), counted(warnings, "warning")),
    };
    println!("checked {}: {summary}", counted(graphs, "graph"));
}

fn show(name: &str, format: ShowFormat, config: &Path) -> anyhow::Result<ExitCode> {
    let path = graph_path(name)?;
    let graph = load_graph(&path, Config::read(config)?.as_ref())?;
    let text = match format {
        ShowFormat::Mermaid => draw::mermaid(&graph),
        ShowFormat::Dot => draw::dot(&graph),
        ShowFormat::Json => serde_json::to_string_pretty(&draw::json(&graph))? + "\n",
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The graph files named by `paths` (folders are searched), or under the default folders.
pub(crate) fn graph_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let defaults: Vec<PathBuf> = DEFAULT_ROOTS
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .collect();
    let roots = if paths.is_empty() { &defaults } else { paths };
    let mut files = Vec::new();
    for root in roots {
        if root.is_dir() {
            collect_graphs(root, &mut files).with_context(|| format!("reading {}", root.display()))?;
        } else {
            // A file that does not exist is reported by the loader, with its name.
            files.push(root.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect_graphs(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() && !matches!(name, "prompts" | "schemas") {
            collect_graphs(&path, files)?;
        } else if is_graph_file(&path) {
            files.push(path);
        }
    }
    Ok(())
}
