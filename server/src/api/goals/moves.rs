//! Money moving between a goal and the savings account: deposits, withdrawals, and the
//! locking both they and a goal's deletion rely on.

use poem_openapi::payload::Json;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgConnection;

use super::{COLUMNS, GoalMove, GoalSaved, GoalsApi, Row};
use crate::api::ApiError;
use crate::api::auth::Auth;
use crate::api::idempotency::Idempotency;
use crate::api::input::Input;
use crate::finance::{accounts, audit};

impl GoalsApi {
    pub(super) async fn move_money(
        &self,
        auth: Auth,
        goal_id: i64,
        key: Option<String>,
        body: Input<GoalMove>,
        into_goal: bool,
    ) -> Result<Json<GoalSaved>, ApiError> {
        let user = auth.0.user_id;
        let action = if into_goal { "deposit" } else { "withdraw" };
        let route = format!("POST /database/goals/{goal_id}/{action}");
        let idempotency = Idempotency::new(user, key, &route, body.digest())?;
        let amount = body.value.amount;
        if !amount.is_positive() {
            return Err(ApiError::invalid("amount", "must be greater than zero"));
        }
        let saved = idempotency
            .run(&self.0.db, 200, async |tx: &mut PgConnection| {
                let goal = lock(&mut *tx, user, goal_id).await?;
                if goal.status == "inactive" {
                    return Err(ApiError::conflict("goal_inactive", "this goal is inactive"));
                }
                let delta = if into_goal { amount.0 } else { -amount.0 };
                if goal.saved + delta < Decimal::ZERO {
                    return Err(ApiError::conflict(
                        "insufficient_funds",
                        format!("the goal holds {:.2}, less than {amount}", goal.saved),
                    ));
                }
                let savings = savings_account(&mut *tx, user).await?;
                accounts::apply(&mut *tx, user, &[(savings, -delta)]).await?;
                let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE goals SET saved = saved + $2, updated_at = now(),
                        status = CASE WHEN saved + $2 >= target THEN 'achieved' ELSE 'active' END
                     WHERE id = $1 RETURNING {COLUMNS}"
                )))
                .bind(goal.id)
                .bind(delta)
                .fetch_one(&mut *tx)
                .await?;
                audit::record(
                    &mut *tx,
                    user,
                    action,
                    "goal",
                    Some(goal.id),
                    json!({"amount": amount.to_string()}),
                )
                .await?;
                let saved = GoalSaved {
                    success: true,
                    message: format!("Moved {amount}"),
                    goal: row.into(),
                };
                Ok(saved)
            })
            .await?;
        Ok(Json(saved))
    }
}

pub(super) struct Locked {
    pub(super) id: i64,
    pub(super) saved: Decimal,
    status: String,
}

pub(super) async fn lock(conn: &mut PgConnection, user: i64, id: i64) -> Result<Locked, ApiError> {
    let row: Option<(i64, Decimal, String)> =
        sqlx::query_as("SELECT id, saved, status FROM goals WHERE user_id = $1 AND id = $2 FOR UPDATE")
            .bind(user)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    let (id, saved, status) = row.ok_or(ApiError::NotFound { what: "goal" })?;
    Ok(Locked { id, saved, status })
}

pub(super) async fn savings_account(conn: &mut PgConnection, user: i64) -> Result<i64, ApiError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM accounts WHERE user_id = $1 AND kind = 'savings' AND active ORDER BY id LIMIT 1",
    )
    .bind(user)
    .fetch_optional(conn)
    .await?;
    id.ok_or_else(|| ApiError::conflict("no_savings_account", "open a savings account first"))
}
