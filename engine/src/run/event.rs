//! Events: what a run reports as it goes, through a channel.
//!
//! The CLI prints them; the HTTP API will stream them. Sending never blocks the run and never
//! fails it: with no receiver, events are dropped. Nodes inside a subgraph report with their
//! path (`database/write_sql`); the subgraph's own start, steps and end are not reported, since
//! its parent's step covers them.

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::RunStatus;
use super::checkpoint::{Interrupt, State, Write};
use crate::llm::LlmCall;

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        graph: String,
        /// The run's id, when it is a durable run (a worker's).
        #[serde(skip_serializing_if = "Option::is_none")]
        run: Option<uuid::Uuid>,
    },
    NodeStarted {
        step: u32,
        node: String,
    },
    /// Text from a model, as it streams.
    Token {
        node: String,
        text: String,
    },
    /// A finished model call, with what was sent and what came back.
    LlmCall {
        node: String,
        #[serde(flatten)]
        call: Box<LlmCall>,
    },
    NodeRetrying {
        step: u32,
        node: String,
        attempt: u32,
        error: String,
        delay_ms: u64,
    },
    NodeFinished {
        step: u32,
        node: String,
        writes: Vec<Write>,
        duration_ms: u64,
    },
    NodeFailed {
        step: u32,
        node: String,
        error: String,
    },
    NodeInterrupted {
        step: u32,
        node: String,
        payload: Value,
    },
    /// A step's writes were merged: the state after it.
    StepFinished {
        step: u32,
        nodes: Vec<String>,
        state: State,
    },
    /// The run paused; these questions wait for answers.
    Interrupted {
        interrupts: Vec<Interrupt>,
    },
    RunFinished {
        status: RunStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Event {
    fn set_step(&mut self, parent_step: u32) {
        match self {
            Event::NodeStarted { step, .. }
            | Event::NodeRetrying { step, .. }
            | Event::NodeFinished { step, .. }
            | Event::NodeFailed { step, .. }
            | Event::NodeInterrupted { step, .. }
            | Event::StepFinished { step, .. } => *step = parent_step,
            _ => {}
        }
    }
}

/// Where a run's events go.
#[derive(Debug, Clone, Default)]
pub struct Events {
    sender: Option<UnboundedSender<Event>>,
    /// Path of the subgraph node these events come from, with a trailing `/`.
    prefix: String,
    /// For a subgraph's events, the step of the parent run they belong to.
    step: Option<u32>,
}

impl Events {
    /// Events into a channel; read them from the receiver while the run goes.
    pub fn channel() -> (Events, UnboundedReceiver<Event>) {
        let (sender, receiver) = unbounded_channel();
        let events = Events {
            sender: Some(sender),
            prefix: String::new(),
            step: None,
        };
        (events, receiver)
    }

    /// Events nobody listens to.
    pub fn none() -> Events {
        Events::default()
    }

    /// The events of a subgraph run inside node `path`, which runs in the parent's `step`:
    /// they carry the parent's step number, so a reader sees one timeline.
    pub(crate) fn nested(&self, path: &str, step: u32) -> Events {
        Events {
            sender: self.sender.clone(),
            prefix: format!("{path}/"),
            step: Some(self.step.unwrap_or(step)),
        }
    }

    /// Whether anyone listens: events that are costly to build are skipped otherwise.
    pub(crate) fn is_on(&self) -> bool {
        self.sender.is_some()
    }

    pub(crate) fn is_nested(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// A node's path as events and scripts name it.
    pub(crate) fn path(&self, node: &str) -> String {
        format!("{}{node}", self.prefix)
    }

    pub(crate) fn emit(&self, mut event: Event) {
        if let Some(parent_step) = self.step {
            event.set_step(parent_step);
        }
        if let Some(sender) = &self.sender {
            // A receiver that went away does not stop the run.
            let _ = sender.send(event);
        }
    }
}
