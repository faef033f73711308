//! One step: run the chosen nodes concurrently, merge their writes in graph order, route.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::join_all;
use serde_json::Value;

use super::checkpoint::{Checkpoint, State, Waiting, Write};
use super::event::Events;
use super::journal::StepShared;
use super::scope::Scope;
use super::task::{self, Answers, NodeError, Resume, RunCx};
use super::{Drive, Engine, StepEnd, StepOutcome};
use crate::graph::{Edge, Endpoint, Graph, Next, NodeId};

impl Engine {
    /// Runs the nodes of `checkpoint.next` (those not finished yet, and the waiting ones that
    /// got an answer), then merges and routes unless one still waits.
    pub(super) async fn step(
        &self,
        graph: &Graph,
        checkpoint: &mut Checkpoint,
        answers: &mut Answers,
        drive: &Drive<'_>,
        shared: &Arc<StepShared>,
    ) -> Result<StepOutcome, String> {
        let events = drive.events;
        let step = checkpoint.step + 1;
        let lent = lend(&mut checkpoint.state);
        let scope = Scope::new(lent.clone(), &checkpoint.context);
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
                shared: shared.clone(),
            };
            tasks.push(task::run_task(cx, &graph.nodes[id]));
        }
        let results = join_all(tasks).await;
        drop(scope);
        take_back(&mut checkpoint.state, lent);
        let mut failures = Vec::new();
        for (id, result) in results {
            checkpoint.waiting.remove(&id);
            match result {
                Ok(writes) => {
                    checkpoint.finished.insert(id, writes);
                }
                Err(NodeError::Wait(waiting)) => {
                    checkpoint.waiting.insert(id, waiting);
                }
                Err(NodeError::Failed { message, .. }) => {
                    failures.push(format!("node `{}` failed: {message}", events.path(id.as_str())));
                }
            }
        }
        answers.clear();
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
        let finished: Vec<NodeId> = graph
            .nodes
            .keys()
            .filter(|id| checkpoint.finished.contains_key(*id))
            .cloned()
            .collect();
        let nodes = finished.iter().map(ToString::to_string).collect();
        if !checkpoint.waiting.is_empty() {
            let end = StepEnd::Waiting;
            return Ok(StepOutcome {
                end,
                step,
                nodes,
                writes: Vec::new(),
            });
        }
        let writes = merge(graph, checkpoint, &finished, events)?;
        checkpoint.step = step;
        let sources: Vec<Endpoint> = finished.into_iter().map(Endpoint::Node).collect();
        route(graph, checkpoint, &sources, events)?;
        Ok(StepOutcome {
            end: StepEnd::Merged,
            step,
            nodes,
            writes,
        })
    }
}

/// Merges the finished nodes' writes into the state, in graph order; returns them in that
/// order, each with its node's path.
fn merge(
    graph: &Graph,
    checkpoint: &mut Checkpoint,
    finished: &[NodeId],
    events: &Events,
) -> Result<Vec<(String, Write)>, String> {
    let mut replaced = BTreeSet::new();
    let mut merged = Vec::new();
    for id in finished {
        let path = events.path(id.as_str());
        for write in checkpoint.finished.remove(id).unwrap_or_default() {
            crate::state::apply(graph, &mut checkpoint.state, &write, &mut replaced)
                .map_err(|problem| format!("node `{path}` {problem}"))?;
            merged.push((path.clone(), write));
        }
    }
    Ok(merged)
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
                .map(|(id, v)| (id.clone(), v.clone()))
                .collect();
            (!inner.is_empty()).then(|| Resume::Child {
                checkpoint: checkpoint.clone(),
                answers: inner,
            })
        }
    }
}

/// The first step's nodes: the edges out of `START`.
pub(super) fn route_start(graph: &Graph, checkpoint: &mut Checkpoint, events: &Events) -> Result<(), String> {
    route(graph, checkpoint, &[Endpoint::Start], events)
}

/// Sets `checkpoint.next` from the edges out of `sources`, evaluated on the current state,
/// and counts the visits (a node beyond its `max_visits` ends the run).
fn route(
    graph: &Graph,
    checkpoint: &mut Checkpoint,
    sources: &[Endpoint],
    events: &Events,
) -> Result<(), String> {
    let lent = lend(&mut checkpoint.state);
    let scope = Scope::new(lent.clone(), &checkpoint.context);
    let mut targets = || -> Result<BTreeSet<NodeId>, String> {
        let mut targets = BTreeSet::new();
        for (index, edge) in graph.edges.iter().enumerate() {
            for source in sources.iter().filter(|source| edge.from.contains(source)) {
                if edge.from.len() > 1 && !join_complete(checkpoint, index, edge, source) {
                    continue;
                }
                for target in next_of(graph, edge, &scope, events)? {
                    if let Endpoint::Node(id) = target {
                        targets.insert(id.clone());
                    }
                }
            }
        }
        Ok(targets)
    };
    let targets = targets();
    drop(scope);
    take_back(&mut checkpoint.state, lent);
    let targets = targets?;
    let next: Vec<NodeId> = graph
        .nodes
        .keys()
        .filter(|id| targets.contains(*id))
        .cloned()
        .collect();
    // Only bounded nodes are counted: the count is in every checkpoint.
    for id in &next {
        let Some(limit) = &graph.nodes[id].common.max_visits else {
            continue;
        };
        let visits = checkpoint.visits.entry(id.clone()).or_insert(0);
        *visits += 1;
        if *visits > limit.value {
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

/// Records that `source` finished for the join `edge`; whether all its sources now have.
fn join_complete(checkpoint: &mut Checkpoint, index: usize, edge: &Edge, source: &Endpoint) -> bool {
    let Endpoint::Node(id) = source else { return false };
    checkpoint.joins.insert((index, id.clone()));
    let complete = edge
        .from
        .iter()
        .all(|from| matches!(from, Endpoint::Node(f) if checkpoint.joins.contains(&(index, f.clone()))));
    if complete {
        checkpoint.joins.retain(|(edge_index, _)| *edge_index != index);
    }
    complete
}

/// Where an edge leads on this state: all its targets, or the first matching route's.
fn next_of<'g>(
    graph: &'g Graph,
    edge: &'g Edge,
    scope: &Scope,
    events: &Events,
) -> Result<&'g [Endpoint], String> {
    let routes = match &edge.next {
        Next::Static(targets) => return Ok(targets),
        Next::Routes(routes) => routes,
    };
    for case in &routes.cases {
        let holds = scope.eval(&graph.compiled.templates, &case.when).map_err(|err| {
            let from: Vec<String> = edge.from.iter().map(|e| events.path(&e.to_string())).collect();
            format!("route `{}` from `{}`: {err}", case.when.value, from.join("`, `"))
        })?;
        if truthy(&holds) {
            return Ok(&case.to);
        }
    }
    Ok(&routes.default)
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

/// The state, moved into an `Arc` for the scope of a step or a routing, instead of copied.
fn lend(state: &mut State) -> Arc<State> {
    Arc::new(std::mem::take(state))
}

/// The state back from [`lend`], copied only if something still holds it.
fn take_back(state: &mut State, lent: Arc<State>) {
    *state = Arc::try_unwrap(lent).unwrap_or_else(|shared| (*shared).clone());
}
