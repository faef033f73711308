//! The demo user and a year of deterministic activity, for `finch seed-demo`, tests and examples.
//!
//! [`plan::plan`] (in `demo/plan.rs`) decides every transaction — date, merchant, amount — from `today` and a seed alone,
//! leaving out whatever would overdraw the Regular account; [`seed_user`] creates the user, the
//! accounts, incomes, budgets and goals, and inserts the plan through the ledger, so balances and
//! the current month's budget alerts come out exactly as real activity would make them.

mod plan;

use anyhow::bail;
use chrono::{Datelike, Days, Months, NaiveDate};
use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::ledger::{self, Entry, Kind};
use super::{accounts, audit, income, password};
use plan::{Account, first_day, plan, start_of_month};

pub const DEMO_EMAIL: &str = "demo@finch.example";
pub const DEMO_PASSWORD: &str = "finch-demo-2026";

/// What [`seed_user`] created.
#[derive(Debug)]
pub struct Demo {
    pub user_id: i64,
    pub email: String,
    pub password: String,
    pub transactions: usize,
    pub budgets: usize,
    pub goals: usize,
}

/// The budgets: name, monthly limit in cents, priority, icon, colour.
const BUDGETS: [(&str, i64, i16, &str, &str); 7] = [
    ("Rent", 120_000, 1, "home", "#6366f1"),
    ("Groceries", 45_000, 2, "shopping-cart", "#10b981"),
    ("Dining out", 22_000, 6, "utensils", "#f59e0b"),
    ("Transport", 15_000, 4, "bus", "#0ea5e9"),
    ("Subscriptions", 6_000, 5, "repeat", "#8b5cf6"),
    ("Shopping", 25_000, 7, "shopping-bag", "#ec4899"),
    ("Health", 10_000, 3, "heart-pulse", "#ef4444"),
];
const CITY: &str = "Lisbon";
const SALARY: i64 = 320_000;
const SALARY_DAY: u32 = 25;

/// Creates the demo user (or replaces nothing: if a user with DEMO_EMAIL exists, return an error
/// saying so) with activity for the 12 months ending at `today`.
pub async fn seed(conn: &mut PgConnection, today: NaiveDate) -> anyhow::Result<Demo> {
    seed_user(conn, DEMO_EMAIL, DEMO_PASSWORD, today, 2026).await
}

/// Same generator for any email (tests create several users). Runs in the caller's transaction.
pub async fn seed_user(
    conn: &mut PgConnection,
    email: &str,
    password: &str,
    today: NaiveDate,
    seed: u64,
) -> anyhow::Result<Demo> {
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))")
            .bind(email)
            .fetch_one(&mut *conn)
            .await?;
    if taken {
        bail!("a user with email {email} already exists; the demo replaces nothing");
    }
    let hash = password::hash(password.to_owned()).await?;
    let user = create_user(conn, email, &hash, today).await?;
    let goals = add_goals(conn, user.id, today).await?;
    let transactions = insert_plan(conn, &user, today, seed).await?;
    let detail = serde_json::json!({"demo": true});
    audit::record(conn, user.id, "seed", "user", Some(user.id), detail).await?;
    Ok(Demo {
        user_id: user.id,
        email: email.to_owned(),
        password: password.to_owned(),
        transactions,
        budgets: user.budgets.len(),
        goals,
    })
}

/// The demo user's rows that the plan's transactions refer to.
struct DemoUser {
    id: i64,
    regular: i64,
    savings: i64,
    /// Id and kind of each income.
    incomes: Vec<(i64, String)>,
    /// Id and name of each budget.
    budgets: Vec<(i64, String)>,
}

