//! Appending a run's steps to its thread's log: one statement per step, fenced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use uuid::Uuid;

use super::{Lease, Store, StoreError};
use crate::graph::Graph;
use crate::run::{Checkpoint, Journal, RunStatus, State, StepRecord, StepTransaction, Write};
use crate::state::Reducer;

/// One log entry, ready to insert.
#[derive(Debug, Clone)]
pub(crate) struct StepRow {
    pub(crate) thread: Uuid,
    pub(crate) run: Uuid,
    pub(crate) seq: i64,
    pub(crate) step: i32,
    pub(crate) nodes: Vec<String>,
    /// `[{node, field, value}]`.
    pub(crate) writes: Value,
    pub(crate) position: Value,
    /// Items appended to `append` fields: `[{field, idx, value}]`.
    pub(crate) items: Value,
    /// The state (but `append` fields) and those fields' lengths, when a snapshot is due.
    pub(crate) snapshot: Option<(Value, Value)>,
    /// `[{ordinal, node, provider, model, request, response, …}]`.
    pub(crate) calls: Value,
}

/// The statement's tail, shared by every way of appending a step. It follows a `run` CTE
/// that yields the run's id only when the writer may write; otherwise nothing is inserted.
/// Parameters `$1`…`$11` are those of [`append_step`]. A macro, so `concat!` can use it.
macro_rules! append_step_sql {
    () => {
        "\
    step AS (INSERT INTO steps (thread_id, seq, run_id, step, nodes, writes, position) \
        SELECT $1, $3, run.id, $4, $5, $6, $7 FROM run RETURNING seq), \
    items AS (INSERT INTO items (thread_id, field, idx, seq, value) \
        SELECT $1, i.field, i.idx, $3, i.value \
        FROM step, jsonb_to_recordset($8) AS i(field text, idx integer, value jsonb)), \
    snapshot AS (INSERT INTO snapshots (thread_id, seq, state, lengths) \
        SELECT $1, $3, $9, $10 FROM step WHERE $9::jsonb IS NOT NULL), \
    calls AS (INSERT INTO llm_calls (thread_id, seq, ordinal, node, provider, model, request, response, \
            prompt_tokens, completion_tokens, latency_ms) \
        SELECT $1, $3, c.ordinal, c.node, c.provider, c.model, c.request, c.response, \
            c.prompt_tokens, c.completion_tokens, c.latency_ms \
        FROM step, jsonb_to_recordset($11) AS c(ordinal integer, node text, provider text, model text, \
            request jsonb, response text, prompt_tokens bigint, completion_tokens bigint, latency_ms bigint)) \
    SELECT count(*) AS appended FROM step"
    };
}
pub(crate) use append_step_sql;

/// A step of a run that goes on: the fence is checked (and held) with a share lock.
const CONTINUE: &str = concat!(
    "WITH run AS (SELECT id FROM runs WHERE id = $2 AND fence = $12 AND lease_owner = $13 \
         AND status = 'running' FOR SHARE), ",
    append_step_sql!()
);

/// The step a run ends (or pauses) with: the run's status changes in the same statement.
const END: &str = concat!(
    "WITH run AS (UPDATE runs SET status = $14, lease_owner = NULL, lease_expires = NULL, updated_at = now() \
         WHERE id = $2 AND fence = $12 AND lease_owner = $13 AND status = 'running' RETURNING id), \
     touched AS (UPDATE threads SET updated_at = now() WHERE id = $1 AND EXISTS (SELECT 1 FROM run)), ",
    append_step_sql!()
);

/// Binds `$1`…`$11` of [`APPEND_STEP`].
pub(crate) fn append_step<'q>(
    query: Query<'q, Postgres, PgArguments>,
    row: &StepRow,
) -> Query<'q, Postgres, PgArguments> {
    let (state, lengths) = row.snapshot.clone().unzip();
    query
        .bind(row.thread)
        .bind(row.run)
        .bind(row.seq)
        .bind(row.step)
        .bind(row.nodes.clone())
        .bind(row.writes.clone())
        .bind(row.position.clone())
        .bind(row.items.clone())
        .bind(state)
        .bind(lengths)
        .bind(row.calls.clone())
}

/// Records one run's steps in its thread's log, under the run's lease.
#[derive(Debug)]
pub struct RunJournal {
    store: Store,
    lease: Lease,
    /// The `append` fields of the graph, whose items are stored once each.
    appends: BTreeSet<String>,
    next_seq: AtomicI64,
    /// The current length of each `append` field.
    lengths: Mutex<BTreeMap<String, i64>>,
}

