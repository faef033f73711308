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
mod scope;
mod task;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, join_all};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use checkpoint::{Checkpoint, Interrupt, State, Waiting, Write};
pub use event::{Event, Events};
pub use task::Answers;
pub(crate) use task::{NodeError, Resume, RunCx, run_node};

use crate::graph::{Edge, Endpoint, Graph, Next, NodeId};
use crate::llm::LlmClient;
use scope::Scope;

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
    pub(crate) clock: Clock,
}

impl Engine {
    pub fn new(llm: Arc<dyn LlmClient>) -> Engine {
        Engine {
            llm,
            db: None,
            clock: Clock::System,
        }
    }

    /// The database `sql` nodes use.
    pub fn with_database(mut self, pool: sqlx::PgPool) -> Engine {
        self.db = Some(pool);
        self
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
        let checkpoint = begin(graph, input, context)?;
        if !events.is_nested() {
            events.emit(Event::RunStarted {
                graph: graph.name.clone(),
            });
        }
        Ok(self.drive(graph, checkpoint, Answers::new(), events).await)
    }

    /// Continues an interrupted run with answers, keyed by interrupt id.
    pub async fn resume(
        &self,
        graph: &Graph,
        checkpoint: Checkpoint,
        answers: Answers,
        events: &Events,
    ) -> Result<RunOutcome, RunError> {
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
        for (id, answer) in &answers {
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
        Ok(self.drive(graph, checkpoint, answers, events).await)
    }

    /// Steps until the run ends or pauses. Boxed: subgraph nodes drive runs of their own.
    pub(crate) fn drive<'a>(
        &'a self,
        graph: &'a Graph,
        mut checkpoint: Checkpoint,
        mut answers: Answers,
        events: &'a Events,
    ) -> BoxFuture<'a, RunOutcome> {
        Box::pin(async move {
            if checkpoint.step == 0
                && checkpoint.next.is_empty()
                && checkpoint.visits.is_empty()
                && let Err(error) = route_from(graph, &mut checkpoint, &[NodeIdOrStart::Start], events)
            {
                return finish(graph, checkpoint, Err(error), events);
            }
            loop {
                if checkpoint.next.is_empty() {
                    return finish(graph, checkpoint, Ok(()), events);
                }
                if checkpoint.step >= graph.max_steps {
                    let nodes: Vec<String> = checkpoint
                        .next
                        .iter()
                        .map(|id| events.path(id.as_str()))
                        .collect();
                    let error = format!(
                        "the run reached `max_steps` ({}) with `{}` still to run",
                        graph.max_steps,
                        nodes.join("`, `")
                    );
                    return finish(graph, checkpoint, Err(error), events);
                }
                match self.step(graph, &mut checkpoint, &mut answers, events).await {
                    Ok(StepEnd::Merged) => {}
                    Ok(StepEnd::Waiting) => return finish(graph, checkpoint, Ok(()), events),
                    Err(error) => return finish(graph, checkpoint, Err(error), events),
                }
            }
        })
    }

    /// Runs the nodes of `checkpoint.next`, then merges and routes when none waits.
    async fn step(
        &self,
        graph: &Graph,
        checkpoint: &mut Checkpoint,
        answers: &mut Answers,
        events: &Events,
    ) -> Result<StepEnd, String> {
        let step = checkpoint.step + 1;
        let snapshot = Arc::new(checkpoint.state.clone());
        let scope = Scope::new(snapshot, &checkpoint.context);
        let mut tasks = Vec::new();
        for id in &checkpoint.next {
            if checkpoint.finished.contains_key(id) {
                continue;
            }
            let resume = match checkpoint.waiting.get(id) {
                None => Resume::Fresh,
                Some(waiting) => match resume_for(events.path(id.as_str()), waiting, answers) {
                    Some(resume) => resume,
                    None => continue, // still no answer: it keeps waiting
                },
            };
            let cx = RunCx {
                engine: self,
                graph,
                id,
                path: events.path(id.as_str()),
                step,
                scope: scope.clone(),
                events,
                resume,
                timeout: None,
            };
            tasks.push(task::run_task(cx, &graph.nodes[id]));
        }
        let mut failures = Vec::new();
        for (id, result) in join_all(tasks).await {
            checkpoint.waiting.remove(&id);
            match result {
                Ok(writes) => {
                    checkpoint.finished.insert(id, writes);
                }
                Err(NodeError::Wait(waiting)) => {
                    checkpoint.waiting.insert(id, waiting);
                }
                Err(NodeError::Failed { message, .. }) => {
                    failures.push(format!("node `{}` failed: {message}", events.path(id.as_str())))
                }
            }
        }
        answers.clear();
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
        if !checkpoint.waiting.is_empty() {
            return Ok(StepEnd::Waiting);
        }
        self.merge(graph, checkpoint, step, events)?;
        Ok(StepEnd::Merged)
    }

    /// Merges the finished nodes' writes, in graph order, then routes to the next step.
    fn merge(
        &self,
        graph: &Graph,
        checkpoint: &mut Checkpoint,
        step: u32,
        events: &Events,
    ) -> Result<(), String> {
        let ran: Vec<NodeId> = graph
            .nodes
            .keys()
            .filter(|id| checkpoint.finished.contains_key(*id))
            .cloned()
            .collect();
        let mut replaced = BTreeSet::new();
        for id in &ran {
            for write in &checkpoint.finished[id] {
                crate::state::apply(graph, &mut checkpoint.state, write, &mut replaced)
                    .map_err(|problem| format!("node `{}` {problem}", events.path(id.as_str())))?;
            }
        }
        checkpoint.finished.clear();
        checkpoint.step = step;
        let sources: Vec<NodeIdOrStart> = ran.iter().cloned().map(NodeIdOrStart::Node).collect();
        checkpoint.next.clear();
        route_from(graph, checkpoint, &sources, events)?;
        if !events.is_nested() {
            events.emit(Event::StepFinished {
                step,
                nodes: ran.iter().map(ToString::to_string).collect(),
                state: checkpoint.state.clone(),
            });
        }
        Ok(())
    }
}

