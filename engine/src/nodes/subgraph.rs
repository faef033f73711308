//! `subgraph`: runs another graph file with its own state.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Assignments, NodeKind};
use crate::diagnostic::did_you_mean;
use crate::graph::check::{NodeCx, WritesDefault};
use crate::run::{Answers, Drive, NodeError, Resume, RunCx, RunStatus, State, Waiting, Write, prepare};
use crate::yaml::{Spanned, backticked};

/// Runs another graph, with its own state, as one step of this one.
///
/// ```yaml
/// database:
///   kind: subgraph
///   graph: database_agent
///   input: { question: "messages | last" }
///   writes: { rows: output.rows, answer: output.answer }
/// ```
///
/// `graph` names a graph file beside this one (`database_agent.yaml`). `input` gives the
/// subgraph's input fields from expressions over this graph's state. `output` holds the
/// subgraph's output fields; unless `writes` says otherwise, each goes to the field of the
/// same name here.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubgraphNode {
    /// The name of a graph file in the same folder, without `.yaml`.
    pub graph: Spanned<String>,
    /// The subgraph's input field → minijinja expression over this graph's state.
    #[serde(default)]
    pub input: Assignments,
    /// State field → minijinja expression over `output` (the subgraph's outputs).
    #[serde(default)]
    pub writes: Option<Assignments>,
}

impl NodeKind for SubgraphNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        for expression in self.input.values() {
            cx.expression(expression, &[]);
        }
        let Some(graph) = cx.subgraph(&self.graph) else {
            return;
        };
        for (name, field) in &graph.context {
            if field.default_value().is_none() && !cx.has_context(name) {
                let message = format!(
                    "graph `{}` needs the context `{name}`, which this graph does not have",
                    graph.name
                );
                let hint =
                    format!("declare `{name}` under `context:` here; a subgraph gets its parent's context");
                cx.error_hint(self.graph.pos, &message, &hint);
            }
        }
        if cx.in_map() && graph.can_pause() {
            let message = format!(
                "graph `{}` can pause for an answer, so a `map` cannot run it",
                graph.name
            );
            let hint = "run it as a `subgraph` node of its own, outside the `map`";
            cx.error_hint(self.graph.pos, &message, hint);
        }
        for name in self.input.keys() {
            if !graph.input.contains(&name.value) {
                let message = format!("`{name}` is not an input of graph `{}`", graph.name);
                let hint = did_you_mean(name, graph.input.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("its inputs are {}", backticked(&graph.input)));
                cx.error_hint(name.pos, &message, &hint);
            }
        }
        for input in &graph.input {
            let given = self.input.contains_key(input.as_str());
            let has_default = graph
                .state
                .get(input)
                .is_some_and(|field| field.default_value().is_some());
            if !given && !has_default {
                let message = format!("input `{input}` of graph `{}` is not given", graph.name);
                let hint = format!(
                    "add it to `input`, or give the field a `default` in `{}`",
                    graph.file.display()
                );
                cx.warning_hint(self.graph.pos, &message, &hint);
            }
        }
        let properties: Map<String, Value> = graph
            .output
            .iter()
            .map(|name| (name.clone(), graph.state[name].schema.clone()))
            .collect();
        let output = json!({ "type": "object", "properties": properties, "additionalProperties": false });
        cx.writes(
            self.writes.as_ref(),
            Some(&output),
            WritesDefault::Properties,
            self.graph.pos,
        );
    }

    /// Runs the subgraph to its end (or its first pause) as one step of this graph.
    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        let Some(graph) = cx.graph.subgraphs.get(self.graph.as_str()) else {
            return Err(NodeError::failed(format!(
                "graph `{}` is not loaded",
                self.graph.value
            )));
        };
        let events = cx.events.nested(&cx.path, cx.step);
        let drive = Drive {
            events: &events,
            journal: None,
            parent: Some(cx.shared.clone()),
        };
        let outcome = match &cx.resume {
            Resume::Child { checkpoint, answers } => {
                cx.engine
                    .drive(graph, (**checkpoint).clone(), answers.clone(), drive)
                    .await
            }
            _ => {
                let mut input = State::new();
                for (name, expression) in &self.input {
                    input.insert(name.value.clone(), cx.eval(expression)?);
                }
                let context = cx.scope.context().clone();
                let context = context
                    .into_iter()
                    .filter(|(name, _)| graph.context.contains_key(name))
                    .collect();
                let (checkpoint, _) = prepare(graph, State::new(), input, context)
                    .map_err(|err| NodeError::failed(format!("graph `{}`: {err}", graph.name)))?;
                cx.engine.drive(graph, checkpoint, Answers::new(), drive).await
            }
        };
        match outcome.status {
            RunStatus::Succeeded => {
                cx.shared
                    .record_subgraph(cx.path.clone(), outcome.checkpoint.state);
                cx.writes(self.writes.as_ref(), Value::Object(outcome.output))
            }
            RunStatus::Interrupted => Err(NodeError::Wait(Waiting::Subgraph {
                checkpoint: Box::new(outcome.checkpoint),
            })),
            RunStatus::Failed => Err(NodeError::failed(outcome.error.unwrap_or_default())),
        }
    }
}
