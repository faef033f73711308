//! Money under pressure: concurrent transfers, budget alerts, recurring income, bank imports
//! and the demo data.

use chrono::{Datelike, Days, NaiveDate};
use poem::http::Method;
use serde_json::json;
use server::finance;
use sqlx::PgPool;

use super::{Api, User, today};

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_transfers_never_overdraw(pool: PgPool) {
    let api = Api::new(pool);
    let ada = api.register("ada@example.com").await;
    api.fund(&ada, ada.regular, "100.00").await;
    let body = json!({"from_account_id": ada.regular, "to_account_id": ada.savings, "amount": "7.00"});
    let replies = futures::future::join_all(
        (0..30).map(|_| api.post("/api/database/accounts/transfer", &ada, body.clone())),
    )
    .await;
    let done = replies.iter().filter(|r| r.status == 201).count();
    let refused = replies
        .iter()
        .filter(|r| r.status == 409 && r.json["code"] == "insufficient_funds")
        .count();
    assert_eq!(
        (done, refused),
        (14, 16),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(api.balance(&ada, ada.regular).await, "2.00");
    assert_eq!(api.balance(&ada, ada.savings).await, "98.00");
}

#[sqlx::test(migrations = "../migrations")]
async fn budget_alerts_fire_once_at_80_and_once_at_100_percent(pool: PgPool) {
    let api = Api::new(pool);
    let ada = api.register("ada@example.com").await;
    let budget = api
        .post(
            "/api/database/budget",
            &ada,
            json!({"budget_name": "Fun", "total_limit": "100"}),
        )
        .await
        .json["budget"]["budget_id"]
        .clone();
    let mut seen = Vec::new();
    for amount in ["50", "30", "5", "20", "10"] {
        let reply = api
            .post(
                "/api/database/transactions",
                &ada,
                json!({"date": today(), "amount": amount, "budget_id": budget}),
            )
            .await;
        assert_eq!(reply.status, 201);
        seen.push(notification_kinds(&api, &ada).await);
    }
    assert_eq!(seen[0], Vec::<String>::new());
    assert_eq!(seen[1], ["budget_warning"]);
    assert_eq!(seen[2], ["budget_warning"]);
    assert_eq!(seen[3], ["budget_exceeded", "budget_warning"]);
    assert_eq!(seen[4], ["budget_exceeded", "budget_warning"]);
    let first = api.get("/api/notifications", &ada).await.json[0]["notification_id"].clone();
    let read = api
        .call(
            Method::PUT,
            &format!("/api/notifications/{first}/read"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!((read.status, read.json["is_read"].as_bool()), (200, Some(true)));
    let unread = api.get("/api/notifications?unread=true", &ada).await;
    assert_eq!(unread.json.as_array().map(Vec::len), Some(1));
    // Last month's spending is history, not an alert.
    let last_month = chrono::Utc::now().date_naive().with_day(1).unwrap() - Days::new(1);
    let other = api
        .post(
            "/api/database/budget",
            &ada,
            json!({"budget_name": "Old", "total_limit": "1"}),
        )
        .await
        .json["budget"]["budget_id"]
        .clone();
    api.post(
        "/api/database/transactions",
        &ada,
        json!({"date": last_month, "amount": "5", "budget_id": other}),
    )
    .await;
    assert_eq!(
        api.get("/api/notifications", &ada)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_expenses_raise_each_alert_once(pool: PgPool) {
    let api = Api::new(pool);
    let ada = api.register("ada@example.com").await;
    let budget = api
        .post(
            "/api/database/budget",
            &ada,
            json!({"budget_name": "Fun", "total_limit": "100"}),
        )
        .await
        .json["budget"]["budget_id"]
        .clone();
    let body = json!({"date": today(), "amount": "9", "budget_id": budget});
    futures::future::join_all((0..15).map(|_| api.post("/api/database/transactions", &ada, body.clone())))
        .await;
    assert_eq!(
        notification_kinds(&api, &ada).await,
        ["budget_exceeded", "budget_warning"]
    );
}

/// The kinds of `user`'s notifications, newest first.
async fn notification_kinds(api: &Api, user: &User) -> Vec<String> {
    let notifications = api.get("/api/notifications", user).await.json;
    let list = notifications.as_array().expect("a list");
    list.iter()
        .map(|n| n["notification_type"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn recurring_income_is_credited_once_per_due_date(pool: PgPool) {
    let api = Api::new(pool.clone());
    let ada = api.register("ada@example.com").await;
    let today = chrono::Utc::now().date_naive();
    let income = api
        .post("/api/database/income", &ada, json!({"type_income": "salary", "amount": "1000", "account_id": ada.regular, "payment_day": today.day()}))
        .await;
    assert_eq!(income.status, 201, "{:?}", income.json);
    assert_eq!(
        api.balance(&ada, ada.regular).await,
        "1000.00",
        "due today: credited at once"
    );
    let next: NaiveDate = serde_json::from_value(income.json["income"]["next_payment_date"].clone()).unwrap();
    assert_eq!(
        next,
        finance::income::next_due(today.day(), today.succ_opt().unwrap()),
        "the response shows the next due date"
    );

    // However often and however concurrently it runs, today is credited once.
    let runs = futures::future::join_all((0..4).map(|_| finance::income::credit_due(&pool, today))).await;
    assert!(runs.iter().all(|run| matches!(run, Ok(0))), "{runs:?}");
    assert_eq!(api.balance(&ada, ada.regular).await, "1000.00");

    // Three missed months are caught up, each once.
    let id = income.json["income"]["income_id"].as_i64().unwrap();
    let three_months_ago = today.checked_sub_months(chrono::Months::new(3)).unwrap();
    sqlx::query("UPDATE incomes SET next_payment_date = $2 WHERE id = $1")
        .bind(id)
        .bind(three_months_ago)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(finance::income::credit_due(&pool, today).await.unwrap(), 3);
    assert_eq!(finance::income::credit_due(&pool, today).await.unwrap(), 0);
    assert_eq!(api.balance(&ada, ada.regular).await, "4000.00");
    let next: NaiveDate = sqlx::query_scalar("SELECT next_payment_date FROM incomes WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(next > today);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_bank_statement_imports_once(pool: PgPool) {
    let api = Api::new(pool);
    let ada = api.register("ada@example.com").await;
    api.fund(&ada, ada.regular, "100").await;
    api.post(
        "/api/database/budget",
        &ada,
        json!({"budget_name": "Groceries", "total_limit": "300"}),
    )
    .await;
    let csv = "Date,Description,Debit,Credit,Category\n\
               2026-11-02,Market,12.50,,groceries\n\
               2026-11-02,Market,12.50,,groceries\n\
               2026-11-03,Refund,,4.00,\n";
    let mapping = json!({"date": "Date", "debit": "Debit", "credit": "Credit", "description": "Description", "category": "Category"});
    let request = |dry_run: bool| json!({"csv": csv, "mapping": mapping, "account_id": ada.regular, "dry_run": dry_run});
    let preview = api
        .post("/api/database/transactions/import", &ada, request(true))
        .await;
    assert_eq!(
        (preview.status, preview.json["imported"].as_i64()),
        (200, Some(3)),
        "{:?}",
        preview.json
    );
    assert_eq!(
        api.balance(&ada, ada.regular).await,
        "100.00",
        "a dry run writes nothing"
    );
    let first = api
        .post("/api/database/transactions/import", &ada, request(false))
        .await;
    assert_eq!(
        (first.json["imported"].as_i64(), first.json["duplicates"].as_i64()),
        (Some(3), Some(0))
    );
    assert!(first.json["rows"][0]["budget_id"].is_i64());
    assert_eq!(api.balance(&ada, ada.regular).await, "79.00");
    let again = api
        .post("/api/database/transactions/import", &ada, request(false))
        .await;
    assert_eq!(
        (again.json["imported"].as_i64(), again.json["duplicates"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(api.balance(&ada, ada.regular).await, "79.00");
    let broken = json!({"csv": "Date,Amount\n2026-11-02,1.234\nnot a date,5\n", "mapping": {"date": "Date", "amount": "Amount"}});
    let reply = api.post("/api/database/transactions/import", &ada, broken).await;
    assert_eq!(reply.status, 422, "{:?}", reply.json);
    assert!(
        reply.json["detail"].as_str().unwrap().contains("line 3"),
        "every bad row is reported: {:?}",
        reply.json
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_demo_user_can_log_in_and_has_a_year_of_data(pool: PgPool) {
    let today: NaiveDate = "2026-11-20".parse().unwrap();
    let mut tx = pool.begin().await.unwrap();
    let demo = finance::demo::seed(&mut tx, today).await.unwrap();
    tx.commit().await.unwrap();
    assert!(demo.transactions > 300, "{demo:?}");
    let api = Api::new(pool.clone());
    let login = api
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": demo.email, "password": demo.password})),
        )
        .await;
    assert_eq!(login.status, 200, "{:?}", login.json);
    let months: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT date_trunc('month', date)) FROM transactions WHERE user_id = $1",
    )
    .bind(demo.user_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(months >= 12, "{months} months");
    let negative: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE balance < 0")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(negative, 0);
    let mut again = pool.begin().await.unwrap();
    let other = finance::demo::seed_user(&mut again, "twin@example.com", "another password", today, 2026)
        .await
        .unwrap();
    assert_eq!(
        other.transactions, demo.transactions,
        "the same seed gives the same year"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn seed_demo_prints_the_login(pool: PgPool) {
    let database = pool
        .connect_options()
        .get_database()
        .expect("a test database")
        .to_owned();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL for the tests");
    let url = format!(
        "{}/{database}",
        base.rsplit_once('/').expect("a URL with a database").0
    );
    let output = crate::finch(&["seed-demo", "--db", &url, "--today", "2026-11-20"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("log in with email `demo@finch.example` and password `finch-demo-2026`"),
        "{stdout}"
    );
    let again = crate::finch(&["seed-demo", "--db", &url]);
    assert!(!again.status.success(), "a second demo user is refused");
}
