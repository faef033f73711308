//! The bodies of `/api/threads` requests and responses.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::runs::{StateView, ThreadView};

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewThread {
    /// The graph the thread runs (a name in `graphs/`), pinned to its current version;
    /// `assistant` when left out.
    pub(crate) graph: Option<String>,
    /// Anything the client wants to find the thread by.
    pub(crate) metadata: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Object)]
pub(crate) struct Thread {
    pub(crate) thread_id: Uuid,
    pub(crate) graph: String,
    /// The version of the graph the thread's runs use.
    pub(crate) graph_version: String,
    pub(crate) metadata: Value,
    /// `idle`, `busy`, `interrupted` or `error`, from its last run.
    pub(crate) status: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<ThreadView> for Thread {
    fn from(view: ThreadView) -> Self {
        Thread {
            thread_id: view.row.id,
            graph: view.row.graph,
            graph_version: view.row.graph_version,
            metadata: view.row.metadata,
            status: view.status.to_owned(),
            created_at: view.row.created_at,
            updated_at: view.row.updated_at,
        }
    }
}

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThreadSearch {
    /// Threads whose metadata contains all of these keys and values.
    pub(crate) metadata: Option<BTreeMap<String, Value>>,
    /// `idle`, `busy`, `interrupted` or `error`.
    pub(crate) status: Option<String>,
    /// At most this many (default 20, at most 100).
    pub(crate) limit: Option<i64>,
    pub(crate) offset: Option<i64>,
}

#[derive(Debug, Object)]
pub(crate) struct ThreadState {
    /// The state's fields.
    pub(crate) values: Value,
    /// The nodes that run next, while a run is open.
    pub(crate) next: Vec<String>,
    /// The questions the thread's run waits for: `[{id, payload}]`.
    pub(crate) interrupts: Value,
    /// The log entry this state follows (0 before any) and the run that wrote it.
    pub(crate) checkpoint: CheckpointRef,
    pub(crate) graph_version: String,
}

#[derive(Debug, Object)]
pub(crate) struct CheckpointRef {
    pub(crate) seq: i64,
    pub(crate) run_id: Option<Uuid>,
}

impl From<StateView> for ThreadState {
    fn from(view: StateView) -> Self {
        ThreadState {
            values: Value::Object(view.values),
            next: view.next,
            interrupts: view.interrupts,
            checkpoint: CheckpointRef {
                seq: view.seq,
                run_id: view.run_id,
            },
            graph_version: view.graph_version,
        }
    }
}

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateUpdate {
    /// Fields to write, each through its reducer (an `append` field takes a list of items).
    pub(crate) values: BTreeMap<String, Value>,
}

/// One entry of a thread's log.
#[derive(Debug, Object)]
pub(crate) struct HistoryEntry {
    pub(crate) seq: i64,
    pub(crate) run_id: Uuid,
    /// The run's step (0 is its input).
    pub(crate) step: i32,
    /// The nodes that ran in it.
    pub(crate) nodes: Vec<String>,
    /// What they wrote: `[{field, value}]` (an `append` field's items are in the state).
    pub(crate) writes: Value,
    pub(crate) graph_version: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
}

/// What to do when the thread already has a run that has not ended.
#[derive(Debug, Clone, Copy, Enum, Deserialize, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub(crate) enum MultitaskStrategy {
    /// 409, and nothing starts.
    #[default]
    Reject,
    /// The run waits for the thread, then runs.
    Enqueue,
    /// The open run is cancelled; what it wrote stays.
    Interrupt,
    /// The open run is cancelled and what it wrote removed.
    Rollback,
}

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRun {
    /// The graph's `input` fields.
    pub(crate) input: Option<BTreeMap<String, Value>>,
    /// The graph's `context` fields; `user_id` is always the caller's.
    pub(crate) context: Option<BTreeMap<String, Value>>,
    /// When the thread has an open run (default `reject`).
    pub(crate) multitask_strategy: Option<MultitaskStrategy>,
    /// For `runs/stream`: `values` (default), `updates`, `messages`, `events`, one or several.
    pub(crate) stream_mode: Option<Vec<String>>,
}

#[derive(Debug, Object)]
pub(crate) struct Run {
    pub(crate) run_id: Uuid,
    pub(crate) thread_id: Uuid,
    /// `pending`, `running`, `interrupted`, `succeeded`, `failed` or `cancelled`.
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) graph_version: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<engine::store::RunRow> for Run {
    fn from(row: engine::store::RunRow) -> Self {
        Run {
            run_id: row.id,
            thread_id: row.thread_id,
            status: row.status,
            error: row.error,
            graph_version: row.graph_version,
            created_at: row.created_at,
        }
    }
}

/// A run that stopped, with the thread's state.
#[derive(Debug, Object)]
pub(crate) struct RunResult {
    pub(crate) run: Run,
    pub(crate) state: ThreadState,
}

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resume {
    /// The answer to the one question the run waits for.
    pub(crate) answer: Option<Value>,
    /// Answers by interrupt id, when it waits for several.
    pub(crate) answers: Option<BTreeMap<String, Value>>,
}
