//! The year's plan: every transaction of the demo user decided from `today` and a seed alone,
//! with no database, so it can be tested (and is the same on every machine).

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rust_decimal::Decimal;

use super::{SALARY, SALARY_DAY};
use crate::finance::ledger::Kind;

/// The Dining out budget's limit in cents: this month's dining is planned to reach 85% of it.
const DINING_LIMIT: i64 = 22_000;

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
pub(super) enum Account {
    Regular,
    Savings,
}

/// One planned transaction. A transfer goes from Regular to Savings.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Planned {
    pub(super) date: NaiveDate,
    pub(super) kind: Kind,
    pub(super) account: Account,
    pub(super) budget: Option<&'static str>,
    /// The `kind` of the income a deposit credits.
    pub(super) income: Option<&'static str>,
    pub(super) description: &'static str,
    /// Where it happened, in [`CITY`]; `None` when not in person.
    pub(super) neighbourhood: Option<&'static str>,
    pub(super) tags: Vec<&'static str>,
    pub(super) amount: Decimal,
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

/// The first day of the year of activity that ends at `today`.
pub(super) fn first_day(today: NaiveDate) -> NaiveDate {
    today - Months::new(12) + Days::new(1)
}

pub(super) fn start_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("every month has a first day")
}

/// Every transaction of the year ending at `today`, in date order (deposits first within a day),
/// without those that would overdraw Regular.
pub(super) fn plan(today: NaiveDate, seed: u64) -> Vec<Planned> {
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
        plan_month(&mut rng, &mut out, month, month.max(start), today);
        month = month + Months::new(1);
    }
    plan_groceries(&mut rng, &mut out, start, today);
    plan_once_in_a_while(&mut rng, &mut out, start);

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

/// The salary, the monthly saving, the debits and the variable spending of the month starting
/// on `month`, from `from` (the year may start mid-month) to `today` at the latest.
fn plan_month(rng: &mut StdRng, out: &mut Vec<Planned>, month: NaiveDate, from: NaiveDate, today: NaiveDate) {
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
    let mut count = |low: u32, high: u32| (f64::from(rng.random_range(low..=high)) * share).round() as u32;
    let (dinners, variable) = (count(4, 8), VARIABLE.map(|(.., (low, high), _)| count(low, high)));
    plan_dinners(rng, out, dinners, from, to);
    for ((budget, merchants, _, (low, high)), times) in VARIABLE.into_iter().zip(variable) {
        for _ in 0..times {
            let date = pick(rng, from, to);
            let merchant = *merchants.choose(rng).expect("merchants");
            let amount = cents(rng, low, high);
            out.push(Planned::expense(date, budget, merchant, amount));
        }
    }
}

/// `times` meals out between `from` and `to`, weekends more likely, some late at a bar.
fn plan_dinners(rng: &mut StdRng, out: &mut Vec<Planned>, times: u32, from: NaiveDate, to: NaiveDate) {
    let weekends: Vec<NaiveDate> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .filter(is_weekend)
        .collect();
    for _ in 0..times {
        let date = match weekends.choose(rng) {
            Some(day) if rng.random_bool(0.4) => *day,
            _ => pick(rng, from, to),
        };
        let late = is_weekend(&date) && rng.random_bool(0.4);
        let (places, (low, high)) = if late {
            (&LATE_BARS[..], (900, 3_500))
        } else {
            (&RESTAURANTS[..], (1_200, 4_800))
        };
        let place = *places.choose(rng).expect("places");
        let mut meal = Planned::expense(date, "Dining out", place, cents(rng, low, high));
        if late {
            meal.tags.push("late-evening");
        }
        if is_weekend(&date) {
            meal.tags.push("weekend");
        }
        out.push(meal);
    }
}

/// Groceries: two or three shops a week, mostly small, now and then a big one.
fn plan_groceries(rng: &mut StdRng, out: &mut Vec<Planned>, start: NaiveDate, today: NaiveDate) {
    let mut week = start;
    while week <= today {
        let end = (week + Days::new(6)).min(today);
        for _ in 0..if rng.random_ratio(1, 4) { 3 } else { 2 } {
            let date = pick(rng, week, end);
            let amount = cents(rng, 1_800, 9_500).min(cents(rng, 1_800, 9_500));
            let shop = *SUPERMARKETS.choose(rng).expect("supermarkets");
            out.push(Planned::expense(date, "Groceries", shop, amount));
        }
        week = week + Days::new(7);
    }
}

/// Side income once a quarter, and the occasional large purchase.
fn plan_once_in_a_while(rng: &mut StdRng, out: &mut Vec<Planned>, start: NaiveDate) {
    for quarter in 0..4 {
        let date = start + Days::new(quarter * 90 + rng.random_range(10..80));
        let amount = cents(rng, 35_000, 120_000);
        let mut freelance = Planned::new(date, Kind::Deposit, "Freelance UX audit", amount);
        freelance.income = Some("freelance");
        out.push(freelance);
    }
    for ((early, late), budget, merchant, (low, high)) in OCCASIONAL {
        let date = start + Days::new(rng.random_range(early..=late));
        let amount = cents(rng, low, high);
        out.push(Planned::expense(date, budget, merchant, amount));
    }
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
    use super::super::BUDGETS;
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
