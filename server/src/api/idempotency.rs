//! `Idempotency-Key` on creating requests: the first response is stored with the change, in the
//! same transaction; the same key with the same body gets that response again, with another
//! body a 422. Keys are per user.

use poem_openapi::types::{ParseFromJSON, ToJSON};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::ApiError;

/// The key of one creating request, if the client sent one.
#[derive(Debug)]
pub(crate) struct Idempotency {
    user_id: i64,
    key: Option<String>,
    hash: Vec<u8>,
}

impl Idempotency {
    /// For a request to `route` with a body of digest `digest`.
    pub(crate) fn new(
        user_id: i64,
        key: Option<String>,
        route: &str,
        digest: [u8; 32],
    ) -> Result<Idempotency, ApiError> {
        if key.as_ref().is_some_and(|key| key.is_empty() || key.len() > 255) {
            return Err(ApiError::BadRequest {
                detail: "must be 1 to 255 characters".to_owned(),
                field: Some("Idempotency-Key".to_owned()),
            });
        }
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update(digest);
        Ok(Idempotency {
            user_id,
            key,
            hash: hasher.finalize().to_vec(),
        })
    }

    /// Runs `change` in a transaction and stores its response (with `status`) in that same
    /// transaction; a request made before gets its stored response, and `change` does not run.
    pub(crate) async fn run<T>(
        self,
        db: &PgPool,
        status: u16,
        change: impl AsyncFnOnce(&mut PgConnection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError>
    where
        T: ParseFromJSON + ToJSON,
    {
        let mut tx = db.begin().await?;
        if let Some(stored) = self.stored(&mut tx).await? {
            return Ok(stored);
        }
        let response = change(&mut tx).await?;
        self.remember(&mut tx, status, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// The response stored for this key, if the request was made before.
    async fn stored<T: ParseFromJSON>(&self, conn: &mut PgConnection) -> Result<Option<T>, ApiError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let row: Option<(Vec<u8>, serde_json::Value)> = sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        )
        .bind(self.user_id)
        .bind(key)
        .fetch_optional(conn)
        .await?;
        match row {
            None => Ok(None),
            Some((hash, _)) if hash != self.hash => Err(ApiError::Unprocessable {
                code: "idempotency_key_reused",
                detail: "this Idempotency-Key was used for a different request".to_owned(),
            }),
            Some((_, response)) => T::parse_from_json(Some(response)).map(Some).map_err(|err| {
                ApiError::Internal(anyhow::anyhow!("a stored response: {}", err.into_message()))
            }),
        }
    }

    /// Stores `response` for this key, in the transaction that made the change.
    async fn remember<T: ToJSON>(
        &self,
        conn: &mut PgConnection,
        status: u16,
        response: &T,
    ) -> Result<(), ApiError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let result = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.user_id)
        .bind(key)
        .bind(&self.hash)
        .bind(status as i16)
        .bind(response.to_json())
        .execute(conn)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Err(ApiError::conflict(
                "idempotency_key_in_use",
                "another request with this Idempotency-Key finished first; retry to get its response",
            )),
            Err(err) => Err(err.into()),
        }
    }
}
