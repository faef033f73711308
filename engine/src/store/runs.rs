//! Threads and runs: starting a run (and its first log entry) in one statement, leases,
//! fences, and picking up runs whose worker went away.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::Row;
use uuid::Uuid;

use super::journal::{StepRow, append_step};
use super::{Store, StoreError};
use crate::run::State;

/// A thread as stored.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ThreadRow {
    pub id: Uuid,
    pub graph: String,
    pub graph_version: String,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub status: String,
    /// A queued run's input; a run that started at once has `{}`, its input being its
    /// first log entry (step 0).
    pub input: Value,
    pub context: Value,
    pub error: Option<String>,
    pub fence: i64,
    /// The graph version it ran (`None` while queued, or for runs recorded before versions
    /// were kept per run).
    pub graph_version: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A worker's hold on a running run: every commit presents its fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub run: Uuid,
    pub thread: Uuid,
    pub fence: i64,
    pub owner: String,
}

/// What to do when a thread already has an open run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Refuse with [`StoreError::Conflict`].
    Reject,
    /// Store the run as `pending`; a worker starts it when the thread is free.
    Enqueue,
}

/// What became of a request to start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// It runs, held by this lease.
    Running(Lease),
    /// It waits its turn.
    Queued(Uuid),
}

impl Store {
    pub async fn thread(&self, id: Uuid) -> Result<ThreadRow, StoreError> {
        sqlx::query_as::<_, ThreadRow>(
            "SELECT id, graph, graph_version, metadata, created_at, updated_at FROM threads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NoThread(id))
    }

    /// Threads a run started on since `since`, oldest first.
    pub async fn threads_since(&self, since: DateTime<Utc>) -> Result<Vec<ThreadRow>, StoreError> {
        let rows = sqlx::query_as::<_, ThreadRow>(
            "SELECT id, graph, graph_version, metadata, created_at, updated_at FROM threads \
             WHERE updated_at >= $1 ORDER BY updated_at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Threads, most recently updated first.
    pub async fn threads(&self, limit: i64) -> Result<Vec<ThreadRow>, StoreError> {
        let rows = sqlx::query_as::<_, ThreadRow>(
            "SELECT id, graph, graph_version, metadata, created_at, updated_at FROM threads \
             ORDER BY updated_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub async fn run(&self, id: Uuid) -> Result<RunRow, StoreError> {
        sqlx::query_as::<_, RunRow>(
            "SELECT id, thread_id, status, input, context, error, fence, graph_version, created_at FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NoRun(id))
    }

    /// A thread's runs, oldest first.
    pub async fn runs(&self, thread: Uuid) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query_as::<_, RunRow>(
            "SELECT id, thread_id, status, input, context, error, fence, graph_version, created_at FROM runs \
             WHERE thread_id = $1 ORDER BY created_at",
        )
        .bind(thread)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Starts a run on a thread, held by `owner`, with its input as log entry `first.seq`;
    /// or queues it, or refuses it when the thread has an open run.
    ///
    /// `first.seq` must follow the thread's last entry and `version` be the thread's graph
    /// version: otherwise the thread changed since it was read, and nothing is written
    /// ([`StoreError::Stale`]).
    pub(crate) async fn start_run(
        &self,
        first: &StepRow,
        version: &str,
        input: &State,
        context: &State,
        owner: &str,
        mode: StartMode,
    ) -> Result<Started, StoreError> {
        // The input is the log entry `first`; only a queued run keeps it in its row.
        let start = append_step(sqlx::query(START_RUN), first)
            .bind(Value::Object(context.clone()))
            .bind(owner)
            .bind(self.lease.as_secs_f64())
            .bind(version);
        let busy = match start.fetch_one(&self.pool).await {
            Ok(row) if row.try_get::<i64, _>("appended")? == 1 => {
                return Ok(Started::Running(Lease {
                    run: first.run,
                    thread: first.thread,
                    fence: 1,
                    owner: owner.to_owned(),
                }));
            }
            // The thread moved on since it was read: because a run started on it meanwhile
            // (which makes it busy), or for good (another run finished, a migrate).
            Ok(_) => self.open_run(first.thread).await?.is_some(),
            Err(err) if is_unique_violation(&err, "steps_pkey") => {
                self.open_run(first.thread).await?.is_some()
            }
            Err(err) if is_unique_violation(&err, "runs_one_open_per_thread") => true,
            Err(err) => return Err(err.into()),
        };
        match (busy, mode) {
            (false, _) => Err(StoreError::Stale { thread: first.thread }),
            (true, StartMode::Reject) => Err(self.conflict(first.thread).await),
            (true, StartMode::Enqueue) => {
                self.queue_run(first.thread, first.run, input, context).await?;
                Ok(Started::Queued(first.run))
            }
        }
    }

    /// The thread's running or interrupted run, if it has one.
    async fn open_run(&self, thread: Uuid) -> Result<Option<Uuid>, StoreError> {
        let open = sqlx::query_scalar(
            "SELECT id FROM runs WHERE thread_id = $1 AND status IN ('running', 'interrupted') LIMIT 1",
        )
        .bind(thread)
        .fetch_optional(&self.pool)
        .await?;
        Ok(open)
    }

    async fn queue_run(
        &self,
        thread: Uuid,
        run: Uuid,
        input: &State,
        context: &State,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO runs (id, thread_id, status, input, context) VALUES ($1, $2, 'pending', $3, $4)",
        )
        .bind(run)
        .bind(thread)
        .bind(Value::Object(input.clone()))
        .bind(Value::Object(context.clone()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn conflict(&self, thread: Uuid) -> StoreError {
        match self.open_run(thread).await {
            Ok(run) => StoreError::Conflict {
                thread,
                run: run.unwrap_or_default(),
            },
            Err(err) => err,
        }
    }

    /// Takes over a running run whose lease expired, raising its fence.
    pub async fn claim_expired(&self, owner: &str) -> Result<Option<(Lease, State)>, StoreError> {
        let row: Option<(Uuid, Uuid, i64, Value)> = sqlx::query_as(
            "UPDATE runs SET lease_owner = $1, lease_expires = now() + make_interval(secs => $2), \
                 fence = fence + 1, updated_at = now() \
             WHERE id = (SELECT id FROM runs WHERE status = 'running' AND lease_expires < now() \
                         ORDER BY lease_expires FOR UPDATE SKIP LOCKED LIMIT 1) \
             RETURNING id, thread_id, fence, context",
        )
        .bind(owner)
        .bind(self.lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(run, thread, fence, context)| (lease(run, thread, fence, owner), object(context))))
    }

    /// Takes the oldest queued run whose thread has no open run; it becomes running, held by
    /// `owner`. Returns its lease, input and context.
    pub async fn claim_pending(&self, owner: &str) -> Result<Option<(Lease, State, State)>, StoreError> {
        let claimed: Result<Option<(Uuid, Uuid, Value, Value)>, sqlx::Error> = sqlx::query_as(
            "UPDATE runs SET status = 'running', lease_owner = $1, \
                 lease_expires = now() + make_interval(secs => $2), fence = 1, updated_at = now(), \
                 graph_version = (SELECT graph_version FROM threads t WHERE t.id = runs.thread_id) \
             WHERE id = (SELECT r.id FROM runs r WHERE r.status = 'pending' AND NOT EXISTS \
                           (SELECT 1 FROM runs o WHERE o.thread_id = r.thread_id \
                            AND o.status IN ('running', 'interrupted')) \
                         ORDER BY r.created_at FOR UPDATE SKIP LOCKED LIMIT 1) \
             RETURNING id, thread_id, input, context",
        )
        .bind(owner)
        .bind(self.lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await;
        match claimed {
            Ok(row) => Ok(row.map(|(run, thread, input, context)| {
                (lease(run, thread, 1, owner), object(input), object(context))
            })),
            // Another worker started a run on that thread meanwhile: it waits for the next turn.
            Err(err) if is_unique_violation(&err, "runs_one_open_per_thread") => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Takes an interrupted run to resume it with answers.
    pub async fn claim_interrupted(&self, run: Uuid, owner: &str) -> Result<(Lease, State), StoreError> {
        let row: Option<(Uuid, i64, Value)> = sqlx::query_as(
            "UPDATE runs SET status = 'running', lease_owner = $2, \
                 lease_expires = now() + make_interval(secs => $3), fence = fence + 1, updated_at = now() \
             WHERE id = $1 AND status = 'interrupted' RETURNING thread_id, fence, context",
        )
        .bind(run)
        .bind(owner)
        .bind(self.lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((thread, fence, context)) => Ok((lease(run, thread, fence, owner), object(context))),
            None => {
                let status = self.run(run).await?.status;
                Err(StoreError::WrongStatus {
                    run,
                    status,
                    expected: "interrupted",
                })
            }
        }
    }

    /// Extends a lease; `false` when it was lost.
    pub async fn renew(&self, lease: &Lease) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET lease_expires = now() + make_interval(secs => $3) \
             WHERE id = $1 AND fence = $2 AND status = 'running'",
        )
        .bind(lease.run)
        .bind(lease.fence)
        .bind(self.lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Cancels a run that has not ended; its worker stops at its next commit.
    pub async fn cancel(&self, run: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'cancelled', lease_owner = NULL, lease_expires = NULL, updated_at = now() \
             WHERE id = $1 AND status IN ('pending', 'running', 'interrupted')",
        )
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Marks a run that wrote its only entry as succeeded (a caller's update of the state).
    pub(crate) async fn succeed(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET status = 'succeeded', lease_owner = NULL, lease_expires = NULL, updated_at = now() \
             WHERE id = $1 AND fence = $2",
        )
        .bind(lease.run)
        .bind(lease.fence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a run that has ended without succeeding (cancelled, failed) and everything it
    /// wrote to its thread's log, so the thread's state is again what it was before the run.
    /// Only the thread's last run can go: entries of a later run would lose what they follow.
    pub async fn roll_back(&self, run: Uuid) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(Uuid, String)> =
            sqlx::query_as("SELECT thread_id, status FROM runs WHERE id = $1 FOR UPDATE")
                .bind(run)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((thread, status)) = row else {
            return Err(StoreError::NoRun(run));
        };
        if !matches!(status.as_str(), "cancelled" | "failed") {
            return Err(StoreError::WrongStatus {
                run,
                status,
                expected: "cancelled or failed",
            });
        }
        let first: Option<i64> =
            sqlx::query_scalar("SELECT min(seq) FROM steps WHERE thread_id = $1 AND run_id = $2")
                .bind(thread)
                .bind(run)
                .fetch_one(&mut *tx)
                .await?;
        if let Some(first) = first {
            let later: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM steps WHERE thread_id = $1 AND seq >= $2 AND run_id <> $3)",
            )
            .bind(thread)
            .bind(first)
            .bind(run)
            .fetch_one(&mut *tx)
            .await?;
            if later {
                return Err(StoreError::WrongStatus {
                    run,
                    status: "followed by another run".to_owned(),
                    expected: "the thread's last run",
                });
            }
            sqlx::query(
                "WITH items AS (DELETE FROM items WHERE thread_id = $1 AND seq >= $2),
                      snapshots AS (DELETE FROM snapshots WHERE thread_id = $1 AND seq >= $2)
                 DELETE FROM steps WHERE thread_id = $1 AND seq >= $2",
            )
            .bind(thread)
            .bind(first)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(run)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn lease(run: Uuid, thread: Uuid, fence: i64, owner: &str) -> Lease {
    Lease {
        run,
        thread,
        fence,
        owner: owner.to_owned(),
    }
}

fn object(value: Value) -> State {
    match value {
        Value::Object(map) => map,
        _ => State::new(),
    }
}

fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}

/// Inserts the run, running and held, then (in the same statement) its input step — if the
/// thread is still on version `$17` and has no entry at `$3` or after.
/// `$14` context, `$15` owner, `$16` lease in seconds; `$1`…`$13` as in `append_step`.
const START_RUN: &str = concat!(
    "WITH run AS (INSERT INTO runs (id, thread_id, status, input, context, lease_owner, lease_expires, fence, \
             graph_version) \
         SELECT $2, $1, 'running', '{}', $14, $15, now() + make_interval(secs => $16), 1, $17 \
         WHERE EXISTS (SELECT 1 FROM threads WHERE id = $1 AND graph_version = $17) \
           AND NOT EXISTS (SELECT 1 FROM steps WHERE thread_id = $1 AND seq >= $3) \
         RETURNING id), \
     touched AS (UPDATE threads SET updated_at = now() WHERE id = $1 AND EXISTS (SELECT 1 FROM run)), ",
    super::journal::append_step_sql!()
);
