//! `finch graph check|show|schema|watch`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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

/// `finch graph watch` on a copy of the engine's registry fixture, killed at the end.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(graphs: &Path) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_finch"))
            .args(["graph", "watch", "--graphs"])
            .arg(graphs)
            .current_dir(repo_root())
            .env_remove("FINCH_CONFIG")
            .stdout(Stdio::piped())
            .spawn()
            .expect("finch starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// Reads lines until one starts with `prefix`, and returns it with the lines before it.
    fn until(&self, prefix: &str) -> (String, Vec<String>) {
        let mut before = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.trim_start().starts_with(prefix) => return (line, before),
                Ok(line) => before.push(line),
                Err(err) => panic!("no line starting with `{prefix}` ({err}); got {before:#?}"),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The watcher debounces for ~200 ms; the test waits up to 10 s for each line.
#[test]
fn watch_prints_each_version_then_each_reload() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("watch-{}", uuid::Uuid::new_v4()));
    copy_dir(&repo_root().join(FIXTURES).join("registry"), &dir);
    let watch = Watch::start(&dir.join("graphs"));
    let (watching, versions) = watch.until("watching ");
    assert_eq!(versions.len(), 2, "{versions:#?}");
    assert!(versions[0].starts_with("farewell: version "), "{versions:#?}");
    assert!(versions[1].starts_with("greet: version "), "{versions:#?}");
    assert!(watching.ends_with("; Ctrl-C stops"), "{watching}");
    let first = versions[1].trim_start_matches("greet: version ").to_owned();

    let template = dir.join("prompts/greet.j2");
    std::fs::write(&template, "Say hi to {{ person.name }}.\n").unwrap();
    let (reloaded, _) = watch.until("greet: version ");
    assert!(
        reloaded.starts_with(&format!("greet: version {first} → ")),
        "{reloaded}"
    );

    let graph = dir.join("graphs/greet.yaml");
    let text = std::fs::read_to_string(&graph).unwrap();
    std::fs::write(&graph, text.replace("to: END }", "to: ENDD }")).unwrap();
    let (rejected, _) = watch.until("greet: change rejected");
    let (location, _) = watch.until("-->");
    assert!(rejected.contains("still serving version "), "{rejected}");
    assert_eq!(location.trim(), format!("--> {}:17:24", graph.display()));
    drop(watch);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The assistant's graph file `name`, checked with `finch`'s tools.
fn assistant_graph(name: &str) -> engine::Graph {
    let root = repo_root();
    let options = engine::LoadOptions {
        models: None,
        tools: server::tools::specs(),
    };
    let path = root.join(format!("graphs/{name}.yaml"));
    engine::load_with(&engine::Project::at(&root), &path, &options)
        .unwrap_or_else(|d| panic!("{}", render(&d)))
}

/// Every node of `graph` and its subgraphs (and inside maps) that may change something
/// outside the run, as `graph/node (tool)`.
fn writers(graph: &engine::Graph, into: &mut Vec<String>) {
    use engine::nodes::Node;
    for (id, def) in &graph.nodes {
        let node = match &def.node {
            Node::Map(map) => &map.node.node,
            node => node,
        };
        if node.writes_outside() {
            let what = match node {
                Node::Tool(tool) => tool.tool.as_str().to_owned(),
                other => other.kind().to_owned(),
            };
            into.push(format!("{}/{} ({what})", graph.name, id.as_str()));
        }
    }
    for subgraph in graph.subgraphs.values() {
        writers(subgraph, into);
    }
}

/// Injection resistance by construction: the graphs that read query results and stored
/// text (the router's, the database agent, the behaviour analyst) have no writing node but the
/// chart, which draws; a maker writes through one tool node, at most once a turn, and only
/// right after its confirmation interrupt.
#[test]
fn only_the_makers_write_and_only_once_after_a_yes() {
    for name in ["assistant", "database", "behaviour_analyst"] {
        let mut found = Vec::new();
        writers(&assistant_graph(name), &mut found);
        let expected: &[&str] = match name {
            "assistant" => &["assistant/draw (chart)"],
            _ => &[],
        };
        assert_eq!(found, expected, "{name}");
    }
    for (name, tool) in [
        ("goal_maker", "save_goal"),
        ("budget_maker", "save_budget"),
        ("transaction_maker", "add_expense"),
    ] {
        let graph = assistant_graph(name);
        let mut found = Vec::new();
        writers(&graph, &mut found);
        assert_eq!(found, [format!("{name}/save ({tool})")]);
        let save = graph.node("save").unwrap();
        assert_eq!(
            save.common.max_visits.as_ref().map(|visits| visits.value),
            Some(1),
            "{name}"
        );
        let sources: Vec<&engine::nodes::Node> = graph
            .edges
            .iter()
            .filter(|edge| {
                let save = engine::graph::Endpoint::Node(save.id.clone());
                match &edge.next {
                    engine::graph::Next::Static(targets) => targets.contains(&save),
                    engine::graph::Next::Routes(routes) => routes.targets().contains(&&save),
                }
            })
            .flat_map(|edge| &edge.from)
            .map(|from| &graph.node(&from.to_string()).unwrap().node)
            .collect();
        assert!(!sources.is_empty(), "{name}");
        assert!(
            sources.iter().all(|node| node.kind() == "interrupt"),
            "{name}: `save` must follow the confirmation only"
        );
    }
}
