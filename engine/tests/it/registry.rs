//! The graph registry: every graph's current version, reloaded when its files change.
//!
//! The project is a fresh copy of `data/registry/` per test: `greet` and `farewell` share
//! `person.schema.json`, and each has its own template. `reload()` is tested directly; the
//! watcher reloads after `engine::registry::DEBOUNCE` (~200 ms) of quiet, and its tests wait
//! up to 10 s for the event they expect, asserting nothing about timing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engine::graph::load_source;
use engine::registry::{Registry, RegistryEvent};
use engine::source::Folders;
use engine::{Diagnostic, LoadOptions};
use tokio::sync::broadcast;

use crate::versions::copy_dir;

/// How long a watcher test waits for an event before failing.
const PATIENCE: Duration = Duration::from_secs(10);

/// The graph file edit that breaks `greet`: its last edge leads to a node that does not exist.
const BROKEN_EDGE: (&str, &str) = ("{ from: greet, to: END }", "{ from: greet, to: ENDD }");

/// A copy of `data/registry/` in the temp folder, removed when dropped.
struct TempProject {
    dir: PathBuf,
}

impl TempProject {
    fn new() -> TempProject {
        let dir = std::env::temp_dir().join(format!("finch-registry-{}", uuid::Uuid::new_v4()));
        let project = TempProject { dir };
        copy_dir(Path::new("tests/it/data/registry"), &project.dir);
        project
    }

    fn folders(&self) -> Folders {
        Folders {
            graphs: self.dir.join("graphs"),
            prompts: self.dir.join("prompts"),
            schemas: self.dir.join("schemas"),
        }
    }

    fn registry(&self) -> Registry {
        Registry::new(self.folders(), LoadOptions::default())
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).expect("a fixture file")
    }

    /// Replaces `from` by `to` in `file`, which must contain it.
    fn edit(&self, file: &str, (from, to): (&str, &str)) {
        let text = self.read(file);
        assert!(text.contains(from), "{file} has no `{from}`");
        std::fs::write(self.path(file), text.replace(from, to)).expect("writable");
    }

    /// Writes `file` as editors do: a temporary file beside it, renamed over it.
    fn save_by_rename(&self, file: &str, text: &str) {
        let path = self.path(file);
        let temporary = path.with_file_name(".finch-save.tmp");
        std::fs::write(&temporary, text).expect("writable");
        std::fs::rename(&temporary, &path).expect("renamable");
    }

    /// What loading `graph` from the folders gives now, without the registry.
    fn load(&self, graph: &str) -> Result<engine::Graph, Vec<Diagnostic>> {
        load_source(Arc::new(self.folders()), graph, &LoadOptions::default())
    }

    fn version(&self, graph: &str) -> String {
        self.load(graph).expect("a valid graph").version
    }
}

