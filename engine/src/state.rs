//! Typed state: each field's JSON Schema and the reducer that merges writes into it.
//!
//! A field is declared in a graph file as a JSON Schema with one extra key, `reducer`.
//! Schemas may `$ref` files in the project's `schemas/` folder; [`Schemas`] reads those
//! files (and nothing outside that folder), remembers their content so a graph keeps the exact
//! schemas it was checked with, and compiles validators without any network access.

mod merge;
mod schemas;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::yaml::{Pos, Spanned};

pub(crate) use merge::{apply, problem, replay};
pub use schemas::{SchemaFileError, Schemas};

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

/// "a string", "a list" …: what a JSON value is, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
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
}
