//! `llm`: renders prompt templates, calls a model by alias, writes its answer to the state.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::{Assignments, NodeKind, SchemaRef};
use crate::graph::check::{Local, NodeCx, WritesDefault};
use crate::llm::structured::{JsonReply, complete_json};
use crate::llm::{History, LlmCall, LlmError, LlmRequest, Message, Role, TokenSink};
use crate::run::{Event, NodeError, RunCx, Write};
use crate::yaml::Spanned;
use serde_json::Value;
use std::sync::Arc;

/// Calls a language model.
///
/// ```yaml
/// classify:
///   kind: llm
///   model: fast
///   prompt: { system: assistant/classify.system.j2, user: assistant/classify.user.j2 }
///   output_schema: route.schema.json
///   writes: { route: output.route }
/// ```
///
/// Without `output_schema`, `output` is the reply text and `writes` is required. With it, the
/// reply is JSON validated against the schema, and unless `writes` says otherwise each of its
/// top-level properties goes to the state field of the same name.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmNode {
    /// A model alias defined in `finch.toml`, such as `fast` or `chat`.
    pub model: Spanned<String>,
    /// The template for the user message (a file in `prompts/`), or `system`, `history` and `user`.
    pub prompt: Prompt,
    /// Extra template variables: name → minijinja expression over the state.
    #[serde(default)]
    pub input: Assignments,
    /// The JSON Schema the reply must match; the model is then asked for JSON.
    #[serde(default)]
    pub output_schema: Option<SchemaRef>,
    /// State field → minijinja expression over `output` (and the state).
    #[serde(default)]
    pub writes: Option<Assignments>,
}

/// The messages sent to the model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Prompt {
    /// Template of the system message.
    pub system: Option<Spanned<String>>,
    /// A state field holding earlier messages (`[{role, content}]`), sent between the two.
    pub history: Option<Spanned<String>>,
    /// Template of the user message.
    pub user: Option<Spanned<String>>,
}

impl NodeKind for LlmNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        cx.model(&self.model);
        let mut locals = Vec::new();
        for (name, expression) in &self.input {
            cx.expression(expression, &[]);
            locals.push(Local::new(&name.value, None));
        }
        let Prompt {
            system,
            history,
            user,
        } = &self.prompt;
        if system.is_none() && user.is_none() {
            cx.error_hint(
                cx.pos(),
                "`prompt` has no template",
                "give `user:`, `system:` or both",
            );
        }
        for template in [system, user].into_iter().flatten() {
            cx.template(template, &locals);
        }
        if let Some(history) = history {
            cx.read_field(history, "`history`");
        }
        let schema = match &self.output_schema {
            Some(schema) => cx.schema(schema),
            None => Some(json!({ "type": "string" })),
        };
        let default = match self.output_schema {
            Some(_) => WritesDefault::PropertiesRequired(
                "the output schema lists no properties to store: say what to store with `writes:`",
            ),
            None => WritesDefault::Required("`writes: { answer: output }` stores the reply text"),
        };
        let origin = self
            .output_schema
            .as_ref()
            .map_or(self.model.pos, |schema| schema.0.pos);
        cx.writes(self.writes.as_ref(), schema.as_ref(), default, origin);
    }

    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        let request = self.request(cx)?;
        let sink = token_sink(cx);
        let llm = &*cx.engine.llm;
        let output = match cx.graph.compiled.nodes.get(cx.id) {
            Some(schema) => match complete_json(llm, &request, schema, Some(&sink)).await {
                Ok(JsonReply { value, calls }) => {
                    record(cx, calls);
                    value
                }
                Err(err) => {
                    record(cx, err.calls().to_vec());
                    return Err(NodeError::Failed {
                        retryable: err.is_retryable(),
                        message: err.to_string(),
                    });
                }
            },
            None => {
                let response = llm.complete(&request, Some(&sink)).await.map_err(llm_failure)?;
                let text = response.text.clone();
                record(cx, vec![LlmCall { request, response }]);
                Value::String(text)
            }
        };
        cx.writes(self.writes.as_ref(), output)
    }
}

impl<'de> Deserialize<'de> for Prompt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Prompt, D::Error> {
        let spanned = Spanned::<PromptForm>::deserialize(deserializer)?;
        Ok(match spanned.value {
            PromptForm::File(user) => Prompt {
                user: Some(Spanned::new(spanned.pos, user)),
                ..Prompt::default()
            },
            PromptForm::Parts(parts) => parts,
        })
    }
}

