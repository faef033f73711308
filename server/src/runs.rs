//! Threads and runs for HTTP clients (`api/threads.rs`): the engine's durable threads, owned by
//! the user who created them, with runs started in the background and their events kept as
//! a stream clients can read, leave and read again ([`log`]).
//!
//! A run goes on when its client disconnects: it belongs to the server, not to the request.
//! Its stream stays in memory while it runs and for [`KEEP_STOPPED`] after it stops; its
//! state and log are in PostgreSQL for good (`GET …/state`, `GET …/history`).

pub mod log;
mod threads;
mod time_travel;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::registry::{Registry, RegistryEvent};
use engine::run::{Answers, Engine, Event, Events, State};
use engine::source::Folders;
use engine::store::{RunRow, StartMode, Store, StoreError};
use engine::worker::{Ran, Worker, WorkerError};
use engine::{Graph, LoadOptions};
use serde_json::json;
use tokio::sync::oneshot;
use uuid::Uuid;

use log::RunLog;
pub use threads::{StateView, ThreadView};

/// How long a stopped run's stream stays readable.
pub const KEEP_STOPPED: Duration = Duration::from_secs(600);
/// How long the stream of a run that waits for an answer is kept, so that its ids go on
/// when it is resumed.
pub const KEEP_WAITING: Duration = Duration::from_secs(24 * 3600);

/// What to do with a new run when its thread already has one that has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Refuse the new run (409).
    #[default]
    Reject,
    /// Run it once the thread is free.
    Enqueue,
    /// Cancel the open run, then start.
    Interrupt,
    /// Cancel the open run and remove what it wrote, then start.
    Rollback,
}

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("the thread has a run that has not ended (`{run}`)")]
    Busy { run: Uuid },
    #[error("{0}")]
    Invalid(String),
    /// The run or thread changed meanwhile (another request answered, started or updated it).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Worker(WorkerError),
}

impl From<StoreError> for RunsError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { run, .. } => RunsError::Busy { run },
            err @ (StoreError::WrongStatus { .. } | StoreError::Stale { .. }) => {
                RunsError::Conflict(err.to_string())
            }
            err => RunsError::Store(err),
        }
    }
}

impl From<WorkerError> for RunsError {
    fn from(err: WorkerError) -> Self {
        match err {
            WorkerError::Store(err) => err.into(),
            WorkerError::Run(err) => RunsError::Invalid(err.to_string()),
            err => RunsError::Worker(err),
        }
    }
}

/// The threads and runs of HTTP clients.
#[derive(Debug)]
pub struct Runs {
    worker: Worker,
    registry: Registry,
    logs: Mutex<HashMap<Uuid, Arc<RunLog>>>,
    reloads: Mutex<Vec<(chrono::DateTime<chrono::Utc>, RegistryEvent)>>,
    watching: Option<engine::registry::Watching>,
}

