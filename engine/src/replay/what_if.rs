//! What-if replays: a thread's recorded runs again, with another graph or other models, in a
//! fork of it.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{ReplayError, logged_writes, split_by_run, version_graph};
use crate::graph::Graph;
use crate::run::{Events, RunStatus, State};
use crate::store::{StoreError, is_fork_seed};

/// What a what-if replay made: the new thread, and how many runs went into it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    pub fork: Uuid,
    pub runs: usize,
}

/// Why a what-if replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum WhatIfError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error(
        "graph `{graph}` has the `sql` write node `{node}`: a what-if replay would apply its writes again, which it does not do"
    )]
    Writes { graph: String, node: String },
    #[error("run `{run}` of the fork ended {status}: {error}")]
    Run {
        run: Uuid,
        status: &'static str,
        error: String,
    },
}

impl From<StoreError> for WhatIfError {
    fn from(err: StoreError) -> WhatIfError {
        WhatIfError::Replay(ReplayError::Store(err))
    }
}

/// Runs again, with `graph` and `worker`'s models, every run of `thread` that started after log
/// entry `from`, each with its recorded input, context and answers, in a new thread forked at
/// `from` and pinned to `graph`. The original thread is not touched; `sql` reads run against
/// the database as it is now, and a graph with `sql` writes is refused.
pub async fn what_if(
    worker: &crate::worker::Worker,
    thread: Uuid,
    from: i64,
    graph: &Graph,
) -> Result<WhatIf, WhatIfError> {
    if let Some((graph, node)) = sql_writer(graph) {
        return Err(WhatIfError::Writes { graph, node });
    }
    let store = worker.store();
    let entries = store.history(thread).await?;
    let items = store.items(thread).await?;
    let runs: HashMap<Uuid, Value> = store
        .runs(thread)
        .await?
        .into_iter()
        .map(|run| (run.id, run.context))
        .collect();
    // A fork's first entry is the state it began with, not a run: start from it at least.
    let from = match entries.first() {
        Some(first) if is_fork_seed(first) => from.max(first.seq),
        _ => from,
    };
    // The state at `from` is read with the thread's own version; the fork then moves to `graph`.
    let version = store.thread(thread).await?.graph_version;
    let own = version_graph(store, &version).await?;
    let fork = store.fork(&own, thread, Some(from), &[]).await?;
    store.pin(fork.id, graph).await?;
    let mut count = 0;
    for run in split_by_run(&entries) {
        let input_entry = &run[0];
        if input_entry.seq <= from || input_entry.step != 0 || is_fork_seed(input_entry) {
            continue;
        }
        let input: State = logged_writes(input_entry, &items)
            .into_iter()
            .map(|(_, write)| (write.field, write.value))
            .collect();
        let context = match runs.get(&input_entry.run_id) {
            Some(Value::Object(context)) => context.clone(),
            _ => State::new(),
        };
        let mut ran = worker
            .start(
                fork.id,
                input,
                context,
                crate::store::StartMode::Reject,
                &Events::none(),
            )
            .await?;
        // A run that paused is resumed with the answers the recording gave it, in order.
        let mut answers = run.iter().filter_map(|entry| entry.answers.clone());
        loop {
            let crate::worker::Ran::Ran { run: id, outcome } = ran else {
                unreachable!("a fork has no other run to queue behind")
            };
            match (outcome.status, answers.next()) {
                (RunStatus::Interrupted, Some(Value::Object(given))) => {
                    ran = worker
                        .resume(id, given.into_iter().collect(), &Events::none())
                        .await?;
                }
                (RunStatus::Succeeded, _) => break,
                (status, _) => {
                    return Err(WhatIfError::Run {
                        run: id,
                        status: status.name(),
                        error: outcome.error.unwrap_or_else(|| {
                            "it waits for an answer the recording does not have".to_owned()
                        }),
                    });
                }
            }
        }
        count += 1;
    }
    Ok(WhatIf {
        fork: fork.id,
        runs: count,
    })
}

/// A `sql` node that writes, in `graph`, a `map` of it, or a subgraph of it: its graph and id.
fn sql_writer(graph: &Graph) -> Option<(String, String)> {
    use crate::nodes::Node;
    let own = graph.nodes.values().find(|def| match &def.node {
        Node::Map(map) => map.node.node.writes_outside(),
        node => node.writes_outside(),
    });
    match own {
        Some(def) => Some((graph.name.clone(), def.id.to_string())),
        None => graph.subgraphs.values().find_map(|sub| sql_writer(sub)),
    }
}
