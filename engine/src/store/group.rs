//! Group commit: steps of different runs that are ready at the same moment are appended in
//! one statement and one transaction, instead of one each.
//!
//! There is no background task. A run that has a step to append queues it; whoever holds one
//! of the few permits takes everything queued, appends it, and hands each run its result.
//! While a batch is in flight the next one gathers, so batches grow with the load by
//! themselves, and a lone run pays nothing: a batch of one is the single-step statement.
//! Each step still commits before its run goes on, fenced as alone; a batch that fails as a
//! whole (a duplicate entry, a lost connection) is retried step by step, so each run gets its
//! own answer.

use std::mem;
use std::sync::Mutex;

use serde_json::{Value, json};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use super::StoreError;
use super::journal::{StepRow, append_step, append_step_sql};

/// Batches in flight at once.
const PERMITS: usize = 2;
/// Steps in one batch at most.
const MAX_BATCH: usize = 64;

/// A step to append, fenced by its run's lease.
#[derive(Debug)]
pub(crate) struct Append {
    pub(crate) row: StepRow,
    pub(crate) fence: i64,
    pub(crate) owner: String,
    /// The run's status when this step ends it (or pauses it).
    pub(crate) end: Option<&'static str>,
}

#[derive(Debug)]
struct Queued {
    append: Append,
    /// Whether the step was appended: `false` when the lease was lost.
    done: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue of steps waiting to be appended.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: Mutex<Vec<Queued>>,
    permits: Semaphore,
}

impl GroupCommit {
    pub(crate) fn new() -> GroupCommit {
        GroupCommit {
            queue: Mutex::new(Vec::new()),
            permits: Semaphore::new(PERMITS),
        }
    }

    /// Appends one step, with whatever else is waiting; `Ok(false)` when its run's lease
    /// was lost.
    pub(crate) async fn append(&self, pool: &PgPool, append: Append) -> Result<bool, StoreError> {
        let (done, mut result) = oneshot::channel();
        self.queue
            .lock()
            .expect("queue lock")
            .push(Queued { append, done });
        loop {
            tokio::select! {
                biased;
                outcome = &mut result => {
                    return outcome.unwrap_or_else(|_| Err(StoreError::Corrupt("a step batch was dropped".into())));
                }
                permit = self.permits.acquire() => {
                    let _permit = permit.expect("the semaphore is never closed");
                    loop {
                        let batch = self.take();
                        if batch.is_empty() {
                            break;
                        }
                        run(pool, batch).await;
                    }
                }
            }
        }
    }

    fn take(&self) -> Vec<Queued> {
        let mut queue = self.queue.lock().expect("queue lock");
        if queue.len() <= MAX_BATCH {
            return mem::take(&mut *queue);
        }
        queue.drain(..MAX_BATCH).collect()
    }
}

/// Appends a batch and answers each of its runs.
async fn run(pool: &PgPool, batch: Vec<Queued>) {
    if batch.len() > 1 {
        let rows: Vec<Value> = batch.iter().map(|queued| batch_row(&queued.append)).collect();
        let appended: Result<Vec<Uuid>, sqlx::Error> = sqlx::query(BATCH)
            .bind(Value::Array(rows))
            .fetch_all(pool)
            .await
            .map(|rows| rows.iter().map(|row| row.get("run_id")).collect());
        if let Ok(appended) = appended {
            for queued in batch {
                let ok = appended.contains(&queued.append.row.run);
                let _ = queued.done.send(Ok(ok));
            }
            return;
        }
    }
    // Alone, or the batch failed as a whole: each step by itself.
    for queued in batch {
        let _ = queued.done.send(one(pool, &queued.append).await);
    }
}

/// One step, in the statement of its own.
pub(crate) async fn one(pool: &PgPool, append: &Append) -> Result<bool, StoreError> {
    let appended: i64 = statement(append).fetch_one(pool).await?.try_get("appended")?;
    Ok(appended == 1)
}

