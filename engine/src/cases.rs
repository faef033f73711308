//! Graph tests as data: cases in a YAML file beside the graph, run without any model.
//!
//! `support.cases.yaml` beside `support.yaml` lists cases: an input, scripted model replies,
//! optional SQL to prepare a fresh database, answers for interrupts, and what to expect — the
//! nodes visited, the status, output and state fields, an error. [`run_case`] plays one and
//! returns a [`CaseReport`]: whether it passed, why not, and a readable trace of the run.
//!
//! ```yaml
//! cases:
//!   - name: a question is answered
//!     input: { messages: [{ role: user, content: How do I reset my password? }] }
//!     script:
//!       classify: [{ json: { intent: question, topic: passwords } }]
//!       answer: [Use the "Forgot password" link.]
//!     expect:
//!       visited: [classify, route, answer]
//!       output: { messages: [...] }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::graph::Graph;
use crate::llm::scripted::{ScriptEntry, Scripted};
use crate::nodes::HostTool;
use crate::run::{Answers, Clock, Engine, Event, Events, RunOutcome, RunStatus, State};
use crate::sandbox::{self, Sandbox, SandboxConfig};
use crate::yaml::{self, Spanned};

/// The cases of one graph.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesFile {
    pub cases: Vec<Spanned<Case>>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub input: State,
    #[serde(default)]
    pub context: State,
    /// The instant the `now` tool returns (default 2026-01-01T00:00:00Z, for stable results).
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    /// Model replies by node id (or path), in order.
    #[serde(default)]
    pub script: BTreeMap<String, Vec<ScriptEntry>>,
    /// SQL run on a fresh database before the case; the case then uses that database.
    #[serde(default)]
    pub sql: Option<String>,
    /// Apply Finch's migrations to the fresh database first (the finance tables, the SQL
    /// sandbox), and give `sql_query` nodes the sandbox on it.
    #[serde(default)]
    pub migrated: bool,
    /// Answers for each pause, in order, keyed by interrupt id.
    #[serde(default)]
    pub resume: Vec<Answers>,
    #[serde(default)]
    pub expect: Expect,
}

/// What a case expects; anything not given is not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// How the run ends (default `succeeded`).
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// The nodes that ran, step by step (nodes of one step in graph order).
    #[serde(default)]
    pub visited: Option<Vec<String>>,
    /// Output fields and their exact values.
    #[serde(default)]
    pub output: State,
    /// State fields and their exact values at the end.
    #[serde(default)]
    pub state: State,
    /// Text the error must contain.
    #[serde(default)]
    pub error: Option<String>,
    /// Ids of the interrupts waiting at the end.
    #[serde(default)]
    pub interrupts: Option<Vec<String>>,
}

/// The cases file of a graph file: `x.yaml` → `x.cases.yaml`.
pub fn cases_path(graph: &Path) -> PathBuf {
    graph.with_extension("cases.yaml")
}

