//! `/api/database/budget`: a user's monthly budgets — list, create, update, delete (softly:
//! a deleted budget turns inactive and keeps its transactions).

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Json, Response};
use poem_openapi::{Object, OpenApi};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use super::audited::{self, Change};
use super::auth::Auth;
use super::idempotency::Idempotency;
use super::input::Input;
use super::money::Money;
use super::{ApiError, Created, Ctx, Tag, page};
use crate::finance::audit;

pub(crate) struct BudgetsApi(pub(crate) Ctx);

/// A monthly budget.
#[derive(Debug, Object)]
pub(crate) struct Budget {
    budget_id: i64,
    budget_name: String,
    description: Option<String>,
    /// The monthly limit.
    total_limit: Money,
    /// 1 (most important) to 10.
    priority_level_int: Option<i16>,
    icon: String,
    color: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    description: Option<String>,
    monthly_limit: Decimal,
    priority: Option<i16>,
    icon: String,
    color: String,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Budget {
    fn from(row: Row) -> Budget {
        Budget {
            budget_id: row.id,
            budget_name: row.name,
            description: row.description,
            total_limit: Money(row.monthly_limit),
            priority_level_int: row.priority,
            icon: row.icon,
            color: row.color,
            is_active: row.active,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A new budget.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct NewBudget {
    /// Accepted for compatibility; must be the caller's id if sent.
    user_id: Option<i64>,
    budget_name: String,
    description: Option<String>,
    /// The monthly limit, zero or more.
    total_limit: Money,
    priority_level_int: Option<i16>,
    icon: Option<String>,
    /// `#rrggbb`.
    color: Option<String>,
}

/// Changes to a budget: only the fields sent change.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct BudgetChanges {
    budget_name: Option<String>,
    description: Option<String>,
    total_limit: Option<Money>,
    priority_level_int: Option<i16>,
    icon: Option<String>,
    color: Option<String>,
    is_active: Option<bool>,
}

#[derive(Debug, Object)]
pub(crate) struct BudgetSaved {
    success: bool,
    message: String,
    budget: Budget,
}

fn check(
    name: Option<&str>,
    limit: Option<Money>,
    priority: Option<i16>,
    color: Option<&str>,
) -> Result<(), ApiError> {
    if name.is_some_and(|name| name.trim().is_empty()) {
        return Err(ApiError::invalid("budget_name", "must not be empty"));
    }
    if limit.is_some_and(|limit| limit.0.is_sign_negative()) {
        return Err(ApiError::invalid("total_limit", "must not be negative"));
    }
    if priority.is_some_and(|p| !(1..=10).contains(&p)) {
        return Err(ApiError::invalid(
            "priority_level_int",
            "must be between 1 and 10",
        ));
    }
    if color.is_some_and(|c| {
        c.len() != 7 || !c.starts_with('#') || !c[1..].bytes().all(|b| b.is_ascii_hexdigit())
    }) {
        return Err(ApiError::invalid("color", "must be a colour such as `#10b981`"));
    }
    Ok(())
}

fn name_taken(err: sqlx::Error) -> ApiError {
    match ApiError::from(err) {
        ApiError::Conflict { .. } => ApiError::conflict("budget_exists", "an active budget has this name"),
        other => other,
    }
}

const COLUMNS: &str =
    "id, name, description, monthly_limit, priority, icon, color, active, created_at, updated_at";

#[OpenApi(prefix_path = "/database/budget", tag = "Tag::Budgets")]
impl BudgetsApi {
    /// The caller's budgets, most important first.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        request: &Request,
        user_id: Query<Option<i64>>,
        /// `true` by default: only active budgets.
        active: Query<Option<bool>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Budget>>>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let limit = page::limit(limit.0, 100, 500)?;
        let (after_priority, after_id) = match page::decode(cursor.0.as_deref())? {
            Some(key) => (page::part::<i16>(&key, 0)?, page::part::<i64>(&key, 1)?),
            None => (0, 0),
        };
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM budgets
             WHERE user_id = $1 AND ($2::bool IS NULL OR active = $2)
               AND (coalesce(priority, 11), id) > ($3, $4)
             ORDER BY coalesce(priority, 11), id LIMIT $5"
        )))
        .bind(auth.0.user_id)
        .bind(active.0.or(Some(true)))
        .bind(after_priority)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&self.0.db)
        .await?;
        let key = |row: &Row| vec![json!(row.priority.unwrap_or(11)), json!(row.id)];
        Ok(page::page(request, rows, limit, key, Budget::from))
    }

    /// Creates a budget.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<NewBudget>,
    ) -> Result<Created<BudgetSaved>, ApiError> {
        let user = auth.0.user_id;
        let idempotency = Idempotency::new(user, key.0, "POST /database/budget", body.digest())?;
        let new = body.value;
        auth.0.check(new.user_id, "user")?;
        check(
            Some(&new.budget_name),
            Some(new.total_limit),
            new.priority_level_int,
            new.color.as_deref(),
        )?;
        let saved = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO budgets (user_id, name, description, monthly_limit, priority, icon, color)
                     VALUES ($1, $2, $3, $4, $5, coalesce($6, 'wallet'), coalesce($7, '#10b981'))
                     RETURNING {COLUMNS}"
                )))
                .bind(user)
                .bind(new.budget_name.trim())
                .bind(&new.description)
                .bind(new.total_limit.0)
                .bind(new.priority_level_int)
                .bind(&new.icon)
                .bind(&new.color)
                .fetch_one(&mut *tx)
                .await
                .map_err(name_taken)?;
                audit::record(&mut *tx, user, "create", "budget", Some(row.id), json!({})).await?;
                let saved = BudgetSaved {
                    success: true,
                    message: "Budget created".to_owned(),
                    budget: row.into(),
                };
                Ok(saved)
            })
            .await?;
        Ok(Created::Created(Json(saved)))
    }

    /// Changes a budget.
    #[oai(path = "/:budget_id", method = "put")]
    async fn update(
        &self,
        auth: Auth,
        budget_id: Path<i64>,
        body: Input<BudgetChanges>,
    ) -> Result<Json<BudgetSaved>, ApiError> {
        let changes = body.value;
        check(
            changes.budget_name.as_deref(),
            changes.total_limit,
            changes.priority_level_int,
            changes.color.as_deref(),
        )?;
        let query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE budgets SET
                name = coalesce($3, name), description = coalesce($4, description),
                monthly_limit = coalesce($5, monthly_limit), priority = coalesce($6, priority),
                icon = coalesce($7, icon), color = coalesce($8, color),
                active = coalesce($9, active), updated_at = now()
             WHERE user_id = $1 AND id = $2
             RETURNING {COLUMNS}"
        )))
        .bind(auth.0.user_id)
        .bind(budget_id.0)
        .bind(changes.budget_name.as_deref().map(str::trim))
        .bind(&changes.description)
        .bind(changes.total_limit.map(|m| m.0))
        .bind(changes.priority_level_int)
        .bind(&changes.icon)
        .bind(&changes.color)
        .bind(changes.is_active);
        let change = Change {
            user: auth.0.user_id,
            action: "update",
            object: "budget",
        };
        let row: Row = audited::update_one(&self.0.db, change, query, |row: &Row| row.id, name_taken).await?;
        Ok(Json(BudgetSaved {
            success: true,
            message: "Budget updated".to_owned(),
            budget: row.into(),
        }))
    }

    /// Deactivates a budget; its transactions keep it.
    #[oai(path = "/:budget_id", method = "delete")]
    async fn delete(&self, auth: Auth, budget_id: Path<i64>) -> Result<Json<BudgetSaved>, ApiError> {
        let query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE budgets SET active = false, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND active RETURNING {COLUMNS}"
        )))
        .bind(auth.0.user_id)
        .bind(budget_id.0);
        let change = Change {
            user: auth.0.user_id,
            action: "delete",
            object: "budget",
        };
        let row: Row =
            audited::update_one(&self.0.db, change, query, |row: &Row| row.id, ApiError::from).await?;
        Ok(Json(BudgetSaved {
            success: true,
            message: "Budget deactivated".to_owned(),
            budget: row.into(),
        }))
    }
}
