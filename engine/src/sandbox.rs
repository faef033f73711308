//! The SQL sandbox: runs SQL that a model wrote, for one user, so that it can only ever read
//! that user's rows of the views it was given.
//!
//! The layers, each holding on its own (ARCHITECTURE.md has the whole list):
//! - [`check`]: the parser allowlist, with a specific reason for every refusal;
//! - [`envelope`]: one prepared statement in a read-only transaction that sets the user and
//!   the timeouts and is always rolled back, on a pool logged in as the sandbox role;
//! - the database (`migrations/`): the role can read only the semantic views, cannot run the
//!   dangerous built-ins, and row-level security filters every table by the user set here;
//! - limits: rows, bytes, a per-user rate, and an audit row per query.
//!
//! [`catalog`] describes the views, from the database, for the prompts.

pub mod catalog;
pub mod check;
pub mod envelope;

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

pub use catalog::Catalog;
pub use check::{CheckedSql, Rejection};

/// The role `migrations/` create for sandboxed queries, and log in as.
pub const ROLE: &str = "finch_sql";

/// What the sandbox allows one query.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The schema of the semantic views: the only relations a query may name.
    pub schema: String,
    /// The setting that row-level security reads the user from (`SET LOCAL`).
    pub user_setting: String,
    /// Rows returned at most; more are cut and the result marked `truncated`.
    pub max_rows: u64,
    /// Bytes of JSON returned at most; more rows are cut and the result marked `truncated`.
    pub max_bytes: usize,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    /// Queries one user may run in a minute, refused or not.
    pub queries_per_minute: u32,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            schema: "semantic".to_owned(),
            user_setting: "finch.user_id".to_owned(),
            max_rows: 500,
            max_bytes: 256 * 1024,
            statement_timeout: Duration::from_secs(3),
            lock_timeout: Duration::from_millis(500),
            queries_per_minute: 30,
        }
    }
}

/// Whom a query runs for: a number or a UUID, read from a run's context (which only the
/// caller of the run sets) and written into SQL only in this canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn from_json(value: &Value) -> Option<UserId> {
        match value {
            Value::Number(number) => number.as_i64().map(|id| UserId(id.to_string())),
            Value::String(text) => text
                .parse::<i64>()
                .map(|id| id.to_string())
                .or_else(|_| text.parse::<uuid::Uuid>().map(|id| id.to_string()))
                .ok()
                .map(UserId),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It ran; the rows are the answer.
    Ran,
    /// The allowlist refused it; the error says why.
    Rejected,
    /// The database refused it or it failed (a missing column, a timeout).
    Failed,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ran => "ran",
            Verdict::Rejected => "rejected",
            Verdict::Failed => "failed",
        }
    }
}

/// A query's result, as data for the graph: decimals are strings, dates ISO text.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The SQL that ran (re-printed, with its limit), when it got that far.
    pub sql: Option<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Value>,
    pub truncated: bool,
    /// Why it was refused or failed, worded so that the model can repair its query.
    pub error: Option<String>,
}

impl Outcome {
    fn refused(verdict: Verdict, sql: Option<String>, error: String) -> Outcome {
        Outcome {
            verdict,
            sql,
            columns: Vec::new(),
            rows: Vec::new(),
            truncated: false,
            error: Some(error),
        }
    }

    /// The node's `output`: `{ ok, sql, columns, rows, row_count, truncated, error }`.
    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.verdict == Verdict::Ran,
            "sql": self.sql,
            "columns": self.columns,
            "rows": self.rows,
            "row_count": self.rows.len(),
            "truncated": self.truncated,
            "error": self.error,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("too many database questions: at most {per_minute} a minute; try again shortly")]
    RateLimited { per_minute: u32 },
    #[error("the sandbox's database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
}

impl SandboxError {
    /// Whether trying again later may succeed without changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SandboxError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        )
    }
}

/// A connected sandbox: a pool logged in as the sandbox role, the application's pool (for
/// the audit rows and the rate), and the views it may read.
#[derive(Debug)]
pub struct Sandbox {
    pool: PgPool,
    app: PgPool,
    config: SandboxConfig,
    catalog: Catalog,
    names: check::Names,
}

impl Sandbox {
    /// `pool` must be logged in as the sandbox role (`finch_sql` in `migrations/`), `app` as
    /// the application. Reads the catalog of the views the role can see.
    pub async fn connect(pool: PgPool, app: PgPool, config: SandboxConfig) -> Result<Sandbox, sqlx::Error> {
        let catalog = Catalog::load(&pool, &config.schema).await?;
        let names = check::Names {
            relations: catalog.views.iter().map(|view| view.name.clone()).collect(),
            columns: catalog
                .views
                .iter()
                .flat_map(|view| &view.columns)
                .map(|column| column.name.clone())
                .collect(),
        };
        Ok(Sandbox {
            pool,
            app,
            config,
            catalog,
            names,
        })
    }

    /// The views a query may read, with their columns, meanings and example questions.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Checks `sql` and runs it for `user`, recording the attempt; `question` (what the
    /// user asked) is kept only as a hash.
    pub async fn query(
        &self,
        user: &UserId,
        question: Option<&str>,
        sql: &str,
    ) -> Result<Outcome, SandboxError> {
        self.check_rate(user).await?;
        let started = Instant::now();
        let outcome = match check::check(sql, &self.names, self.config.max_rows) {
            Err(rejection) => Outcome::refused(Verdict::Rejected, None, rejection.0),
            Ok(checked) => self.run(user, &checked).await?,
        };
        self.record(user, question, sql, &outcome, started.elapsed())
            .await?;
        Ok(outcome)
    }

    /// Runs checked SQL in the envelope, as the sandbox role, for `user`.
    pub async fn run(&self, user: &UserId, sql: &CheckedSql) -> Result<Outcome, sqlx::Error> {
        envelope::run(&self.pool, &self.config, user, sql, true).await
    }

    /// Runs SQL in the envelope without making it a subquery: only for tests that show the
    /// role, the read-only transaction and row-level security hold without the other layers.
    #[cfg(feature = "testing")]
    pub async fn run_as_statement(&self, user: &UserId, sql: &CheckedSql) -> Result<Outcome, sqlx::Error> {
        envelope::run(&self.pool, &self.config, user, sql, false).await
    }

    async fn check_rate(&self, user: &UserId) -> Result<(), SandboxError> {
        let recent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sandbox_queries WHERE user_ref = $1 AND at > now() - interval '1 minute'",
        )
        .bind(user.as_str())
        .fetch_one(&self.app)
        .await?;
        if recent >= i64::from(self.config.queries_per_minute) {
            return Err(SandboxError::RateLimited {
                per_minute: self.config.queries_per_minute,
            });
        }
        Ok(())
    }

    async fn record(
        &self,
        user: &UserId,
        question: Option<&str>,
        sql: &str,
        outcome: &Outcome,
        took: Duration,
    ) -> Result<(), sqlx::Error> {
        let question_hash = question.map(|text| Sha256::digest(text.as_bytes()).to_vec());
        sqlx::query(
            "INSERT INTO sandbox_queries \
             (user_ref, question_sha256, sql, ran_sql, verdict, error, rows, truncated, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user.as_str())
        .bind(question_hash)
        .bind(sql)
        .bind(&outcome.sql)
        .bind(outcome.verdict.as_str())
        .bind(&outcome.error)
        .bind(outcome.rows.len() as i32)
        .bind(outcome.truncated)
        .bind(took.as_millis().min(i32::MAX as u128) as i32)
        .execute(&self.app)
        .await?;
        Ok(())
    }
}
