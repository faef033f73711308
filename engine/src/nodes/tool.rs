//! `tool`: calls a built-in function, or one the application added ([`host`]), by name.

pub(crate) mod host;
mod numbers;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Assignments, NodeKind};
use crate::diagnostic::did_you_mean;
use crate::graph::check::{Local, NodeCx, WritesDefault};
use crate::run::{NodeError, RunCx, Write};
use crate::yaml::{Pos, Spanned, backticked};

/// Calls a built-in function with arguments computed from the state.
///
/// ```yaml
/// today:
///   kind: tool
///   tool: now
///   writes: { today: output }
/// ```
///
/// The tools and their arguments are listed in `graphs/README.md`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolNode {
    /// The tool's name; see the list of tools in `graphs/README.md`.
    pub tool: Spanned<String>,
    /// Argument → minijinja expression over the state.
    #[serde(default)]
    pub args: Assignments,
    /// State field → minijinja expression over `output` (and the state).
    #[serde(default)]
    pub writes: Option<Assignments>,
}

/// A built-in tool as the checker sees it: its arguments and the shape of its output.
#[derive(Debug)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Arguments it cannot do without.
    pub required: &'static [&'static str],
    /// Arguments it can do without.
    pub optional: &'static [&'static str],
    /// Whether it takes arguments of any other name too.
    pub open: bool,
    /// Its output is an object with one key per argument (rather than a text).
    pub echoes_args: bool,
    /// Its output is an object of its own (rather than a text).
    pub object_output: bool,
}

/// Every built-in tool.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "now",
        description: "The current time, as an RFC 3339 text in UTC.",
        required: &[],
        optional: &[],
        open: false,
        echoes_args: false,
        object_output: false,
    },
    ToolSpec {
        name: "sql_schema",
        description: "The views `sql_query` nodes may read, with their columns, types, meanings and example questions, as text for a prompt.",
        required: &[],
        optional: &[],
        open: false,
        echoes_args: false,
        object_output: false,
    },
    ToolSpec {
        name: "set",
        description: "Returns its arguments, so each is written to the state field of the same name.",
        required: &[],
        optional: &[],
        open: true,
        echoes_args: true,
        object_output: false,
    },
    ToolSpec {
        name: "check_numbers",
        description: "Checks that every number of `texts` (a text, or a list) appears in `sources` (its value, or a list with one per text): `{ ok, problems, passed }`.",
        required: &["texts", "sources"],
        optional: &[],
        open: false,
        echoes_args: false,
        object_output: true,
    },
    ToolSpec {
        name: "format",
        description: "Renders `template` (a minijinja text) with the other arguments and the state.",
        required: &["template"],
        optional: &[],
        open: true,
        echoes_args: false,
        object_output: false,
    },
];

impl NodeKind for ToolNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        for expression in self.args.values() {
            cx.expression(expression, &[]);
        }
        let Some(spec) = cx.tool(&self.tool) else {
            let names = cx.tool_names();
            let hint = did_you_mean(&self.tool, names.iter().copied())
                .unwrap_or_else(|| format!("the tools are {}", backticked(&names)));
            cx.error_hint(
                self.tool.pos,
                &format!("unknown tool `{}`", self.tool.value),
                &hint,
            );
            return;
        };
        check_args(cx, spec, &self.args, self.tool.pos);
        if let Some(template) = self.args.get("template").filter(|_| spec.name == "format") {
            let others: Vec<Local> = self.args.keys().map(|name| Local::new(name, None)).collect();
            cx.template_text(template, &others);
        }
        if spec.echoes_args {
            let properties: Map<String, Value> = self
                .args
                .keys()
                .map(|name| (name.value.clone(), json!({})))
                .collect();
            let output = json!({ "type": "object", "properties": properties, "additionalProperties": false });
            cx.writes(
                self.writes.as_ref(),
                Some(&output),
                WritesDefault::Properties,
                self.tool.pos,
            );
        } else {
            let hint = "`writes: { <field>: output }` stores the result";
            let output = match spec.object_output {
                true => json!({ "type": "object" }),
                false => json!({ "type": "string" }),
            };
            cx.writes(
                self.writes.as_ref(),
                Some(&output),
                WritesDefault::Required(hint),
                self.tool.pos,
            );
        }
    }

    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        let output = self.call(cx).await?;
        cx.writes(self.writes.as_ref(), output)
    }
}

impl ToolNode {
    /// Whether it calls one of the engine's own tools (rather than the application's).
    pub fn is_built_in(&self) -> bool {
        TOOLS.iter().any(|spec| spec.name == self.tool.as_str())
    }

    async fn call(&self, cx: &RunCx<'_>) -> Result<Value, NodeError> {
        let mut args = serde_json::Map::new();
        for (name, expression) in &self.args {
            args.insert(name.value.clone(), cx.eval(expression)?);
        }
        match self.tool.as_str() {
            "now" => Ok(Value::String(
                cx.engine
                    .clock
                    .now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )),
            "sql_schema" => match &cx.engine.sandbox {
                Some(sandbox) => Ok(Value::String(sandbox.catalog().to_text())),
                None => Err(NodeError::failed(
                    "tool `sql_schema` needs the SQL sandbox, and the run has none",
                )),
            },
            "set" => Ok(Value::Object(args)),
            "check_numbers" => numbers::check(&args["texts"], &args["sources"])
                .map_err(|err| NodeError::failed(format!("tool `check_numbers`: {err}"))),
            "format" => {
                let Some(Value::String(template)) = args.remove("template") else {
                    return Err(NodeError::failed("tool `format`: `template` must be a text"));
                };
                let mut scope = cx.scope.clone();
                for (name, value) in &args {
                    scope = scope.with(name, value);
                }
                let text = scope
                    .render_text(&cx.graph.compiled.templates, &template)
                    .map_err(|err| NodeError::failed(format!("tool `format`: {err}")))?;
                Ok(Value::String(text))
            }
            other => {
                let Some(tool) = cx.engine.host_tool(other) else {
                    return Err(NodeError::failed(format!("unknown tool `{other}`")));
                };
                let Some(pool) = &cx.engine.db else {
                    return Err(NodeError::failed(format!(
                        "tool `{other}` needs a database, and the run has none"
                    )));
                };
                // The guard borrows a local handle, not `cx`, so the future stays `Send`.
                let (shared, pool) = (cx.shared.clone(), pool.clone());
                let mut tx = shared
                    .transaction(&pool)
                    .await
                    .map_err(|err| NodeError::transient(format!("tool `{other}`: {err}")))?;
                let call = host::HostCall {
                    tx: &mut tx,
                    context: cx.scope.context(),
                    args,
                };
                tool.call(call)
                    .await
                    .map_err(|err| NodeError::failed(format!("tool `{other}`: {err}")))
            }
        }
    }
}

fn check_args(cx: &mut NodeCx<'_, '_>, spec: &ToolSpec, args: &Assignments, tool_pos: Pos) {
    let known: Vec<&str> = spec.required.iter().chain(spec.optional).copied().collect();
    for name in args.keys() {
        if !spec.open && !known.contains(&name.as_str()) {
            let message = format!("tool `{}` has no argument `{name}`", spec.name);
            let hint = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| match known.as_slice() {
                [] => "it takes no arguments".to_owned(),
                names => format!("its arguments are {}", backticked(names)),
            });
            cx.error_hint(name.pos, &message, &hint);
        }
    }
    for arg in spec.required {
        if !args.contains_key(*arg) {
            cx.error(
                tool_pos,
                &format!("tool `{}` needs the argument `{arg}`", spec.name),
            );
        }
    }
}
