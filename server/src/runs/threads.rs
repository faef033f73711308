//! A user's threads: creating, finding (always through their owner), deleting, and reading
//! their state and log.

use std::sync::Arc;

use engine::Graph;
use engine::run::{Checkpoint, State};
use engine::store::{StoreError, ThreadRow};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Runs, RunsError};

/// A thread as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadView {
    pub row: ThreadRow,
    /// `idle`, `busy`, `interrupted` or `error`, from its last run.
    pub status: &'static str,
}

/// A thread as read with its status.
#[derive(sqlx::FromRow)]
struct ThreadStatus {
    #[sqlx(flatten)]
    row: ThreadRow,
    status: String,
}

/// A thread's state after one log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StateView {
    pub values: State,
    /// The nodes that run next (none when the thread is idle).
    pub next: Vec<String>,
    /// The questions its run waits for.
    pub interrupts: Value,
    /// The log entry this is the state after (0 before any).
    pub seq: i64,
    pub run_id: Option<Uuid>,
    pub graph_version: String,
}

impl Runs {
    /// A new thread of `graph` for `user`.
    pub async fn create_thread(
        &self,
        user: i64,
        graph: &str,
        metadata: Value,
    ) -> Result<ThreadView, RunsError> {
        let Some(graph) = self.registry.get(graph) else {
            return Err(RunsError::Invalid(format!(
                "there is no graph `{graph}` that loads"
            )));
        };
        let row = self.worker.create_thread(&graph, metadata).await?;
        sqlx::query("INSERT INTO api_threads (thread_id, user_id) VALUES ($1, $2)")
            .bind(row.id)
            .bind(user)
            .execute(self.store().pool())
            .await
            .map_err(StoreError::from)?;
        Ok(ThreadView { row, status: "idle" })
    }

    /// `user`'s thread `id`.
    pub async fn thread(&self, user: i64, id: Uuid) -> Result<ThreadView, RunsError> {
        self.search(user, Some(id), &json!({}), None, 1, 0)
            .await?
            .pop()
            .ok_or(RunsError::NotFound("thread"))
    }

    /// `user`'s threads whose metadata contains `metadata` (and of `status`), newest first.
    pub async fn search(
        &self,
        user: i64,
        id: Option<Uuid>,
        metadata: &Value,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ThreadView>, RunsError> {
        let rows: Vec<ThreadStatus> = sqlx::query_as(
            "SELECT t.id, t.graph, t.graph_version, t.metadata, t.created_at, t.updated_at, s.status
             FROM api_threads a JOIN threads t ON t.id = a.thread_id
             CROSS JOIN LATERAL (
                 SELECT CASE (SELECT status FROM runs r WHERE r.thread_id = t.id ORDER BY r.created_at DESC, r.id DESC LIMIT 1)
                     WHEN 'pending' THEN 'busy' WHEN 'running' THEN 'busy'
                     WHEN 'interrupted' THEN 'interrupted' WHEN 'failed' THEN 'error'
                     ELSE 'idle' END AS status
             ) s
             WHERE a.user_id = $1 AND ($2::uuid IS NULL OR t.id = $2) AND t.metadata @> $3
               AND ($4::text IS NULL OR s.status = $4)
             ORDER BY t.id DESC LIMIT $5 OFFSET $6",
        )
        .bind(user)
        .bind(id)
        .bind(metadata)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.store().pool())
        .await
        .map_err(StoreError::from)?;
        Ok(rows
            .into_iter()
            .map(|found| ThreadView {
                row: found.row,
                status: match found.status.as_str() {
                    "busy" => "busy",
                    "interrupted" => "interrupted",
                    "error" => "error",
                    _ => "idle",
                },
            })
            .collect())
    }

    /// Deletes `user`'s thread `id` and everything it holds, cancelling its open run.
    pub async fn delete_thread(&self, user: i64, id: Uuid) -> Result<(), RunsError> {
        self.thread(user, id).await?;
        for run in self.store().runs(id).await? {
            if self.store().cancel(run.id).await?
                && let Some(log) = self.log(run.id)
            {
                log.fail("cancelled: the thread was deleted");
            }
        }
        self.store().delete_thread(id).await?;
        Ok(())
    }

    /// The graph `thread` is pinned to.
    pub(super) async fn graph_of(&self, thread: &ThreadView) -> Result<Arc<Graph>, RunsError> {
        Ok(self.worker.graph(&thread.row.graph_version).await?)
    }

    /// The state of `user`'s thread `id` after log entry `at` (the latest without one).
    pub async fn state(&self, user: i64, id: Uuid, at: Option<i64>) -> Result<StateView, RunsError> {
        let thread = self.thread(user, id).await?;
        let graph = self.graph_of(&thread).await?;
        let head = self.store().head(&graph, id, at).await?;
        let open = match head.run {
            Some(run) => matches!(
                self.store().run(run).await?.status.as_str(),
                "running" | "interrupted" | "pending"
            ),
            None => false,
        };
        let (next, interrupts) = match (&head.position, open) {
            (Some(position), true) => {
                let checkpoint = Checkpoint::from_parts(head.state.clone(), State::new(), position.clone());
                let next = position
                    .next
                    .iter()
                    .map(|node| node.as_str().to_owned())
                    .collect();
                let interrupts = serde_json::to_value(checkpoint.interrupts()).unwrap_or_default();
                (next, interrupts)
            }
            _ => (Vec::new(), json!([])),
        };
        // Fields no node has written yet have their default, as a run would see them.
        let mut values = head.state;
        for (name, field) in &graph.state {
            if let Some(default) = field.default_value().filter(|_| !values.contains_key(name)) {
                values.insert(name.clone(), default.clone());
            }
        }
        Ok(StateView {
            values,
            next,
            interrupts,
            seq: head.seq,
            run_id: head.run,
            graph_version: thread.row.graph_version,
        })
    }

    /// The log of `user`'s thread `id`, newest first: at most `limit` entries before `before`.
    pub async fn history(
        &self,
        user: i64,
        id: Uuid,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<engine::store::StepEntry>, RunsError> {
        self.thread(user, id).await?;
        Ok(self.store().history_page(id, limit as i64, before).await?)
    }
}
