//! `/api/threads` end to end: a thread of a small graph (`data/threads/graphs/approval.yaml`: a
//! model drafts, a person approves, the draft is sent) run in the background, streamed,
//! interrupted and resumed, with scripted model replies.

use std::sync::Arc;

use engine::llm::scripted::Scripted;
use poem::http::Method;
use serde_json::{Value, json};
use server::api::ApiConfig;
use server::runs::Runs;
use sqlx::PgPool;

use super::{Api, User};

const DRAFTS: &str = r#"
draft_reply:
  - { text: "Yes, your refund is on its way.", delay_ms: 20 }
  - "Second draft."
  - "Third draft."
  - "Fourth draft."
"#;

async fn api(pool: &PgPool) -> Api {
    api_with(pool, &fixture(), DRAFTS).await
}

fn fixture() -> std::path::PathBuf {
    crate::repo_root().join("server/tests/it/data/threads")
}

/// The API serving the graphs of `project`, with `script` as the models' replies.
async fn api_with(pool: &PgPool, project: &std::path::Path, script: &str) -> Api {
    let llm = Arc::new(Scripted::parse(script).unwrap());
    let engine = engine::run::Engine::new(llm).with_database(pool.clone());
    let config = ApiConfig {
        runs: Some(Runs::new(project, engine, pool.clone())),
        ..ApiConfig::default()
    };
    Api::with_config(pool.clone(), &config)
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    /// `EPOCH-N`.
    id: String,
    event: String,
    data: Value,
}

fn events(body: &Value) -> Vec<Sse> {
    let text = body.as_str().expect("an event stream");
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            Sse {
                id: field("id:").parse().expect("an id"),
                event: field("event:"),
                data: serde_json::from_str(&field("data:")).expect("JSON data"),
            }
        })
        .collect()
}

