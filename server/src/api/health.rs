//! `GET /api/personal_assistant/health`: no authentication, so platform health checks work.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{Ctx, Tag};

pub(crate) struct HealthApi(pub(crate) Ctx);

#[derive(Debug, Object)]
struct Health {
    /// `healthy`, or `degraded` when the database does not answer.
    status: String,
    /// Whether a `SELECT 1` on the database succeeded.
    database: bool,
    timestamp: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, ApiResponse)]
enum HealthResponse {
    /// Serving, with the database reachable.
    #[oai(status = 200)]
    Healthy(Json<Health>),
    /// Serving, but the database is unreachable.
    #[oai(status = 503)]
    Degraded(Json<Health>),
}

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Reports whether the server runs and reaches its database.
    #[oai(path = "/personal_assistant/health", method = "get")]
    async fn health(&self) -> HealthResponse {
        let reachable = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.0.db),
        )
        .await
        .is_ok_and(|result| result.is_ok());
        let health = Health {
            status: if reachable { "healthy" } else { "degraded" }.to_owned(),
            database: reachable,
            timestamp: chrono::Utc::now(),
        };
        match reachable {
            true => HealthResponse::Healthy(Json(health)),
            false => HealthResponse::Degraded(Json(health)),
        }
    }
}
