//! The SQL sandbox for `sql_query` nodes: a small pool logged in as the sandbox role, on the
//! application's database unless told otherwise.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use engine::sandbox::{ROLE, Sandbox, SandboxConfig};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Config;

#[derive(Debug, Args)]
pub(crate) struct SandboxArgs {
    /// Where `sql_query` nodes connect, as the sandbox role; by default the application's
    /// database as user `finch_sql`, without a password.
    #[arg(long = "sandbox-db", env = "SANDBOX_DATABASE_URL", hide_env_values = true)]
    sandbox_db: Option<String>,
}

impl SandboxArgs {
    /// Connects the sandbox next to `app`. A sandbox that cannot connect is a warning, not an
    /// error: graphs without `sql_query` nodes run as before, and those with one fail saying
    /// the run has no sandbox.
    pub(crate) async fn connect(&self, app: &PgPool, config: Option<&Config>) -> Option<Arc<Sandbox>> {
        let settings = config
            .map(|config| config.sandbox.to_engine())
            .unwrap_or_default();
        match self.try_connect(app, settings).await {
            Ok(sandbox) => Some(Arc::new(sandbox)),
            Err(err) => {
                eprintln!("warning: no SQL sandbox, so `sql_query` nodes will fail: {err:#}");
                None
            }
        }
    }

    async fn try_connect(&self, app: &PgPool, settings: SandboxConfig) -> anyhow::Result<Sandbox> {
        let options = match &self.sandbox_db {
            Some(url) => url.parse::<PgConnectOptions>()?,
            None => {
                let app = app.connect_options();
                let mut options = PgConnectOptions::new_without_pgpass()
                    .host(app.get_host())
                    .port(app.get_port())
                    .username(ROLE)
                    .ssl_mode(app.get_ssl_mode());
                if let Some(database) = app.get_database() {
                    options = options.database(database);
                }
                options
            }
        };
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Sandbox::connect(pool, app.clone(), settings).await?)
    }
}
