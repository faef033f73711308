//! `/api/database/accounts`: a user's accounts, and transfers between them — atomic, with both
//! accounts locked, refused when they would overdraw.

use chrono::{DateTime, NaiveDate, Utc};
use poem::Request;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{Json, Response};
use poem_openapi::{Object, OpenApi};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;

use super::auth::{Auth, checked_currency};
use super::idempotency::Idempotency;
use super::input::Input;
use super::money::Money;
use super::transactions::today;
use super::users::text_enum;
use super::{ApiError, Created, Ctx, Tag, page};
use crate::finance::audit;
use crate::finance::ledger::{self, Entry, Kind};

text_enum!(AccountType {
    Regular = "regular",
    Savings = "savings",
});

pub(crate) struct AccountsApi(pub(crate) Ctx);

#[derive(Debug, Object)]
pub(crate) struct Account {
    account_id: i64,
    name: String,
    account_type: AccountType,
    /// ISO 4217.
    currency: String,
    balance: Money,
    active: bool,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    kind: String,
    currency: String,
    balance: Decimal,
    active: bool,
    created_at: DateTime<Utc>,
}

impl From<Row> for Account {
    fn from(row: Row) -> Account {
        Account {
            account_id: row.id,
            name: row.name,
            account_type: AccountType::from_db(&row.kind).unwrap_or(AccountType::Regular),
            currency: row.currency,
            balance: Money(row.balance),
            active: row.active,
            created_at: row.created_at,
        }
    }
}

const COLUMNS: &str = "id, name, kind, currency, balance, active, created_at";

#[derive(Debug, Object, Deserialize)]
pub(crate) struct NewAccount {
    name: String,
    account_type: AccountType,
    /// ISO 4217; the user's preferred currency when left out.
    currency: Option<String>,
}

#[derive(Debug, Object, Deserialize)]
pub(crate) struct NewTransfer {
    from_account_id: i64,
    to_account_id: i64,
    /// Greater than zero.
    amount: Money,
    /// Today when left out.
    date: Option<NaiveDate>,
    description: Option<String>,
}

#[derive(Debug, Object)]
pub(crate) struct TransferDone {
    success: bool,
    transaction_id: i64,
    from_account: Account,
    to_account: Account,
}

#[OpenApi(prefix_path = "/database/accounts", tag = "Tag::Accounts")]
impl AccountsApi {
    /// The caller's accounts with their balances.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        request: &Request,
        account_type: Query<Option<AccountType>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Response<Json<Vec<Account>>>, ApiError> {
        let limit = page::limit(limit.0, 100, 500)?;
        let after = page::id(cursor.0.as_deref(), 0)?;
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM accounts
             WHERE user_id = $1 AND ($2::text IS NULL OR kind = $2) AND id > $3
             ORDER BY id LIMIT $4"
        )))
        .bind(auth.0.user_id)
        .bind(account_type.0.map(AccountType::as_str))
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.0.db)
        .await?;
        Ok(page::page(
            request,
            rows,
            limit,
            |a| vec![json!(a.id)],
            Account::from,
        ))
    }

    /// Opens an account, with a zero balance.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<NewAccount>,
    ) -> Result<Created<Account>, ApiError> {
        let user = auth.0.user_id;
        let idempotency = Idempotency::new(user, key.0, "POST /database/accounts", body.digest())?;
        let new = body.value;
        if new.name.trim().is_empty() {
            return Err(ApiError::invalid("name", "must not be empty"));
        }
        let currency = new
            .currency
            .as_deref()
            .map(|c| checked_currency(c, "currency"))
            .transpose()?;
        let account = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO accounts (user_id, name, kind, currency)
                     SELECT $1, $2, $3, coalesce($4, preferred_currency) FROM users WHERE id = $1
                     RETURNING {COLUMNS}"
                )))
                .bind(user)
                .bind(new.name.trim())
                .bind(new.account_type.as_str())
                .bind(currency)
                .fetch_one(&mut *tx)
                .await?;
                audit::record(&mut *tx, user, "create", "account", Some(row.id), json!({})).await?;
                let account = Account::from(row);
                Ok(account)
            })
            .await?;
        Ok(Created::Created(Json(account)))
    }

    /// Moves money between two of the caller's accounts, all or nothing.
    #[oai(path = "/transfer", method = "post")]
    async fn transfer(
        &self,
        auth: Auth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Input<NewTransfer>,
    ) -> Result<Created<TransferDone>, ApiError> {
        let user = auth.0.user_id;
        let idempotency = Idempotency::new(user, key.0, "POST /database/accounts/transfer", body.digest())?;
        let new = body.value;
        let mut entry = Entry::new(Kind::Transfer, new.date.unwrap_or_else(today), new.amount.0);
        entry.account_id = Some(new.from_account_id);
        entry.transfer_to_id = Some(new.to_account_id);
        entry.description = new.description;
        let done = idempotency
            .run(&self.0.db, 201, async |tx: &mut PgConnection| {
                let id = ledger::insert(&mut *tx, user, &entry, today())
                    .await
                    .map_err(|err| match err {
                        ledger::LedgerError::Invalid {
                            field: "account_id",
                            detail,
                        } => ApiError::invalid("from_account_id", detail),
                        ledger::LedgerError::Invalid {
                            field: "transfer_to_id",
                            detail,
                        } => ApiError::invalid("to_account_id", detail),
                        other => other.into(),
                    })?
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a transfer was skipped")))?;
                audit::record(
                    &mut *tx,
                    user,
                    "transfer",
                    "transaction",
                    Some(id),
                    json!({"amount": new.amount.to_string()}),
                )
                .await?;
                let accounts: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM accounts WHERE user_id = $1 AND id IN ($2, $3)"
                )))
                .bind(user)
                .bind(new.from_account_id)
                .bind(new.to_account_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut accounts = accounts.into_iter().map(Account::from);
                let (a, b) = (accounts.next(), accounts.next());
                let (Some(a), Some(b)) = (a, b) else {
                    return Err(ApiError::NotFound { what: "account" });
                };
                let (from_account, to_account) = if a.account_id == new.from_account_id {
                    (a, b)
                } else {
                    (b, a)
                };
                let done = TransferDone {
                    success: true,
                    transaction_id: id,
                    from_account,
                    to_account,
                };
                Ok(done)
            })
            .await?;
        Ok(Created::Created(Json(done)))
    }
}
