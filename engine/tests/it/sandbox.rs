//! The SQL sandbox against real PostgreSQL: attacks through the whole sandbox; with the parser
//! bypassed, into the envelope as the sandbox role; and even without the envelope's subquery,
//! as a statement of their own, where only the role, the read-only transaction and row-level
//! security stand. Also the role's privileges, and two users who must never see each other's
//! data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::llm::scripted::Scripted;
use engine::run::{Engine, Events, RunStatus};
use engine::sandbox::{CheckedSql, Outcome, Sandbox, SandboxConfig, SandboxError, UserId, Verdict};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::durable::object;
use crate::{fixture_options, fixtures};

const A: i64 = 4242;
const B: i64 = 9797;

#[derive(Debug, Deserialize)]
struct Attack {
    name: String,
    sql: String,
    /// The parser's exact refusal, or `accepted`; absent for a parse error (in the snapshot).
    parser: Option<String>,
    #[serde(default)]
    never: Vec<String>,
}

fn attacks() -> Vec<Attack> {
    let text = std::fs::read_to_string("tests/sandbox/attacks.yaml").unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn config() -> SandboxConfig {
    SandboxConfig {
        statement_timeout: Duration::from_millis(500),
        queries_per_minute: 10_000,
        ..SandboxConfig::default()
    }
}

/// The two users' data, and a sandbox logged in as its role on the test's database.
async fn sandbox(pool: &PgPool, config: SandboxConfig) -> Sandbox {
    sqlx::raw_sql(include_str!("../sandbox/seed.sql"))
        .execute(pool)
        .await
        .unwrap();
    let options = pool.connect_options().as_ref().clone().username("finch_sql");
    let role = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    Sandbox::connect(role, pool.clone(), config).await.unwrap()
}

fn user(id: i64) -> UserId {
    UserId::from_json(&json!(id)).unwrap()
}

/// What the other user's data is marked with (see `seed.sql`).
fn markers_of_other(id: i64) -> [&'static str; 2] {
    if id == A {
        ["B-SECRET", "777.77"]
    } else {
        ["A-OWN", "111.11"]
    }
}

/// Fails if `outcome` holds anything of the other user's, or any of `never`.
fn assert_only_own(id: i64, outcome: &Outcome, never: &[String], what: &str) {
    let rows = serde_json::to_string(&outcome.rows).unwrap();
    let error = outcome.error.clone().unwrap_or_default();
    for marker in markers_of_other(id) {
        assert!(!rows.contains(marker), "{what}: rows hold `{marker}`: {rows}");
    }
    let [text_marker, _] = markers_of_other(id);
    assert!(
        !error.contains(text_marker),
        "{what}: the error holds `{text_marker}`: {error}"
    );
    for text in never {
        assert!(
            !rows.contains(text.as_str()) && !error.contains(text.as_str()),
            "{what}: `{text}` came back"
        );
    }
}

/// Rows in every table, and the large objects.
async fn row_counts(pool: &PgPool) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace \
         AND relkind = 'r' AND relname NOT IN ('sandbox_queries', '_sqlx_migrations')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut counts = BTreeMap::new();
    for table in tables.into_iter().chain(["pg_largeobject_metadata".to_owned()]) {
        let sql = format!("SELECT count(*) FROM {table}");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.insert(table, count);
    }
    counts
}

fn describe(outcome: &Outcome) -> String {
    match (outcome.verdict, &outcome.error) {
        (_, Some(error)) => format!("{}: {error}", verdict(outcome.verdict)),
        (Verdict::Ran, None) => format!("ran: {} row(s)", outcome.rows.len()),
        (other, None) => verdict(other).to_owned(),
    }
}

fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ran => "ran",
        Verdict::Rejected => "rejected",
        Verdict::Failed => "failed",
    }
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn attacks_are_refused_by_the_parser_and_by_the_database_alone(pool: PgPool) {
    let sandbox = sandbox(&pool, config()).await;
    let before = row_counts(&pool).await;
    let mut report = String::new();
    let mut wrong = Vec::new();
    for attack in attacks() {
        let name = &attack.name;
        let full = sandbox.query(&user(A), Some(name), &attack.sql).await.unwrap();
        let ran = full.sql.as_deref().unwrap_or_default();
        let as_expected = match attack.parser.as_deref() {
            Some("accepted") => full.verdict != Verdict::Rejected && !ran.contains("/*"),
            Some(message) => full.verdict == Verdict::Rejected && full.error.as_deref() == Some(message),
            None => full.verdict == Verdict::Rejected,
        };
        if !as_expected {
            wrong.push(format!("{name}: {}", describe(&full)));
        }
        assert_only_own(A, &full, &attack.never, &format!("{name}, whole sandbox"));
        let unchecked = CheckedSql::unchecked(&attack.sql);
        let bypass = sandbox.run(&user(A), &unchecked).await.unwrap();
        assert_only_own(A, &bypass, &attack.never, &format!("{name}, parser bypassed"));
        let statement = sandbox.run_as_statement(&user(A), &unchecked).await.unwrap();
        assert_only_own(A, &statement, &attack.never, &format!("{name}, as a statement"));
        writeln!(
            report,
            "{name}\n  sandbox:   {}\n  subquery:  {}\n  statement: {}",
            describe(&full),
            describe(&bypass),
            describe(&statement)
        )
        .unwrap();
    }
    assert!(wrong.is_empty(), "not as expected:\n{}", wrong.join("\n"));
    assert_eq!(
        row_counts(&pool).await,
        before,
        "a table or the large objects changed"
    );
    // The sandbox's connections are still open: a session lock taken through them would show.
    let advisory: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND a.usename = 'finch_sql'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(advisory, 0, "an advisory lock outlived its transaction");
    insta::assert_snapshot!(report);
}

