//! `/api/database/transactions`: list, create, update, delete and search a user's
//! transactions, with the reference system's field names (`transaction_id`, `store_name`).

mod search;

use chrono::{DateTime, NaiveDate, Utc};
use poem::Request;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Json, Response};
use poem_openapi::{Object, OpenApi};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use super::auth::Auth;
use super::idempotency::Idempotency;
use super::input::Input;
use super::money::Money;
use super::users::text_enum;
use super::{ApiError, Created, Ctx, Tag, page};
use crate::finance::audit;
use crate::finance::ledger::{self, Entry, Kind};
use search::{Search, key};

text_enum!(TransactionType {
    Expense = "expense",
    Deposit = "deposit",
    Transfer = "transfer",
});

impl From<TransactionType> for Kind {
    fn from(kind: TransactionType) -> Kind {
        match kind {
            TransactionType::Expense => Kind::Expense,
            TransactionType::Deposit => Kind::Deposit,
            TransactionType::Transfer => Kind::Transfer,
        }
    }
}

impl From<Kind> for TransactionType {
    fn from(kind: Kind) -> TransactionType {
        match kind {
            Kind::Expense => TransactionType::Expense,
            Kind::Deposit => TransactionType::Deposit,
            Kind::Transfer => TransactionType::Transfer,
        }
    }
}

pub(crate) struct TransactionsApi(pub(crate) Ctx);