async fn new_thread(api: &Api, user: &User) -> String {
    let created = api
        .post(
            "/api/threads",
            user,
            json!({"graph": "approval", "metadata": {"topic": "refund"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(created.json["status"], "idle");
    created.json["thread_id"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_is_streamed_resumed_after_a_disconnect_interrupted_and_answered(pool: PgPool) {
    let api = api(&pool).await;
    let ada = api.register("ada@example.com").await;
    let thread = new_thread(&api, &ada).await;

    let streamed = api
        .post(
            &format!("/api/threads/{thread}/runs/stream"),
            &ada,
            json!({"input": {"question": "Refund?"}, "context": {"user_id": 999}, "stream_mode": ["updates", "messages"]}),
        )
        .await;
    assert_eq!(streamed.status, 200, "{:?}", streamed.json);
    assert_eq!(streamed.headers["content-type"], "text/event-stream");
    let all = events(&streamed.json);
    let names: Vec<&str> = all.iter().map(|event| event.event.as_str()).collect();
    let mut expected = vec!["metadata"];
    expected.extend(["messages"; 7]);
    expected.extend(["updates", "updates", "end"]);
    assert_eq!(names, expected);
    let tokens: String = all
        .iter()
        .filter(|event| event.event == "messages")
        .map(|event| event.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, "Yes, your refund is on its way.");
    // The context's user_id is the caller's, whatever the client sent.
    assert_eq!(
        all[8].data,
        json!({"draft_reply": {"draft": "Yes, your refund is on its way.", "asker": ada.id}})
    );
    assert_eq!(all[9].data["__interrupt__"][0]["id"], "approve");
    assert_eq!(all[10].data, json!({"status": "interrupted", "error": null}));
    let position = |event: &Sse| -> u64 { event.id.split_once('-').unwrap().1.parse().unwrap() };
    assert!(
        all.windows(2).all(|pair| position(&pair[0]) < position(&pair[1])),
        "{all:?}"
    );
    // At the end, or with an id of another stream, a reconnect gets nothing new.
    let stream_path = format!(
        "/api/threads/{thread}/runs/{}/stream",
        all[0].data["run_id"].as_str().unwrap()
    );
    let at_end = api
        .send(
            Method::GET,
            &stream_path,
            Some(&ada.token),
            None,
            &[("Last-Event-ID", &all[10].id)],
        )
        .await;
    assert_eq!((at_end.status, at_end.json.as_str()), (200, Some("")));
    let stranger = api
        .send(
            Method::GET,
            &stream_path,
            Some(&ada.token),
            None,
            &[("Last-Event-ID", "1-3")],
        )
        .await;
    assert_eq!(
        (stranger.status, &stranger.json["code"]),
        (409, &json!("stream_gone"))
    );

    // A client that saw the first three events reconnects and gets the rest, no gap.
    let run = all[0].data["run_id"].as_str().unwrap().to_owned();
    let stream = format!("/api/threads/{thread}/runs/{run}/stream?stream_mode=updates,messages");
    let last = all[2].id.to_string();
    let resumed = api
        .send(
            Method::GET,
            &stream,
            Some(&ada.token),
            None,
            &[("Last-Event-ID", &last)],
        )
        .await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.json);
    assert_eq!(events(&resumed.json), all[3..]);

    let state = api.get(&format!("/api/threads/{thread}/state"), &ada).await;
    assert_eq!(state.status, 200, "{:?}", state.json);
    assert_eq!(state.json["next"], json!(["approve"]));
    assert_eq!(
        state.json["interrupts"],
        json!([{"id": "approve", "payload": {"draft": "Yes, your refund is on its way."}}])
    );
    let waiting = api.get(&format!("/api/threads/{thread}"), &ada).await;
    assert_eq!(waiting.json["status"], "interrupted");

    // A wrong answer is refused, and the run still waits for a right one.
    let wrong_answer = api
        .post(
            &format!("/api/threads/{thread}/runs/{run}/resume"),
            &ada,
            json!({"answer": {"approved": "yes"}}),
        )
        .await;
    assert_eq!(wrong_answer.status, 422, "{:?}", wrong_answer.json);
    let still_waiting = api.get(&format!("/api/threads/{thread}/runs/{run}"), &ada).await;
    assert_eq!(still_waiting.json["status"], "interrupted");

    let answered = api
        .post(
            &format!("/api/threads/{thread}/runs/{run}/resume"),
            &ada,
            json!({"answer": {"approved": true}}),
        )
        .await;
    assert_eq!(answered.status, 200, "{:?}", answered.json);
    let joined = api
        .get(&format!("/api/threads/{thread}/runs/{run}/join"), &ada)
        .await;
    assert_eq!(joined.status, 200, "{:?}", joined.json);
    assert_eq!(joined.json["run"]["status"], "succeeded");
    let values = &joined.json["state"]["values"];
    assert_eq!(values["sent"], "Yes, your refund is on its way.");
    assert_eq!(
        (&joined.json["state"]["next"], &joined.json["state"]["interrupts"]),
        (&json!([]), &json!([]))
    );

    // The history is the log the state was made of, newest first.
    let history = api
        .get(&format!("/api/threads/{thread}/history?limit=2"), &ada)
        .await;
    assert_eq!(history.status, 200, "{:?}", history.json);
    let entries = history.json.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["seq"], joined.json["state"]["checkpoint"]["seq"]);
    assert_eq!(entries[0]["nodes"], json!(["send"]));
    let before = entries[1]["seq"].as_i64().unwrap();
    let older = api
        .get(&format!("/api/threads/{thread}/history?before={before}"), &ada)
        .await;
    let older: Vec<i64> = older
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(
        !older.is_empty() && older.iter().all(|seq| *seq < before),
        "{older:?}"
    );
    let then = api
        .get(&format!("/api/threads/{thread}/state?checkpoint={before}"), &ada)
        .await;
    assert_eq!(then.json["values"]["sent"], "");

    // Replayed from its log alone, the thread comes out the same.
    let replayed = api
        .post(&format!("/api/threads/{thread}/replay"), &ada, json!({}))
        .await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.json);
    assert_eq!(replayed.json["same"], true, "{:?}", replayed.json);

    // A fork before the approval, with an edited draft, differs from the original by it.
    let forked = api
        .post(
            &format!("/api/threads/{thread}/fork"),
            &ada,
            json!({"checkpoint": before, "edits": {"draft": "A gentler draft."}}),
        )
        .await;
    assert_eq!(forked.status, 201, "{:?}", forked.json);
    let fork = forked.json["thread_id"].as_str().unwrap().to_owned();
    let diff = api
        .get(
            &format!("/api/threads/{thread}/diff?checkpoint={before}&with={fork}"),
            &ada,
        )
        .await;
    assert_eq!(diff.status, 200, "{:?}", diff.json);
    assert_eq!(
        diff.json,
        json!([{"field": "draft", "patch": [{"op": "replace", "path": "", "value": "A gentler draft."}],
                "written_by": {"seq": 1, "step": 0, "node": "fork"}}])
    );
    let refused = api
        .post(
            &format!("/api/threads/{thread}/fork"),
            &ada,
            json!({"edits": {"draft": 7}}),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.json);

    // A caller's write to the state is a log entry of its own, checked against the schema.
    let updated = api
        .post(
            &format!("/api/threads/{thread}/state"),
            &ada,
            json!({"values": {"sent": "Sent by hand."}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.json);
    assert_eq!(updated.json["values"]["sent"], "Sent by hand.");
    let latest = api
        .get(&format!("/api/threads/{thread}/history?limit=1"), &ada)
        .await;
    assert_eq!(latest.json[0]["nodes"], json!(["update_state"]));
    let (who, detail): (i64, Value) = sqlx::query_as(
        "SELECT user_id, detail FROM audit_log WHERE action = 'update_state' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(who, ada.id);
    assert_eq!(
        detail,
        json!({"thread": thread, "seq": latest.json[0]["seq"], "fields": ["sent"]})
    );
    let wrong = api
        .post(
            &format!("/api/threads/{thread}/state"),
            &ada,
            json!({"values": {"sent": 42}}),
        )
        .await;
    assert_eq!(wrong.status, 422, "{:?}", wrong.json);
    let still = api
        .post(&format!("/api/threads/{thread}/replay"), &ada, json!({}))
        .await;
    assert_eq!(still.json["same"], true, "{:?}", still.json);

    // What if the model were asked again: a new thread, the original untouched.
    let what_if = api
        .post(
            &format!("/api/threads/{thread}/what_if"),
            &ada,
            json!({"from": 0}),
        )
        .await;
    assert_eq!(what_if.status, 201, "{:?}", what_if.json);
    assert_eq!(what_if.json["runs"], 1);
    let again = what_if.json["thread"]["thread_id"].as_str().unwrap().to_owned();
    let again = api.get(&format!("/api/threads/{again}/state"), &ada).await;
    assert_eq!(again.json["values"]["sent"], "Second draft.");

    // A log that no longer matches what the graph does is reported where it first differs.
    sqlx::query(
        "UPDATE steps SET writes = jsonb_set(writes, '{0,value}', '\"Tampered.\"')
         WHERE thread_id = $1::uuid AND nodes = '{send}'",
    )
    .bind(&thread)
    .execute(&pool)
    .await
    .unwrap();
    let tampered = api
        .post(&format!("/api/threads/{thread}/replay"), &ada, json!({}))
        .await;
    assert_eq!(tampered.json["same"], false, "{:?}", tampered.json);
    assert_eq!(tampered.json["divergence"]["node"], "send", "{:?}", tampered.json);

    let found = api
        .post(
            "/api/threads/search",
            &ada,
            json!({"metadata": {"topic": "refund"}, "status": "idle"}),
        )
        .await;
    assert_eq!(found.json.as_array().map(Vec::len), Some(1), "{:?}", found.json);
    let none = api
        .post(
            "/api/threads/search",
            &ada,
            json!({"metadata": {"topic": "loans"}}),
        )
        .await;
    assert_eq!(none.json, json!([]));
}

#[sqlx::test(migrations = "../migrations")]
async fn each_double_texting_policy_does_what_it_says(pool: PgPool) {
    let api = api(&pool).await;
    let ada = api.register("ada@example.com").await;
    let thread = new_thread(&api, &ada).await;
    let runs = format!("/api/threads/{thread}/runs");
    let wait = format!("/api/threads/{thread}/runs/wait");
    let start = |strategy: &'static str, question: &'static str| {
        let body = json!({"input": {"question": question}, "multitask_strategy": strategy});
        api.post(&runs, &ada, body)
    };

    let first = api
        .post(&wait, &ada, json!({"input": {"question": "One?"}}))
        .await;
    assert_eq!(first.json["run"]["status"], "interrupted", "{:?}", first.json);
    let first_run = first.json["run"]["run_id"].as_str().unwrap().to_owned();

    let refused = start("reject", "Two?").await;
    assert_eq!(
        (refused.status, &refused.json["code"]),
        (409, &json!("thread_busy"))
    );

    // Enqueued: it starts once the first run is answered and ends.
    let queued = start("enqueue", "Two?").await;
    assert_eq!(
        (queued.status, &queued.json["status"]),
        (201, &json!("pending")),
        "{:?}",
        queued.json
    );
    let queued_run = queued.json["run_id"].as_str().unwrap().to_owned();
    let answered = api
        .post(
            &format!("{runs}/{first_run}/resume"),
            &ada,
            json!({"answers": {"approve": {"approved": true}}}),
        )
        .await;
    assert_eq!(answered.status, 200, "{:?}", answered.json);
    let second = api.get(&format!("{runs}/{queued_run}/join"), &ada).await;
    assert_eq!(second.json["run"]["status"], "interrupted", "{:?}", second.json);
    assert_eq!(second.json["state"]["values"]["draft"], "Second draft.");

    // Interrupt: the open run is cancelled, what it wrote stays.
    let third = start("interrupt", "Three?").await;
    assert_eq!(third.status, 201, "{:?}", third.json);
    let third_run = third.json["run_id"].as_str().unwrap().to_owned();
    let cancelled = api.get(&format!("{runs}/{queued_run}"), &ada).await;
    assert_eq!(cancelled.json["status"], "cancelled");
    let joined = api.get(&format!("{runs}/{third_run}/join"), &ada).await;
    assert_eq!(joined.json["state"]["values"]["draft"], "Third draft.");

    // Rollback: the open run is cancelled and removed, with its log entries.
    let before = api
        .get(&format!("/api/threads/{thread}/history?limit=1000"), &ada)
        .await;
    let fourth = start("rollback", "Four?").await;
    assert_eq!(fourth.status, 201, "{:?}", fourth.json);
    let fourth_run = fourth.json["run_id"].as_str().unwrap().to_owned();
    let gone = api.get(&format!("{runs}/{third_run}"), &ada).await;
    assert_eq!(gone.status, 404);
    let history = api
        .get(&format!("/api/threads/{thread}/history?limit=1000"), &ada)
        .await;
    let run_ids = |entries: &Value| -> Vec<String> {
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(run_ids(&before.json).contains(&third_run));
    assert!(!run_ids(&history.json).contains(&third_run));
    let joined = api.get(&format!("{runs}/{fourth_run}/join"), &ada).await;
    assert_eq!(joined.json["state"]["values"]["draft"], "Fourth draft.");
    let listed = api.get(&runs, &ada).await;
    let statuses: Vec<&str> = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["interrupted", "cancelled", "succeeded"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn another_users_thread_is_not_found_on_every_route(pool: PgPool) {
    let api = api(&pool).await;
    let ada = api.register("ada@example.com").await;
    let bob = api.register("bob@example.com").await;
    let thread = new_thread(&api, &ada).await;
    let waited = api
        .post(
            &format!("/api/threads/{thread}/runs/wait"),
            &ada,
            json!({"input": {"question": "Refund?"}}),
        )
        .await;
    let run = waited.json["run"]["run_id"].as_str().unwrap().to_owned();
    let base = format!("/api/threads/{thread}");
    let bobs = new_thread(&api, &bob).await;
    let answer = json!({"answer": {"approved": true}});
    let start = json!({"input": {"question": "Mine now?"}, "multitask_strategy": "interrupt"});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, base.clone(), None),
        (Method::GET, format!("{base}/state"), None),
        (Method::GET, format!("{base}/history"), None),
        (Method::GET, format!("{base}/runs"), None),
        (Method::POST, format!("{base}/runs"), Some(start.clone())),
        (Method::POST, format!("{base}/runs/wait"), Some(start.clone())),
        (Method::POST, format!("{base}/runs/stream"), Some(start)),
        (Method::GET, format!("{base}/runs/{run}"), None),
        (Method::GET, format!("{base}/runs/{run}/join"), None),
        (Method::GET, format!("{base}/runs/{run}/stream"), None),
        (Method::POST, format!("{base}/runs/{run}/resume"), Some(answer)),
        (Method::POST, format!("{base}/runs/{run}/cancel"), Some(json!({}))),
        (
            Method::POST,
            format!("{base}/state"),
            Some(json!({"values": {"sent": "x"}})),
        ),
        (Method::POST, format!("{base}/replay"), Some(json!({}))),
        (Method::POST, format!("{base}/what_if"), Some(json!({"from": 0}))),
        (Method::POST, format!("{base}/fork"), Some(json!({}))),
        (Method::GET, format!("{base}/diff"), None),
        (
            Method::GET,
            format!("/api/threads/{bobs}/diff?with={thread}"),
            None,
        ),
        (Method::DELETE, base.clone(), None),
    ];
    for (method, path, body) in routes {
        let reply = api.call(method.clone(), &path, Some(&bob.token), body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {:?}", reply.json);
    }
    let search = api.post("/api/threads/search", &bob, json!({})).await;
    let only_bobs: Vec<&Value> = search
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["thread_id"])
        .collect();
    assert_eq!(only_bobs, [&json!(bobs)]);
    // Untouched: still waiting for Ada.
    let state = api.get(&format!("{base}/state"), &ada).await;
    assert_eq!(state.json["next"], json!(["approve"]));

    let deleted = api.delete(&base, &ada).await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.json);
    assert_eq!(api.get(&base, &ada).await.status, 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn graphs_are_listed_drawn_checked_and_reloaded_when_their_files_change(pool: PgPool) {
    let fixture = fixture();
    let project = std::env::temp_dir().join(format!("finch-graphs-{}", uuid::Uuid::new_v4()));
    for folder in ["graphs", "prompts"] {
        std::fs::create_dir_all(project.join(folder)).unwrap();
    }
    std::fs::copy(
        fixture.join("graphs/approval.yaml"),
        project.join("graphs/approval.yaml"),
    )
    .unwrap();
    std::fs::copy(fixture.join("prompts/ask.j2"), project.join("prompts/ask.j2")).unwrap();
    let api = api_with(&pool, &project, DRAFTS).await;
    let ada = api.register("ada@example.com").await;

    let listed = api.get("/api/graphs", &ada).await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    assert_eq!(listed.json[0]["name"], "approval");
    assert_eq!(listed.json[0]["has_errors"], false);
    let version = listed.json[0]["version"].clone();
    let one = api.get("/api/graphs/approval", &ada).await;
    assert!(one.json["source"].as_str().unwrap().contains("draft_reply:"));
    assert!(
        one.json["mermaid"].as_str().unwrap().starts_with("flowchart"),
        "{:?}",
        one.json["mermaid"]
    );
    assert_eq!(one.json["diagnostics"], json!([]));
    assert_eq!(api.get("/api/graphs/nope", &ada).await.status, 404);

    // A broken edit is rejected: the last good version stays served, with the diagnostics.
    let broken = std::fs::read_to_string(project.join("graphs/approval.yaml"))
        .unwrap()
        .replace("to: approve }", "to: aprove }");
    std::fs::write(project.join("graphs/approval.yaml"), broken).unwrap();
    let mut status = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status = api.get("/api/graphs/reloads", &ada).await.json;
        if status["events"]
            .as_array()
            .is_some_and(|events| !events.is_empty())
        {
            break;
        }
    }
    assert_eq!(status["watching"], true);
    let event = &status["events"][0];
    assert_eq!(
        (&event["kind"], &event["graph"], &event["version"]),
        (&json!("rejected"), &json!("approval"), &version)
    );
    assert!(
        event["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aprove"),
        "{event}"
    );
    let one = api.get("/api/graphs/approval", &ada).await;
    assert_eq!(
        (
            &one.json["version"],
            one.json["diagnostics"][0]["severity"].as_str()
        ),
        (&version, Some("error"))
    );
    let _ = std::fs::remove_dir_all(&project);
}

/// A model that takes a while, so the client can leave before the run ends.
const SLOW: &str = r#"
draft_reply:
  - { text: "Yes, your refund is on its way.", delay_ms: 400 }
"#;

#[sqlx::test(migrations = "../migrations")]
async fn a_client_that_leaves_mid_stream_comes_back_to_every_event_it_missed(pool: PgPool) {
    let api = api_with(&pool, &fixture(), SLOW).await;
    let ada = api.register("ada@example.com").await;
    let thread = new_thread(&api, &ada).await;

    let response = api
        .client
        .post(format!("/api/threads/{thread}/runs/stream"))
        .header("authorization", format!("Bearer {}", ada.token))
        .body_json(&json!({"input": {"question": "Refund?"}, "stream_mode": ["updates", "messages"]}))
        .send()
        .await
        .0;
    let mut body = response.into_body().into_bytes_stream();
    let mut received = String::new();
    while !received.contains("\n\n") {
        let chunk = futures::StreamExt::next(&mut body)
            .await
            .expect("a first event")
            .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body); // the client goes away while the model is still thinking
    let first = events(&Value::String(received));
    assert_eq!(first[0].event, "metadata");
    let run = first[0].data["run_id"].as_str().unwrap().to_owned();
    let stream = format!("/api/threads/{thread}/runs/{run}/stream?stream_mode=updates,messages");
    let last = first.last().unwrap().id.to_string();

    let rest = api
        .send(
            Method::GET,
            &stream,
            Some(&ada.token),
            None,
            &[("Last-Event-ID", &last)],
        )
        .await;
    let rest = events(&rest.json);
    let everything = api.send(Method::GET, &stream, Some(&ada.token), None, &[]).await;
    let everything = events(&everything.json);
    assert_eq!([first, rest.clone()].concat(), everything);
    assert_eq!(rest.last().map(|event| event.event.as_str()), Some("end"));
    assert!(rest.iter().any(|event| event.event == "messages"), "{rest:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_interrupted_while_it_runs_ends_its_stream_once_and_writes_nothing_more(pool: PgPool) {
    // The first model answer takes 2 s: the cancel comes while it is still thinking, even on
    // a busy machine.
    let script = r#"
draft_reply:
  - { text: "First draft.", delay_ms: 2000 }
  - "Second draft."
"#;
    let api = api_with(&pool, &fixture(), script).await;
    let ada = api.register("ada@example.com").await;
    let thread = new_thread(&api, &ada).await;
    let runs = format!("/api/threads/{thread}/runs");

    let first = api
        .post(&runs, &ada, json!({"input": {"question": "One?"}}))
        .await;
    assert_eq!(
        (first.status, &first.json["status"]),
        (201, &json!("running")),
        "{:?}",
        first.json
    );
    let first = first.json["run_id"].as_str().unwrap().to_owned();
    let bad = api
        .post(
            &runs,
            &ada,
            json!({"input": {"question": 7}, "multitask_strategy": "interrupt"}),
        )
        .await;
    assert_eq!(bad.status, 422, "a bad request cancels nothing: {:?}", bad.json);
    let second = api
        .post(
            &runs,
            &ada,
            json!({"input": {"question": "Two?"}, "multitask_strategy": "interrupt"}),
        )
        .await;
    assert_eq!(second.status, 201, "{:?}", second.json);
    let second = second.json["run_id"].as_str().unwrap().to_owned();

    let joined = api.get(&format!("{runs}/{second}/join"), &ada).await;
    assert_eq!(
        joined.json["state"]["values"]["draft"], "Second draft.",
        "{:?}",
        joined.json
    );
    // Let the first run's model answer and its worker find it cancelled.
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let cancelled = api.get(&format!("{runs}/{first}"), &ada).await;
    assert_eq!(cancelled.json["status"], "cancelled");
    let stream = api
        .send(
            Method::GET,
            &format!("{runs}/{first}/stream?stream_mode=updates"),
            Some(&ada.token),
            None,
            &[],
        )
        .await;
    let events = events(&stream.json);
    let names: Vec<&str> = events.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(names, ["metadata", "error", "end"], "{events:?}");
    assert_eq!(events[2].data["status"], "failed");
    let history = api
        .get(&format!("/api/threads/{thread}/history?limit=100"), &ada)
        .await;
    assert!(
        history
            .json
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["nodes"] != json!(["draft_reply"]) || entry["run_id"] != json!(first)),
        "the cancelled run wrote no step: {:?}",
        history.json
    );
}
