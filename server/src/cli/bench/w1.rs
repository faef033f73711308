//! Workload W1, "finance turn" (`../shared/bench/W1.md`): conversations of a question about
//! last month's spending, each turn routed, answered with SQL over the user's transactions
//! and checkpointed step by step in PostgreSQL — the graph `examples/w1/w1.yaml` through a
//! [`Worker`], exactly as a deployment runs it, with a model that answers instantly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::Mutex;

use engine::Graph;
use engine::llm::{LlmClient, LlmError, LlmErrorKind, LlmRequest, LlmResponse, TokenSink, Usage};
use engine::run::{Engine, Events, RunStatus, State};
use engine::store::{StartMode, Store};
use engine::worker::{Ran, Worker};

use super::probes;

const N_USERS: usize = 100;
const TURN_TEXT: &str = "What did I spend on last month?";
/// The query `sql_writer` writes, as the spec gives it (and as `sql_exec` runs it).
const QUERY: &str = "SELECT category, SUM(amount) AS total FROM transactions WHERE user_id = $1 \
                     AND occurred_at >= TIMESTAMPTZ '2026-11-01' - INTERVAL '30 days' \
                     GROUP BY category ORDER BY total DESC";
/// The seed's check: row count and sum of amounts.
const SEED: (i64, &str) = (200_000, "50195991.03");
/// The tables a turn writes to.
const TABLES: &[&str] = &["threads", "runs", "steps", "items", "snapshots"];

#[derive(Debug, clap::Args)]
pub(crate) struct W1Args {
    /// The database holding W1's `transactions` (seeded with the reference's `seed.sql`);
    /// Finch's own tables are created there too.
    #[arg(
        long,
        env = "BENCH_DSN",
        default_value = "postgres://root@127.0.0.1:5432/bench_anchor"
    )]
    db: String,
    /// The W1 graph.
    #[arg(long, default_value = "examples/w1/w1.yaml")]
    graph: PathBuf,
    /// Conversations run at once (and the size of each connection pool).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value_t = 200)]
    conversations: usize,
    /// Turns per conversation.
    #[arg(long, default_value_t = 5)]
    turns: usize,
    /// Conversations run (and then deleted) before measuring.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// A snapshot of a thread's state every this many steps.
    #[arg(long, default_value_t = 32)]
    snapshot_every: u32,
    /// `off` commits the checkpoints without waiting for the WAL flush (a diagnostic).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    synchronous_commit: String,
    /// The repetition this run is, for the report.
    #[arg(long, default_value_t = 0)]
    rep: u32,
    /// A label for a variant, kept in the result.
    #[arg(long, default_value = "")]
    label: String,
    /// Appends the result line to this file too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead: one conversation of this many turns (at least 30), reporting the bytes
    /// stored per turn over turns 11–20 and over the last ten.
    #[arg(long)]
    growth: Option<usize>,
}

