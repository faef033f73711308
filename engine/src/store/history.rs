//! Reading a thread's log back, and retention: pruning old threads, compacting finished ones.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use super::{Store, StoreError};

/// One entry of a thread's log.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct StepEntry {
    pub seq: i64,
    pub run_id: Uuid,
    pub step: i32,
    pub nodes: Vec<String>,
    pub writes: Value,
    pub position: Value,
    /// The step's model calls (`[{node, provider, model, request, response, …}]`), if any.
    pub calls: Option<Value>,
    /// The answers the run was resumed with, on the step that took them.
    pub answers: Option<Value>,
    /// What nested nodes that reach outside the graph wrote (`[{node, writes}]`), if any.
    pub effects: Option<Value>,
    /// The graph version its run ran, when known.
    pub graph_version: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// A thread's log, oldest first (entries dropped by compaction are gone).
    pub async fn history(&self, thread: Uuid) -> Result<Vec<StepEntry>, StoreError> {
        let entries = sqlx::query_as::<_, StepEntry>(
            "SELECT s.seq, s.run_id, s.step, s.nodes, s.writes, s.position, s.calls, s.answers, s.effects, r.graph_version, \
                 s.created_at \
             FROM steps s LEFT JOIN runs r ON r.id = s.run_id WHERE s.thread_id = $1 ORDER BY s.seq",
        )
        .bind(thread)
        .fetch_all(&self.pool)
        .await?;
        Ok(entries)
    }

    /// At most `limit` entries of a thread's log before entry `before` (all when `None`),
    /// newest first: a page of [`history`](Store::history).
    pub async fn history_page(
        &self,
        thread: Uuid,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<StepEntry>, StoreError> {
        let entries = sqlx::query_as::<_, StepEntry>(
            "SELECT s.seq, s.run_id, s.step, s.nodes, s.writes, s.position, s.calls, s.answers, s.effects, r.graph_version, \
                 s.created_at \
             FROM steps s LEFT JOIN runs r ON r.id = s.run_id \
             WHERE s.thread_id = $1 AND s.seq < $2 ORDER BY s.seq DESC LIMIT $3",
        )
        .bind(thread)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(entries)
    }

    /// The items of a thread's `append` fields, by the log entry that appended them: for each
    /// entry, `(field, item)` in the order they were appended.
    pub async fn items(&self, thread: Uuid) -> Result<BTreeMap<i64, Vec<(String, Value)>>, StoreError> {
        let rows: Vec<(i64, String, Value)> = sqlx::query_as(
            "SELECT seq, field, value FROM items WHERE thread_id = $1 ORDER BY seq, field, idx",
        )
        .bind(thread)
        .fetch_all(&self.pool)
        .await?;
        let mut items: BTreeMap<i64, Vec<(String, Value)>> = BTreeMap::new();
        for (seq, field, value) in rows {
            items.entry(seq).or_default().push((field, value));
        }
        Ok(items)
    }

    /// The states inside the subgraphs of `thread` after log entry `at` (the latest when
    /// `None`), by node path: each subgraph that ran in that step, with the state it ended
    /// with, and each one paused there, with the state it waits in (nested ones as
    /// `outer/inner`).
    pub async fn inside(&self, thread: Uuid, at: Option<i64>) -> Result<Vec<(String, Value)>, StoreError> {
        let row: Option<(Option<Value>, Value)> = sqlx::query_as(
            "SELECT subgraphs, position FROM steps WHERE thread_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(thread)
        .bind(at.unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await?;
        let mut states = Vec::new();
        if let Some((subgraphs, position)) = row {
            for ran in subgraphs.iter().filter_map(Value::as_array).flatten() {
                let node = ran["node"].as_str().unwrap_or_default().to_owned();
                states.push((node, ran["state"].clone()));
            }
            paused(&position["waiting"], "", &mut states);
        }
        Ok(states)
    }

    /// The bytes each run of a thread stored (its log entries, the items and snapshots they
    /// wrote, with their model calls, as `pg_column_size` counts them), oldest run first: what
    /// a turn of a conversation costs in storage.
    pub async fn run_sizes(&self, thread: Uuid) -> Result<Vec<(Uuid, i64)>, StoreError> {
        let sizes = sqlx::query_as(
            "WITH seqs AS (SELECT run_id, seq FROM steps WHERE thread_id = $1) \
             SELECT r.id, coalesce((SELECT sum(pg_column_size(s.*)) FROM steps s \
                               WHERE s.thread_id = $1 AND s.run_id = r.id), 0)::bigint \
                  + coalesce((SELECT sum(pg_column_size(i.*)) FROM items i JOIN seqs USING (seq) \
                              WHERE i.thread_id = $1 AND seqs.run_id = r.id), 0)::bigint \
                  + coalesce((SELECT sum(pg_column_size(n.*)) FROM snapshots n JOIN seqs USING (seq) \
                              WHERE n.thread_id = $1 AND seqs.run_id = r.id), 0)::bigint \
             FROM runs r WHERE r.thread_id = $1 ORDER BY r.created_at, r.id",
        )
        .bind(thread)
        .fetch_all(&self.pool)
        .await?;
        Ok(sizes)
    }

    /// Drops the log entries (and their model calls) older than the thread's last snapshot,
    /// when no run of it is open: the state stays readable, the early history does not.
    pub async fn compact(&self, thread: Uuid) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "WITH last AS (SELECT max(seq) AS seq FROM snapshots WHERE thread_id = $1), \
             open AS (SELECT 1 FROM runs WHERE thread_id = $1 AND status IN ('pending', 'running', 'interrupted')), \
             old_snapshots AS (DELETE FROM snapshots WHERE thread_id = $1 AND seq < (SELECT seq FROM last) \
                 AND NOT EXISTS (SELECT 1 FROM open)) \
             DELETE FROM steps WHERE thread_id = $1 AND seq < (SELECT seq FROM last) AND NOT EXISTS (SELECT 1 FROM open)",
        )
        .bind(thread)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes a thread and everything it holds (runs, log, items, snapshots); `false` when
    /// there was no such thread.
    pub async fn delete_thread(&self, thread: Uuid) -> Result<bool, StoreError> {
        let gone: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM threads WHERE id = $1 RETURNING id), \
             steps AS (DELETE FROM steps WHERE thread_id = $1), \
             items AS (DELETE FROM items WHERE thread_id = $1), \
             snapshots AS (DELETE FROM snapshots WHERE thread_id = $1) \
             SELECT count(*) FROM gone",
        )
        .bind(thread)
        .fetch_one(&self.pool)
        .await?;
        Ok(gone == 1)
    }

    /// Deletes threads not updated since `before` and with no open run, but the `keep_last`
    /// most recently updated ones; returns how many went.
    pub async fn prune(&self, before: DateTime<Utc>, keep_last: i64) -> Result<u64, StoreError> {
        let gone: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM threads t WHERE t.updated_at < $1 \
                 AND t.id NOT IN (SELECT id FROM threads ORDER BY updated_at DESC LIMIT $2) \
                 AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.id \
                                 AND r.status IN ('pending', 'running', 'interrupted')) \
                 RETURNING id), \
             steps AS (DELETE FROM steps WHERE thread_id IN (SELECT id FROM gone)), \
             items AS (DELETE FROM items WHERE thread_id IN (SELECT id FROM gone)), \
             snapshots AS (DELETE FROM snapshots WHERE thread_id IN (SELECT id FROM gone)) \
             SELECT count(*) FROM gone",
        )
        .bind(before)
        .bind(keep_last)
        .fetch_one(&self.pool)
        .await?;
        Ok(gone as u64)
    }
}

/// The states of the subgraphs waiting in a position's `waiting`, and of those they wait in.
fn paused(waiting: &Value, prefix: &str, states: &mut Vec<(String, Value)>) {
    for (node, wait) in waiting.as_object().into_iter().flatten() {
        if wait["kind"] == "subgraph" {
            let path = format!("{prefix}{node}");
            states.push((path.clone(), wait["checkpoint"]["state"].clone()));
            paused(&wait["checkpoint"]["waiting"], &format!("{path}/"), states);
        }
    }
}
