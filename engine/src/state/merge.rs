//! Merging writes into the state: each field's reducer, and validation of what is written.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Reducer, kind};
use crate::graph::Graph;
use crate::run::Write;

/// What is wrong with `value` under a validator, if anything (the first three problems).
pub(crate) fn problem(validator: Option<&jsonschema::Validator>, value: &Value) -> Option<String> {
    let problems: Vec<String> = validator?
        .iter_errors(value)
        .take(3)
        .map(|err| match err.instance_path().as_str() {
            "" => err.to_string(),
            path => format!("at `{path}`: {err}"),
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Merges one write into the state by the field's reducer, validating what is written.
///
/// The field's new value is validated, whatever the reducer (so `maxItems` holds for an
/// `append` field too). `replaced` tracks the `replace` fields written
/// in this step: a second write to one is an error, never a silent overwrite.
pub(crate) fn apply(
    graph: &Graph,
    state: &mut serde_json::Map<String, Value>,
    write: &Write,
    replaced: &mut BTreeSet<String>,
) -> Result<(), String> {
    let name = &write.field;
    let Some(field) = graph.state.get(name) else {
        return Err(format!("wrote `{name}`, which is not a state field"));
    };
    let validator = graph.compiled.state.get(name);
    let invalid =
        |problem: String| format!("wrote `{name}` a value that does not match its schema: {problem}");
    let new_value = match field.reducer {
        Reducer::Replace => {
            if !replaced.insert(name.clone()) {
                return Err(format!(
                    "wrote `{name}` twice in one step, but its reducer is `replace`"
                ));
            }
            write.value.clone()
        }
        Reducer::Append => {
            let Value::Array(items) = &write.value else {
                return Err(format!(
                    "wrote `{name}` {}, but its reducer `append` takes a list",
                    kind(&write.value)
                ));
            };
            let mut list = match state.get(name) {
                Some(Value::Array(existing)) => existing.clone(),
                _ => Vec::new(),
            };
            list.extend(items.iter().cloned());
            Value::Array(list)
        }
        Reducer::Merge => {
            let Value::Object(entries) = &write.value else {
                return Err(format!(
                    "wrote `{name}` {}, but its reducer `merge` takes an object",
                    kind(&write.value)
                ));
            };
            let mut merged = match state.get(name) {
                Some(Value::Object(existing)) => existing.clone(),
                _ => serde_json::Map::new(),
            };
            merged.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
            Value::Object(merged)
        }
        Reducer::Add => {
            let current = state.get(name).cloned().unwrap_or(Value::from(0));
            add(&current, &write.value).ok_or_else(|| {
                format!(
                    "wrote `{name}` {}, but its reducer `add` takes a number",
                    kind(&write.value)
                )
            })?
        }
    };
    if let Some(problem) = problem(validator, &new_value) {
        return Err(invalid(problem));
    }
    state.insert(name.clone(), new_value);
    Ok(())
}

/// Applies a write already validated when it was made (replaying a step log), except to
/// `append` fields, whose items are stored apart.
pub(crate) fn replay(graph: &Graph, state: &mut serde_json::Map<String, Value>, write: &Write) {
    let Some(field) = graph.state.get(&write.field) else {
        return;
    };
    let value = match field.reducer {
        Reducer::Append => return,
        Reducer::Replace => write.value.clone(),
        Reducer::Merge => {
            let mut merged = match state.get(&write.field) {
                Some(Value::Object(existing)) => existing.clone(),
                _ => serde_json::Map::new(),
            };
            if let Value::Object(entries) = &write.value {
                merged.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Value::Object(merged)
        }
        Reducer::Add => {
            let current = state.get(&write.field).cloned().unwrap_or(Value::from(0));
            add(&current, &write.value).unwrap_or(current)
        }
    };
    state.insert(write.field.clone(), value);
}

/// The sum of two JSON numbers: an integer when both are and it fits, otherwise a float.
fn add(a: &Value, b: &Value) -> Option<Value> {
    let (Value::Number(a), Value::Number(b)) = (a, b) else {
        return None;
    };
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64())
        && let Some(sum) = x.checked_add(y)
    {
        return Some(Value::from(sum));
    }
    serde_json::Number::from_f64(a.as_f64()? + b.as_f64()?).map(Value::Number)
}
