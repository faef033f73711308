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

use super::audit;

/// Every finance tool, for an engine.
pub fn all() -> Vec<Arc<dyn HostTool>> {
    vec![Arc::new(SaveGoal)]
}

/// What graphs are checked with.
pub fn specs() -> Vec<&'static ToolSpec> {
    vec![&SAVE_GOAL]
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

#[derive(Debug, Deserialize)]
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
            let args: GoalArgs = match serde_json::from_value(Value::Object(call.args)) {
                Ok(args) => args,
                Err(err) => return Ok(refused(format!("the goal's details are not usable: {err}"))),
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
    let today = chrono::Utc::now().date_naive();
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