/// The statement that appends one step, fenced: [`CONTINUE`], or [`END`] for the step that
/// ends (or pauses) its run. It yields `appended`: 1, or 0 when the lease was lost.
pub(crate) fn statement(append: &Append) -> Query<'_, Postgres, PgArguments> {
    let query = match append.end {
        None => append_step(sqlx::query(CONTINUE), &append.row),
        Some(_) => append_step(sqlx::query(END), &append.row),
    };
    let query = query.bind(append.fence).bind(&append.owner);
    match append.end {
        None => query,
        Some(status) => query.bind(status),
    }
}

/// A step of a run that goes on: the fence is checked (and held) with a share lock.
const CONTINUE: &str = concat!(
    "WITH run AS (SELECT id FROM runs WHERE id = $2 AND thread_id = $1 AND fence = $14 AND lease_owner = $15 \
         AND status = 'running' FOR SHARE), ",
    append_step_sql!()
);

/// The step a run ends (or pauses) with: the run's status changes in the same statement.
const END: &str = concat!(
    "WITH run AS (UPDATE runs SET status = $16, lease_owner = NULL, lease_expires = NULL, updated_at = now() \
         WHERE id = $2 AND thread_id = $1 AND fence = $14 AND lease_owner = $15 AND status = 'running' \
         RETURNING id), ",
    append_step_sql!()
);

/// Many steps, each fenced by its own run; returns the runs whose step was appended.
const BATCH: &str = "\
    WITH input AS (SELECT * FROM jsonb_to_recordset($1) AS i(thread_id uuid, run_id uuid, seq bigint, \
        step integer, nodes text[], writes jsonb, position jsonb, items jsonb, state jsonb, lengths jsonb, \
        calls jsonb, answers jsonb, effects jsonb, subgraphs jsonb, fence bigint, owner text, status text)), \
    fenced AS (SELECT i.* FROM input i JOIN runs r ON r.id = i.run_id AND r.thread_id = i.thread_id \
        AND r.fence = i.fence \
        AND r.lease_owner = i.owner AND r.status = 'running' FOR SHARE OF r), \
    ended AS (UPDATE runs r SET status = f.status, lease_owner = NULL, lease_expires = NULL, updated_at = now() \
        FROM fenced f WHERE r.id = f.run_id AND f.status IS NOT NULL), \
    step AS (INSERT INTO steps (thread_id, seq, run_id, step, nodes, writes, position, calls, answers, effects, \
            subgraphs) \
        SELECT thread_id, seq, run_id, step, nodes, writes, position, calls, answers, effects, subgraphs \
        FROM fenced RETURNING run_id), \
    items AS (INSERT INTO items (thread_id, field, idx, seq, value) \
        SELECT f.thread_id, x.field, x.idx, f.seq, x.value \
        FROM fenced f CROSS JOIN LATERAL jsonb_to_recordset(f.items) AS x(field text, idx integer, value jsonb)), \
    snapshot AS (INSERT INTO snapshots (thread_id, seq, state, lengths) \
        SELECT thread_id, seq, state, lengths FROM fenced WHERE state IS NOT NULL) \
    SELECT run_id FROM step";