enum PromptForm {
    File(String),
    Parts(Prompt),
}

impl<'de> Deserialize<'de> for PromptForm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PromptForm, D::Error> {
        struct FormVisitor;

        impl<'de> Visitor<'de> for FormVisitor {
            type Value = PromptForm;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a template file, or a map with `system`, `history` and `user`")
            }

            fn visit_str<E>(self, file: &str) -> Result<PromptForm, E> {
                Ok(PromptForm::File(file.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PromptForm, A::Error> {
                #[derive(Deserialize)]
                #[serde(remote = "Prompt", deny_unknown_fields)]
                struct Parts {
                    #[serde(default)]
                    system: Option<Spanned<String>>,
                    #[serde(default)]
                    history: Option<Spanned<String>>,
                    #[serde(default)]
                    user: Option<Spanned<String>>,
                }
                Parts::deserialize(MapAccessDeserializer::new(map)).map(PromptForm::Parts)
            }
        }

        deserializer.deserialize_any(FormVisitor)
    }
}

impl JsonSchema for Prompt {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Prompt".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "A template file in `prompts/` for the user message, or the parts of the conversation.",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "system": { "type": "string", "description": "Template of the system message." },
                        "history": { "type": "string", "description": "A state field holding earlier messages ([{role, content}]), sent between system and user." },
                        "user": { "type": "string", "description": "Template of the user message." },
                    },
                    "additionalProperties": false,
                },
            ],
        })
    }
}

impl LlmNode {
    /// The messages for this run: system, history, user.
    fn request(&self, cx: &RunCx<'_>) -> Result<LlmRequest, NodeError> {
        let mut scope = cx.scope.clone();
        for (name, expression) in &self.input {
            scope = scope.with(name, &cx.eval(expression)?);
        }
        let mut messages = Vec::new();
        let mut fixed = Vec::new();
        if let Some(system) = &self.prompt.system {
            if cx.is_fixed(system) {
                fixed.push((messages.len(), system.value.clone()));
            }
            messages.push(Message::new(Role::System, cx.render(&scope, system)?));
        }
        let mut recorded_history = None;
        if let Some(history) = &self.prompt.history {
            let earlier = history_messages(cx.scope.state().get(history.as_str()), history)?;
            recorded_history = Some(History {
                field: history.value.clone(),
                start: messages.len(),
                count: earlier.len(),
            });
            messages.extend(earlier);
        }
        if let Some(user) = &self.prompt.user {
            if cx.is_fixed(user) {
                fixed.push((messages.len(), user.value.clone()));
            }
            messages.push(Message::new(Role::User, cx.render(&scope, user)?));
        }
        Ok(LlmRequest {
            node: cx.path.clone(),
            model: self.model.value.clone(),
            messages,
            output_schema: cx.graph.compiled.node_schemas.get(cx.id).cloned(),
            history: recorded_history,
            fixed,
        })
    }
}

/// Earlier messages from a state field of `[{role, content}]`.
fn history_messages(value: Option<&Value>, field: &str) -> Result<Vec<Message>, NodeError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    serde_json::from_value(value.clone()).map_err(|err| {
        NodeError::failed(format!(
            "`history` field `{field}` is not a list of {{role, content}} messages: {err}"
        ))
    })
}

/// Streams the model's text as `token` events.
fn token_sink(cx: &RunCx<'_>) -> TokenSink {
    let events = cx.events.clone();
    let node = cx.path.clone();
    Arc::new(move |text: &str| {
        events.emit(Event::Token {
            node: node.clone(),
            text: text.to_owned(),
        })
    })
}

/// Reports each call, so it can be recorded with the step.
fn record(cx: &RunCx<'_>, calls: Vec<LlmCall>) {
    for call in calls {
        cx.shared.record_call(cx.path.clone(), call.clone());
        cx.emit(Event::LlmCall {
            node: cx.path.clone(),
            call: Box::new(call),
        });
    }
}

fn llm_failure(err: LlmError) -> NodeError {
    NodeError::Failed {
        retryable: err.is_retryable(),
        message: err.to_string(),
    }
}
