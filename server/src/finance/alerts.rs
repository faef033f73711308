//! Budget alerts: a warning when a month's spending in a budget reaches 80% of its limit, and
//! an alert when it reaches 100% — each at most once per budget and month (a unique index
//! makes sure of it, even under concurrent expenses), raised in the expense's transaction.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use sqlx::PgConnection;

/// Raises the alerts that spending in `budget_id` during the month of `date` calls for, if that
/// month is the current one (`today`'s).
pub async fn check(
    conn: &mut PgConnection,
    user_id: i64,
    budget_id: i64,
    date: NaiveDate,
    today: NaiveDate,
) -> sqlx::Result<()> {
    let period = first_of_month(date);
    if period != first_of_month(today) {
        return Ok(());
    }
    // Concurrent expenses in one budget take turns here, so each sees the others' amounts.
    sqlx::query("SELECT 1 FROM budgets WHERE user_id = $1 AND id = $2 FOR NO KEY UPDATE")
        .bind(user_id)
        .bind(budget_id)
        .execute(&mut *conn)
        .await?;
    let (name, limit, spent): (String, Decimal, Decimal) = sqlx::query_as(
        "SELECT b.name, b.monthly_limit, coalesce(sum(t.amount), 0)
         FROM budgets b
         LEFT JOIN transactions t ON t.user_id = b.user_id AND t.budget_id = b.id
              AND t.kind = 'expense' AND t.deleted_at IS NULL
              AND t.date >= $3 AND t.date < ($3 + interval '1 month')
         WHERE b.user_id = $1 AND b.id = $2
         GROUP BY b.id",
    )
    .bind(user_id)
    .bind(budget_id)
    .bind(period)
    .fetch_one(&mut *conn)
    .await?;
    let Some(Alert { kind, title, message }) = alert(&name, limit, spent) else {
        return Ok(());
    };
    // A warning after the limit was already exceeded would only be noise.
    sqlx::query(
        "INSERT INTO notifications (user_id, kind, title, message, budget_id, period)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE NOT EXISTS (SELECT 1 FROM notifications WHERE user_id = $1 AND budget_id = $5
                           AND period = $6 AND kind = 'budget_exceeded')
         ON CONFLICT (user_id, budget_id, period, kind) WHERE budget_id IS NOT NULL DO NOTHING",
    )
    .bind(user_id)
    .bind(kind)
    .bind(title)
    .bind(message)
    .bind(budget_id)
    .bind(period)
    .execute(conn)
    .await?;
    Ok(())
}

/// A notification to raise.
#[derive(Debug, PartialEq)]
struct Alert {
    kind: &'static str,
    title: String,
    message: String,
}

/// The alert that spending `spent` against a monthly `limit` calls for, if any.
fn alert(name: &str, limit: Decimal, spent: Decimal) -> Option<Alert> {
    if limit <= Decimal::ZERO {
        return None;
    }
    let percent = (spent * Decimal::ONE_HUNDRED / limit).round_dp(0);
    if spent >= limit {
        Some(Alert {
            kind: "budget_exceeded",
            title: format!("Budget exceeded: {name}"),
            message: format!(
                "You have spent {spent:.2} of your {limit:.2} {name} budget this month ({percent}%)."
            ),
        })
    } else if spent * Decimal::from(5) >= limit * Decimal::from(4) {
        Some(Alert {
            kind: "budget_warning",
            title: format!("Budget warning: {name}"),
            message: format!(
                "You have used {percent}% of your {name} budget this month ({spent:.2} of {limit:.2})."
            ),
        })
    } else {
        None
    }
}

pub fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("every month has a first day")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(limit: i64, spent: i64) -> Option<&'static str> {
        alert("Fun", Decimal::new(limit, 2), Decimal::new(spent, 2)).map(|alert| alert.kind)
    }

    #[test]
    fn a_warning_from_80_percent_and_an_alert_from_100() {
        assert_eq!(kind(10_000, 7_999), None);
        assert_eq!(kind(10_000, 8_000), Some("budget_warning"));
        assert_eq!(kind(10_000, 9_999), Some("budget_warning"));
        assert_eq!(kind(10_000, 10_000), Some("budget_exceeded"));
        assert_eq!(kind(0, 500), None, "a zero limit never alerts");
        let alert = alert("Fun", Decimal::new(10_000, 2), Decimal::new(8_550, 2)).unwrap();
        assert_eq!(
            alert.message,
            "You have used 86% of your Fun budget this month (85.50 of 100.00)."
        );
    }
}
