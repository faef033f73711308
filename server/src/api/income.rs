//! `/api/database/income`: income sources. A one-off income paid into an account is credited
//! at once; a recurring one (with a `payment_day`) is credited by the server on each due date.

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
use super::transactions::today;
use super::{ApiError, Created, Ctx, Tag, page};
use crate::finance::audit;
use crate::finance::income::{self, Due, next_due};
use crate::finance::ledger::{self, Entry, Kind};

pub(crate) struct IncomeApi(pub(crate) Ctx);

#[derive(Debug, Object)]
pub(crate) struct Income {
    income_id: i64,
    user_id: i64,
    /// What kind of income: `salary`, `freelance`, …
    type_income: String,
    amount: Money,
    description: Option<String>,
    account_id: Option<i64>,
    /// For a recurring income: the day of the month it is paid.
    payment_day: Option<i16>,
    next_payment_date: Option<NaiveDate>,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    user_id: i64,
    kind: String,
    amount: Decimal,
    description: Option<String>,
    account_id: Option<i64>,
    payment_day: Option<i16>,
    next_payment_date: Option<NaiveDate>,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Income {
    fn from(row: Row) -> Income {
        Income {
            income_id: row.id,
            user_id: row.user_id,
            type_income: row.kind,
            amount: Money(row.amount),
            description: row.description,
            account_id: row.account_id,
            payment_day: row.payment_day,
            next_payment_date: row.next_payment_date,
            active: row.active,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "id, user_id, kind, amount, description, account_id, payment_day, \
                       next_payment_date, active, created_at, updated_at";

#[derive(Debug, Object, Deserialize)]
pub(crate) struct NewIncome {
    /// Accepted for compatibility; must be the caller's id if sent.
    user_id: Option<i64>,
    type_income: String,
    /// Greater than zero.
    amount: Money,
    description: Option<String>,
    /// The account it is paid into; needed for a recurring income.
    account_id: Option<i64>,
    /// 1–31: makes the income recurring, paid on this day each month (or the month's last day).
    payment_day: Option<i16>,
}

#[derive(Debug, Object, Deserialize)]
pub(crate) struct IncomeChanges {
    type_income: Option<String>,
    amount: Option<Money>,
    description: Option<String>,
    payment_day: Option<i16>,
    active: Option<bool>,
}

#[derive(Debug, Object)]
pub(crate) struct IncomeSaved {
    success: bool,
    message: String,
    income: Income,
}

#[OpenApi(prefix_path = "/database/income", tag = "Tag::Income")]
impl IncomeApi {
    /// The caller's income sources (active ones unless `active=false`).
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        request: &Request,
        user_id: Query<Option<i64>>,
        active: Query<Option<bool>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Income>>>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let limit = page::limit(limit.0, 100, 500)?;
        let after = page::id(cursor.0.as_deref(), 0)?;
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM incomes WHERE user_id = $1 AND active = $2 AND id > $3
             ORDER BY id LIMIT $4"
        )))
        .bind(auth.0.user_id)
        .bind(active.0.unwrap_or(true))
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.0.db)
        .await?;
        Ok(page::page(
            request,
            rows,
            limit,
            |i| vec![json!(i.id)],
            Income::from,
        ))
    }

    /// The caller's active income sources (the reference system's second name for the list).
    #[oai(path = "/active", method = "get")]
    async fn list_active(
        &self,
        auth: Auth,
        request: &Request,
        user_id: Query<Option<i64>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Income>>>, ApiError> {
        self.list(auth, request, user_id, Query(Some(true)), limit, cursor)
            .await
    }

    /// Adds an income source. A one-off income with an account is credited today; a recurring
    /// one on its payment day.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<NewIncome>,
    ) -> Result<Created<IncomeSaved>, ApiError> {
        let user = auth.0.user_id;
        let idempotency = Idempotency::new(user, key.0, "POST /database/income", body.digest())?;
        let new = body.value;
        auth.0.check(new.user_id, "user")?;
        check(Some(&new.type_income), Some(new.amount), new.payment_day)?;
        if new.payment_day.is_some() && new.account_id.is_none() {
            return Err(ApiError::invalid(
                "account_id",
                "a recurring income needs the account it is paid into",
            ));
        }
        let today = today();
        let next = new.payment_day.map(|day| next_due(day as u32, today));
        let saved = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let mut row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO incomes (user_id, kind, amount, description, account_id,
                                          payment_day, next_payment_date)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
                )))
                .bind(user)
                .bind(new.type_income.trim())
                .bind(new.amount.0)
                .bind(&new.description)
                .bind(new.account_id)
                .bind(new.payment_day)
                .bind(next)
                .fetch_one(&mut *tx)
                .await?;
                match (new.payment_day, new.account_id) {
                    (None, Some(account)) => {
                        let mut entry = Entry::new(Kind::Deposit, today, new.amount.0);
                        entry.account_id = Some(account);
                        entry.income_id = Some(row.id);
                        entry.description = Some(row.kind.clone());
                        ledger::insert(&mut *tx, user, &entry, today).await?;
                    }
                    // Due today: credited with its creation, not at the next sweep.
                    (Some(day), Some(account)) if next == Some(today) => {
                        let due = Due {
                            id: row.id,
                            user_id: user,
                            kind: row.kind.clone(),
                            amount: row.amount,
                            account_id: account,
                            payment_day: day,
                            next_payment_date: today,
                        };
                        let (_, next) = income::credit(&mut *tx, &due, today).await?;
                        row.next_payment_date = Some(next);
                    }
                    _ => {}
                }
                audit::record(&mut *tx, user, "create", "income", Some(row.id), json!({})).await?;
                Ok(IncomeSaved {
                    success: true,
                    message: "Income added".to_owned(),
                    income: row.into(),
                })
            })
            .await?;
        Ok(Created::Created(Json(saved)))
    }

    /// Changes an income source; a new payment day moves its next due date.
    #[oai(path = "/:income_id", method = "put")]
    async fn update(
        &self,
        auth: Auth,
        income_id: Path<i64>,
        body: Input<IncomeChanges>,
    ) -> Result<Json<IncomeSaved>, ApiError> {
        let changes = body.value;
        check(
            changes.type_income.as_deref(),
            changes.amount,
            changes.payment_day,
        )?;
        let next = changes.payment_day.map(|day| next_due(day as u32, today()));
        let query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE incomes SET kind = coalesce($3, kind), amount = coalesce($4, amount),
                description = coalesce($5, description), payment_day = coalesce($6, payment_day),
                next_payment_date = coalesce($7, next_payment_date), active = coalesce($8, active),
                updated_at = now()
             WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
        )))
        .bind(auth.0.user_id)
        .bind(income_id.0)
        .bind(changes.type_income.as_deref().map(str::trim))
        .bind(changes.amount.map(|m| m.0))
        .bind(&changes.description)
        .bind(changes.payment_day)
        .bind(next)
        .bind(changes.active);
        let change = Change {
            user: auth.0.user_id,
            action: "update",
            object: "income",
        };
        let row: Row = audited::update_one(&self.0.db, change, query, |row: &Row| row.id, no_account).await?;
        Ok(Json(IncomeSaved {
            success: true,
            message: "Income updated".to_owned(),
            income: row.into(),
        }))
    }

    /// Stops an income source; what it paid stays.
    #[oai(path = "/:income_id", method = "delete")]
    async fn delete(&self, auth: Auth, income_id: Path<i64>) -> Result<Json<IncomeSaved>, ApiError> {
        let query = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE incomes SET active = false, updated_at = now()
             WHERE user_id = $1 AND id = $2 AND active RETURNING {COLUMNS}"
        )))
        .bind(auth.0.user_id)
        .bind(income_id.0);
        let change = Change {
            user: auth.0.user_id,
            action: "delete",
            object: "income",
        };
        let row: Row =
            audited::update_one(&self.0.db, change, query, |row: &Row| row.id, ApiError::from).await?;
        Ok(Json(IncomeSaved {
            success: true,
            message: "Income stopped".to_owned(),
            income: row.into(),
        }))
    }
}

fn check(kind: Option<&str>, amount: Option<Money>, payment_day: Option<i16>) -> Result<(), ApiError> {
    if kind.is_some_and(|kind| kind.trim().is_empty()) {
        return Err(ApiError::invalid("type_income", "must not be empty"));
    }
    if amount.is_some_and(|amount| !amount.is_positive()) {
        return Err(ApiError::invalid("amount", "must be greater than zero"));
    }
    if payment_day.is_some_and(|day| !(1..=31).contains(&day)) {
        return Err(ApiError::invalid("payment_day", "must be between 1 and 31"));
    }
    Ok(())
}

/// A payment day on an income without an account, as the database refuses it.
fn no_account(err: sqlx::Error) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_check_violation() => {
            ApiError::invalid("payment_day", "a recurring income needs an account")
        }
        _ => err.into(),
    }
}
