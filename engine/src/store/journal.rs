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

use super::group::{Append, statement};
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
    /// `[{node, provider, model, request, response, …}]`, or `None` when the step made no call.
    pub(crate) calls: Option<Value>,
    /// The answers the run was resumed with, for the step that took them.
    pub(crate) answers: Option<Value>,
    /// `[{node, writes}]` of nested nodes that reach outside the graph, or `None`.
    pub(crate) effects: Option<Value>,
    /// `[{node, state}]`: the state each subgraph run of the step ended with, or `None`.
    pub(crate) subgraphs: Option<Value>,
}

/// The statement's tail, shared by every way of appending a step. It follows a `run` CTE
/// that yields the run's id only when the writer may write; otherwise nothing is inserted.
/// Parameters `$1`…`$13` are those of [`append_step`]. A macro, so `concat!` can use it.
macro_rules! append_step_sql {
    () => {
        "\
    step AS (INSERT INTO steps (thread_id, seq, run_id, step, nodes, writes, position, calls, answers, effects, \
            subgraphs) \
        SELECT $1, $3, run.id, $4, $5, $6, $7, $11, $12, NULLIF($13::jsonb -> 'effects', 'null'), \
            NULLIF($13::jsonb -> 'subgraphs', 'null') FROM run RETURNING seq), \
    items AS (INSERT INTO items (thread_id, field, idx, seq, value) \
        SELECT $1, i.field, i.idx, $3, i.value \
        FROM step, jsonb_to_recordset($8) AS i(field text, idx integer, value jsonb)), \
    snapshot AS (INSERT INTO snapshots (thread_id, seq, state, lengths) \
        SELECT $1, $3, $9, $10 FROM step WHERE $9::jsonb IS NOT NULL) \
    SELECT count(*) AS appended FROM step"
    };
}
pub(crate) use append_step_sql;

/// Binds `$1`…`$13` of [`append_step_sql`].
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
        .bind(row.answers.clone())
        .bind(json!({ "effects": row.effects, "subgraphs": row.subgraphs }))
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

    /// The last entry this journal wrote (or the one before its first), and the lengths of
    /// the `append` fields after it.
    pub(crate) fn last(&self) -> (i64, BTreeMap<String, i64>) {
        let lengths = self.lengths.lock().expect("lengths lock").clone();
        (self.next_seq.load(Ordering::SeqCst) - 1, lengths)
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
        // An `append` write's items are in `items` already: the entry says how many.
        let writes: Vec<Value> = writes
            .iter()
            .map(|(node, write)| match write.value.as_array() {
                Some(items) if self.appends.contains(&write.field) => {
                    json!({ "node": node, "field": write.field, "appended": items.len() })
                }
                _ => json!({ "node": node, "field": write.field, "value": write.value }),
            })
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
            calls: None,
            answers: None,
            effects: None,
            subgraphs: None,
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
        let append = Append {
            row,
            fence: self.lease.fence,
            owner: self.lease.owner.clone(),
            end: end.map(RunStatus::name),
        };
        let appended = match transaction {
            // The step's `sql` writes are in this transaction: it commits alone.
            Some(mut transaction) => {
                let appended: i64 = statement(&append)
                    .fetch_one(&mut *transaction)
                    .await?
                    .try_get("appended")?;
                if appended == 1 {
                    transaction.commit().await?;
                }
                appended == 1
            }
            None => self.store.group.append(&self.store.pool, append).await?,
        };
        if appended {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                run: self.lease.run,
                fence: self.lease.fence,
            })
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
            row.answers = record.answers.map(|answers| json!(answers));
            row.effects = (!record.effects.is_empty()).then(|| {
                let effects: Vec<Value> = record
                    .effects
                    .iter()
                    .map(|(node, writes)| json!({ "node": node, "writes": writes }))
                    .collect();
                Value::Array(effects)
            });
            row.subgraphs = (!record.subgraphs.is_empty()).then(|| {
                let states: Vec<Value> = record
                    .subgraphs
                    .iter()
                    .map(|(node, state)| json!({ "node": node, "state": state }))
                    .collect();
                Value::Array(states)
            });
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

fn calls_json(calls: &[(String, crate::llm::LlmCall)]) -> Option<Value> {
    if calls.is_empty() {
        return None;
    }
    let calls: Vec<Value> = calls
        .iter()
        .map(|(node, call)| {
            json!({
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
    Some(Value::Array(calls))
}
