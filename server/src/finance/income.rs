//! Recurring income: on its due date an income is credited to its account as a deposit, and its
//! next due date moves on a month (to the payment day, or the month's last day when shorter).
//! A unique index on (income, date) makes each due date credited exactly once, however many
//! servers run this and however often.

use chrono::{Datelike, Days, NaiveDate};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};

use super::ledger::{self, Entry, Kind, LedgerError};

/// The first date on or after `from` that falls on `payment_day` (or on the last day of a month
/// shorter than that).
pub fn next_due(payment_day: u32, from: NaiveDate) -> NaiveDate {
    let in_month = |year: i32, month: u32| {
        let last = last_day(year, month);
        NaiveDate::from_ymd_opt(year, month, payment_day.min(last)).expect("a valid day")
    };
    let this_month = in_month(from.year(), from.month());
    if this_month >= from {
        return this_month;
    }
    let (year, month) = match from.month() {
        12 => (from.year() + 1, 1),
        month => (from.year(), month + 1),
    };
    in_month(year, month)
}

fn last_day(year: i32, month: u32) -> u32 {
    let next = match month {
        12 => NaiveDate::from_ymd_opt(year + 1, 1, 1),
        _ => NaiveDate::from_ymd_opt(year, month + 1, 1),
    };
    next.and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// A recurring income at one of its due dates.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub amount: Decimal,
    pub account_id: i64,
    pub payment_day: i16,
    pub next_payment_date: NaiveDate,
}

/// Credits `due` on its due date and moves its next due date on. Returns whether a deposit was
/// made (a date credited before is not credited again) and the next due date.
pub async fn credit(
    conn: &mut PgConnection,
    due: &Due,
    today: NaiveDate,
) -> Result<(bool, NaiveDate), LedgerError> {
    let date = due.next_payment_date;
    let mut entry = Entry::new(Kind::Deposit, date, due.amount);
    entry.account_id = Some(due.account_id);
    entry.income_id = Some(due.id);
    entry.description = Some(due.kind.clone());
    let deposited = ledger::insert(conn, due.user_id, &entry, today).await?.is_some();
    let next = next_due(
        due.payment_day as u32,
        date.checked_add_days(Days::new(1)).unwrap_or(date),
    );
    sqlx::query("UPDATE incomes SET next_payment_date = $2, updated_at = now() WHERE id = $1")
        .bind(due.id)
        .bind(next)
        .execute(conn)
        .await?;
    Ok((deposited, next))
}

/// Credits every recurring income due on or before `today`, catching up missed months; returns
/// how many deposits were made.
pub async fn credit_due(pool: &PgPool, today: NaiveDate) -> Result<usize, LedgerError> {
    let mut credited = 0;
    loop {
        let mut tx = pool.begin().await?;
        let due: Vec<Due> = sqlx::query_as(
            "SELECT id, user_id, kind, amount, account_id, payment_day, next_payment_date
             FROM incomes
             WHERE active AND payment_day IS NOT NULL AND next_payment_date <= $1
             ORDER BY id LIMIT 100
             FOR UPDATE SKIP LOCKED",
        )
        .bind(today)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(credited);
        }
        for income in &due {
            let (deposited, _) = credit(&mut tx, income, today).await?;
            credited += usize::from(deposited);
        }
        tx.commit().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn due_dates_keep_the_payment_day() {
        assert_eq!(next_due(25, date("2026-03-10")), date("2026-03-25"));
        assert_eq!(next_due(25, date("2026-03-25")), date("2026-03-25"));
        assert_eq!(next_due(25, date("2026-03-26")), date("2026-04-25"));
        assert_eq!(next_due(31, date("2026-02-01")), date("2026-02-28"));
        assert_eq!(next_due(31, date("2026-03-01")), date("2026-03-31"));
        assert_eq!(next_due(15, date("2026-12-20")), date("2027-01-15"));
    }
}