/// Reads a cases file; an error names the line and column.
pub fn read_cases(text: &str) -> Result<CasesFile, yaml::Error> {
    yaml::from_node(&yaml::parse(text)?)
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub name: String,
    /// Why it failed; empty when it passed.
    pub problems: Vec<String>,
    /// The run, readable: steps, status, error, output and state.
    pub trace: String,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where cases that need a database get a fresh one.
#[derive(Debug, Clone)]
pub struct CaseDatabases {
    /// A connection to a server where this user may create databases.
    pub admin: sqlx::PgPool,
    /// The URL of that server, without a database name at the end.
    pub url: String,
}

/// Plays one case against a checked graph, with the application's `tools`.
pub async fn run_case(
    graph: &Graph,
    case: &Case,
    databases: Option<&CaseDatabases>,
    tools: &[Arc<dyn HostTool>],
) -> CaseReport {
    let mut report = CaseReport {
        name: case.name.clone(),
        problems: Vec::new(),
        trace: String::new(),
    };
    let script = Arc::new(Scripted::new(case.script.clone()));
    let now = case
        .now
        .unwrap_or_else(|| "2026-01-01T00:00:00Z".parse().expect("a valid instant"));
    let mut engine = Engine::new(script.clone()).with_clock(Clock::Fixed(now));
    for tool in tools {
        engine = engine.with_host_tool(tool.clone());
    }
    let mut database = None;
    if case.sql.is_some() || case.migrated {
        let sql = case.sql.as_deref().unwrap_or_default();
        match fresh_database(databases, sql, case.migrated).await {
            Ok((pool, name, sandbox)) => {
                engine = engine.with_database(pool.clone());
                if let Some(sandbox) = sandbox {
                    engine = engine.with_sandbox(Arc::new(sandbox));
                }
                database = Some((pool, name));
            }
            Err(problem) => {
                report.problems.push(problem);
                return report;
            }
        }
    }
    let (outcome, log) = play(&engine, graph, case, &mut report.problems).await;
    if let (Some((pool, name)), Some(databases)) = (database, databases) {
        pool.close().await;
        drop_database(databases, &name).await;
    }
    let Some(outcome) = outcome else {
        return report;
    };
    report
        .problems
        .extend(compare(&case.expect, &outcome, &log.steps));
    for (node, left) in script.unused() {
        report
            .problems
            .push(format!("the script has {left} unused reply(ies) for `{node}`"));
    }
    report.trace = trace(&outcome, &log);
    report
}

/// Runs the case, resuming with each set of answers in turn; returns the last outcome and the
/// top-level nodes that ran, by step.
async fn play(
    engine: &Engine,
    graph: &Graph,
    case: &Case,
    problems: &mut Vec<String>,
) -> (Option<RunOutcome>, Log) {
    let (events, mut receiver) = Events::channel();
    let started = engine
        .start(graph, case.input.clone(), case.context.clone(), &events)
        .await;
    let mut outcome = match started {
        Ok(outcome) => outcome,
        Err(err) => {
            problems.push(format!("the run did not start: {err}"));
            return (None, Log::default());
        }
    };
    for answers in &case.resume {
        if outcome.status != RunStatus::Interrupted {
            problems.push(format!(
                "the run ended (`{}`) with answers left to give",
                outcome.status.name()
            ));
            break;
        }
        match engine
            .resume(graph, outcome.checkpoint.clone(), answers.clone(), &events)
            .await
        {
            Ok(next) => outcome = next,
            Err(err) => {
                problems.push(format!("the run did not resume: {err}"));
                break;
            }
        }
    }
    drop(events);
    let mut log = Log::default();
    while let Some(event) = receiver.recv().await {
        match event {
            Event::NodeFinished { step, node, .. } | Event::NodeFailed { step, node, .. }
                if !node.contains('/') =>
            {
                log.steps.entry(step).or_default().push(node);
            }
            Event::NodeRetrying {
                node, attempt, error, ..
            } => {
                log.notes
                    .push(format!("{node}: attempt {attempt} failed ({error}), retried"));
            }
            Event::LlmCall { node, .. } => *log.calls.entry(node).or_default() += 1,
            _ => {}
        }
    }
    for nodes in log.steps.values_mut() {
        nodes.sort_by_key(|node| graph.nodes.get_index_of(node.as_str()));
    }
    (Some(outcome), log)
}

/// What the events of a case's run say: the top-level nodes of each step, retries, and
/// model calls by node.
#[derive(Debug, Default)]
struct Log {
    steps: BTreeMap<u32, Vec<String>>,
    notes: Vec<String>,
    calls: BTreeMap<String, u32>,
}

fn compare(expect: &Expect, outcome: &RunOutcome, steps: &BTreeMap<u32, Vec<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    let status = expect.status.unwrap_or(RunStatus::Succeeded);
    if outcome.status != status {
        let error = outcome
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        problems.push(format!(
            "expected status `{}`, got `{}`{error}",
            status.name(),
            outcome.status.name()
        ));
    }
    if let Some(visited) = &expect.visited {
        let actual: Vec<&String> = steps.values().flatten().collect();
        if actual
            .iter()
            .map(|s| s.as_str())
            .ne(visited.iter().map(String::as_str))
        {
            problems.push(format!("expected the nodes {visited:?}, visited {actual:?}"));
        }
    }
    for (what, expected, actual) in [
        ("output", &expect.output, &outcome.output),
        ("state", &expect.state, &outcome.checkpoint.state),
    ] {
        for (field, value) in expected {
            if actual.get(field) != Some(value) {
                let got = actual.get(field).map_or("nothing".to_owned(), Value::to_string);
                problems.push(format!("{what} `{field}`: expected {value}, got {got}"));
            }
        }
    }
    if let Some(text) = &expect.error
        && !outcome
            .error
            .as_deref()
            .unwrap_or_default()
            .contains(text.as_str())
    {
        problems.push(format!(
            "expected an error containing {text:?}, got {:?}",
            outcome.error
        ));
    }
    if let Some(ids) = &expect.interrupts {
        let actual: Vec<&str> = outcome.interrupts.iter().map(|i| i.id.as_str()).collect();
        if actual.iter().copied().ne(ids.iter().map(String::as_str)) {
            problems.push(format!("expected the interrupts {ids:?}, got {actual:?}"));
        }
    }
    problems
}

/// The run as text: the nodes of each step, retries, model calls, how it ended, and the
/// final state.
fn trace(outcome: &RunOutcome, log: &Log) -> String {
    let mut text = String::new();
    for (step, nodes) in &log.steps {
        let _ = writeln!(text, "step {step}: {}", nodes.join(", "));
    }
    for note in &log.notes {
        let _ = writeln!(text, "{note}");
    }
    if !log.calls.is_empty() {
        let calls: Vec<String> = log.calls.iter().map(|(node, n)| format!("{node} ×{n}")).collect();
        let _ = writeln!(text, "model calls: {}", calls.join(", "));
    }
    let _ = writeln!(text, "status: {}", outcome.status.name());
    if let Some(error) = &outcome.error {
        let _ = writeln!(text, "error: {error}");
    }
    for interrupt in &outcome.interrupts {
        let _ = writeln!(text, "waiting: {} {}", interrupt.id, interrupt.payload);
    }
    let state = serde_json::to_string_pretty(&outcome.checkpoint.state).unwrap_or_default();
    let _ = writeln!(text, "state: {state}");
    text
}

/// A new database, migrated when asked, with the case's SQL run in it; and the SQL sandbox
/// on it when migrated.
async fn fresh_database(
    databases: Option<&CaseDatabases>,
    sql: &str,
    migrated: bool,
) -> Result<(sqlx::PgPool, String, Option<Sandbox>), String> {
    let Some(databases) = databases else {
        return Err("this case needs a database: set DATABASE_URL (or pass --db)".to_owned());
    };
    let name = format!("finch_case_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&databases.admin)
        .await
        .map_err(|err| format!("cannot create a database for the case: {err}"))?;
    let url = format!("{}/{name}", databases.url.trim_end_matches('/'));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .map_err(|err| format!("cannot connect to the case's database: {err}"))?;
    if migrated {
        crate::store::MIGRATOR
            .run(&pool)
            .await
            .map_err(|err| format!("cannot migrate the case's database: {err}"))?;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .map_err(|err| format!("the case's `sql` failed: {err}"))?;
    let sandbox = match migrated {
        false => None,
        true => Some(case_sandbox(&pool).await?),
    };
    Ok((pool, name, sandbox))
}

/// The sandbox on a case's migrated database, logged in as the migrations' sandbox role.
async fn case_sandbox(pool: &sqlx::PgPool) -> Result<Sandbox, String> {
    let options = pool.connect_options().as_ref().clone().username(sandbox::ROLE);
    let role = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .map_err(|err| format!("cannot log in as `{}` for the SQL sandbox: {err}", sandbox::ROLE))?;
    Sandbox::connect(role, pool.clone(), SandboxConfig::default())
        .await
        .map_err(|err| format!("cannot start the SQL sandbox: {err}"))
}

async fn drop_database(databases: &CaseDatabases, name: &str) {
    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    // Best effort: a database left behind is only clutter on a test server.
    let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&databases.admin)
        .await;
}

/// Connects to the server at `url` (a database URL), where case databases will be created.
pub async fn connect(url: &str) -> Result<CaseDatabases, sqlx::Error> {
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await?;
    let server = match url.rsplit_once('/') {
        Some((server, database)) if !database.is_empty() && !server.ends_with('/') => server.to_owned(),
        _ => url.trim_end_matches('/').to_owned(),
    };
    Ok(CaseDatabases { admin, url: server })
}
