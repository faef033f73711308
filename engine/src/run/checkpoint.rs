//! Where a run stands between steps: everything needed to continue it, as plain data.
//!
//! A [`Checkpoint`] is taken after every step, and when a run pauses for an answer. It holds
//! the state, the nodes of the next step, joins half-way, visit counts, and — when the run is
//! paused — the results of the step's nodes that already finished, so resuming re-runs none of
//! them. It serializes to JSON, nested subgraph runs included.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::NodeId;

/// A run's state: field name → value. An absent field has no value yet.
pub type State = serde_json::Map<String, Value>;

/// One value a node wrote to one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Write {
    pub field: String,
    pub value: Value,
}

/// Everything needed to continue a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Steps completed.
    pub step: u32,
    pub state: State,
    /// The values the caller gave for the graph's `context`.
    pub context: State,
    /// The nodes of the next step, in graph order; empty once the run has ended.
    pub next: Vec<NodeId>,
    /// Sources of joining edges (by edge index) that finished while the join waits for others.
    pub joins: BTreeSet<(usize, NodeId)>,
    /// How often each node with a `max_visits` has been started.
    pub visits: BTreeMap<NodeId, u32>,
    /// Nodes of `next` that finished, with their writes, while others wait for an answer.
    pub finished: BTreeMap<NodeId, Vec<Write>>,
    /// Nodes of `next` that wait for an answer.
    pub waiting: BTreeMap<NodeId, Waiting>,
}

/// Where a run stands, without its state and context (which are stored apart): what a step's
/// log entry records.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Position {
    pub step: u32,
    pub next: Vec<NodeId>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub joins: BTreeSet<(usize, NodeId)>,
    /// How many times each node with a `max_visits` has been started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub visits: BTreeMap<NodeId, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub finished: BTreeMap<NodeId, Vec<Write>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub waiting: BTreeMap<NodeId, Waiting>,
}

impl Checkpoint {
    /// The checkpoint's position.
    pub fn position(&self) -> Position {
        Position {
            step: self.step,
            next: self.next.clone(),
            joins: self.joins.clone(),
            visits: self.visits.clone(),
            finished: self.finished.clone(),
            waiting: self.waiting.clone(),
        }
    }

    /// A checkpoint from its parts.
    pub fn from_parts(state: State, context: State, position: Position) -> Checkpoint {
        Checkpoint {
            step: position.step,
            state,
            context,
            next: position.next,
            joins: position.joins,
            visits: position.visits,
            finished: position.finished,
            waiting: position.waiting,
        }
    }
}

/// Why a node waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Waiting {
    /// An `interrupt` node, with what it showed the caller.
    Interrupt { payload: Value },
    /// A `subgraph` node whose run waits, where it stands.
    Subgraph { checkpoint: Box<Checkpoint> },
}

/// A question a paused run waits to have answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupt {
    /// The path of the interrupt node through subgraphs (`confirm`, `maker/confirm`); answers
    /// are keyed by it.
    pub id: String,
    pub payload: Value,
}

impl Checkpoint {
    pub(crate) fn new(state: State, context: State) -> Checkpoint {
        Checkpoint {
            step: 0,
            state,
            context,
            next: Vec::new(),
            joins: BTreeSet::new(),
            visits: BTreeMap::new(),
            finished: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
    }

    /// Every question this run (and the subgraph runs inside it) waits for.
    pub fn interrupts(&self) -> Vec<Interrupt> {
        let mut found = Vec::new();
        self.collect_interrupts("", &mut found);
        found
    }

    fn collect_interrupts(&self, prefix: &str, found: &mut Vec<Interrupt>) {
        for (node, waiting) in &self.waiting {
            let path = format!("{prefix}{node}");
            match waiting {
                Waiting::Interrupt { payload } => found.push(Interrupt {
                    id: path,
                    payload: payload.clone(),
                }),
                Waiting::Subgraph { checkpoint } => checkpoint.collect_interrupts(&format!("{path}/"), found),
            }
        }
    }
}