/// A transaction as the API shows it.
#[derive(Debug, Object)]
pub(crate) struct Transaction {
    transaction_id: i64,
    user_id: i64,
    transaction_type: TransactionType,
    date: NaiveDate,
    amount: Money,
    /// The merchant or a note.
    description: Option<String>,
    /// The same as `description`, under the reference system's name.
    store_name: Option<String>,
    city: Option<String>,
    neighbourhood: Option<String>,
    budget_id: Option<i64>,
    budget_name: Option<String>,
    account_id: Option<i64>,
    transfer_to_id: Option<i64>,
    tags: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: i64,
    user_id: i64,
    kind: String,
    date: NaiveDate,
    amount: Decimal,
    description: Option<String>,
    city: Option<String>,
    neighbourhood: Option<String>,
    tags: Vec<String>,
    budget_id: Option<i64>,
    budget_name: Option<String>,
    account_id: Option<i64>,
    transfer_to_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Transaction {
    fn from(row: Row) -> Transaction {
        Transaction {
            transaction_id: row.id,
            user_id: row.user_id,
            transaction_type: TransactionType::from_db(&row.kind).unwrap_or(TransactionType::Expense),
            date: row.date,
            amount: Money(row.amount),
            store_name: row.description.clone(),
            description: row.description,
            city: row.city,
            neighbourhood: row.neighbourhood,
            budget_id: row.budget_id,
            budget_name: row.budget_name,
            account_id: row.account_id,
            transfer_to_id: row.transfer_to_id,
            tags: row.tags,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const SELECT: &str = "SELECT t.id, t.user_id, t.kind, t.date, t.amount, t.description, t.city,
        t.neighbourhood, t.tags, t.budget_id, b.name AS budget_name, t.account_id,
        t.transfer_to_id, t.created_at, t.updated_at
    FROM transactions t LEFT JOIN budgets b ON b.id = t.budget_id
    WHERE t.deleted_at IS NULL AND t.user_id = ";

/// A new transaction.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct NewTransaction {
    /// Accepted for compatibility; must be the caller's id if sent.
    user_id: Option<i64>,
    /// `expense` when left out.
    transaction_type: Option<TransactionType>,
    date: NaiveDate,
    /// Greater than zero.
    amount: Money,
    description: Option<String>,
    /// The reference system's name for `description`.
    store_name: Option<String>,
    city: Option<String>,
    neighbourhood: Option<String>,
    budget_id: Option<i64>,
    /// The account the money leaves (expense, transfer) or enters (deposit); its balance follows.
    account_id: Option<i64>,
    /// For a transfer: the account the money goes to.
    transfer_to_id: Option<i64>,
    tags: Option<Vec<String>>,
}

/// Changes to a transaction: only the fields sent change. Its type cannot change.
#[derive(Debug, Object, Deserialize)]
pub(crate) struct TransactionChanges {
    date: Option<NaiveDate>,
    amount: Option<Money>,
    description: Option<String>,
    store_name: Option<String>,
    city: Option<String>,
    neighbourhood: Option<String>,
    budget_id: Option<i64>,
    account_id: Option<i64>,
    transfer_to_id: Option<i64>,
    tags: Option<Vec<String>>,
}

#[derive(Debug, Object)]
pub(crate) struct TransactionSaved {
    success: bool,
    transaction: Transaction,
}

#[derive(Debug, Object)]
pub(crate) struct TransactionDeleted {
    success: bool,
    message: String,
    transaction_id: i64,
}

#[derive(Debug, Object)]
pub(crate) struct SearchResult {
    success: bool,
    count: usize,
    transactions: Vec<Transaction>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

/// `description`, or the reference system's `store_name` for it; both only when they agree.
fn description(description: Option<String>, store_name: Option<String>) -> Result<Option<String>, ApiError> {
    match (description, store_name) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid(
            "store_name",
            "differs from description; send one of them",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

#[OpenApi(prefix_path = "/database/transactions", tag = "Tag::Transactions")]
impl TransactionsApi {
    /// The caller's transactions, newest first.
    #[oai(path = "/", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        request: &Request,
        user_id: Query<Option<i64>>,
        start_date: Query<Option<NaiveDate>>,
        end_date: Query<Option<NaiveDate>>,
        transaction_type: Query<Option<TransactionType>>,
        /// At most 1000; 100 by default.
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Transaction>>>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let filter = Search {
            start_date: start_date.0,
            end_date: end_date.0,
            transaction_type: transaction_type.0,
            ..Search::default()
        };
        let limit = page::limit(limit.0, 100, 1000)?;
        let rows = self
            .search_rows(auth.0.user_id, &filter, cursor.0.as_deref(), limit)
            .await?;
        Ok(page::page(request, rows, limit, key, Transaction::from))
    }

    /// Records a transaction; an expense in a budget may raise the budget's alerts.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<NewTransaction>,
    ) -> Result<Created<TransactionSaved>, ApiError> {
        let user = auth.0.user_id;
        let idempotency = Idempotency::new(user, key.0, "POST /database/transactions", body.digest())?;
        let new = body.value;
        auth.0.check(new.user_id, "user")?;
        let saved = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let kind = new.transaction_type.unwrap_or(TransactionType::Expense).into();
                let mut entry = Entry::new(kind, new.date, new.amount.0);
                entry.description = description(new.description, new.store_name)?;
                entry.city = new.city;
                entry.neighbourhood = new.neighbourhood;
                entry.tags = new.tags.unwrap_or_default();
                entry.budget_id = new.budget_id;
                entry.account_id = new.account_id;
                entry.transfer_to_id = new.transfer_to_id;
                let id = ledger::insert(&mut *tx, user, &entry, today())
                    .await?
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a plain insert was skipped")))?;
                audit::record(
                    &mut *tx,
                    user,
                    "create",
                    "transaction",
                    Some(id),
                    json!({"amount": entry.amount.to_string()}),
                )
                .await?;
                let saved = TransactionSaved {
                    success: true,
                    transaction: fetch(&mut *tx, user, id).await?,
                };
                Ok(saved)
            })
            .await?;
        Ok(Created::Created(Json(saved)))
    }

    /// Changes a transaction; balances and budget alerts follow.
    #[oai(path = "/:transaction_id", method = "put")]
    async fn update(
        &self,
        auth: Auth,
        transaction_id: Path<i64>,
        body: Input<TransactionChanges>,
    ) -> Result<Json<TransactionSaved>, ApiError> {
        let user = auth.0.user_id;
        let changes = body.value;
        let new_description = description(changes.description, changes.store_name)?;
        let mut tx = self.0.db.begin().await?;
        ledger::update(
            &mut tx,
            user,
            transaction_id.0,
            |entry| {
                entry.date = changes.date.unwrap_or(entry.date);
                entry.amount = changes.amount.map_or(entry.amount, |amount| amount.0);
                entry.description = new_description.or(entry.description.take());
                entry.city = changes.city.or(entry.city.take());
                entry.neighbourhood = changes.neighbourhood.or(entry.neighbourhood.take());
                entry.budget_id = changes.budget_id.or(entry.budget_id);
                entry.account_id = changes.account_id.or(entry.account_id);
                entry.transfer_to_id = changes.transfer_to_id.or(entry.transfer_to_id);
                entry.tags = changes.tags.unwrap_or(std::mem::take(&mut entry.tags));
            },
            today(),
        )
        .await?;
        audit::record(
            &mut tx,
            user,
            "update",
            "transaction",
            Some(transaction_id.0),
            json!({}),
        )
        .await?;
        let transaction = fetch(&mut tx, user, transaction_id.0).await?;
        tx.commit().await?;
        Ok(Json(TransactionSaved {
            success: true,
            transaction,
        }))
    }

    /// Deletes a transaction (it is kept, marked deleted) and reverses its effect on balances.
    #[oai(path = "/:transaction_id", method = "delete")]
    async fn delete(
        &self,
        auth: Auth,
        transaction_id: Path<i64>,
    ) -> Result<Json<TransactionDeleted>, ApiError> {
        let user = auth.0.user_id;
        let mut tx = self.0.db.begin().await?;
        ledger::delete(&mut tx, user, transaction_id.0, today()).await?;
        audit::record(
            &mut tx,
            user,
            "delete",
            "transaction",
            Some(transaction_id.0),
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(TransactionDeleted {
            success: true,
            message: "Transaction deleted".to_owned(),
            transaction_id: transaction_id.0,
        }))
    }

    /// Searches the caller's transactions.
    #[oai(path = "/search", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        auth: Auth,
        user_id: Query<Option<i64>>,
        /// Words in the description.
        query: Query<Option<String>>,
        /// A budget name (or part of one).
        category: Query<Option<String>>,
        min_amount: Query<Option<Money>>,
        max_amount: Query<Option<Money>>,
        start_date: Query<Option<NaiveDate>>,
        end_date: Query<Option<NaiveDate>>,
        city: Query<Option<String>>,
        neighbourhood: Query<Option<String>>,
        transaction_type: Query<Option<TransactionType>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<SearchResult>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let filter = Search {
            text: query.0,
            category: category.0,
            min_amount: min_amount.0,
            max_amount: max_amount.0,
            start_date: start_date.0,
            end_date: end_date.0,
            city: city.0,
            neighbourhood: neighbourhood.0,
            transaction_type: transaction_type.0,
        };
        let limit = page::limit(limit.0, 100, 1000)?;
        let mut rows = self
            .search_rows(auth.0.user_id, &filter, cursor.0.as_deref(), limit)
            .await?;
        let next_cursor = page::split(&mut rows, limit, key);
        let transactions: Vec<Transaction> = rows.into_iter().map(Transaction::from).collect();
        Ok(Json(SearchResult {
            success: true,
            count: transactions.len(),
            transactions,
            next_cursor,
        }))
    }
}

/// One transaction of `user`, as the API shows it.
async fn fetch(conn: &mut sqlx::PgConnection, user: i64, id: i64) -> Result<Transaction, ApiError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} $1 AND t.id = $2")))
        .bind(user)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Transaction::from)
        .ok_or(ApiError::NotFound { what: "transaction" })
}

/// Today, in UTC: the month budget alerts are about.
pub(crate) fn today() -> NaiveDate {
    Utc::now().date_naive()
}
