//! Transactions and what they do to balances. An expense takes its amount out of its account, a
//! deposit puts it in, a transfer moves it; changing or deleting a transaction reverses its old
//! effect before applying the new one, in the same database transaction, with the accounts
//! locked. Expenses in a budget raise the budget's alerts.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::accounts::{self, MoveError};
use super::alerts;

/// The kinds of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Expense,
    Deposit,
    Transfer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Expense => "expense",
            Kind::Deposit => "deposit",
            Kind::Transfer => "transfer",
        }
    }

    pub fn from_db(text: &str) -> Option<Kind> {
        match text {
            "expense" => Some(Kind::Expense),
            "deposit" => Some(Kind::Deposit),
            "transfer" => Some(Kind::Transfer),
            _ => None,
        }
    }
}

/// A transaction's fields, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Entry {
    #[sqlx(try_from = "String")]
    pub kind: Kind,
    pub date: NaiveDate,
    pub amount: Decimal,
    pub description: Option<String>,
    pub city: Option<String>,
    pub neighbourhood: Option<String>,
    pub tags: Vec<String>,
    pub budget_id: Option<i64>,
    pub account_id: Option<i64>,
    pub transfer_to_id: Option<i64>,
    pub income_id: Option<i64>,
    pub import_id: Option<String>,
}

impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(text: String) -> Result<Kind, String> {
        Kind::from_db(&text).ok_or(text)
    }
}

impl Entry {
    /// A new entry of `kind` with no optional field set.
    pub fn new(kind: Kind, date: NaiveDate, amount: Decimal) -> Entry {
        Entry {
            kind,
            date,
            amount,
            description: None,
            city: None,
            neighbourhood: None,
            tags: Vec::new(),
            budget_id: None,
            account_id: None,
            transfer_to_id: None,
            income_id: None,
            import_id: None,
        }
    }

    /// What the fields must satisfy together, with the field at fault.
    pub fn check(&self) -> Result<(), LedgerError> {
        let invalid = |field: &'static str, detail: &str| {
            Err(LedgerError::Invalid {
                field,
                detail: detail.to_owned(),
            })
        };
        if self.amount <= Decimal::ZERO {
            return invalid("amount", "must be greater than zero");
        }
        match self.kind {
            Kind::Transfer => {
                if self.account_id.is_none() {
                    return invalid("account_id", "a transfer needs the account it comes from");
                }
                if self.transfer_to_id.is_none() {
                    return invalid("transfer_to_id", "a transfer needs the account it goes to");
                }
                if self.account_id == self.transfer_to_id {
                    return invalid("transfer_to_id", "must differ from account_id");
                }
            }
            _ if self.transfer_to_id.is_some() => {
                return invalid("transfer_to_id", "only a transfer goes to another account");
            }
            _ => {}
        }
        if self.budget_id.is_some() && self.kind != Kind::Expense {
            return invalid("budget_id", "only an expense belongs to a budget");
        }
        Ok(())
    }

    /// The balance changes this entry makes.
    pub fn effects(&self) -> Vec<(i64, Decimal)> {
        match (self.kind, self.account_id) {
            (_, None) => vec![],
            (Kind::Expense, Some(account)) => vec![(account, -self.amount)],
            (Kind::Deposit, Some(account)) => vec![(account, self.amount)],
            (Kind::Transfer, Some(from)) => {
                let to = self.transfer_to_id.expect("checked: a transfer has a target");
                vec![(from, -self.amount), (to, self.amount)]
            }
        }
    }
}

