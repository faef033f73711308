//! `Engine::resume`: what it refuses, so a caller can answer again.

use std::path::Path;
use std::sync::Arc;

use engine::llm::scripted::Scripted;
use engine::run::{Answers, Engine, Events, RunError, RunStatus};
use serde_json::json;

use crate::{fixture_options, fixtures};

async fn paused() -> (engine::Graph, Engine, engine::run::Checkpoint) {
    let graph = engine::load_with(
        &fixtures(),
        Path::new("tests/it/data/run/approval.yaml"),
        &fixture_options(),
    )
    .expect("a valid graph");
    let script = Scripted::parse("write: [Your order ships today.]").expect("a script");
    let engine = Engine::new(Arc::new(script));
    let input = json!({ "question": "where is my order" })
        .as_object()
        .cloned()
        .unwrap();
    let outcome = engine
        .start(&graph, input, Default::default(), &Events::none())
        .await
        .expect("a run");
    assert_eq!(outcome.status, RunStatus::Interrupted);
    (graph, engine, outcome.checkpoint)
}

fn answers(pairs: &[(&str, serde_json::Value)]) -> Answers {
    pairs
        .iter()
        .map(|(id, value)| (id.to_string(), value.clone()))
        .collect()
}

#[tokio::test]
async fn an_answer_for_another_interrupt_is_refused() {
    let (graph, engine, checkpoint) = paused().await;
    let err = engine
        .resume(
            &graph,
            checkpoint,
            answers(&[("aprove", json!({ "approved": true }))]),
            &Events::none(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RunError::UnknownInterrupt {
            id: "aprove".into(),
            waiting: "approve".into()
        }
    );
}

#[tokio::test]
async fn an_answer_that_breaks_the_response_schema_is_refused() {
    let (graph, engine, checkpoint) = paused().await;
    let err = engine
        .resume(
            &graph,
            checkpoint,
            answers(&[("approve", json!({ "approved": "yes" }))]),
            &Events::none(),
        )
        .await
        .unwrap_err();
    let RunError::InvalidAnswer { id, problem } = err else {
        panic!("{err:?}")
    };
    assert_eq!(id, "approve");
    assert!(
        problem.contains("\"yes\" is not of type \"boolean\""),
        "{problem}"
    );
}

#[tokio::test]
async fn no_answer_at_all_is_refused() {
    let (graph, engine, checkpoint) = paused().await;
    let err = engine
        .resume(&graph, checkpoint, Answers::new(), &Events::none())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RunError::NoAnswer {
            waiting: "approve".into()
        }
    );
}

#[tokio::test]
async fn a_finished_run_cannot_be_resumed() {
    let (graph, engine, checkpoint) = paused().await;
    let done = engine
        .resume(
            &graph,
            checkpoint,
            answers(&[("approve", json!({ "approved": true }))]),
            &Events::none(),
        )
        .await
        .expect("resumed");
    assert_eq!(done.status, RunStatus::Succeeded);
    let err = engine
        .resume(
            &graph,
            done.checkpoint,
            answers(&[("approve", json!({ "approved": true }))]),
            &Events::none(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, RunError::NotInterrupted);
}

#[tokio::test]
async fn unknown_context_is_refused_at_start() {
    let (graph, engine, _) = paused().await;
    let context = json!({ "user": "ada" }).as_object().cloned().unwrap();
    let err = engine
        .start(&graph, Default::default(), context, &Events::none())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RunError::UnknownContext {
            graph: "approval".into(),
            field: "user".into()
        }
    );
}
