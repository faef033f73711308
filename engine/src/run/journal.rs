//! Where a run's steps are recorded, and what the nodes of one step share.
//!
//! After each step the loop hands a [`Journal`] a [`StepRecord`] — the nodes' writes, the
//! position after the step, the model calls — together with the step's transaction, if its
//! `sql` write nodes opened one: the record and those writes commit together or not at all.
//! Without a journal the loop commits the transaction itself. A subgraph's steps are part of
//! its parent's step: they share its transaction and its record.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use sqlx::{PgPool, Postgres, Transaction};

use super::RunStatus;
use super::checkpoint::{Checkpoint, State, Write};
use super::task::Answers;
use crate::llm::LlmCall;

/// An open transaction of a step.
pub type StepTransaction = Transaction<'static, Postgres>;

/// One step, as the loop reports it for recording.
#[derive(Debug)]
pub struct StepRecord<'a> {
    /// The step's number in its run.
    pub step: u32,
    /// The nodes whose results the step holds, in graph order.
    pub nodes: Vec<String>,
    /// What each node wrote, in merge order (empty for a pause: the results wait in
    /// `checkpoint.finished`).
    pub writes: Vec<(String, Write)>,
    /// Where the run stands after the step.
    pub checkpoint: &'a Checkpoint,
    /// The model calls made during the step, by node path, in the order they finished.
    pub calls: Vec<(String, LlmCall)>,
    /// What the nodes inside subgraphs and maps that reach outside the graph (`sql`, `now`)
    /// wrote, by node path, in the order they finished: a replay gives them back.
    pub effects: Vec<(String, Vec<Write>)>,
    /// The state each subgraph run in the step ended with, by node path.
    pub subgraphs: Vec<(String, State)>,
    /// How the run ends with this step: `None` while it goes on.
    pub end: Option<RunStatus>,
    /// The answers to interrupts the run was resumed with, when this step took them.
    pub answers: Option<Answers>,
}

/// Records steps durably.
pub trait Journal: Send + Sync {
    /// Records a step (or a pause) and commits, in `transaction` when the step has one.
    fn commit<'a>(
        &'a self,
        transaction: Option<StepTransaction>,
        record: StepRecord<'a>,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Records that the run failed; nothing of the failed step is kept.
    fn fail<'a>(&'a self, checkpoint: &'a Checkpoint, error: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// What the nodes of one top-level step share.
#[derive(Debug, Default)]
pub(crate) struct StepShared {
    transaction: Arc<tokio::sync::Mutex<Option<StepTransaction>>>,
    calls: Mutex<Vec<(String, LlmCall)>>,
    effects: Mutex<Vec<(String, Vec<Write>)>>,
    subgraphs: Mutex<Vec<(String, State)>>,
}

/// What the nodes of a step left in [`StepShared`].
pub(crate) struct StepParts {
    pub(crate) transaction: Option<StepTransaction>,
    pub(crate) calls: Vec<(String, LlmCall)>,
    pub(crate) effects: Vec<(String, Vec<Write>)>,
    pub(crate) subgraphs: Vec<(String, State)>,
}

impl StepShared {
    /// The step's transaction, begun on first use; held until the guard is dropped, so the
    /// step's writes run one at a time. The guard owns its lock, so it can be held across
    /// awaits without tying them to `self`.
    pub(crate) async fn transaction(&self, pool: &PgPool) -> Result<OwnedTransaction, sqlx::Error> {
        let mut guard = self.transaction.clone().lock_owned().await;
        if guard.is_none() {
            *guard = Some(pool.begin().await?);
        }
        Ok(OwnedTransaction(guard))
    }

    pub(crate) fn record_call(&self, node: String, call: LlmCall) {
        self.calls.lock().expect("calls lock").push((node, call));
    }

    pub(crate) fn record_effect(&self, node: String, writes: Vec<Write>) {
        self.effects.lock().expect("effects lock").push((node, writes));
    }

    pub(crate) fn record_subgraph(&self, node: String, state: State) {
        self.subgraphs.lock().expect("subgraphs lock").push((node, state));
    }

    /// The step's transaction, if one was begun, its calls, nested effects and subgraph states.
    pub(crate) fn into_parts(self) -> StepParts {
        StepParts {
            transaction: Arc::into_inner(self.transaction).and_then(tokio::sync::Mutex::into_inner),
            calls: self.calls.into_inner().expect("calls lock"),
            effects: self.effects.into_inner().expect("effects lock"),
            subgraphs: self.subgraphs.into_inner().expect("subgraphs lock"),
        }
    }
}

/// The step's transaction, locked for one node's statements.
pub(crate) struct OwnedTransaction(tokio::sync::OwnedMutexGuard<Option<StepTransaction>>);

impl std::ops::Deref for OwnedTransaction {
    type Target = StepTransaction;
    fn deref(&self) -> &StepTransaction {
        self.0.as_ref().expect("begun when locked")
    }
}

impl std::ops::DerefMut for OwnedTransaction {
    fn deref_mut(&mut self) -> &mut StepTransaction {
        self.0.as_mut().expect("begun when locked")
    }
}
