//! Spending and income figures: `/api/database/analytics/*` (the reference's three plus a
//! monthly breakdown) and `/api/dashboard/summary`. Spending means active expenses only; a
//! month's income means its deposits.

use chrono::{Datelike, NaiveDate};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::auth::Auth;
use super::money::Money;
use super::transactions::today;
use super::{ApiError, Ctx, Tag};
use crate::finance::alerts::first_of_month;

pub(crate) struct AnalyticsApi(pub(crate) Ctx);

#[derive(Debug, Object)]
struct MonthlySpend {
    budget_name: String,
    /// `YYYY-MM`.
    month: String,
    total_spent: Money,
}

#[derive(Debug, Object)]
struct MonthlySpendReport {
    data: Vec<MonthlySpend>,
}

#[derive(Debug, Object)]
struct BudgetUse {
    budget_id: i64,
    budget_name: String,
    spent: Money,
    total_limit: Money,
    remaining: Money,
    /// Spent as a percentage of the limit, one decimal.
    pct_of_limit: Decimal,
    is_overspent: bool,
    priority_level_int: Option<i16>,
    color: String,
    icon: String,
}

#[derive(Debug, Object)]
struct MonthSummary {
    total_income: Money,
    total_spent: Money,
    net_position: Money,
}

#[derive(Debug, Object)]
struct OverspendReport {
    /// The first day of the month reported.
    month: NaiveDate,
    data: Vec<BudgetUse>,
    summary: MonthSummary,
}

#[derive(Debug, Object)]
struct IncomeTotal {
    type_income: String,
    total_amount: Money,
}

#[derive(Debug, Object)]
struct IncomeTotalReport {
    data: Vec<IncomeTotal>,
}

#[derive(Debug, Object)]
struct Category {
    /// `null` for spending outside any budget ("Unbudgeted").
    budget_id: Option<i64>,
    name: String,
    amount: Money,
    count: i64,
    /// Share of the month's spending, one decimal.
    percentage: Decimal,
}

#[derive(Debug, Object)]
struct Breakdown {
    month: NaiveDate,
    total_spent: Money,
    total_income: Money,
    net_savings: Money,
    transaction_count: i64,
    avg_per_transaction: Money,
    categories: Vec<Category>,
}

#[derive(Debug, Object)]
struct Dashboard {
    /// E.g. `March 2026`.
    month_label: String,
    total_income: Money,
    total_spent: Money,
    net_position: Money,
    is_deficit: bool,
    daily_average_spend: Money,
    total_budgeted: Money,
    /// The month's budget limits as a percentage of its income, one decimal.
    budget_allocation_percentage: Decimal,
    /// Account balances plus money saved in goals.
    total_assets: Money,
    budgets: Vec<BudgetUse>,
}

fn percent(part: Decimal, whole: Decimal) -> Decimal {
    match whole.is_zero() {
        true => Decimal::ZERO,
        false => (part * Decimal::ONE_HUNDRED / whole).round_dp(1),
    }
}

