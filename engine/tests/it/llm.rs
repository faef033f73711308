//! The OpenAI-compatible client against a local mock server: request bodies and headers,
//! streamed and whole replies, faults and retries, and the repair round on top of it.
//!
//! Each test starts its own `wiremock` server on localhost; nothing leaves the machine.
//! Timeouts are short so that the slow cases stay fast.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::llm::config::{Auth, Endpoint, StructuredOutput};
use engine::llm::openai::OpenAiClient;
use engine::llm::structured::{StructuredError, complete_json};
use engine::llm::{LlmClient, LlmErrorKind, LlmRequest, Message, Role, TokenSink, Usage};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHAT_PATH: &str = "/v1/chat/completions";
const TIMEOUT: Duration = Duration::from_millis(300);

fn endpoint(server: &MockServer) -> Endpoint {
    Endpoint {
        provider: "openai".to_owned(),
        url: format!("{}{CHAT_PATH}", server.uri()),
        auth: Auth::Bearer("sk-test".to_owned()),
        query: vec![],
        model: "gpt-4o-mini".to_owned(),
        temperature: Some(0.2),
        max_tokens: Some(200),
        timeout: TIMEOUT,
        attempts: 3,
        stream: false,
        structured_output: StructuredOutput::JsonSchema,
    }
}

fn request(output_schema: Option<Value>) -> LlmRequest {
    LlmRequest {
        node: "classify".to_owned(),
        model: "fast".to_owned(),
        messages: vec![
            Message::new(Role::System, "You sort support tickets."),
            Message::new(Role::User, "I forgot my password."),
        ],
        output_schema,
        history: None,
        fixed: Vec::new(),
    }
}

fn route_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "route": { "enum": ["chat", "database"] } },
        "required": ["route"]
    })
}

/// A whole `chat.completion` reply with `text`.
fn reply(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text, "refusal": null },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25 }
    }))
}

/// A streamed reply made of these `data:` payloads.
fn events(payloads: &[&str]) -> ResponseTemplate {
    let body: String = payloads.iter().map(|data| format!("data: {data}\n\n")).collect();
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

/// Serves `responses` to successive requests, one each.
async fn serve_in_order(server: &MockServer, responses: Vec<ResponseTemplate>) {
    for response in responses {
        Mock::given(method("POST"))
            .and(path(CHAT_PATH))
            .respond_with(response)
            .up_to_n_times(1)
            .mount(server)
            .await;
    }
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.expect("requests are recorded");
    requests
        .iter()
        .map(|request| request.body_json().expect("a JSON body"))
        .collect()
}

#[tokio::test]
async fn a_whole_reply_is_read_and_the_request_carries_the_settings_and_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT_PATH))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_partial_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": "You sort support tickets." },
                { "role": "user", "content": "I forgot my password." }
            ],
            "temperature": 0.2,
            "max_tokens": 200,
            "stream": false
        })))
        .respond_with(reply("Use the reset link."))
        .expect(1)
        .mount(&server)
        .await;

    let client = OpenAiClient::new(endpoint(&server));
    let response = client.complete(&request(None), None).await.unwrap();

    assert_eq!(response.text, "Use the reset link.");
    assert_eq!(
        response.usage,
        Usage {
            prompt_tokens: 21,
            completion_tokens: 4
        }
    );
    assert_eq!(
        (
            response.provider.as_str(),
            response.model.as_str(),
            response.attempts
        ),
        ("openai", "gpt-4o-mini", 1)
    );
    let body = &bodies(&server).await[0];
    assert!(body.get("stream_options").is_none() && body.get("response_format").is_none());
}

