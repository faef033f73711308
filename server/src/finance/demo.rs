//! The demo user and a year of deterministic activity, for `finch seed-demo`, tests and examples.
//!
//! [`plan`] decides every transaction — date, merchant, amount — from `today` and a seed alone,
//! leaving out whatever would overdraw the Regular account; [`seed_user`] creates the user, the
//! accounts, incomes, budgets and goals, and inserts the plan through the ledger, so balances and
//! the current month's budget alerts come out exactly as real activity would make them.

use anyhow::{anyhow, bail};
use argon2::{Argon2, PasswordHasher};
use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::ledger::{self, Entry, Kind};
use super::{accounts, audit, income};

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
const DINING_LIMIT: i64 = 22_000;
const CITY: &str = "Lisbon";
const SALARY: i64 = 320_000;
const SALARY_DAY: u32 = 25;

/// Merchants with the neighbourhood of the shop; `None` for online and direct debits.
type Merchant = (&'static str, Option<&'static str>);
const SUPERMARKETS: [Merchant; 4] = [
    ("Pingo Doce", Some("Campo de Ourique")),
    ("Continente", Some("Avenidas Novas")),
    ("Lidl", Some("Alcântara")),
    ("Mercado de Campo de Ourique", Some("Campo de Ourique")),
];
const RESTAURANTS: [Merchant; 5] = [
    ("Taberna da Rua das Flores", Some("Chiado")),
    ("Time Out Market", Some("Cais do Sodré")),
    ("Ramen Kai", Some("Príncipe Real")),
    ("Zé da Mouraria", Some("Mouraria")),
    ("Pizzeria Casanova", Some("Alfama")),
];
const LATE_BARS: [Merchant; 2] = [
    ("Pensão Amor", Some("Cais do Sodré")),
    ("Park Bar", Some("Bairro Alto")),
];
const SHOPS: [Merchant; 5] = [
    ("Fnac", Some("Chiado")),
    ("Zara", Some("Baixa")),
    ("Decathlon", Some("Alvalade")),
    ("Livraria Bertrand", Some("Chiado")),
    ("Amazon", None),
];
/// Monthly debits: day of month, budget, merchant, amount in cents.
const MONTHLY: [(u32, &str, &str, i64); 5] = [
    (1, "Rent", "Rent — Ferreira Imóveis", 115_000),
    (1, "Transport", "Navegante monthly pass", 4_000),
    (3, "Subscriptions", "Fitness Hut", 1_990),
    (5, "Subscriptions", "Netflix", 1_399),
    (12, "Subscriptions", "Spotify", 1_099),
];
/// A range of amounts in cents, and of how many times a month.
type Cents = (i64, i64);
type Times = (u32, u32);
/// Spending that varies: budget, merchants, how many a month, range in cents.
#[rustfmt::skip]
const VARIABLE: [(&str, &[Merchant], Times, Cents); 3] = [
    ("Transport", &[("Bolt", Some("Cais do Sodré"))], (0, 2), (700, 2_200)),
    ("Shopping", &SHOPS, (2, 4), (1_200, 8_500)),
    ("Health", &[("Farmácia Estácio", Some("Campo de Ourique"))], (0, 2), (600, 3_500)),
];
/// Once or twice a year: days into the year (earliest, latest), budget, merchant, range in cents.
#[rustfmt::skip]
const OCCASIONAL: [((u64, u64), &str, Merchant, Cents); 5] = [
    ((40, 70), "Shopping", ("Worten", Some("Benfica")), (129_900, 149_900)),
    ((100, 120), "Health", ("Clínica Dentária Sorriso", Some("Avenidas Novas")), (6_000, 11_000)),
    ((140, 170), "Transport", ("TAP Air Portugal", None), (34_000, 42_000)),
    ((250, 290), "Shopping", ("IKEA", None), (84_900, 94_900)),
    ((280, 300), "Health", ("Clínica Dentária Sorriso", Some("Avenidas Novas")), (6_000, 11_000)),
];
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Account {
    Regular,
    Savings,
}

/// One planned transaction. A transfer goes from Regular to Savings.
#[derive(Debug, Clone, PartialEq)]
struct Planned {
    date: NaiveDate,
    kind: Kind,
    account: Account,
    budget: Option<&'static str>,
    /// The `kind` of the income a deposit credits.
    income: Option<&'static str>,
    description: &'static str,
    /// Where it happened, in [`CITY`]; `None` when not in person.
    neighbourhood: Option<&'static str>,
    tags: Vec<&'static str>,
    amount: Decimal,
}