enum StepEnd {
    Merged,
    Waiting,
}

#[derive(Clone)]
enum NodeIdOrStart {
    Start,
    Node(NodeId),
}

/// How to continue a waiting node with the answers given, or `None` if it still waits.
fn resume_for(path: String, waiting: &Waiting, answers: &Answers) -> Option<Resume> {
    match waiting {
        Waiting::Interrupt { .. } => answers.get(&path).cloned().map(Resume::Answer),
        Waiting::Subgraph { checkpoint } => {
            let prefix = format!("{path}/");
            let inner: Answers = answers
                .iter()
                .filter(|(id, _)| id.starts_with(&prefix))
                .map(|(id, value)| (id.clone(), value.clone()))
                .collect();
            (!inner.is_empty()).then(|| Resume::Child {
                checkpoint: checkpoint.clone(),
                answers: inner,
            })
        }
    }
}

/// Sets `checkpoint.next` from the edges out of `sources`, evaluated on the current state.
fn route_from(
    graph: &Graph,
    checkpoint: &mut Checkpoint,
    sources: &[NodeIdOrStart],
    events: &Events,
) -> Result<(), String> {
    let mut targets: BTreeSet<NodeId> = BTreeSet::new();
    let scope = Scope::new(Arc::new(checkpoint.state.clone()), &checkpoint.context);
    for (index, edge) in graph.edges.iter().enumerate() {
        for source in sources {
            let endpoint = match source {
                NodeIdOrStart::Start => Endpoint::Start,
                NodeIdOrStart::Node(id) => Endpoint::Node(id.clone()),
            };
            if !edge.from.contains(&endpoint) {
                continue;
            }
            if edge.from.len() > 1 {
                let NodeIdOrStart::Node(id) = source else { continue };
                checkpoint.joins.insert((index, id.clone()));
                if !edge.from.iter().all(|from| matches!(from, Endpoint::Node(f) if checkpoint.joins.contains(&(index, f.clone())))) {
                    continue;
                }
                checkpoint.joins.retain(|(edge_index, _)| *edge_index != index);
            }
            for target in next_of(graph, edge, &scope, events)? {
                if let Endpoint::Node(id) = target {
                    targets.insert(id.clone());
                }
            }
        }
    }
    let next: Vec<NodeId> = graph
        .nodes
        .keys()
        .filter(|id| targets.contains(*id))
        .cloned()
        .collect();
    for id in &next {
        let visits = checkpoint.visits.entry(id.clone()).or_insert(0);
        *visits += 1;
        let node = &graph.nodes[id];
        if let Some(limit) = &node.common.max_visits
            && *visits > limit.value
        {
            let cycle = crate::graph::cycle_through(graph, id).unwrap_or_else(|| id.to_string());
            return Err(format!(
                "node `{}` would run more than its `max_visits` ({}): the loop `{cycle}` did not end",
                events.path(id.as_str()),
                limit.value
            ));
        }
    }
    checkpoint.next = next;
    Ok(())
}

