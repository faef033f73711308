//! Every valid graph loads cleanly; every invalid one reports what the snapshot says.

use std::path::Path;

use engine::diagnostic::render;
use engine::{Diagnostic, Project, load_with};

use crate::{fixture_options, fixtures, graph_files, relative, repo_root};

fn diagnostics(project: &Project, path: &Path) -> Vec<Diagnostic> {
    match load_with(project, path, &fixture_options()) {
        Ok(graph) => graph.warnings,
        Err(diagnostics) => diagnostics,
    }
}

fn is_helper(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('_'))
}

#[test]
fn each_invalid_fixture_reports_its_errors() {
    insta::glob!("data/invalid/*.yaml", |path| {
        if is_helper(path) {
            return;
        }
        let found = diagnostics(&fixtures(), &relative(path));
        assert!(
            found.iter().any(Diagnostic::is_error),
            "no error for {}",
            path.display()
        );
        insta::assert_snapshot!(render(&found));
    });
}

#[test]
fn each_warning_fixture_reports_warnings_only() {
    insta::glob!("data/warning/*.yaml", |path| {
        if is_helper(path) {
            return;
        }
        let found = diagnostics(&fixtures(), &relative(path));
        assert!(!found.is_empty(), "no warning for {}", path.display());
        assert!(
            !found.iter().any(Diagnostic::is_error),
            "errors for {}:\n{}",
            path.display(),
            render(&found)
        );
        insta::assert_snapshot!(render(&found));
    });
}

#[test]
fn valid_fixtures_load_without_any_diagnostic() {
    for path in graph_files(Path::new("tests/it/data/valid")) {
        let found = diagnostics(&fixtures(), &path);
        assert!(found.is_empty(), "{}:\n{}", path.display(), render(&found));
    }
}

/// The assistant's graphs in `graphs/` use the finance tools of `finch`, so `finch graph
/// check` checks them (`server/tests/it/graph.rs`).
#[test]
fn the_examples_load_without_any_diagnostic() {
    let root = repo_root();
    let mut checked = 0;
    for path in graph_files(&root.join("examples")) {
        let example = path.parent().expect("an example folder");
        let found = diagnostics(&Project::at(example), &path);
        assert!(found.is_empty(), "{}:\n{}", path.display(), render(&found));
        checked += 1;
    }
    assert!(checked > 0, "no graph found under examples/");
}

#[test]
fn a_graph_keeps_the_templates_and_schemas_it_was_checked_with() {
    let graph = load_with(
        &fixtures(),
        Path::new("tests/it/data/valid/support.yaml"),
        &fixture_options(),
    )
    .expect("a valid graph");
    let templates: Vec<&str> = graph.templates.keys().map(String::as_str).collect();
    assert_eq!(
        templates,
        [
            "support/answer.j2",
            "support/classify.system.j2",
            "support/classify.user.j2",
            "support/explain.j2"
        ]
    );
    let schemas: Vec<&str> = graph.schemas.keys().map(String::as_str).collect();
    assert_eq!(schemas, ["intent.schema.json", "message.schema.json"]);
    assert_eq!(graph.subgraphs.keys().collect::<Vec<_>>(), ["profile"]);
}