pub(crate) async fn run(args: W1Args) -> anyhow::Result<ExitCode> {
    let mut admin = probes::admin(&args.db).await?;
    check_seed(&mut admin).await?;
    let expected = expected_answers(&mut admin).await?;
    let graph = crate::cli::load_graph(&args.graph, None)?;
    let concurrency = args.concurrency.max(1);
    let store_pool = pool(&args.db, concurrency, &args.synchronous_commit).await?;
    let store = Store::new(store_pool).with_snapshot_every(args.snapshot_every);
    store.migrate().await.context("applying Finch's migrations")?;
    let app_pool = pool(&args.db, concurrency, "on").await?;
    let engine = Engine::new(Arc::new(W1Model)).with_database(app_pool);
    let worker = Arc::new(Worker::new(
        engine,
        store,
        format!("bench-w1:{}", std::process::id()),
    ));
    let bench = Bench {
        worker,
        graph: Arc::new(graph),
        expected: Arc::new(expected),
    };
    let result = match args.growth {
        Some(turns) => bench.growth(&mut admin, turns).await?,
        None => bench.measure(&mut admin, &args, concurrency).await?,
    };
    let line = serde_json::to_string(&result)?;
    println!("{line}");
    if let Some(out) = &args.out {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .with_context(|| format!("cannot open {}", out.display()))?;
        writeln!(file, "{line}")?;
    }
    let errors = result["errors"].as_u64().unwrap_or(0);
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

struct Bench {
    worker: Arc<Worker>,
    graph: Arc<Graph>,
    /// The answer each user must get, computed directly from the database.
    expected: Arc<Vec<String>>,
}

impl Bench {
    /// The W1 run: warm up, clear the tables, measure `conversations × turns` turns.
    async fn measure(
        &self,
        admin: &mut sqlx::PgConnection,
        args: &W1Args,
        concurrency: usize,
    ) -> anyhow::Result<Value> {
        let warmup: Vec<_> = (0..args.warmup)
            .map(|i| (format!("warmup-{i:05}"), i % N_USERS))
            .collect();
        self.turns(warmup, args.turns, concurrency.min(args.warmup.max(1)), None)
            .await?;
        truncate(admin).await?;
        let probe = probes::commit_probe(admin).await?;
        let before = probes::db_snapshot(admin, TABLES).await?;

        let conversations: Vec<_> = (0..args.conversations)
            .map(|i| (format!("conv-{i:05}"), i % N_USERS))
            .collect();
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.conversations * args.turns)));
        let (cpu0, pg0) = (probes::process_cpu(), probes::postgres_cpu());
        let started = Instant::now();
        let errors = self
            .turns(conversations, args.turns, concurrency, Some(latencies.clone()))
            .await?;
        let wall = started.elapsed().as_secs_f64();
        let (cpu1, pg1) = (probes::process_cpu(), probes::postgres_cpu());

        let after = probes::db_snapshot(admin, TABLES).await?;
        let wal = probes::wal_bytes(admin, &before.lsn, &after.lsn).await?;
        let records = probes::wal_records(admin, &before.lsn, &after.lsn).await;
        let (payload, calls_payload) = payload_bytes(admin).await?;
        let probe_after = probes::commit_probe(admin).await?;

        let mut latencies = std::mem::take(&mut *latencies.lock().await);
        latencies.sort_by(f64::total_cmp);
        let n = latencies.len().max(1) as f64;
        let tables = probes::growth(&before, &after);
        let total = |key: &str| tables.values().map(|t| t[key].as_i64().unwrap_or(0)).sum::<i64>() as f64;
        let per_turn = |x: Option<f64>| x.map(|x| x / n);
        Ok(json!({
            "engine": "finch",
            "config": "pg",
            "messages": "json",
            "label": args.label,
            "synchronous_commit": args.synchronous_commit,
            "concurrency": concurrency,
            "pool_size": concurrency,
            "rep": args.rep,
            "conversations": args.conversations,
            "turns_per_conversation": args.turns,
            "turns": latencies.len(),
            "wall_s": wall,
            "turns_per_s": latencies.len() as f64 / wall,
            "lat_ms": {
                "p50": probes::percentile(&latencies, 50.0),
                "p95": probes::percentile(&latencies, 95.0),
                "p99": probes::percentile(&latencies, 99.0),
                "max": latencies.last().copied().unwrap_or(f64::NAN),
            },
            "cpu_ms_per_turn": (cpu1 - cpu0) / n * 1e3,
            "pg_cpu_ms_per_turn": per_turn(pg0.zip(pg1).map(|(a, b)| (b - a) * 1e3)),
            "peak_rss_mib": probes::peak_rss_mib(),
            "db_rows_per_turn": total("rows") / n,
            "db_bytes_per_turn": total("bytes") / n,
            "db_payload_bytes_per_turn": payload as f64 / n,
            // Of which the recorded model calls (prompts, replies, usage), kept for replay.
            "llm_calls_payload_bytes_per_turn": calls_payload as f64 / n,
            "wal_bytes_per_turn": wal as f64 / n,
            "wal_commits_per_turn": per_turn(records.map(|r| r.commits as f64)),
            "wal_records_per_turn": per_turn(records.map(|r| r.records as f64)),
            "tables": tables,
            "commit_probe_ms": probe,
            "commit_probe_after_ms": probe_after,
            "disk_regime": probes::disk_regime(probe, probe_after),
            "errors": errors.len(),
            "first_errors": errors.iter().take(3).collect::<Vec<_>>(),
            "answers_fingerprint": fingerprint(&self.expected),
            "snapshot_every": self.worker.store().snapshot_every(),
            "graph_version": self.graph.version,
            "versions": { "finch": env!("CARGO_PKG_VERSION") },
        }))
    }

    /// One long conversation: do the bytes a turn stores grow with its length?
    async fn growth(&self, admin: &mut sqlx::PgConnection, turns: usize) -> anyhow::Result<Value> {
        if turns < 30 {
            bail!("--growth needs at least 30 turns, to compare turns 11–20 with the last ten");
        }
        truncate(admin).await?;
        let errors = self
            .turns(vec![("growth-00000".to_owned(), 0)], turns, 1, None)
            .await?;
        let thread: uuid::Uuid = sqlx::query_scalar("SELECT id FROM threads")
            .fetch_one(&mut *admin)
            .await?;
        let sizes = self.worker.store().run_sizes(thread).await?;
        let mean =
            |runs: &[(uuid::Uuid, i64)]| runs.iter().map(|(_, b)| *b).sum::<i64>() as f64 / runs.len() as f64;
        let early = mean(&sizes[10..20]);
        let late = mean(&sizes[sizes.len() - 10..]);
        Ok(json!({
            "engine": "finch",
            "config": "growth",
            "turns": turns,
            "bytes_per_turn_11_20": early,
            "bytes_per_turn_last_10": late,
            "ratio": late / early,
            "errors": errors.len(),
            "snapshot_every": self.worker.store().snapshot_every(),
        }))
    }

    /// Runs each conversation's turns one after another, `concurrency` conversations at a
    /// time; returns the turns whose answer or message count was wrong.
    async fn turns(
        &self,
        conversations: Vec<(String, usize)>,
        turns: usize,
        concurrency: usize,
        latencies: Option<Arc<Mutex<Vec<f64>>>>,
    ) -> anyhow::Result<Vec<String>> {
        let conversations = Arc::new(conversations);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (conversations, next, latencies) = (conversations.clone(), next.clone(), latencies.clone());
            let (worker, graph, expected) = (self.worker.clone(), self.graph.clone(), self.expected.clone());
            tasks.spawn(async move {
                let mut errors = Vec::new();
                let mut times = Vec::new();
                while let Some((name, user)) = conversations.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut thread = None;
                    for turn in 0..turns {
                        let started = Instant::now();
                        let id = match thread {
                            Some(id) => id,
                            None => {
                                let row = worker.create_thread(&graph, json!({ "name": name })).await?;
                                *thread.insert(row.id)
                            }
                        };
                        let output = one_turn(&worker, id, *user).await?;
                        times.push(started.elapsed().as_secs_f64() * 1e3);
                        let messages = output["messages"].as_array().map_or(0, Vec::len);
                        if output["answer"] != expected[*user].as_str() || messages != 2 * (turn + 1) {
                            errors.push(format!(
                                "{name} turn {turn}: {} ({messages} messages)",
                                output["answer"]
                            ));
                        }
                    }
                }
                if let Some(latencies) = latencies {
                    latencies.lock().await.extend(times);
                }
                anyhow::Ok(errors)
            });
        }
        let mut errors = Vec::new();
        while let Some(task) = tasks.join_next().await {
            errors.extend(task.context("a benchmark task panicked")??);
        }
        Ok(errors)
    }
}

