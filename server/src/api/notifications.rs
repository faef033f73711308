//! `/api/notifications`: budget alerts (raised by the ledger) and marking them read.

use chrono::{DateTime, NaiveDate, Utc};
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, Response};
use poem_openapi::{Object, OpenApi};
use serde_json::json;

use super::auth::Auth;
use super::{ApiError, Ctx, Tag, page};

pub(crate) struct NotificationsApi(pub(crate) Ctx);

#[derive(Debug, Object, sqlx::FromRow)]
pub(crate) struct Notification {
    #[oai(rename = "notification_id")]
    id: i64,
    /// `budget_warning` (80% of a month's limit), `budget_exceeded` (100%) or `info`.
    #[oai(rename = "notification_type")]
    kind: String,
    title: String,
    message: String,
    budget_id: Option<i64>,
    /// The month a budget alert is about (its first day).
    period: Option<NaiveDate>,
    is_read: bool,
    created_at: DateTime<Utc>,
}

#[OpenApi(prefix_path = "/notifications", tag = "Tag::Notifications")]
impl NotificationsApi {
    /// The caller's notifications, newest first.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        request: &Request,
        /// Only unread ones.
        unread: Query<Option<bool>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Notification>>>, ApiError> {
        let limit = page::limit(limit.0, 50, 500)?;
        let before = page::id(cursor.0.as_deref(), i64::MAX)?;
        let rows: Vec<Notification> = sqlx::query_as(
            "SELECT id, kind, title, message, budget_id, period, is_read, created_at
             FROM notifications
             WHERE user_id = $1 AND id < $2 AND (NOT $3 OR NOT is_read)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(auth.0.user_id)
        .bind(before)
        .bind(unread.0.unwrap_or(false))
        .bind(limit + 1)
        .fetch_all(&self.0.db)
        .await?;
        Ok(page::page(request, rows, limit, |n| vec![json!(n.id)], |n| n))
    }

    /// Marks a notification read.
    #[oai(path = "/:notification_id/read", method = "put")]
    async fn read(&self, auth: Auth, notification_id: Path<i64>) -> Result<Json<Notification>, ApiError> {
        let row: Option<Notification> = sqlx::query_as(
            "UPDATE notifications SET is_read = true WHERE user_id = $1 AND id = $2
             RETURNING id, kind, title, message, budget_id, period, is_read, created_at",
        )
        .bind(auth.0.user_id)
        .bind(notification_id.0)
        .fetch_optional(&self.0.db)
        .await?;
        row.map(Json).ok_or(ApiError::NotFound { what: "notification" })
    }
}