impl Planned {
    fn new(date: NaiveDate, kind: Kind, description: &'static str, amount: Decimal) -> Planned {
        Planned {
            date,
            kind,
            account: Account::Regular,
            budget: None,
            income: None,
            description,
            neighbourhood: None,
            tags: Vec::new(),
            amount,
        }
    }

    fn expense(date: NaiveDate, budget: &'static str, (name, place): Merchant, amount: Decimal) -> Planned {
        Planned {
            budget: Some(budget),
            neighbourhood: place,
            ..Planned::new(date, Kind::Expense, name, amount)
        }
    }

    /// What it does to the Regular balance.
    fn regular_delta(&self) -> Decimal {
        match (self.kind, self.account) {
            (Kind::Deposit, Account::Regular) => self.amount,
            (Kind::Deposit, Account::Savings) => Decimal::ZERO,
            _ => -self.amount,
        }
    }
}

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
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(owned.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|err| anyhow!("hashing the demo password: {err}"))?;

    let user_id: i64 = sqlx::query_scalar(
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
    .bind(&hash)
    .fetch_one(&mut *conn)
    .await?;
    accounts::open_defaults(conn, user_id, "EUR").await?;
    // 'regular' sorts before 'savings'.
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE user_id = $1 ORDER BY kind")
        .bind(user_id)
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
    .bind(user_id)
    .bind(Decimal::new(SALARY, 2))
    .bind(regular)
    .bind(SALARY_DAY as i16)
    .bind(income::next_due(SALARY_DAY, today + Days::new(1)))
    .fetch_all(&mut *conn)
    .await?;

    let budget_ids: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO budgets (user_id, name, monthly_limit, priority, icon, color)
         SELECT $1, * FROM unnest($2::text[], $3::numeric[], $4::int2[], $5::text[], $6::text[])
         RETURNING id, name",
    )
    .bind(user_id)
    .bind(BUDGETS.map(|budget| budget.0))
    .bind(BUDGETS.map(|budget| Decimal::new(budget.1, 2)))
    .bind(BUDGETS.map(|budget| budget.2))
    .bind(BUDGETS.map(|budget| budget.3))
    .bind(BUDGETS.map(|budget| budget.4))
    .fetch_all(&mut *conn)
    .await?;

    let start = first_day(today);
    // The trip is next summer, at least two months away; the emergency fund a year and a half.
    let mut trip = NaiveDate::from_ymd_opt(today.year(), 7, 1).expect("a valid date");
    if trip < today + Days::new(60) {
        trip = trip + Months::new(12);
    }
    let goals = sqlx::query(
        "INSERT INTO goals (user_id, name, description, target, saved, start_date, due_date)
         VALUES ($1, 'Emergency fund', 'Six months of expenses, kept in Savings', 10000.00, 2500.00, $2, $3),
                ($1, 'Summer trip', 'Two weeks in Japan next summer', 2400.00, 600.00, $4, $5)",
    )
    .bind(user_id)
    .bind(start)
    .bind(start_of_month(today) + Months::new(18))
    .bind(start + Months::new(6))
    .bind(trip)
    .execute(&mut *conn)
    .await?
    .rows_affected() as usize;

    let mut transactions = 0;
    for planned in plan(today, seed) {
        let mut entry = Entry::new(planned.kind, planned.date, planned.amount);
        entry.description = Some(planned.description.to_owned());
        entry.city = planned.neighbourhood.map(|_| CITY.to_owned());
        entry.neighbourhood = planned.neighbourhood.map(str::to_owned);
        entry.tags = planned.tags.iter().map(|tag| tag.to_string()).collect();
        entry.account_id = Some(match planned.account {
            Account::Regular => regular,
            Account::Savings => savings,
        });
        if planned.kind == Kind::Transfer {
            entry.transfer_to_id = Some(savings);
        }
        let id_of =
            |rows: &[(i64, String)], name: &str| rows.iter().find(|(_, n)| n == name).map(|row| row.0);
        entry.budget_id = planned.budget.and_then(|name| id_of(&budget_ids, name));
        entry.income_id = planned.income.and_then(|kind| id_of(&incomes, kind));
        if ledger::insert(conn, user_id, &entry, today).await?.is_some() {
            transactions += 1;
        }
    }

    let detail = serde_json::json!({"demo": true});
    audit::record(conn, user_id, "seed", "user", Some(user_id), detail).await?;
    Ok(Demo {
        user_id,
        email: email.to_owned(),
        password: password.to_owned(),
        transactions,
        budgets: budget_ids.len(),
        goals,
    })
}

