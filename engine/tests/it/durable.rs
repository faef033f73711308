//! Durable runs against real PostgreSQL: each test gets a fresh, migrated database.

use std::path::Path;
use std::sync::Arc;

use engine::llm::scripted::Scripted;
use engine::run::{Engine, Events, RunStatus, State};
use engine::store::{StartMode, Store};
use engine::worker::{Ran, Worker};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{fixture_options, fixtures};

pub(crate) fn graph(name: &str) -> engine::Graph {
    let path = format!("tests/it/data/durable/{name}.yaml");
    engine::load_with(&fixtures(), Path::new(&path), &fixture_options())
        .unwrap_or_else(|d| panic!("{}", engine::diagnostic::render(&d)))
}

pub(crate) fn object(value: Value) -> State {
    value.as_object().cloned().expect("an object")
}

fn message(content: &str) -> State {
    object(json!({ "messages": [{ "role": "user", "content": content }] }))
}

/// A worker whose model replies `replies` in order to `node`.
fn worker(pool: &PgPool, store: Store, node: &str, replies: &[&str]) -> Worker {
    let script = format!("{node}: {}", serde_json::to_string(replies).unwrap());
    let engine = Engine::new(Arc::new(Scripted::parse(&script).unwrap())).with_database(pool.clone());
    Worker::new(engine, store, "test-worker")
}

