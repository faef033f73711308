//! The request body: the endpoint's settings, the messages, and how to ask for JSON.
//!
//! With [`StructuredOutput::JsonSchema`] the schema travels as `response_format`; with
//! [`StructuredOutput::Instructions`] it is spelled out in the system message, for servers
//! that do not support `response_format`.

use serde_json::{Value, json};

use crate::llm::config::{Endpoint, StructuredOutput};
use crate::llm::{LlmRequest, Message, Role};

/// The JSON body of a Chat Completions request.
pub(super) fn build(endpoint: &Endpoint, request: &LlmRequest) -> Value {
    let mut body = json!({
        "model": endpoint.model,
        "messages": messages(endpoint, request),
    });
    if let Some(temperature) = endpoint.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = endpoint.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    body["stream"] = json!(endpoint.stream);
    if endpoint.stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    if let (Some(schema), StructuredOutput::JsonSchema) = (&request.output_schema, endpoint.structured_output)
    {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": { "name": "output", "schema": schema, "strict": false },
        });
    }
    body
}

/// The request's messages, with the JSON instruction in the system message when the schema
/// goes there.
fn messages(endpoint: &Endpoint, request: &LlmRequest) -> Vec<Message> {
    let mut messages = request.messages.clone();
    let (Some(schema), StructuredOutput::Instructions) = (&request.output_schema, endpoint.structured_output)
    else {
        return messages;
    };
    let instruction = json_instruction(schema);
    match messages.first_mut() {
        Some(system) if system.role == Role::System => {
            system.content.push_str("\n\n");
            system.content.push_str(&instruction);
        }
        _ => messages.insert(0, Message::new(Role::System, instruction)),
    }
    messages
}

fn json_instruction(schema: &Value) -> String {
    let schema = serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string());
    format!(
        "Reply with JSON only: a single JSON value, with no other text and no Markdown code fence, \
         that matches this JSON Schema:\n{schema}"
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::llm::config::Auth;

    fn endpoint(stream: bool, structured_output: StructuredOutput) -> Endpoint {
        Endpoint {
            provider: "openai".to_owned(),
            url: "http://localhost/v1/chat/completions".to_owned(),
            auth: Auth::None,
            query: vec![],
            model: "gpt-4o-mini".to_owned(),
            temperature: None,
            max_tokens: Some(100),
            timeout: Duration::from_secs(1),
            attempts: 1,
            stream,
            structured_output,
        }
    }

    fn request(messages: Vec<Message>) -> LlmRequest {
        LlmRequest {
            node: "classify".to_owned(),
            model: "fast".to_owned(),
            messages,
            output_schema: Some(json!({ "type": "object" })),
            history: None,
            fixed: Vec::new(),
        }
    }

    #[test]
    fn a_streaming_body_asks_for_usage_and_leaves_out_unset_settings() {
        let body = build(
            &endpoint(true, StructuredOutput::JsonSchema),
            &request(vec![Message::new(Role::User, "hi")]),
        );
        assert_eq!(body["stream_options"], json!({ "include_usage": true }));
        assert_eq!(body["max_tokens"], json!(100));
        assert!(body.get("temperature").is_none());
        assert_eq!(
            body["response_format"]["json_schema"]["schema"],
            json!({ "type": "object" })
        );
    }

    #[test]
    fn instructions_are_added_to_an_existing_system_message() {
        let messages = vec![Message::new(Role::System, "You sort tickets.")];
        let body = build(
            &endpoint(false, StructuredOutput::Instructions),
            &request(messages),
        );
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert!(
            system.starts_with("You sort tickets.\n\nReply with JSON only"),
            "{system}"
        );
        assert!(system.contains("\"type\": \"object\""), "{system}");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert!(body.get("response_format").is_none());
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn instructions_get_their_own_system_message_when_there_is_none() {
        let messages = vec![Message::new(Role::User, "hi")];
        let body = build(
            &endpoint(false, StructuredOutput::Instructions),
            &request(messages),
        );
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1], json!({ "role": "user", "content": "hi" }));
    }
}
