//! Reading a thread's state back: the latest snapshot, the steps after it, the items.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::graph::Graph;
use crate::run::{Position, State, Write};

/// A thread's state after one log entry, and where the run that wrote it stood.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The log entry (0 for a thread without steps).
    pub seq: i64,
    pub state: State,
    /// The position after that entry, and the run it belongs to.
    pub position: Option<Position>,
    pub run: Option<Uuid>,
    /// How many items each `append` field holds.
    pub lengths: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
struct Snapshot {
    state: State,
}

/// A write as logged; an `append` write has no value, its items are read from `items`.
#[derive(Deserialize)]
struct LoggedWrite {
    field: String,
    value: Option<Value>,
}

/// One statement: the thread's graph version, its snapshot, the writes after it, every item,
/// and the entry's position.
const HEAD: &str = "\
    WITH snap AS (SELECT seq, state FROM snapshots WHERE thread_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1), \
    last AS (SELECT seq, run_id, position FROM steps WHERE thread_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1) \
    SELECT \
        (SELECT graph_version FROM threads WHERE id = $1) AS version, \
        (SELECT to_jsonb(snap) FROM snap) AS snapshot, \
        (SELECT coalesce(jsonb_agg(writes ORDER BY seq), '[]'::jsonb) FROM steps \
            WHERE thread_id = $1 AND seq <= $2 AND seq > coalesce((SELECT seq FROM snap), 0)) AS writes, \
        (SELECT coalesce(jsonb_object_agg(field, values), '{}'::jsonb) FROM \
            (SELECT field, jsonb_agg(value ORDER BY idx) AS values FROM items \
             WHERE thread_id = $1 AND seq <= $2 GROUP BY field) fields) AS items, \
        (SELECT seq FROM last) AS seq, (SELECT run_id FROM last) AS run_id, (SELECT position FROM last) AS position";

/// A thread's log as read in one round trip, before its graph's reducers make a state of it.
#[derive(Debug)]
pub struct Stored {
    thread: Uuid,
    /// The graph version the thread is pinned to.
    pub version: String,
    row: sqlx::postgres::PgRow,
}

impl Store {
    /// The state of `thread` after log entry `at` (the latest when `None`).
    pub async fn head(&self, graph: &Graph, thread: Uuid, at: Option<i64>) -> Result<Head, StoreError> {
        self.load(thread, at).await?.head(graph)
    }

    /// What [`Store::head`] reads, with the thread's graph version, for a caller that
    /// needs the version to know the graph.
    pub async fn load(&self, thread: Uuid, at: Option<i64>) -> Result<Stored, StoreError> {
        let row = sqlx::query(HEAD)
            .bind(thread)
            .bind(at.unwrap_or(i64::MAX))
            .fetch_one(&self.pool)
            .await?;
        let version: Option<String> = row.try_get("version")?;
        Ok(Stored {
            thread,
            version: version.ok_or(StoreError::NoThread(thread))?,
            row,
        })
    }
}

impl Stored {
    /// The state, replayed with `graph`'s reducers.
    pub fn head(self, graph: &Graph) -> Result<Head, StoreError> {
        let (thread, row) = (self.thread, self.row);
        let corrupt = |what: &str, err: serde_json::Error| {
            StoreError::Corrupt(format!("thread `{thread}`, {what}: {err}"))
        };
        let snapshot: Option<Value> = row.try_get("snapshot")?;
        let mut state = match snapshot {
            Some(snapshot) => {
                serde_json::from_value::<Snapshot>(snapshot)
                    .map_err(|err| corrupt("snapshot", err))?
                    .state
            }
            None => State::new(),
        };
        let writes: Value = row.try_get("writes")?;
        let writes: Vec<Vec<LoggedWrite>> =
            serde_json::from_value(writes).map_err(|err| corrupt("steps", err))?;
        for write in writes.into_iter().flatten() {
            let Some(value) = write.value else { continue };
            let write = Write {
                field: write.field,
                value,
            };
            crate::state::replay(graph, &mut state, &write);
        }
        let items: BTreeMap<String, Vec<Value>> =
            serde_json::from_value(row.try_get("items")?).map_err(|err| corrupt("items", err))?;
        let mut lengths = BTreeMap::new();
        for (field, values) in items {
            lengths.insert(field.clone(), values.len() as i64);
            state.insert(field, Value::Array(values));
        }
        let position: Option<Value> = row.try_get("position")?;
        let position = match position {
            Some(position) => Some(serde_json::from_value(position).map_err(|err| corrupt("position", err))?),
            None => None,
        };
        Ok(Head {
            seq: row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0),
            state,
            position,
            run: row.try_get("run_id")?,
            lengths,
        })
    }
}