/// One turn: the question, and the run it starts, to its end.
async fn one_turn(worker: &Worker, thread: uuid::Uuid, user: usize) -> anyhow::Result<State> {
    let mut input = State::new();
    input.insert(
        "messages".into(),
        json!([{ "role": "user", "content": TURN_TEXT }]),
    );
    input.insert("user_id".into(), json!(user));
    let ran = worker
        .start(thread, input, State::new(), StartMode::Reject, &Events::none())
        .await?;
    let Ran::Ran { outcome, .. } = ran else {
        bail!("the turn was queued: thread {thread} was busy");
    };
    if outcome.status != RunStatus::Succeeded {
        bail!(
            "the turn ended {:?}: {}",
            outcome.status,
            outcome.error.unwrap_or_default()
        );
    }
    Ok(outcome.output)
}

/// A pool of `size` connections, all in UTC (the query's dates are instants in UTC).
async fn pool(url: &str, size: usize, synchronous_commit: &str) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("parsing the database URL")?;
    let options = options.options([("TimeZone", "UTC"), ("synchronous_commit", synchronous_commit)]);
    PgPoolOptions::new()
        .test_before_acquire(false)
        .min_connections(size as u32)
        .max_connections(size as u32)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

async fn check_seed(admin: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let seeded: Option<(i64, String)> =
        sqlx::query_as("SELECT count(*), sum(amount)::text FROM transactions")
            .fetch_one(&mut *admin)
            .await
            .ok();
    match seeded {
        Some((count, sum)) if (count, sum.as_str()) == SEED => Ok(()),
        found => bail!(
            "the database holds no W1 data (found {found:?}, want {SEED:?}); \
             seed it with `psql -d bench_anchor -f ../shared/bench/langgraph_anchor/seed.sql`"
        ),
    }
}

