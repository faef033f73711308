//! Durable runs: a [`Worker`] runs threads' graphs with every step recorded in the [`Store`].
//!
//! A run on a thread starts from the thread's state, under a lease the worker renews while
//! the run goes. A thread runs the graph version it was created with, loaded from the store,
//! so editing the files changes only new threads (until `pin`). When a worker dies, another
//! one finds the run's lease expired, takes it over with a higher fence, and continues from the
//! last recorded step: steps that committed are not run again, and a step that did not commit
//! left nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use uuid::Uuid;

use crate::diagnostic::{Diagnostic, render};
use crate::graph::{Graph, load_source};
use crate::run::{Answers, Checkpoint, Engine, Event, Events, RunError, RunOutcome, State, prepare};
use crate::store::{Head, Lease, RunJournal, StartMode, Started, Store, StoreError, ThreadRow};

/// Why a durable run could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("graph version `{version}` no longer loads:\n{diagnostics}")]
    Version { version: String, diagnostics: String },
}

/// What a request to run came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Ran {
    /// The run went as far as it could: ended, failed, or paused.
    Ran { run: Uuid, outcome: Box<RunOutcome> },
    /// The thread was busy and the run was queued.
    Queued { run: Uuid },
}

/// Runs graphs durably.
#[derive(Debug)]
pub struct Worker {
    engine: Engine,
    store: Store,
    /// Who holds the leases this worker takes.
    id: String,
    /// Graphs by version, loaded once.
    graphs: Mutex<HashMap<String, Arc<Graph>>>,
    /// Compact a thread's log after each run of it that succeeds.
    compact_finished: bool,
    /// Threads whose last run succeeded here, with their graph version and state after it: the
    /// next run on one starts without reading it back. Starting checks that the thread has no
    /// newer entry and the same version, so a thread another worker ran since is read again.
    heads: Mutex<HashMap<Uuid, (String, Head)>>,
}

/// Threads whose state a worker keeps, at most.
const KEPT_HEADS: usize = 4096;

impl Worker {
    pub fn new(engine: Engine, store: Store, id: impl Into<String>) -> Worker {
        Worker {
            engine,
            store,
            id: id.into(),
            graphs: Mutex::new(HashMap::new()),
            compact_finished: false,
            heads: Mutex::new(HashMap::new()),
        }
    }

