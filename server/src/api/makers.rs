//! The makers: `POST /api/personal_assistant/goals/assist`, `…/budget/assist` and
//! `…/transaction/assist` put a goal, a budget or an expense together over several messages of
//! a conversation (the `goal_maker`, `budget_maker` or `transaction_maker` graph, each on a
//! thread of its own), ask the user to confirm when it is complete, and save it only on yes.
//!
//! A confirmation is answered with `confirm: true|false`, or with a plain yes or no in
//! `user_request`; anything else sets the pending goal aside and is read as a change to it.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::assistant::{admitted, history, message, turn_error};
use super::auth::Auth;
use super::conversations::{self, ContentType, Sender};
use super::input::Input;
use super::{ApiError, Ctx, Tag};
use crate::assistant::{Assistant, Turn, TurnError};
use engine::store::StoreError;
use engine::worker::WorkerError;

/// A maker graph, the agent its messages are stored as, and the keys of its draft (in its
/// output and its question) and of what it saved (in `saved`).
#[derive(Debug)]
pub(super) struct Maker {
    graph: &'static str,
    pub(super) agent: &'static str,
    draft: &'static str,
    saved: &'static str,
}

const GOAL_MAKER: Maker = Maker {
    graph: "goal_maker",
    agent: "GoalMaker",
    draft: "goal",
    saved: "goal",
};
const BUDGET_MAKER: Maker = Maker {
    graph: "budget_maker",
    agent: "BudgetMaker",
    draft: "budget",
    saved: "budget",
};
const TRANSACTION_MAKER: Maker = Maker {
    graph: "transaction_maker",
    agent: "TransactionMaker",
    draft: "expense",
    saved: "transaction",
};
const MAKERS: [&Maker; 3] = [&GOAL_MAKER, &BUDGET_MAKER, &TRANSACTION_MAKER];

/// The maker whose graph is `graph`.
pub(super) fn maker(graph: &str) -> Option<&'static Maker> {
    MAKERS.into_iter().find(|maker| maker.graph == graph)
}

/// What a maker's turn said, for a client that is not the maker's own: the message (the
/// question, when it waits for a yes or no), and what was saved.
#[derive(Debug)]
pub(super) struct Said {
    pub(super) message: String,
    /// The question waiting for a yes or no, if any.
    pub(super) confirmation: Option<String>,
    pub(super) saved: Option<Value>,
}

impl Maker {
    pub(super) fn said(&self, turn: Turn) -> Said {
        let (message, _, saved, confirmation) = outcome(turn, self.draft);
        Said {
            message,
            confirmation,
            saved: saved.map(|saved| saved[self.saved].clone()),
        }
    }
}

pub(crate) struct MakersApi(pub(crate) Ctx);

#[derive(Debug, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssistRequest {
    /// What the user says.
    user_request: String,
    /// The conversation to continue; a new one is started without it.
    conversation_id: Option<i64>,
    /// Accepted for the reference's clients; must be the caller's own id.
    user_id: Option<i64>,
    /// The answer to a pending confirmation, when the client asks it with buttons.
    confirm: Option<bool>,
}

#[derive(Debug, Object)]
pub(crate) struct GoalAssist {
    conversation_id: i64,
    /// What the assistant says: a question, the confirmation to answer, or what was saved.
    message: String,
    /// `create` or `update`.
    action: Option<String>,
    goal_name: Option<String>,
    /// The saved goal's id, once saved.
    goal_id: Option<i64>,
    /// Decimal string.
    target: Option<String>,
    goal_description: Option<String>,
    due_date: Option<String>,
    plan: Option<String>,
    /// True once the goal is saved.
    is_done: bool,
    /// The yes-or-no question waiting for an answer, when the goal is ready to save.
    confirmation: Option<String>,
    /// The goal as saved.
    goal: Option<Value>,
}

#[derive(Debug, Object)]
pub(crate) struct BudgetAssist {
    conversation_id: i64,
    /// What the assistant says: a question, the confirmation to answer, or what was saved.
    message: String,
    /// `create` or `update`.
    action: Option<String>,
    budget_name: Option<String>,
    /// The saved budget's id, once saved.
    budget_id: Option<i64>,
    /// The monthly limit, a decimal string.
    total_limit: Option<String>,
    description: Option<String>,
    priority_level_int: Option<i64>,
    /// True once the budget is saved.
    is_done: bool,
    /// The yes-or-no question waiting for an answer, when the budget is ready to save.
    confirmation: Option<String>,
    /// The budget as saved.
    budget: Option<Value>,
}