impl Drop for TempProject {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn current_version(registry: &Registry, graph: &str) -> String {
    registry.get(graph).expect("a current version").version.clone()
}

/// Waits for the first event about `graph` that `wanted` accepts, skipping the others.
async fn wait_for(
    events: &mut broadcast::Receiver<RegistryEvent>,
    graph: &str,
    wanted: impl Fn(&RegistryEvent) -> bool,
) -> RegistryEvent {
    let mut seen = Vec::new();
    let waiting = async {
        loop {
            match events.recv().await.expect("the registry is alive") {
                RegistryEvent::WatchFailed { message } => panic!("the watcher failed: {message}"),
                event if event.graph() == Some(graph) && wanted(&event) => return event,
                event => seen.push(event),
            }
        }
    };
    match tokio::time::timeout(PATIENCE, waiting).await {
        Ok(event) => event,
        Err(_) => panic!("no such event about `{graph}` within {PATIENCE:?}; saw {seen:#?}"),
    }
}

#[test]
fn a_registry_serves_every_graph_in_the_folder_at_its_version() {
    let project = TempProject::new();
    let registry = project.registry();
    let names: Vec<String> = registry.graphs().into_keys().collect();
    assert_eq!(names, ["farewell", "greet"]);
    for name in &names {
        assert_eq!(current_version(&registry, name), project.version(name));
    }
    assert!(registry.get("nothing").is_none());
    assert!(registry.all_problems().is_empty());
}

#[test]
fn reload_gives_a_new_version_only_to_graphs_whose_files_changed() {
    let project = TempProject::new();
    let registry = project.registry();
    let greet = registry.get("greet").unwrap();
    let farewell = registry.get("farewell").unwrap();
    assert_eq!(registry.reload(), []);
    assert!(Arc::ptr_eq(&registry.get("greet").unwrap(), &greet));

    project.edit("prompts/greet.j2", ("Say hello", "Say hi"));
    let changes = registry.reload();

    let version = project.version("greet");
    assert_ne!(version, greet.version);
    assert_eq!(
        changes,
        [RegistryEvent::Reloaded {
            graph: "greet".to_owned(),
            version: version.clone(),
            previous: Some(greet.version.clone()),
            warnings: Vec::new(),
        }]
    );
    assert_eq!(current_version(&registry, "greet"), version);
    assert!(Arc::ptr_eq(&registry.get("farewell").unwrap(), &farewell));
}

#[test]
fn reload_gives_every_graph_using_a_changed_schema_a_new_version() {
    let project = TempProject::new();
    let registry = project.registry();
    let before = registry.graphs();

    project.edit(
        "schemas/person.schema.json",
        (
            r#""name": { "type": "string" }"#,
            r#""name": { "type": "string", "minLength": 1 }"#,
        ),
    );
    let reloaded: Vec<String> = registry
        .reload()
        .into_iter()
        .map(|event| match event {
            RegistryEvent::Reloaded { graph, .. } => graph,
            other => panic!("expected a reload, got {other:?}"),
        })
        .collect();

    assert_eq!(reloaded, ["farewell", "greet"]);
    for (name, graph) in before {
        assert_ne!(current_version(&registry, &name), graph.version, "{name}");
    }
}

#[test]
fn an_invalid_change_keeps_the_last_good_version_until_it_is_fixed() {
    let project = TempProject::new();
    let registry = project.registry();
    let good = current_version(&registry, "greet");
    let text = project.read("graphs/greet.yaml");

    project.edit("graphs/greet.yaml", BROKEN_EDGE);
    let changes = registry.reload();

    let diagnostics = project.load("greet").expect_err("the edit breaks the graph");
    assert_eq!(
        changes,
        [RegistryEvent::Rejected {
            graph: "greet".to_owned(),
            diagnostics: diagnostics.clone(),
            serving: Some(good.clone()),
        }]
    );
    assert_eq!(current_version(&registry, "greet"), good);
    assert_eq!(registry.problems("greet"), diagnostics);
    assert_eq!(registry.all_problems().into_keys().collect::<Vec<_>>(), ["greet"]);
    assert_eq!(registry.reload(), [], "the same problems are reported once");

    std::fs::write(project.path("graphs/greet.yaml"), text).unwrap();
    let changes = registry.reload();

    assert_eq!(
        changes,
        [RegistryEvent::Reloaded {
            graph: "greet".to_owned(),
            version: good.clone(),
            previous: Some(good),
            warnings: Vec::new(),
        }]
    );
    assert!(registry.problems("greet").is_empty());
    assert!(registry.all_problems().is_empty());
}

#[test]
fn a_graph_that_fails_at_first_has_only_problems_until_it_loads() {
    let project = TempProject::new();
    let text = project.read("graphs/greet.yaml");
    project.edit("graphs/greet.yaml", BROKEN_EDGE);

    let registry = project.registry();

    assert!(registry.get("greet").is_none());
    assert_eq!(registry.problems("greet"), project.load("greet").unwrap_err());
    assert!(registry.get("farewell").is_some());

    std::fs::write(project.path("graphs/greet.yaml"), text).unwrap();
    assert_eq!(
        registry.reload(),
        [RegistryEvent::Reloaded {
            graph: "greet".to_owned(),
            version: project.version("greet"),
            previous: None,
            warnings: Vec::new(),
        }]
    );
}

#[test]
fn a_new_graph_file_is_served_and_a_deleted_one_is_not() {
    let project = TempProject::new();
    let registry = project.registry();
    std::fs::copy(
        project.path("graphs/greet.yaml"),
        project.path("graphs/hello.yaml"),
    )
    .unwrap();
    std::fs::remove_file(project.path("graphs/farewell.yaml")).unwrap();

    let changes = registry.reload();

    assert_eq!(
        changes,
        [
            RegistryEvent::Removed {
                graph: "farewell".to_owned()
            },
            RegistryEvent::Reloaded {
                graph: "hello".to_owned(),
                version: project.version("hello"),
                previous: None,
                warnings: Vec::new(),
            },
        ]
    );
    assert!(registry.get("farewell").is_none());
    assert_eq!(
        registry.graphs().into_keys().collect::<Vec<_>>(),
        ["greet", "hello"]
    );
}

/// (a) a valid template change is served; (b) an invalid graph change, saved by renaming as
/// editors do, is rejected with its diagnostics and the previous version stays; then fixed.
#[tokio::test]
async fn watching_serves_a_valid_change_and_rejects_an_invalid_one() {
    let project = TempProject::new();
    let registry = project.registry();
    let mut events = registry.subscribe();
    let _watching = registry.watch().expect("the folders can be watched");
    let first = current_version(&registry, "greet");

    project.edit("prompts/greet.j2", ("Say hello", "Say hi"));
    let second = project.version("greet");
    let event = wait_for(
        &mut events,
        "greet",
        |event| matches!(event, RegistryEvent::Reloaded { version, .. } if *version == second),
    )
    .await;

    assert_ne!(second, first);
    assert!(matches!(event, RegistryEvent::Reloaded { previous: Some(p), .. } if p == first));
    assert_eq!(current_version(&registry, "greet"), second);

    let valid = project.read("graphs/greet.yaml");
    project.save_by_rename("graphs/greet.yaml", &valid.replace(BROKEN_EDGE.0, BROKEN_EDGE.1));
    let event = wait_for(&mut events, "greet", |event| {
        matches!(event, RegistryEvent::Rejected { .. })
    })
    .await;

    let RegistryEvent::Rejected {
        diagnostics, serving, ..
    } = event
    else {
        unreachable!()
    };
    let rendered = engine::diagnostic::render(&diagnostics);
    let location = format!("{}:17:24", project.path("graphs/greet.yaml").display());
    assert!(
        rendered.contains(&location),
        "expected `{location}` in:\n{rendered}"
    );
    assert_eq!(serving.as_deref(), Some(second.as_str()));
    assert_eq!(current_version(&registry, "greet"), second);
    assert_eq!(registry.problems("greet"), diagnostics);

    project.save_by_rename("graphs/greet.yaml", &valid);
    wait_for(&mut events, "greet", |event| {
        matches!(event, RegistryEvent::Reloaded { .. })
    })
    .await;

    assert_eq!(current_version(&registry, "greet"), second);
    assert!(registry.problems("greet").is_empty());
}

/// The watcher sees new and deleted graph files, not only changed ones.
#[tokio::test]
async fn watching_serves_a_new_graph_file_and_drops_a_deleted_one() {
    let project = TempProject::new();
    let registry = project.registry();
    let mut events = registry.subscribe();
    let _watching = registry.watch().expect("the folders can be watched");

    std::fs::copy(
        project.path("graphs/greet.yaml"),
        project.path("graphs/hello.yaml"),
    )
    .unwrap();
    wait_for(&mut events, "hello", |event| {
        matches!(event, RegistryEvent::Reloaded { .. })
    })
    .await;
    std::fs::remove_file(project.path("graphs/farewell.yaml")).unwrap();
    wait_for(&mut events, "farewell", |event| {
        matches!(event, RegistryEvent::Removed { .. })
    })
    .await;

    assert_eq!(
        registry.graphs().into_keys().collect::<Vec<_>>(),
        ["greet", "hello"]
    );
}

#[tokio::test]
async fn dropping_the_watch_stops_reloading() {
    let project = TempProject::new();
    let registry = project.registry();
    let mut events = registry.subscribe();
    let first = current_version(&registry, "greet");
    drop(registry.watch().expect("the folders can be watched"));

    project.edit("prompts/greet.j2", ("Say hello", "Say hi"));
    // Long enough for several debounce periods: a watcher still running would have reloaded.
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert_eq!(current_version(&registry, "greet"), first);
    assert!(matches!(
        events.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
}
