//! What expressions and templates see while a node runs: the state, `context`, and locals.
//!
//! [`Scope`] is a minijinja object that looks fields up in the step's state snapshot when they
//! are used, instead of copying the whole state into every template context.

use std::sync::Arc;

use minijinja::value::{Object, Serde, Value as Jinja};
use serde_json::Value;

use super::checkpoint::State;

/// The variables of one node run.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    state: Arc<State>,
    context_values: Arc<State>,
    context: Jinja,
    /// Innermost last: `output`, a map's item, an `llm` node's inputs.
    locals: Vec<(String, Jinja)>,
}

impl Scope {
    pub(crate) fn new(state: Arc<State>, context: &State) -> Scope {
        Scope {
            state,
            context_values: Arc::new(context.clone()),
            context: Jinja::from(Serde(context)),
            locals: Vec::new(),
        }
    }

    /// This scope with one more variable.
    pub(crate) fn with(&self, name: &str, value: &Value) -> Scope {
        let mut scope = self.clone();
        scope.locals.push((name.to_owned(), Jinja::from(Serde(value))));
        scope
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn context(&self) -> &State {
        &self.context_values
    }

    fn value(&self) -> Jinja {
        Jinja::from_object(self.clone())
    }

    /// Evaluates a minijinja expression to JSON. `undefined` becomes `null`.
    pub(crate) fn eval(&self, env: &minijinja::Environment<'_>, expression: &str) -> Result<Value, String> {
        let compiled = env
            .compile_expression(expression)
            .map_err(|err| jinja_error(&err))?;
        let result = compiled.eval(self.value()).map_err(|err| jinja_error(&err))?;
        if result.is_undefined() {
            return Ok(Value::Null);
        }
        serde_json::to_value(&result).map_err(|err| format!("the value cannot be written as JSON: {err}"))
    }

    /// Renders the template `name` of `env`.
    pub(crate) fn render(&self, env: &minijinja::Environment<'_>, name: &str) -> Result<String, String> {
        let template = env.get_template(name).map_err(|err| jinja_error(&err))?;
        template.render(self.value()).map_err(|err| jinja_error(&err))
    }

    /// Renders template text given at run time (the `format` tool).
    pub(crate) fn render_text(&self, env: &minijinja::Environment<'_>, text: &str) -> Result<String, String> {
        env.render_str(text, self.value())
            .map_err(|err| jinja_error(&err))
    }
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Jinja) -> Option<Jinja> {
        let key = key.as_str()?;
        if let Some((_, value)) = self.locals.iter().rev().find(|(name, _)| name == key) {
            return Some(value.clone());
        }
        if key == "context" {
            return Some(self.context.clone());
        }
        self.state.get(key).map(|value| Jinja::from(Serde(value)))
    }
}

/// minijinja's message with its detail and, for templates, the line.
fn jinja_error(err: &minijinja::Error) -> String {
    let mut message = err.kind().to_string();
    if let Some(detail) = err.detail() {
        message = format!("{message}: {detail}");
    }
    if let (Some(name), Some(line)) = (err.name(), err.line()) {
        message = format!("{message} (`{name}` line {line})");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let state = json!({ "route": "chat", "messages": [{ "content": "hi" }] });
        let Value::Object(state) = state else {
            unreachable!()
        };
        let Value::Object(context) = json!({ "user": "ada" }) else {
            unreachable!()
        };
        Scope::new(Arc::new(state), &context)
    }

    #[test]
    fn expressions_see_state_context_and_locals() {
        let env = crate::template::environment();
        let scope = scope().with("output", &json!({ "n": 2 }));
        assert_eq!(scope.eval(&env, "route == 'chat'"), Ok(json!(true)));
        assert_eq!(
            scope.eval(&env, "(messages | last).content ~ context.user"),
            Ok(json!("hiada"))
        );
        assert_eq!(scope.eval(&env, "[{'n': output.n + 1}]"), Ok(json!([{ "n": 3 }])));
    }

    #[test]
    fn an_unset_field_is_an_error_where_it_is_used() {
        let env = crate::template::environment();
        let err = scope().eval(&env, "summary.total").unwrap_err();
        assert!(err.starts_with("undefined value"), "{err}");
    }
}
