//! The finance tools of the assistant's graphs (`tool` nodes): they act for the run's user
//! (`context.user_id`, which only the server sets), in the step's transaction (so a write
//! happens once, with the step), check every argument, and leave an audit entry.
//!
//! A refusal the user should hear (a missing goal, an amount that is not money) is output,
//! `{ ok: false, error }`; only a broken run (no user in the context) fails the node.

use std::str::FromStr;
use std::sync::Arc;

use chrono::NaiveDate;
use engine::nodes::{HostCall, HostTool, ToolSpec};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::accounts::MoveError;
use super::audit;
use super::ledger::{self, Entry, Kind, LedgerError};

/// Every finance tool, for an engine.
pub fn all() -> Vec<Arc<dyn HostTool>> {
    vec![Arc::new(SaveGoal), Arc::new(SaveBudget), Arc::new(AddExpense)]
}

/// What graphs are checked with.
pub fn specs() -> Vec<&'static ToolSpec> {
    vec![&SAVE_GOAL, &SAVE_BUDGET, &ADD_EXPENSE]
}

static SAVE_GOAL: ToolSpec = ToolSpec {
    name: "save_goal",
    description: "Creates a saving goal for the user, or updates the one named `current_name`; \
                  `{ ok, goal }` or `{ ok: false, error }`.",
    required: &["action", "name", "target"],
    optional: &["due_date", "description", "plan", "current_name"],
    open: false,
    echoes_args: false,
    object_output: true,
};

#[derive(Debug)]
struct SaveGoal;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Create,
    Update,
}

#[derive(Debug, Deserialize)]
struct GoalArgs {
    action: Action,
    name: String,
    target: Value,
    due_date: Option<NaiveDate>,
    description: Option<String>,
    plan: Option<String>,
    current_name: Option<String>,
}

impl HostTool for SaveGoal {
    fn spec(&self) -> &'static ToolSpec {
        &SAVE_GOAL
    }

    fn call<'a>(&'a self, call: HostCall<'a>) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let user = user(call.context)?;
            let args: GoalArgs = match arguments(call.args, "goal") {
                Ok(args) => args,
                Err(refusal) => return Ok(refusal),
            };
            save_goal(call.tx, user, args)
                .await
                .map_err(|err| err.to_string())
        })
    }
}

async fn save_goal(tx: &mut PgConnection, user: i64, args: GoalArgs) -> sqlx::Result<Value> {
    let name = args.name.trim();
    if name.is_empty() {
        return Ok(refused("the goal needs a name"));
    }
    let Some(target) = money(&args.target).filter(|target| *target > Decimal::ZERO) else {
        return Ok(refused(
            "the target must be a positive amount with at most two decimals",
        ));
    };
    // The database's today: a new goal starts on it, and `due_date >= start_date` holds.
    let today: NaiveDate = sqlx::query_scalar("SELECT current_date")
        .fetch_one(&mut *tx)
        .await?;
    if args.due_date.is_some_and(|due| due < today) {
        return Ok(refused("the due date is in the past"));
    }
    let row: Option<(i64, Decimal, Decimal, Option<NaiveDate>, String)> = match args.action {
        Action::Create => Some(
            sqlx::query_as(
                "INSERT INTO goals (user_id, name, target, description, plan, due_date)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING id, target, saved, due_date, status",
            )
            .bind(user)
            .bind(name)
            .bind(target)
            .bind(&args.description)
            .bind(&args.plan)
            .bind(args.due_date)
            .fetch_one(&mut *tx)
            .await?,
        ),
        Action::Update => {
            let current = args.current_name.as_deref().unwrap_or(name).trim();
            sqlx::query_as(
                "UPDATE goals SET name = $3, target = $4, description = coalesce($5, description),
                        plan = coalesce($6, plan), due_date = coalesce($7, due_date), updated_at = now()
                 WHERE id = (SELECT id FROM goals WHERE user_id = $1 AND lower(name) = lower($2)
                             AND status = 'active' ORDER BY id LIMIT 1)
                 RETURNING id, target, saved, due_date, status",
            )
            .bind(user)
            .bind(current)
            .bind(name)
            .bind(target)
            .bind(&args.description)
            .bind(&args.plan)
            .bind(args.due_date)
            .fetch_optional(&mut *tx)
            .await?
        }
    };
    let Some((id, target, saved, due_date, status)) = row else {
        return Ok(refused("there is no active goal of that name to update"));
    };
    let action = match args.action {
        Action::Create => "create",
        Action::Update => "update",
    };
    audit::record(
        &mut *tx,
        user,
        action,
        "goal",
        Some(id),
        json!({ "by": "assistant" }),
    )
    .await?;
    Ok(json!({
        "ok": true,
        "action": action,
        "goal": {
            "goal_id": id,
            "goal_name": name,
            "target": format!("{target:.2}"),
            "saved_amount": format!("{saved:.2}"),
            "due_date": due_date,
            "description": args.description,
            "plan": args.plan,
            "status": status,
        },
    }))
}

