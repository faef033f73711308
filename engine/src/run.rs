//! The run loop: pick the step's nodes → run them concurrently → merge their writes → route.
//!
//! Runs proceed in steps, as in LangGraph's Pregel loop. The nodes of a step run concurrently on
//! the state as it was when the step began; their writes are merged, in the order the nodes are
//! declared in the graph, by each field's reducer, and every written value is validated against
//! the field's schema. Then each node's outgoing edges pick the next step's nodes, routes being
//! evaluated on the merged state. A run ends when no node is left (success), when a node waits
//! for an answer (interrupted), or on an error — a failing node, a write that breaks the schema,
//! `max_steps` or a node's `max_visits` exceeded — which is an outcome, not a crash.

mod checkpoint;
mod event;
mod journal;
mod scope;
mod step;
mod task;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use checkpoint::{Checkpoint, Interrupt, Position, State, Waiting, Write};
pub use event::{Event, Events};
pub(crate) use journal::StepShared;
pub use journal::{Journal, StepRecord, StepTransaction};
pub use task::Answers;
pub(crate) use task::{NodeError, Resume, RunCx, run_node};

use crate::graph::Graph;
use crate::llm::LlmClient;

/// How a run ended, or why it paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Interrupted,
    Failed,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }
}

/// What a run came to.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    /// Where the run stands: resume from it when interrupted.
    pub checkpoint: Checkpoint,
    /// The graph's `output` fields, when it succeeded.
    pub output: State,
    /// The questions it waits for, when interrupted.
    pub interrupts: Vec<Interrupt>,
    /// What went wrong, when it failed.
    pub error: Option<String>,
}

/// A run that cannot start or continue as asked; nothing ran.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("`{field}` is not an input of graph `{graph}`; its inputs are: {inputs}")]
    UnknownInput {
        graph: String,
        field: String,
        inputs: String,
    },
    #[error("input `{field}` does not match its schema: {problem}")]
    InvalidInput { field: String, problem: String },
    #[error("context `{field}` is required by graph `{graph}`")]
    MissingContext { graph: String, field: String },
    #[error("graph `{graph}` has no context `{field}`")]
    UnknownContext { graph: String, field: String },
    #[error("context `{field}` does not match its schema: {problem}")]
    InvalidContext { field: String, problem: String },
    #[error("the run is not waiting for an answer")]
    NotInterrupted,
    #[error("no answer given; waiting: {waiting}")]
    NoAnswer { waiting: String },
    #[error("no interrupt `{id}` is waiting; waiting: {waiting}")]
    UnknownInterrupt { id: String, waiting: String },
    #[error("the answer to `{id}` does not match its response schema: {problem}")]
    InvalidAnswer { id: String, problem: String },
}

/// Where `now` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    #[default]
    System,
    /// Always this instant: for tests and replays.
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(instant) => instant,
        }
    }
}

/// Runs graphs: holds what nodes reach outside the graph (models, database, clock).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) llm: Arc<dyn LlmClient>,
    pub(crate) db: Option<sqlx::PgPool>,
    pub(crate) sandbox: Option<Arc<crate::sandbox::Sandbox>>,
    pub(crate) host_tools: Vec<Arc<dyn crate::nodes::HostTool>>,
    pub(crate) clock: Clock,
    /// In a replay, what the nodes that reach outside the graph (`sql`, the `now` tool) wrote
    /// when the run was recorded, by step and node path: they are not run again.
    pub(crate) recorded: Option<Arc<Recorded>>,
}

/// The recorded writes of a run's nodes that reach outside the graph: top-level ones by step
/// and node, and those inside subgraphs and maps by path, in the order they ran.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) steps: std::collections::BTreeMap<(u32, String), Vec<Write>>,
    pub(crate) nested:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<Vec<Write>>>>,
}

impl Engine {
    pub fn new(llm: Arc<dyn LlmClient>) -> Engine {
        Engine {
            llm,
            db: None,
            sandbox: None,
            host_tools: Vec::new(),
            clock: Clock::System,
            recorded: None,
        }
    }

