//! Running one node: what it can reach, its timeout and retries, and turning its output into
//! writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Engine;
use std::sync::Arc;

use super::checkpoint::{Checkpoint, Waiting, Write};
use super::event::{Event, Events};
use super::journal::StepShared;
use super::scope::Scope;
use crate::graph::{Graph, NodeId};
use crate::nodes::{Assignments, Node, NodeCommon, Retry};

/// Answers to interrupts, by interrupt id (the node's path).
pub type Answers = BTreeMap<String, Value>;

/// What a node run can reach.
#[derive(Clone)]
pub(crate) struct RunCx<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) graph: &'a Graph,
    /// The node's id; inside a `map`, the map's.
    pub(crate) id: &'a NodeId,
    /// The node's path for events and scripts (`database/write_sql`, `answer_all[2]`).
    pub(crate) path: String,
    pub(crate) step: u32,
    pub(crate) scope: Scope,
    pub(crate) events: &'a Events,
    pub(crate) resume: Resume,
    /// The node's `timeout_secs`, which a node may also pass on (as `statement_timeout`).
    pub(crate) timeout: Option<Duration>,
    /// What the nodes of the top-level step share: the transaction of `sql` writes, the
    /// model calls made.
    pub(crate) shared: Arc<StepShared>,
}

/// How a node run starts: afresh, or continuing after a pause.
#[derive(Debug, Clone)]
pub(crate) enum Resume {
    Fresh,
    /// The caller's answer to this `interrupt` node.
    Answer(Value),
    /// This `subgraph` node's run, where it paused, and the answers for it.
    Child {
        checkpoint: Box<Checkpoint>,
        answers: Answers,
    },
}

/// Why a node run did not produce writes.
#[derive(Debug, Clone)]
pub(crate) enum NodeError {
    /// It failed; `retryable` when trying again may help (timeouts, provider faults).
    Failed { message: String, retryable: bool },
    /// It waits for an answer.
    Wait(Waiting),
}

impl NodeError {
    pub(crate) fn failed(message: impl Into<String>) -> NodeError {
        NodeError::Failed {
            message: message.into(),
            retryable: false,
        }
    }

    pub(crate) fn transient(message: impl Into<String>) -> NodeError {
        NodeError::Failed {
            message: message.into(),
            retryable: true,
        }
    }
}

impl RunCx<'_> {
    /// Evaluates an expression in the node's scope.
    pub(crate) fn eval(&self, expression: &str) -> Result<Value, NodeError> {
        self.scope
            .eval(&self.graph.compiled.templates, expression)
            .map_err(|err| NodeError::failed(format!("expression `{expression}`: {err}")))
    }

    /// Renders one of the graph's templates in the node's scope.
    /// Whether a template is plain text, with no variable, tag or expression: it renders the
    /// same every time.
    pub(crate) fn is_fixed(&self, template: &str) -> bool {
        self.graph
            .compiled
            .templates
            .get_template(template)
            .is_ok_and(|t| !t.source().contains("{{") && !t.source().contains("{%"))
    }

    pub(crate) fn render(&self, scope: &Scope, template: &str) -> Result<String, NodeError> {
        scope
            .render(&self.graph.compiled.templates, template)
            .map_err(|err| NodeError::failed(format!("template `{template}`: {err}")))
    }

    /// Turns a node's output into writes: by its `writes`, or else the fields the checker
    /// found in its output's schema — never any other key the output happens to hold.
    pub(crate) fn writes(
        &self,
        writes: Option<&Assignments>,
        output: Value,
    ) -> Result<Vec<Write>, NodeError> {
        let Some(writes) = writes else {
            let fields = self
                .graph
                .compiled
                .default_writes
                .get(self.id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Value::Object(mut output) = output else {
                return Ok(Vec::new());
            };
            let found = fields
                .iter()
                .filter_map(|field| Some((field, output.remove(field)?)));
            return Ok(found
                .map(|(field, value)| Write {
                    field: field.clone(),
                    value,
                })
                .collect());
        };
        let scope = self.scope.with("output", &output);
        let mut found = Vec::with_capacity(writes.len());
        for (field, expression) in writes {
            let value = scope
                .eval(&self.graph.compiled.templates, expression)
                .map_err(|err| NodeError::failed(format!("`writes.{field}`: {err}")))?;
            found.push(Write {
                field: field.value.clone(),
                value,
            });
        }
        Ok(found)
    }

    pub(crate) fn emit(&self, event: Event) {
        self.events.emit(event);
    }
}