fn outcome(ran: Ran) -> engine::run::RunOutcome {
    match ran {
        Ran::Ran { outcome, .. } => *outcome,
        Ran::Queued { run } => panic!("run {run} was queued"),
    }
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_thread_keeps_its_state_across_runs(pool: PgPool) {
    let store = Store::new(pool.clone());
    let worker = worker(&pool, store.clone(), "reply", &["Hello!", "Fine, thanks."]);
    let graph = graph("chat");
    let thread = worker
        .create_thread(&graph, json!({ "user": "ada" }))
        .await
        .unwrap();
    let first = outcome(
        worker
            .start(
                thread.id,
                message("Hi"),
                State::new(),
                StartMode::Reject,
                &Events::none(),
            )
            .await
            .unwrap(),
    );
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    let second = outcome(
        worker
            .start(
                thread.id,
                message("How are you?"),
                State::new(),
                StartMode::Reject,
                &Events::none(),
            )
            .await
            .unwrap(),
    );
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(second.output["turns"], json!(2));
    let contents: Vec<&str> = second.output["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Hi", "Hello!", "How are you?", "Fine, thanks."]);
    let head = store.head(&graph, thread.id, None).await.unwrap();
    assert_eq!(head.state, second.checkpoint.state);
    let runs = store.runs(thread.id).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["succeeded", "succeeded"]
    );
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn storage_per_turn_does_not_grow_with_the_conversation(pool: PgPool) {
    let store = Store::new(pool.clone()).with_snapshot_every(8);
    let replies: Vec<String> = (0..200)
        .map(|turn| format!("Reply number {turn}, of a usual length for a chat."))
        .collect();
    let replies: Vec<&str> = replies.iter().map(String::as_str).collect();
    let worker = worker(&pool, store.clone(), "reply", &replies);
    let graph = graph("chat");
    let thread = worker.create_thread(&graph, json!({})).await.unwrap();
    for turn in 0..200 {
        let input = message(&format!("Question number {turn}: what did I spend on food?"));
        let ran = outcome(
            worker
                .start(thread.id, input, State::new(), StartMode::Reject, &Events::none())
                .await
                .unwrap(),
        );
        assert_eq!(ran.status, RunStatus::Succeeded, "{:?}", ran.error);
    }
    let sizes = store.run_sizes(thread.id).await.unwrap();
    let bytes: Vec<i64> = sizes.iter().map(|(_, bytes)| *bytes).collect();
    let early: i64 = bytes[10..20].iter().sum::<i64>() / 10;
    let late: i64 = bytes[190..200].iter().sum::<i64>() / 10;
    println!("bytes per turn: {early} over turns 11–20, {late} over turns 191–200");
    assert!(
        late * 2 <= early * 3,
        "bytes per turn grew from {early} (turns 11–20) to {late} (turns 191–200)"
    );
    let head = store.head(&graph, thread.id, None).await.unwrap();
    assert_eq!(head.state["messages"].as_array().unwrap().len(), 400);
    assert_eq!(head.state["turns"], json!(200));
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn the_latest_state_comes_from_one_snapshot_and_fewer_than_k_steps(pool: PgPool) {
    let store = Store::new(pool.clone()).with_snapshot_every(4);
    let worker = worker(&pool, store.clone(), "reply", &["a", "b", "c", "d", "e"]);
    let graph = graph("chat");
    let thread = worker.create_thread(&graph, json!({})).await.unwrap();
    for turn in 0..5 {
        worker
            .start(
                thread.id,
                message(&turn.to_string()),
                State::new(),
                StartMode::Reject,
                &Events::none(),
            )
            .await
            .unwrap();
    }
    // 5 runs of 3 entries (input, reply, count): seq 1..=15, snapshots at 4, 8 and 12.
    let snapshots: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM snapshots WHERE thread_id = $1 ORDER BY seq")
            .bind(thread.id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(snapshots, [4, 8, 12]);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM steps WHERE thread_id = $1 AND seq > 12")
        .bind(thread.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(after < 4, "{after} entries after the last snapshot");
    // The state rebuilt from the snapshot equals the state at every earlier point, rebuilt too.
    let head = store.head(&graph, thread.id, None).await.unwrap();
    assert_eq!(head.seq, 15);
    assert_eq!(head.state["turns"], json!(5));
    let at_seven = store.head(&graph, thread.id, Some(7)).await.unwrap();
    assert_eq!(at_seven.state["turns"], json!(2));
    // Two whole runs (two messages each), and the third one's input.
    assert_eq!(at_seven.state["messages"].as_array().unwrap().len(), 5);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn every_model_call_is_recorded_with_its_step(pool: PgPool) {
    let store = Store::new(pool.clone());
    let worker = worker(&pool, store.clone(), "reply", &["Hello!"]);
    let graph = graph("chat");
    let thread = worker.create_thread(&graph, json!({})).await.unwrap();
    worker
        .start(
            thread.id,
            message("Hi"),
            State::new(),
            StartMode::Reject,
            &Events::none(),
        )
        .await
        .unwrap();
    let (seq, node, request, response): (i64, String, Value, String) =
        sqlx::query_as("SELECT seq, node, request, response FROM llm_calls WHERE thread_id = $1")
            .bind(thread.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((seq, node.as_str(), response.as_str()), (2, "reply", "Hello!"));
    // A plain-text template is recorded by name, the history by reference, the rest as sent.
    assert_eq!(
        request["messages"],
        json!([
            { "role": "system", "template": "run/system.j2" },
            { "history": "messages", "count": 1 },
            { "role": "user", "content": "Reply to: Hi" },
        ])
    );
    assert_eq!(request["hash"].as_str().map(str::len), Some(64));
}

fn scripted_worker(pool: &PgPool, store: Store, script: &str, id: &str) -> Worker {
    let engine = Engine::new(Arc::new(Scripted::parse(script).unwrap())).with_database(pool.clone());
    Worker::new(engine, store, id)
}

async fn notes(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn create_notes(pool: &PgPool) {
    sqlx::query("CREATE TABLE notes (id serial PRIMARY KEY, text text NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_step_and_its_sql_writes_commit_together(pool: PgPool) {
    create_notes(&pool).await;
    let worker = scripted_worker(&pool, Store::new(pool.clone()), "think: [Deep.]", "w");
    let thread = worker.create_thread(&graph("save"), json!({})).await.unwrap();
    let input = object(json!({ "note": "buy milk" }));
    let ran = outcome(
        worker
            .start(thread.id, input, State::new(), StartMode::Reject, &Events::none())
            .await
            .unwrap(),
    );
    assert_eq!(ran.status, RunStatus::Succeeded, "{:?}", ran.error);
    assert_eq!((notes(&pool).await, &ran.output["saved"]), (1, &json!(1)));
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_failed_step_keeps_none_of_its_sql_writes(pool: PgPool) {
    create_notes(&pool).await;
    let worker = scripted_worker(
        &pool,
        Store::new(pool.clone()),
        "think: [{ fail: unauthorized }]",
        "w",
    );
    let thread = worker.create_thread(&graph("save"), json!({})).await.unwrap();
    let input = object(json!({ "note": "buy milk" }));
    let ran = outcome(
        worker
            .start(thread.id, input, State::new(), StartMode::Reject, &Events::none())
            .await
            .unwrap(),
    );
    assert_eq!(ran.status, RunStatus::Failed);
    assert_eq!(notes(&pool).await, 0, "the write of a failed step was kept");
    let run = &Store::new(pool.clone()).runs(thread.id).await.unwrap()[0];
    assert_eq!(run.status, "failed");
    assert!(
        run.error.as_deref().unwrap().contains("node `think` failed"),
        "{:?}",
        run.error
    );
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_worker_that_lost_its_lease_cannot_write(pool: PgPool) {
    create_notes(&pool).await;
    let store = Store::new(pool.clone());
    let slow = Arc::new(scripted_worker(
        &pool,
        store.clone(),
        "think: [{ text: Slow., delay_ms: 1500 }]",
        "slow",
    ));
    let thread = slow.create_thread(&graph("save"), json!({})).await.unwrap();
    let input = object(json!({ "note": "buy milk" }));
    let stalled = tokio::spawn({
        let slow = slow.clone();
        async move {
            slow.start(thread.id, input, State::new(), StartMode::Reject, &Events::none())
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("UPDATE runs SET lease_expires = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let fresh = scripted_worker(&pool, store.clone(), "think: [Fast.]", "fresh");
    let recovered = outcome(
        fresh
            .recover(&Events::none())
            .await
            .unwrap()
            .expect("an expired run"),
    );
    assert_eq!(recovered.status, RunStatus::Succeeded, "{:?}", recovered.error);
    let stale = outcome(stalled.await.unwrap().unwrap());
    assert_eq!(stale.status, RunStatus::Failed);
    assert!(
        stale.error.as_deref().unwrap().contains("the lease on run"),
        "{:?}",
        stale.error
    );
    assert_eq!(notes(&pool).await, 1, "the stale worker's write went through");
    let runs = store.runs(thread.id).await.unwrap();
    assert_eq!((runs[0].status.as_str(), runs[0].fence), ("succeeded", 2));
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_busy_thread_refuses_or_queues_a_second_run_and_resumes_the_first(pool: PgPool) {
    let store = Store::new(pool.clone());
    let worker = scripted_worker(&pool, store.clone(), "{}", "w");
    let thread = worker.create_thread(&graph("approve"), json!({})).await.unwrap();
    let note = object(json!({ "note": "ship it" }));
    let Ran::Ran { run, outcome: paused } = worker
        .start(
            thread.id,
            note.clone(),
            State::new(),
            StartMode::Reject,
            &Events::none(),
        )
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    assert_eq!(paused.status, RunStatus::Interrupted);
    let refused = worker
        .start(
            thread.id,
            note.clone(),
            State::new(),
            StartMode::Reject,
            &Events::none(),
        )
        .await;
    assert!(
        matches!(refused, Err(engine::worker::WorkerError::Store(engine::store::StoreError::Conflict { run: open, .. })) if open == run),
        "{refused:?}"
    );
    let queued = worker
        .start(thread.id, note, State::new(), StartMode::Enqueue, &Events::none())
        .await
        .unwrap();
    assert!(matches!(queued, Ran::Queued { .. }), "{queued:?}");
    let answers = [("ask".to_owned(), json!({ "approved": true }))]
        .into_iter()
        .collect();
    let done = outcome(worker.resume(run, answers, &Events::none()).await.unwrap());
    assert_eq!(
        (done.status, &done.output["approved"]),
        (RunStatus::Succeeded, &json!(true))
    );
    let statuses: Vec<String> = store
        .runs(thread.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, ["succeeded", "pending"]);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_thread_stays_on_its_graph_version_until_moved(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("finch-pin-{}", uuid::Uuid::new_v4()));
    crate::versions::copy_dir(Path::new("tests/it/data"), &dir);
    let project = engine::Project::at(&dir);
    let path = dir.join("durable/chat.yaml");
    let before = engine::load_with(&project, &path, &fixture_options()).unwrap();
    let store = Store::new(pool.clone());
    let worker = scripted_worker(&pool, store.clone(), "reply: [one, two]", "w");
    let thread = worker.create_thread(&before, json!({})).await.unwrap();
    std::fs::write(
        dir.join("prompts/run/reply.j2"),
        "Answer to: {{ (messages | last).content }}\n",
    )
    .unwrap();
    let after = engine::load_with(&project, &path, &fixture_options()).unwrap();
    assert_ne!(after.version, before.version);
    let asked = |seq: i64| {
        let pool = pool.clone();
        async move {
            let request: Value = sqlx::query_scalar("SELECT request FROM llm_calls WHERE seq = $1")
                .bind(seq)
                .fetch_one(&pool)
                .await
                .unwrap();
            request["messages"][2]["content"].as_str().unwrap().to_owned()
        }
    };
    worker
        .start(
            thread.id,
            message("Hi"),
            State::new(),
            StartMode::Reject,
            &Events::none(),
        )
        .await
        .unwrap();
    assert_eq!(asked(2).await, "Reply to: Hi", "the thread left its version");
    store.pin(thread.id, &after).await.unwrap();
    worker
        .start(
            thread.id,
            message("Again"),
            State::new(),
            StartMode::Reject,
            &Events::none(),
        )
        .await
        .unwrap();
    assert_eq!(asked(5).await, "Answer to: Again");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_queued_run_starts_when_its_thread_is_free(pool: PgPool) {
    let store = Store::new(pool.clone());
    let worker = scripted_worker(&pool, store.clone(), "{}", "w");
    let thread = worker.create_thread(&graph("approve"), json!({})).await.unwrap();
    let note = object(json!({ "note": "ship it" }));
    let Ran::Ran { run, .. } = worker
        .start(
            thread.id,
            note.clone(),
            State::new(),
            StartMode::Reject,
            &Events::none(),
        )
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    worker
        .start(thread.id, note, State::new(), StartMode::Enqueue, &Events::none())
        .await
        .unwrap();
    assert!(
        worker.start_queued(&Events::none()).await.unwrap().is_none(),
        "started while the thread was busy"
    );
    let answers = [("ask".to_owned(), json!({ "approved": true }))]
        .into_iter()
        .collect();
    worker.resume(run, answers, &Events::none()).await.unwrap();
    let started = outcome(
        worker
            .start_queued(&Events::none())
            .await
            .unwrap()
            .expect("a queued run"),
    );
    assert_eq!(started.status, RunStatus::Interrupted);
    let statuses: Vec<String> = store
        .runs(thread.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, ["succeeded", "interrupted"]);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn compaction_drops_early_history_but_keeps_the_state(pool: PgPool) {
    let store = Store::new(pool.clone()).with_snapshot_every(4);
    let worker = worker(&pool, store.clone(), "reply", &["a", "b", "c", "d", "e"]);
    let graph = graph("chat");
    let thread = worker.create_thread(&graph, json!({})).await.unwrap();
    for turn in 0..5 {
        worker
            .start(
                thread.id,
                message(&turn.to_string()),
                State::new(),
                StartMode::Reject,
                &Events::none(),
            )
            .await
            .unwrap();
    }
    let before = store.head(&graph, thread.id, None).await.unwrap();
    assert_eq!(
        store.compact(thread.id).await.unwrap(),
        11,
        "entries 1 to 11 go, 12 (the snapshot) stays"
    );
    let after = store.head(&graph, thread.id, None).await.unwrap();
    assert_eq!(after.state, before.state);
    assert_eq!(
        store
            .history(thread.id)
            .await
            .unwrap()
            .first()
            .map(|entry| entry.seq),
        Some(12)
    );
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn pruning_deletes_old_threads_but_the_latest_ones(pool: PgPool) {
    let store = Store::new(pool.clone());
    let worker = worker(&pool, store.clone(), "reply", &[]);
    let graph = graph("chat");
    for _ in 0..3 {
        worker.create_thread(&graph, json!({})).await.unwrap();
    }
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.prune(later, 1).await.unwrap(), 2);
    assert_eq!(store.threads(10).await.unwrap().len(), 1);
}

/// The `sql` blocks of ARCHITECTURE.md, in order.
fn documented_queries() -> Vec<String> {
    let text = std::fs::read_to_string(crate::repo_root().join("ARCHITECTURE.md")).unwrap();
    text.split("```sql\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn the_documented_queries_read_the_log(pool: PgPool) {
    let script = "classify: [database, chat, database]\nreply: [first, second, third]";
    let engine = Engine::new(Arc::new(Scripted::parse(script).unwrap()));
    let worker = Worker::new(engine, Store::new(pool.clone()), "test-worker");
    let graph = graph("routes");
    let one = worker.create_thread(&graph, json!({})).await.unwrap();
    let two = worker.create_thread(&graph, json!({})).await.unwrap();
    for thread in [one.id, one.id, two.id] {
        let input = object(json!({ "question": "What did I spend?" }));
        let ran = worker
            .start(thread, input, State::new(), StartMode::Reject, &Events::none())
            .await
            .unwrap();
        assert_eq!(outcome(ran).status, RunStatus::Succeeded);
    }
    let queries = documented_queries();
    assert_eq!(
        queries.len(),
        2,
        "ARCHITECTURE.md should show two example queries"
    );

    let routes: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(queries[0].clone()))
        .bind(one.id)
        .fetch_all(&pool)
        .await
        .unwrap();
    let routes: Vec<&str> = routes.iter().map(|(_, route)| route.as_str()).collect();
    assert_eq!(routes, ["database", "chat"]);

    let mut answers: Vec<(uuid::Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(queries[1].clone()))
        .fetch_all(&pool)
        .await
        .unwrap();
    answers.sort();
    let mut expected = vec![(one.id, "second".to_owned()), (two.id, "third".to_owned())];
    expected.sort();
    assert_eq!(answers, expected);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_worker_reads_a_thread_again_when_another_worker_ran_it(pool: PgPool) {
    // Worker `a` keeps the thread's state after its run; `b` runs the thread in between, so
    // what `a` kept is stale and must not be used.
    let store = Store::new(pool.clone());
    let a = scripted_worker(&pool, store.clone(), "reply: [one, three]", "a");
    let b = scripted_worker(&pool, store.clone(), "reply: [two]", "b");
    let graph = graph("chat");
    let thread = a.create_thread(&graph, json!({})).await.unwrap();
    for (worker, question) in [(&a, "first"), (&b, "second"), (&a, "third")] {
        let ran = worker
            .start(
                thread.id,
                message(question),
                State::new(),
                StartMode::Reject,
                &Events::none(),
            )
            .await
            .unwrap();
        assert_eq!(outcome(ran).status, RunStatus::Succeeded);
    }
    let head = store.head(&graph, thread.id, None).await.unwrap();
    let contents: Vec<&str> = head.state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first", "one", "second", "two", "third", "three"]);
    assert_eq!(head.state["turns"], json!(3));
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn two_requests_at_once_on_one_thread_run_one_and_refuse_or_queue_the_other(pool: PgPool) {
    let store = Store::new(pool.clone());
    let chat = graph("chat");
    let slow =
        "reply: [{ text: one, delay_ms: 300 }, { text: two, delay_ms: 300 }, { text: three, delay_ms: 300 }]";
    let (a, b) = (
        scripted_worker(&pool, store.clone(), slow, "a"),
        scripted_worker(&pool, store.clone(), slow, "b"),
    );
    let thread = a.create_thread(&chat, json!({})).await.unwrap().id;
    let events = Events::none();
    for mode in [StartMode::Reject, StartMode::Enqueue] {
        let (first, second) = tokio::join!(
            a.start(thread, message("from a"), State::new(), mode, &events),
            b.start(thread, message("from b"), State::new(), mode, &events),
        );
        let results = [first, second];
        let ran = results
            .iter()
            .filter(|r| matches!(r, Ok(Ran::Ran { outcome, .. }) if outcome.status == RunStatus::Succeeded))
            .count();
        let other = results
            .iter()
            .find(|r| !matches!(r, Ok(Ran::Ran { .. })))
            .unwrap();
        assert_eq!(ran, 1, "{mode:?}: {results:?}");
        match mode {
            StartMode::Reject => assert!(
                matches!(
                    other,
                    Err(engine::worker::WorkerError::Store(
                        engine::store::StoreError::Conflict { .. }
                    ))
                ),
                "{other:?}"
            ),
            StartMode::Enqueue => assert!(matches!(other, Ok(Ran::Queued { .. })), "{other:?}"),
        }
    }
}
