//! The assistant behind the HTTP API: the graphs of `graphs/` ([`GRAPHS`]), run by a worker on
//! engine threads of the conversation, with the user from the login as the run's context.
//!
//! The conversation's messages (the `messages` table) are what the assistant remembers: each
//! turn gets the recent ones as input, so a turn that failed leaves nothing half-remembered.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use engine::llm::LlmClient;
use engine::run::{Engine, Events, RunStatus, State};
use engine::sandbox::Sandbox;
use engine::store::{StartMode, Store, StoreError};
use engine::worker::{Ran, Worker, WorkerError};
use engine::{Graph, LoadOptions, Project};
use serde_json::{Value, json};
use uuid::Uuid;

/// Messages of the conversation a turn sees, the newest last.
pub const HISTORY: i64 = 20;
/// Messages past the window kept as they are before the assistant folds them into the
/// conversation's summary, all at once (so that it summarizes every tenth turn, not every one).
pub const FOLD: i64 = 10;

/// The graphs the API runs, by name.
pub const GRAPHS: &[&str] = &["assistant", "goal_maker", "budget_maker", "transaction_maker"];

/// The graphs and the worker that runs them.
#[derive(Debug)]
pub struct Assistant {
    worker: Worker,
    graphs: BTreeMap<&'static str, Arc<Graph>>,
    turns: Arc<governor::DefaultKeyedRateLimiter<i64>>,
}

/// What a turn answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// Which agent answered (`assistant`, `database_agent`, …).
    pub agent: String,
    /// Rows the answer came from, if any.
    pub data: Value,
    /// The `chart` tool's drawing of the rows, when there is one.
    pub chart: Option<Value>,
    /// The maker graph that takes the turn over (`goal_maker`, …), when the router chose one.
    pub handoff: Option<String>,
    /// The conversation's new summary, and the last message it covers, when one was made.
    pub remembered: Option<(String, i64)>,
    /// The yes-or-no question a maker asked, when one did.
    pub confirmation: Option<String>,
}

/// How a turn of a graph ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// With the graph's output.
    Done(State),
    /// Waiting for the user's answer to `question` (the payload of the run's interrupt).
    Asking {
        run: Uuid,
        interrupt: String,
        payload: Value,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("too many messages: try again in a minute")]
    TooMany,
    #[error("the conversation is already answering a message")]
    Busy,
    /// The run failed: a provider that did not answer, most likely. Logged, not shown.
    #[error("the assistant could not answer: {0}")]
    Failed(String),
    #[error(transparent)]
    Engine(#[from] WorkerError),
}

impl Assistant {
    /// Loads the [`GRAPHS`] of `project` (its `graphs/`, `prompts/` and `schemas/`) and runs
    /// them with `llm` on `db`.
    pub fn load(
        project: &Path,
        llm: Arc<dyn LlmClient>,
        db: sqlx::PgPool,
        sandbox: Option<Arc<Sandbox>>,
        turns_per_minute: u32,
    ) -> anyhow::Result<Assistant> {
        let options = LoadOptions {
            models: None,
            tools: crate::tools::specs(),
        };
        let mut graphs = BTreeMap::new();
        for name in GRAPHS {
            let path = project.join(format!("graphs/{name}.yaml"));
            let graph = engine::load_with(&Project::at(project), &path, &options)
                .map_err(|diagnostics| anyhow::anyhow!("{}", engine::diagnostic::render(&diagnostics)))
                .with_context(|| format!("loading {}", path.display()))?;
            graphs.insert(*name, Arc::new(graph));
        }
        let worker = Worker::new(
            engine(llm, db.clone(), sandbox),
            Store::new(db),
            format!("finch-serve:{}", std::process::id()),
        );
        Ok(Assistant {
            worker,
            graphs,
            turns: crate::limits::per_minute(turns_per_minute),
        })
    }

    /// A new thread of `graph` (one of [`GRAPHS`]) for a conversation.
    pub(crate) async fn new_thread(
        &self,
        graph: &str,
        user: i64,
        conversation: i64,
    ) -> Result<Uuid, TurnError> {
        let Some(graph) = self.graphs.get(graph) else {
            return Err(TurnError::Failed(format!("no graph `{graph}`")));
        };
        let metadata = json!({ "user_id": user, "conversation_id": conversation });
        Ok(self.worker.create_thread(graph, metadata).await?.id)
    }

