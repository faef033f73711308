//! `finch run` and `finch graph test`.

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{finch, finch_with_env, stdout};

const HELPDESK: &str = "examples/helpdesk/helpdesk.yaml";
const REFUND: &str =
    r#"{"messages":[{"role":"user","content":"Please refund order 1042, it arrived broken."}]}"#;

#[test]
fn graph_test_runs_every_case_in_the_repository() {
    let output = finch(&["graph", "test"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("ok    helpdesk · an approved refund is recorded and confirmed"),
        "{text}"
    );
    assert!(text.contains("0 failed"), "{text}");
}

#[test]
fn graph_test_reports_a_failing_case_and_why() {
    let output = finch(&["graph", "test", "server/tests/it/data/failing"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("ok    count · counts to one"), "{text}");
    assert!(
        text.contains(
            "FAIL  count · a wrong expectation fails  (server/tests/it/data/failing/count.cases.yaml:4)"
        ),
        "{text}"
    );
    assert!(text.contains("output `count`: expected 2, got 1"), "{text}");
}

#[test]
fn run_prints_each_event_as_json_and_the_outcome_last() {
    let output = finch(&[
        "run",
        HELPDESK,
        "--input",
        REFUND,
        "--context",
        r#"{"customer_name": "Ada"}"#,
        "--llm",
        "scripted:examples/helpdesk/helpdesk.script.yaml",
        "--answer",
        r#"approve={"approved": true}"#,
        "--format",
        "json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    let finished: Vec<&str> = lines
        .iter()
        .filter(|event| event["event"] == "node_finished")
        .map(|event| event["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        finished,
        [
            "classify",
            "route",
            "draft_refund",
            "approve",
            "record",
            "confirm"
        ]
    );
    assert!(
        lines.iter().any(|event| event["event"] == "token"),
        "no token events"
    );
    let outcome = lines.last().unwrap();
    assert_eq!(outcome["status"], "succeeded");
    assert_eq!(outcome["output"]["refund"]["amount"], "24.90");
}

#[test]
fn run_stops_at_an_interrupt_it_has_no_answer_for() {
    let output = finch(&[
        "run",
        HELPDESK,
        "--input",
        REFUND,
        "--context",
        r#"{"customer_name": "Ada"}"#,
        "--llm",
        "scripted:examples/helpdesk/helpdesk.script.yaml",
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("waiting for an answer; run again with --answer ID=JSON for:\n  approve: "),
        "{text}"
    );
}

#[test]
fn run_names_the_variable_a_missing_key_should_be_in() {
    let config = crate::temp_file(
        "missing-key.toml",
        "[models.local]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n",
    );
    let output = finch_with_env(
        &[
            "run",
            "server/tests/it/data/echo/echo.yaml",
            "--config",
            config.to_str().unwrap(),
            "--input",
            r#"{"question": "hi"}"#,
        ],
        &[],
        &["OPENAI_API_KEY"],
    );
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{errors}");
    assert!(
        errors.contains("model `local` needs the environment variable `OPENAI_API_KEY`"),
        "{errors}"
    );
}

#[tokio::test]
async fn run_calls_a_configured_provider_over_http() {
    let server = MockServer::start().await;
    let reply = serde_json::json!({
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Blue." }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 9, "completion_tokens": 1 }
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .expect(1)
        .mount(&server)
        .await;
    let config = crate::temp_file(
        "local-provider.toml",
        &format!(
            "[models.local]\nprovider = \"openai_compatible\"\nmodel = \"tiny\"\nbase_url = \"{}/v1\"\nstream = false\n",
            server.uri()
        ),
    );
    let config = config.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let input = r#"{"question": "What colour is the sky?"}"#;
        let args = [
            "run",
            "server/tests/it/data/echo/echo.yaml",
            "--config",
            &config,
            "--input",
            input,
            "--format",
            "json",
        ];
        finch(&args)
    })
    .await
    .unwrap();
    let last: Value = serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    assert_eq!(last["output"]["answer"], "Blue.", "{}", stdout(&output));
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["model"], "tiny");
    assert_eq!(
        body["messages"][0]["content"],
        "Answer in one word: What colour is the sky?"
    );
}

#[test]
fn run_refuses_an_answer_for_an_interrupt_the_graph_does_not_have() {
    let output = finch(&[
        "run",
        HELPDESK,
        "--input",
        REFUND,
        "--context",
        r#"{"customer_name": "Ada"}"#,
        "--llm",
        "scripted:examples/helpdesk/helpdesk.script.yaml",
        "--answer",
        r#"aprove={"approved": true}"#,
    ]);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{errors}");
    assert!(
        errors.contains("graph `helpdesk` has no interrupt `aprove`; did you mean `approve`?"),
        "{errors}"
    );
}

#[test]
fn graph_test_refuses_a_path_without_cases() {
    let output = finch(&["graph", "test", "engine/tests/it/data/valid/profile.yaml"]);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{errors}");
    assert!(
        errors.contains("has no test cases: expected `engine/tests/it/data/valid/profile.cases.yaml`"),
        "{errors}"
    );
}

#[test]
fn check_finds_the_project_of_a_graph_named_from_its_own_folder() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_finch"))
        .args(["graph", "check", "helpdesk.yaml"])
        .current_dir(crate::repo_root().join("examples/helpdesk"))
        .output()
        .expect("finch runs");
    assert!(output.status.success(), "{}", stdout(&output));
}

/// `finch run --db` gives `sql_query` nodes the sandbox: the model's SQL reads the rows of
/// the user in `--context`, and no one else's.
#[sqlx::test(migrations = "../migrations")]
async fn run_gives_sql_query_nodes_the_sandbox(pool: sqlx::PgPool) {
    sqlx::raw_sql(
        "INSERT INTO users (id, email, first_name, last_name) OVERRIDING SYSTEM VALUE VALUES \
             (1, 'ada@example.com', 'Ada', 'L'), (2, 'bob@example.com', 'Bob', 'M'); \
         INSERT INTO transactions (user_id, date, amount, description) VALUES \
             (1, '2026-11-02', 12.50, 'bakery'), (1, '2026-11-03', 7.25, 'bus'), \
             (2, '2026-11-02', 999.99, 'Bob''s secret');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let database = pool
        .connect_options()
        .get_database()
        .expect("a test database")
        .to_owned();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL for the tests");
    let url = format!("{}/{database}", base.rsplit_once('/').expect("a URL").0);
    let script = crate::temp_file(
        "sandbox.script.yaml",
        "write_sql: [\"SELECT sum(amount) AS spent, count(*) AS n FROM transactions\"]\n",
    );
    let output = finch(&[
        "run",
        "engine/tests/it/data/sandbox/ask.yaml",
        "--llm",
        &format!("scripted:{}", script.display()),
        "--db",
        &url,
        "--input",
        r#"{"question": "How much did I spend?"}"#,
        "--context",
        r#"{"user_id": 1}"#,
        "--format",
        "json",
    ]);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["output"]["result"]["rows"],
        serde_json::json!([{ "spent": "19.75", "n": 2 }]),
        "{text}"
    );
}