    /// The recorded writes of a node that reaches outside the graph, in a replay.
    pub(crate) fn recorded_writes(
        &self,
        step: u32,
        path: &str,
        nested: bool,
        node: &crate::nodes::Node,
    ) -> Option<Vec<Write>> {
        let recorded = self.recorded.as_ref().filter(|_| node.reaches_outside())?;
        if nested {
            let mut nested = recorded.nested.lock().expect("recorded lock");
            return nested
                .get_mut(path)
                .and_then(std::collections::VecDeque::pop_front);
        }
        recorded.steps.get(&(step, path.to_owned())).cloned()
    }

    /// The database `sql` nodes use.
    pub fn with_database(mut self, pool: sqlx::PgPool) -> Engine {
        self.db = Some(pool);
        self
    }

    /// The SQL sandbox `sql_query` nodes and the `sql_schema` tool use.
    pub fn with_sandbox(mut self, sandbox: Arc<crate::sandbox::Sandbox>) -> Engine {
        self.sandbox = Some(sandbox);
        self
    }

    /// A tool of the application, for `tool` nodes that name it.
    pub fn with_host_tool(mut self, tool: Arc<dyn crate::nodes::HostTool>) -> Engine {
        self.host_tools.push(tool);
        self
    }

    pub(crate) fn host_tool(&self, name: &str) -> Option<&Arc<dyn crate::nodes::HostTool>> {
        self.host_tools.iter().find(|tool| tool.spec().name == name)
    }

    /// What graphs run by this engine are checked with: the application's tools.
    pub fn load_options(&self) -> crate::LoadOptions {
        crate::LoadOptions {
            models: None,
            tools: self.host_tools.iter().map(|tool| tool.spec()).collect(),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// Starts a run of `graph` with `input` (its `input` fields) and `context`.
    pub async fn start(
        &self,
        graph: &Graph,
        input: State,
        context: State,
        events: &Events,
    ) -> Result<RunOutcome, RunError> {
        let (checkpoint, _) = prepare(graph, State::new(), input, context)?;
        if !events.is_nested() {
            events.emit(Event::RunStarted {
                graph: graph.name.clone(),
                run: None,
            });
        }
        Ok(self
            .drive(graph, checkpoint, Answers::new(), Drive::plain(events))
            .await)
    }

    /// Continues an interrupted run with answers, keyed by interrupt id.
    pub async fn resume(
        &self,
        graph: &Graph,
        checkpoint: Checkpoint,
        answers: Answers,
        events: &Events,
    ) -> Result<RunOutcome, RunError> {
        check_answers(graph, &checkpoint, &answers)?;
        Ok(self.drive(graph, checkpoint, answers, Drive::plain(events)).await)
    }

    /// Runs `checkpoint` (from [`prepare`], or a paused or interrupted run's) with `answers`,
    /// recording every step in `journal`.
    pub async fn run_journaled(
        &self,
        graph: &Graph,
        checkpoint: Checkpoint,
        answers: Answers,
        events: &Events,
        journal: &dyn Journal,
    ) -> Result<RunOutcome, RunError> {
        if !answers.is_empty() {
            check_answers(graph, &checkpoint, &answers)?;
        }
        let drive = Drive {
            events,
            journal: Some(journal),
            parent: None,
        };
        Ok(self.drive(graph, checkpoint, answers, drive).await)
    }

    /// Steps until the run ends or pauses. Boxed: subgraph nodes drive runs of their own.
    pub(crate) fn drive<'a>(
        &'a self,
        graph: &'a Graph,
        mut checkpoint: Checkpoint,
        mut answers: Answers,
        drive: Drive<'a>,
    ) -> BoxFuture<'a, RunOutcome> {
        Box::pin(async move {
            let starting = checkpoint.step == 0 && checkpoint.next.is_empty() && checkpoint.visits.is_empty();
            if starting && let Err(error) = step::route_start(graph, &mut checkpoint, drive.events) {
                return drive.fail(graph, checkpoint, error).await;
            }
            loop {
                if checkpoint.next.is_empty() {
                    return finish(graph, checkpoint, Ok(()), drive.events);
                }
                if checkpoint.step >= graph.max_steps {
                    let nodes: Vec<String> = checkpoint
                        .next
                        .iter()
                        .map(|id| drive.events.path(id.as_str()))
                        .collect();
                    let error = format!(
                        "the run reached `max_steps` ({}) with `{}` still to run",
                        graph.max_steps,
                        nodes.join("`, `")
                    );
                    return drive.fail(graph, checkpoint, error).await;
                }
                let shared = drive.parent.clone().unwrap_or_default();
                let given = (!answers.is_empty()).then(|| answers.clone());
                let outcome = self
                    .step(graph, &mut checkpoint, &mut answers, &drive, &shared)
                    .await;
                match drive.record(&checkpoint, outcome, shared, given).await {
                    Ok(StepEnd::Merged) => {}
                    Ok(StepEnd::Waiting) => return finish(graph, checkpoint, Ok(()), drive.events),
                    Err(error) => return drive.fail(graph, checkpoint, error).await,
                }
            }
        })
    }
}