#[OpenApi(tag = "Tag::Analytics")]
impl AnalyticsApi {
    /// Spending per budget and month.
    #[oai(path = "/database/analytics/monthly-spend", method = "get")]
    async fn monthly_spend(
        &self,
        auth: Auth,
        user_id: Query<Option<i64>>,
        start_date: Query<Option<NaiveDate>>,
        end_date: Query<Option<NaiveDate>>,
    ) -> Result<Json<MonthlySpendReport>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let rows: Vec<(String, String, Decimal)> = sqlx::query_as(
            "SELECT coalesce(b.name, 'Unbudgeted'), to_char(t.date, 'YYYY-MM'), sum(t.amount)
             FROM transactions t LEFT JOIN budgets b ON b.id = t.budget_id
             WHERE t.user_id = $1 AND t.kind = 'expense' AND t.deleted_at IS NULL
               AND ($2::date IS NULL OR t.date >= $2) AND ($3::date IS NULL OR t.date <= $3)
             GROUP BY 1, 2 ORDER BY 2 DESC, 1",
        )
        .bind(auth.0.user_id)
        .bind(start_date.0)
        .bind(end_date.0)
        .fetch_all(&self.0.db)
        .await?;
        let data = rows
            .into_iter()
            .map(|(budget_name, month, total)| MonthlySpend {
                budget_name,
                month,
                total_spent: Money(total),
            })
            .collect();
        Ok(Json(MonthlySpendReport { data }))
    }

    /// Each active budget's spending against its limit in a month (this month by default).
    #[oai(path = "/database/analytics/overspend", method = "get")]
    async fn overspend(
        &self,
        auth: Auth,
        user_id: Query<Option<i64>>,
        /// Any day of the month to report.
        month: Query<Option<NaiveDate>>,
    ) -> Result<Json<OverspendReport>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let month = first_of_month(month.0.unwrap_or_else(today));
        let mut conn = self.0.db.acquire().await?;
        let data = budget_use(&mut conn, auth.0.user_id, month).await?;
        let (income, spent) = month_totals(&mut conn, auth.0.user_id, month).await?;
        Ok(Json(OverspendReport {
            month,
            data,
            summary: MonthSummary {
                total_income: Money(income),
                total_spent: Money(spent),
                net_position: Money(income - spent),
            },
        }))
    }

    /// Active income sources, summed by type.
    #[oai(path = "/database/analytics/income-total", method = "get")]
    async fn income_total(
        &self,
        auth: Auth,
        user_id: Query<Option<i64>>,
    ) -> Result<Json<IncomeTotalReport>, ApiError> {
        auth.0.check(user_id.0, "user")?;
        let rows: Vec<(String, Decimal)> = sqlx::query_as(
            "SELECT kind, sum(amount) FROM incomes WHERE user_id = $1 AND active GROUP BY kind ORDER BY kind",
        )
        .bind(auth.0.user_id)
        .fetch_all(&self.0.db)
        .await?;
        let data = rows
            .into_iter()
            .map(|(type_income, total)| IncomeTotal {
                type_income,
                total_amount: Money(total),
            })
            .collect();
        Ok(Json(IncomeTotalReport { data }))
    }

    /// A month's spending by budget, with its income and savings.
    #[oai(path = "/database/analytics/monthly-breakdown", method = "get")]
    async fn monthly_breakdown(
        &self,
        auth: Auth,
        /// Any day of the month to report; this month by default.
        month: Query<Option<NaiveDate>>,
    ) -> Result<Json<Breakdown>, ApiError> {
        let month = first_of_month(month.0.unwrap_or_else(today));
        let mut conn = self.0.db.acquire().await?;
        let rows: Vec<(Option<i64>, String, Decimal, i64)> = sqlx::query_as(
            "SELECT t.budget_id, coalesce(b.name, 'Unbudgeted'), sum(t.amount), count(*)
             FROM transactions t LEFT JOIN budgets b ON b.id = t.budget_id
             WHERE t.user_id = $1 AND t.kind = 'expense' AND t.deleted_at IS NULL
               AND t.date >= $2 AND t.date < ($2 + interval '1 month')
             GROUP BY 1, 2 ORDER BY 3 DESC",
        )
        .bind(auth.0.user_id)
        .bind(month)
        .fetch_all(&mut *conn)
        .await?;
        let (income, spent) = month_totals(&mut conn, auth.0.user_id, month).await?;
        let count: i64 = rows.iter().map(|row| row.3).sum();
        let categories = rows
            .into_iter()
            .map(|(budget_id, name, amount, count)| Category {
                budget_id,
                name,
                amount: Money(amount),
                count,
                percentage: percent(amount, spent),
            })
            .collect();
        let average = match count {
            0 => Decimal::ZERO,
            n => (spent / Decimal::from(n)).round_dp(2),
        };
        Ok(Json(Breakdown {
            month,
            total_spent: Money(spent),
            total_income: Money(income),
            net_savings: Money(income - spent),
            transaction_count: count,
            avg_per_transaction: Money(average),
            categories,
        }))
    }

    /// This month at a glance: income, spending, budgets, assets.
    #[oai(path = "/dashboard/summary", method = "get")]
    async fn dashboard(&self, auth: Auth) -> Result<Json<Dashboard>, ApiError> {
        let today = today();
        let month = first_of_month(today);
        let user = auth.0.user_id;
        let mut conn = self.0.db.acquire().await?;
        let budgets = budget_use(&mut conn, user, month).await?;
        let (income, spent) = month_totals(&mut conn, user, month).await?;
        let assets: Decimal = sqlx::query_scalar(
            "SELECT (SELECT coalesce(sum(balance), 0) FROM accounts WHERE user_id = $1 AND active)
                  + (SELECT coalesce(sum(saved), 0) FROM goals WHERE user_id = $1)",
        )
        .bind(user)
        .fetch_one(&mut *conn)
        .await?;
        let budgeted: Decimal = budgets.iter().map(|b| b.total_limit.0).sum();
        Ok(Json(Dashboard {
            month_label: format!("{} {}", month_name(month.month()), month.year()),
            total_income: Money(income),
            total_spent: Money(spent),
            net_position: Money(income - spent),
            is_deficit: spent > income,
            daily_average_spend: Money((spent / Decimal::from(today.day())).round_dp(2)),
            total_budgeted: Money(budgeted),
            budget_allocation_percentage: percent(budgeted, income),
            total_assets: Money(assets),
            budgets,
        }))
    }
}

