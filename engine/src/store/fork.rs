//! Forks: a new thread that starts from another one's state at some log entry, with edits.
//!
//! The fork's log begins with one entry (step 0 of a finished run of its own, whose `nodes` is
//! `{fork}`) that writes the whole state as the node `fork`, and a snapshot of it; runs on the
//! fork go on from there, and the thread it came from is not touched.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Store, StoreError, ThreadRow};
use crate::graph::Graph;
use crate::run::State;
use crate::state::Reducer;

/// One edit: a field, or a path inside one (`rows.0.total`), and its new value.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub path: String,
    pub value: Value,
}

impl Store {
    /// A new thread, pinned to `graph`'s version, whose state is `thread`'s after log entry
    /// `at` (the latest when `None`) with `edits` applied; each edited field must still match
    /// its schema.
    pub async fn fork(
        &self,
        graph: &Graph,
        thread: Uuid,
        at: Option<i64>,
        edits: &[Edit],
    ) -> Result<ThreadRow, StoreError> {
        let head = self.head(graph, thread, at).await?;
        let state = edited(graph, head.state, edits)?;
        let fork = Uuid::now_v7();
        let origin = json!({ "forked_from": { "thread": thread, "seq": head.seq } });
        let row = self.create_thread(graph, fork, origin).await?;
        let (mut writes, mut items, mut rest, mut lengths) =
            (Vec::new(), Vec::new(), State::new(), json!({}));
        for (field, value) in &state {
            match (graph.state.get(field).map(|f| f.reducer), value) {
                (Some(Reducer::Append), Value::Array(list)) => {
                    writes.push(json!({ "node": "fork", "field": field, "appended": list.len() }));
                    for (idx, item) in list.iter().enumerate() {
                        items.push(json!({ "field": field, "idx": idx, "value": item }));
                    }
                    lengths[field] = json!(list.len());
                }
                _ => {
                    writes.push(json!({ "node": "fork", "field": field, "value": value }));
                    rest.insert(field.clone(), value.clone());
                }
            }
        }
        sqlx::query(
            "WITH run AS (INSERT INTO runs (id, thread_id, status, graph_version) VALUES ($2, $1, 'succeeded', $7) \
                 RETURNING id), \
             step AS (INSERT INTO steps (thread_id, seq, run_id, step, nodes, writes, position) \
                 SELECT $1, 1, id, 0, '{fork}', $3, '{\"next\": [], \"step\": 0}' FROM run), \
             items AS (INSERT INTO items (thread_id, field, idx, seq, value) \
                 SELECT $1, i.field, i.idx, 1, i.value FROM jsonb_to_recordset($4) AS i(field text, idx integer, value jsonb)) \
             INSERT INTO snapshots (thread_id, seq, state, lengths) VALUES ($1, 1, $5, $6)",
        )
        .bind(fork)
        .bind(Uuid::now_v7())
        .bind(Value::Array(writes))
        .bind(Value::Array(items))
        .bind(Value::Object(rest))
        .bind(lengths)
        .bind(&graph.version)
        .execute(&self.pool)
        .await?;
        Ok(row)
    }
}

/// `state` with `edits` applied, each edited field checked against its schema.
pub(crate) fn edited(graph: &Graph, mut state: State, edits: &[Edit]) -> Result<State, StoreError> {
    for edit in edits {
        let refused = |problem: String| StoreError::Edit {
            path: edit.path.clone(),
            problem,
        };
        let mut parts = edit.path.split('.');
        let field = parts.next().unwrap_or_default().to_owned();
        if !graph.state.contains_key(&field) {
            let fields: Vec<&str> = graph.state.keys().map(String::as_str).collect();
            return Err(refused(format!(
                "`{field}` is not a state field; the fields are {}",
                fields.join(", ")
            )));
        }
        let mut target = state.entry(field.clone()).or_insert(Value::Null);
        for part in parts {
            target = match target {
                Value::Object(map) => map.entry(part.to_owned()).or_insert(Value::Null),
                Value::Array(list) => match part.parse::<usize>().ok().and_then(|i| list.get_mut(i)) {
                    Some(item) => item,
                    None => return Err(refused(format!("`{part}` is not an index of this list"))),
                },
                other => {
                    return Err(refused(format!(
                        "`{part}` cannot be looked up in {}",
                        crate::state::kind(other)
                    )));
                }
            };
        }
        *target = edit.value.clone();
        if let Some(problem) = crate::state::problem(graph.compiled.state.get(&field), &state[&field]) {
            return Err(refused(format!(
                "`{field}` would not match its schema: {problem}"
            )));
        }
    }
    Ok(state)
}

/// The node name of a log entry that a caller wrote to a thread's state directly
/// ([`Worker::update_state`](crate::worker::Worker::update_state)).
pub const UPDATE_NODE: &str = "update_state";

/// Whether a log entry holds state given to the thread rather than made by a run of its graph:
/// the state a fork begins with, or an update by a caller. Replays take it as it is.
pub(crate) fn is_fork_seed(entry: &super::StepEntry) -> bool {
    entry.step == 0 && entry.nodes.len() == 1 && matches!(entry.nodes[0].as_str(), "fork" | UPDATE_NODE)
}
