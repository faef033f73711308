//! Typed state: each field's JSON Schema and the reducer that merges writes into it.
//!
//! A field is declared in a graph file as a JSON Schema with one extra key, `reducer`.
//! Schemas may `$ref` files in the project's `schemas/` folder; [`Schemas`] reads those
//! files (and nothing outside that folder), remembers their content so a graph keeps the exact
//! schemas it was checked with, and compiles validators without any network access.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::yaml::{Pos, Spanned};

/// How the writes of a step are merged into a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reducer {
    /// The write replaces the value. Two writes in one step are an error.
    #[default]
    Replace,
    /// The write (a list) is appended to the list.
    Append,
    /// The write (an object) is merged key by key into the object; later keys win.
    Merge,
    /// The write (a number) is added to the number.
    Add,
}

impl Reducer {
    pub fn name(self) -> &'static str {
        match self {
            Reducer::Replace => "replace",
            Reducer::Append => "append",
            Reducer::Merge => "merge",
            Reducer::Add => "add",
        }
    }

    /// The JSON Schema types a field needs for this reducer, if it constrains them.
    pub(crate) fn required_types(self) -> &'static [&'static str] {
        match self {
            Reducer::Replace => &[],
            Reducer::Append => &["array"],
            Reducer::Merge => &["object"],
            Reducer::Add => &["number", "integer"],
        }
    }
}

/// A declared state (or context) field.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: Spanned<String>,
    /// The field's JSON Schema, as written (without `reducer`).
    pub schema: Value,
    pub reducer: Reducer,
    pub reducer_pos: Option<Pos>,
}

impl Field {
    /// The initial value, from the schema's `default`, if any.
    pub fn default_value(&self) -> Option<&Value> {
        self.schema.get("default")
    }
}

/// JSON Schema files under one folder, read on demand and kept.
#[derive(Debug)]
pub struct Schemas {
    root: PathBuf,
    files: BTreeMap<String, Arc<Value>>,
}

/// Why a schema file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaFileError {
    #[error("schema path `{0}` leaves the schemas folder")]
    Escapes(String),
    #[error("schema file `{name}` does not exist in `{}`", root.display())]
    Missing { name: String, root: PathBuf },
    #[error("cannot read schema file `{name}`: {source}")]
    Read { name: String, source: std::io::Error },
    #[error("schema file `{name}` is not valid JSON: {source}")]
    Json { name: String, source: serde_json::Error },
}

impl Schemas {
    pub fn new(root: impl Into<PathBuf>) -> Schemas {
        Schemas {
            root: root.into(),
            files: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
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
        let path = self.root.join(relative);
        let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SchemaFileError::Missing {
                name: name.to_owned(),
                root: self.root.clone(),
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
        Ok(value)
    }

    /// Every file read so far, by name.
    pub fn loaded(&self) -> &BTreeMap<String, Arc<Value>> {
        &self.files
    }

    /// Names of the `.json` files in the folder, for "did you mean" hints.
    pub fn available(&self) -> Vec<String> {
        let mut names = Vec::new();
        list_files(&self.root, &self.root, &mut names);
        names.retain(|name| name.ends_with(".json"));
        names
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

/// Every file under `dir`, as paths relative to `root` with `/` separators.
pub(crate) fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            out.push(parts.join("/"));
        }
    }
    out.sort();
}

/// The JSON Schema `type`s a schema declares (empty when it does not say).
pub(crate) fn declared_types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The property names of an object schema that does not accept others; `None` when any
/// property may exist (no `properties`, or `additionalProperties` allows more).
pub(crate) fn closed_properties(schema: &Value) -> Option<Vec<&str>> {
    let properties = schema.get("properties")?.as_object()?;
    match schema.get("additionalProperties") {
        None | Some(Value::Bool(false)) => Some(properties.keys().map(String::as_str).collect()),
        Some(_) => None,
    }
}

/// The top-level property names an object schema declares.
pub(crate) fn property_names(schema: &Value) -> Option<Vec<String>> {
    let properties = schema.get("properties")?.as_object()?;
    Some(properties.keys().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn closed_properties_respects_additional_properties() {
        let closed = json!({"type": "object", "properties": {"a": {}}});
        assert_eq!(closed_properties(&closed), Some(vec!["a"]));
        let open = json!({"type": "object", "properties": {"a": {}}, "additionalProperties": true});
        assert_eq!(closed_properties(&open), None);
        assert_eq!(closed_properties(&json!({"type": "object"})), None);
    }

    #[test]
    fn file_refs_finds_nested_relative_refs_only() {
        let schema = json!({"items": {"$ref": "message.schema.json#/defs/x"}, "not": {"$ref": "#/local"},
                            "anyOf": [{"$ref": "https://example.com/s.json"}]});
        assert_eq!(file_refs(&schema), vec!["message.schema.json".to_owned()]);
    }
}
