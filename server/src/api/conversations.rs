//! Conversations with the assistant and their messages: started with
//! `POST /api/personal_assistant/conversations/start`, read and written under
//! `/api/database/conversations`. Message data (rows, charts) is stored as JSON with decimals
//! as strings, so no turn is ever lost to a number that JSON cannot hold.

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Json, Response};
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use super::auth::Auth;
use super::idempotency::Idempotency;
use super::input::Input;
use super::users::text_enum;
use super::{ApiError, Created, Ctx, Tag, page};

text_enum!(Sender {
    User = "user",
    Assistant = "assistant",
});

text_enum!(ContentType {
    Text = "text",
    Json = "json",
});

pub(crate) struct ConversationsApi(pub(crate) Ctx);

#[derive(Debug, Object, sqlx::FromRow)]
pub(crate) struct Conversation {
    #[oai(rename = "conversation_id")]
    id: i64,
    user_id: i64,
    title: Option<String>,
    channel: String,
    started_at: DateTime<Utc>,
    last_message_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub(crate) struct Message {
    message_id: i64,
    conversation_id: i64,
    sender_type: Sender,
    /// Which agent wrote it (`User` for the user's own messages).
    source_agent: String,
    content: String,
    content_type: ContentType,
    /// Structured data that came with the message.
    #[oai(skip_serializing_if_is_none)]
    data: Option<serde_json::Value>,
    language: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    conversation_id: i64,
    sender: String,
    agent: String,
    content: String,
    content_type: String,
    data: Option<serde_json::Value>,
    language: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Message {
        Message {
            message_id: row.id,
            conversation_id: row.conversation_id,
            sender_type: Sender::from_db(&row.sender).unwrap_or(Sender::User),
            source_agent: row.agent,
            content: row.content,
            content_type: ContentType::from_db(&row.content_type).unwrap_or(ContentType::Text),
            data: row.data,
            language: row.language,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Object, Deserialize)]
pub(crate) struct StartConversation {
    /// Accepted for compatibility; must be the caller's id if sent.
    user_id: Option<i64>,
    /// `web` when left out.
    channel: Option<String>,
    title: Option<String>,
}

#[derive(Debug, Object, Deserialize)]
pub(crate) struct NewMessage {
    /// `user` when left out.
    sender_type: Option<Sender>,
    content: String,
    content_type: Option<ContentType>,
    data: Option<serde_json::Value>,
    language: Option<String>,
}

const CONVERSATION: &str = "id, user_id, title, channel, started_at, last_message_at";
const MESSAGE: &str = "id, conversation_id, sender, agent, content, content_type, data, language, created_at";

#[OpenApi(tag = "Tag::Conversations")]
impl ConversationsApi {
    /// Starts a conversation with the assistant.
    #[oai(path = "/personal_assistant/conversations/start", method = "post")]
    async fn start(
        &self,
        auth: Auth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<StartConversation>,
    ) -> Result<Created<Conversation>, ApiError> {
        let user = auth.0.user_id;
        let idempotency = Idempotency::new(
            user,
            key.0,
            "POST /personal_assistant/conversations/start",
            body.digest(),
        )?;
        let new = body.value;
        auth.0.check(new.user_id, "user")?;
        let conversation = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let conversation: Conversation = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO conversations (user_id, channel, title) VALUES ($1, coalesce($2, 'web'), $3)
                     RETURNING {CONVERSATION}"
                )))
                .bind(user)
                .bind(&new.channel)
                .bind(&new.title)
                .fetch_one(&mut *tx)
                .await?;
                Ok(conversation)
            })
            .await?;
        Ok(Created::Created(Json(conversation)))
    }

    /// The caller's conversations, most recent first.
    #[oai(path = "/database/conversations", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        request: &Request,
        user_id: Query<Option<i64>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Conversation>>>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let limit = page::limit(limit.0, 50, 500)?;
        let before = page::id(cursor.0.as_deref(), i64::MAX)?;
        let rows: Vec<Conversation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONVERSATION} FROM conversations WHERE user_id = $1 AND id < $2
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(auth.0.user_id)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&self.0.db)
        .await?;
        Ok(page::page(request, rows, limit, |c| vec![json!(c.id)], |c| c))
    }

    /// One of the caller's conversations.
    #[oai(path = "/database/conversations/:conversation_id", method = "get")]
    async fn get(&self, auth: Auth, conversation_id: Path<i64>) -> Result<Json<Conversation>, ApiError> {
        let mut conn = self.0.db.acquire().await?;
        Ok(Json(
            conversation(&mut conn, auth.0.user_id, conversation_id.0).await?,
        ))
    }

    /// A conversation's messages, oldest first.
    #[oai(path = "/database/conversations/:conversation_id/messages", method = "get")]
    async fn messages(
        &self,
        auth: Auth,
        request: &Request,
        conversation_id: Path<i64>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Message>>>, ApiError> {
        let limit = page::limit(limit.0, 100, 1000)?;
        let after = page::id(cursor.0.as_deref(), 0)?;
        let mut conn = self.0.db.acquire().await?;
        conversation(&mut conn, auth.0.user_id, conversation_id.0).await?;
        let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE} FROM messages WHERE user_id = $1 AND conversation_id = $2 AND id > $3
             ORDER BY id LIMIT $4"
        )))
        .bind(auth.0.user_id)
        .bind(conversation_id.0)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        Ok(page::page(
            request,
            rows,
            limit,
            |m| vec![json!(m.id)],
            Message::from,
        ))
    }

    /// Adds a message to one of the caller's conversations.
    #[oai(path = "/database/conversations/:conversation_id/messages", method = "post")]
    async fn add_message(
        &self,
        auth: Auth,
        conversation_id: Path<i64>,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<NewMessage>,
    ) -> Result<Created<Message>, ApiError> {
        let user = auth.0.user_id;
        let route = format!("POST /database/conversations/{}/messages", conversation_id.0);
        let idempotency = Idempotency::new(user, key.0, &route, body.digest())?;
        let new = body.value;
        if new.content.trim().is_empty() {
            return Err(ApiError::invalid("content", "must not be empty"));
        }
        let sender = new.sender_type.unwrap_or(Sender::User);
        let message = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let agent = match sender {
                    Sender::User => "User",
                    Sender::Assistant => "Manual",
                };
                let message = add(
                    &mut *tx,
                    user,
                    conversation_id.0,
                    (sender, agent),
                    &new.content,
                    new.content_type.unwrap_or(ContentType::Text),
                    new.data,
                    new.language.as_deref(),
                )
                .await?;
                Ok(message)
            })
            .await?;
        Ok(Created::Created(Json(message)))
    }
}

async fn conversation(conn: &mut PgConnection, user: i64, id: i64) -> Result<Conversation, ApiError> {
    let row: Option<Conversation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION} FROM conversations WHERE user_id = $1 AND id = $2"
    )))
    .bind(user)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.ok_or(ApiError::NotFound { what: "conversation" })
}

/// Appends a message to conversation `id` of `user`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn add(
    conn: &mut PgConnection,
    user: i64,
    id: i64,
    (sender, agent): (Sender, &str),
    content: &str,
    content_type: ContentType,
    data: Option<serde_json::Value>,
    language: Option<&str>,
) -> Result<Message, ApiError> {
    let row: MessageRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (user_id, conversation_id, sender, agent, content, content_type, data, language)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {MESSAGE}"
    )))
    .bind(user)
    .bind(id)
    .bind(sender.as_str())
    .bind(agent)
    .bind(content)
    .bind(content_type.as_str())
    .bind(data)
    .bind(language)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE conversations SET last_message_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(row.into())
}