/// Where an edge leads on this state: all its targets, or the first matching route's.
fn next_of<'g>(
    graph: &'g Graph,
    edge: &'g Edge,
    scope: &Scope,
    events: &Events,
) -> Result<&'g [Endpoint], String> {
    match &edge.next {
        Next::Static(targets) => Ok(targets),
        Next::Routes(routes) => {
            for case in &routes.cases {
                let holds = scope.eval(&graph.compiled.templates, &case.when).map_err(|err| {
                    format!(
                        "route `{}` from `{}`: {err}",
                        case.when.value,
                        describe(&edge.from, events)
                    )
                })?;
                if truthy(&holds) {
                    return Ok(&case.to);
                }
            }
            Ok(&routes.default)
        }
    }
}

fn describe(endpoints: &[Endpoint], events: &Events) -> String {
    let paths: Vec<String> = endpoints
        .iter()
        .map(|endpoint| events.path(&endpoint.to_string()))
        .collect();
    paths.join("`, `")
}

/// Jinja truthiness for JSON: false, null, 0, "" and empty collections are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// Validates input and context, applies defaults: the checkpoint a run starts from.
pub(crate) fn begin(graph: &Graph, input: State, context: State) -> Result<Checkpoint, RunError> {
    let mut state = State::new();
    for (name, field) in &graph.state {
        if let Some(default) = field.default_value() {
            state.insert(name.clone(), default.clone());
        }
    }
    for (field, value) in input {
        if !graph.input.contains(&field) {
            return Err(RunError::UnknownInput {
                graph: graph.name.clone(),
                field,
                inputs: graph.input.join(", "),
            });
        }
        if let Some(problem) = crate::state::problem(graph.compiled.state.get(&field), &value) {
            return Err(RunError::InvalidInput { field, problem });
        }
        state.insert(field, value);
    }
    if let Some(unknown) = context.keys().find(|name| !graph.context.contains_key(*name)) {
        return Err(RunError::UnknownContext {
            graph: graph.name.clone(),
            field: unknown.clone(),
        });
    }
    let mut checked_context = State::new();
    for (name, field) in &graph.context {
        let value = match context.get(name).or(field.default_value()) {
            Some(value) => value.clone(),
            None => {
                return Err(RunError::MissingContext {
                    graph: graph.name.clone(),
                    field: name.clone(),
                });
            }
        };
        if let Some(problem) = crate::state::problem(graph.compiled.context.get(name), &value) {
            return Err(RunError::InvalidContext {
                field: name.clone(),
                problem,
            });
        }
        checked_context.insert(name.clone(), value);
    }
    Ok(Checkpoint::new(state, checked_context))
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
