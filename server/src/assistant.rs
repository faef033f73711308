//! The assistant behind the HTTP API: the `assistant` graph of `graphs/`, run by a worker on
//! one engine thread per conversation, with the user from the login as the run's context.
//!
//! The conversation's messages (the `messages` table) are what the assistant remembers: each
//! turn gets the recent ones as input, so a turn that failed leaves nothing half-remembered.

use std::num::NonZeroU32;
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

/// The graphs and the worker that runs them.
#[derive(Debug)]
pub struct Assistant {
    worker: Worker,
    graph: Arc<Graph>,
    turns: governor::DefaultKeyedRateLimiter<i64>,
}

/// What a turn answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// Which agent answered (`assistant`, `database_agent`, …).
    pub agent: String,
    /// Rows the answer came from, if any.
    pub data: Value,
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
    /// Loads `graphs/assistant.yaml` of `project` and runs it with `llm` on `db`.
    pub fn load(
        project: &Path,
        llm: Arc<dyn LlmClient>,
        db: sqlx::PgPool,
        sandbox: Option<Arc<Sandbox>>,
        turns_per_minute: u32,
    ) -> anyhow::Result<Assistant> {
        let path = project.join("graphs/assistant.yaml");
        let options = LoadOptions {
            models: None,
            tools: crate::finance::tools::specs(),
        };
        let graph = engine::load_with(&Project::at(project), &path, &options)
            .map_err(|diagnostics| anyhow::anyhow!("{}", engine::diagnostic::render(&diagnostics)))
            .with_context(|| format!("loading {}", path.display()))?;
        let mut engine = Engine::new(llm).with_database(db.clone());
        for tool in crate::finance::tools::all() {
            engine = engine.with_host_tool(tool);
        }
        if let Some(sandbox) = sandbox {
            engine = engine.with_sandbox(sandbox);
        }
        let worker = Worker::new(
            engine,
            Store::new(db),
            format!("finch-serve:{}", std::process::id()),
        );
        let per_minute = NonZeroU32::new(turns_per_minute).unwrap_or(NonZeroU32::MIN);
        Ok(Assistant {
            worker,
            graph: Arc::new(graph),
            turns: governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute)),
        })
    }

    /// A new thread for a conversation.
    pub(crate) async fn new_thread(&self, user: i64, conversation: i64) -> Result<Uuid, TurnError> {
        let metadata = json!({ "user_id": user, "conversation_id": conversation });
        Ok(self.worker.create_thread(&self.graph, metadata).await?.id)
    }

    /// Whether `user` may take another turn now.
    pub(crate) fn admit(&self, user: i64) -> Result<(), TurnError> {
        self.turns.check_key(&user).map_err(|_| TurnError::TooMany)
    }

    /// Answers the last of `messages` (`[{role, content}]`, oldest first) on `thread`.
    pub(crate) async fn turn(
        &self,
        user: i64,
        thread: Uuid,
        messages: Vec<Value>,
    ) -> Result<Answer, TurnError> {
        let input = object(json!({ "messages": messages }));
        let context = object(json!({ "user_id": user }));
        let ran = self
            .worker
            .start(thread, input, context, StartMode::Reject, &Events::none())
            .await
            .map_err(|err| match err {
                WorkerError::Store(StoreError::Conflict { .. }) => TurnError::Busy,
                err => TurnError::Engine(err),
            })?;
        let Ran::Ran { outcome, .. } = ran else {
            return Err(TurnError::Busy);
        };
        if outcome.status != RunStatus::Succeeded {
            let why = outcome
                .error
                .clone()
                .unwrap_or_else(|| format!("the run is {:?}", outcome.status));
            return Err(TurnError::Failed(why));
        }
        let output = &outcome.output;
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
        })
    }
}

fn object(value: Value) -> State {
    match value {
        Value::Object(map) => map,
        _ => State::new(),
    }
}
