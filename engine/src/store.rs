//! Checkpoints in PostgreSQL: graph versions, threads, runs and their step log.
//!
//! The only module (with `migrations/`) that holds engine SQL. A run's steps are appended to
//! the thread's log by [`RunJournal`], each in one statement (one round trip, one commit), or
//! in the step's own transaction when its `sql` nodes wrote something. Every commit checks the
//! run's fence, so a worker that lost its lease cannot write. The state is read back from the
//! latest snapshot, the steps after it, and the items of `append` fields (see the migration).

mod fork;
mod group;
mod history;
mod journal;
mod load;
pub(crate) mod runs;

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use uuid::Uuid;

pub use fork::Edit;
pub use fork::UPDATE_NODE;
pub(crate) use fork::is_fork_seed;
pub use history::StepEntry;
pub use journal::RunJournal;
pub use load::{Head, Stored};
pub use runs::{Lease, RunRow, StartMode, Started, ThreadRow};

use crate::graph::Graph;
use crate::source::GraphFiles;

/// The migrations of the store (and, later, of the finance domain).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("thread `{0}` does not exist")]
    NoThread(Uuid),
    #[error("run `{0}` does not exist")]
    NoRun(Uuid),
    #[error("graph version `{0}` is not stored")]
    NoVersion(String),
    #[error("thread `{thread}` already has an open run (`{run}`); wait for it, or queue this one")]
    Conflict { thread: Uuid, run: Uuid },
    #[error("run `{run}` is {status}, not {expected}")]
    WrongStatus {
        run: Uuid,
        status: String,
        expected: &'static str,
    },
    #[error(
        "thread `{thread}` changed while a run was starting on it (another run, or a `thread migrate`); try again"
    )]
    Stale { thread: Uuid },
    #[error("the lease on run `{run}` was lost (fence {fence}): another worker holds it")]
    Fenced { run: Uuid, fence: i64 },
    #[error("edit `{path}`: {problem}")]
    Edit { path: String, problem: String },
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The durable side of runs.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: PgPool,
    /// A snapshot of the state is taken every this many steps of a thread.
    pub(crate) snapshot_every: u32,
    /// How long a worker holds a run without renewing its lease.
    pub(crate) lease: Duration,
    /// Steps waiting to be appended together.
    pub(crate) group: std::sync::Arc<group::GroupCommit>,
}

impl Store {
    pub fn new(pool: PgPool) -> Store {
        Store {
            pool,
            snapshot_every: 32,
            lease: Duration::from_secs(30),
            group: std::sync::Arc::new(group::GroupCommit::new()),
        }
    }

    /// Snapshots every `steps` steps (at least 1).
    pub fn with_snapshot_every(mut self, steps: u32) -> Store {
        self.snapshot_every = steps.max(1);
        self
    }

    /// How long a run's lease lasts between renewals.
    pub fn with_lease(mut self, lease: Duration) -> Store {
        self.lease = lease;
        self
    }

    /// How many steps of a thread there are between snapshots of its state.
    pub fn snapshot_every(&self) -> u32 {
        self.snapshot_every
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// Stores a graph version's files, once.
    pub async fn save_version(&self, graph: &Graph) -> Result<(), StoreError> {
        let files =
            serde_json::to_value(&*graph.files).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        sqlx::query(
            "INSERT INTO graph_versions (id, graph, files) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&graph.version)
        .bind(&graph.name)
        .bind(files)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The files of a stored graph version.
    pub async fn version_files(&self, version: &str) -> Result<GraphFiles, StoreError> {
        let files: Option<Value> = sqlx::query_scalar("SELECT files FROM graph_versions WHERE id = $1")
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        let files = files.ok_or_else(|| StoreError::NoVersion(version.to_owned()))?;
        serde_json::from_value(files)
            .map_err(|err| StoreError::Corrupt(format!("graph version `{version}`: {err}")))
    }

    /// A new thread, pinned to `graph`'s version (which is stored if it is not yet).
    pub async fn create_thread(
        &self,
        graph: &Graph,
        id: Uuid,
        metadata: Value,
    ) -> Result<ThreadRow, StoreError> {
        self.save_version(graph).await?;
        let row = sqlx::query_as::<_, ThreadRow>(
            "INSERT INTO threads (id, graph, graph_version, metadata) VALUES ($1, $2, $3, $4) \
             RETURNING id, graph, graph_version, metadata, created_at, updated_at",
        )
        .bind(id)
        .bind(&graph.name)
        .bind(&graph.version)
        .bind(metadata)
        .fetch_one(&self.pool)
        .await?;
        Ok(row)
    }

    /// Moves a thread to another (stored) version of its graph, explicitly.
    pub async fn pin(&self, thread: Uuid, graph: &Graph) -> Result<(), StoreError> {
        self.save_version(graph).await?;
        let done = sqlx::query("UPDATE threads SET graph_version = $2, updated_at = now() WHERE id = $1")
            .bind(thread)
            .bind(&graph.version)
            .execute(&self.pool)
            .await?;
        match done.rows_affected() {
            0 => Err(StoreError::NoThread(thread)),
            _ => Ok(()),
        }
    }
}