#[derive(sqlx::FromRow)]
struct BudgetRow {
    id: i64,
    name: String,
    monthly_limit: Decimal,
    priority: Option<i16>,
    color: String,
    icon: String,
    spent: Decimal,
}

async fn budget_use(
    conn: &mut PgConnection,
    user: i64,
    month: NaiveDate,
) -> Result<Vec<BudgetUse>, ApiError> {
    let rows: Vec<BudgetRow> = sqlx::query_as(
        "SELECT b.id, b.name, b.monthly_limit, b.priority, b.color, b.icon,
                coalesce(sum(t.amount), 0) AS spent
         FROM budgets b
         LEFT JOIN transactions t ON t.user_id = b.user_id AND t.budget_id = b.id
              AND t.kind = 'expense' AND t.deleted_at IS NULL
              AND t.date >= $2 AND t.date < ($2 + interval '1 month')
         WHERE b.user_id = $1 AND b.active
         GROUP BY b.id ORDER BY coalesce(b.priority, 11), b.id",
    )
    .bind(user)
    .bind(month)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| BudgetUse {
            budget_id: row.id,
            budget_name: row.name,
            spent: Money(row.spent),
            total_limit: Money(row.monthly_limit),
            remaining: Money((row.monthly_limit - row.spent).max(Decimal::ZERO)),
            pct_of_limit: percent(row.spent, row.monthly_limit),
            is_overspent: row.spent > row.monthly_limit,
            priority_level_int: row.priority,
            color: row.color,
            icon: row.icon,
        })
        .collect())
}

/// A month's deposits and expenses.
async fn month_totals(
    conn: &mut PgConnection,
    user: i64,
    month: NaiveDate,
) -> Result<(Decimal, Decimal), ApiError> {
    Ok(sqlx::query_as(
        "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'deposit'), 0),
                coalesce(sum(amount) FILTER (WHERE kind = 'expense'), 0)
         FROM transactions
         WHERE user_id = $1 AND deleted_at IS NULL AND date >= $2 AND date < ($2 + interval '1 month')",
    )
    .bind(user)
    .bind(month)
    .fetch_one(conn)
    .await?)
}

fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES[(month as usize - 1) % 12]
}
