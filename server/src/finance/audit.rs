//! The append-only audit log: one row per change a user (or the server for them) makes.

use sqlx::PgConnection;

/// Appends `action` on `object` to the log, in the caller's transaction so it commits (or not)
/// with the change it describes.
pub async fn record(
    conn: &mut PgConnection,
    user_id: i64,
    action: &str,
    object: &str,
    object_id: Option<i64>,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (user_id, action, object, object_id, detail, request_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user_id)
    .bind(action)
    .bind(object)
    .bind(object_id)
    .bind(detail)
    .bind(crate::api::request_id())
    .execute(conn)
    .await?;
    Ok(())
}