#[tokio::test]
async fn a_streamed_reply_reaches_the_token_sink_piece_by_piece() {
    let server = MockServer::start().await;
    let stream = events(&[
        r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
        r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Use the "}}]}"#,
        r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"reset "}}]}"#,
        r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"link."}}]}"#,
        r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":21,"completion_tokens":3}}"#,
        "[DONE]",
    ]);
    Mock::given(method("POST"))
        .and(body_partial_json(
            json!({ "stream": true, "stream_options": { "include_usage": true } }),
        ))
        .respond_with(stream)
        .mount(&server)
        .await;
    let pieces = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&pieces);
    let sink: TokenSink = Arc::new(move |piece: &str| seen.lock().unwrap().push(piece.to_owned()));

    let client = OpenAiClient::new(Endpoint {
        stream: true,
        ..endpoint(&server)
    });
    let response = client.complete(&request(None), Some(&sink)).await.unwrap();

    assert_eq!(*pieces.lock().unwrap(), ["Use the ", "reset ", "link."]);
    assert_eq!(response.text, "Use the reset link.");
    assert_eq!(
        response.usage,
        Usage {
            prompt_tokens: 21,
            completion_tokens: 3
        }
    );
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_long_as_the_server_asks() {
    let server = MockServer::start().await;
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(
            json!({ "error": { "message": "Rate limit reached", "code": "rate_limit_exceeded" } }),
        );
    serve_in_order(&server, vec![limited, reply("ok")]).await;

    let started = Instant::now();
    let response = OpenAiClient::new(endpoint(&server))
        .complete(&request(None), None)
        .await
        .unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(response.latency_ms >= 1000, "{}", response.latency_ms);
    assert_eq!((response.text.as_str(), response.attempts), ("ok", 2));
    assert_eq!(bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn a_server_error_is_tried_again() {
    let server = MockServer::start().await;
    let failed = ResponseTemplate::new(503).set_body_string("upstream unavailable");
    serve_in_order(&server, vec![failed, reply("ok")]).await;

    let response = OpenAiClient::new(endpoint(&server))
        .complete(&request(None), None)
        .await
        .unwrap();

    assert_eq!((response.text.as_str(), response.attempts), ("ok", 2));
    assert_eq!(bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn a_slow_server_times_out_on_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(reply("too late").set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;

    let client = OpenAiClient::new(Endpoint {
        attempts: 2,
        ..endpoint(&server)
    });
    let err = client.complete(&request(None), None).await.unwrap_err();

    assert_eq!(err.kind, LlmErrorKind::Timeout(TIMEOUT));
    assert_eq!(
        (err.provider.as_str(), err.model.as_str()),
        ("openai", "gpt-4o-mini")
    );
    assert_eq!(bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn a_reply_that_is_not_json_is_repaired_in_a_second_call() {
    let server = MockServer::start().await;
    serve_in_order(
        &server,
        vec![reply("Sure! It goes to chat."), reply(r#"{"route": "chat"}"#)],
    )
    .await;
    let client = OpenAiClient::new(endpoint(&server));
    let schema = jsonschema::validator_for(&route_schema()).unwrap();

    let json = complete_json(&client, &request(Some(route_schema())), &schema, None)
        .await
        .unwrap();

    assert_eq!((json.value, json.calls.len()), (json!({ "route": "chat" }), 2));
    let sent = bodies(&server).await;
    assert_eq!(
        sent[0]["response_format"]["json_schema"]["schema"],
        route_schema()
    );
    let repair = sent[1]["messages"].as_array().unwrap();
    assert_eq!(repair.len(), 4);
    assert_eq!(
        repair[2],
        json!({ "role": "assistant", "content": "Sure! It goes to chat." })
    );
}

#[tokio::test]
async fn a_reply_that_breaks_the_schema_is_repaired_in_a_second_call() {
    let server = MockServer::start().await;
    serve_in_order(
        &server,
        vec![reply(r#"{"route": "sql"}"#), reply(r#"{"route": "database"}"#)],
    )
    .await;
    let client = OpenAiClient::new(endpoint(&server));
    let schema = jsonschema::validator_for(&route_schema()).unwrap();

    let json = complete_json(&client, &request(Some(route_schema())), &schema, None)
        .await
        .unwrap();

    assert_eq!(
        (json.value, json.calls.len()),
        (json!({ "route": "database" }), 2)
    );
}

#[tokio::test]
async fn two_replies_that_break_the_schema_fail_as_invalid() {
    let server = MockServer::start().await;
    serve_in_order(
        &server,
        vec![reply(r#"{"route": "sql"}"#), reply(r#"{"path": "chat"}"#)],
    )
    .await;
    let client = OpenAiClient::new(endpoint(&server));
    let schema = jsonschema::validator_for(&route_schema()).unwrap();

    let err = complete_json(&client, &request(Some(route_schema())), &schema, None)
        .await
        .unwrap_err();

    let StructuredError::Invalid { problem, calls, .. } = err else {
        panic!("expected an invalid reply, got {err}");
    };
    assert!(problem.starts_with("it does not match the schema"), "{problem}");
    assert_eq!(calls.len(), 2);
}

#[tokio::test]
async fn a_stream_that_stops_midway_is_cut() {
    let server = MockServer::start().await;
    let cut = events(&[
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Use the "}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"reset"}}]}"#,
    ]);
    serve_in_order(&server, vec![cut]).await;

    let client = OpenAiClient::new(Endpoint {
        stream: true,
        attempts: 1,
        ..endpoint(&server)
    });
    let err = client.complete(&request(None), None).await.unwrap_err();

    assert_eq!(err.kind, LlmErrorKind::StreamCut);
}

#[tokio::test]
async fn a_refused_key_is_not_tried_again() {
    let server = MockServer::start().await;
    let refused = ResponseTemplate::new(401).set_body_json(json!({
        "error": { "message": "Incorrect API key provided: sk-test.", "code": "invalid_api_key" }
    }));
    Mock::given(method("POST"))
        .respond_with(refused)
        .mount(&server)
        .await;

    let err = OpenAiClient::new(endpoint(&server))
        .complete(&request(None), None)
        .await
        .unwrap_err();

    assert_eq!(err.kind, LlmErrorKind::Unauthorized { status: 401 });
    assert!(!err.to_string().contains("sk-test"), "{err}");
    assert_eq!(bodies(&server).await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let server = MockServer::start().await;
    let client = OpenAiClient::new(Endpoint {
        url: format!("http://{address}{CHAT_PATH}"),
        attempts: 1,
        ..endpoint(&server)
    });

    let err = client.complete(&request(None), None).await.unwrap_err();

    assert!(matches!(err.kind, LlmErrorKind::Transport(_)), "{err}");
}

#[tokio::test]
async fn azure_gets_its_key_header_and_api_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt4o/chat/completions"))
        .and(header("api-key", "azure-key"))
        .and(query_param("api-version", "2024-10-21"))
        .respond_with(reply("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let client = OpenAiClient::new(Endpoint {
        provider: "azure".to_owned(),
        url: format!("{}/openai/deployments/gpt4o/chat/completions", server.uri()),
        auth: Auth::ApiKeyHeader("azure-key".to_owned()),
        query: vec![("api-version".to_owned(), "2024-10-21".to_owned())],
        model: "gpt4o".to_owned(),
        ..endpoint(&server)
    });

    let response = client.complete(&request(None), None).await.unwrap();

    assert_eq!(
        (response.provider.as_str(), response.model.as_str()),
        ("azure", "gpt4o")
    );
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn instructions_mode_puts_the_schema_in_the_system_message() {
    let server = MockServer::start().await;
    serve_in_order(&server, vec![reply(r#"{"route": "chat"}"#)]).await;
    let client = OpenAiClient::new(Endpoint {
        structured_output: StructuredOutput::Instructions,
        ..endpoint(&server)
    });

    client
        .complete(&request(Some(route_schema())), None)
        .await
        .unwrap();

    let body = &bodies(&server).await[0];
    assert!(body.get("response_format").is_none(), "{body}");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("You sort support tickets.\n\nReply with JSON only"),
        "{system}"
    );
    assert!(system.contains(r#""enum": ["#), "{system}");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
}
