//! `finch graph check|show|schema`.

use engine::diagnostic::render;

use crate::{finch, repo_root, stdout};

const FIXTURES: &str = "engine/tests/it/data";

fn fixture_files(folder: &str) -> Vec<String> {
    let dir = repo_root().join(FIXTURES).join(folder);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml") && !name.starts_with('_'))
        .map(|name| format!("{FIXTURES}/{folder}/{name}"))
        .collect();
    files.sort();
    files
}

#[test]
fn check_passes_on_the_repository() {
    let output = finch(&["graph", "check", "--deny-warnings"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("no problems"), "{text}");
}

#[test]
fn check_fails_on_each_invalid_fixture_naming_file_line_and_column() {
    let root = repo_root();
    for file in fixture_files("invalid") {
        let output = finch(&["graph", "check", &file]);
        assert_eq!(output.status.code(), Some(1), "{file}: {}", stdout(&output));
        // What the command prints is what the engine reports: the reviewed snapshots.
        let project = engine::Project::at(root.join(FIXTURES));
        let options = engine::LoadOptions::default();
        let expected = match engine::load_with(&project, &root.join(&file), &options) {
            Ok(graph) => graph.warnings,
            Err(diagnostics) => diagnostics,
        };
        let first_error = expected.iter().find(|d| d.is_error()).expect("an error");
        let location = format!(
            "--> {}:{}:{}",
            first_error.file.display(),
            first_error.line,
            first_error.column
        );
        let location = location.replace(&format!("{}/", root.display()), "");
        assert!(
            stdout(&output).contains(&location),
            "{file}: expected `{location}` in:\n{}",
            stdout(&output)
        );
        assert!(!render(&expected).is_empty());
    }
}

#[test]
fn warnings_fail_the_check_only_when_denied() {
    for file in fixture_files("warning") {
        if file.ends_with("unknown_model.yaml") {
            continue; // needs a finch.toml that defines the aliases; see the next test
        }
        let allowed = finch(&["graph", "check", &file]);
        assert!(allowed.status.success(), "{file}: {}", stdout(&allowed));
        assert!(
            stdout(&allowed).contains("warning: "),
            "{file}: {}",
            stdout(&allowed)
        );
        let denied = finch(&["graph", "check", "--deny-warnings", &file]);
        assert_eq!(denied.status.code(), Some(1), "{file}");
    }
}

#[test]
fn model_aliases_come_from_the_configuration_file() {
    let file = format!("{FIXTURES}/warning/unknown_model.yaml");
    let config = crate::temp_file(
        "aliases.toml",
        "[models.fast]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n",
    );
    let output = finch(&[
        "graph",
        "check",
        "--config",
        config.to_str().expect("utf-8"),
        &file,
    ]);
    let text = stdout(&output);
    assert!(
        text.contains("warning: model alias `fsat` is not configured"),
        "{text}"
    );
    assert!(text.contains("help: did you mean `fast`?"), "{text}");
    let without = finch(&["graph", "check", "--config", "no-such-finch.toml", &file]);
    assert!(stdout(&without).contains("no problems"), "{}", stdout(&without));
}

#[test]
fn check_reports_json_for_editors() {
    let file = format!("{FIXTURES}/invalid/unknown_edge_target.yaml");
    let output = finch(&["graph", "check", "--format", "json", &file]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["errors"], 1);
    let diagnostic = &report["diagnostics"][0];
    assert_eq!(diagnostic["severity"], "error");
    assert_eq!(diagnostic["file"], file);
    assert_eq!(
        (diagnostic["line"].as_u64(), diagnostic["column"].as_u64()),
        (Some(16), Some(24))
    );
    assert_eq!(diagnostic["hint"], "did you mean `hello`?");
}

#[test]
fn show_draws_every_route_of_a_graph() {
    let output = finch(&["graph", "show", "examples/helpdesk/helpdesk.yaml"]);
    assert!(output.status.success());
    let text = stdout(&output);
    for route in [
        "route -->|\"intent == 'refund'\"| draft_refund",
        "route -->|\"intent == 'question'\"| answer",
        "route -.->|\"default\"| chat",
        "approve -->|\"approved\"| record",
        "approve -.->|\"default\"| confirm",
    ] {
        assert!(text.contains(route), "missing `{route}` in:\n{text}");
    }
    for format in ["dot", "json"] {
        let output = finch(&[
            "graph",
            "show",
            "examples/helpdesk/helpdesk.yaml",
            "--format",
            format,
        ]);
        assert!(output.status.success(), "{format}");
    }
}

#[test]
fn show_refuses_a_graph_with_errors() {
    let file = format!("{FIXTURES}/invalid/unbounded_cycle.yaml");
    let output = finch(&["graph", "show", &file]);
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("cycle `hello → check → hello` has no bound"),
        "{errors}"
    );
}

#[test]
fn schema_prints_the_committed_graph_schema() {
    let output = finch(&["graph", "schema"]);
    let committed =
        std::fs::read_to_string(repo_root().join("schemas/graph.schema.json")).expect("committed");
    assert_eq!(stdout(&output), committed);
}