/// A step as one element of [`BATCH`]'s input.
fn batch_row(append: &Append) -> Value {
    let row = &append.row;
    let (state, lengths) = row.snapshot.clone().unzip();
    json!({
        "thread_id": row.thread,
        "run_id": row.run,
        "seq": row.seq,
        "step": row.step,
        "nodes": row.nodes,
        "writes": row.writes,
        "position": row.position,
        "items": row.items,
        "state": state,
        "lengths": lengths,
        "calls": row.calls,
        "answers": row.answers,
        "effects": row.effects,
        "subgraphs": row.subgraphs,
        "fence": append.fence,
        "owner": append.owner,
        "status": append.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread with a running run held by `w` at fence 1; returns (thread, run).
    async fn running(pool: &PgPool) -> (Uuid, Uuid) {
        let (thread, run) = (Uuid::now_v7(), Uuid::now_v7());
        sqlx::query(
            "INSERT INTO graph_versions (id, graph, files) VALUES ('v', 'g', '{}') ON CONFLICT DO NOTHING",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO threads (id, graph, graph_version) VALUES ($1, 'g', 'v')")
            .bind(thread)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO runs (id, thread_id, status, lease_owner, lease_expires, fence) \
             VALUES ($1, $2, 'running', 'w', now() + interval '1 minute', 1)",
        )
        .bind(run)
        .bind(thread)
        .execute(pool)
        .await
        .unwrap();
        (thread, run)
    }

    fn append(thread: Uuid, run: Uuid, seq: i64, fence: i64, end: Option<&'static str>) -> Append {
        let row = StepRow {
            thread,
            run,
            seq,
            step: 1,
            nodes: vec!["reply".to_owned()],
            writes: json!([{ "node": "reply", "field": "answer", "value": format!("answer {seq}") }]),
            position: json!({ "next": [], "step": 1, "visits": {} }),
            items: json!([{ "field": "messages", "idx": 0, "value": { "role": "user", "content": "hi" } }]),
            snapshot: Some((json!({ "answer": "a" }), json!({ "messages": 1 }))),
            calls: None,
            answers: None,
            effects: None,
            subgraphs: None,
        };
        Append {
            row,
            fence,
            owner: "w".to_owned(),
            end,
        }
    }

    /// Runs `appends` as one batch; the result each got.
    async fn batch(pool: &PgPool, appends: Vec<Append>) -> Vec<bool> {
        let (queued, results): (Vec<_>, Vec<_>) = appends
            .into_iter()
            .map(|append| {
                let (done, result) = oneshot::channel();
                (Queued { append, done }, result)
            })
            .unzip();
        run(pool, queued).await;
        let mut out = Vec::new();
        for result in results {
            out.push(result.await.unwrap().unwrap());
        }
        out
    }

    async fn count(pool: &PgPool, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn a_batch_appends_each_step_whose_run_still_holds_its_lease(pool: PgPool) {
        let (t1, r1) = running(&pool).await;
        let (t2, r2) = running(&pool).await;
        let (t3, r3) = running(&pool).await;
        let appended = batch(
            &pool,
            vec![
                append(t1, r1, 1, 1, None),
                append(t2, r2, 1, 1, Some("succeeded")),
                // Another worker took this run over: fence 2.
                append(t3, r3, 1, 0, None),
            ],
        )
        .await;
        assert_eq!(appended, [true, true, false]);
        assert_eq!(count(&pool, "steps").await, 2);
        assert_eq!(count(&pool, "items").await, 2);
        assert_eq!(count(&pool, "snapshots").await, 2);
        let statuses: Vec<(Uuid, String, Option<String>)> =
            sqlx::query_as("SELECT id, status, lease_owner FROM runs ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            statuses,
            [
                (r1, "running".to_owned(), Some("w".to_owned())),
                (r2, "succeeded".to_owned(), None),
                (r3, "running".to_owned(), Some("w".to_owned())),
            ]
        );
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn a_batch_that_fails_whole_is_retried_step_by_step(pool: PgPool) {
        let (t1, r1) = running(&pool).await;
        let (t2, r2) = running(&pool).await;
        // Entry 1 of thread 1 exists already: the batch's insert of it fails, and with it the
        // whole statement; thread 2's step must still be appended.
        assert!(one(&pool, &append(t1, r1, 1, 1, None)).await.unwrap());
        let (done, first) = oneshot::channel();
        let (done2, second) = oneshot::channel();
        run(
            &pool,
            vec![
                Queued {
                    append: append(t1, r1, 1, 1, None),
                    done,
                },
                Queued {
                    append: append(t2, r2, 1, 1, None),
                    done: done2,
                },
            ],
        )
        .await;
        let first = first.await.unwrap();
        assert!(
            matches!(&first, Err(StoreError::Database(err)) if err.to_string().contains("duplicate key")),
            "{first:?}"
        );
        assert!(second.await.unwrap().unwrap());
        assert_eq!(count(&pool, "steps").await, 2);
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn concurrent_appends_all_land(pool: PgPool) {
        let group = GroupCommit::new();
        let mut runs = Vec::new();
        for _ in 0..12 {
            runs.push(running(&pool).await);
        }
        let appends = runs
            .iter()
            .map(|&(thread, run)| group.append(&pool, append(thread, run, 1, 1, None)));
        let appended = futures::future::join_all(appends).await;
        assert!(
            appended.iter().all(|result| matches!(result, Ok(true))),
            "{appended:?}"
        );
        assert_eq!(count(&pool, "steps").await, 12);
    }
}
