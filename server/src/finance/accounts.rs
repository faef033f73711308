//! Accounts and the money moving between them. Balances only change here, always with the
//! account rows locked, and the database refuses a negative balance whatever happens.

use rust_decimal::Decimal;
use sqlx::PgConnection;

/// Opens a new user's "Regular" and "Savings" accounts.
pub async fn open_defaults(conn: &mut PgConnection, user_id: i64, currency: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO accounts (user_id, name, kind, currency)
         VALUES ($1, 'Regular', 'regular', $2), ($1, 'Savings', 'savings', $2)",
    )
    .bind(user_id)
    .bind(currency)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why money could not move.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("account {0} not found")]
    NoAccount(i64),
    #[error("account {account} holds {balance}, less than {needed}")]
    InsufficientFunds {
        account: i64,
        balance: Decimal,
        needed: Decimal,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Adds `delta` (negative to take money out) to each account, locking them in id order so two
/// concurrent moves never deadlock, and refusing any move that would overdraw.
pub async fn apply(
    conn: &mut PgConnection,
    user_id: i64,
    changes: &[(i64, Decimal)],
) -> Result<(), MoveError> {
    let mut ids: Vec<i64> = changes.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let balances: Vec<(i64, Decimal)> = sqlx::query_as(
        "SELECT id, balance FROM accounts WHERE user_id = $1 AND id = ANY($2) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(user_id)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for id in &ids {
        let Some((_, balance)) = balances.iter().find(|(account, _)| account == id) else {
            return Err(MoveError::NoAccount(*id));
        };
        let delta: Decimal = changes.iter().filter(|(a, _)| a == id).map(|(_, d)| *d).sum();
        if balance + delta < Decimal::ZERO {
            return Err(MoveError::InsufficientFunds {
                account: *id,
                balance: *balance,
                needed: -delta,
            });
        }
        sqlx::query("UPDATE accounts SET balance = balance + $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(delta)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