#[derive(Debug, Object)]
pub(crate) struct TransactionAssist {
    conversation_id: i64,
    /// What the assistant says: a question, the confirmation to answer, or what was recorded.
    message: String,
    /// A decimal string.
    amount: Option<String>,
    /// The expense's budget, once recorded.
    budget_id: Option<i64>,
    budget_name: Option<String>,
    /// What was bought, or the merchant.
    store_name: Option<String>,
    date: Option<String>,
    city: Option<String>,
    neighbourhood: Option<String>,
    /// True once the expense is recorded.
    is_done: bool,
    /// The yes-or-no question waiting for an answer, when the expense is ready to record.
    confirmation: Option<String>,
    /// The transaction as recorded.
    transaction: Option<Value>,
}

#[OpenApi(tag = "Tag::Assistant")]
impl MakersApi {
    /// Helps the user put a saving goal together; saves it once they confirm.
    #[oai(path = "/personal_assistant/goals/assist", method = "post")]
    async fn goals(&self, auth: Auth, body: Input<AssistRequest>) -> Result<Json<GoalAssist>, ApiError> {
        let user = auth.0.user_id;
        let (conversation, turn) = self.assist(&auth, body.value, &GOAL_MAKER).await?;
        let reply = goal_assist(conversation, turn);
        let data = json!({ "goal": reply.goal, "confirmation": reply.confirmation });
        self.record(user, conversation, &GOAL_MAKER, &reply.message, data)
            .await?;
        Ok(Json(reply))
    }

    /// Helps the user put a monthly budget together; saves it once they confirm.
    #[oai(path = "/personal_assistant/budget/assist", method = "post")]
    async fn budget(&self, auth: Auth, body: Input<AssistRequest>) -> Result<Json<BudgetAssist>, ApiError> {
        let user = auth.0.user_id;
        let (conversation, turn) = self.assist(&auth, body.value, &BUDGET_MAKER).await?;
        let reply = budget_assist(conversation, turn);
        let data = json!({ "budget": reply.budget, "confirmation": reply.confirmation });
        self.record(user, conversation, &BUDGET_MAKER, &reply.message, data)
            .await?;
        Ok(Json(reply))
    }

    /// Helps the user record an expense; records it, through the ledger, once they confirm.
    #[oai(path = "/personal_assistant/transaction/assist", method = "post")]
    async fn transaction(
        &self,
        auth: Auth,
        body: Input<AssistRequest>,
    ) -> Result<Json<TransactionAssist>, ApiError> {
        let user = auth.0.user_id;
        let (conversation, turn) = self.assist(&auth, body.value, &TRANSACTION_MAKER).await?;
        let reply = transaction_assist(conversation, turn);
        let data = json!({ "transaction": reply.transaction, "confirmation": reply.confirmation });
        self.record(user, conversation, &TRANSACTION_MAKER, &reply.message, data)
            .await?;
        Ok(Json(reply))
    }
}

impl MakersApi {
    /// One turn of `maker`: the user's message stored, then [`turn`].
    async fn assist(
        &self,
        auth: &Auth,
        request: AssistRequest,
        maker: &Maker,
    ) -> Result<(i64, Turn), ApiError> {
        let user = auth.0.user_id;
        auth.0.check(request.user_id, "user")?;
        let said = message("user_request", &request.user_request, request.confirm.is_some())?;
        let assistant = admitted(&self.0, user)?;
        let conversation = self.conversation(user, request.conversation_id).await?;
        if !said.is_empty() {
            let mut conn = self.0.db.acquire().await?;
            let sender = (Sender::User, "User");
            conversations::add(
                &mut conn,
                user,
                conversation,
                sender,
                said,
                ContentType::Text,
                None,
                None,
            )
            .await?;
        }
        let turn = turn(
            &self.0,
            assistant,
            user,
            conversation,
            maker,
            said,
            request.confirm,
        )
        .await?;
        Ok((conversation, turn))
    }

    /// Stores the maker's answer in the conversation.
    async fn record(
        &self,
        user: i64,
        conversation: i64,
        maker: &Maker,
        message: &str,
        data: Value,
    ) -> Result<(), ApiError> {
        let mut conn = self.0.db.acquire().await?;
        let sender = (Sender::Assistant, maker.agent);
        conversations::add(
            &mut conn,
            user,
            conversation,
            sender,
            message,
            ContentType::Text,
            Some(data),
            None,
        )
        .await?;
        Ok(())
    }

    /// The caller's conversation `id`, or a new one.
    async fn conversation(&self, user: i64, id: Option<i64>) -> Result<i64, ApiError> {
        let found: Option<i64> = match id {
            Some(id) => {
                sqlx::query_scalar("SELECT id FROM conversations WHERE user_id = $1 AND id = $2")
                    .bind(user)
                    .bind(id)
                    .fetch_optional(&self.0.db)
                    .await?
            }
            None => Some(
                sqlx::query_scalar("INSERT INTO conversations (user_id) VALUES ($1) RETURNING id")
                    .bind(user)
                    .fetch_one(&self.0.db)
                    .await?,
            ),
        };
        found.ok_or(ApiError::NotFound { what: "conversation" })
    }
}

