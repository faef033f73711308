//! `POST /api/personal_assistant/analyze`: a message to the assistant, answered by the graphs
//! in a conversation. The user's message is stored before the assistant runs, and the answer
//! after, with the rows it came from; a model that does not answer is a 503 that loses nothing.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::Auth;
use super::conversations::{self, ContentType, Sender};
use super::input::Input;
use super::{ApiError, Ctx, Tag};
use std::sync::Arc;

use super::makers::{self, Maker};
use crate::assistant::{Answer, Assistant, FOLD, HISTORY, TurnError};

/// The longest message taken, in characters.
const MAX_MESSAGE: usize = 4_000;
/// When to try again after the model did not answer, in seconds.
const RETRY_AFTER: u64 = 30;

pub(crate) struct AssistantApi(pub(crate) Ctx);

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnalyzeRequest {
    /// What the user says.
    query: String,
    /// The conversation to continue; a new one is started without it.
    conversation_id: Option<i64>,
    /// Accepted for the reference's clients; must be the caller's own id.
    user_id: Option<i64>,
    /// Accepted for the reference's clients and ignored.
    filters: Option<Value>,
    /// Accepted for the reference's clients and ignored.
    metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub(crate) struct AnalyzeResponse {
    /// The assistant's answer.
    final_output: String,
    /// The rows the answer came from (decimals as strings); empty when none.
    data: Value,
    conversation_id: i64,
    /// Who answered: `assistant`, `database_agent`, `behaviour_analyst`, or a maker
    /// (`GoalMaker`, `BudgetMaker`, `TransactionMaker`).
    agent: String,
    /// A chart of the data, when one was asked for or the rows are a series:
    /// `{ kind, x, y, vega_lite, svg, table }` (a Vega-Lite spec, an SVG, a Markdown table).
    chart: Option<Value>,
}

#[OpenApi(tag = "Tag::Assistant")]
impl AssistantApi {
    /// Sends a message to the assistant and returns its answer.
    #[oai(path = "/personal_assistant/analyze", method = "post")]
    async fn analyze(
        &self,
        auth: Auth,
        body: Input<AnalyzeRequest>,
    ) -> Result<Json<AnalyzeResponse>, ApiError> {
        let user = auth.0.user_id;
        let request = body.value;
        auth.0.check(request.user_id, "user")?;
        let _ignored = (&request.filters, &request.metadata);
        let query = message("query", &request.query, false)?;
        let assistant = admitted(&self.0, user)?;
        let (conversation, thread) = self.open(assistant, user, request.conversation_id).await?;
        let mut conn = self.0.db.acquire().await?;
        conversations::add(
            &mut conn,
            user,
            conversation,
            (Sender::User, "User"),
            query,
            ContentType::Text,
            None,
            None,
        )
        .await?;
        drop(conn);
        let reply = match makers::awaiting(&self.0, user, conversation, query).await? {
            // A yes or no to the question a maker asked in this conversation.
            Some(maker) => self.maker(assistant, user, conversation, maker, query).await?,
            None => {
                let (recent, memory) = recall(&self.0.db, user, conversation).await?;
                let answer = assistant
                    .turn(user, thread, recent, memory)
                    .await
                    .map_err(turn_error)?;
                if let Some((summary, through)) = &answer.remembered {
                    remember(&self.0.db, user, conversation, summary, *through).await?;
                }
                match answer.handoff.as_deref().and_then(makers::maker) {
                    Some(maker) => self.maker(assistant, user, conversation, maker, query).await?,
                    None => answer,
                }
            }
        };
        let Answer {
            text,
            agent,
            data,
            chart,
            confirmation,
            ..
        } = reply;
        let mut stored = serde_json::Map::new();
        if data.as_array().is_some_and(|rows| !rows.is_empty()) {
            stored.insert("rows".to_owned(), data.clone());
        }
        if let Some(chart) = &chart {
            stored.insert("chart".to_owned(), chart.clone());
        }
        if let Some(question) = confirmation {
            // What lets the next message answer it (see `makers::awaiting`).
            stored.insert("confirmation".to_owned(), Value::String(question));
        }
        let mut conn = self.0.db.acquire().await?;
        conversations::add(
            &mut conn,
            user,
            conversation,
            (Sender::Assistant, &agent),
            &text,
            ContentType::Text,
            (!stored.is_empty()).then_some(Value::Object(stored)),
            None,
        )
        .await?;
        Ok(Json(AnalyzeResponse {
            final_output: text,
            data,
            conversation_id: conversation,
            agent,
            chart,
        }))
    }
}

impl AssistantApi {
    /// A turn of `maker`, as the assistant's answer: what it said (its question, when it
    /// waits for a yes or no), and what it saved as the data.
    async fn maker(
        &self,
        assistant: &Assistant,
        user: i64,
        conversation: i64,
        maker: &'static Maker,
        said: &str,
    ) -> Result<Answer, ApiError> {
        let turn = makers::turn(&self.0, assistant, user, conversation, maker, said, None).await?;
        let said = maker.said(turn);
        Ok(Answer {
            text: said.message,
            agent: maker.agent.to_owned(),
            data: Value::Array(said.saved.into_iter().collect()),
            chart: None,
            handoff: None,
            remembered: None,
            confirmation: said.confirmation,
        })
    }

    /// The caller's conversation `id` (or a new one) and its engine thread (made on first use).
    async fn open(&self, assistant: &Assistant, user: i64, id: Option<i64>) -> Result<(i64, Uuid), ApiError> {
        let (id, thread): (i64, Option<Uuid>) = match id {
            Some(id) => {
                sqlx::query_as("SELECT id, thread_id FROM conversations WHERE user_id = $1 AND id = $2")
                    .bind(user)
                    .bind(id)
                    .fetch_optional(&self.0.db)
                    .await?
                    .ok_or(ApiError::NotFound { what: "conversation" })?
            }
            None => {
                sqlx::query_as("INSERT INTO conversations (user_id) VALUES ($1) RETURNING id, thread_id")
                    .bind(user)
                    .fetch_one(&self.0.db)
                    .await?
            }
        };
        if let Some(thread) = thread {
            return Ok((id, thread));
        }
        let created = assistant
            .new_thread("assistant", user, id)
            .await
            .map_err(turn_error)?;
        // Two first messages at once: the one that set it first wins, the other thread stays unused.
        let thread: Uuid = sqlx::query_scalar(
            "UPDATE conversations SET thread_id = coalesce(thread_id, $3) WHERE user_id = $1 AND id = $2
             RETURNING thread_id",
        )
        .bind(user)
        .bind(id)
        .bind(created)
        .fetch_one(&self.0.db)
        .await?;
        Ok((id, thread))
    }
}

/// What the user said, trimmed: not empty (unless `may_be_empty`), not too long.
pub(super) fn message<'a>(field: &str, text: &'a str, may_be_empty: bool) -> Result<&'a str, ApiError> {
    let text = text.trim();
    if text.is_empty() && !may_be_empty {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > MAX_MESSAGE {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_MESSAGE} characters"),
        ));
    }
    Ok(text)
}

