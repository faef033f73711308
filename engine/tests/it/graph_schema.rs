//! `schemas/graph.schema.json` is generated from the loader's types and committed.

use std::path::Path;

use engine::yaml;

use crate::{graph_files, repo_root};

#[test]
fn the_committed_graph_schema_is_up_to_date() {
    let path = repo_root().join("schemas/graph.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == engine::graph_json_schema(),
        "{} is stale: regenerate it with `cargo run -q --bin finch -- graph schema > schemas/graph.schema.json`",
        path.display()
    );
}

#[test]
fn every_valid_graph_matches_the_graph_schema() {
    let schema: serde_json::Value = serde_json::from_str(&engine::graph_json_schema()).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let root = repo_root();
    let files = graph_files(Path::new("tests/it/data/valid"))
        .into_iter()
        .chain(graph_files(&root.join("graphs")))
        .chain(graph_files(&root.join("examples")));
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let document: serde_json::Value =
            yaml::from_node(&yaml::parse(&text).expect("YAML")).expect("JSON-like");
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}:\n{}", path.display(), errors.join("\n"));
    }
}

#[test]
fn graph_files_name_the_schema_for_editors() {
    let root = repo_root();
    let files = graph_files(Path::new("tests/it/data"))
        .into_iter()
        .chain(graph_files(&root.join("graphs")))
        .chain(graph_files(&root.join("examples")));
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let first = text.lines().next().unwrap_or_default();
        let target = first.strip_prefix("# yaml-language-server: $schema=");
        let target =
            target.unwrap_or_else(|| panic!("{} does not start with the schema modeline", path.display()));
        let schema = path.parent().expect("a folder").join(target);
        assert!(
            schema.canonicalize().ok() == root.join("schemas/graph.schema.json").canonicalize().ok(),
            "{}: the modeline points to {}, not schemas/graph.schema.json",
            path.display(),
            schema.display()
        );
    }
}