/// One turn of `maker` in `conversation`, whose messages end with what the user `said`:
/// the pending confirmation answered (or set aside when `said` is neither yes nor no), the
/// graph run, and what it now waits for remembered.
pub(super) async fn turn(
    ctx: &Ctx,
    assistant: &Assistant,
    user: i64,
    conversation: i64,
    maker: &Maker,
    said: &str,
    confirm: Option<bool>,
) -> Result<Turn, ApiError> {
    let (thread, pending) = thread(ctx, assistant, user, conversation, maker).await?;
    let mut conn = ctx.db.acquire().await?;
    let history = history(&mut conn, user, conversation).await?;
    drop(conn);
    let turn = match pending {
        Some((run, interrupt)) => {
            // The question is answered (or set aside) now, whatever happens next: a turn
            // that fails after this must not leave a question that no run waits on.
            sqlx::query(
                "UPDATE conversation_threads SET pending_run = NULL, pending_interrupt = NULL
                 WHERE conversation_id = $1 AND graph = $2 AND pending_run = $3",
            )
            .bind(conversation)
            .bind(maker.graph)
            .bind(run)
            .execute(&ctx.db)
            .await?;
            let answer = confirm.or_else(|| yes_or_no(said));
            let confirmed = json!({ "confirmed": answer.unwrap_or(false) });
            match assistant.answer(run, &interrupt, confirmed).await {
                Ok(turn) if answer.is_some() => Ok(turn),
                // Neither yes nor no: the pending one is set aside, the message read as a change.
                Ok(_) => assistant.run(user, thread, history).await,
                // The run no longer waits (answered by a request that failed later): start afresh.
                Err(TurnError::Engine(WorkerError::Store(
                    StoreError::WrongStatus { .. } | StoreError::NoRun(_),
                ))) => assistant.run(user, thread, history).await,
                Err(err) => Err(err),
            }
        }
        None => assistant.run(user, thread, history).await,
    }
    .map_err(turn_error)?;
    let pending = match &turn {
        Turn::Asking { run, interrupt, .. } => Some((*run, interrupt.clone())),
        Turn::Done(_) => None,
    };
    sqlx::query(
        "UPDATE conversation_threads SET pending_run = $3, pending_interrupt = $4
         WHERE conversation_id = $1 AND graph = $2",
    )
    .bind(conversation)
    .bind(maker.graph)
    .bind(pending.as_ref().map(|(run, _)| *run))
    .bind(pending.as_ref().map(|(_, interrupt)| interrupt.as_str()))
    .execute(&ctx.db)
    .await?;
    Ok(turn)
}

/// The maker whose confirmation question `said` answers: the conversation's last answer must
/// be that question (a maker's message holding a `confirmation`), and its run still waiting.
/// A question left unanswered while the conversation went elsewhere is not answered by a
/// later "ok".
pub(super) async fn awaiting(
    ctx: &Ctx,
    user: i64,
    conversation: i64,
    said: &str,
) -> Result<Option<&'static Maker>, ApiError> {
    if yes_or_no(said).is_none() {
        return Ok(None);
    }
    let last: Option<(String, bool)> = sqlx::query_as(
        "SELECT agent, coalesce(jsonb_typeof(data -> 'confirmation') = 'string', false) FROM messages
         WHERE user_id = $1 AND conversation_id = $2 AND sender = 'assistant'
         ORDER BY id DESC LIMIT 1",
    )
    .bind(user)
    .bind(conversation)
    .fetch_optional(&ctx.db)
    .await?;
    let Some(maker) = last
        .filter(|(_, asks)| *asks)
        .and_then(|(agent, _)| MAKERS.into_iter().find(|maker| maker.agent == agent))
    else {
        return Ok(None);
    };
    let waiting: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM conversation_threads
                        WHERE conversation_id = $1 AND graph = $2 AND pending_run IS NOT NULL)",
    )
    .bind(conversation)
    .bind(maker.graph)
    .fetch_one(&ctx.db)
    .await?;
    Ok(waiting.then_some(maker))
}

/// The maker's thread of the conversation (made on first use) and the run of it
/// waiting for a confirmation, if any.
async fn thread(
    ctx: &Ctx,
    assistant: &Assistant,
    user: i64,
    conversation: i64,
    maker: &Maker,
) -> Result<(Uuid, Option<(Uuid, String)>), ApiError> {
    let row: Option<(Uuid, Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT thread_id, pending_run, pending_interrupt FROM conversation_threads
         WHERE conversation_id = $1 AND graph = $2",
    )
    .bind(conversation)
    .bind(maker.graph)
    .fetch_optional(&ctx.db)
    .await?;
    if let Some((thread, run, interrupt)) = row {
        return Ok((thread, run.zip(interrupt)));
    }
    let created = assistant
        .new_thread(maker.graph, user, conversation)
        .await
        .map_err(turn_error)?;
    // Two first messages at once: the first row wins, the other thread stays unused.
    let thread: Uuid = sqlx::query_scalar(
        "INSERT INTO conversation_threads (user_id, conversation_id, graph, thread_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (conversation_id, graph) DO UPDATE SET graph = EXCLUDED.graph
         RETURNING thread_id",
    )
    .bind(user)
    .bind(conversation)
    .bind(maker.graph)
    .bind(created)
    .fetch_one(&ctx.db)
    .await?;
    Ok((thread, None))
}