/// Why a transaction could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error("transaction not found")]
    NotFound,
    #[error("the two accounts of a transfer hold different currencies")]
    CurrencyMismatch,
    #[error(transparent)]
    Move(#[from] MoveError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Saves `entry` for `user_id` and applies its effects. `None` when it duplicates an imported
/// row or an income credit that is already there. After an error the transaction holds a
/// half-made change (the row without its effects): roll it back.
pub async fn insert(
    conn: &mut PgConnection,
    user_id: i64,
    entry: &Entry,
    today: NaiveDate,
) -> Result<Option<i64>, LedgerError> {
    entry.check()?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO transactions (user_id, kind, date, amount, description, city, neighbourhood,
                                   tags, budget_id, account_id, transfer_to_id, income_id, import_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(user_id)
    .bind(entry.kind.as_str())
    .bind(entry.date)
    .bind(entry.amount)
    .bind(&entry.description)
    .bind(&entry.city)
    .bind(&entry.neighbourhood)
    .bind(&entry.tags)
    .bind(entry.budget_id)
    .bind(entry.account_id)
    .bind(entry.transfer_to_id)
    .bind(entry.income_id)
    .bind(&entry.import_id)
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_none() {
        return Ok(None);
    }
    apply(conn, user_id, None, Some(entry), today).await?;
    Ok(id)
}

/// Changes transaction `id` with `change`, moving balances by the difference.
pub async fn update(
    conn: &mut PgConnection,
    user_id: i64,
    id: i64,
    change: impl FnOnce(&mut Entry),
    today: NaiveDate,
) -> Result<(), LedgerError> {
    let old = load_for_update(conn, user_id, id).await?;
    let mut new = old.clone();
    change(&mut new);
    new.check()?;
    sqlx::query(
        "UPDATE transactions SET date = $3, amount = $4, description = $5, city = $6,
                neighbourhood = $7, tags = $8, budget_id = $9, account_id = $10,
                transfer_to_id = $11, updated_at = now()
         WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .bind(new.date)
    .bind(new.amount)
    .bind(&new.description)
    .bind(&new.city)
    .bind(&new.neighbourhood)
    .bind(&new.tags)
    .bind(new.budget_id)
    .bind(new.account_id)
    .bind(new.transfer_to_id)
    .execute(&mut *conn)
    .await?;
    apply(conn, user_id, Some(&old), Some(&new), today).await
}

/// Deletes transaction `id` (softly: it stays, marked) and reverses its effects.
pub async fn delete(
    conn: &mut PgConnection,
    user_id: i64,
    id: i64,
    today: NaiveDate,
) -> Result<(), LedgerError> {
    let old = load_for_update(conn, user_id, id).await?;
    sqlx::query(
        "UPDATE transactions SET deleted_at = now(), updated_at = now() WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    apply(conn, user_id, Some(&old), None, today).await
}

async fn load_for_update(conn: &mut PgConnection, user_id: i64, id: i64) -> Result<Entry, LedgerError> {
    let entry: Option<Entry> = sqlx::query_as(
        "SELECT kind, date, amount, description, city, neighbourhood, tags, budget_id, account_id,
                transfer_to_id, income_id, import_id
         FROM transactions WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    entry.ok_or(LedgerError::NotFound)
}

/// Moves balances from what `old` did to what `new` does, and checks the budgets involved.
async fn apply(
    conn: &mut PgConnection,
    user_id: i64,
    old: Option<&Entry>,
    new: Option<&Entry>,
    today: NaiveDate,
) -> Result<(), LedgerError> {
    if let Some(entry) = new.filter(|entry| entry.kind == Kind::Transfer) {
        let currencies: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT currency) FROM accounts WHERE user_id = $1 AND id IN ($2, $3)",
        )
        .bind(user_id)
        .bind(entry.account_id)
        .bind(entry.transfer_to_id)
        .fetch_one(&mut *conn)
        .await?;
        if currencies > 1 {
            return Err(LedgerError::CurrencyMismatch);
        }
    }
    let mut changes: Vec<(i64, Decimal)> = Vec::new();
    if let Some(old) = old {
        changes.extend(
            old.effects()
                .into_iter()
                .map(|(account, delta)| (account, -delta)),
        );
    }
    if let Some(new) = new {
        changes.extend(new.effects());
    }
    changes.retain(|(_, delta)| !delta.is_zero());
    if !changes.is_empty() {
        accounts::apply(conn, user_id, &changes).await?;
    }
    if let Some(new) = new
        && let Some(budget) = new.budget_id
    {
        alerts::check(conn, user_id, budget, new.date, today).await?;
    }
    Ok(())
}
