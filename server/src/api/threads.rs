//! `/api/threads`: the engine's threads and runs as resources, in the shape of the LangGraph
//! Agent Server API (threads, state, history, runs in the background, waited for or streamed
//! over SSE, interrupts answered over HTTP). Every route finds the thread through its owner:
//! another user's thread, or one that does not exist, is 404 alike.

mod objects;

use futures::StreamExt;
use futures::stream::BoxStream;
use poem::web::sse::Event as SseEvent;
use poem_openapi::OpenApi;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use serde_json::Value;
use uuid::Uuid;

pub(crate) use objects::Thread;
use objects::{
    HistoryEntry, MultitaskStrategy, NewRun, NewThread, Resume, Run, RunResult, StateUpdate, ThreadSearch,
    ThreadState,
};

use super::auth::Auth;
use super::input::Input;
use super::{ApiError, Created, Ctx, Tag};
use crate::runs::log::MODES;
use crate::runs::{Policy, RunsError};

pub(crate) struct ThreadsApi(pub(crate) Ctx);

/// The graph a thread runs when its creator names none.
const DEFAULT_GRAPH: &str = "assistant";

/// One entry of a run's stream (the SSE `data`).
type Stream = EventStream<BoxStream<'static, Value>>;

#[OpenApi(prefix_path = "/threads", tag = "Tag::Threads")]
impl ThreadsApi {
    /// Creates a thread of a graph, for the caller.
    #[oai(path = "/", method = "post")]
    async fn create(&self, auth: Auth, body: Input<NewThread>) -> Result<Created<Thread>, ApiError> {
        let new = body.value;
        let graph = new.graph.as_deref().unwrap_or(DEFAULT_GRAPH);
        let metadata = Value::Object(new.metadata.unwrap_or_default().into_iter().collect());
        let thread = self
            .0
            .runs()?
            .create_thread(auth.0.user_id, graph, metadata)
            .await;
        Ok(Created::Created(Json(thread?.into())))
    }

