//! Replay and time travel on a user's threads: a deterministic replay of the log, a what-if
//! replay into a fork, a fork with edits, a diff, and a caller's update of the state. The
//! threads a fork or a what-if makes belong to the same user.

use engine::diff::{FieldChange, Side};
use engine::replay::{Replayed, WhatIf};
use engine::run::State;
use engine::store::{Edit, StoreError};
use uuid::Uuid;

use super::{Runs, RunsError, ThreadView};

impl Runs {
    /// Replays `user`'s thread from its log (no model, no SQL) and compares every step.
    pub async fn replay_check(
        &self,
        user: i64,
        thread: Uuid,
        from: Option<i64>,
    ) -> Result<Replayed, RunsError> {
        self.thread(user, thread).await?;
        engine::replay::check(self.store(), thread, None, from)
            .await
            .map_err(|err| RunsError::Invalid(err.to_string()))
    }

    /// Runs `user`'s thread again after log entry `from` with the graph's current version and
    /// the models, into a new thread of the same user.
    pub async fn what_if(
        &self,
        user: i64,
        thread: Uuid,
        from: i64,
    ) -> Result<(WhatIf, ThreadView), RunsError> {
        let view = self.thread(user, thread).await?;
        let Some(graph) = self.registry.get(&view.row.graph) else {
            return Err(RunsError::Invalid(format!(
                "graph `{}` does not load now",
                view.row.graph
            )));
        };
        let made = engine::replay::what_if(&self.worker, thread, from, &graph)
            .await
            .map_err(|err| RunsError::Invalid(err.to_string()))?;
        let fork = self.adopt(user, made.fork).await?;
        Ok((made, fork))
    }

    /// A new thread of `user` whose state is `thread`'s after entry `at`, with `edits`.
    pub async fn fork(
        &self,
        user: i64,
        thread: Uuid,
        at: Option<i64>,
        edits: Vec<Edit>,
    ) -> Result<ThreadView, RunsError> {
        let view = self.thread(user, thread).await?;
        let graph = self.graph_of(&view).await?;
        let row = match self.store().fork(&graph, thread, at, &edits).await {
            Err(StoreError::Edit { path, problem }) => {
                return Err(RunsError::Invalid(format!("edit `{path}`: {problem}")));
            }
            made => made?,
        };
        self.adopt(user, row.id).await
    }

    /// What differs from `a` to `b`, two states of `user`'s threads.
    pub async fn diff(&self, user: i64, a: Side, b: Side) -> Result<Vec<FieldChange>, RunsError> {
        let graph_a = self.graph_of(&self.thread(user, a.thread).await?).await?;
        let graph_b = self.graph_of(&self.thread(user, b.thread).await?).await?;
        Ok(engine::diff::diff(self.store(), (a, &graph_a), (b, &graph_b)).await?)
    }

    /// Writes `values` to `user`'s idle thread as one log entry; returns its `seq`. Who wrote
    /// it goes to the audit log, with the entry and the fields.
    pub async fn update_state(&self, user: i64, thread: Uuid, values: State) -> Result<i64, RunsError> {
        self.thread(user, thread).await?;
        let fields: Vec<String> = values.keys().cloned().collect();
        let seq = self.worker.update_state(thread, values).await?;
        let mut conn = self.store().pool().acquire().await.map_err(StoreError::from)?;
        let detail = serde_json::json!({ "thread": thread, "seq": seq, "fields": fields });
        crate::finance::audit::record(&mut conn, user, "update_state", "thread", None, detail)
            .await
            .map_err(StoreError::from)?;
        Ok(seq)
    }

    /// Makes a thread the engine just created `user`'s.
    async fn adopt(&self, user: i64, thread: Uuid) -> Result<ThreadView, RunsError> {
        sqlx::query("INSERT INTO api_threads (thread_id, user_id) VALUES ($1, $2)")
            .bind(thread)
            .bind(user)
            .execute(self.store().pool())
            .await
            .map_err(StoreError::from)?;
        self.thread(user, thread).await
    }
}