/// The assistant, if it is set up and `user` may take another turn now.
pub(super) fn admitted(ctx: &Ctx, user: i64) -> Result<&Arc<Assistant>, ApiError> {
    let Some(assistant) = &ctx.assistant else {
        return Err(ApiError::AssistantUnavailable {
            retry_after: RETRY_AFTER,
        });
    };
    assistant.admit(user).map_err(turn_error)?;
    Ok(assistant)
}

/// The conversation as the `assistant` graph takes it: its recent messages, oldest first, and
/// its `memory` — the summary of what came before, with the messages the summary does not
/// cover yet once there are [`FOLD`] of them past the window of [`HISTORY`].
async fn recall(db: &sqlx::PgPool, user: i64, conversation: i64) -> Result<(Vec<Value>, Value), ApiError> {
    let (summary, through): (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT summary, summary_through FROM conversations WHERE user_id = $1 AND id = $2")
            .bind(user)
            .bind(conversation)
            .fetch_one(db)
            .await?;
    // Beyond this many, the oldest messages not summarized yet are left out of the summary.
    let most = HISTORY + 4 * FOLD;
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, sender, content FROM (
             SELECT id, sender, content FROM messages
             WHERE user_id = $1 AND conversation_id = $2 AND id > coalesce($3, 0)
             ORDER BY id DESC LIMIT $4
         ) recent ORDER BY id",
    )
    .bind(user)
    .bind(conversation)
    .bind(through)
    .bind(most)
    .fetch_all(db)
    .await?;
    let message = |(_, role, content): &(i64, String, String)| json!({ "role": role, "content": content });
    let fold = rows.len() as i64 >= HISTORY + FOLD;
    let split = if fold { rows.len() - HISTORY as usize } else { 0 };
    let (older, recent) = rows.split_at(split);
    let memory = json!({
        "summary": summary.unwrap_or_default(),
        "older": older.iter().map(message).collect::<Vec<_>>(),
        "through": older.last().map(|(id, _, _)| *id).or(through),
    });
    Ok((recent.iter().map(message).collect(), memory))
}

/// Keeps the conversation's new summary, unless another turn kept one meanwhile.
async fn remember(
    db: &sqlx::PgPool,
    user: i64,
    conversation: i64,
    summary: &str,
    through: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE conversations SET summary = $3, summary_at = now(), summary_through = $4
         WHERE user_id = $1 AND id = $2 AND coalesce(summary_through, 0) < $4",
    )
    .bind(user)
    .bind(conversation)
    .bind(summary)
    .bind(through)
    .execute(db)
    .await?;
    Ok(())
}

/// The conversation's last messages, oldest first, as the graph takes them.
pub(super) async fn history(
    conn: &mut sqlx::PgConnection,
    user: i64,
    conversation: i64,
) -> Result<Vec<Value>, ApiError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT sender, content FROM (
             SELECT id, sender, content FROM messages WHERE user_id = $1 AND conversation_id = $2
             ORDER BY id DESC LIMIT $3
         ) recent ORDER BY id",
    )
    .bind(user)
    .bind(conversation)
    .bind(HISTORY)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect())
}

pub(super) fn turn_error(err: TurnError) -> ApiError {
    match err {
        TurnError::TooMany => ApiError::TooManyRequests { retry_after: 60 },
        TurnError::Busy => ApiError::Conflict {
            code: "conversation_busy",
            detail: "the assistant is still answering this conversation's last message".to_owned(),
        },
        TurnError::Failed(why) => {
            tracing::warn!(error = why, "the assistant could not answer");
            ApiError::AssistantUnavailable {
                retry_after: RETRY_AFTER,
            }
        }
        TurnError::Engine(err) => ApiError::Internal(err.into()),
    }
}