/// The answer every user must get, from one query per user.
async fn expected_answers(admin: &mut sqlx::PgConnection) -> anyhow::Result<Vec<String>> {
    let mut answers = Vec::with_capacity(N_USERS);
    for user in 0..N_USERS {
        let rows: Vec<(String, Decimal)> = sqlx::query_as(QUERY)
            .bind(user as i32)
            .fetch_all(&mut *admin)
            .await?;
        answers.push(format_answer(&rows));
    }
    Ok(answers)
}

/// The answer sentence of the spec.
fn format_answer(rows: &[(String, Decimal)]) -> String {
    let Some((top, top_total)) = rows.first() else {
        return "You had no transactions in the last 30 days.".to_owned();
    };
    let sum: Decimal = rows.iter().map(|(_, total)| total).sum();
    format!(
        "In the last 30 days you spent {sum} across {} categories; the top category was {top} at {top_total}.",
        rows.len()
    )
}

/// The first 16 hex digits of a SHA-256 over `user\tanswer\n` for every user.
fn fingerprint(answers: &[String]) -> String {
    let mut hash = Sha256::new();
    for (user, answer) in answers.iter().enumerate() {
        hash.update(format!("{user}\t{answer}\n").as_bytes());
    }
    hash.finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn truncate(admin: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {}", TABLES.join(", "))))
        .execute(admin)
        .await
        .context("clearing Finch's tables")?;
    Ok(())
}

/// The bytes of every row in Finch's tables, as stored (`pg_column_size`), and of the model
/// calls recorded in them.
async fn payload_bytes(admin: &mut sqlx::PgConnection) -> anyhow::Result<(i64, i64)> {
    let sums: Vec<String> = TABLES
        .iter()
        .map(|table| format!("(SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint FROM {table} t)"))
        .collect();
    let query = format!(
        "SELECT {}, (SELECT coalesce(sum(pg_column_size(calls)), 0)::bigint FROM steps)",
        sums.join(" + ")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(query))
        .fetch_one(admin)
        .await?)
}

/// W1's model: answers every call at once, as the spec's fake LLMs do — the route, the
/// query, and the answer sentence computed from the rows the prompt shows.
#[derive(Debug)]
struct W1Model;

impl LlmClient for W1Model {
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        _tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move {
            let text = match request.node.as_str() {
                "router" => Ok(r#"{"route": "database"}"#.to_owned()),
                "sql_writer" => Ok(QUERY.to_owned()),
                "answer" => answer_from_prompt(request),
                other => Err(format!("W1 has no node `{other}`")),
            };
            let text =
                text.map_err(|message| LlmError::new("w1", &request.model, LlmErrorKind::Script(message)))?;
            Ok(LlmResponse {
                text,
                usage: Usage::default(),
                latency_ms: 0,
                provider: "w1".to_owned(),
                model: request.model.clone(),
                attempts: 1,
            })
        })
    }
}

/// The answer for the rows in the last message (`Rows:` and their JSON).
fn answer_from_prompt(request: &LlmRequest) -> Result<String, String> {
    let prompt = request
        .messages
        .last()
        .map(|m| m.content.as_str())
        .unwrap_or_default();
    let json = prompt
        .split_once("Rows:")
        .map(|(_, rows)| rows)
        .ok_or("no rows in the prompt")?;
    let rows: Vec<BTreeMap<String, String>> =
        serde_json::from_str(json.trim()).map_err(|err| format!("the rows are not JSON: {err}"))?;
    let rows = rows
        .into_iter()
        .map(|mut row| {
            let category = row.remove("category").unwrap_or_default();
            let total = row.remove("total").unwrap_or_default();
            Ok((category, total.parse::<Decimal>().map_err(|err| err.to_string())?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(format_answer(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_the_scale_of_the_amounts() {
        let rows = vec![
            ("rent".to_owned(), "1200.50".parse().unwrap()),
            ("dining".to_owned(), "99.50".parse().unwrap()),
        ];
        assert_eq!(
            format_answer(&rows),
            "In the last 30 days you spent 1300.00 across 2 categories; the top category was rent at 1200.50."
        );
        assert_eq!(format_answer(&[]), "You had no transactions in the last 30 days.");
    }
}
