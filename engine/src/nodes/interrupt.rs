//! `interrupt`: pauses the run, hands a payload to the caller, resumes with the answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Assignments, NodeKind, SchemaRef};
use serde_json::Value;

use crate::graph::check::{NodeCx, WritesDefault};
use crate::run::{NodeError, Resume, RunCx, Waiting, Write};

/// Pauses the run and hands `payload` to the caller; the run resumes here with the caller's
/// answer as `output`.
///
/// ```yaml
/// confirm:
///   kind: interrupt
///   payload: { question: "'Save this goal?'", goal: draft_goal }
///   response_schema: { type: boolean }
///   writes: { confirmed: output }
/// ```
///
/// Payload values are expressions: a literal text needs quotes inside the YAML string.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterruptNode {
    /// What the caller is shown: name → minijinja expression over the state.
    #[serde(default)]
    pub payload: Assignments,
    /// The JSON Schema the answer must match.
    #[serde(default)]
    pub response_schema: Option<super::SchemaRef>,
    /// State field → minijinja expression over `output` (the answer).
    #[serde(default)]
    pub writes: Option<Assignments>,
}

impl NodeKind for InterruptNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        for expression in self.payload.values() {
            cx.expression(expression, &[]);
        }
        let schema = self
            .response_schema
            .as_ref()
            .and_then(|schema: &SchemaRef| cx.schema(schema));
        let origin = self
            .response_schema
            .as_ref()
            .map_or(cx.pos(), |schema| schema.0.pos);
        cx.writes(
            self.writes.as_ref(),
            schema.as_ref(),
            WritesDefault::Properties,
            origin,
        );
    }

    /// The first time, evaluates the payload and waits; resumed, writes the answer (which
    /// `Engine::resume` has validated against `response_schema`).
    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        if let Resume::Answer(answer) = &cx.resume {
            return cx.writes(self.writes.as_ref(), answer.clone());
        }
        let mut payload = serde_json::Map::new();
        for (name, expression) in &self.payload {
            payload.insert(name.value.clone(), cx.eval(expression)?);
        }
        Err(NodeError::Wait(Waiting::Interrupt {
            payload: Value::Object(payload),
        }))
    }
}
