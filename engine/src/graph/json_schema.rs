//! `schemas/graph.schema.json`: the JSON Schema of graph files, for editors.
//!
//! Generated with schemars from the same types the loader reads ([`GraphFile`] and the node
//! kinds), so it cannot drift from what is accepted; a test fails when the committed copy
//! is stale.

use serde_json::Value;

use super::file::GraphFile;

/// The schema as pretty JSON, with a trailing newline.
pub(crate) fn generate() -> String {
    let schema = schemars::schema_for!(GraphFile);
    let mut value = schema.to_value();
    drop_nulls(&mut value);
    if let Value::Object(map) = &mut value {
        map.insert(
            "$id".to_owned(),
            "https://finch.dev/schemas/graph.schema.json".into(),
        );
    }
    let mut text = serde_json::to_string_pretty(&value).expect("a schema serializes");
    text.push('\n');
    text
}

/// Optional keys are left out of graph files, never set to null: say so, so editors do not
/// offer `null` everywhere.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    let only = only.clone();
                    map.insert("type".to_owned(), only);
                }
            }
            if let Some(Value::Array(options)) = map.get_mut("anyOf") {
                options.retain(|option| option.get("type").is_none_or(|t| t != "null"));
                if options.len() == 1 {
                    let only = options.remove(0);
                    map.remove("anyOf");
                    if let Value::Object(only) = only {
                        map.extend(only);
                    }
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
