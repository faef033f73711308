//! A model that answers from a script: for tests, examples and offline demos.
//!
//! A script maps node ids to the replies they get, in order:
//!
//! ```yaml
//! classify:
//!   - { json: { intent: question, topic: passwords } }   # sent as JSON text
//! answer:
//!   - Use the "Forgot password" link on the sign-in page.
//!   - { text: Sorry, that took a while., delay_ms: 50 }
//!   - { fail: timeout }                                   # a provider fault, for retry tests
//! ```
//!
//! A node inside a subgraph is looked up by its path (`database/write_sql`) first, then by its
//! id. Replies are streamed word by word to the token sink, like a real provider would.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{LlmClient, LlmError, LlmErrorKind, LlmRequest, LlmResponse, TokenSink, Usage};
use crate::yaml;

/// One scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptEntry {
    Reply { text: String, delay: Duration },
    Fail { fault: Fault, delay: Duration },
}

/// A provider fault a script can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Timeout,
    RateLimited,
    Server,
    StreamCut,
    Unauthorized,
}

impl Fault {
    fn kind(self, delay: Duration) -> LlmErrorKind {
        match self {
            Fault::Timeout => LlmErrorKind::Timeout(delay),
            Fault::RateLimited => LlmErrorKind::RateLimited { retry_after: None },
            Fault::Server => LlmErrorKind::Server {
                status: 503,
                message: "scripted failure".to_owned(),
            },
            Fault::StreamCut => LlmErrorKind::StreamCut,
            Fault::Unauthorized => LlmErrorKind::Unauthorized { status: 401 },
        }
    }
}

/// Replies by node, consumed in order.
#[derive(Debug, Default)]
pub struct Scripted {
    replies: Mutex<BTreeMap<String, VecDeque<ScriptEntry>>>,
}

impl Scripted {
    pub fn new(script: BTreeMap<String, Vec<ScriptEntry>>) -> Scripted {
        let replies = script
            .into_iter()
            .map(|(node, entries)| (node, entries.into()))
            .collect();
        Scripted {
            replies: Mutex::new(replies),
        }
    }

    /// Reads a script from YAML text; errors carry their line and column.
    pub fn parse(text: &str) -> Result<Scripted, yaml::Error> {
        let tree = yaml::parse(text)?;
        if tree.value == yaml::Value::Null {
            return Ok(Scripted::default());
        }
        let script: BTreeMap<String, Vec<ScriptEntry>> = yaml::from_node(&tree)?;
        Ok(Scripted::new(script))
    }

    /// Replies not used yet, by node: a test can assert that the script was played out.
    pub fn unused(&self) -> BTreeMap<String, usize> {
        let replies = self.replies.lock().expect("script lock");
        replies
            .iter()
            .filter(|(_, left)| !left.is_empty())
            .map(|(node, left)| (node.clone(), left.len()))
            .collect()
    }

    /// The next reply for `node`: keyed by its path (`each[2]/write_sql`), else its path
    /// without item indexes (`each/write_sql`), else its id (`write_sql`).
    fn next(&self, node: &str) -> Option<ScriptEntry> {
        let mut replies = self.replies.lock().expect("script lock");
        let without_indexes: String = node.split('/').map(strip_index).collect::<Vec<_>>().join("/");
        let id = without_indexes.rsplit('/').next().unwrap_or(node).to_owned();
        for key in [node, &without_indexes, &id] {
            if let Some(entry) = replies.get_mut(key).and_then(VecDeque::pop_front) {
                return Some(entry);
            }
        }
        None
    }
}

/// `each[2]` → `each`.
fn strip_index(segment: &str) -> &str {
    segment.split('[').next().unwrap_or(segment)
}