/// The user with their credentials, accounts, incomes and budgets.
async fn create_user(
    conn: &mut PgConnection,
    email: &str,
    hash: &str,
    today: NaiveDate,
) -> anyhow::Result<DemoUser> {
    let id: i64 = sqlx::query_scalar(
        "WITH new AS (
             INSERT INTO users (email, first_name, last_name, job_title, employment_status, education_level,
                                address, birthday, preferred_currency)
             VALUES ($1, 'Inês', 'Carvalho', 'Product designer', 'Employed Full-time', 'Bachelor degree',
                     'Rua Saraiva de Carvalho 112, 1250-245 Lisboa, Portugal', $2, 'EUR')
             RETURNING id)
         INSERT INTO credentials (user_id, password_hash) SELECT id, $3 FROM new RETURNING user_id",
    )
    .bind(email)
    .bind(NaiveDate::from_ymd_opt(1994, 6, 14))
    .bind(hash)
    .fetch_one(&mut *conn)
    .await?;
    accounts::open_defaults(conn, id, "EUR").await?;
    // 'regular' sorts before 'savings'.
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE user_id = $1 ORDER BY kind")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    let [regular, savings] = ids[..] else {
        bail!("expected the two default accounts, found {ids:?}")
    };
    let incomes: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO incomes (user_id, kind, amount, description, account_id, payment_day, next_payment_date)
         VALUES ($1, 'salary', $2, 'Lumen Studio, monthly salary', $3, $4, $5),
                ($1, 'freelance', 600.00, 'UX audits and illustration, irregular', $3, NULL, NULL)
         RETURNING id, kind",
    )
    .bind(id)
    .bind(Decimal::new(SALARY, 2))
    .bind(regular)
    .bind(SALARY_DAY as i16)
    .bind(income::next_due(SALARY_DAY, today + Days::new(1)))
    .fetch_all(&mut *conn)
    .await?;
    let budgets: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO budgets (user_id, name, monthly_limit, priority, icon, color)
         SELECT $1, * FROM unnest($2::text[], $3::numeric[], $4::int2[], $5::text[], $6::text[])
         RETURNING id, name",
    )
    .bind(id)
    .bind(BUDGETS.map(|budget| budget.0))
    .bind(BUDGETS.map(|budget| Decimal::new(budget.1, 2)))
    .bind(BUDGETS.map(|budget| budget.2))
    .bind(BUDGETS.map(|budget| budget.3))
    .bind(BUDGETS.map(|budget| budget.4))
    .fetch_all(&mut *conn)
    .await?;
    Ok(DemoUser {
        id,
        regular,
        savings,
        incomes,
        budgets,
    })
}

/// The two goals; returns how many.
async fn add_goals(conn: &mut PgConnection, user: i64, today: NaiveDate) -> anyhow::Result<usize> {
    let start = first_day(today);
    // The trip is next summer, at least two months away; the emergency fund a year and a half.
    let mut trip = NaiveDate::from_ymd_opt(today.year(), 7, 1).expect("a valid date");
    if trip < today + Days::new(60) {
        trip = trip + Months::new(12);
    }
    let added = sqlx::query(
        "INSERT INTO goals (user_id, name, description, target, saved, start_date, due_date)
         VALUES ($1, 'Emergency fund', 'Six months of expenses, kept in Savings', 10000.00, 2500.00, $2, $3),
                ($1, 'Summer trip', 'Two weeks in Japan next summer', 2400.00, 600.00, $4, $5)",
    )
    .bind(user)
    .bind(start)
    .bind(start_of_month(today) + Months::new(18))
    .bind(start + Months::new(6))
    .bind(trip)
    .execute(conn)
    .await?;
    Ok(added.rows_affected() as usize)
}

/// Inserts the year's [`plan`] through the ledger; returns how many transactions it made.
async fn insert_plan(
    conn: &mut PgConnection,
    user: &DemoUser,
    today: NaiveDate,
    seed: u64,
) -> anyhow::Result<usize> {
    let id_of = |rows: &[(i64, String)], name: &str| rows.iter().find(|(_, n)| n == name).map(|row| row.0);
    let mut transactions = 0;
    for planned in plan(today, seed) {
        let mut entry = Entry::new(planned.kind, planned.date, planned.amount);
        entry.description = Some(planned.description.to_owned());
        entry.city = planned.neighbourhood.map(|_| CITY.to_owned());
        entry.neighbourhood = planned.neighbourhood.map(str::to_owned);
        entry.tags = planned.tags.iter().map(|tag| tag.to_string()).collect();
        entry.account_id = Some(match planned.account {
            Account::Regular => user.regular,
            Account::Savings => user.savings,
        });
        if planned.kind == Kind::Transfer {
            entry.transfer_to_id = Some(user.savings);
        }
        entry.budget_id = planned.budget.and_then(|name| id_of(&user.budgets, name));
        entry.income_id = planned.income.and_then(|kind| id_of(&user.incomes, kind));
        if ledger::insert(conn, user.id, &entry, today).await?.is_some() {
            transactions += 1;
        }
    }
    Ok(transactions)
}
