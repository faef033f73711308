//! One user can neither read, nor change, nor reference another's objects, through any route:
//! the answer is always 404, the same as for an object that does not exist.

use poem::http::Method;
use serde_json::json;
use sqlx::PgPool;

use super::{Api, today};

#[sqlx::test(migrations = "../migrations")]
async fn another_users_objects_are_not_found_on_every_route(pool: PgPool) {
    let api = Api::new(pool.clone());
    let ada = api.register("ada@example.com").await;
    let bob = api.register("bob@example.com").await;
    api.fund(&ada, ada.regular, "500").await;
    api.fund(&bob, bob.regular, "500").await;

    let budget = api
        .post(
            "/api/database/budget",
            &ada,
            json!({"budget_name": "Food", "total_limit": "10"}),
        )
        .await
        .json["budget"]["budget_id"]
        .clone();
    let expense = api
        .post(
            "/api/database/transactions",
            &ada,
            json!({"date": today(), "amount": "9", "budget_id": budget, "account_id": ada.regular}),
        )
        .await;
    let transaction = expense.json["transaction"]["transaction_id"].clone();
    let goal = api
        .post(
            "/api/database/goals",
            &ada,
            json!({"goal_name": "Car", "target": "900"}),
        )
        .await
        .json["goal"]["goal_id"]
        .clone();
    let income = api
        .post(
            "/api/database/income",
            &ada,
            json!({"type_income": "rent", "amount": "10"}),
        )
        .await
        .json["income"]["income_id"]
        .clone();
    let conversation = api
        .post("/api/personal_assistant/conversations/start", &ada, json!({}))
        .await
        .json["conversation_id"]
        .clone();
    let notification = api.get("/api/notifications", &ada).await.json[0]["notification_id"].clone();
    assert!(notification.is_i64(), "the expense raised a budget alert");
    let (a, r, s) = (ada.id, ada.regular, ada.savings);

    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/api/database/users/{a}"), None),
        (
            Method::GET,
            format!("/api/database/transactions?user_id={a}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/database/transactions/search?user_id={a}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/database/transactions/{transaction}"),
            Some(json!({"amount": "1"})),
        ),
        (
            Method::DELETE,
            format!("/api/database/transactions/{transaction}"),
            None,
        ),
        (
            Method::POST,
            "/api/database/transactions".to_owned(),
            Some(json!({"user_id": a, "date": today(), "amount": "1"})),
        ),
        (
            Method::POST,
            "/api/database/transactions".to_owned(),
            Some(json!({"date": today(), "amount": "1", "budget_id": budget})),
        ),
        (
            Method::POST,
            "/api/database/transactions".to_owned(),
            Some(json!({"date": today(), "amount": "1", "account_id": r})),
        ),
        (
            Method::POST,
            "/api/database/transactions".to_owned(),
            Some(
                json!({"transaction_type": "transfer", "date": today(), "amount": "1", "account_id": bob.regular, "transfer_to_id": r}),
            ),
        ),
        (
            Method::POST,
            "/api/database/accounts/transfer".to_owned(),
            Some(json!({"from_account_id": r, "to_account_id": bob.regular, "amount": "1"})),
        ),
        (
            Method::POST,
            "/api/database/transactions/import".to_owned(),
            Some(
                json!({"csv": "Date,Amount\n2026-01-02,-3\n", "mapping": {"date": "Date", "amount": "Amount"}, "account_id": r}),
            ),
        ),
        (Method::GET, format!("/api/database/budget?user_id={a}"), None),
        (
            Method::PUT,
            format!("/api/database/budget/{budget}"),
            Some(json!({"total_limit": "1000"})),
        ),
        (Method::DELETE, format!("/api/database/budget/{budget}"), None),
        (
            Method::POST,
            "/api/database/budget".to_owned(),
            Some(json!({"user_id": a, "budget_name": "X", "total_limit": "1"})),
        ),
        (Method::GET, format!("/api/database/goals?user_id={a}"), None),
        (
            Method::PUT,
            format!("/api/database/goals/{goal}"),
            Some(json!({"goal_name": "Mine"})),
        ),
        (Method::DELETE, format!("/api/database/goals/{goal}"), None),
        (
            Method::POST,
            format!("/api/database/goals/{goal}/deposit"),
            Some(json!({"amount": "1"})),
        ),
        (
            Method::POST,
            format!("/api/database/goals/{goal}/withdraw"),
            Some(json!({"amount": "1"})),
        ),
        (Method::GET, format!("/api/database/income?user_id={a}"), None),
        (
            Method::PUT,
            format!("/api/database/income/{income}"),
            Some(json!({"amount": "1"})),
        ),
        (Method::DELETE, format!("/api/database/income/{income}"), None),
        (
            Method::POST,
            "/api/database/income".to_owned(),
            Some(json!({"type_income": "x", "amount": "1", "account_id": s, "payment_day": 3})),
        ),
        (
            Method::GET,
            format!("/api/database/analytics/monthly-spend?user_id={a}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/database/analytics/overspend?user_id={a}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/database/analytics/income-total?user_id={a}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/notifications/{notification}/read"),
            None,
        ),
        (
            Method::GET,
            format!("/api/database/conversations?user_id={a}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/database/conversations/{conversation}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/database/conversations/{conversation}/messages"),
            None,
        ),
        (
            Method::POST,
            format!("/api/database/conversations/{conversation}/messages"),
            Some(json!({"content": "hi"})),
        ),
        (
            Method::POST,
            "/api/personal_assistant/conversations/start".to_owned(),
            Some(json!({"user_id": a})),
        ),
    ];
    for (method, path, body) in attempts {
        let reply = api.call(method.clone(), &path, Some(&bob.token), body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {:?}", reply.json);
        assert_eq!(reply.json["code"], "not_found", "{method} {path}");
    }

    // Nothing of Ada's moved, and Bob's lists hold only his own.
    assert_eq!(api.balance(&ada, ada.regular).await, "491.00");
    assert_eq!(
        api.get("/api/database/transactions", &ada)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        api.get("/api/database/budget", &ada).await.json[0]["total_limit"],
        "10.00"
    );
    assert_eq!(
        api.get("/api/notifications", &ada).await.json[0]["is_read"],
        false
    );
    let bobs = api.get("/api/database/transactions", &bob).await.json;
    assert!(
        bobs.as_array().unwrap().iter().all(|t| t["user_id"] == bob.id),
        "{bobs}"
    );
    assert_eq!(api.get("/api/database/budget", &bob).await.json, json!([]));
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(messages, 0);
    let anonymous = api
        .call(Method::GET, "/api/database/transactions", None, None)
        .await;
    assert_eq!(anonymous.status, 401);
}
