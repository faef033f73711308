//! The recorded model replies of a thread, as an [`LlmClient`]: strictly (a replay: the
//! request must be the recorded one) or for every node but one (a what-if with `--only`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ReplayError;
use crate::llm::{LlmClient, LlmError, LlmErrorKind, LlmRequest, LlmResponse, TokenSink, Usage};
use crate::store::{StepEntry, Store};

/// The recorded replies, by node path, in the order they were made; a request that is not the
/// recorded one (by its hash) gets no reply.
#[derive(Debug)]
pub(super) struct RecordedModels {
    replies: Mutex<HashMap<String, VecDeque<Value>>>,
    /// The first request that differed: its node, and how.
    pub(super) mismatch: Mutex<Option<(String, String)>>,
}

impl RecordedModels {
    pub(super) fn new(steps: &[StepEntry]) -> RecordedModels {
        let mut replies: HashMap<String, VecDeque<Value>> = HashMap::new();
        for call in steps.iter().flat_map(|entry| entry.calls.iter()) {
            for call in call.as_array().into_iter().flatten() {
                let node = call["node"].as_str().unwrap_or_default().to_owned();
                replies.entry(node).or_default().push_back(call.clone());
            }
        }
        RecordedModels {
            replies: Mutex::new(replies),
            mismatch: Mutex::new(None),
        }
    }

    /// The next recorded call of `node`, if any is left.
    fn next(&self, node: &str) -> Option<Value> {
        self.replies
            .lock()
            .expect("replay lock")
            .get_mut(node)
            .and_then(VecDeque::pop_front)
    }

    fn refuse(&self, request: &LlmRequest, message: String) -> LlmError {
        let mut mismatch = self.mismatch.lock().expect("replay lock");
        mismatch.get_or_insert_with(|| (request.node.clone(), message.clone()));
        LlmError::new("recorded", &request.model, LlmErrorKind::Script(message))
    }
}

impl LlmClient for RecordedModels {
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        _tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move {
            let Some(call) = self.next(&request.node) else {
                return Err(self.refuse(request, "the recording has no model call here".to_owned()));
            };
            let recorded = call["request"]["hash"].as_str().unwrap_or_default();
            if request.hash() != recorded {
                let message = format!(
                    "its request to the model differs from the recorded one (a template, the state or the graph changed); recorded {}",
                    json!(call["request"]["messages"])
                );
                return Err(self.refuse(request, message));
            }
            Ok(recorded_response(&call))
        })
    }
}

/// Models for a what-if replay that changes one node: `node` asks `live`; every other node
/// gets the replies it got in `thread`'s recording after log entry `from`, in order, whatever
/// its prompt.
#[derive(Debug)]
pub struct OnlyLive {
    node: String,
    live: Arc<dyn LlmClient>,
    recorded: RecordedModels,
}

impl OnlyLive {
    pub async fn new(
        store: &Store,
        thread: Uuid,
        from: i64,
        node: &str,
        live: Arc<dyn LlmClient>,
    ) -> Result<OnlyLive, ReplayError> {
        let mut entries = store.history(thread).await?;
        entries.retain(|entry| entry.seq > from);
        Ok(OnlyLive {
            node: node.to_owned(),
            live,
            recorded: RecordedModels::new(&entries),
        })
    }
}

impl LlmClient for OnlyLive {
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        if request.node == self.node {
            return self.live.complete(request, tokens);
        }
        Box::pin(async move {
            let Some(call) = self.recorded.next(&request.node) else {
                let message = format!("the recording has no more replies for `{}`", request.node);
                return Err(LlmError::new(
                    "recorded",
                    &request.model,
                    LlmErrorKind::Script(message),
                ));
            };
            Ok(recorded_response(&call))
        })
    }
}

/// A recorded call's reply.
fn recorded_response(call: &Value) -> LlmResponse {
    LlmResponse {
        text: call["response"].as_str().unwrap_or_default().to_owned(),
        usage: Usage {
            prompt_tokens: call["prompt_tokens"].as_u64().unwrap_or(0),
            completion_tokens: call["completion_tokens"].as_u64().unwrap_or(0),
        },
        latency_ms: call["latency_ms"].as_u64().unwrap_or(0),
        provider: call["provider"].as_str().unwrap_or("recorded").to_owned(),
        model: call["model"].as_str().unwrap_or_default().to_owned(),
        attempts: 1,
    }
}
