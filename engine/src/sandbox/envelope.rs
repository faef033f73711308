//! The transaction a sandboxed query runs in: read-only, with the user, the timeouts and the
//! memory for sorts set for it alone; the query wrapped as a subquery, so that PostgreSQL
//! accepts nothing else, in one prepared statement (the extended protocol carries exactly
//! one); rows and bytes capped while they stream; always rolled back, and the session
//! discarded after.

use std::time::Duration;

use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{Column, Connection, PgPool, Row};

use super::{CheckedSql, Outcome, SandboxConfig, UserId, Verdict};
use crate::nodes::sql::rows::row_to_json;

/// Runs `sql` for `user` on a connection of `pool` (logged in as the sandbox role). A
/// database error caused by the query is an [`Outcome`] that says what went wrong; losing
/// the connection is an error.
pub(super) async fn run(
    pool: &PgPool,
    config: &SandboxConfig,
    user: &UserId,
    sql: &CheckedSql,
    wrap: bool,
) -> Result<Outcome, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // The server stops the statement at `statement_timeout`; this is for a server that
    // does not answer at all.
    let deadline = config.statement_timeout + Duration::from_secs(2);
    match tokio::time::timeout(deadline, in_transaction(&mut conn, config, user, sql, wrap)).await {
        Ok(Ok(outcome)) => {
            forget_session(&mut conn).await;
            Ok(outcome)
        }
        Ok(Err(sqlx::Error::Database(err))) => {
            forget_session(&mut conn).await;
            Ok(failed(sql, config, err.code().as_deref(), err.message()))
        }
        Ok(Err(err)) => {
            // Not the database's answer: the connection's state is unknown, so it goes.
            drop(conn.detach());
            match err {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => Err(err),
                // A result sqlx cannot read (a column of an internal type, say).
                other => Ok(failed(
                    sql,
                    config,
                    None,
                    &format!("the result cannot be read: {other}"),
                )),
            }
        }
        Err(_) => {
            // The connection may be mid-statement: never hand it to another query.
            drop(conn.detach());
            Ok(failed(
                sql,
                config,
                Some(QUERY_CANCELED),
                "no answer from the database",
            ))
        }
    }
}

/// Drops what a statement can leave on a connection past its transaction's rollback (a
/// prepared statement, a `LISTEN`, a session setting), so that the next user's query starts
/// clean; a connection that cannot be cleaned is closed.
async fn forget_session(conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) {
    if sqlx::raw_sql("DISCARD ALL").execute(&mut **conn).await.is_err() {
        conn.close_on_drop();
    }
}

async fn in_transaction(
    conn: &mut sqlx::PgConnection,
    config: &SandboxConfig,
    user: &UserId,
    sql: &CheckedSql,
    wrap: bool,
) -> Result<Outcome, sqlx::Error> {
    let mut tx = conn.begin().await?;
    // Our own text, with values that are not user input: one round trip for all settings.
    sqlx::raw_sql(sqlx::AssertSqlSafe(settings(config, user)))
        .execute(&mut *tx)
        .await?;
    let mut outcome = Outcome {
        verdict: Verdict::Ran,
        sql: Some(sql.as_str().to_owned()),
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
        error: None,
    };
    let mut bytes = 0;
    let result = {
        // As a subquery, PostgreSQL itself accepts nothing but a query: no `DO`, `SET`,
        // `PREPARE` or data-modifying `WITH`, whatever reaches it.
        let wrapped = match wrap {
            true => format!("SELECT * FROM ({}\n) AS sandboxed", sql.as_str()),
            false => sql.as_str().to_owned(),
        };
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(wrapped))
            .persistent(false)
            .fetch(&mut *tx);
        loop {
            let Some(row) = rows.try_next().await? else {
                break Ok(());
            };
            if outcome.columns.is_empty() {
                outcome.columns = row
                    .columns()
                    .iter()
                    .map(|column| column.name().to_owned())
                    .collect();
            }
            let value = match row_to_json(&row) {
                Ok(value) => value,
                Err(problem) => break Err(problem),
            };
            bytes += json_len(&value);
            if outcome.rows.len() as u64 >= config.max_rows || bytes > config.max_bytes {
                outcome.truncated = true;
                break Ok(());
            }
            outcome.rows.push(value);
        }
    };
    tx.rollback().await?;
    if let Err(problem) = result {
        outcome = Outcome::refused(Verdict::Failed, outcome.sql, problem);
    }
    Ok(outcome)
}

/// `SET TRANSACTION` and `SET LOCAL`s, which end with the transaction.
fn settings(config: &SandboxConfig, user: &UserId) -> String {
    format!(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
         SET LOCAL search_path = {schema}; \
         SET LOCAL {setting} = '{user}'; \
         SET LOCAL statement_timeout = {statement}; \
         SET LOCAL lock_timeout = {lock}; \
         SET LOCAL idle_in_transaction_session_timeout = {idle}; \
         SET LOCAL work_mem = '16MB';",
        schema = quoted_identifier(&config.schema),
        setting = config
            .user_setting
            .split('.')
            .map(quoted_identifier)
            .collect::<Vec<_>>()
            .join("."),
        user = user.as_str(),
        statement = config.statement_timeout.as_millis().max(1),
        lock = config.lock_timeout.as_millis().max(1),
        idle = (config.statement_timeout * 2).as_millis().max(1),
    )
}

fn quoted_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
}

/// SQLSTATE of a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

fn failed(sql: &CheckedSql, config: &SandboxConfig, code: Option<&str>, message: &str) -> Outcome {
    let error = match code {
        Some(QUERY_CANCELED) => format!(
            "the query took longer than {} ms and was stopped; make it simpler",
            config.statement_timeout.as_millis()
        ),
        _ => message.to_owned(),
    };
    Outcome::refused(Verdict::Failed, Some(sql.as_str().to_owned()), error)
}
