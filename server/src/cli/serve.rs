//! `finch serve` (the HTTP API) and `finch seed-demo`, and how both find the database:
//! `DATABASE_URL`, or the reference deployment's `DB_HOST`/`DB_PORT`/`DB_NAME`/`DB_USER`/
//! `DB_PASSWORD`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use poem::Server;
use poem::listener::TcpListener;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::run::llm_for_worker;
use super::sandbox::SandboxArgs;
use crate::api::{self, ApiConfig};
use crate::assistant::Assistant;
use crate::config::Config;
use crate::finance;
use crate::runs::Runs;

/// Where the database is.
#[derive(Debug, clap::Args)]
pub(crate) struct DbArgs {
    /// The database URL; when unset, the DB_* variables are used.
    #[arg(long = "db", env = "DATABASE_URL", hide_env_values = true)]
    url: Option<String>,
    #[arg(long, env = "DB_HOST", hide = true)]
    db_host: Option<String>,
    #[arg(long, env = "DB_PORT", hide = true, default_value_t = 5432)]
    db_port: u16,
    #[arg(long, env = "DB_NAME", hide = true)]
    db_name: Option<String>,
    #[arg(long, env = "DB_USER", hide = true)]
    db_user: Option<String>,
    #[arg(long, env = "DB_PASSWORD", hide = true, hide_env_values = true)]
    db_password: Option<String>,
}

impl DbArgs {
    /// The connection options, and the setting they came from (for error messages).
    fn options(&self) -> anyhow::Result<(PgConnectOptions, &'static str)> {
        if let Some(url) = &self.url {
            let options = url
                .parse()
                .map_err(|err| anyhow::anyhow!("DATABASE_URL is not a PostgreSQL URL ({err})"))?;
            return Ok((options, "DATABASE_URL"));
        }
        let Some(host) = &self.db_host else {
            bail!("no database configured: set DATABASE_URL (or DB_HOST, DB_NAME, DB_USER and DB_PASSWORD)");
        };
        let mut options = PgConnectOptions::new().host(host).port(self.db_port);
        if let Some(name) = &self.db_name {
            options = options.database(name);
        }
        if let Some(user) = &self.db_user {
            options = options.username(user);
        }
        if let Some(password) = &self.db_password {
            options = options.password(password);
        }
        Ok((options, "DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD"))
    }

