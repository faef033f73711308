//! Language models behind one trait: [`LlmClient`].
//!
//! An `llm` node renders its prompts into [`Message`]s and asks an [`LlmClient`] for a reply.
//! [`openai::OpenAiClient`] reaches real providers, which all speak the OpenAI Chat Completions
//! protocol (OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp, Gemini's compatible endpoint);
//! [`scripted::Scripted`] answers from a file, for tests and offline demos; [`Models`] picks the
//! client for a model alias. Clients retry what is worth retrying and report the rest as a typed
//! [`LlmError`] naming the provider and the model. Validating a reply against the node's output
//! schema, and the repair round, belong to the node, not to the client.

pub mod config;
pub mod openai;
pub mod scripted;
pub mod structured;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// One call to a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmRequest {
    /// The node making the call, as a path through subgraphs (`database/write_sql`).
    pub node: String,
    /// The model alias, as written in the graph.
    pub model: String,
    pub messages: Vec<Message>,
    /// When set, the reply must be JSON matching this JSON Schema.
    pub output_schema: Option<Value>,
    /// Which of `messages` are a state field's earlier messages (`prompt.history`): a record
    /// of the call keeps them as a reference, so it does not grow with the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    /// Messages rendered from a template with no variables, by index and template name: the
    /// same text at every call, so a record of the call names the template (kept in the
    /// graph version) instead of repeating the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<(usize, String)>,
}

/// A run of `messages` copied from a state field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub field: String,
    /// Where in `messages` they start, and how many there are.
    pub start: usize,
    pub count: usize,
}

impl LlmRequest {
    /// A SHA-256 of the whole request, in hex: two requests are the same call when their
    /// hashes are equal.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&json)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The request as recorded with its call (whose node and model are kept beside it): the
    /// history messages replaced by a reference to their field, fixed messages by their
    /// template's name, and the output schema (the node's own, in the graph version) left
    /// out; with the hash of the whole request, so a replay can tell it was sent unchanged.
    pub fn compact(&self) -> Value {
        let mut messages: Vec<Value> = Vec::new();
        for (index, message) in self.messages.iter().enumerate() {
            let fixed = self.fixed.iter().find(|(at, _)| *at == index);
            match (&self.history, fixed) {
                (Some(history), _) if index == history.start => messages.push(serde_json::json!({
                    "history": history.field,
                    "count": history.count,
                })),
                (Some(history), _) if index > history.start && index < history.start + history.count => {}
                (_, Some((_, template))) => {
                    messages.push(serde_json::json!({ "role": message.role, "template": template }))
                }
                _ => messages.push(serde_json::to_value(message).unwrap_or(Value::Null)),
            }
        }
        serde_json::json!({ "messages": messages, "hash": self.hash() })
    }
}

/// Tokens counted by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A model's reply, with what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    pub text: String,
    pub usage: Usage,
    /// Wall time of the whole call, retries included.
    pub latency_ms: u64,
    /// Who answered: the provider and its name for the model (or deployment).
    pub provider: String,
    pub model: String,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

/// A request and the reply it got: what a run records for each model call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmCall {
    pub request: LlmRequest,
    pub response: LlmResponse,
}

/// Where streamed text goes as it arrives.
pub type TokenSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A language model, or several behind aliases.
pub trait LlmClient: Send + Sync + fmt::Debug {
    /// Sends one request. Text is passed to `tokens` as it streams in, when the client
    /// streams; the returned response always holds the whole text.
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>>;
}

/// A failed call: which provider and model, and what went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{provider} model `{model}`: {kind}")]
pub struct LlmError {
    pub provider: String,
    pub model: String,
    pub kind: LlmErrorKind,
}

/// What went wrong with a call. [`LlmErrorKind::is_retryable`] says whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmErrorKind {
    #[error("the request timed out after {0:?}")]
    Timeout(Duration),
    #[error("rate limited (HTTP 429){}", retry_after_text(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider failed (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    #[error("the reply stream ended before the reply did")]
    StreamCut,
    #[error("cannot reach the provider: {0}")]
    Transport(String),
    #[error("the credentials were refused (HTTP {status}); check the API key")]
    Unauthorized { status: u16 },
    #[error("the quota is exhausted: {0}")]
    QuotaExhausted(String),
    #[error("the request was rejected (HTTP {status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("the model refused to answer: {0}")]
    Refused(String),
    #[error("the reply was cut off at the token limit (`max_tokens`)")]
    Truncated,
    #[error("the provider's reply cannot be read: {0}")]
    InvalidResponse(String),
    #[error("no model is configured under this alias")]
    UnknownModel,
    #[error("the model is not configured correctly: {0}")]
    Config(String),
    #[error("{0}")]
    Script(String),
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|after| format!(", retry after {after:?}"))
        .unwrap_or_default()
}

impl LlmErrorKind {
    /// Timeouts, rate limits, server errors, cut streams and unreachable hosts can pass.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmErrorKind::Timeout(_)
                | LlmErrorKind::RateLimited { .. }
                | LlmErrorKind::Server { .. }
                | LlmErrorKind::StreamCut
                | LlmErrorKind::Transport(_)
        )
    }
}

impl LlmError {
    pub fn new(provider: impl Into<String>, model: impl Into<String>, kind: LlmErrorKind) -> LlmError {
        LlmError {
            provider: provider.into(),
            model: model.into(),
            kind,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// Clients by model alias: the configured models of a deployment.
#[derive(Debug, Default, Clone)]
pub struct Models {
    by_alias: BTreeMap<String, Arc<dyn LlmClient>>,
}

impl Models {
    pub fn new() -> Models {
        Models::default()
    }

    pub fn insert(&mut self, alias: impl Into<String>, client: Arc<dyn LlmClient>) {
        self.by_alias.insert(alias.into(), client);
    }

    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.by_alias.keys().map(String::as_str)
    }
}

impl LlmClient for Models {
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        match self.by_alias.get(&request.model) {
            Some(client) => client.complete(request, tokens),
            None => {
                let error = LlmError::new("none", &request.model, LlmErrorKind::UnknownModel);
                Box::pin(async move { Err(error) })
            }
        }
    }
}

/// A client that refuses every call: runs whose graphs need no model, and replays that must
/// not reach one.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoModels;

impl LlmClient for NoModels {
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        _tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        let kind = LlmErrorKind::Script("no language model is configured for this run".to_owned());
        let error = LlmError::new("none", &request.model, kind);
        Box::pin(async move { Err(error) })
    }
}
