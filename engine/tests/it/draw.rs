//! Drawings show every edge and every route, with subgraphs as clusters.

use std::path::Path;

use engine::graph::draw;

use crate::{fixture_options, fixtures};

fn support() -> engine::Graph {
    engine::load_with(
        &fixtures(),
        Path::new("tests/it/data/valid/support.yaml"),
        &fixture_options(),
    )
    .expect("a valid graph")
}

#[test]
fn mermaid_shows_every_route_and_the_subgraph() {
    let text = draw::mermaid(&support());
    for condition in ["intent == 'question'", "confirmed", "default", "all done"] {
        assert!(
            text.contains(&format!("|\"{condition}\"|")),
            "no route `{condition}` in:\n{text}"
        );
    }
    assert!(
        text.contains("subgraph profile["),
        "no cluster for the subgraph in:\n{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn dot_draws_subgraphs_as_clusters() {
    let text = draw::dot(&support());
    assert!(text.contains("subgraph \"cluster_profile\""), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn json_lists_nodes_edges_and_subgraphs() {
    insta::assert_json_snapshot!(draw::json(&support()));
}
