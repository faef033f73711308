//! Graph versions: the exact files a graph was loaded from, and their hash.

use std::path::Path;
use std::sync::Arc;

use engine::Project;

use crate::{fixture_options, fixtures};

#[test]
fn a_graph_keeps_every_file_it_was_made_of() {
    let graph = engine::load_with(
        &fixtures(),
        Path::new("tests/it/data/valid/support.yaml"),
        &fixture_options(),
    )
    .expect("a valid graph");
    let files = &graph.files;
    assert_eq!(files.graph, "support");
    assert_eq!(files.graphs.keys().collect::<Vec<_>>(), ["profile", "support"]);
    assert_eq!(files.templates.len(), 4);
    assert_eq!(
        files.schemas.keys().collect::<Vec<_>>(),
        ["intent.schema.json", "message.schema.json"]
    );
    assert_eq!(graph.version, files.version());
}

#[test]
fn a_graph_loads_again_from_its_stored_files_alone() {
    let graph = engine::load_with(
        &fixtures(),
        Path::new("tests/it/data/valid/support.yaml"),
        &fixture_options(),
    )
    .expect("a valid graph");
    let stored: engine::source::GraphFiles =
        serde_json::from_value(serde_json::to_value(&*graph.files).unwrap()).unwrap();
    let again =
        engine::load_source(Arc::new(stored), "support", &fixture_options()).expect("loads from memory");
    assert_eq!(again.version, graph.version);
    assert_eq!(again.templates, graph.templates);
    assert_eq!(
        again.nodes.keys().collect::<Vec<_>>(),
        graph.nodes.keys().collect::<Vec<_>>()
    );
}

#[test]
fn editing_a_template_makes_a_new_version_and_leaves_the_old_one_whole() {
    let dir = std::env::temp_dir().join(format!("finch-versions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(Path::new("tests/it/data"), &dir);
    let project = Project::at(&dir);
    let path = dir.join("valid/profile.yaml");
    let before = engine::load_with(&project, &path, &fixture_options()).expect("valid");
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("SELECT name FROM", "SELECT name AS name FROM");
    std::fs::write(&path, edited).unwrap();
    let after = engine::load_with(&project, &path, &fixture_options()).expect("still valid");
    assert_ne!(before.version, after.version);
    let old = engine::load_source(before.files.clone(), "profile", &fixture_options())
        .expect("the old version loads");
    assert_eq!(old.version, before.version);
    std::fs::remove_dir_all(&dir).unwrap();
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
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