/// The first day of the year of activity that ends at `today`.
fn first_day(today: NaiveDate) -> NaiveDate {
    today - Months::new(12) + Days::new(1)
}

fn start_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("every month has a first day")
}

/// Every transaction of the year ending at `today`, in date order (deposits first within a day),
/// without those that would overdraw Regular.
fn plan(today: NaiveDate, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = first_day(today);
    let mut out = Vec::new();

    let mut opening = Planned::new(start, Kind::Deposit, "Opening balance", Decimal::new(250_000, 2));
    out.push(opening.clone());
    opening.account = Account::Savings;
    opening.amount = Decimal::new(400_000, 2);
    out.push(opening);

    let mut month = start_of_month(start);
    while month <= today {
        let from = month.max(start);
        let to = (month + Months::new(1) - Days::new(1)).min(today);
        let within = |day: u32| month.with_day(day).filter(|date| (from..=to).contains(date));
        if let Some(date) = within(SALARY_DAY) {
            let mut salary = Planned::new(date, Kind::Deposit, "salary", Decimal::new(SALARY, 2));
            salary.income = Some("salary");
            out.push(salary);
        }
        if let Some(date) = within(SALARY_DAY + 1) {
            let amount = Decimal::new(50_000, 2);
            out.push(Planned::new(date, Kind::Transfer, "Monthly saving", amount));
        }
        for (day, budget, merchant, amount) in MONTHLY {
            if let Some(date) = within(day) {
                let amount = Decimal::new(amount, 2);
                out.push(Planned::expense(date, budget, (merchant, None), amount));
            }
        }
        // Variable spending, in proportion to the part of the month inside the year.
        let days = |from: NaiveDate, to: NaiveDate| ((to - from).num_days() + 1) as f64;
        let share = days(from, to) / days(month, month + Months::new(1) - Days::new(1));
        let mut count =
            |low: u32, high: u32| (f64::from(rng.random_range(low..=high)) * share).round() as u32;
        let (dinners, variable) = (count(4, 8), VARIABLE.map(|(.., (low, high), _)| count(low, high)));
        let weekends: Vec<NaiveDate> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .filter(is_weekend)
            .collect();
        for _ in 0..dinners {
            let date = match weekends.choose(&mut rng) {
                Some(day) if rng.random_bool(0.4) => *day,
                _ => pick(&mut rng, from, to),
            };
            let late = is_weekend(&date) && rng.random_bool(0.4);
            let (places, (low, high)) = if late {
                (&LATE_BARS[..], (900, 3_500))
            } else {
                (&RESTAURANTS[..], (1_200, 4_800))
            };
            let place = *places.choose(&mut rng).expect("places");
            let mut meal = Planned::expense(date, "Dining out", place, cents(&mut rng, low, high));
            if late {
                meal.tags.push("late-evening");
            }
            if is_weekend(&date) {
                meal.tags.push("weekend");
            }
            out.push(meal);
        }
        for ((budget, merchants, _, (low, high)), times) in VARIABLE.into_iter().zip(variable) {
            for _ in 0..times {
                let date = pick(&mut rng, from, to);
                let merchant = *merchants.choose(&mut rng).expect("merchants");
                let amount = cents(&mut rng, low, high);
                out.push(Planned::expense(date, budget, merchant, amount));
            }
        }
        month = month + Months::new(1);
    }

    // Groceries: two or three shops a week, mostly small, now and then a big one.
    let mut week = start;
    while week <= today {
        let end = (week + Days::new(6)).min(today);
        for _ in 0..if rng.random_ratio(1, 4) { 3 } else { 2 } {
            let date = pick(&mut rng, week, end);
            let amount = cents(&mut rng, 1_800, 9_500).min(cents(&mut rng, 1_800, 9_500));
            let shop = *SUPERMARKETS.choose(&mut rng).expect("supermarkets");
            out.push(Planned::expense(date, "Groceries", shop, amount));
        }
        week = week + Days::new(7);
    }

    // Side income once a quarter, and the occasional large purchase.
    for quarter in 0..4 {
        let date = start + Days::new(quarter * 90 + rng.random_range(10..80));
        let amount = cents(&mut rng, 35_000, 120_000);
        let mut freelance = Planned::new(date, Kind::Deposit, "Freelance UX audit", amount);
        freelance.income = Some("freelance");
        out.push(freelance);
    }
    for ((early, late), budget, merchant, (low, high)) in OCCASIONAL {
        let date = start + Days::new(rng.random_range(early..=late));
        let amount = cents(&mut rng, low, high);
        out.push(Planned::expense(date, budget, merchant, amount));
    }

    out.sort_by_key(|p| (p.date, p.kind != Kind::Deposit, p.kind == Kind::Transfer));
    let mut balance = Decimal::ZERO;
    out.retain(|p| {
        let after = balance + p.regular_delta();
        if after < Decimal::ZERO {
            return false;
        }
        balance = after;
        true
    });

    // This month's dining reaches at least 85% of its limit, so the budget warns.
    let this_month = start_of_month(today);
    let dined: Decimal = out
        .iter()
        .filter(|p| p.budget == Some("Dining out") && p.date >= this_month)
        .map(|p| p.amount)
        .sum();
    let target = cents(&mut rng, DINING_LIMIT * 85 / 100, DINING_LIMIT * 95 / 100);
    if dined < target && target - dined <= balance {
        let mut dinner = Planned::expense(today, "Dining out", RESTAURANTS[0], target - dined);
        dinner.tags.push("birthday");
        out.push(dinner);
    }
    out
}

