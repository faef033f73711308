//! `llm`: renders prompt templates, calls a model by alias, writes its answer to the state.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::{Assignments, NodeKind, SchemaRef};
use crate::graph::check::{Local, NodeCx, WritesDefault};
use crate::yaml::Spanned;

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
            Some(_) => WritesDefault::Properties,
            None => WritesDefault::Required("`writes: { answer: output }` stores the reply text"),
        };
        cx.writes(self.writes.as_ref(), schema.as_ref(), default);
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