    /// The caller's threads, newest first, filtered by metadata and status.
    #[oai(path = "/search", method = "post")]
    async fn search(&self, auth: Auth, body: Input<ThreadSearch>) -> Result<Json<Vec<Thread>>, ApiError> {
        let search = body.value;
        let limit = search.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be between 1 and 100"));
        }
        let metadata = Value::Object(search.metadata.unwrap_or_default().into_iter().collect());
        let found = self
            .0
            .runs()?
            .search(
                auth.0.user_id,
                None,
                &metadata,
                search.status.as_deref(),
                limit,
                search.offset.unwrap_or(0).max(0),
            )
            .await?;
        Ok(Json(found.into_iter().map(Thread::from).collect()))
    }

    /// One of the caller's threads.
    #[oai(path = "/:thread_id", method = "get")]
    async fn get(&self, auth: Auth, thread_id: Path<Uuid>) -> Result<Json<Thread>, ApiError> {
        let thread = self.0.runs()?.thread(auth.0.user_id, thread_id.0).await;
        Ok(Json(thread?.into()))
    }

    /// Deletes one of the caller's threads, its runs (an open one is cancelled) and its log.
    #[oai(path = "/:thread_id", method = "delete")]
    async fn delete(&self, auth: Auth, thread_id: Path<Uuid>) -> Result<(), ApiError> {
        Ok(self.0.runs()?.delete_thread(auth.0.user_id, thread_id.0).await?)
    }

    /// A thread's state: now, or after log entry `checkpoint`.
    #[oai(path = "/:thread_id/state", method = "get")]
    async fn state(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        checkpoint: Query<Option<i64>>,
    ) -> Result<Json<ThreadState>, ApiError> {
        let state = self
            .0
            .runs()?
            .state(auth.0.user_id, thread_id.0, checkpoint.0)
            .await;
        Ok(Json(state?.into()))
    }

    /// Writes fields of an idle thread's state, as one log entry (`update_state`).
    #[oai(path = "/:thread_id/state", method = "post")]
    async fn update(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        body: Input<StateUpdate>,
    ) -> Result<Json<ThreadState>, ApiError> {
        let runs = self.0.runs()?;
        let values = body.value.values.into_iter().collect();
        let user = auth.0.user_id;
        runs.update_state(user, thread_id.0, values).await?;
        let state = runs.state(user, thread_id.0, None).await?;
        Ok(Json(state.into()))
    }

    /// A thread's log, newest first: `limit` entries (default 20) before entry `before`.
    #[oai(path = "/:thread_id/history", method = "get")]
    async fn history(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        limit: Query<Option<usize>>,
        before: Query<Option<i64>>,
    ) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
        let limit = limit.0.unwrap_or(20);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
        }
        let entries = self
            .0
            .runs()?
            .history(auth.0.user_id, thread_id.0, limit, before.0)
            .await?;
        Ok(Json(
            entries
                .into_iter()
                .map(|entry| HistoryEntry {
                    seq: entry.seq,
                    run_id: entry.run_id,
                    step: entry.step,
                    nodes: entry.nodes,
                    writes: entry.writes,
                    graph_version: entry.graph_version,
                    created_at: entry.created_at,
                })
                .collect(),
        ))
    }

    /// Starts a run on the thread, in the background.
    #[oai(path = "/:thread_id/runs", method = "post")]
    async fn create_run(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        body: Input<NewRun>,
    ) -> Result<Created<Run>, ApiError> {
        let run = self.start(&auth, thread_id.0, body.value).await?;
        Ok(Created::Created(Json(run.into())))
    }

    /// Starts a run and waits until it stops (ends, pauses at an interrupt, or fails).
    #[oai(path = "/:thread_id/runs/wait", method = "post")]
    async fn wait(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        body: Input<NewRun>,
    ) -> Result<Json<RunResult>, ApiError> {
        let run = self.start(&auth, thread_id.0, body.value).await?;
        self.joined(&auth, thread_id.0, run.id).await
    }

    /// Starts a run and streams it as server-sent events, each with an `id`.
    #[oai(path = "/:thread_id/runs/stream", method = "post")]
    async fn stream(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        body: Input<NewRun>,
    ) -> Result<Stream, ApiError> {
        let modes = modes(body.value.stream_mode.clone())?;
        let run = self.start(&auth, thread_id.0, body.value).await?;
        self.follow(run.id, modes, None)
    }

    /// The thread's runs, newest first.
    #[oai(path = "/:thread_id/runs", method = "get")]
    async fn list_runs(&self, auth: Auth, thread_id: Path<Uuid>) -> Result<Json<Vec<Run>>, ApiError> {
        let runs = self.0.runs()?.runs(auth.0.user_id, thread_id.0).await;
        Ok(Json(runs?.into_iter().map(Run::from).collect()))
    }

    /// One run of the thread.
    #[oai(path = "/:thread_id/runs/:run_id", method = "get")]
    async fn get_run(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        run_id: Path<Uuid>,
    ) -> Result<Json<Run>, ApiError> {
        let run = self.0.runs()?.run(auth.0.user_id, thread_id.0, run_id.0).await;
        Ok(Json(run?.into()))
    }

    /// Cancels a run that has not ended; a running one stops at its next step.
    #[oai(path = "/:thread_id/runs/:run_id/cancel", method = "post")]
    async fn cancel(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        run_id: Path<Uuid>,
    ) -> Result<Json<Run>, ApiError> {
        let run = self.0.runs()?.cancel(auth.0.user_id, thread_id.0, run_id.0).await;
        Ok(Json(run?.into()))
    }

    /// Waits until a run stops, then returns it with the thread's state.
    #[oai(path = "/:thread_id/runs/:run_id/join", method = "get")]
    async fn join(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        run_id: Path<Uuid>,
    ) -> Result<Json<RunResult>, ApiError> {
        self.joined(&auth, thread_id.0, run_id.0).await
    }

    /// A run's stream, from the start, or after the event `Last-Event-ID` names.
    #[oai(path = "/:thread_id/runs/:run_id/stream", method = "get")]
    async fn join_stream(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        run_id: Path<Uuid>,
        stream_mode: Query<Option<String>>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> Result<Stream, ApiError> {
        self.0.runs()?.run(auth.0.user_id, thread_id.0, run_id.0).await?;
        let modes = modes(
            stream_mode
                .0
                .map(|modes| modes.split(',').map(str::to_owned).collect()),
        )?;
        let after = match (last_event_id.0, self.0.runs()?.log(run_id.0)) {
            (Some(id), Some(log)) => Some(log.parse_id(&id).map_err(|detail| ApiError::Conflict {
                code: "stream_gone",
                detail,
            })?),
            _ => None,
        };
        self.follow(run_id.0, modes, after)
    }

    /// Answers the questions an interrupted run waits for, and continues it in the background.
    #[oai(path = "/:thread_id/runs/:run_id/resume", method = "post")]
    async fn resume(
        &self,
        auth: Auth,
        thread_id: Path<Uuid>,
        run_id: Path<Uuid>,
        body: Input<Resume>,
    ) -> Result<Json<Run>, ApiError> {
        let runs = self.0.runs()?;
        let (user, thread, run) = (auth.0.user_id, thread_id.0, run_id.0);
        let answers = match (body.value.answer, body.value.answers) {
            (Some(answer), None) => {
                let state = runs.state(user, thread, None).await?;
                let ids: Vec<String> = state
                    .interrupts
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|interrupt| interrupt["id"].as_str().map(str::to_owned))
                    .collect();
                match ids.as_slice() {
                    [id] => [(id.clone(), answer)].into(),
                    [] => return Err(ApiError::invalid("answer", "the run waits for no answer")),
                    _ => {
                        let detail = format!(
                            "the run waits for several answers ({}): send `answers`",
                            ids.join(", ")
                        );
                        return Err(ApiError::invalid("answer", detail));
                    }
                }
            }
            (None, Some(answers)) => answers.into_iter().collect(),
            _ => {
                return Err(ApiError::invalid(
                    "answer",
                    "send `answer` or `answers`, not both",
                ));
            }
        };
        let resumed = runs.resume(user, thread, run, answers).await;
        Ok(Json(resumed?.into()))
    }
}

