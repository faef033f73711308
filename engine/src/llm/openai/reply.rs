//! A reply read whole, and the checks every reply gets, streamed or not: a refusal, the
//! content filter or the token limit make the reply unusable, whatever text came with it.

use serde::Deserialize;

use super::Completion;
use crate::llm::{LlmErrorKind, Usage};

/// The parts of a `chat.completion` object that Finch uses.
#[derive(Debug, Deserialize)]
struct ChatCompletion {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

/// Token counts as providers send them; some leave fields out.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Usage {
        Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        }
    }
}

/// Reads a non-streaming reply.
pub(super) async fn read(response: reqwest::Response) -> Result<Completion, LlmErrorKind> {
    let bytes = response.bytes().await.map_err(|_| LlmErrorKind::StreamCut)?;
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Result<Completion, LlmErrorKind> {
    let completion: ChatCompletion = serde_json::from_slice(bytes)
        .map_err(|err| LlmErrorKind::InvalidResponse(format!("the body is not a chat completion ({err})")))?;
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(LlmErrorKind::InvalidResponse(
            "the reply has no choices".to_owned(),
        ));
    };
    let ended = Ending {
        refusal: choice.message.refusal,
        finish_reason: choice.finish_reason,
    };
    ended.check()?;
    let Some(text) = choice.message.content else {
        return Err(LlmErrorKind::InvalidResponse(
            "the reply has no message content".to_owned(),
        ));
    };
    let usage = completion.usage.unwrap_or_default().into();
    Ok(Completion { text, usage })
}

/// How a reply ended: what decides whether its text can be used.
#[derive(Debug, Default)]
pub(super) struct Ending {
    pub(super) refusal: Option<String>,
    pub(super) finish_reason: Option<String>,
}

impl Ending {
    pub(super) fn check(&self) -> Result<(), LlmErrorKind> {
        if let Some(refusal) = &self.refusal {
            return Err(LlmErrorKind::Refused(refusal.clone()));
        }
        match self.finish_reason.as_deref() {
            Some("length") => Err(LlmErrorKind::Truncated),
            Some("content_filter") => Err(LlmErrorKind::Refused(
                "the provider's content filter stopped the reply".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(message: &str, finish_reason: &str) -> Vec<u8> {
        format!(
            r#"{{"choices":[{{"index":0,"message":{message},"finish_reason":"{finish_reason}"}}],
                "usage":{{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn the_text_and_the_token_counts_are_read() {
        let completion = parse(&reply(r#"{"role":"assistant","content":"Hello"}"#, "stop")).unwrap();
        assert_eq!(completion.text, "Hello");
        assert_eq!(
            completion.usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 3
            }
        );
    }

    #[test]
    fn a_refusal_a_filtered_reply_and_a_cut_reply_cannot_be_used() {
        let refused = parse(&reply(
            r#"{"content":null,"refusal":"I can't help with that."}"#,
            "stop",
        ));
        assert_eq!(
            refused,
            Err(LlmErrorKind::Refused("I can't help with that.".to_owned()))
        );
        let filtered = parse(&reply(r#"{"content":"partial"}"#, "content_filter")).unwrap_err();
        assert!(matches!(filtered, LlmErrorKind::Refused(_)));
        let cut = parse(&reply(r#"{"content":"partial"}"#, "length"));
        assert_eq!(cut, Err(LlmErrorKind::Truncated));
    }

    #[test]
    fn a_body_that_is_not_a_completion_is_an_invalid_response() {
        for body in ["<html>", r#"{"choices":[]}"#, r#"{"choices":[{"message":{}}]}"#] {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(matches!(err, LlmErrorKind::InvalidResponse(_)), "{body}: {err}");
        }
    }
}
