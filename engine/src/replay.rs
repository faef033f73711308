//! Replaying a thread from its log without calling anything: each run again, from the state
//! its first log entry recorded, with the recorded model replies and the recorded results of
//! the nodes that reach outside the graph (`sql`, the `now` tool), every step compared with
//! the one recorded. The first difference — log entry, node, field — is what a replay
//! reports, so a replay is a regression check: does this engine, with this graph, still do
//! what it did?
//!
//! A run that paused at an interrupt is resumed with the answers its log kept, and the nodes
//! inside subgraphs and maps that reach outside get the writes kept with their step.
//! `recorded.rs` serves the recorded replies as a model; `what_if.rs` runs a thread's inputs
//! again, with another graph or other models, in a fork.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::graph::Graph;
use crate::run::{
    Answers, Checkpoint, Clock, Engine, Events, Journal, Position, Recorded, RunStatus, State, StepRecord,
    StepTransaction, Write,
};
use crate::store::{StepEntry, Store, StoreError, is_fork_seed};

mod recorded;
mod what_if;

pub use recorded::OnlyLive;
use recorded::RecordedModels;
pub use what_if::{WhatIf, WhatIfError, what_if};

/// Where a replay first differed from the recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    pub run: Uuid,
    /// The log entry the replayed step should have matched.
    pub seq: i64,
    /// That entry's step in its run.
    pub step: i32,
    /// The node to blame, when there is one.
    pub node: Option<String>,
    /// The state field whose write differs, when one does.
    pub field: Option<String>,
    pub message: String,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Replayed {
    /// Every step of every run came out as recorded.
    Same {
        runs: usize,
        steps: usize,
    },
    Diverged(Divergence),
}

/// Why a thread could not be replayed at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "thread `{thread}` was compacted: its log starts at entry {first}, and the runs before it cannot be replayed"
    )]
    Compacted { thread: Uuid, first: i64 },
    #[error("graph version `{version}` no longer loads:\n{diagnostics}")]
    Version { version: String, diagnostics: String },
    #[error("run `{run}` cannot be replayed: {reason}")]
    Unsupported { run: Uuid, reason: String },
}

/// Replays every run of `thread`, each with the graph version it ran — or, with `graph`, with
/// that graph instead, to see whether it would have done the same.
///
/// With `from`, only what follows log entry `from` is replayed: the run it is part of from
/// there (from the state and position recorded at it), and the runs after.
pub async fn check(
    store: &Store,
    thread: Uuid,
    graph: Option<&Graph>,
    from: Option<i64>,
) -> Result<Replayed, ReplayError> {
    let entries = store.history(thread).await?;
    if let Some(first) = entries.first()
        && first.seq != 1
    {
        return Err(ReplayError::Compacted {
            thread,
            first: first.seq,
        });
    }
    let items = store.items(thread).await?;
    let current = store.thread(thread).await?.graph_version;
    let runs: HashMap<Uuid, (Value, String)> = store
        .runs(thread)
        .await?
        .into_iter()
        .map(|run| {
            (
                run.id,
                (run.context, run.graph_version.unwrap_or_else(|| current.clone())),
            )
        })
        .collect();
    let mut versions: HashMap<String, Arc<Graph>> = HashMap::new();
    let (mut replayed, mut steps) = (0, 0);
    for run in split_by_run(&entries) {
        if is_fork_seed(&run[0]) {
            continue; // the state a fork began with: no run of the graph to replay
        }
        // With `from`: skip what came before it, and start a run that holds it there.
        let start = from.map_or(0, |from| {
            run.iter()
                .take_while(|entry| entry.seq <= from)
                .count()
                .saturating_sub(1)
        });
        if from.is_some_and(|from| run.last().is_some_and(|last| last.seq <= from)) {
            continue;
        }
        let run = &run[start..];
        let (context, version) = runs
            .get(&run[0].run_id)
            .cloned()
            .unwrap_or((Value::Null, current.clone()));
        let context = match context {
            Value::Object(context) => context,
            _ => State::new(),
        };
        let graph = match graph {
            Some(graph) => graph,
            None => {
                if !versions.contains_key(&version) {
                    let loaded = version_graph(store, &version).await?;
                    versions.insert(version.clone(), Arc::new(loaded));
                }
                &versions[&version]
            }
        };
        if let Some(divergence) = replay_run(store, graph, thread, run, context, &items).await? {
            return Ok(Replayed::Diverged(divergence));
        }
        replayed += 1;
        steps += run.len() - 1;
    }
    Ok(Replayed::Same {
        runs: replayed,
        steps,
    })
}