impl ThreadsApi {
    async fn start(&self, auth: &Auth, thread: Uuid, new: NewRun) -> Result<engine::store::RunRow, ApiError> {
        let policy = match new.multitask_strategy.unwrap_or_default() {
            MultitaskStrategy::Reject => Policy::Reject,
            MultitaskStrategy::Enqueue => Policy::Enqueue,
            MultitaskStrategy::Interrupt => Policy::Interrupt,
            MultitaskStrategy::Rollback => Policy::Rollback,
        };
        let input = new.input.unwrap_or_default().into_iter().collect();
        let context = new.context.unwrap_or_default().into_iter().collect();
        let runs = self.0.runs()?;
        Ok(runs.start(auth.0.user_id, thread, input, context, policy).await?)
    }

    async fn joined(&self, auth: &Auth, thread: Uuid, run: Uuid) -> Result<Json<RunResult>, ApiError> {
        let runs = self.0.runs()?;
        let row = runs.join(auth.0.user_id, thread, run).await?;
        let state = runs.state(auth.0.user_id, thread, None).await?;
        Ok(Json(RunResult {
            run: row.into(),
            state: state.into(),
        }))
    }

    /// The run's stream for `modes`, after entry `after`, until the run stops.
    fn follow(&self, run: Uuid, modes: Vec<String>, after: Option<u64>) -> Result<Stream, ApiError> {
        let Some(log) = self.0.runs()?.log(run) else {
            return Err(ApiError::Conflict {
                code: "stream_gone",
                detail: "this run's stream is no longer kept; read the thread's state and history".to_owned(),
            });
        };
        let ids = log.clone();
        let entries = log
            .follow(modes, after)
            .map(move |entry| serde_json::json!({ "id": ids.public_id(entry.id), "event": entry.event, "data": entry.data }))
            .boxed();
        Ok(EventStream::new(entries)
            .keep_alive(std::time::Duration::from_secs(15))
            .to_event(|item| {
                SseEvent::message(item["data"].to_string())
                    .event_type(item["event"].as_str().unwrap_or("message"))
                    .id(item["id"].as_str().unwrap_or_default().to_owned())
            }))
    }
}

/// The stream modes asked for: `values` when none.
fn modes(asked: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let modes = asked
        .filter(|modes| !modes.is_empty())
        .unwrap_or_else(|| vec!["values".to_owned()]);
    for mode in &modes {
        if !MODES.contains(&mode.as_str()) {
            return Err(ApiError::invalid(
                "stream_mode",
                format!(
                    "`{mode}` is not a stream mode; the modes are {}",
                    MODES.join(", ")
                ),
            ));
        }
    }
    Ok(modes)
}

impl From<RunsError> for ApiError {
    fn from(err: RunsError) -> ApiError {
        match err {
            RunsError::NotFound(what) => ApiError::NotFound { what },
            RunsError::Busy { run } => ApiError::Conflict {
                code: "thread_busy",
                detail: format!(
                    "the thread has a run that has not ended (`{run}`); wait for it, or send `multitask_strategy`"
                ),
            },
            RunsError::Invalid(detail) => ApiError::Unprocessable {
                code: "invalid_run",
                detail,
            },
            RunsError::Conflict(detail) => ApiError::Conflict {
                code: "run_conflict",
                detail,
            },
            RunsError::Store(err) => ApiError::Internal(err.into()),
            RunsError::Worker(err) => ApiError::Internal(err.into()),
        }
    }
}
