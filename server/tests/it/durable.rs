//! Durable runs through the binary: a run killed at any point is finished by a worker, with
//! the same result as a run that was never killed, and no side effect applied twice.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::repo_root;

const CRASH: &str = "server/tests/it/data/crash/crash.yaml";
const SCRIPT: &str = "scripted:server/tests/it/data/crash/crash.script.yaml";
const CONFIG: &str = "server/tests/it/data/crash/crash.toml";

/// A fresh database with the `effects` table the crash graph writes to; its URL.
pub(crate) async fn fresh_database() -> (String, sqlx::PgPool) {
    let url = std::env::var("DATABASE_URL").expect("set DATABASE_URL (.ci/run does)");
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("DATABASE_URL reaches PostgreSQL");
    let name = format!("finch_cli_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let server = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(server, _)| server)
        .to_owned();
    let url = format!("{server}/{name}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE effects (id serial PRIMARY KEY, what text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    (url, pool)
}

fn finch(db: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_finch"));
    command
        .args(args)
        .args(["--db", db, "--config", CONFIG])
        .current_dir(repo_root());
    command
}

/// Starts a durable run of the crash graph, printing JSON events.
fn start(db: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = finch(
        db,
        &[
            "run",
            CRASH,
            "--thread",
            "new",
            "--llm",
            SCRIPT,
            "--format",
            "json",
            "--input",
            r#"{"note": "rain"}"#,
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("finch runs");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Reads events until one matches; returns the thread id seen on the way.
fn read_until(
    stdout: &mut BufReader<std::process::ChildStdout>,
    thread: &mut String,
    wanted: impl Fn(&Value) -> bool,
) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the run ended before the kill point"
        );
        let event: Value = serde_json::from_str(&line).unwrap();
        if let Some(id) = event["thread"].as_str() {
            *thread = id.to_owned();
        }
        if wanted(&event) {
            return;
        }
    }
}

async fn effects(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT what FROM effects ORDER BY what")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn final_state(pool: &sqlx::PgPool, thread: &str) -> Value {
    let thread: uuid::Uuid = thread.parse().unwrap();
    let run: (String, Option<String>) = sqlx::query_as("SELECT status, error FROM runs WHERE thread_id = $1")
        .bind(thread)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(run.0, "succeeded", "{:?}", run.1);
    let writes: Vec<Value> = sqlx::query_scalar("SELECT writes FROM steps WHERE thread_id = $1 ORDER BY seq")
        .bind(thread)
        .fetch_all(pool)
        .await
        .unwrap();
    let mut state = serde_json::Map::new();
    for write in writes.iter().flat_map(|w| w.as_array().unwrap()) {
        let field = write["field"].as_str().unwrap().to_owned();
        let value = match (field.as_str(), state.get(&field)) {
            ("saved", Some(Value::Number(n))) => {
                Value::from(n.as_i64().unwrap() + write["value"].as_i64().unwrap())
            }
            _ => write["value"].clone(),
        };
        state.insert(field, value);
    }
    Value::Object(state)
}

/// Kills the run at a point, lets its lease expire, and lets a worker finish it.
async fn killed_at(point: impl Fn(&Value) -> bool + Send + 'static) -> (Value, Vec<String>) {
    let (db, pool) = fresh_database().await;
    let db2 = db.clone();
    let thread = tokio::task::spawn_blocking(move || {
        let (mut child, mut stdout) = start(&db2);
        let mut thread = String::new();
        read_until(&mut stdout, &mut thread, point);
        child.kill().unwrap();
        child.wait().unwrap();
        thread
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let worker = tokio::task::spawn_blocking(move || {
        finch(&db, &["worker", "--once", "--llm", SCRIPT])
            .output()
            .expect("the worker runs")
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&worker.stdout);
    assert!(
        log.contains("took over run"),
        "the worker found nothing to take over:\n{log}"
    );
    (final_state(&pool, &thread).await, effects(&pool).await)
}

/// Runs the crash graph to its end, never killed; the thread's id.
async fn finished_run(db: &str) -> String {
    let db = db.to_owned();
    let first = tokio::task::spawn_blocking(move || {
        let (mut child, stdout) = start(&db);
        let lines: Vec<String> = stdout.lines().map(Result::unwrap).collect();
        assert!(child.wait().unwrap().success());
        lines[0].clone()
    })
    .await
    .unwrap();
    let thread: Value = serde_json::from_str(&first).unwrap();
    thread["thread"].as_str().unwrap().to_owned()
}

async fn uninterrupted() -> Value {
    let (db, pool) = fresh_database().await;
    let thread = finished_run(&db).await;
    assert_eq!(effects(&pool).await, ["a", "b"]);
    final_state(&pool, &thread).await
}

#[tokio::test]
async fn a_run_killed_before_its_first_step_commits_is_finished_once() {
    let expected = uninterrupted().await;
    let (state, effects) =
        killed_at(|event| event["event"] == "node_started" && event["node"] == "think_a").await;
    assert_eq!(state, expected);
    assert_eq!(effects, ["a", "b"], "a side effect was lost or applied twice");
}

#[tokio::test]
async fn a_run_killed_after_a_step_committed_is_finished_once() {
    let expected = uninterrupted().await;
    let (state, effects) =
        killed_at(|event| event["event"] == "node_started" && event["node"] == "think_b").await;
    assert_eq!(state, expected);
    assert_eq!(effects, ["a", "b"], "a side effect was lost or applied twice");
}

#[tokio::test]
async fn a_finished_thread_replays_as_recorded_without_running_its_sql() {
    let (db, pool) = fresh_database().await;
    let thread = finished_run(&db).await;
    let output = finch(&db, &["replay", &thread, "--check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("thread {thread}: 1 run, 2 steps, as recorded")
    );
    // The `sql` writes were not run again.
    assert_eq!(effects(&pool).await, ["a", "b"]);
}

#[tokio::test]
async fn a_thread_forked_with_an_edit_differs_from_it_by_that_edit() {
    let (db, _pool) = fresh_database().await;
    let thread = finished_run(&db).await;

    let fork = finch(&db, &["thread", "fork", &thread, "--set", r#"note="snow""#])
        .output()
        .unwrap();
    assert!(fork.status.success(), "{}", String::from_utf8_lossy(&fork.stderr));
    let fork = String::from_utf8(fork.stdout).unwrap().trim().to_owned();

    let diff = finch(&db, &["diff", &thread, &fork]).output().unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stderr));
    assert_eq!(
        String::from_utf8_lossy(&diff.stdout),
        "note (written by `fork`, entry 1, step 0)\n  replace note \"snow\"\n"
    );

    let refused = finch(&db, &["thread", "fork", &thread, "--set", "saved=lots"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("edit `saved`") && stderr.contains("schema"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_what_if_replay_shows_what_a_new_reply_changes() {
    let (db, _pool) = fresh_database().await;
    let echo = "server/tests/it/data/echo/echo.yaml";
    let recorded = finch(
        &db,
        &[
            "run",
            echo,
            "--thread",
            "new",
            "--llm",
            "scripted:server/tests/it/data/echo/echo.script.yaml",
            "--format",
            "json",
            "--input",
            r#"{"question": "What is six times seven?"}"#,
        ],
    )
    .output()
    .unwrap();
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let first = String::from_utf8_lossy(&recorded.stdout)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let thread: Value = serde_json::from_str(&first).unwrap();
    let thread = thread["thread"].as_str().unwrap().to_owned();

    let what_if = finch(
        &db,
        &[
            "replay",
            &thread,
            "--graph",
            echo,
            "--llm",
            "scripted:server/tests/it/data/echo/echo.what-if.yaml",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&what_if.stdout);
    assert!(
        what_if.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&what_if.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("thread {thread}: 1 run replayed into thread ")),
        "{stdout}"
    );
    assert_eq!(
        lines[1..],
        [r#"  answer (by `ask`): [{"op":"replace","path":"","value":"Forty-three."}]"#]
    );
    // With its template changed, the graph no longer does what was recorded: `--check` names
    // the node, and fails.
    let changed = std::env::temp_dir().join(format!("finch-echo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(changed.join("prompts")).unwrap();
    std::fs::copy(repo_root().join(echo), changed.join("echo.yaml")).unwrap();
    std::fs::write(changed.join("prompts/ask.j2"), "Answer briefly: {{ question }}\n").unwrap();
    let graph = changed.join("echo.yaml");
    let check = finch(
        &db,
        &["replay", &thread, "--check", "--graph", graph.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{stdout}");
    assert!(stdout.contains("node `ask`"), "{stdout}");
    std::fs::remove_dir_all(&changed).ok();

    // The original still replays as recorded, and so does the what-if's fork.
    let check = finch(&db, &["replay", "--check", "--all", "--since", "2000-01-01"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.ends_with("as recorded"))
            .count(),
        2,
        "{stdout}"
    );
}

/// The README's time-travel walk-through, on the help desk example.
#[tokio::test]
async fn the_time_travel_walk_through_works_on_the_help_desk_example() {
    let (db, _pool) = fresh_database().await;
    let run = |args: &[&str]| {
        let output = finch(&db, args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let script = "scripted:examples/helpdesk/helpdesk.script.yaml";
    let first = run(&[
        "run",
        "examples/helpdesk/helpdesk.yaml",
        "--thread",
        "new",
        "--input",
        r#"{"messages": [{"role": "user", "content": "Please refund order 1042, it arrived broken."}]}"#,
        "--context",
        r#"{"customer_name": "Ada"}"#,
        "--llm",
        script,
        "--answer",
        r#"approve={"approved": true}"#,
    ]);
    let thread = first
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("thread ")
        .to_owned();
    assert_eq!(run(&["thread", "history", &thread]).lines().count(), 8);
    assert!(run(&["thread", "show", &thread, "--at", "4"]).contains("\"refund\""));
    assert_eq!(
        run(&["replay", &thread, "--check"]).trim(),
        format!("thread {thread}: 1 run, 7 steps, as recorded")
    );
    let fork = run(&[
        "thread",
        "fork",
        &thread,
        "--at",
        "4",
        "--set",
        r#"refund.amount="240.00""#,
    ]);
    let diff = run(&["diff", &format!("{thread}@4"), fork.trim()]);
    assert_eq!(
        diff,
        "refund (written by `fork`, entry 1, step 0)\n  replace refund/amount \"240.00\"\n"
    );
    let what_if = run(&[
        "replay",
        &thread,
        "--graph",
        "examples/helpdesk/helpdesk.yaml",
        "--llm",
        script,
    ]);
    let changed: Vec<&str> = what_if
        .lines()
        .skip(1)
        .map(|line| line.split(' ').nth(2).unwrap_or_default())
        .collect();
    assert_eq!(changed, ["recorded_at"], "{what_if}");
}