/// Runs a node under its timeout and retry policy — or, in a replay, gives the writes it made
/// when recorded, if it reaches outside the graph. The writes of such a node inside a
/// subgraph or a map are kept with the step, for replays.
pub(crate) async fn run_node(
    cx: &RunCx<'_>,
    common: &NodeCommon,
    node: &Node,
) -> Result<Vec<Write>, NodeError> {
    let nested = cx.path != cx.id.as_str();
    if let Some(writes) = cx.engine.recorded_writes(cx.step, &cx.path, nested, node) {
        return Ok(writes);
    }
    let result = attempt_node(cx, common, node).await;
    if let Ok(writes) = &result
        && nested
        && node.reaches_outside()
    {
        cx.shared.record_effect(cx.path.clone(), writes.clone());
    }
    result
}

/// [`run_node`]'s attempts.
async fn attempt_node(cx: &RunCx<'_>, common: &NodeCommon, node: &Node) -> Result<Vec<Write>, NodeError> {
    let attempts = common.retry.as_ref().map_or(1, |retry| retry.attempts.max(1));
    // Checked graphs only hold timeouts that fit a `Duration`.
    let timeout = common
        .timeout_secs
        .as_ref()
        .and_then(|secs| Duration::try_from_secs_f64(secs.value).ok());
    let mut cx = cx.clone();
    cx.timeout = timeout;
    let cx = &cx;
    let mut attempt = 1;
    loop {
        let result = match timeout {
            Some(limit) => tokio::time::timeout(limit, node.run(cx))
                .await
                .unwrap_or_else(|_| Err(timed_out(node, limit))),
            None => node.run(cx).await,
        };
        let retry = match (&result, &common.retry) {
            (Err(NodeError::Failed { retryable: true, .. }), Some(retry)) if attempt < attempts => retry,
            _ => return result,
        };
        let delay = backoff(retry, attempt);
        if let Err(NodeError::Failed { message, .. }) = result {
            cx.emit(Event::NodeRetrying {
                step: cx.step,
                node: cx.path.clone(),
                attempt,
                error: message,
                delay_ms: delay.as_millis() as u64,
            });
        }
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// A timed-out attempt; a write is not retried after one, since it may have been applied.
fn timed_out(node: &Node, limit: Duration) -> NodeError {
    let message = format!("timed out after {}s", limit.as_secs_f64());
    match node.writes_outside() {
        true => NodeError::failed(format!("{message} (a write is not retried after a timeout)")),
        false => NodeError::transient(message),
    }
}

/// Full jitter: a random delay up to the exponential backoff for this attempt.
fn backoff(retry: &Retry, attempt: u32) -> Duration {
    let exponential = retry.backoff_ms.saturating_mul(1u64 << (attempt - 1).min(20));
    let cap = exponential.min(retry.max_backoff_ms);
    Duration::from_millis(rand::random_range(0..=cap))
}

/// A node run for the step loop: events around it, and how long it took.
pub(crate) async fn run_task(
    cx: RunCx<'_>,
    def: &crate::nodes::NodeDef,
) -> (NodeId, Result<Vec<Write>, NodeError>) {
    let started = Instant::now();
    cx.emit(Event::NodeStarted {
        step: cx.step,
        node: cx.path.clone(),
    });
    let result = run_node(&cx, &def.common, &def.node).await;
    match &result {
        Ok(writes) => cx.emit(Event::NodeFinished {
            step: cx.step,
            node: cx.path.clone(),
            writes: writes.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        }),
        Err(NodeError::Failed { message, .. }) => cx.emit(Event::NodeFailed {
            step: cx.step,
            node: cx.path.clone(),
            error: message.clone(),
        }),
        Err(NodeError::Wait(Waiting::Interrupt { payload })) => cx.emit(Event::NodeInterrupted {
            step: cx.step,
            node: cx.path.clone(),
            payload: payload.clone(),
        }),
        Err(NodeError::Wait(Waiting::Subgraph { .. })) => {}
    }
    (def.id.clone(), result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_its_cap() {
        let retry = Retry {
            attempts: 5,
            backoff_ms: 100,
            max_backoff_ms: 250,
        };
        let first: Vec<Duration> = (0..200).map(|_| backoff(&retry, 1)).collect();
        let third: Vec<Duration> = (0..200).map(|_| backoff(&retry, 3)).collect();
        assert!(first.iter().all(|delay| *delay <= Duration::from_millis(100)));
        assert!(third.iter().all(|delay| *delay <= Duration::from_millis(250)));
        // Uniform over [0, 250] ms, 200 draws all at or below 100 ms would be a 0.4^200 chance.
        assert!(
            third.iter().any(|delay| *delay > Duration::from_millis(100)),
            "the third delay never grew"
        );
    }
}