/// How a run is driven: where its events go, who records its steps, and, for a subgraph's
/// run, the parent step it is part of.
pub(crate) struct Drive<'a> {
    pub(crate) events: &'a Events,
    pub(crate) journal: Option<&'a dyn Journal>,
    pub(crate) parent: Option<Arc<StepShared>>,
}

impl<'a> Drive<'a> {
    fn plain(events: &'a Events) -> Drive<'a> {
        Drive {
            events,
            journal: None,
            parent: None,
        }
    }

    /// Commits a step's results (through the journal, if any). A failed step's transaction
    /// rolls back as it is dropped; a subgraph's steps commit with their parent's.
    async fn record(
        &self,
        checkpoint: &Checkpoint,
        outcome: Result<StepOutcome, String>,
        shared: Arc<StepShared>,
        answers: Option<Answers>,
    ) -> Result<StepEnd, String> {
        let outcome = outcome?;
        if self.parent.is_some() {
            return Ok(outcome.end);
        }
        let shared = Arc::into_inner(shared).ok_or("a step's tasks outlived it")?;
        let journal::StepParts {
            transaction,
            calls,
            effects,
            subgraphs,
        } = shared.into_parts();
        let end = match outcome.end {
            StepEnd::Waiting => Some(RunStatus::Interrupted),
            StepEnd::Merged if checkpoint.next.is_empty() => Some(RunStatus::Succeeded),
            StepEnd::Merged => None,
        };
        let record = StepRecord {
            step: outcome.step,
            nodes: outcome.nodes.clone(),
            writes: outcome.writes,
            checkpoint,
            calls,
            effects,
            subgraphs,
            end,
            answers,
        };
        match (self.journal, transaction) {
            (Some(journal), transaction) => journal.commit(transaction, record).await?,
            (None, Some(transaction)) => {
                transaction
                    .commit()
                    .await
                    .map_err(|err| format!("cannot commit the step's writes: {err}"))?;
            }
            (None, None) => {}
        }
        if outcome.end == StepEnd::Merged && !self.events.is_nested() && self.events.is_on() {
            self.events.emit(Event::StepFinished {
                step: outcome.step,
                nodes: outcome.nodes,
                state: checkpoint.state.clone(),
            });
        }
        Ok(outcome.end)
    }

    /// Ends the run as failed, and records it when there is a journal.
    async fn fail(&self, graph: &Graph, checkpoint: Checkpoint, error: String) -> RunOutcome {
        let mut error = error;
        if let Some(journal) = self.journal
            && let Err(problem) = journal.fail(&checkpoint, &error).await
        {
            error = format!("{error}; recording the failure failed too: {problem}");
        }
        finish(graph, checkpoint, Err(error), self.events)
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepEnd {
    /// Its writes were merged and the next step chosen.
    Merged,
    /// A node waits for an answer.
    Waiting,
}

/// A step that did not fail: how it ended, and what it holds for the record.
pub(crate) struct StepOutcome {
    pub(crate) end: StepEnd,
    pub(crate) step: u32,
    pub(crate) nodes: Vec<String>,
    pub(crate) writes: Vec<(String, Write)>,
}

/// Answers must be for interrupts that wait, and match their response schemas.
pub(crate) fn check_answers(
    graph: &Graph,
    checkpoint: &Checkpoint,
    answers: &Answers,
) -> Result<(), RunError> {
    let waiting = checkpoint.interrupts();
    if waiting.is_empty() {
        return Err(RunError::NotInterrupted);
    }
    if answers.is_empty() {
        let ids: Vec<&str> = waiting.iter().map(|i| i.id.as_str()).collect();
        return Err(RunError::NoAnswer {
            waiting: ids.join(", "),
        });
    }
    for (id, answer) in answers {
        if !waiting.iter().any(|interrupt| &interrupt.id == id) {
            let ids: Vec<&str> = waiting.iter().map(|i| i.id.as_str()).collect();
            return Err(RunError::UnknownInterrupt {
                id: id.clone(),
                waiting: ids.join(", "),
            });
        }
        let schema = graph
            .locate(id)
            .and_then(|(inner, node)| inner.compiled.nodes.get(node));
        if let Some(problem) = crate::state::problem(schema, answer) {
            return Err(RunError::InvalidAnswer {
                id: id.clone(),
                problem,
            });
        }
    }
    Ok(())
}

/// The checkpoint a run starts from: `state` (a thread's, or empty) with the defaults of
/// fields it lacks, then `input` merged by the fields' reducers and validated; `context`
/// checked. Returns it with the input's writes, which are the run's first record.
pub fn prepare(
    graph: &Graph,
    state: State,
    input: State,
    context: State,
) -> Result<(Checkpoint, Vec<Write>), RunError> {
    let mut state = state;
    for (name, field) in &graph.state {
        if let Some(default) = field.default_value()
            && !state.contains_key(name)
        {
            state.insert(name.clone(), default.clone());
        }
    }
    let mut writes = Vec::new();
    let mut replaced = BTreeSet::new();
    for (field, value) in input {
        if !graph.input.contains(&field) {
            return Err(RunError::UnknownInput {
                graph: graph.name.clone(),
                field,
                inputs: graph.input.join(", "),
            });
        }
        let write = Write { field, value };
        crate::state::apply(graph, &mut state, &write, &mut replaced).map_err(|problem| {
            RunError::InvalidInput {
                field: write.field.clone(),
                problem,
            }
        })?;
        writes.push(write);
    }
    let context = check_context(graph, context)?;
    Ok((Checkpoint::new(state, context), writes))
}

/// The context a run gets: the given values (or defaults) of the graph's context fields.
fn check_context(graph: &Graph, context: State) -> Result<State, RunError> {
    if let Some(unknown) = context.keys().find(|name| !graph.context.contains_key(*name)) {
        return Err(RunError::UnknownContext {
            graph: graph.name.clone(),
            field: unknown.clone(),
        });
    }
    let mut checked = State::new();
    for (name, field) in &graph.context {
        let Some(value) = context.get(name).or(field.default_value()) else {
            return Err(RunError::MissingContext {
                graph: graph.name.clone(),
                field: name.clone(),
            });
        };
        if let Some(problem) = crate::state::problem(graph.compiled.context.get(name), value) {
            return Err(RunError::InvalidContext {
                field: name.clone(),
                problem,
            });
        }
        checked.insert(name.clone(), value.clone());
    }
    Ok(checked)
}

/// The outcome for a run that stopped: succeeded, waiting, or failed with `error`.
fn finish(graph: &Graph, checkpoint: Checkpoint, result: Result<(), String>, events: &Events) -> RunOutcome {
    let mut interrupts = checkpoint.interrupts();
    let (status, error) = match result {
        Err(error) => (RunStatus::Failed, Some(error)),
        Ok(()) if !interrupts.is_empty() => (RunStatus::Interrupted, None),
        Ok(()) => (RunStatus::Succeeded, None),
    };
    if status == RunStatus::Failed {
        // A failed run waits for nothing: answering would not continue it.
        interrupts.clear();
    }
    let output = match status {
        RunStatus::Succeeded => graph
            .output
            .iter()
            .filter_map(|field| Some((field.clone(), checkpoint.state.get(field)?.clone())))
            .collect(),
        _ => State::new(),
    };
    if !events.is_nested() {
        if status == RunStatus::Interrupted {
            events.emit(Event::Interrupted {
                interrupts: interrupts.clone(),
            });
        }
        events.emit(Event::RunFinished {
            status,
            error: error.clone(),
        });
    }
    RunOutcome {
        status,
        checkpoint,
        output,
        interrupts,
        error,
    }
}
