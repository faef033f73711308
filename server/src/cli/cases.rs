//! `finch graph test`: the cases beside each graph, run with scripted replies.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use engine::cases::{self, CaseDatabases};
use engine::graph::graph_name;

use super::graph::graph_files;
use super::load_graph;
use crate::config::Config;
use crate::tools;

/// Runs the cases of every graph under `paths` that has a `<graph>.cases.yaml`.
pub(crate) async fn test(paths: &[PathBuf], db: Option<&str>, config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::read(config)?;
    for path in paths {
        if !path.exists() {
            anyhow::bail!("`{}` does not exist", path.display());
        }
        if path.is_file() && !cases::cases_path(path).is_file() {
            anyhow::bail!(
                "`{}` has no test cases: expected `{}`",
                path.display(),
                cases::cases_path(path).display()
            );
        }
    }
    let mut databases: Option<CaseDatabases> = None;
    let (mut passed, mut failed) = (0, 0);
    for graph_file in graph_files(paths)? {
        let cases_file = cases::cases_path(&graph_file);
        if !cases_file.is_file() {
            continue;
        }
        let name = graph_name(&graph_file);
        let file = match load_cases(&graph_file, &cases_file, config.as_ref()) {
            Ok(loaded) => loaded,
            Err(err) => {
                println!("FAIL  {name}: {err:#}");
                failed += 1;
                continue;
            }
        };
        let (graph, cases) = file;
        for case in &cases.cases {
            if (case.sql.is_some() || case.migrated) && databases.is_none() {
                let Some(url) = db else {
                    anyhow::bail!(
                        "`{}` needs a database: pass --db or set DATABASE_URL",
                        cases_file.display()
                    );
                };
                databases = Some(cases::connect(url).await?);
            }
            let report = cases::run_case(&graph, case, databases.as_ref(), &tools::all()).await;
            let location = format!("{}:{}", cases_file.display(), case.pos.line);
            if report.passed() {
                println!("ok    {name} · {}", report.name);
                passed += 1;
            } else {
                println!("FAIL  {name} · {}  ({location})", report.name);
                for problem in &report.problems {
                    println!("      {problem}");
                }
                failed += 1;
            }
        }
    }
    println!("\n{} case(s): {passed} passed, {failed} failed", passed + failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn load_cases(
    graph_file: &Path,
    cases_file: &Path,
    config: Option<&Config>,
) -> anyhow::Result<(engine::Graph, cases::CasesFile)> {
    let graph = load_graph(graph_file, config)?;
    let text = std::fs::read_to_string(cases_file)?;
    let cases = cases::read_cases(&text).map_err(|err| anyhow::anyhow!("{}:{err}", cases_file.display()))?;
    Ok((graph, cases))
}
