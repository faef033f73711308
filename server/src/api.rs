//! The HTTP API: every route under `/api` as one poem-openapi service, its OpenAPI document at
//! `/api/openapi.json`, Swagger UI at `/api/docs` (served from the binary), and the middleware
//! around them: request ids and logs, CORS, the body limit, problem+json errors.
//!
//! Identity comes only from the bearer token ([`auth::Auth`]). Routes that took a `user_id` in
//! the reference system still accept one, and answer 404 when it is not the caller's.

mod accounts;
mod analytics;
mod assistant;
mod audited;
mod auth;
mod budgets;
mod conversations;
mod goals;
mod graphs;
mod health;
mod idempotency;
mod import;
mod income;
mod input;
mod makers;
pub mod money;
mod notifications;
mod page;
pub mod problem;
mod request_log;
mod threads;
mod time_travel;
mod transactions;
mod users;

use std::sync::Arc;
use std::time::Duration;

use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};
use sqlx::PgPool;

pub use problem::ApiError;
pub(crate) use request_log::request_id;

/// How the application is set up; the binary fills it from the environment.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Origins allowed to call the API from a browser; none means no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a bearer token lasts after login.
    pub token_ttl: Duration,
    /// Login attempts allowed per email and minute; more get 429.
    pub logins_per_minute: u32,
    /// The assistant's graphs and models; without it the assistant's routes answer 503.
    pub assistant: Option<Arc<crate::assistant::Assistant>>,
    /// Threads and runs for API clients; without it `/api/threads` answers 503.
    pub runs: Option<Arc<crate::runs::Runs>>,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            cors_origins: Vec::new(),
            body_limit: 2 << 20,
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            logins_per_minute: 10,
            assistant: None,
            runs: None,
        }
    }
}

/// The response of a creating request.
#[derive(Debug, poem_openapi::ApiResponse)]
pub(crate) enum Created<T: poem_openapi::types::ToJSON + poem_openapi::types::Type> {
    /// Created (or, for a repeated `Idempotency-Key`, created before).
    #[oai(status = 201)]
    Created(poem_openapi::payload::Json<T>),
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) db: PgPool,
    pub(crate) token_ttl: Duration,
    /// Login attempts, per email.
    pub(crate) logins: Arc<governor::DefaultKeyedRateLimiter<String>>,
    pub(crate) assistant: Option<Arc<crate::assistant::Assistant>>,
    pub(crate) runs: Option<Arc<crate::runs::Runs>>,
}

impl Ctx {
    /// The threads and runs of API clients, or 503 when the server has none.
    pub(crate) fn runs(&self) -> Result<&Arc<crate::runs::Runs>, ApiError> {
        self.runs
            .as_ref()
            .ok_or(ApiError::AssistantUnavailable { retry_after: 30 })
    }

    fn new(db: PgPool, config: &ApiConfig) -> Ctx {
        Ctx {
            db,
            token_ttl: config.token_ttl,
            logins: crate::limits::per_minute(config.logins_per_minute),
            assistant: config.assistant.clone(),
            runs: config.runs.clone(),
        }
    }
}

/// The groups of routes, as the OpenAPI document tags them.
#[derive(Debug, Tags)]
pub(crate) enum Tag {
    /// Liveness and database reachability.
    Health,
    /// Registration, login and logout.
    Auth,
    /// The caller's profile.
    Users,
    /// Expenses, deposits and transfers.
    Transactions,
    /// Monthly budgets.
    Budgets,
    /// Savings goals.
    Goals,
    /// Accounts and transfers between them.
    Accounts,
    /// Income sources, one-off or recurring.
    Income,
    /// Spending and income figures.
    Analytics,
    /// Budget alerts.
    Notifications,
    /// Conversations with the assistant and their messages.
    Conversations,
    /// The assistant: messages answered by its agents.
    Assistant,
    /// Threads and runs of the graphs, streamed, interrupted and resumed.
    Threads,
    /// The graphs threads run: versions, sources, drawings, diagnostics, reloads.
    Graphs,
}

type Apis = (
    (health::HealthApi, auth::AuthApi, users::UsersApi),
    (
        transactions::TransactionsApi,
        import::ImportApi,
        budgets::BudgetsApi,
    ),
    (goals::GoalsApi, accounts::AccountsApi, income::IncomeApi),
    (
        analytics::AnalyticsApi,
        notifications::NotificationsApi,
        conversations::ConversationsApi,
    ),
    (
        assistant::AssistantApi,
        makers::MakersApi,
        threads::ThreadsApi,
        time_travel::TimeTravelApi,
        graphs::GraphsApi,
    ),
);

fn service(ctx: Ctx) -> OpenApiService<Apis, ()> {
    let apis = (
        (
            health::HealthApi(ctx.clone()),
            auth::AuthApi(ctx.clone()),
            users::UsersApi(ctx.clone()),
        ),
        (
            transactions::TransactionsApi(ctx.clone()),
            import::ImportApi(ctx.clone()),
            budgets::BudgetsApi(ctx.clone()),
        ),
        (
            goals::GoalsApi(ctx.clone()),
            accounts::AccountsApi(ctx.clone()),
            income::IncomeApi(ctx.clone()),
        ),
        (
            analytics::AnalyticsApi(ctx.clone()),
            notifications::NotificationsApi(ctx.clone()),
            conversations::ConversationsApi(ctx.clone()),
        ),
        (
            assistant::AssistantApi(ctx.clone()),
            makers::MakersApi(ctx.clone()),
            threads::ThreadsApi(ctx.clone()),
            time_travel::TimeTravelApi(ctx.clone()),
            graphs::GraphsApi(ctx),
        ),
    );
    OpenApiService::new(apis, "Finch", env!("CARGO_PKG_VERSION"))
        .description(
            "The personal-finance API of Finch. Authenticate with `POST /api/auth/login` and send \
             the token as `Authorization: Bearer …`. Errors are RFC 9457 problem details.",
        )
        .server("/api")
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi_json() -> String {
    let db = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://localhost/unused")
        .expect("a lazy pool never connects");
    service(Ctx::new(db, &ApiConfig::default())).spec()
}

/// The whole HTTP application over `db`.
pub fn app(db: PgPool, config: &ApiConfig) -> impl Endpoint<Output = poem::Response> + 'static {
    let ctx = Ctx::new(db, config);
    let api = service(ctx.clone());
    let routes = Route::new()
        .nest("/api/docs", api.swagger_ui())
        .at("/api/openapi.json", api.spec_endpoint())
        .nest("/api", api);
    let mut cors = Cors::new().allow_credentials(false);
    for origin in &config.cors_origins {
        cors = cors.allow_origin(origin.as_str());
    }
    routes
        .with_if(!config.cors_origins.is_empty(), cors)
        .catch_all_error(|err| async move { problem::from_poem(err) })
        .data(ctx)
        .data(input::BodyLimit(config.body_limit))
        .around(request_log::log)
}
