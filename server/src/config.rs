//! `finch.toml`: the deployment's configuration, read by the binary (never by the engine).
//!
//! It names the models graphs may use, by alias. Keys are read from the environment when a
//! model is needed, and a missing one is an error naming the variable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use engine::llm::Models;
use engine::llm::config::ModelConfig;
use engine::llm::openai::OpenAiClient;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Model aliases, each with its provider settings.
    #[serde(default)]
    pub(crate) models: BTreeMap<String, ModelConfig>,
    /// How runs are checkpointed.
    #[serde(default)]
    pub(crate) store: StoreConfig,
    /// What a query of a `sql_query` node may take.
    #[serde(default)]
    pub(crate) sandbox: SandboxSettings,
}

/// `[sandbox]`: the limits of the SQL sandbox.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SandboxSettings {
    /// Rows a query returns at most (more are cut, and the result says so).
    pub(crate) max_rows: u64,
    /// Bytes of JSON a query returns at most.
    pub(crate) max_bytes: usize,
    pub(crate) statement_timeout_ms: u64,
    pub(crate) lock_timeout_ms: u64,
    /// Queries a user may run in a minute.
    pub(crate) queries_per_minute: u32,
}

impl Default for SandboxSettings {
    fn default() -> SandboxSettings {
        let engine = engine::sandbox::SandboxConfig::default();
        SandboxSettings {
            max_rows: engine.max_rows,
            max_bytes: engine.max_bytes,
            statement_timeout_ms: engine.statement_timeout.as_millis() as u64,
            lock_timeout_ms: engine.lock_timeout.as_millis() as u64,
            queries_per_minute: engine.queries_per_minute,
        }
    }
}

impl SandboxSettings {
    pub(crate) fn to_engine(&self) -> engine::sandbox::SandboxConfig {
        engine::sandbox::SandboxConfig {
            max_rows: self.max_rows,
            max_bytes: self.max_bytes,
            statement_timeout: std::time::Duration::from_millis(self.statement_timeout_ms),
            lock_timeout: std::time::Duration::from_millis(self.lock_timeout_ms),
            queries_per_minute: self.queries_per_minute,
            ..engine::sandbox::SandboxConfig::default()
        }
    }
}

/// `[store]`: checkpoints and retention.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreConfig {
    /// A snapshot of a thread's state every this many steps.
    pub(crate) snapshot_every: u32,
    /// How long a worker holds a run between renewals of its lease.
    pub(crate) lease_secs: f64,
    /// Drop a thread's log entries older than its last snapshot when a run of it succeeds.
    pub(crate) compact_finished: bool,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            snapshot_every: 32,
            lease_secs: 30.0,
            compact_finished: false,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file is no configuration at all.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Option<Config>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let config = toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(config))
    }

    pub(crate) fn model_aliases(&self) -> BTreeSet<String> {
        self.models.keys().cloned().collect()
    }

    /// Clients for the aliases in `needed`, with keys from the environment.
    pub(crate) fn models(&self, needed: &BTreeSet<String>) -> anyhow::Result<Models> {
        let mut models = Models::new();
        let environment = |name: &str| std::env::var(name).ok();
        for alias in needed {
            let Some(config) = self.models.get(alias) else {
                anyhow::bail!("model alias `{alias}` is not defined in finch.toml; add `[models.{alias}]`");
            };
            let endpoint = config.endpoint(alias, &environment)?;
            models.insert(alias.clone(), Arc::new(OpenAiClient::new(endpoint)));
        }
        Ok(models)
    }
}
