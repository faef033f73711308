//! `finch graph watch`: the graph registry that `finch serve` will hold, on the command line.
//!
//! It loads every graph in a folder and prints each one's version (or its errors), then a line
//! for each reload until Ctrl-C, so that whoever edits the files sees what new threads would get.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use engine::Diagnostic;
use engine::registry::{Registry, RegistryEvent};
use engine::source::Folders;
use tokio::sync::broadcast::error::RecvError;

use super::{load_options, project_of_folder};
use crate::config::Config;

pub(crate) async fn watch(graphs: &Path, config: &Path) -> anyhow::Result<ExitCode> {
    if !graphs.is_dir() {
        bail!(
            "`{}` is not a folder; pass the folder of the graphs with --graphs",
            graphs.display()
        );
    }
    let options = load_options(Config::read(config)?.as_ref());
    let project = project_of_folder(graphs);
    let folders = Folders {
        graphs: graphs.to_path_buf(),
        prompts: project.prompts,
        schemas: project.schemas,
    };
    let registry = tokio::task::spawn_blocking(move || Registry::new(folders, options)).await?;
    print_graphs(&registry);
    let mut events = registry.subscribe();
    let watching = {
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || registry.watch()).await?
    };
    let _watching = watching.context("watching the graphs")?;
    let folders = registry.folders();
    println!(
        "watching {}, {} and {}; Ctrl-C stops",
        folders.graphs.display(),
        folders.prompts.display(),
        folders.schemas.display()
    );
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            stopped = &mut stop => return stopped.map(|()| ExitCode::SUCCESS).context("waiting for Ctrl-C"),
            event = events.recv() => match event {
                Ok(event) => print_event(&event),
                Err(RecvError::Lagged(missed)) => println!("missed {missed} reload events; the lines above may be stale"),
                Err(RecvError::Closed) => return Ok(ExitCode::SUCCESS),
            },
        }
    }
}

/// Each graph's version, or why it has none.
fn print_graphs(registry: &Registry) {
    let graphs = registry.graphs();
    let problems = registry.all_problems();
    if graphs.is_empty() && problems.is_empty() {
        println!("no graphs in {}", registry.folders().graphs.display());
    }
    for (name, graph) in &graphs {
        println!("{name}: version {}", short(&graph.version));
        print_diagnostics(&graph.warnings);
    }
    for (name, diagnostics) in &problems {
        println!("{name}: has errors, not served");
        print_diagnostics(diagnostics);
    }
}

fn print_event(event: &RegistryEvent) {
    match event {
        RegistryEvent::Reloaded {
            graph,
            version,
            previous,
            warnings,
        } => {
            match previous.as_deref() {
                None => println!("{graph}: new, version {}", short(version)),
                Some(previous) if previous == version => {
                    println!("{graph}: loads again, version {}", short(version))
                }
                Some(previous) => println!("{graph}: version {} → {}", short(previous), short(version)),
            }
            print_diagnostics(warnings);
        }
        RegistryEvent::Rejected {
            graph,
            diagnostics,
            serving,
        } => {
            match serving {
                Some(version) => println!(
                    "{graph}: change rejected, still serving version {}",
                    short(version)
                ),
                None => println!("{graph}: has errors, not served"),
            }
            print_diagnostics(diagnostics);
        }
        RegistryEvent::Removed { graph } => println!("{graph}: file removed, no longer served"),
        RegistryEvent::WatchFailed { message } => println!("watch error: {message}"),
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        println!("{diagnostic}\n");
    }
}

/// A version as `finch threads` shows it.
fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}