    /// Drops a thread's log entries older than its last snapshot after each run of it that
    /// succeeds (see [`Store::compact`]).
    pub fn with_compaction(mut self, compact_finished: bool) -> Worker {
        self.compact_finished = compact_finished;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new thread, pinned to this graph's version.
    pub async fn create_thread(&self, graph: &Graph, metadata: Value) -> Result<ThreadRow, WorkerError> {
        let thread = self.store.create_thread(graph, Uuid::now_v7(), metadata).await?;
        let mut graphs = self.graphs.lock().expect("graphs lock");
        graphs
            .entry(graph.version.clone())
            .or_insert_with(|| Arc::new(graph.clone()));
        Ok(thread)
    }

    /// The graph of a stored version.
    pub async fn graph(&self, version: &str) -> Result<Arc<Graph>, WorkerError> {
        if let Some(graph) = self.graphs.lock().expect("graphs lock").get(version) {
            return Ok(graph.clone());
        }
        let files = Arc::new(self.store.version_files(version).await?);
        let graph = load_source(files.clone(), &files.graph, &self.engine.load_options())
            .map_err(|d| version_error(version, &d))?;
        let graph = Arc::new(graph);
        self.graphs
            .lock()
            .expect("graphs lock")
            .insert(version.to_owned(), graph.clone());
        Ok(graph)
    }

    /// Starts a run on a thread with `input` and `context`, and runs it as far as it goes.
    pub async fn start(
        &self,
        thread: Uuid,
        input: State,
        context: State,
        mode: StartMode,
        events: &Events,
    ) -> Result<Ran, WorkerError> {
        self.start_as(Uuid::now_v7(), thread, input, context, mode, events)
            .await
    }

    /// [`start`](Worker::start) with the run's id chosen by the caller (a new UUID), so it can
    /// be told before the run ends: to an HTTP client, or to the log its events go to.
    pub async fn start_as(
        &self,
        run: Uuid,
        thread: Uuid,
        input: State,
        context: State,
        mode: StartMode,
        events: &Events,
    ) -> Result<Ran, WorkerError> {
        let kept = self.heads.lock().expect("heads lock").remove(&thread);
        if let Some((version, head)) = kept {
            let graph = self.graph(&version).await?;
            match self
                .start_at(&graph, (run, thread), head, &input, &context, mode, events)
                .await
            {
                Err(WorkerError::Store(StoreError::Stale { .. })) => {}
                ran => return ran,
            }
        }
        let stored = self.store.load(thread, None).await?;
        let graph = self.graph(&stored.version).await?;
        let head = stored.head(&graph)?;
        self.start_at(&graph, (run, thread), head, &input, &context, mode, events)
            .await
    }

    /// Starts a run on a thread whose state is `head`.
    #[allow(clippy::too_many_arguments)]
    async fn start_at(
        &self,
        graph: &Graph,
        (run, thread): (Uuid, Uuid),
        head: Head,
        input: &State,
        context: &State,
        mode: StartMode,
        events: &Events,
    ) -> Result<Ran, WorkerError> {
        let (checkpoint, writes) = prepare(graph, head.state, input.clone(), context.clone())?;
        let lease = Lease {
            run,
            thread,
            fence: 1,
            owner: self.id.clone(),
        };
        let journal = RunJournal::new(self.store.clone(), graph, lease, head.seq + 1, head.lengths);
        let writes: Vec<_> = writes
            .into_iter()
            .map(|write| ("input".to_owned(), write))
            .collect();
        let first = journal.row(0, Vec::new(), &writes, &checkpoint);
        match self
            .store
            .start_run(&first, &graph.version, input, context, &self.id, mode)
            .await?
        {
            Started::Queued(run) => Ok(Ran::Queued { run }),
            Started::Running(_) => {
                self.drive(graph, checkpoint, Answers::new(), &journal, events)
                    .await
            }
        }
    }

    /// Continues an interrupted run with the caller's answers.
    pub async fn resume(&self, run: Uuid, answers: Answers, events: &Events) -> Result<Ran, WorkerError> {
        // The answers are checked before the run is taken: a wrong one leaves it waiting.
        let thread = self.store.run(run).await?.thread_id;
        let stored = self.store.load(thread, None).await?;
        let graph = self.graph(&stored.version).await?;
        let head = stored.head(&graph)?;
        if let (Some(position), Some(last)) = (head.position, head.run)
            && last == run
        {
            let checkpoint = Checkpoint::from_parts(head.state, State::new(), position);
            crate::run::check_answers(&graph, &checkpoint, &answers)?;
        }
        let (lease, context) = self.store.claim_interrupted(run, &self.id).await?;
        self.continue_run(lease, context, answers, events).await
    }

    /// Takes over one run whose worker stopped renewing its lease, and continues it.
    pub async fn recover(&self, events: &Events) -> Result<Option<Ran>, WorkerError> {
        match self.store.claim_expired(&self.id).await? {
            Some((lease, context)) => Ok(Some(
                self.continue_run(lease, context, Answers::new(), events).await?,
            )),
            None => Ok(None),
        }
    }

    /// Writes `values` to the thread's state as one log entry of its own (node
    /// [`UPDATE_NODE`](crate::store::UPDATE_NODE)), each through its field's reducer and checked
    /// against its schema, as a run of the graph would; refused while the thread has an open
    /// run. Returns the entry's `seq`.
    pub async fn update_state(&self, thread: Uuid, values: State) -> Result<i64, WorkerError> {
        self.heads.lock().expect("heads lock").remove(&thread);
        let stored = self.store.load(thread, None).await?;
        let graph = self.graph(&stored.version).await?;
        let head = stored.head(&graph)?;
        let (mut state, mut writes, mut replaced) =
            (head.state, Vec::new(), std::collections::BTreeSet::new());
        for (field, value) in values {
            let write = crate::run::Write { field, value };
            crate::state::apply(&graph, &mut state, &write, &mut replaced).map_err(|problem| {
                RunError::InvalidInput {
                    field: write.field.clone(),
                    problem,
                }
            })?;
            writes.push((crate::store::UPDATE_NODE.to_owned(), write));
        }
        let lease = Lease {
            run: Uuid::now_v7(),
            thread,
            fence: 1,
            owner: self.id.clone(),
        };
        let seq = head.seq + 1;
        let journal = RunJournal::new(self.store.clone(), &graph, lease.clone(), seq, head.lengths);
        let checkpoint = Checkpoint::new(state, State::new());
        let nodes = vec![crate::store::UPDATE_NODE.to_owned()];
        let row = journal.row(0, nodes, &writes, &checkpoint);
        let none = State::new();
        self.store
            .start_run(&row, &graph.version, &none, &none, &self.id, StartMode::Reject)
            .await?;
        self.store.succeed(&lease).await?;
        Ok(seq)
    }

    /// Removes an ended run and what it wrote ([`Store::roll_back`]), and forgets the state
    /// this worker kept of its thread.
    pub async fn roll_back(&self, run: Uuid) -> Result<(), WorkerError> {
        let thread = self.store.run(run).await?.thread_id;
        self.heads.lock().expect("heads lock").remove(&thread);
        self.store.roll_back(run).await?;
        self.heads.lock().expect("heads lock").remove(&thread);
        Ok(())
    }

    /// Starts the oldest queued run whose thread is free, and runs it.
    pub async fn start_queued(&self, events: &Events) -> Result<Option<Ran>, WorkerError> {
        let Some((lease, input, context)) = self.store.claim_pending(&self.id).await? else {
            return Ok(None);
        };
        let stored = self.store.load(lease.thread, None).await?;
        let graph = self.graph(&stored.version).await?;
        let head = stored.head(&graph)?;
        let prepared = prepare(&graph, head.state, input, context);
        let journal = RunJournal::new(self.store.clone(), &graph, lease, head.seq + 1, head.lengths);
        let (checkpoint, writes) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                let empty = Checkpoint::from_parts(State::new(), State::new(), Default::default());
                let _ = crate::run::Journal::fail(&journal, &empty, &err.to_string()).await;
                return Err(err.into());
            }
        };
        let writes: Vec<_> = writes
            .into_iter()
            .map(|write| ("input".to_owned(), write))
            .collect();
        journal
            .record_input(journal.row(0, Vec::new(), &writes, &checkpoint))
            .await?;
        Ok(Some(
            self.drive(&graph, checkpoint, Answers::new(), &journal, events)
                .await?,
        ))
    }

    /// Continues a run held by `lease` from its last recorded step.
    async fn continue_run(
        &self,
        lease: Lease,
        context: State,
        answers: Answers,
        events: &Events,
    ) -> Result<Ran, WorkerError> {
        let stored = self.store.load(lease.thread, None).await?;
        let graph = self.graph(&stored.version).await?;
        let head = stored.head(&graph)?;
        let position = match (head.run, head.position) {
            (Some(run), Some(position)) if run == lease.run => position,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "run `{}` is not the last to have written its thread",
                    lease.run
                ))
                .into());
            }
        };
        let checkpoint = Checkpoint::from_parts(head.state, context, position);
        let journal = RunJournal::new(self.store.clone(), &graph, lease, head.seq + 1, head.lengths);
        self.drive(&graph, checkpoint, answers, &journal, events).await
    }

    /// Runs with the journal, renewing the lease until the run stops.
    async fn drive(
        &self,
        graph: &Graph,
        checkpoint: Checkpoint,
        answers: Answers,
        journal: &RunJournal,
        events: &Events,
    ) -> Result<Ran, WorkerError> {
        let lease = journal.lease().clone();
        events.emit(Event::RunStarted {
            graph: graph.name.clone(),
            run: Some(lease.run),
        });
        let renew = async {
            let mut tick = tokio::time::interval(self.store.lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if !self.store.renew(&lease).await.unwrap_or(false) {
                    // Lost: the next commit is refused by its fence, which stops the run.
                    std::future::pending::<()>().await;
                }
            }
        };
        let run = self
            .engine
            .run_journaled(graph, checkpoint, answers, events, journal);
        let outcome = tokio::select! {
            outcome = run => outcome?,
            never = renew => match never {},
        };
        if outcome.status == crate::run::RunStatus::Succeeded {
            if self.compact_finished {
                self.store.compact(lease.thread).await?;
            }
            let (seq, lengths) = journal.last();
            let head = Head {
                seq,
                state: outcome.checkpoint.state.clone(),
                position: Some(outcome.checkpoint.position()),
                run: Some(lease.run),
                lengths,
            };
            let mut heads = self.heads.lock().expect("heads lock");
            if heads.len() >= KEPT_HEADS
                && let Some(any) = heads.keys().next().copied()
            {
                heads.remove(&any);
            }
            heads.insert(lease.thread, (graph.version.clone(), head));
        }
        Ok(Ran::Ran {
            run: lease.run,
            outcome: Box::new(outcome),
        })
    }
}

fn version_error(version: &str, diagnostics: &[Diagnostic]) -> WorkerError {
    WorkerError::Version {
        version: version.to_owned(),
        diagnostics: render(diagnostics),
    }
}
