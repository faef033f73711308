//! JSON Schema files: read from the `schemas/` folder only, compiled without network access.
//!
//! [`Schemas`] reads the files a graph refers to (and nothing outside its folder), keeps
//! their content so a checked graph holds the exact schemas it was checked with, compiles
//! validators whose `$ref`s resolve to those files, and inlines references for providers.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::source::{FileKind, Source};

/// JSON Schema files of one project, read through its [`Source`] on demand and kept.
#[derive(Debug)]
pub struct Schemas {
    source: Arc<dyn Source>,
    files: BTreeMap<String, Arc<Value>>,
    /// The text of each file, as read.
    texts: BTreeMap<String, String>,
}

/// Why a schema file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaFileError {
    #[error("schema path `{0}` leaves the schemas folder")]
    Escapes(String),
    #[error("schema file `{}` does not exist", path.display())]
    Missing { name: String, path: PathBuf },
    #[error("cannot read schema file `{name}`: {source}")]
    Read { name: String, source: std::io::Error },
    #[error("schema file `{name}` is not valid JSON: {source}")]
    Json { name: String, source: serde_json::Error },
}

impl Schemas {
    pub fn new(source: Arc<dyn Source>) -> Schemas {
        Schemas {
            source,
            files: BTreeMap::new(),
            texts: BTreeMap::new(),
        }
    }

    /// The schema file `name` (a path relative to the schemas folder).
    pub fn file(&mut self, name: &str) -> Result<Arc<Value>, SchemaFileError> {
        if let Some(found) = self.files.get(name) {
            return Ok(found.clone());
        }
        let relative = Path::new(name);
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(SchemaFileError::Escapes(name.to_owned()));
        }
        let text = self
            .source
            .read(FileKind::Schema, name)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => SchemaFileError::Missing {
                    name: name.to_owned(),
                    path: self.source.path(FileKind::Schema, name),
                },
                _ => SchemaFileError::Read {
                    name: name.to_owned(),
                    source,
                },
            })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| SchemaFileError::Json {
            name: name.to_owned(),
            source,
        })?;
        let value = Arc::new(value);
        self.files.insert(name.to_owned(), value.clone());
        self.texts.insert(name.to_owned(), text);
        Ok(value)
    }

    /// The text of a file read earlier.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.texts.get(name).map(String::as_str)
    }

    /// Every file read so far, by name.
    pub fn loaded(&self) -> &BTreeMap<String, Arc<Value>> {
        &self.files
    }

    /// Names of the schema files, for "did you mean" hints.
    pub fn available(&self) -> Vec<String> {
        self.source.names(FileKind::Schema)
    }

    /// Follows a top-level `$ref` to a file, so callers can look at `type` and `properties`.
    pub fn resolve(&mut self, schema: &Value) -> Result<Value, SchemaFileError> {
        let mut current = schema.clone();
        for _ in 0..8 {
            let Some(target) = current.get("$ref").and_then(Value::as_str) else {
                break;
            };
            if target.starts_with('#') || target.contains("://") {
                break;
            }
            current = (*self.file(target)?).clone();
        }
        Ok(current)
    }

    /// Compiles a schema, resolving relative `$ref`s against the schemas folder. Returns the
    /// validator and the names of the files it uses.
    pub fn compile(&mut self, schema: &Value) -> Result<(jsonschema::Validator, Vec<String>), String> {
        // Load every file the schema refers to first, so the retriever below needs no I/O
        // and a missing file gets our own message.
        let mut pending = vec![schema.clone()];
        let mut seen = BTreeMap::new();
        while let Some(next) = pending.pop() {
            for target in file_refs(&next) {
                if seen.contains_key(&target) {
                    continue;
                }
                let content = self.file(&target).map_err(|err| err.to_string())?;
                pending.push((*content).clone());
                seen.insert(target, content);
            }
        }
        let names = seen.keys().cloned().collect();
        let retriever = FileRetriever {
            base: BASE_URI,
            files: seen,
        };
        let validator = jsonschema::options()
            .with_base_uri(BASE_URI)
            .with_retriever(retriever)
            .should_validate_formats(true)
            .build(schema)
            .map_err(|err| err.to_string())?;
        Ok((validator, names))
    }
}

/// The base against which relative `$ref`s resolve; it names no real location.
const BASE_URI: &str = "finch:///schemas/";

/// Serves already-loaded schema files to jsonschema; never touches disk or network.
struct FileRetriever {
    base: &'static str,
    files: BTreeMap<String, Arc<Value>>,
}

impl jsonschema::Retrieve for FileRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .strip_prefix(self.base)
            .ok_or_else(|| format!("`{}` is not a file in the schemas folder", uri.as_str()))?;
        let name = name.split('#').next().unwrap_or(name);
        self.files
            .get(name)
            .map(|value| (**value).clone())
            .ok_or_else(|| format!("schema file `{name}` was not loaded").into())
    }
}

/// Relative file references (`"$ref": "money.schema.json#/x"`) anywhere in a schema.
fn file_refs(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![schema];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let file = target.split('#').next().unwrap_or_default();
                    if !file.is_empty() && !file.contains("://") {
                        found.push(file.to_owned());
                    }
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

impl Schemas {
    /// `schema` with every `$ref` to a file replaced by that file's content (or the part a
    /// `#/pointer` names), so it can be sent to a provider that cannot resolve references.
    pub fn inline(&mut self, schema: &Value) -> Result<Value, SchemaFileError> {
        self.inline_at(schema, 0)
    }

    fn inline_at(&mut self, schema: &Value, depth: usize) -> Result<Value, SchemaFileError> {
        match schema {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let (file, pointer) = target.split_once('#').unwrap_or((target, ""));
                    if !file.is_empty() && !file.contains("://") && depth < 16 {
                        let content = self.file(file)?;
                        let part = content.pointer(pointer).cloned().unwrap_or(Value::Null);
                        return self.inline_at(&part, depth + 1);
                    }
                }
                let mut inlined = serde_json::Map::new();
                for (key, value) in map {
                    inlined.insert(key.clone(), self.inline_at(value, depth)?);
                }
                Ok(Value::Object(inlined))
            }
            Value::Array(items) => items
                .iter()
                .map(|item| self.inline_at(item, depth))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_refs_finds_nested_relative_refs_only() {
        let schema = json!({"items": {"$ref": "message.schema.json#/defs/x"}, "not": {"$ref": "#/local"},
                            "anyOf": [{"$ref": "https://example.com/s.json"}]});
        assert_eq!(file_refs(&schema), vec!["message.schema.json".to_owned()]);
    }
}