/// A plain yes or no, in a few languages; `None` for anything else.
fn yes_or_no(said: &str) -> Option<bool> {
    let word = said
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace() || c == '¡' || c == '¿')
        .to_lowercase();
    match word.as_str() {
        "yes" | "y" | "yeah" | "yep" | "sure" | "ok" | "okay" | "confirm" | "go ahead" | "do it" | "sí"
        | "si" | "oui" | "ja" | "sim" => Some(true),
        "no" | "n" | "nope" | "cancel" | "stop" | "don't" | "non" | "nein" | "não" | "nao" => Some(false),
        _ => None,
    }
}

/// The reference's reply shape, from how the turn ended.
fn goal_assist(conversation: i64, turn: Turn) -> GoalAssist {
    let (message, draft, saved, confirmation) = outcome(turn, "goal");
    let goal = saved.as_ref().map(|saved| saved["goal"].clone());
    let fields = goal.clone().unwrap_or(draft);
    GoalAssist {
        conversation_id: conversation,
        message,
        action: text(saved.as_ref().map(|saved| &saved["action"])).or_else(|| text(fields.get("action"))),
        goal_name: text(fields.get("goal_name")).or_else(|| text(fields.get("name"))),
        goal_id: fields.get("goal_id").and_then(Value::as_i64),
        target: text(fields.get("target")),
        goal_description: text(fields.get("description")),
        due_date: text(fields.get("due_date")),
        plan: text(fields.get("plan")),
        is_done: saved.is_some(),
        confirmation,
        goal,
    }
}

/// The reference's reply shape for a budget, from how the turn ended.
fn budget_assist(conversation: i64, turn: Turn) -> BudgetAssist {
    let (message, draft, saved, confirmation) = outcome(turn, "budget");
    let budget = saved.as_ref().map(|saved| saved["budget"].clone());
    let fields = budget.clone().unwrap_or(draft);
    BudgetAssist {
        conversation_id: conversation,
        message,
        action: text(saved.as_ref().map(|saved| &saved["action"])).or_else(|| text(fields.get("action"))),
        budget_name: text(fields.get("budget_name")).or_else(|| text(fields.get("name"))),
        budget_id: fields.get("budget_id").and_then(Value::as_i64),
        total_limit: text(fields.get("total_limit")).or_else(|| text(fields.get("monthly_limit"))),
        description: text(fields.get("description")),
        priority_level_int: fields
            .get("priority_level_int")
            .or_else(|| fields.get("priority"))
            .and_then(Value::as_i64),
        is_done: saved.is_some(),
        confirmation,
        budget,
    }
}

/// The reference's reply shape for an expense, from how the turn ended.
fn transaction_assist(conversation: i64, turn: Turn) -> TransactionAssist {
    let (message, draft, saved, confirmation) = outcome(turn, "expense");
    let transaction = saved.as_ref().map(|saved| saved["transaction"].clone());
    let fields = transaction.clone().unwrap_or(draft);
    TransactionAssist {
        conversation_id: conversation,
        message,
        amount: text(fields.get("amount")),
        budget_id: fields.get("budget_id").and_then(Value::as_i64),
        budget_name: text(fields.get("budget_name")).or_else(|| text(fields.get("budget"))),
        store_name: text(fields.get("store_name")).or_else(|| text(fields.get("description"))),
        date: text(fields.get("date")),
        city: text(fields.get("city")),
        neighbourhood: text(fields.get("neighbourhood")),
        is_done: saved.is_some(),
        confirmation,
        transaction,
    }
}

/// What a maker's turn said, the draft it holds (`key` in its output), what it saved, and
/// the question it waits on.
fn outcome(turn: Turn, key: &str) -> (String, Value, Option<Value>, Option<String>) {
    match turn {
        Turn::Done(output) => (
            text(output.get("reply")).unwrap_or_default(),
            output.get(key).cloned().unwrap_or(Value::Null),
            output.get("saved").cloned().filter(|saved| saved["ok"] == true),
            None,
        ),
        Turn::Asking { payload, .. } => {
            let question = text(payload.get("question")).unwrap_or_default();
            (question.clone(), payload[key].clone(), None, Some(question))
        }
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}
