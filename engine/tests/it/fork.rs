//! Forks with edits, and diffs between threads: against real PostgreSQL.

use std::sync::Arc;

use engine::diff::{self, Side};
use engine::llm::scripted::Scripted;
use engine::run::{Engine, Events, RunStatus, State};
use engine::store::{Edit, StartMode, Store, StoreError};
use engine::worker::{Ran, Worker};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::durable::{graph, object};

async fn turn(worker: &Worker, thread: uuid::Uuid, text: &str) {
    let input = object(json!({ "messages": [{ "role": "user", "content": text }] }));
    let ran = worker
        .start(thread, input, State::new(), StartMode::Reject, &Events::none())
        .await
        .unwrap();
    let Ran::Ran { outcome, .. } = ran else {
        panic!("queued")
    };
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
}

fn worker(pool: &PgPool, replies: &str) -> Worker {
    let script = format!("reply: {replies}");
    let engine = Engine::new(Arc::new(Scripted::parse(&script).unwrap()));
    Worker::new(engine, Store::new(pool.clone()), "w")
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_fork_starts_from_the_edited_state_and_leaves_the_original_alone(pool: PgPool) {
    let store = Store::new(pool.clone());
    let chat = graph("chat");
    let worker = worker(&pool, "[one, two, three]");
    let original = worker.create_thread(&chat, json!({})).await.unwrap().id;
    turn(&worker, original, "first").await;
    turn(&worker, original, "second").await;
    let before = store.head(&chat, original, None).await.unwrap();

    let edit = Edit {
        path: "last".to_owned(),
        value: json!("an edited reply"),
    };
    let fork = store.fork(&chat, original, None, &[edit]).await.unwrap();
    assert_eq!(fork.metadata["forked_from"]["thread"], json!(original));
    let forked = store.head(&chat, fork.id, None).await.unwrap();
    assert_eq!(forked.state["last"], json!("an edited reply"));
    assert_eq!(forked.state["messages"], before.state["messages"]);
    assert_eq!(forked.state["turns"], json!(2));

    turn(&worker, fork.id, "third").await;
    let continued = store.head(&chat, fork.id, None).await.unwrap();
    assert_eq!(continued.state["messages"].as_array().unwrap().len(), 6);
    assert_eq!(continued.state["turns"], json!(3));
    assert_eq!(store.head(&chat, original, None).await.unwrap(), before);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_fork_can_start_at_an_earlier_entry_and_edit_inside_a_field(pool: PgPool) {
    let store = Store::new(pool.clone());
    let chat = graph("chat");
    let worker = worker(&pool, "[one, two]");
    let original = worker.create_thread(&chat, json!({})).await.unwrap().id;
    turn(&worker, original, "first").await;
    turn(&worker, original, "second").await;
    // Entry 3 ends the first run: two messages, one turn.
    let edit = Edit {
        path: "messages.0.content".to_owned(),
        value: json!("first, rephrased"),
    };
    let fork = store.fork(&chat, original, Some(3), &[edit]).await.unwrap();
    let forked = store.head(&chat, fork.id, None).await.unwrap();
    assert_eq!(forked.state["turns"], json!(1));
    assert_eq!(
        forked.state["messages"],
        json!([
            { "role": "user", "content": "first, rephrased" },
            { "role": "assistant", "content": "one" },
        ])
    );
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn an_edit_that_breaks_the_schema_is_refused(pool: PgPool) {
    let store = Store::new(pool.clone());
    let chat = graph("chat");
    let worker = worker(&pool, "[one]");
    let original = worker.create_thread(&chat, json!({})).await.unwrap().id;
    turn(&worker, original, "first").await;
    let threads = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM threads")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    for (path, value, expected) in [
        ("turns", json!("many"), "would not match its schema"),
        ("messages.0.role", json!("robot"), "would not match its schema"),
        ("mood", json!("happy"), "`mood` is not a state field"),
        ("messages.7.content", json!("x"), "`7` is not an index"),
    ] {
        let edit = Edit {
            path: path.to_owned(),
            value,
        };
        let refused = store.fork(&chat, original, None, &[edit]).await;
        assert!(
            matches!(&refused, Err(StoreError::Edit { path: p, problem }) if p == path && problem.contains(expected)),
            "{path}: {refused:?}"
        );
    }
    assert_eq!(threads().await, 1, "a refused fork leaves no thread behind");
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_diff_names_each_changed_field_and_the_node_that_wrote_it(pool: PgPool) {
    let store = Store::new(pool.clone());
    let chat = graph("chat");
    let worker = worker(&pool, "[one, two, three]");
    let original = worker.create_thread(&chat, json!({})).await.unwrap().id;
    turn(&worker, original, "first").await;
    let fork = store.fork(&chat, original, None, &[]).await.unwrap().id;
    turn(&worker, fork, "second").await;

    let a = Side {
        thread: original,
        at: None,
    };
    let b = Side {
        thread: fork,
        at: None,
    };
    let changes = diff::diff(&store, (a, &chat), (b, &chat)).await.unwrap();
    let summary: Vec<(String, Option<String>, Value)> = changes
        .iter()
        .map(|c| {
            let node = c.written_by.as_ref().map(|w| w.node.clone());
            (c.field.clone(), node, serde_json::to_value(&c.patch).unwrap())
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "last".to_owned(),
                Some("reply".to_owned()),
                json!([{ "op": "replace", "path": "", "value": "two" }])
            ),
            (
                "messages".to_owned(),
                Some("reply".to_owned()),
                json!([
                    { "op": "add", "path": "/2", "value": { "role": "user", "content": "second" } },
                    { "op": "add", "path": "/3", "value": { "role": "assistant", "content": "two" } },
                ])
            ),
            (
                "turns".to_owned(),
                Some("count".to_owned()),
                json!([{ "op": "replace", "path": "", "value": 2 }])
            ),
        ]
    );
    // The same thread at two entries: what its second run changed.
    let early = Side {
        thread: original,
        at: Some(1),
    };
    let changes = diff::diff(&store, (early, &chat), (a, &chat)).await.unwrap();
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["last", "messages", "turns"]);
}