static SAVE_BUDGET: ToolSpec = ToolSpec {
    name: "save_budget",
    description: "Creates a monthly budget for the user, or updates the active one named `current_name`; \
                  `{ ok, budget }` or `{ ok: false, error }`.",
    required: &["action", "name", "monthly_limit"],
    optional: &["priority", "description", "current_name"],
    open: false,
    echoes_args: false,
    object_output: true,
};

#[derive(Debug)]
struct SaveBudget;

#[derive(Debug, Deserialize)]
struct BudgetArgs {
    action: Action,
    name: String,
    monthly_limit: Value,
    priority: Option<i16>,
    description: Option<String>,
    current_name: Option<String>,
}

impl HostTool for SaveBudget {
    fn spec(&self) -> &'static ToolSpec {
        &SAVE_BUDGET
    }

    fn call<'a>(&'a self, call: HostCall<'a>) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let user = user(call.context)?;
            let args: BudgetArgs = match arguments(call.args, "budget") {
                Ok(args) => args,
                Err(refusal) => return Ok(refusal),
            };
            save_budget(call.tx, user, args)
                .await
                .map_err(|err| err.to_string())
        })
    }
}

/// Checks first what a constraint would refuse: an error would abort the step's transaction.
async fn save_budget(tx: &mut PgConnection, user: i64, args: BudgetArgs) -> sqlx::Result<Value> {
    let name = args.name.trim();
    if name.is_empty() {
        return Ok(refused("the budget needs a name"));
    }
    let Some(limit) = money(&args.monthly_limit).filter(|limit| *limit >= Decimal::ZERO) else {
        return Ok(refused(
            "the monthly limit must be an amount with at most two decimals",
        ));
    };
    if args
        .priority
        .is_some_and(|priority| !(1..=10).contains(&priority))
    {
        return Ok(refused("the priority goes from 1 to 10"));
    }
    let current = args.current_name.as_deref().unwrap_or(name).trim();
    let existing: Option<i64> = match args.action {
        Action::Create => None,
        Action::Update => {
            let found = sqlx::query_scalar(
                "SELECT id FROM budgets WHERE user_id = $1 AND active AND lower(name) = lower($2)",
            )
            .bind(user)
            .bind(current)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Ok(refused("there is no active budget of that name to update"));
            }
            found
        }
    };
    let write = match existing {
        None => sqlx::query_as(
            "INSERT INTO budgets (user_id, name, monthly_limit, priority, description)
             VALUES ($1, $2, $3, $4, $5) RETURNING id, monthly_limit, priority, description",
        )
        .bind(user),
        Some(id) => sqlx::query_as(
            "UPDATE budgets SET name = $2, monthly_limit = $3, priority = coalesce($4, priority),
                    description = coalesce($5, description), updated_at = now()
             WHERE id = $1 RETURNING id, monthly_limit, priority, description",
        )
        .bind(id),
    };
    // In a savepoint: a name another active budget has (even one made a moment ago by another
    // request) is a refusal, and the step's transaction goes on.
    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
    let written: sqlx::Result<(i64, Decimal, Option<i16>, Option<String>)> = write
        .bind(name)
        .bind(limit)
        .bind(args.priority)
        .bind(&args.description)
        .fetch_one(&mut *savepoint)
        .await;
    let row = match written {
        Err(sqlx::Error::Database(err)) if err.constraint() == Some("budgets_name") => {
            savepoint.rollback().await?;
            return Ok(refused("there is already an active budget of that name"));
        }
        written => written?,
    };
    savepoint.commit().await?;
    let (id, limit, priority, description) = row;
    let action = if existing.is_some() { "update" } else { "create" };
    audit::record(
        &mut *tx,
        user,
        action,
        "budget",
        Some(id),
        json!({ "by": "assistant" }),
    )
    .await?;
    Ok(json!({
        "ok": true,
        "action": action,
        "budget": {
            "budget_id": id,
            "budget_name": name,
            "total_limit": format!("{limit:.2}"),
            "priority_level_int": priority,
            "description": description,
        },
    }))
}

static ADD_EXPENSE: ToolSpec = ToolSpec {
    name: "add_expense",
    description: "Records an expense for the user through the ledger (the account's balance and the \
                  budget's alerts follow); `{ ok, transaction }` or `{ ok: false, error }`.",
    required: &["amount", "description"],
    optional: &["date", "budget", "city", "neighbourhood", "account"],
    open: false,
    echoes_args: false,
    object_output: true,
};

#[derive(Debug)]
struct AddExpense;

#[derive(Debug, Deserialize)]
struct ExpenseArgs {
    amount: Value,
    description: String,
    date: Option<NaiveDate>,
    /// The budget's name.
    budget: Option<String>,
    city: Option<String>,
    neighbourhood: Option<String>,
    /// The account's name; the user's first regular account without one.
    account: Option<String>,
}

