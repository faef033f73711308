//! Runs as data: every case of every graph in `data/run/`, with its trace snapshotted.
//!
//! Each `x.cases.yaml` holds cases for `x.yaml`; a case scripts the model replies, may prepare
//! a fresh database, and says what it expects. The snapshot shows each case's steps, status
//! and final state, so a change in semantics shows up as a diff to review.

use std::path::Path;

use engine::cases::{self, CaseDatabases};

use crate::{fixture_options, fixtures, relative};

/// A server where the tests may create databases: `DATABASE_URL`, which `.ci/run` sets.
// The rule against reading the environment is the library's; tests are configured by it.
#[allow(clippy::disallowed_methods)]
pub(crate) async fn databases() -> CaseDatabases {
    let url = std::env::var("DATABASE_URL")
        .expect("set DATABASE_URL to a PostgreSQL server where tests may create databases (.ci/run does)");
    cases::connect(&url)
        .await
        .expect("DATABASE_URL reaches PostgreSQL")
}

#[test]
fn every_case_of_every_run_graph_passes() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let databases = runtime.block_on(databases());
    insta::glob!("data/run/*.cases.yaml", |path| {
        let cases_file = relative(path);
        let graph_file = cases_file.with_file_name(
            cases_file
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".cases.yaml", ".yaml"),
        );
        let graph = engine::load_with(&fixtures(), &graph_file, &fixture_options())
            .unwrap_or_else(|d| panic!("{}", engine::diagnostic::render(&d)));
        let text = std::fs::read_to_string(&cases_file).expect("readable");
        let file = cases::read_cases(&text).unwrap_or_else(|e| panic!("{}:{e}", cases_file.display()));
        let mut snapshot = String::new();
        for case in &file.cases {
            let report = runtime.block_on(cases::run_case(&graph, case, Some(&databases), &[]));
            assert!(
                report.passed(),
                "{} — {}:\n{}\n{}",
                cases_file.display(),
                report.name,
                report.problems.join("\n"),
                report.trace
            );
            snapshot.push_str(&format!("== {}\n{}\n", report.name, report.trace));
        }
        insta::assert_snapshot!(snapshot);
    });
}

#[test]
fn run_graphs_load_without_any_diagnostic() {
    for path in crate::graph_files(Path::new("tests/it/data/run")) {
        let found = match engine::load_with(&fixtures(), &path, &fixture_options()) {
            Ok(graph) => graph.warnings,
            Err(diagnostics) => diagnostics,
        };
        assert!(
            found.is_empty(),
            "{}:\n{}",
            path.display(),
            engine::diagnostic::render(&found)
        );
    }
}
