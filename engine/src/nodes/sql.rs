//! `sql`: runs one parameterized statement and hands its rows to `writes`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

mod rows;

use super::{Assignments, NodeKind};
use crate::graph::check::{NodeCx, WritesDefault};
use crate::run::{NodeError, RunCx, Write};
use crate::yaml::Spanned;
use serde_json::Value;

/// Runs one SQL statement with parameters bound from the state.
///
/// ```yaml
/// budgets:
///   kind: sql
///   query: SELECT name, monthly_limit FROM budgets WHERE user_id = $1 AND active
///   params: [context.user_id]
///   writes: { budgets: output.rows }
/// ```
///
/// `$1`, `$2` … are bound to the values of `params` (expressions), never spliced into the
/// text. `output` is `{ rows, rows_affected }`: rows are objects, decimals are strings and
/// dates ISO strings. A `write` statement commits with the step that runs it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlNode {
    /// `read` (the default) or `write`.
    #[serde(default)]
    pub mode: SqlMode,
    /// One SQL statement, with `$1`, `$2` … for the parameters.
    pub query: Spanned<String>,
    /// Minijinja expressions over the state, bound in order to `$1`, `$2` ….
    #[serde(default)]
    pub params: Vec<Spanned<String>>,
    /// State field → minijinja expression over `output` (and the state).
    #[serde(default)]
    pub writes: Option<Assignments>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SqlMode {
    /// A query that changes nothing.
    #[default]
    Read,
    /// A statement that changes data.
    Write,
}

const WRITE_KEYWORDS: &[&str] = &[
    "insert", "update", "delete", "merge", "truncate", "create", "drop", "alter",
];

impl NodeKind for SqlNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        let query = &self.query;
        let first_word = query
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if first_word.is_empty() {
            cx.error(query.pos, "`query` is empty");
        } else if self.mode == SqlMode::Read && WRITE_KEYWORDS.contains(&first_word.as_str()) {
            let message = format!(
                "a `read` query cannot start with `{}`",
                first_word.to_ascii_uppercase()
            );
            cx.error_hint(
                query.pos,
                &message,
                "set `mode: write` for a statement that changes data",
            );
        }
        let used = highest_placeholder(query);
        let given = self.params.len();
        if used > given {
            let message = format!("the query uses `${used}` but `params` has {given} value(s)");
            cx.error_hint(
                query.pos,
                &message,
                "add one expression to `params` per placeholder, in order",
            );
        } else if used < given {
            let message = format!("`params` has {given} value(s) but the query uses only up to `${used}`");
            cx.warning_hint(self.params[used].pos, &message, "remove the extra parameters");
        }
        for param in &self.params {
            cx.expression(param, &[]);
        }
        let output = json!({
            "type": "object",
            "properties": {
                "rows": { "type": "array", "items": { "type": "object" } },
                "rows_affected": { "type": "integer" },
            },
            "additionalProperties": false,
        });
        cx.writes(self.writes.as_ref(), Some(&output), WritesDefault::Nothing);
    }

    /// Binds the parameters and runs the statement on the engine's database.
    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        let Some(pool) = &cx.engine.db else {
            return Err(NodeError::failed(
                "this `sql` node needs a database, and the run has none",
            ));
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.query.value.clone()));
        for param in &self.params {
            query = rows::bind(query, cx.eval(param)?);
        }
        let returns_rows =
            self.mode == SqlMode::Read || self.query.to_ascii_lowercase().contains("returning");
        let output = if returns_rows {
            let rows = query.fetch_all(pool).await.map_err(database_failure)?;
            let rows: Vec<Value> = rows
                .iter()
                .map(rows::row_to_json)
                .collect::<Result<_, _>>()
                .map_err(NodeError::failed)?;
            json!({ "rows_affected": rows.len(), "rows": rows })
        } else {
            let done = query.execute(pool).await.map_err(database_failure)?;
            json!({ "rows_affected": done.rows_affected(), "rows": [] })
        };
        cx.writes(self.writes.as_ref(), output, WritesDefault::Nothing)
    }
}

/// A database error: the statement's own fault fails at once; a lost connection may pass.
fn database_failure(err: sqlx::Error) -> NodeError {
    let retryable = matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    );
    NodeError::Failed {
        message: format!("the database refused the statement: {err}"),
        retryable,
    }
}

/// The highest `$n` placeholder in `sql`, outside quotes and comments.
fn highest_placeholder(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut highest = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
            }
            b'$' => {
                let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse::<usize>() {
                    highest = highest.max(n);
                }
            }
            _ => {}
        }
        i += 1;
    }
    highest
}

#[cfg(test)]
mod tests {
    use super::highest_placeholder;

    #[test]
    fn placeholders_in_strings_and_comments_do_not_count() {
        let sql = "SELECT '$9', \"$8\" FROM t -- $7\n WHERE a = $2 /* $6 */ AND b = $1";
        assert_eq!(highest_placeholder(sql), 2);
        assert_eq!(highest_placeholder("SELECT 1"), 0);
    }
}
