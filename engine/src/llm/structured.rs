//! Replies that must be JSON matching a schema: parsed, validated, and repaired once.
//!
//! Whatever the provider promises, a reply is checked against the node's output schema. When it
//! is not JSON, or not the JSON the schema describes, the model gets one more turn with the
//! problem spelled out; a second bad reply fails the node with that problem.

use serde_json::Value;

use super::{LlmCall, LlmClient, LlmError, LlmRequest, Message, Role, TokenSink};

/// A structured reply and the calls it took (one, or two after a repair).
#[derive(Debug, Clone)]
pub struct JsonReply {
    pub value: Value,
    pub calls: Vec<LlmCall>,
}

/// Why a structured reply could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StructuredError {
    /// A call failed; `calls` are those that succeeded before it.
    #[error("{error}")]
    Llm { error: LlmError, calls: Vec<LlmCall> },
    #[error(
        "{provider} model `{model}` answered twice with JSON that does not fit the output schema: {problem}"
    )]
    Invalid {
        provider: String,
        model: String,
        problem: String,
        /// The calls made, both replies included.
        calls: Vec<LlmCall>,
    },
}

impl StructuredError {
    /// The calls made before the error, to be recorded like any other.
    pub fn calls(&self) -> &[LlmCall] {
        match self {
            StructuredError::Llm { calls, .. } | StructuredError::Invalid { calls, .. } => calls,
        }
    }

    /// Whether asking again could help: a provider fault, not a model that keeps answering wrong.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StructuredError::Llm { error, .. } if error.is_retryable())
    }
}

/// Asks for JSON matching `schema` (the request's `output_schema`), with one repair round.
pub async fn complete_json(
    client: &dyn LlmClient,
    request: &LlmRequest,
    schema: &jsonschema::Validator,
    tokens: Option<&TokenSink>,
) -> Result<JsonReply, StructuredError> {
    let failed = |error, calls| StructuredError::Llm { error, calls };
    let first = LlmCall {
        response: client
            .complete(request, tokens)
            .await
            .map_err(|error| failed(error, vec![]))?,
        request: request.clone(),
    };
    let problem = match check(&first.response.text, schema) {
        Ok(value) => {
            return Ok(JsonReply {
                value,
                calls: vec![first],
            });
        }
        Err(problem) => problem,
    };
    let mut repair = request.clone();
    let reply = Message::new(Role::Assistant, first.response.text.clone());
    repair.messages.push(reply);
    repair.messages.push(Message::new(
        Role::User,
        format!(
            "That reply cannot be used: {problem}. Answer again with only the JSON value, \
             no other text, matching the JSON Schema you were given."
        ),
    ));
    let second = match client.complete(&repair, tokens).await {
        Ok(response) => LlmCall {
            response,
            request: repair,
        },
        Err(error) => return Err(failed(error, vec![first])),
    };
    match check(&second.response.text, schema) {
        Ok(value) => Ok(JsonReply {
            value,
            calls: vec![first, second],
        }),
        Err(problem) => Err(StructuredError::Invalid {
            provider: second.response.provider.clone(),
            model: second.response.model.clone(),
            problem,
            calls: vec![first, second],
        }),
    }
}

/// Parses a reply as JSON (a Markdown code fence around it is tolerated) and validates it.
pub fn check(text: &str, schema: &jsonschema::Validator) -> Result<Value, String> {
    let json = strip_fence(text.trim());
    let value: Value = serde_json::from_str(json).map_err(|err| format!("it is not valid JSON ({err})"))?;
    match crate::state::problem(Some(schema), &value) {
        None => Ok(value),
        Some(problems) => Err(format!("it does not match the schema ({problems})")),
    }
}

fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> jsonschema::Validator {
        jsonschema::validator_for(&json!({
            "type": "object", "properties": { "route": { "enum": ["chat", "database"] } }, "required": ["route"]
        }))
        .unwrap()
    }

    #[test]
    fn accepts_json_in_a_code_fence() {
        assert_eq!(
            check("```json\n{\"route\": \"chat\"}\n```", &validator()),
            Ok(json!({"route": "chat"}))
        );
    }

    #[test]
    fn says_what_is_wrong() {
        let err = check("{\"route\": \"sql\"}", &validator()).unwrap_err();
        assert!(
            err.starts_with("it does not match the schema (at `/route`:"),
            "{err}"
        );
        let err = check("chat", &validator()).unwrap_err();
        assert!(err.starts_with("it is not valid JSON"), "{err}");
    }
}