/// An amount between `low` and `high` cents.
fn cents(rng: &mut StdRng, low: i64, high: i64) -> Decimal {
    Decimal::new(rng.random_range(low..=high), 2)
}

/// A day between `from` and `to`.
fn pick(rng: &mut StdRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    from + Days::new(rng.random_range(0..=(to - from).num_days()) as u64)
}

fn is_weekend(date: &NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAYS: [&str; 4] = ["2026-12-02", "2026-03-01", "2024-02-29", "2027-01-31"];

    fn todays() -> impl Iterator<Item = NaiveDate> {
        TODAYS.into_iter().map(|text| text.parse().unwrap())
    }

    fn sum(plan: &[Planned], keep: impl Fn(&Planned) -> bool) -> Decimal {
        plan.iter().filter(|p| keep(p)).map(|p| p.amount).sum()
    }

    #[test]
    fn the_same_day_and_seed_give_the_same_plan() {
        for today in todays() {
            assert_eq!(plan(today, 2026), plan(today, 2026));
            assert_ne!(plan(today, 2026), plan(today, 7));
        }
    }

    #[test]
    fn a_plan_covers_the_year_up_to_today_in_cents_and_every_budget() {
        for today in todays() {
            let plan = plan(today, 2026);
            assert!(plan.len() > 300, "{today}: {} transactions", plan.len());
            for p in &plan {
                assert!(p.date > today - Months::new(12) && p.date <= today, "{p:?}");
                assert!(p.amount > Decimal::ZERO && p.amount.scale() == 2, "{p:?}");
                assert_eq!(p.budget.is_some(), p.kind == Kind::Expense, "{p:?}");
            }
            assert!(plan.windows(2).all(|pair| pair[0].date <= pair[1].date));
            for (name, ..) in BUDGETS {
                assert!(
                    plan.iter().any(|p| p.budget == Some(name)),
                    "{today}: {name} unused"
                );
            }
        }
    }

    #[test]
    fn regular_never_goes_negative_income_exceeds_spending_and_dining_warns() {
        for seed in 0..20 {
            for today in todays() {
                let plan = plan(today, seed);
                let mut balance = Decimal::ZERO;
                for p in &plan {
                    balance += p.regular_delta();
                    assert!(balance >= Decimal::ZERO, "{p:?}");
                }
                let income = sum(&plan, |p| p.income.is_some());
                let spent = sum(&plan, |p| p.kind == Kind::Expense);
                assert!(income > spent, "{today} {seed}: income {income}, spent {spent}");
                let dined = sum(&plan, |p| {
                    p.budget == Some("Dining out") && p.date >= start_of_month(today)
                });
                let warning = Decimal::new(DINING_LIMIT * 8 / 10, 2);
                assert!(dined >= warning, "{today} {seed}: dined {dined}");
            }
        }
    }
}
