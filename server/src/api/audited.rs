//! Changing one of the caller's rows together with its audit entry, in one transaction.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{FromRow, PgPool, Postgres};

use super::ApiError;
use crate::finance::audit;

/// Who does what to which kind of object, for the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change {
    pub(crate) user: i64,
    pub(crate) action: &'static str,
    pub(crate) object: &'static str,
}

/// Runs `query`, an `UPDATE … WHERE user_id = … AND id = … RETURNING …` of one row, and records
/// the change in the same transaction. No row (missing, or another user's) is a 404 naming the
/// object; `refused` turns the database's refusal into the error the client should see.
pub(crate) async fn update_one<R>(
    db: &PgPool,
    change: Change,
    query: QueryAs<'_, Postgres, R, PgArguments>,
    id: impl Fn(&R) -> i64,
    refused: impl FnOnce(sqlx::Error) -> ApiError,
) -> Result<R, ApiError>
where
    R: Send + Unpin + for<'r> FromRow<'r, PgRow>,
{
    let mut tx = db.begin().await?;
    let row = query
        .fetch_optional(&mut *tx)
        .await
        .map_err(refused)?
        .ok_or(ApiError::NotFound { what: change.object })?;
    let detail = serde_json::json!({});
    audit::record(
        &mut tx,
        change.user,
        change.action,
        change.object,
        Some(id(&row)),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}
