//! `/api/database/goals`: savings goals — list, create, update, delete (softly, returning the
//! saved money to the savings account), and deposits and withdrawals between a goal and the
//! user's savings account. The saved amount changes only through those two, never by `PUT`.

mod moves;

use chrono::{DateTime, NaiveDate, Utc};
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
use super::users::text_enum;
use super::{ApiError, Created, Ctx, Tag, page};
use crate::finance::{accounts, audit};
use moves::{lock, savings_account};

text_enum!(GoalStatus {
    Active = "active",
    Achieved = "achieved",
    Inactive = "inactive",
});

pub(crate) struct GoalsApi(pub(crate) Ctx);

/// A savings goal.
#[derive(Debug, Object)]
pub(crate) struct Goal {
    goal_id: i64,
    user_id: i64,
    goal_name: String,
    description: Option<String>,
    plan: Option<String>,
    target: Money,
    saved_amount: Money,
    /// `saved_amount` as a percentage of `target`, rounded down.
    progress_percentage: i64,
    start_date: NaiveDate,
    due_date: Option<NaiveDate>,
    status: GoalStatus,
    icon: String,
    color: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    user_id: i64,
    name: String,
    description: Option<String>,
    plan: Option<String>,
    target: Decimal,
    saved: Decimal,
    start_date: NaiveDate,
    due_date: Option<NaiveDate>,
    status: String,
    icon: String,
    color: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Goal {
    fn from(row: Row) -> Goal {
        let progress = (row.saved * Decimal::ONE_HUNDRED / row.target).floor();
        Goal {
            goal_id: row.id,
            user_id: row.user_id,
            goal_name: row.name,
            description: row.description,
            plan: row.plan,
            target: Money(row.target),
            saved_amount: Money(row.saved),
            progress_percentage: progress.try_into().unwrap_or(0),
            start_date: row.start_date,
            due_date: row.due_date,
            status: GoalStatus::from_db(&row.status).unwrap_or(GoalStatus::Active),
            icon: row.icon,
            color: row.color,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "id, user_id, name, description, plan, target, saved, start_date, due_date, \
                       status, icon, color, created_at, updated_at";

/// A new goal.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct NewGoal {
    /// Accepted for compatibility; must be the caller's id if sent.
    user_id: Option<i64>,
    goal_name: String,
    /// Greater than zero.
    target: Money,
    description: Option<String>,
    /// How the user means to get there.
    plan: Option<String>,
    /// Today when left out.
    start_date: Option<NaiveDate>,
    due_date: Option<NaiveDate>,
    icon: Option<String>,
    color: Option<String>,
}

/// Changes to a goal: only the fields sent change.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct GoalChanges {
    goal_name: Option<String>,
    target: Option<Money>,
    description: Option<String>,
    plan: Option<String>,
    due_date: Option<NaiveDate>,
    status: Option<GoalStatus>,
    icon: Option<String>,
    color: Option<String>,
}

/// Money moved between the savings account and a goal.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct GoalMove {
    /// Greater than zero.
    amount: Money,
}

#[derive(Debug, Object)]
pub(crate) struct GoalSaved {
    success: bool,
    message: String,
    goal: Goal,
}

#[OpenApi(prefix_path = "/database/goals", tag = "Tag::Goals")]
impl GoalsApi {
    /// The caller's goals, soonest due first.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        request: &Request,
        user_id: Query<Option<i64>>,
        /// Only goals with this status; all but inactive ones when left out.
        status: Query<Option<GoalStatus>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Goal>>>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let limit = page::limit(limit.0, 100, 500)?;
        // The cursor holds the last goal's due date (null for none, which sorts last) and id.
        let after = match page::decode(cursor.0.as_deref())? {
            Some(key) => Some((
                page::part::<Option<NaiveDate>>(&key, 0)?,
                page::part::<i64>(&key, 1)?,
            )),
            None => None,
        };
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM goals
             WHERE user_id = $1
               AND CASE WHEN $2::text IS NULL THEN status <> 'inactive' ELSE status = $2 END
               AND (NOT $3 OR (coalesce(due_date, 'infinity'::date), id)
                               > (coalesce($4::date, 'infinity'::date), $5))
             ORDER BY coalesce(due_date, 'infinity'::date), id LIMIT $6"
        )))
        .bind(auth.0.user_id)
        .bind(status.0.map(GoalStatus::as_str))
        .bind(after.is_some())
        .bind(after.and_then(|(due, _)| due))
        .bind(after.map_or(0, |(_, id)| id))
        .bind(limit + 1)
        .fetch_all(&self.0.db)
        .await?;
        let key = |row: &Row| vec![json!(row.due_date), json!(row.id)];
        Ok(page::page(request, rows, limit, key, Goal::from))
    }

    /// Creates a goal.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<NewGoal>,
    ) -> Result<Created<GoalSaved>, ApiError> {
        let user = auth.0.user_id;
        let idempotency = Idempotency::new(user, key.0, "POST /database/goals", body.digest())?;
        let new = body.value;
        auth.0.check(new.user_id, "user")?;
        if new.goal_name.trim().is_empty() {
            return Err(ApiError::invalid("goal_name", "must not be empty"));
        }
        if !new.target.is_positive() {
            return Err(ApiError::invalid("target", "must be greater than zero"));
        }
        let start = new.start_date.unwrap_or_else(super::transactions::today);
        if new.due_date.is_some_and(|due| due < start) {
            return Err(ApiError::invalid("due_date", "is before the start date"));
        }
        let saved = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO goals (user_id, name, target, description, plan, start_date, due_date,
                                       icon, color)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, 'flag'), coalesce($9, '#10b981'))
                     RETURNING {COLUMNS}"
                )))
                .bind(user)
                .bind(new.goal_name.trim())
                .bind(new.target.0)
                .bind(&new.description)
                .bind(&new.plan)
                .bind(start)
                .bind(new.due_date)
                .bind(&new.icon)
                .bind(&new.color)
                .fetch_one(&mut *tx)
                .await?;
                audit::record(&mut *tx, user, "create", "goal", Some(row.id), json!({})).await?;
                let saved = GoalSaved {
                    success: true,
                    message: "Goal created".to_owned(),
                    goal: row.into(),
                };
                Ok(saved)
            })
            .await?;
        Ok(Created::Created(Json(saved)))
    }

    /// Changes a goal's description, target, plan, due date or status.
    #[oai(path = "/:goal_id", method = "put")]
    async fn update(
        &self,
        auth: Auth,
        goal_id: Path<i64>,
        body: Input<GoalChanges>,
    ) -> Result<Json<GoalSaved>, ApiError> {
        let changes = body.value;
        if changes
            .goal_name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(ApiError::invalid("goal_name", "must not be empty"));
        }
        if changes.target.is_some_and(|target| !target.is_positive()) {
            return Err(ApiError::invalid("target", "must be greater than zero"));
        }
        let query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE goals SET
                name = coalesce($3, name), target = coalesce($4, target),
                description = coalesce($5, description), plan = coalesce($6, plan),
                due_date = coalesce($7, due_date), status = coalesce($8, status),
                icon = coalesce($9, icon), color = coalesce($10, color), updated_at = now()
             WHERE user_id = $1 AND id = $2
             RETURNING {COLUMNS}"
        )))
        .bind(auth.0.user_id)
        .bind(goal_id.0)
        .bind(changes.goal_name.as_deref().map(str::trim))
        .bind(changes.target.map(|m| m.0))
        .bind(&changes.description)
        .bind(&changes.plan)
        .bind(changes.due_date)
        .bind(changes.status.map(GoalStatus::as_str))
        .bind(&changes.icon)
        .bind(&changes.color);
        let change = Change {
            user: auth.0.user_id,
            action: "update",
            object: "goal",
        };
        let row: Row =
            audited::update_one(&self.0.db, change, query, |row: &Row| row.id, due_before_start).await?;
        Ok(Json(GoalSaved {
            success: true,
            message: "Goal updated".to_owned(),
            goal: row.into(),
        }))
    }

    /// Deactivates a goal and returns its saved money to the savings account.
    #[oai(path = "/:goal_id", method = "delete")]
    async fn delete(&self, auth: Auth, goal_id: Path<i64>) -> Result<Json<GoalSaved>, ApiError> {
        let user = auth.0.user_id;
        let mut tx = self.0.db.begin().await?;
        let goal = lock(&mut tx, user, goal_id.0).await?;
        if goal.saved > Decimal::ZERO {
            let savings = savings_account(&mut tx, user).await?;
            accounts::apply(&mut tx, user, &[(savings, goal.saved)]).await?;
        }
        let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE goals SET status = 'inactive', saved = 0, updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(goal.id)
        .fetch_one(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            user,
            "delete",
            "goal",
            Some(goal.id),
            json!({"refunded": goal.saved.to_string()}),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(GoalSaved {
            success: true,
            message: "Goal deactivated".to_owned(),
            goal: row.into(),
        }))
    }

    /// Moves money from the savings account into a goal.
    #[oai(path = "/:goal_id/deposit", method = "post")]
    async fn deposit(
        &self,
        auth: Auth,
        goal_id: Path<i64>,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<GoalMove>,
    ) -> Result<Json<GoalSaved>, ApiError> {
        self.move_money(auth, goal_id.0, key.0, body, true).await
    }

    /// Moves money from a goal back to the savings account.
    #[oai(path = "/:goal_id/withdraw", method = "post")]
    async fn withdraw(
        &self,
        auth: Auth,
        goal_id: Path<i64>,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<GoalMove>,
    ) -> Result<Json<GoalSaved>, ApiError> {
        self.move_money(auth, goal_id.0, key.0, body, false).await
    }
}

/// A due date before the goal's start date, as the database refuses it.
fn due_before_start(err: sqlx::Error) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_check_violation() => {
            ApiError::invalid("due_date", "is before the start date")
        }
        _ => err.into(),
    }
}
