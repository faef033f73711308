//! `sql`: runs one parameterized statement and hands its rows to `writes`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(crate) mod rows;

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
        } else if let Some(word) = (self.mode == SqlMode::Read)
            .then(|| WRITE_KEYWORDS.iter().find(|word| has_keyword(query, word)))
            .flatten()
        {
            let message = format!("a `read` query cannot contain `{}`", word.to_ascii_uppercase());
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
        cx.writes(
            self.writes.as_ref(),
            Some(&output),
            WritesDefault::Nothing,
            self.query.pos,
        );
    }

    /// Binds the parameters and runs the statement on the engine's database.
    /// A `read` runs alone (its check refused anything that changes data), or, with a timeout,
    /// in a read-only transaction of its own; a `write` runs in the step's transaction, which
    /// commits with the step's record (or not at all). A node's timeout is the statement's
    /// `statement_timeout`, so a statement cut short does not go on.
    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        let Some(pool) = &cx.engine.db else {
            return Err(NodeError::failed(
                "this `sql` node needs a database, and the run has none",
            ));
        };
        let mut params = Vec::with_capacity(self.params.len());
        for param in &self.params {
            params.push(cx.eval(param)?);
        }
        let output = match self.mode {
            // One round trip: the check made sure the statement changes nothing.
            SqlMode::Read if cx.timeout.is_none() => {
                let mut conn = pool.acquire().await.map_err(database_failure)?;
                self.execute(&mut conn, params, None)
                    .await
                    .map_err(database_failure)?
            }
            SqlMode::Read => {
                let mut tx = pool.begin().await.map_err(database_failure)?;
                sqlx::query("SET TRANSACTION READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .map_err(database_failure)?;
                let output = self
                    .execute(&mut tx, params, cx.timeout)
                    .await
                    .map_err(database_failure)?;
                tx.commit().await.map_err(database_failure)?;
                output
            }
            SqlMode::Write => {
                // The guard borrows a local handle, not `cx`, so the future stays `Send`.
                let (shared, pool) = (cx.shared.clone(), pool.clone());
                let mut tx = shared.transaction(&pool).await.map_err(database_failure)?;
                self.execute(&mut tx, params, cx.timeout)
                    .await
                    .map_err(database_failure)?
            }
        };
        let output = output.map_err(NodeError::failed)?;
        cx.writes(self.writes.as_ref(), output)
    }
}

impl SqlNode {
    /// Runs the statement in `tx`: its rows as JSON (or why they have none), or the database's
    /// error.
    fn execute<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        params: Vec<Value>,
        timeout: Option<std::time::Duration>,
    ) -> futures::future::BoxFuture<'a, Result<Result<Value, String>, sqlx::Error>> {
        Box::pin(async move {
            if let Some(timeout) = timeout {
                let setting = format!("SET LOCAL statement_timeout = {}", timeout.as_millis().max(1));
                sqlx::query(sqlx::AssertSqlSafe(setting))
                    .execute(&mut *conn)
                    .await?;
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(self.query.value.clone()));
            for param in params {
                query = rows::bind(query, param);
            }
            if self.mode == SqlMode::Read || has_keyword(&self.query, "returning") {
                let rows = query.fetch_all(&mut *conn).await?;
                let rows: Result<Vec<Value>, String> = rows.iter().map(rows::row_to_json).collect();
                return Ok(rows.map(|rows| json!({ "rows_affected": rows.len(), "rows": rows })));
            }
            let done = query.execute(&mut *conn).await?;
            Ok(Ok(json!({ "rows_affected": done.rows_affected(), "rows": [] })))
        })
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

/// `sql` with the insides of string literals, quoted names and comments blanked out, so
/// what is left is code.
fn code_only(sql: &str) -> String {
    let mut code = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let end = match (c, chars.peek()) {
            ('\'' | '"', _) => Some(c.to_string()),
            ('-', Some('-')) => Some("\n".to_owned()),
            ('/', Some('*')) => Some("*/".to_owned()),
            _ => None,
        };
        let Some(end) = end else {
            code.push(c);
            continue;
        };
        code.push(' ');
        let mut previous = c;
        for inner in chars.by_ref() {
            code.push(' ');
            let closes = match end.as_str() {
                "*/" => previous == '*' && inner == '/',
                other => other.starts_with(inner),
            };
            if closes {
                break;
            }
            previous = inner;
        }
    }
    code
}

/// The highest `$n` placeholder in `sql`, outside quotes and comments.
fn highest_placeholder(sql: &str) -> usize {
    let code = code_only(sql);
    code.split('$')
        .skip(1)
        .filter_map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// Whether `word` appears in `sql` as a keyword (not inside a name, string or comment).
fn has_keyword(sql: &str, word: &str) -> bool {
    code_only(sql)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|token| token.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::{has_keyword, highest_placeholder};

    #[test]
    fn returning_is_found_as_a_keyword_only() {
        assert!(has_keyword("INSERT INTO t VALUES (1) Returning id", "returning"));
        assert!(!has_keyword(
            "UPDATE c SET returning_customer = true",
            "returning"
        ));
        assert!(!has_keyword(
            "UPDATE c SET note = 'returning' -- returning",
            "returning"
        ));
    }

    #[test]
    fn placeholders_in_strings_and_comments_do_not_count() {
        let sql = "SELECT '$9', \"$8\" FROM t -- $7\n WHERE a = $2 /* $6 */ AND b = $1";
        assert_eq!(highest_placeholder(sql), 2);
        assert_eq!(highest_placeholder("SELECT 1"), 0);
    }
}
