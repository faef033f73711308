//! `sql_query`: runs SQL taken from the state (written by a model) in the SQL sandbox.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Assignments, NodeKind};
use crate::graph::check::{NodeCx, WritesDefault};
use crate::run::{NodeError, RunCx, Write};
use crate::sandbox::{SandboxError, UserId};
use crate::yaml::Spanned;

/// Runs one query written by a model, for the run's user, in the SQL sandbox: only the
/// semantic views, only that user's rows, read-only, rows capped.
///
/// ```yaml
/// ask_database:
///   kind: sql_query
///   sql: draft.sql
///   as_user: user_id
///   question: question
///   writes: { result: output }
/// ```
///
/// `output` is `{ ok, sql, columns, rows, row_count, truncated, error }`. A query the
/// sandbox refuses, or one the database fails, is not a failed node: `ok` is false and
/// `error` says why, for the model to repair its query. The views it may read are given to
/// prompts by the `sql_schema` tool.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlQueryNode {
    /// Minijinja expression giving the SQL text.
    pub sql: Spanned<String>,
    /// The `context` field holding the user to run as (a number or a UUID). Only whoever
    /// starts the run sets the context, so nothing in the graph can change whom it reads for.
    pub as_user: Spanned<String>,
    /// Minijinja expression giving the user's question; the audit keeps its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<Spanned<String>>,
    /// State field → minijinja expression over `output` (and the state).
    #[serde(default)]
    pub writes: Option<Assignments>,
}

impl NodeKind for SqlQueryNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        cx.expression(&self.sql, &[]);
        if let Some(question) = &self.question {
            cx.expression(question, &[]);
        }
        if !cx.has_context(&self.as_user) {
            let message = format!(
                "`as_user` names `{}`, which is not a context field",
                self.as_user.value
            );
            cx.error_hint(
                self.as_user.pos,
                &message,
                "declare the user under `context:` so that whoever starts the run sets it",
            );
        }
        let output = json!({
            "type": "object",
            "properties": {
                "ok": { "type": "boolean" },
                "sql": { "type": ["string", "null"] },
                "columns": { "type": "array", "items": { "type": "string" } },
                "rows": { "type": "array", "items": { "type": "object" } },
                "row_count": { "type": "integer" },
                "truncated": { "type": "boolean" },
                "error": { "type": ["string", "null"] },
            },
            "additionalProperties": false,
        });
        cx.writes(
            self.writes.as_ref(),
            Some(&output),
            WritesDefault::Required("`writes: { <field>: output }` stores the result"),
            self.sql.pos,
        );
    }

    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        let Some(sandbox) = &cx.engine.sandbox else {
            return Err(NodeError::failed(
                "this `sql_query` node needs the SQL sandbox, and the run has none",
            ));
        };
        let user = cx
            .scope
            .context()
            .get(self.as_user.as_str())
            .and_then(UserId::from_json)
            .ok_or_else(|| {
                NodeError::failed(format!(
                    "context `{}` is not a user id (a number or a UUID)",
                    self.as_user.value
                ))
            })?;
        let sql = match cx.eval(&self.sql)? {
            Value::String(sql) => sql,
            Value::Null => String::new(),
            other => return Err(NodeError::failed(format!("`sql` gave {other}, not a text"))),
        };
        let question = match &self.question {
            Some(question) => Some(cx.eval(question)?),
            None => None,
        };
        let question = question.as_ref().and_then(Value::as_str);
        let outcome = sandbox
            .query(&user, question, &sql)
            .await
            .map_err(|err| match err {
                SandboxError::Database(_) if err.is_transient() => NodeError::transient(err.to_string()),
                err => NodeError::failed(err.to_string()),
            })?;
        cx.writes(self.writes.as_ref(), outcome.to_json())
    }
}
