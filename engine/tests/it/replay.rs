//! Replays of recorded threads: no model, no database for the graph's `sql` nodes, and every
//! step compared with the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::llm::scripted::Scripted;
use engine::replay::{self, Replayed};
use engine::run::{Engine, Events, RunStatus, State};
use engine::store::{StartMode, Store};
use engine::worker::{Ran, Worker};
use serde_json::json;
use sqlx::PgPool;

use crate::durable::{graph, object};
use crate::fixture_options;

/// Runs `inputs` on a new thread of `graph`, one run each, with a scripted model.
async fn record(
    pool: &PgPool,
    graph: &engine::Graph,
    script: &str,
    inputs: &[serde_json::Value],
) -> uuid::Uuid {
    let engine = Engine::new(Arc::new(Scripted::parse(script).unwrap())).with_database(pool.clone());
    let worker = Worker::new(engine, Store::new(pool.clone()), "recorder");
    let thread = worker.create_thread(graph, json!({})).await.unwrap();
    for input in inputs {
        let ran = worker
            .start(
                thread.id,
                object(input.clone()),
                State::new(),
                StartMode::Reject,
                &Events::none(),
            )
            .await
            .unwrap();
        let Ran::Ran { outcome, .. } = ran else {
            panic!("queued")
        };
        assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    }
    thread.id
}

/// Another text for `prompts/run/reply.j2`.
const ANSWER_TO: &str = "Answer to: {{ (messages | last).content }}\n";

/// The fixture graph `graph`, loaded from a copy of the fixtures in which `edit` rewrote
/// `file`; and the copy's folder, to remove after.
fn changed_graph(graph: &str, file: &str, edit: impl FnOnce(String) -> String) -> (engine::Graph, PathBuf) {
    let dir = std::env::temp_dir().join(format!("finch-replay-{}", uuid::Uuid::new_v4()));
    crate::versions::copy_dir(Path::new("tests/it/data"), &dir);
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    std::fs::write(dir.join(file), edit(text)).unwrap();
    let graph = engine::load_with(&engine::Project::at(&dir), &dir.join(graph), &fixture_options()).unwrap();
    (graph, dir)
}