impl HostTool for AddExpense {
    fn spec(&self) -> &'static ToolSpec {
        &ADD_EXPENSE
    }

    fn call<'a>(&'a self, call: HostCall<'a>) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let user = user(call.context)?;
            let args: ExpenseArgs = match arguments(call.args, "expense") {
                Ok(args) => args,
                Err(refusal) => return Ok(refusal),
            };
            add_expense(call.tx, user, args)
                .await
                .map_err(|err| err.to_string())
        })
    }
}

/// Runs in a savepoint of the step's transaction: the ledger leaves a half-made change
/// behind when it refuses (too little money), and that must not commit with the step.
async fn add_expense(tx: &mut PgConnection, user: i64, args: ExpenseArgs) -> sqlx::Result<Value> {
    let Some(amount) = money(&args.amount).filter(|amount| *amount > Decimal::ZERO) else {
        return Ok(refused("the amount must be positive, with at most two decimals"));
    };
    let today = chrono::Utc::now().date_naive();
    let date = args.date.unwrap_or(today);
    if date > today {
        return Ok(refused("the date is in the future"));
    }
    let budget: Option<(i64, String)> = match args.budget.as_deref().map(str::trim).filter(|b| !b.is_empty())
    {
        None => None,
        Some(name) => {
            let found = sqlx::query_as(
                "SELECT id, name FROM budgets WHERE user_id = $1 AND active AND lower(name) = lower($2)",
            )
            .bind(user)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                Some(found) => Some(found),
                None => return Ok(refused(format!("there is no active budget called \"{name}\""))),
            }
        }
    };
    let account: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, name FROM accounts WHERE user_id = $1 AND active
           AND (lower(name) = lower($2) OR ($2 IS NULL AND kind = 'regular'))
         ORDER BY id LIMIT 1",
    )
    .bind(user)
    .bind(args.account.as_deref().map(str::trim))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((account, account_name)) = account else {
        return Ok(refused("there is no such account"));
    };
    let entry = Entry {
        kind: Kind::Expense,
        date,
        amount,
        description: Some(args.description.trim().to_owned()).filter(|d| !d.is_empty()),
        city: args.city.clone(),
        neighbourhood: args.neighbourhood.clone(),
        tags: Vec::new(),
        budget_id: budget.as_ref().map(|(id, _)| *id),
        account_id: Some(account),
        transfer_to_id: None,
        income_id: None,
        import_id: None,
    };
    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
    let id = match ledger::insert(&mut savepoint, user, &entry, today).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            savepoint.rollback().await?;
            return Ok(refused("that expense is already recorded"));
        }
        Err(LedgerError::Database(err)) => return Err(err),
        Err(LedgerError::Move(MoveError::Database(err))) => return Err(err),
        Err(err) => {
            savepoint.rollback().await?;
            // In the user's words: accounts by name, never by id.
            let why = match err {
                LedgerError::Move(MoveError::InsufficientFunds { balance, needed, .. }) => {
                    format!("the {account_name} account holds {balance:.2}, less than {needed:.2}")
                }
                LedgerError::Move(MoveError::NoAccount(_)) => "there is no such account".to_owned(),
                err => err.to_string(),
            };
            return Ok(refused(why));
        }
    };
    audit::record(
        &mut savepoint,
        user,
        "create",
        "transaction",
        Some(id),
        json!({ "by": "assistant" }),
    )
    .await?;
    savepoint.commit().await?;
    Ok(json!({
        "ok": true,
        "transaction": {
            "transaction_id": id,
            "amount": format!("{amount:.2}"),
            "date": date,
            "store_name": entry.description,
            "budget_id": budget.as_ref().map(|(id, _)| *id),
            "budget_name": budget.map(|(_, name)| name),
            "account": account_name,
            "city": entry.city,
            "neighbourhood": entry.neighbourhood,
        },
    }))
}

/// A tool's arguments, or the refusal to hand back when the model's are not usable.
/// The tool's arguments, or a refusal naming the argument that does not fit (not the
/// deserializer's wording, which the model would pass on to the user).
fn arguments<T: serde::de::DeserializeOwned>(
    args: serde_json::Map<String, Value>,
    what: &str,
) -> Result<T, Value> {
    serde_path_to_error::deserialize(Value::Object(args)).map_err(|err| {
        let field = err.path().to_string();
        let detail = match err.inner().to_string() {
            inner if inner.starts_with("missing field") => inner.replace("missing field", "it needs"),
            _ if field == "." => "they are not a set of named values".to_owned(),
            _ => format!("`{field}` is not usable"),
        };
        refused(format!("the {what}'s details: {detail}"))
    })
}

/// The run's user: the server puts it in the context from the login.
fn user(context: &engine::run::State) -> Result<i64, String> {
    context
        .get("user_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| "the run has no `user_id` in its context".to_owned())
}

/// An amount of money: a decimal text or number with at most two decimals.
fn money(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    let amount = Decimal::from_str(&text).ok()?;
    (amount.scale() <= 2 && amount.abs() < Decimal::new(1_000_000_000_000, 0)).then_some(amount)
}

fn refused(error: impl Into<String>) -> Value {
    json!({ "ok": false, "error": error.into() })
}
