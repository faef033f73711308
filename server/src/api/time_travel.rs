//! Replay and time travel over HTTP, on the caller's threads: `POST …/replay` (replay the log
//! with no model and no SQL, and say where it first differs), `POST …/what_if` (run it again
//! with today's graph and models, into a fork), `POST …/fork` (a new thread from a checkpoint,
//! with edits) and `GET …/diff` (what differs between two checkpoints or threads).

use std::collections::BTreeMap;

use engine::diff::Side;
use engine::replay::Replayed;
use engine::store::Edit;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::auth::Auth;
use super::input::Input;
use super::threads::Thread;
use super::{ApiError, Created, Ctx, Tag};

pub(crate) struct TimeTravelApi(pub(crate) Ctx);

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Replay only what follows this log entry.
    from: Option<i64>,
}

#[derive(Debug, Object)]
pub(crate) struct ReplayReport {
    /// Whether every step came out as recorded.
    same: bool,
    /// Runs and steps replayed, when the same.
    runs: Option<i64>,
    steps: Option<i64>,
    /// Where it first differed: `{run, seq, step, node, field, message}`.
    divergence: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhatIfRequest {
    /// Run again what followed this log entry (0: every run).
    from: Option<i64>,
}

#[derive(Debug, Object)]
pub(crate) struct WhatIfReport {
    /// The new thread the runs went into.
    thread: Thread,
    runs: i64,
}

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForkRequest {
    /// The log entry to fork at (the latest by default).
    checkpoint: Option<i64>,
    /// New values, by field or by a path inside one (`rows.0.total`).
    edits: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Object)]
pub(crate) struct FieldDiff {
    field: String,
    /// From the first state's value to the second's, as JSON Patch operations.
    patch: Value,
    /// The log entry and node that last wrote the second state's value.
    written_by: Option<Value>,
}

#[OpenApi(prefix_path = "/threads", tag = "Tag::Threads")]
impl TimeTravelApi {
    /// Replays the thread's log with the recorded replies and results, and compares each step.
    #[oai(path = "/:thread_id/replay", method = "post")]
    async fn replay(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        body: Input<ReplayRequest>,
    ) -> Result<Json<ReplayReport>, ApiError> {
        let replayed = self
            .0
            .runs()?
            .replay_check(auth.0.user_id, thread_id.0, body.value.from)
            .await;
        Ok(Json(match replayed? {
            Replayed::Same { runs, steps } => ReplayReport {
                same: true,
                runs: Some(runs as i64),
                steps: Some(steps as i64),
                divergence: None,
            },
            Replayed::Diverged(divergence) => ReplayReport {
                same: false,
                runs: None,
                steps: None,
                divergence: serde_json::to_value(divergence).ok(),
            },
        }))
    }

    /// Runs the thread's runs after `from` again, with the graph's current version and the
    /// models, into a new thread; the original is not touched.
    #[oai(path = "/:thread_id/what_if", method = "post")]
    async fn what_if(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        body: Input<WhatIfRequest>,
    ) -> Result<Created<WhatIfReport>, ApiError> {
        let from = body.value.from.unwrap_or(0);
        let made = self.0.runs()?.what_if(auth.0.user_id, thread_id.0, from).await;
        let (made, thread) = made?;
        Ok(Created::Created(Json(WhatIfReport {
            thread: thread.into(),
            runs: made.runs as i64,
        })))
    }

    /// A new thread whose state is this one's at a checkpoint, with edits.
    #[oai(path = "/:thread_id/fork", method = "post")]
    async fn fork(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        body: Input<ForkRequest>,
    ) -> Result<Created<Thread>, ApiError> {
        let request = body.value;
        let edits = request
            .edits
            .unwrap_or_default()
            .into_iter()
            .map(|(path, value)| Edit { path, value })
            .collect();
        let fork = self
            .0
            .runs()?
            .fork(auth.0.user_id, thread_id.0, request.checkpoint, edits)
            .await;
        Ok(Created::Created(Json(fork?.into())))
    }

    /// What differs from this thread's state (at `checkpoint`) to another's (`with`, at
    /// `with_checkpoint`; this thread by default), field by field.
    #[oai(path = "/:thread_id/diff", method = "get")]
    async fn diff(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        checkpoint: Query<Option<i64>>,
        with: Query<Option<Uuid>>,
        with_checkpoint: Query<Option<i64>>,
    ) -> Result<Json<Vec<FieldDiff>>, ApiError> {
        let a = Side {
            thread: thread_id.0,
            at: checkpoint.0,
        };
        let b = Side {
            thread: with.0.unwrap_or(thread_id.0),
            at: with_checkpoint.0,
        };
        let changes = self.0.runs()?.diff(auth.0.user_id, a, b).await?;
        Ok(Json(
            changes
                .into_iter()
                .map(|change| FieldDiff {
                    field: change.field,
                    patch: serde_json::to_value(change.patch).unwrap_or_default(),
                    written_by: change
                        .written_by
                        .and_then(|writer| serde_json::to_value(writer).ok()),
                })
                .collect(),
        ))
    }
}