    /// Whether `user` may take another turn now.
    pub(crate) fn admit(&self, user: i64) -> Result<(), TurnError> {
        self.turns.check_key(&user).map_err(|_| TurnError::TooMany)
    }

    /// Answers the last of `messages` (`[{role, content}]`, oldest first) with the `assistant`
    /// graph on `thread`; `memory` is what came before them (see the graph's `memory` field).
    pub(crate) async fn turn(
        &self,
        user: i64,
        thread: Uuid,
        messages: Vec<Value>,
        memory: Value,
    ) -> Result<Answer, TurnError> {
        let input = object(json!({ "messages": messages, "memory": memory }));
        let output = match self.start(user, thread, input).await? {
            Turn::Done(output) => output,
            Turn::Asking { .. } => {
                return Err(TurnError::Failed("the assistant asked a question".to_owned()));
            }
        };
        Ok(Answer {
            text: output
                .get("answer")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            agent: output
                .get("agent")
                .and_then(Value::as_str)
                .unwrap_or("assistant")
                .to_owned(),
            data: output.get("data").cloned().unwrap_or(Value::Array(Vec::new())),
            chart: output.get("chart").filter(|chart| chart.is_object()).cloned(),
            handoff: output
                .get("handoff")
                .and_then(Value::as_str)
                .filter(|graph| !graph.is_empty())
                .map(str::to_owned),
            remembered: output.get("remembered").and_then(|remembered| {
                let summary = remembered.get("summary")?.as_str()?.to_owned();
                Some((summary, remembered.get("through")?.as_i64()?))
            }),
            confirmation: None,
        })
    }

    /// Runs the graph of `thread` on `messages`, for `user`.
    pub(crate) async fn run(&self, user: i64, thread: Uuid, messages: Vec<Value>) -> Result<Turn, TurnError> {
        self.start(user, thread, object(json!({ "messages": messages })))
            .await
    }

    async fn start(&self, user: i64, thread: Uuid, input: State) -> Result<Turn, TurnError> {
        let context = object(json!({ "user_id": user }));
        let ran = self
            .worker
            .start(thread, input, context, StartMode::Reject, &Events::none())
            .await
            .map_err(busy)?;
        turn(ran)
    }

    /// Continues the run waiting at `interrupt` with the user's `answer`.
    pub(crate) async fn answer(&self, run: Uuid, interrupt: &str, answer: Value) -> Result<Turn, TurnError> {
        let answers = BTreeMap::from([(interrupt.to_owned(), answer)]);
        let ran = self
            .worker
            .resume(run, answers, &Events::none())
            .await
            .map_err(busy)?;
        turn(ran)
    }
}

/// An engine with `llm`, the database, `finch`'s tools and the SQL sandbox.
pub fn engine(llm: Arc<dyn LlmClient>, db: sqlx::PgPool, sandbox: Option<Arc<Sandbox>>) -> Engine {
    let mut engine = Engine::new(llm).with_database(db);
    for tool in crate::tools::all() {
        engine = engine.with_host_tool(tool);
    }
    match sandbox {
        Some(sandbox) => engine.with_sandbox(sandbox),
        None => engine,
    }
}

fn busy(err: WorkerError) -> TurnError {
    match err {
        WorkerError::Store(StoreError::Conflict { .. }) => TurnError::Busy,
        err => TurnError::Engine(err),
    }
}

fn turn(ran: Ran) -> Result<Turn, TurnError> {
    let Ran::Ran { run, outcome } = ran else {
        return Err(TurnError::Busy);
    };
    match outcome.status {
        RunStatus::Succeeded => Ok(Turn::Done(outcome.output)),
        RunStatus::Interrupted => {
            let Some(interrupt) = outcome.interrupts.into_iter().next() else {
                return Err(TurnError::Failed("the run paused without a question".to_owned()));
            };
            Ok(Turn::Asking {
                run,
                interrupt: interrupt.id,
                payload: interrupt.payload,
            })
        }
        status => Err(TurnError::Failed(
            outcome.error.unwrap_or_else(|| format!("the run is {status:?}")),
        )),
    }
}

fn object(value: Value) -> State {
    match value {
        Value::Object(map) => map,
        _ => State::new(),
    }
}