impl RunJournal {
    /// A journal whose first entry is `next_seq`, for a state whose `append` fields have
    /// `lengths` items.
    pub fn new(
        store: Store,
        graph: &Graph,
        lease: Lease,
        next_seq: i64,
        lengths: BTreeMap<String, i64>,
    ) -> RunJournal {
        let appends = graph
            .state
            .iter()
            .filter(|(_, field)| field.reducer == Reducer::Append)
            .map(|(name, _)| name.clone())
            .collect();
        RunJournal {
            store,
            lease,
            appends,
            next_seq: AtomicI64::new(next_seq),
            lengths: Mutex::new(lengths),
        }
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The log entry for a step (or a run's input, step 0).
    pub(crate) fn row(
        &self,
        step: u32,
        nodes: Vec<String>,
        writes: &[(String, Write)],
        checkpoint: &Checkpoint,
    ) -> StepRow {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let mut lengths = self.lengths.lock().expect("lengths lock");
        let mut items = Vec::new();
        for (_, write) in writes
            .iter()
            .filter(|(_, write)| self.appends.contains(&write.field))
        {
            let length = lengths.entry(write.field.clone()).or_insert(0);
            for item in write.value.as_array().into_iter().flatten() {
                items.push(json!({ "field": write.field, "idx": *length, "value": item }));
                *length += 1;
            }
        }
        let due = seq % i64::from(self.store.snapshot_every) == 0;
        let snapshot = due.then(|| {
            (
                Value::Object(self.without_appends(&checkpoint.state)),
                json!(*lengths),
            )
        });
        let writes: Vec<Value> = writes
            .iter()
            .map(|(node, write)| json!({ "node": node, "field": write.field, "value": write.value }))
            .collect();
        StepRow {
            thread: self.lease.thread,
            run: self.lease.run,
            seq,
            step: step as i32,
            nodes,
            writes: Value::Array(writes),
            position: serde_json::to_value(checkpoint.position()).unwrap_or(Value::Null),
            items: Value::Array(items),
            snapshot,
            calls: json!([]),
        }
    }

    fn without_appends(&self, state: &State) -> State {
        state
            .iter()
            .filter(|(field, _)| !self.appends.contains(*field))
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect()
    }

    /// Records a run's input (step 0) when the run was started from the queue.
    pub(crate) async fn record_input(&self, row: StepRow) -> Result<(), StoreError> {
        self.append(None, row, None).await
    }

    async fn append(
        &self,
        transaction: Option<StepTransaction>,
        row: StepRow,
        end: Option<RunStatus>,
    ) -> Result<(), StoreError> {
        let query = match end {
            None => append_step(sqlx::query(CONTINUE), &row)
                .bind(self.lease.fence)
                .bind(&self.lease.owner),
            Some(status) => append_step(sqlx::query(END), &row)
                .bind(self.lease.fence)
                .bind(&self.lease.owner)
                .bind(status.name()),
        };
        let appended: i64 = match transaction {
            Some(mut transaction) => {
                let appended = query.fetch_one(&mut *transaction).await?.try_get("appended")?;
                if appended == 1 {
                    transaction.commit().await?;
                }
                appended
            }
            None => query.fetch_one(&self.store.pool).await?.try_get("appended")?,
        };
        match appended {
            1 => Ok(()),
            _ => Err(StoreError::Fenced {
                run: self.lease.run,
                fence: self.lease.fence,
            }),
        }
    }
}

impl Journal for RunJournal {
    fn commit<'a>(
        &'a self,
        transaction: Option<StepTransaction>,
        record: StepRecord<'a>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut row = self.row(record.step, record.nodes, &record.writes, record.checkpoint);
            row.calls = calls_json(&record.calls);
            self.append(transaction, row, record.end)
                .await
                .map_err(|err| format!("cannot record the step: {err}"))
        })
    }

    fn fail<'a>(&'a self, _checkpoint: &'a Checkpoint, error: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let done: Result<PgQueryResult, sqlx::Error> = sqlx::query(
                "UPDATE runs SET status = 'failed', error = $3, lease_owner = NULL, lease_expires = NULL, \
                     updated_at = now() WHERE id = $1 AND fence = $2 AND status = 'running'",
            )
            .bind(self.lease.run)
            .bind(self.lease.fence)
            .bind(error)
            .execute(&self.store.pool)
            .await;
            match done {
                Ok(done) if done.rows_affected() == 1 => Ok(()),
                Ok(_) => Err(format!(
                    "run `{}` is no longer held by this worker",
                    self.lease.run
                )),
                Err(err) => Err(err.to_string()),
            }
        })
    }
}

fn calls_json(calls: &[(String, crate::llm::LlmCall)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(ordinal, (node, call))| {
            json!({
                "ordinal": ordinal,
                "node": node,
                "provider": call.response.provider,
                "model": call.response.model,
                "request": call.request.compact(),
                "response": call.response.text,
                "prompt_tokens": call.response.usage.prompt_tokens,
                "completion_tokens": call.response.usage.completion_tokens,
                "latency_ms": call.response.latency_ms,
            })
        })
        .collect();
    Value::Array(calls)
}