impl LlmClient for Scripted {
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move {
            let started = Instant::now();
            let error = |kind| LlmError::new("scripted", &request.model, kind);
            let Some(entry) = self.next(&request.node) else {
                let message = format!("the script has no reply left for node `{}`", request.node);
                return Err(error(LlmErrorKind::Script(message)));
            };
            match entry {
                ScriptEntry::Fail { fault, delay } => {
                    tokio::time::sleep(delay).await;
                    Err(error(fault.kind(delay)))
                }
                ScriptEntry::Reply { text, delay } => {
                    tokio::time::sleep(delay).await;
                    if let Some(sink) = tokens {
                        for piece in text.split_inclusive(' ') {
                            sink(piece);
                        }
                    }
                    let prompt_words: usize = request
                        .messages
                        .iter()
                        .map(|m| m.content.split_whitespace().count())
                        .sum();
                    Ok(LlmResponse {
                        usage: Usage {
                            prompt_tokens: prompt_words as u64,
                            completion_tokens: text.split_whitespace().count() as u64,
                        },
                        text,
                        latency_ms: started.elapsed().as_millis() as u64,
                        provider: "scripted".to_owned(),
                        model: request.model.clone(),
                        attempts: 1,
                    })
                }
            }
        })
    }
}

impl<'de> Deserialize<'de> for ScriptEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ScriptEntry, D::Error> {
        deserializer.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = ScriptEntry;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a reply text, or a map with `text`, `json` or `fail`")
    }

    fn visit_str<E>(self, text: &str) -> Result<ScriptEntry, E> {
        Ok(ScriptEntry::Reply {
            text: text.to_owned(),
            delay: Duration::ZERO,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScriptEntry, A::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Form {
            #[serde(default)]
            text: Option<String>,
            #[serde(default)]
            json: Option<Value>,
            #[serde(default)]
            fail: Option<Fault>,
            #[serde(default)]
            delay_ms: u64,
        }
        let form = Form::deserialize(MapAccessDeserializer::new(map))?;
        let delay = Duration::from_millis(form.delay_ms);
        match (form.text, form.json, form.fail) {
            (Some(text), None, None) => Ok(ScriptEntry::Reply { text, delay }),
            (None, Some(json), None) => Ok(ScriptEntry::Reply {
                text: json.to_string(),
                delay,
            }),
            (None, None, Some(fault)) => Ok(ScriptEntry::Fail { fault, delay }),
            _ => Err(serde::de::Error::custom(
                "a scripted reply has exactly one of `text`, `json` and `fail`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Message, Role};

    fn request(node: &str) -> LlmRequest {
        LlmRequest {
            node: node.to_owned(),
            model: "fast".to_owned(),
            messages: vec![Message::new(Role::User, "hi there")],
            output_schema: None,
            history: None,
            fixed: Vec::new(),
        }
    }

    #[tokio::test]
    async fn replies_in_order_by_path_then_id() {
        let script =
            Scripted::parse("answer:\n  - one\n  - { json: { a: 1 } }\ndb/answer:\n  - inner\n").unwrap();
        assert_eq!(
            script.complete(&request("db/answer"), None).await.unwrap().text,
            "inner"
        );
        assert_eq!(
            script.complete(&request("db/answer"), None).await.unwrap().text,
            "one"
        );
        assert_eq!(
            script.complete(&request("answer"), None).await.unwrap().text,
            "{\"a\":1}"
        );
        let err = script.complete(&request("answer"), None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "scripted model `fast`: the script has no reply left for node `answer`"
        );
    }

    #[tokio::test]
    async fn a_map_item_falls_back_to_its_node_without_the_index() {
        let script = Scripted::parse("each: [plain]\n\"each[1]\": [indexed]\n").unwrap();
        assert_eq!(
            script.complete(&request("each[1]"), None).await.unwrap().text,
            "indexed"
        );
        assert_eq!(
            script.complete(&request("each[0]"), None).await.unwrap().text,
            "plain"
        );
    }

    #[tokio::test]
    async fn plays_faults() {
        let script = Scripted::parse("answer: [{ fail: server }]").unwrap();
        let err = script.complete(&request("answer"), None).await.unwrap_err();
        assert!(err.is_retryable());
    }

    #[test]
    fn a_bad_entry_points_at_its_line() {
        let err = Scripted::parse("answer:\n  - { txt: hi }\n").err().unwrap();
        assert_eq!((err.pos.line, err.message.as_str()), (2, "unknown key `txt`"));
    }
}
