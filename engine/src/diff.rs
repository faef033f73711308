//! What differs between two states of threads — two log entries of one thread, or a thread and
//! its fork — field by field, as JSON Patches (RFC 6902), each with the log entry and node that
//! last wrote the field on the second side.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::graph::Graph;
use crate::store::{Store, StoreError};

/// A thread, and a log entry of it (the latest when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    pub thread: Uuid,
    pub at: Option<i64>,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    /// From the first side's value to the second's.
    pub patch: json_patch::Patch,
    /// Who wrote the second side's value.
    pub written_by: Option<Writer>,
}

/// A log entry, and the node in it that wrote a field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Writer {
    pub seq: i64,
    pub step: i32,
    pub node: String,
}

/// Every field whose value differs between `a` (read with `graph_a`) and `b` (with `graph_b`),
/// in field order.
pub async fn diff(
    store: &Store,
    (a, graph_a): (Side, &Graph),
    (b, graph_b): (Side, &Graph),
) -> Result<Vec<FieldChange>, StoreError> {
    let left = store.head(graph_a, a.thread, a.at).await?;
    let right = store.head(graph_b, b.thread, b.at).await?;
    let history = store.history(b.thread).await?;
    let mut fields: Vec<&String> = left.state.keys().chain(right.state.keys()).collect();
    fields.sort();
    fields.dedup();
    let mut changes = Vec::new();
    for field in fields {
        let (before, after) = (
            left.state.get(field).unwrap_or(&Value::Null),
            right.state.get(field).unwrap_or(&Value::Null),
        );
        if before == after {
            continue;
        }
        let written_by = history
            .iter()
            .rev()
            .filter(|entry| entry.seq <= right.seq)
            .find_map(|entry| {
                let write = entry
                    .writes
                    .as_array()?
                    .iter()
                    .rev()
                    .find(|w| w["field"] == **field)?;
                Some(Writer {
                    seq: entry.seq,
                    step: entry.step,
                    node: write["node"].as_str().unwrap_or_default().to_owned(),
                })
            });
        changes.push(FieldChange {
            field: field.clone(),
            patch: json_patch::diff(before, after),
            written_by,
        });
    }
    Ok(changes)
}