    /// A pool on the database with every migration applied.
    pub(crate) async fn connect(&self) -> anyhow::Result<PgPool> {
        let (options, setting) = self.options()?;
        let place = format!("{}:{}", options.get_host(), options.get_port());
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|err| {
                anyhow::anyhow!("cannot reach the database at {place} ({err}); check {setting}")
            })?;
        engine::store::Store::new(pool.clone())
            .migrate()
            .await
            .context("applying the database migrations")?;
        Ok(pool)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// The address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    host: String,
    /// Origins allowed to call the API from a browser, comma-separated.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    cors_allowed_origins: Vec<String>,
    /// The largest request body accepted, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 2 << 20)]
    body_limit: usize,
    /// How long a login lasts, in hours.
    #[arg(long, env = "TOKEN_TTL_HOURS", default_value_t = 720)]
    token_ttl_hours: u64,
    /// Login attempts allowed per email and minute.
    #[arg(long, env = "LOGINS_PER_MINUTE", default_value_t = 10)]
    logins_per_minute: u32,
    /// How often due recurring income is credited, in seconds.
    #[arg(long, env = "INCOME_CREDIT_INTERVAL_SECS", default_value_t = 3600)]
    income_interval: u64,
    /// `text` or `json` log lines.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// The folder holding the assistant's `graphs/`, `prompts/` and `schemas/`.
    #[arg(long, env = "FINCH_PROJECT", default_value = ".")]
    project: PathBuf,
    /// Where the assistant's model replies come from: `config` (finch.toml, keys from the
    /// environment) or `scripted:FILE` (a script of replies, no network).
    #[arg(long, env = "FINCH_LLM", default_value = "config")]
    llm: String,
    /// Messages to the assistant allowed per user and minute.
    #[arg(long, env = "ASSISTANT_TURNS_PER_MINUTE", default_value_t = 20)]
    assistant_turns_per_minute: u32,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// `finch serve`.
pub(crate) async fn serve(args: ServeArgs, config_path: &Path) -> anyhow::Result<ExitCode> {
    init_logs(&args.log_format)?;
    let pool = args.db.connect().await?;
    let (assistant, runs) = assistant(&args, config_path, &pool).await;
    let config = ApiConfig {
        cors_origins: args
            .cors_allowed_origins
            .into_iter()
            .filter(|o| !o.is_empty())
            .collect(),
        body_limit: args.body_limit,
        token_ttl: Duration::from_secs(args.token_ttl_hours * 3600),
        logins_per_minute: args.logins_per_minute,
        assistant,
        runs,
    };
    let income = tokio::spawn(credit_income(
        pool.clone(),
        Duration::from_secs(args.income_interval.max(1)),
    ));
    let address = format!("{}:{}", args.host, args.port);
    tracing::info!(%address, "serving the API; docs at /api/docs");
    let result = Server::new(TcpListener::bind(address.as_str()))
        .run_with_graceful_shutdown(
            api::app(pool.clone(), &config),
            shutdown(),
            Some(Duration::from_secs(30)),
        )
        .await;
    income.abort();
    pool.close().await;
    result.with_context(|| format!("serving on {address}"))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The assistant and the threads of API clients, or (logged) why there are none: their
/// routes then answer 503.
async fn assistant(
    args: &ServeArgs,
    config_path: &Path,
    pool: &PgPool,
) -> (Option<Arc<Assistant>>, Option<Arc<Runs>>) {
    let loaded = async {
        let config = Config::read(config_path)?;
        let llm = llm_for_worker(&args.llm, config.as_ref())?;
        let sandbox = args.sandbox.connect(pool, config.as_ref()).await;
        let runs = Runs::new(
            &args.project,
            crate::assistant::engine(llm.clone(), pool.clone(), sandbox.clone()),
            pool.clone(),
        );
        let assistant = Assistant::load(
            &args.project,
            llm,
            pool.clone(),
            sandbox,
            args.assistant_turns_per_minute,
        )?;
        anyhow::Ok((assistant, runs))
    };
    match loaded.await {
        Ok((assistant, runs)) => (Some(Arc::new(assistant)), Some(runs)),
        Err(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                "the assistant is off: its routes answer 503"
            );
            (None, None)
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Credits due recurring income now and then every `every`.
async fn credit_income(pool: PgPool, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match finance::income::credit_due(&pool, chrono::Utc::now().date_naive()).await {
            Ok(0) => {}
            Ok(credited) => tracing::info!(credited, "recurring income credited"),
            Err(err) => tracing::error!(error = %err, "crediting recurring income"),
        }
    }
}

fn init_logs(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: piped into a file or a collector they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match format {
        "json" => logs.json().init(),
        "text" => logs.init(),
        other => bail!("LOG_FORMAT must be `text` or `json`, not `{other}`"),
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub(crate) struct SeedDemoArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The last day of the generated year; today when left out.
    #[arg(long)]
    today: Option<chrono::NaiveDate>,
}

/// `finch seed-demo`.
pub(crate) async fn seed_demo(args: SeedDemoArgs) -> anyhow::Result<ExitCode> {
    let pool = args.db.connect().await?;
    let today = args.today.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let mut tx = pool.begin().await?;
    let demo = finance::demo::seed(&mut tx, today).await?;
    tx.commit().await?;
    println!(
        "demo user created: {} transactions, {} budgets, {} goals over the year to {today}",
        demo.transactions, demo.budgets, demo.goals
    );
    println!(
        "log in with email `{}` and password `{}`",
        demo.email, demo.password
    );
    Ok(ExitCode::SUCCESS)
}
