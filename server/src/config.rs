//! `finch.toml`: the deployment's configuration, read by the binary (never by the engine).
//!
//! For now it names the model aliases graphs may use; the providers behind them are read
//! when graphs run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Config {
    /// Model aliases, each with its provider settings.
    #[serde(default)]
    pub(crate) models: BTreeMap<String, toml::Table>,
}

impl Config {
    /// Reads `path`; a missing file is an empty configuration.
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
}