impl Runs {
    /// Serves the graphs of `project` (reloaded when their files change) with `engine`.
    pub fn new(project: &Path, engine: Engine, db: sqlx::PgPool) -> Arc<Runs> {
        let options = LoadOptions {
            models: None,
            tools: crate::tools::specs(),
        };
        let folders = Folders {
            graphs: project.join("graphs"),
            prompts: project.join("prompts"),
            schemas: project.join("schemas"),
        };
        let registry = Registry::new(folders, options);
        let watching = registry
            .watch()
            .inspect_err(|err| tracing::warn!(error = %err, "graph files are not watched"))
            .ok();
        let mut changes = registry.subscribe();
        let worker = Worker::new(
            engine,
            Store::new(db),
            format!("finch-api:{}", std::process::id()),
        );
        let runs = Arc::new(Runs {
            worker,
            registry,
            logs: Mutex::new(HashMap::new()),
            reloads: Mutex::new(Vec::new()),
            watching,
        });
        let weak = Arc::downgrade(&runs);
        tokio::spawn(async move {
            while let Ok(event) = changes.recv().await {
                let Some(runs) = weak.upgrade() else { break };
                let mut reloads = runs.reloads.lock().expect("reloads");
                reloads.push((chrono::Utc::now(), event));
                let excess = reloads.len().saturating_sub(50);
                reloads.drain(..excess);
            }
        });
        let starting = runs.clone();
        tokio::spawn(async move { starting.start_queued().await });
        let weak = Arc::downgrade(&runs);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                let Some(runs) = weak.upgrade() else { break };
                runs.forget_old_streams();
            }
        });
        runs
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What the last reloads of graph files did, oldest first (at most 50), with when.
    pub fn reloads(&self) -> Vec<(chrono::DateTime<chrono::Utc>, RegistryEvent)> {
        self.reloads.lock().expect("reloads").clone()
    }

    /// Whether the graph files are watched (and reloaded when they change).
    pub fn is_watching(&self) -> bool {
        self.watching.is_some()
    }

    fn store(&self) -> &Store {
        self.worker.store()
    }

    /// `user`'s run `run` of thread `thread`.
    pub async fn run(&self, user: i64, thread: Uuid, run: Uuid) -> Result<RunRow, RunsError> {
        self.thread(user, thread).await?;
        match self.store().run(run).await {
            Ok(row) if row.thread_id == thread => Ok(row),
            Ok(_) | Err(StoreError::NoRun(_)) => Err(RunsError::NotFound("run")),
            Err(err) => Err(err.into()),
        }
    }

    /// The runs of `user`'s thread, newest first.
    pub async fn runs(&self, user: i64, thread: Uuid) -> Result<Vec<RunRow>, RunsError> {
        self.thread(user, thread).await?;
        let mut runs = self.store().runs(thread).await?;
        runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(runs)
    }

    /// The stream of `run`, while it is kept.
    pub fn log(&self, run: Uuid) -> Option<Arc<RunLog>> {
        self.logs.lock().expect("logs").get(&run).cloned()
    }

    fn new_log(&self, run: Uuid) -> Arc<RunLog> {
        self.logs.lock().expect("logs").entry(run).or_default().clone()
    }

    /// Drops the streams kept long enough (checked every minute).
    fn forget_old_streams(&self) {
        self.logs.lock().expect("logs").retain(|_, log| {
            let keep = if log.is_waiting() {
                KEEP_WAITING
            } else {
                KEEP_STOPPED
            };
            log.stopped_at().is_none_or(|at| at.elapsed() < keep)
        });
    }

    /// Starts a run on `user`'s thread with `input` and `context` (whose `user_id`, when the
    /// graph has one, is always `user`), in the background; returns once it has started (or
    /// was queued), with its row.
    pub async fn start(
        self: &Arc<Self>,
        user: i64,
        thread: Uuid,
        input: State,
        context: State,
        policy: Policy,
    ) -> Result<RunRow, RunsError> {
        let view = self.thread(user, thread).await?;
        let graph = self.graph_of(&view).await?;
        let context = own_context(&graph, context, user);
        // Checked before an open run is cancelled for it: a bad request changes nothing.
        engine::run::prepare(&graph, State::new(), input.clone(), context.clone())
            .map_err(|err| RunsError::Invalid(err.to_string()))?;
        let mode = match policy {
            Policy::Enqueue => StartMode::Enqueue,
            _ => StartMode::Reject,
        };
        if matches!(policy, Policy::Interrupt | Policy::Rollback) {
            let runs = self.store().runs(thread).await?;
            let open = runs
                .iter()
                .filter(|run| matches!(run.status.as_str(), "running" | "interrupted"));
            for open in open {
                if self.store().cancel(open.id).await? {
                    if let Some(log) = self.log(open.id) {
                        log.fail("cancelled: a newer run took the thread over");
                    }
                    if policy == Policy::Rollback {
                        self.worker.roll_back(open.id).await?;
                    }
                }
            }
        }
        let run = Uuid::now_v7();
        let runs = self.clone();
        self.launch(run, true, move |events| async move {
            runs.worker
                .start_as(run, thread, input, context, mode, &events)
                .await
        })
        .await?;
        self.run(user, thread, run).await
    }

    /// Continues `user`'s interrupted run with `answers` (by interrupt id), in the background.
    pub async fn resume(
        self: &Arc<Self>,
        user: i64,
        thread: Uuid,
        run: Uuid,
        answers: Answers,
    ) -> Result<RunRow, RunsError> {
        let row = self.run(user, thread, run).await?;
        if row.status != "interrupted" {
            return Err(RunsError::Invalid(format!(
                "the run is {}, not interrupted",
                row.status
            )));
        }
        let runs = self.clone();
        self.launch(run, false, move |events| async move {
            runs.worker.resume(run, answers, &events).await
        })
        .await?;
        self.run(user, thread, run).await
    }

    /// Cancels `user`'s run, if it has not ended.
    pub async fn cancel(self: &Arc<Self>, user: i64, thread: Uuid, run: Uuid) -> Result<RunRow, RunsError> {
        self.run(user, thread, run).await?;
        if self.store().cancel(run).await?
            && let Some(log) = self.log(run)
        {
            log.fail("cancelled");
        }
        let starting = self.clone();
        tokio::spawn(async move { starting.start_queued().await });
        self.run(user, thread, run).await
    }

    /// Waits until `user`'s run stops (ends, pauses or fails), then returns it.
    pub async fn join(&self, user: i64, thread: Uuid, run: Uuid) -> Result<RunRow, RunsError> {
        loop {
            let row = self.run(user, thread, run).await?;
            if !matches!(row.status.as_str(), "pending" | "running") {
                return Ok(row);
            }
            // Woken by the run's stream when this process runs it; and the database is asked
            // again every second, for a run another process holds.
            let wait = async {
                match self.log(run) {
                    Some(log) => {
                        let _ = log.subscribe().wait_for(|stopped| *stopped).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
        }
    }

    /// Runs `work` in the background, its events going to `run`'s stream (a `new` one, or
    /// the one it has); returns once the run has started (its first event), was queued, or
    /// was refused (with why). A refused request leaves the stream as it was: another request
    /// may be running the run.
    async fn launch<F, Fut>(self: &Arc<Self>, run: Uuid, new: bool, work: F) -> Result<(), RunsError>
    where
        F: FnOnce(Events) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Ran, WorkerError>> + Send + 'static,
    {
        let log = self.new_log(run);
        let (events, mut received) = Events::channel();
        let (started_tx, started) = oneshot::channel::<Result<(), RunsError>>();
        let forward_log = log.clone();
        // Forwards the run's events to its stream; gives the signal back when the run never
        // started under this request (queued, or refused).
        let forwarding = tokio::spawn(async move {
            let mut signal = Some(started_tx);
            while let Some(event) = received.recv().await {
                if matches!(event, Event::RunStarted { .. })
                    && let Some(signal) = signal.take()
                {
                    // This request holds the run now: its stream goes on.
                    forward_log.reopen();
                    let _ = signal.send(Ok(()));
                }
                forward_log.record(&event);
            }
            signal
        });
        let runs = self.clone();
        tokio::spawn(async move {
            let outcome = work(events).await;
            // Every event is in the stream before the run counts as stopped.
            let signal = forwarding.await.ok().flatten();
            match (outcome, signal) {
                (Ok(Ran::Queued { .. }), Some(signal)) => {
                    log.reopen();
                    let _ = signal.send(Ok(()));
                }
                (Ok(_), signal) => {
                    signal.map(|signal| signal.send(Ok(())));
                }
                (Err(err), None) => log.fail(&err.to_string()),
                (Err(err), Some(signal)) => {
                    if new {
                        runs.logs.lock().expect("logs").remove(&run);
                    }
                    let _ = signal.send(Err(err.into()));
                }
            }
            runs.start_queued().await;
        });
        started
            .await
            .unwrap_or_else(|_| Err(RunsError::Invalid("the run stopped before it started".to_owned())))
    }

    /// Starts the queued runs whose threads are free, one after another.
    async fn start_queued(self: &Arc<Self>) {
        loop {
            let (events, mut received) = Events::channel();
            let runs = self.clone();
            let forwarding = tokio::spawn(async move {
                let mut log = None;
                while let Some(event) = received.recv().await {
                    if let Event::RunStarted { run: Some(run), .. } = &event {
                        let started = runs.new_log(*run);
                        started.reopen();
                        log = Some(started);
                    }
                    if let Some(log) = &log {
                        log.record(&event);
                    }
                }
                log
            });
            let started = self.worker.start_queued(&events).await;
            drop(events);
            let log = forwarding.await.ok().flatten();
            match started {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(err) => {
                    tracing::error!(error = %err, "starting a queued run");
                    match log {
                        // That run failed; the others may start.
                        Some(log) => log.fail(&err.to_string()),
                        // Nothing was claimed: trying again now would fail the same way.
                        None => break,
                    }
                }
            }
        }
    }
}

/// The run's context, with `user_id` (when the graph has one) from the login, whatever the
/// client sent.
fn own_context(graph: &Graph, mut context: State, user: i64) -> State {
    context.remove("user_id");
    if graph.context.contains_key("user_id") {
        context.insert("user_id".to_owned(), json!(user));
    }
    context
}
