//! A reply read as server-sent events: `chat.completion.chunk` objects, then `[DONE]`.
//!
//! Each chunk's `delta.content` goes to the token sink as it arrives and onto the reply's text.
//! With `stream_options.include_usage` the token counts come in a last chunk with no choices.
//! A stream that stops before `[DONE]` and before any `finish_reason`, or whose connection
//! fails, is cut: the text so far is not the reply.

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use serde::Deserialize;

use super::Completion;
use super::reply::{Ending, WireUsage};
use crate::llm::{LlmErrorKind, TokenSink};

/// The parts of a `chat.completion.chunk` object that Finch uses.
#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

/// The reply as it builds up, chunk by chunk.
#[derive(Debug, Default)]
struct Streamed {
    text: String,
    ending: Ending,
    usage: Option<WireUsage>,
    done: bool,
}

/// Reads a streaming reply to its end, passing text to `tokens` as it comes.
pub(super) async fn read(
    response: reqwest::Response,
    tokens: Option<&TokenSink>,
) -> Result<Completion, LlmErrorKind> {
    let mut events = response.bytes_stream().eventsource();
    let mut streamed = Streamed::default();
    while let Some(event) = events.next().await {
        let data = event.map_err(event_error)?.data;
        if data.trim() == "[DONE]" {
            streamed.done = true;
            break;
        }
        if data.trim().is_empty() {
            continue;
        }
        let chunk: Chunk = serde_json::from_str(&data)
            .map_err(|err| LlmErrorKind::InvalidResponse(format!("a stream event is not a chunk ({err})")))?;
        streamed.absorb(chunk, tokens);
    }
    streamed.finish()
}

fn event_error<E>(err: EventStreamError<E>) -> LlmErrorKind {
    match err {
        EventStreamError::Transport(_) => LlmErrorKind::StreamCut,
        EventStreamError::Utf8(err) => {
            LlmErrorKind::InvalidResponse(format!("the stream is not UTF-8 ({err})"))
        }
        EventStreamError::Parser(err) => {
            LlmErrorKind::InvalidResponse(format!("the stream is not server-sent events ({err})"))
        }
    }
}

impl Streamed {
    fn absorb(&mut self, chunk: Chunk, tokens: Option<&TokenSink>) {
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(piece) = choice.delta.content.filter(|piece| !piece.is_empty()) {
            if let Some(sink) = tokens {
                sink(&piece);
            }
            self.text.push_str(&piece);
        }
        if let Some(piece) = choice.delta.refusal {
            self.ending.refusal.get_or_insert_default().push_str(&piece);
        }
        if choice.finish_reason.is_some() {
            self.ending.finish_reason = choice.finish_reason;
        }
    }

    fn finish(self) -> Result<Completion, LlmErrorKind> {
        self.ending.check()?;
        if !self.done && self.ending.finish_reason.is_none() {
            return Err(LlmErrorKind::StreamCut);
        }
        Ok(Completion {
            text: self.text,
            usage: self.usage.unwrap_or_default().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::llm::Usage;

    fn chunk(json: &str) -> Chunk {
        serde_json::from_str(json).unwrap()
    }

    fn play(chunks: &[&str], done: bool) -> (Result<Completion, LlmErrorKind>, Vec<String>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = Arc::clone(&seen);
        let sink: TokenSink = Arc::new(move |piece: &str| sink_seen.lock().unwrap().push(piece.to_owned()));
        let mut streamed = Streamed::default();
        for json in chunks {
            streamed.absorb(chunk(json), Some(&sink));
        }
        streamed.done = done;
        let pieces = seen.lock().unwrap().clone();
        (streamed.finish(), pieces)
    }

    #[test]
    fn deltas_make_the_text_and_the_last_chunk_the_usage() {
        let (completion, pieces) = play(
            &[
                r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
                r#"{"choices":[{"delta":{"content":"Hel"}}]}"#,
                r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":null}]}"#,
                r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#,
            ],
            true,
        );
        let completion = completion.unwrap();
        assert_eq!(
            (completion.text.as_str(), pieces),
            ("Hello", vec!["Hel".to_owned(), "lo".to_owned()])
        );
        assert_eq!(
            completion.usage,
            Usage {
                prompt_tokens: 9,
                completion_tokens: 2
            }
        );
    }

    #[test]
    fn a_finish_reason_is_enough_to_end_a_stream_without_done() {
        let chunks = [r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]}"#];
        assert_eq!(play(&chunks, false).0.unwrap().text, "Hi");
    }

    #[test]
    fn a_stream_without_done_or_finish_reason_is_cut() {
        let chunks = [r#"{"choices":[{"delta":{"content":"Hi"}}]}"#];
        assert_eq!(play(&chunks, false).0, Err(LlmErrorKind::StreamCut));
    }

    #[test]
    fn a_streamed_refusal_and_the_token_limit_are_reported() {
        let refusal = [
            r#"{"choices":[{"delta":{"refusal":"I can't "}}]}"#,
            r#"{"choices":[{"delta":{"refusal":"do that."},"finish_reason":"stop"}]}"#,
        ];
        assert_eq!(
            play(&refusal, true).0,
            Err(LlmErrorKind::Refused("I can't do that.".to_owned()))
        );
        let cut = [r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":"length"}]}"#];
        assert_eq!(play(&cut, true).0, Err(LlmErrorKind::Truncated));
    }
}