/// A stored graph version, loaded.
async fn version_graph(store: &Store, version: &str) -> Result<Graph, ReplayError> {
    let files = Arc::new(store.version_files(version).await?);
    crate::graph::load_source(files.clone(), &files.graph, &Default::default()).map_err(|diagnostics| {
        ReplayError::Version {
            version: version.to_owned(),
            diagnostics: crate::diagnostic::render(&diagnostics),
        }
    })
}

/// The log entries of each run, in order.
fn split_by_run(entries: &[StepEntry]) -> Vec<&[StepEntry]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for end in 1..=entries.len() {
        if end == entries.len() || entries[end].run_id != entries[start].run_id {
            runs.push(&entries[start..end]);
            start = end;
        }
    }
    runs
}

/// Replays one run from its input entry (step 0); `Some` at the first difference.
async fn replay_run(
    store: &Store,
    graph: &Graph,
    thread: Uuid,
    run: &[StepEntry],
    context: State,
    items: &BTreeMap<i64, Vec<(String, Value)>>,
) -> Result<Option<Divergence>, ReplayError> {
    // `input` is where the replay starts: the run's input, or a later entry of it.
    let (input, steps) = (&run[0], &run[1..]);
    let unsupported = |reason: &str| ReplayError::Unsupported {
        run: input.run_id,
        reason: reason.to_owned(),
    };
    let head = store.head(graph, thread, Some(input.seq)).await?;
    let position: Position = serde_json::from_value(input.position.clone())
        .map_err(|err| unsupported(&format!("its entry {} cannot be read: {err}", input.seq)))?;
    let paused = !position.waiting.is_empty();
    let checkpoint = Checkpoint::from_parts(head.state, context, position);

    let mut recorded = Recorded::default();
    for entry in steps {
        for (node, write) in logged_writes(entry, items) {
            recorded
                .steps
                .entry((entry.step as u32, node))
                .or_default()
                .push(write);
        }
        let mut nested = recorded.nested.lock().expect("recorded lock");
        for effect in entry.effects.iter().filter_map(Value::as_array).flatten() {
            let writes: Vec<Write> = serde_json::from_value(effect["writes"].clone()).unwrap_or_default();
            let node = effect["node"].as_str().unwrap_or_default().to_owned();
            nested.entry(node).or_default().push_back(writes);
        }
    }
    let models = Arc::new(RecordedModels::new(steps));
    let engine = Engine {
        llm: models.clone(),
        db: None,
        sandbox: None,
        host_tools: Vec::new(),
        clock: Clock::System,
        recorded: Some(Arc::new(recorded)),
    };
    let verifier = Verifier {
        steps,
        items,
        next: Mutex::new(0),
        divergence: Mutex::new(None),
    };
    // Starting at a pause: the next entry took the answers it was resumed with.
    let answers = match steps.first().and_then(|entry| entry.answers.as_ref()) {
        Some(Value::Object(given)) if paused => given.clone().into_iter().collect(),
        _ => Answers::new(),
    };
    let (mut checkpoint, mut answers) = (checkpoint, answers);
    let outcome = loop {
        let outcome = engine
            .run_journaled(graph, checkpoint, answers, &Events::none(), &verifier)
            .await
            .map_err(|err| unsupported(&err.to_string()))?;
        let next = *verifier.next.lock().expect("replay lock");
        let resumed = steps.get(next).and_then(|entry| entry.answers.as_ref());
        match (outcome.status, resumed) {
            // The recording went on after the pause: resume with the answers it was given.
            (RunStatus::Interrupted, Some(Value::Object(given))) => {
                answers = given.clone().into_iter().collect();
                checkpoint = outcome.checkpoint;
            }
            _ => break outcome,
        }
    };
    let next = *verifier.next.lock().expect("replay lock");
    let at = |index: usize| steps.get(index).or(steps.last()).unwrap_or(input);
    let divergence = |node: Option<String>, field: Option<String>, message: String| {
        let entry = at(next);
        Divergence {
            run: input.run_id,
            seq: entry.seq,
            step: entry.step,
            node,
            field,
            message,
        }
    };
    if let Some((node, message)) = models.mismatch.lock().expect("replay lock").take() {
        return Ok(Some(divergence(Some(node), None, message)));
    }
    if let Some(found) = verifier.divergence.lock().expect("replay lock").take() {
        return Ok(Some(found));
    }
    match outcome.status {
        RunStatus::Failed => Ok(Some(divergence(
            None,
            None,
            format!("the replay failed: {}", outcome.error.unwrap_or_default()),
        ))),
        RunStatus::Interrupted if next < steps.len() => Err(unsupported(
            "it was resumed after an interrupt before answers were kept in the log",
        )),
        _ if next < steps.len() => Ok(Some(divergence(
            None,
            None,
            format!(
                "the replay ended after {next} steps; the recording has {}",
                steps.len()
            ),
        ))),
        _ => Ok(None),
    }
}

