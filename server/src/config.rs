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