fn message(text: &str) -> serde_json::Value {
    json!({ "messages": [{ "role": "user", "content": text }] })
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_recorded_conversation_replays_exactly_without_any_model(pool: PgPool) {
    let chat = graph("chat");
    let inputs = [message("Hi"), message("What did I spend?"), message("Thanks")];
    let thread = record(
        &pool,
        &chat,
        "reply: [Hello!, About 40, You are welcome]",
        &inputs,
    )
    .await;
    // The replay has only the recorded replies: any other call to a model would fail it.
    let replayed = replay::check(&Store::new(pool.clone()), thread, None, None)
        .await
        .unwrap();
    assert_eq!(replayed, Replayed::Same { runs: 3, steps: 6 });
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn sql_results_come_from_the_recording(pool: PgPool) {
    sqlx::query("CREATE TABLE notes (id serial PRIMARY KEY, text text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let save = graph("save");
    let inputs = [json!({ "note": "rent" }), json!({ "note": "food" })];
    let thread = record(&pool, &save, "think: [Fine, Also fine]", &inputs).await;
    let replayed = replay::check(&Store::new(pool.clone()), thread, None, None)
        .await
        .unwrap();
    assert_eq!(replayed, Replayed::Same { runs: 2, steps: 2 });
    // Nothing was written again: the replay's engine has no database at all.
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(notes, 2);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn routes_and_loops_replay_step_by_step(pool: PgPool) {
    let path = Path::new("tests/it/data/run/loop.yaml");
    let looped = engine::load_with(&crate::fixtures(), path, &fixture_options()).unwrap();
    let thread = record(&pool, &looped, "", &[json!({ "limit": 3 })]).await;
    let replayed = replay::check(&Store::new(pool.clone()), thread, None, None)
        .await
        .unwrap();
    assert_eq!(replayed, Replayed::Same { runs: 1, steps: 6 });
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_changed_template_is_found_and_its_node_named(pool: PgPool) {
    let chat = graph("chat");
    let thread = record(
        &pool,
        &chat,
        "reply: [Hello!, Again]",
        &[message("Hi"), message("Hello?")],
    )
    .await;
    // The same graph with its reply template changed.
    let (changed, dir) = changed_graph("durable/chat.yaml", "prompts/run/reply.j2", |_| {
        ANSWER_TO.to_owned()
    });
    let replayed = replay::check(&Store::new(pool.clone()), thread, Some(&changed), None)
        .await
        .unwrap();
    let Replayed::Diverged(divergence) = replayed else {
        panic!("the change went unnoticed: {replayed:?}");
    };
    assert_eq!(divergence.node.as_deref(), Some("reply"));
    assert_eq!((divergence.seq, divergence.step), (2, 1));
    assert!(
        divergence.message.contains("differs from the recorded one"),
        "{}",
        divergence.message
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_changed_expression_is_found_at_its_field(pool: PgPool) {
    let looped_path = Path::new("tests/it/data/run/loop.yaml");
    let looped = engine::load_with(&crate::fixtures(), looped_path, &fixture_options()).unwrap();
    let thread = record(&pool, &looped, "", &[json!({ "limit": 2 })]).await;
    let (changed, dir) = changed_graph("run/loop.yaml", "run/loop.yaml", |text| {
        text.replace("args: { count: \"1\" }", "args: { count: \"2\" }")
    });
    let replayed = replay::check(&Store::new(pool.clone()), thread, Some(&changed), None)
        .await
        .unwrap();
    let Replayed::Diverged(divergence) = replayed else {
        panic!("the change went unnoticed: {replayed:?}");
    };
    assert_eq!(divergence.node.as_deref(), Some("bump"));
    assert_eq!(divergence.field.as_deref(), Some("count"));
    std::fs::remove_dir_all(&dir).ok();
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_subgraph_that_paused_and_a_map_replay_with_the_recorded_answers(pool: PgPool) {
    let path = Path::new("tests/it/data/run/nested.yaml");
    let nested = engine::load_with(&crate::fixtures(), path, &fixture_options()).unwrap();
    let script = "\"explain_all[0]\": [The moon pulls the sea.]\n\
                  \"explain_all[1]\": [{ text: The moon hides the sun., delay_ms: 20 }]\n\
                  \"explain_all[2]\": [The earth is tilted.]";
    let engine = Engine::new(Arc::new(Scripted::parse(script).unwrap()));
    let store = Store::new(pool.clone());
    let worker = Worker::new(engine, store.clone(), "recorder");
    let thread = worker.create_thread(&nested, json!({})).await.unwrap();
    let input = object(json!({ "topics": ["tides", "eclipses", "seasons"] }));
    let ran = worker
        .start(thread.id, input, State::new(), StartMode::Reject, &Events::none())
        .await
        .unwrap();
    let Ran::Ran { run, outcome } = ran else {
        panic!("queued")
    };
    assert_eq!(outcome.status, RunStatus::Interrupted);
    let answers = [("ask/confirm".to_owned(), json!({ "confirmed": true }))]
        .into_iter()
        .collect();
    let Ran::Ran { outcome, .. } = worker.resume(run, answers, &Events::none()).await.unwrap() else {
        panic!("queued")
    };
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);

    // No model, no answers from anyone: the recording has both.
    let replayed = replay::check(&store, thread.id, None, None).await.unwrap();
    assert_eq!(replayed, Replayed::Same { runs: 1, steps: 3 });

    // From a checkpoint: the pause (entry 2), resumed with its answers; then entry 3.
    let from_pause = replay::check(&store, thread.id, None, Some(2)).await.unwrap();
    assert_eq!(from_pause, Replayed::Same { runs: 1, steps: 2 });
    let from_three = replay::check(&store, thread.id, None, Some(3)).await.unwrap();
    assert_eq!(from_three, Replayed::Same { runs: 1, steps: 1 });
    let after_all = replay::check(&store, thread.id, None, Some(4)).await.unwrap();
    assert_eq!(after_all, Replayed::Same { runs: 0, steps: 0 });

    // Inside the subgraph: where it waited (entry 2), and how it ended (entry 3).
    let waiting = store.inside(thread.id, Some(2)).await.unwrap();
    assert_eq!(waiting, [("ask".to_owned(), json!({ "topic": "tides" }))]);
    let ended = store.inside(thread.id, Some(3)).await.unwrap();
    assert_eq!(
        ended,
        [("ask".to_owned(), json!({ "topic": "tides", "confirmed": true }))]
    );
    assert_eq!(store.inside(thread.id, None).await.unwrap(), []);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn each_run_replays_with_the_version_it_ran(pool: PgPool) {
    let chat = graph("chat");
    let store = Store::new(pool.clone());
    let engine = Engine::new(Arc::new(Scripted::parse("reply: [one, two]").unwrap()));
    let worker = Worker::new(engine, store.clone(), "recorder");
    let thread = worker.create_thread(&chat, json!({})).await.unwrap().id;
    let turn = |text: &'static str| {
        let worker = &worker;
        async move {
            let input = object(message(text));
            let ran = worker
                .start(thread, input, State::new(), StartMode::Reject, &Events::none())
                .await
                .unwrap();
            let Ran::Ran { outcome, .. } = ran else {
                panic!("queued")
            };
            assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
        }
    };
    turn("first").await;
    // The thread moves to a version with another reply template, then runs again.
    let (newer, dir) = changed_graph("durable/chat.yaml", "prompts/run/reply.j2", |_| {
        ANSWER_TO.to_owned()
    });
    store.pin(thread, &newer).await.unwrap();
    turn("second").await;
    let replayed = replay::check(&store, thread, None, None).await.unwrap();
    assert_eq!(replayed, Replayed::Same { runs: 2, steps: 4 });
    std::fs::remove_dir_all(&dir).ok();
}

/// The thread's log and runs as JSON text: to see that nothing of it changed.
async fn everything_of(pool: &PgPool, thread: uuid::Uuid) -> String {
    let log: serde_json::Value = sqlx::query_scalar(
        "SELECT jsonb_build_object(\
           'steps', (SELECT jsonb_agg(to_jsonb(s) ORDER BY seq) FROM steps s WHERE thread_id = $1), \
           'items', (SELECT jsonb_agg(to_jsonb(i) ORDER BY seq, field, idx) FROM items i WHERE thread_id = $1), \
           'runs', (SELECT jsonb_agg(to_jsonb(r) ORDER BY created_at) FROM runs r WHERE thread_id = $1), \
           'thread', (SELECT to_jsonb(t) FROM threads t WHERE id = $1))",
    )
    .bind(thread)
    .fetch_one(pool)
    .await
    .unwrap();
    log.to_string()
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_what_if_replay_runs_the_conversation_again_in_a_fork(pool: PgPool) {
    let chat = graph("chat");
    let thread = record(
        &pool,
        &chat,
        "reply: [one, two]",
        &[message("Hi"), message("And now?")],
    )
    .await;
    let before = everything_of(&pool, thread).await;
    // The conversation again, with new replies from the model.
    let engine = Engine::new(Arc::new(Scripted::parse("reply: [uno, dos]").unwrap()));
    let worker = Worker::new(engine, Store::new(pool.clone()), "what-if");
    let what_if = replay::what_if(&worker, thread, 0, &chat).await.unwrap();
    assert_eq!(what_if.runs, 2);
    let forked = worker.store().head(&chat, what_if.fork, None).await.unwrap();
    let contents: Vec<&str> = forked.state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Hi", "uno", "And now?", "dos"]);
    assert_eq!(everything_of(&pool, thread).await, before, "the original changed");
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_what_if_replay_can_change_one_node_and_reuse_the_others(pool: PgPool) {
    let routes = graph("routes");
    let inputs = [json!({ "question": "Rent?" }), json!({ "question": "Food?" })];
    let thread = record(
        &pool,
        &routes,
        "classify: [database, chat]\nreply: [one, two]",
        &inputs,
    )
    .await;
    // From after the first run: only the second runs again, with a new `reply`, and `classify`
    // answered from the recording.
    let from = Store::new(pool.clone())
        .head(&routes, thread, Some(3))
        .await
        .unwrap()
        .seq;
    let live = Arc::new(Scripted::parse("reply: [deux]").unwrap());
    let only = replay::OnlyLive::new(&Store::new(pool.clone()), thread, from, "reply", live)
        .await
        .unwrap();
    let worker = Worker::new(Engine::new(Arc::new(only)), Store::new(pool.clone()), "what-if");
    let what_if = replay::what_if(&worker, thread, from, &routes).await.unwrap();
    assert_eq!(what_if.runs, 1);
    let forked = worker.store().head(&routes, what_if.fork, None).await.unwrap();
    assert_eq!(
        (&forked.state["route"], &forked.state["answer"]),
        (&json!("chat"), &json!("deux"))
    );
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_what_if_replay_does_not_write_again(pool: PgPool) {
    sqlx::query("CREATE TABLE notes (id serial PRIMARY KEY, text text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let save = graph("save");
    let thread = record(&pool, &save, "think: [Fine]", &[json!({ "note": "rent" })]).await;
    let engine =
        Engine::new(Arc::new(Scripted::parse("think: [Again]").unwrap())).with_database(pool.clone());
    let worker = Worker::new(engine, Store::new(pool.clone()), "what-if");
    let refused = replay::what_if(&worker, thread, 0, &save).await;
    assert!(
        matches!(&refused, Err(replay::WhatIfError::Writes { node, .. }) if node == "save"),
        "{refused:?}"
    );
    // Writes inside a `map` are refused too.
    let save_each = graph("save_each");
    let thread = record(&pool, &save_each, "", &[json!({ "notes": ["rent", "food"] })]).await;
    let refused = replay::what_if(&worker, thread, 0, &save_each).await;
    assert!(
        matches!(&refused, Err(replay::WhatIfError::Writes { node, .. }) if node == "save_each"),
        "{refused:?}"
    );
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(notes, 3, "the recordings wrote 3 notes; the what-ifs none");
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_fork_replays_its_own_runs_from_the_state_it_began_with(pool: PgPool) {
    let chat = graph("chat");
    let store = Store::new(pool.clone());
    let thread = record(&pool, &chat, "reply: [one]", &[message("Hi")]).await;
    let edit = engine::store::Edit {
        path: "last".to_owned(),
        value: json!("edited"),
    };
    let fork = store.fork(&chat, thread, None, &[edit]).await.unwrap().id;
    let engine = Engine::new(Arc::new(Scripted::parse("reply: [two, three]").unwrap()));
    let worker = Worker::new(engine, store.clone(), "w");
    let ran = worker
        .start(
            fork,
            object(message("Again")),
            State::new(),
            StartMode::Reject,
            &Events::none(),
        )
        .await
        .unwrap();
    let Ran::Ran { outcome, .. } = ran else {
        panic!("queued")
    };
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert_eq!(
        replay::check(&store, fork, None, None).await.unwrap(),
        Replayed::Same { runs: 1, steps: 2 }
    );
    // A what-if of the fork runs its one run again, not the state it began with.
    let what_if = replay::what_if(&worker, fork, 0, &chat).await.unwrap();
    assert_eq!(what_if.runs, 1);
    let again = store.head(&chat, what_if.fork, None).await.unwrap();
    assert_eq!(again.state["last"], json!("three"));
    assert_eq!(again.state["messages"].as_array().unwrap().len(), 4);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn sql_inside_subgraphs_and_maps_is_given_back_from_the_log(pool: PgPool) {
    sqlx::query("CREATE TABLE notes (id serial PRIMARY KEY, text text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO notes (text) VALUES ('rent'), ('food')")
        .execute(&pool)
        .await
        .unwrap();
    let nested = graph("nested_sql");
    let thread = record(&pool, &nested, "", &[json!({ "words": ["tea", "milk"] })]).await;
    let store = Store::new(pool.clone());
    let head = store.head(&nested, thread, None).await.unwrap();
    assert_eq!(
        (&head.state["count"], &head.state["upper"]),
        (&json!(2), &json!(["TEA", "MILK"]))
    );
    // The data changes; the replay, with no database at all, still sees what the run saw.
    sqlx::query("INSERT INTO notes (text) VALUES ('travel')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        replay::check(&store, thread, None, None).await.unwrap(),
        Replayed::Same { runs: 1, steps: 2 }
    );
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_thread_with_every_kind_of_step_replays_with_no_model_at_all(pool: PgPool) {
    let tour = graph("tour");
    let script = "\"explain[0]\": [Tides follow the moon.]\n\"explain[1]\": [{ text: Eclipses line up., delay_ms: 20 }]";
    let engine = Engine::new(Arc::new(Scripted::parse(script).unwrap()));
    let store = Store::new(pool.clone());
    let worker = Worker::new(engine, store.clone(), "recorder");
    let thread = worker.create_thread(&tour, json!({})).await.unwrap().id;
    let input = object(json!({ "topics": ["tides", "eclipses"] }));
    let Ran::Ran { run, outcome } = worker
        .start(thread, input, State::new(), StartMode::Reject, &Events::none())
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    assert_eq!(outcome.status, RunStatus::Interrupted);
    let answers = [("confirm/ask".to_owned(), json!({ "confirmed": true }))]
        .into_iter()
        .collect();
    let Ran::Ran { outcome, .. } = worker.resume(run, answers, &Events::none()).await.unwrap() else {
        panic!("queued")
    };
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert_eq!(
        outcome.output,
        object(json!({
            "confirmed": true,
            "notes": ["Tides follow the moon.", "Eclipses line up."],
            "rounds": 2,
            "verdict": "agreed",
        }))
    );
    // The replay's only model is the recording: a call it does not hold fails the replay.
    let replayed = replay::check(&store, thread, None, None).await.unwrap();
    // The pause, confirm, explain, then again and decide twice (the loop), and agreed (the
    // branch decide took).
    assert_eq!(replayed, Replayed::Same { runs: 1, steps: 8 });
}