/// A log entry's writes with their values: an `append` write's items are taken from
/// `items`, in order.
fn logged_writes(entry: &StepEntry, items: &BTreeMap<i64, Vec<(String, Value)>>) -> Vec<(String, Write)> {
    let mut appended: HashMap<&str, VecDeque<&Value>> = HashMap::new();
    for (field, value) in items.get(&entry.seq).into_iter().flatten() {
        appended.entry(field.as_str()).or_default().push_back(value);
    }
    let mut writes = Vec::new();
    for logged in entry.writes.as_array().into_iter().flatten() {
        let node = logged["node"].as_str().unwrap_or_default().to_owned();
        let field = logged["field"].as_str().unwrap_or_default();
        let value = match logged.get("value") {
            Some(value) => value.clone(),
            None => {
                let count = logged["appended"].as_u64().unwrap_or(0) as usize;
                let queue = appended.entry(field).or_default();
                let taken = (0..count).filter_map(|_| queue.pop_front().cloned());
                Value::Array(taken.collect())
            }
        };
        let field = field.to_owned();
        writes.push((node, Write { field, value }));
    }
    writes
}

/// Compares each step the replay makes with the next one recorded.
struct Verifier<'a> {
    steps: &'a [StepEntry],
    items: &'a BTreeMap<i64, Vec<(String, Value)>>,
    next: Mutex<usize>,
    divergence: Mutex<Option<Divergence>>,
}

impl Verifier<'_> {
    /// The first difference between a replayed step and a recorded one.
    fn compare(&self, entry: &StepEntry, record: &StepRecord<'_>) -> Option<Divergence> {
        let differ = |node: Option<String>, field: Option<String>, message: String| Divergence {
            run: entry.run_id,
            seq: entry.seq,
            step: entry.step,
            node,
            field,
            message,
        };
        if record.nodes != entry.nodes {
            return Some(differ(
                None,
                None,
                format!("step ran {:?}; the recording ran {:?}", record.nodes, entry.nodes),
            ));
        }
        let recorded = logged_writes(entry, self.items);
        for index in 0..recorded.len().max(record.writes.len()) {
            match (record.writes.get(index), recorded.get(index)) {
                (Some((node, replayed)), Some((_, write))) if replayed == write => {}
                (Some((node, replayed)), Some((_, write))) if replayed.field == write.field => {
                    return Some(differ(
                        Some(node.clone()),
                        Some(write.field.clone()),
                        format!("wrote {}; the recording has {}", replayed.value, write.value),
                    ));
                }
                (Some((node, replayed)), _) => {
                    return Some(differ(
                        Some(node.clone()),
                        Some(replayed.field.clone()),
                        format!(
                            "wrote `{}`, which the recording does not have here",
                            replayed.field
                        ),
                    ));
                }
                (None, Some((node, write))) => {
                    return Some(differ(
                        Some(node.clone()),
                        Some(write.field.clone()),
                        "did not write it; the recording did".to_owned(),
                    ));
                }
                (None, None) => {}
            }
        }
        let position = serde_json::to_value(record.checkpoint.position()).unwrap_or(Value::Null);
        if position != entry.position {
            return Some(differ(
                None,
                None,
                format!(
                    "the run stands at {position}; the recording at {}",
                    entry.position
                ),
            ));
        }
        None
    }
}

impl Journal for Verifier<'_> {
    fn commit<'a>(
        &'a self,
        _transaction: Option<StepTransaction>,
        record: StepRecord<'a>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut next = self.next.lock().expect("replay lock");
            let found = match self.steps.get(*next) {
                Some(entry) => self.compare(entry, &record),
                None => Some(Divergence {
                    run: self.steps.last().map(|e| e.run_id).unwrap_or_default(),
                    seq: self.steps.last().map_or(0, |e| e.seq),
                    step: record.step as i32,
                    node: None,
                    field: None,
                    message: format!("the replay went on to step {}; the recording ended", record.step),
                }),
            };
            if let Some(found) = found {
                *self.divergence.lock().expect("replay lock") = Some(found);
                return Err("the replay differs from the recording".to_owned());
            }
            *next += 1;
            Ok(())
        })
    }

    fn fail<'a>(&'a self, _checkpoint: &'a Checkpoint, _error: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}