/// Queries anyone might write, to go with the attacks in the two-user test.
const QUESTIONS: &[&str] = &[
    "SELECT * FROM transactions",
    "SELECT * FROM accounts",
    "SELECT * FROM budgets",
    "SELECT * FROM goals",
    "SELECT * FROM income",
    "SELECT * FROM monthly_spending",
    "SELECT category, sum(amount) AS total FROM transactions WHERE kind = 'expense' GROUP BY category",
    "SELECT description FROM transactions UNION ALL SELECT name FROM budgets UNION ALL SELECT name FROM goals",
    "SELECT t.description, b.name FROM transactions t LEFT JOIN budgets b ON b.name = t.category",
];

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn two_users_never_see_a_value_of_each_other(pool: PgPool) {
    let sandbox = sandbox(&pool, config()).await;
    let attacks: Vec<String> = attacks().into_iter().map(|attack| attack.sql).collect();
    for id in [A, B] {
        let own = if id == A { "A-OWN" } else { "B-SECRET" };
        let everything = sandbox.query(&user(id), None, QUESTIONS[0]).await.unwrap();
        let rows = serde_json::to_string(&everything.rows).unwrap();
        assert!(
            rows.contains(own),
            "user {id} sees their own transactions: {rows}"
        );
        for sql in QUESTIONS
            .iter()
            .copied()
            .chain(attacks.iter().map(String::as_str))
        {
            let full = sandbox.query(&user(id), None, sql).await.unwrap();
            assert_only_own(id, &full, &[], &format!("user {id}, whole sandbox: {sql}"));
            let unchecked = CheckedSql::unchecked(sql);
            let bypass = sandbox.run(&user(id), &unchecked).await.unwrap();
            assert_only_own(id, &bypass, &[], &format!("user {id}, parser bypassed: {sql}"));
            let statement = sandbox.run_as_statement(&user(id), &unchecked).await.unwrap();
            assert_only_own(id, &statement, &[], &format!("user {id}, as a statement: {sql}"));
        }
    }
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn without_a_user_the_sandbox_role_reads_nothing(pool: PgPool) {
    let sandbox = sandbox(&pool, config()).await;
    let options = pool.connect_options().as_ref().clone().username("finch_sql");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap();
    for sql in [
        "SELECT * FROM semantic.transactions",
        "SELECT description FROM public.transactions",
    ] {
        let err = sqlx::query(sql).fetch_all(&mut conn).await.unwrap_err();
        assert!(
            err.to_string().contains("finch.user_id"),
            "{sql} without a user: {err}"
        );
    }
    drop(sandbox);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn the_views_answer_with_exact_decimals(pool: PgPool) {
    let sandbox = sandbox(&pool, config()).await;
    let budgets = sandbox
        .query(
            &user(A),
            Some("How are my budgets doing?"),
            "SELECT name, monthly_limit, spent_this_month, remaining_this_month, percent_used \
             FROM budgets ORDER BY name",
        )
        .await
        .unwrap();
    assert_eq!(
        json!(budgets.rows),
        json!([
            { "name": "A-OWN dining", "monthly_limit": "150.00", "spent_this_month": "18.50",
              "remaining_this_month": "131.50", "percent_used": "12.3" },
            { "name": "A-OWN groceries", "monthly_limit": "400.00", "spent_this_month": "42.10",
              "remaining_this_month": "357.90", "percent_used": "10.5" },
        ])
    );
    let spending = sandbox
        .query(
            &user(A),
            None,
            "SELECT category, total FROM monthly_spending \
             WHERE month = date_trunc('month', current_date) ORDER BY category NULLS LAST",
        )
        .await
        .unwrap();
    assert_eq!(
        json!(spending.rows),
        json!([
            { "category": "A-OWN dining", "total": "18.50" },
            { "category": "A-OWN groceries", "total": "42.10" },
            { "category": null, "total": "9.99" },
        ])
    );
    insta::assert_snapshot!(sandbox.catalog().to_text());
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn rows_and_bytes_are_capped_and_marked_truncated(pool: PgPool) {
    let rows = sandbox(
        &pool,
        SandboxConfig {
            max_rows: 2,
            ..config()
        },
    )
    .await;
    let outcome = rows
        .query(&user(A), None, "SELECT * FROM transactions")
        .await
        .unwrap();
    assert_eq!((outcome.rows.len(), outcome.truncated), (2, true));
    assert!(outcome.sql.unwrap().ends_with("LIMIT 3"));
    let within = rows
        .query(&user(A), None, "SELECT * FROM transactions LIMIT 1")
        .await
        .unwrap();
    assert_eq!((within.rows.len(), within.truncated), (1, false));

    let bytes = Sandbox::connect(
        PgPoolOptions::new()
            .connect_with(pool.connect_options().as_ref().clone().username("finch_sql"))
            .await
            .unwrap(),
        pool.clone(),
        SandboxConfig {
            max_bytes: 300,
            ..config()
        },
    )
    .await
    .unwrap();
    let outcome = bytes
        .query(&user(A), None, "SELECT * FROM transactions")
        .await
        .unwrap();
    assert!(
        outcome.truncated && !outcome.rows.is_empty() && outcome.rows.len() < 6,
        "{outcome:?}"
    );
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn every_query_is_audited_and_rated_per_user(pool: PgPool) {
    let sandbox = sandbox(
        &pool,
        SandboxConfig {
            queries_per_minute: 3,
            ..config()
        },
    )
    .await;
    let asked = [
        "SELECT sum(balance) FROM accounts",
        "SELECT pg_sleep(1)",
        "SELECT nothing FROM accounts",
    ];
    for sql in asked {
        sandbox
            .query(&user(A), Some("How much do I have?"), sql)
            .await
            .unwrap();
    }
    let refused = sandbox.query(&user(A), None, asked[0]).await.unwrap_err();
    assert!(
        matches!(refused, SandboxError::RateLimited { per_minute: 3 }),
        "{refused}"
    );
    // Another user has a rate of their own.
    sandbox.query(&user(B), None, asked[0]).await.unwrap();

    let audit: Vec<(String, bool, String, String, i32)> = sqlx::query_as(
        "SELECT user_ref, question_sha256 IS NOT NULL, sql, verdict, rows FROM sandbox_queries ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [
        ("4242", true, asked[0], "ran", 1),
        ("4242", true, asked[1], "rejected", 0),
        ("4242", true, asked[2], "failed", 0),
        ("9797", false, asked[0], "ran", 1),
    ];
    let audit: Vec<(&str, bool, &str, &str, i32)> = audit
        .iter()
        .map(|(user, hashed, sql, verdict, rows)| {
            (user.as_str(), *hashed, sql.as_str(), verdict.as_str(), *rows)
        })
        .collect();
    assert_eq!(audit, expected);
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn the_sandbox_role_has_only_what_it_needs(pool: PgPool) {
    let attributes: (bool, bool, bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls \
         FROM pg_roles WHERE rolname = 'finch_sql'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attributes, (false, false, false, false, true, false, false));
    let scalar = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(
        scalar("SELECT count(*) FROM pg_auth_members WHERE member = 'finch_sql'::regrole").await,
        0,
        "it belongs to no role"
    );
    assert_eq!(
        scalar(
            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = 'finch_sql'::regrole) \
             + (SELECT count(*) FROM pg_namespace WHERE nspowner = 'finch_sql'::regrole) \
             + (SELECT count(*) FROM pg_proc WHERE proowner = 'finch_sql'::regrole) \
             + (SELECT count(*) FROM pg_type WHERE typowner = 'finch_sql'::regrole)"
        )
        .await,
        0,
        "it owns nothing"
    );

    // Grants on whole tables and views, and on columns.
    let grants: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ': ' || string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a \
         WHERE a.grantee = 'finch_sql'::regrole GROUP BY n.nspname, c.relname ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || ': ' || string_agg(t.attname || ' ' || a.privilege_type, ', ' ORDER BY t.attnum) \
         FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid, aclexplode(t.attacl) a \
         WHERE a.grantee = 'finch_sql'::regrole GROUP BY c.relname ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        grants
            .iter()
            .all(|grant| grant.starts_with("semantic.") && grant.ends_with(": SELECT")),
        "{grants:?}"
    );
    let behind_views = ["accounts:", "budgets:", "goals:", "incomes:", "transactions:"];
    assert!(
        columns
            .iter()
            .all(|grant| behind_views.iter().any(|table| grant.starts_with(table))),
        "{columns:?}"
    );

    // The dangerous built-ins, listed here independently of the migration.
    let dangerous = [
        "set_config",
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_try_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_advisory_unlock_all",
        "lo_from_bytea",
        "lo_create",
        "lo_import",
        "lo_export",
        "lo_open",
        "lo_put",
        "lo_unlink",
        "lowrite",
        "pg_cancel_backend",
        "pg_terminate_backend",
        "pg_stat_get_activity",
        "pg_stat_get_backend_activity",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "table_to_xml",
        "schema_to_xml",
        "database_to_xml",
        "ts_stat",
        "ts_rewrite",
        "pg_notify",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_stat_get_tuples_inserted",
        "pg_lock_status",
        "txid_current",
        "pg_current_xact_id",
        "pg_current_snapshot",
        "pg_total_relation_size",
        "txid_status",
        "setseed",
        "pg_current_wal_lsn",
    ];
    let checked: Vec<(String, bool)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, has_function_privilege('finch_sql', p.oid, 'EXECUTE') \
         FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY($1) ORDER BY 1",
    )
    .bind(&dangerous[..])
    .fetch_all(&pool)
    .await
    .unwrap();
    let names: std::collections::BTreeSet<&str> = checked
        .iter()
        .map(|(signature, _)| signature.split('(').next().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        dangerous.len(),
        "every listed function exists: {names:?}"
    );
    let runnable: Vec<&String> = checked.iter().filter(|(_, can)| *can).map(|(f, _)| f).collect();
    assert!(runnable.is_empty(), "finch_sql can run {runnable:?}");
    let (now, activity, plpgsql): (bool, bool, bool) = sqlx::query_as(
        "SELECT has_function_privilege('finch_sql', 'pg_catalog.now()', 'EXECUTE'), \
                has_table_privilege('finch_sql', 'pg_catalog.pg_stat_activity', 'SELECT'), \
                has_language_privilege('finch_sql', 'plpgsql', 'USAGE')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (now, activity, plpgsql),
        (true, false, false),
        "harmless built-ins stay; session activity and DO blocks go"
    );

    // Row-level security on every table, and the views' options.
    let unforced: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace \
         AND relkind IN ('r', 'p') AND relname <> '_sqlx_migrations' \
         AND NOT (relrowsecurity AND relforcerowsecurity)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        unforced.is_empty(),
        "row-level security is not forced on {unforced:?}"
    );
    let views: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT relname::text, coalesce(reloptions, '{}') FROM pg_class \
         WHERE relnamespace = 'semantic'::regnamespace ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(views.len(), 6);
    for (view, options) in &views {
        for option in ["security_invoker=true", "security_barrier=true"] {
            assert!(options.contains(&option.to_owned()), "{view}: {options:?}");
        }
    }
    insta::assert_snapshot!(format!(
        "{}\n\ncolumns:\n{}",
        grants.join("\n"),
        columns.join("\n")
    ));
}

#[sqlx::test(migrator = "engine::store::MIGRATOR")]
async fn a_graph_asks_the_database_for_its_user(pool: PgPool) {
    let sandbox = Arc::new(sandbox(&pool, config()).await);
    let graph = engine::load_with(
        &fixtures(),
        Path::new("tests/it/data/sandbox/ask.yaml"),
        &fixture_options(),
    )
    .unwrap_or_else(|d| panic!("{}", engine::diagnostic::render(&d)));
    let script = r#"write_sql: ["SELECT sum(amount) AS spent FROM transactions WHERE kind = 'expense'"]"#;
    let engine = Engine::new(Arc::new(Scripted::parse(script).unwrap())).with_sandbox(sandbox);
    let outcome = engine
        .start(
            &graph,
            object(json!({ "question": "How much have I spent?" })),
            object(json!({ "user_id": A })),
            &Events::none(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, RunStatus::Succeeded, "{outcome:?}");
    let state = &outcome.checkpoint.state;
    assert!(state["views"].as_str().unwrap().contains("view monthly_spending"));
    let result: &Value = &state["result"];
    assert_eq!(result["ok"], true);
    assert_eq!(result["rows"], json!([{ "spent": "181.70" }]));
}
