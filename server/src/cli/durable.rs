//! What the durable commands share: the database, the store, a worker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::llm::LlmClient;
use engine::run::Engine;
use engine::sandbox::Sandbox;
use engine::store::Store;
use engine::worker::Worker;

use crate::config::Config;

/// Connects to the database and applies pending migrations.
pub(crate) async fn store(url: Option<&str>, config: Option<&Config>) -> anyhow::Result<Store> {
    let Some(url) = url else {
        anyhow::bail!("this command needs a database: set DATABASE_URL or pass --db");
    };
    // No ping before each use: it would double the round trips of every step, and a dead
    // connection fails the statement itself just as clearly.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("cannot connect to the database; check DATABASE_URL (or --db)")?;
    let settings = config.map(|config| &config.store);
    let mut store = Store::new(pool);
    if let Some(settings) = settings {
        store = store
            .with_snapshot_every(settings.snapshot_every)
            .with_lease(Duration::from_secs_f64(settings.lease_secs.max(0.1)));
    }
    store
        .migrate()
        .await
        .context("applying the database migrations")?;
    Ok(store)
}

/// A worker running with `llm` (and the SQL sandbox, when there is one), identified by host
/// and process.
pub(crate) fn worker(
    store: Store,
    llm: Arc<dyn LlmClient>,
    config: Option<&Config>,
    sandbox: Option<Arc<Sandbox>>,
) -> Worker {
    let mut engine = Engine::new(llm).with_database(store.pool().clone());
    for tool in crate::tools::all() {
        engine = engine.with_host_tool(tool);
    }
    if let Some(sandbox) = sandbox {
        engine = engine.with_sandbox(sandbox);
    }
    let id = format!("{}:{}", hostname(), std::process::id());
    let compact = config.is_some_and(|config| config.store.compact_finished);
    Worker::new(engine, store, id).with_compaction(compact)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "finch".to_owned())
}
