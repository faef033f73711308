//! Every route's success path, in one walk through the API.

use poem::http::Method;
use serde_json::json;
use sqlx::PgPool;

use super::{Api, today};

#[sqlx::test(migrations = "../migrations")]
async fn every_route_answers_its_success_path(pool: PgPool) {
    let api = Api::new(pool);
    let health = api
        .call(Method::GET, "/api/personal_assistant/health", None, None)
        .await;
    assert_eq!(
        (health.status, health.json["database"].clone()),
        (200, json!(true))
    );

    let ada = api.register("ada@example.com").await;
    let login = api
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "ADA@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(login.status, 200, "{:?}", login.json);

    let profile = api
        .put(
            "/api/profile",
            &ada,
            json!({"job_title": "Engineer", "employment_status": "Employed Full-time"}),
        )
        .await;
    assert_eq!(profile.json["job_title"], "Engineer");
    assert_eq!(
        api.get("/api/profile", &ada).await.json["employment_status"],
        "Employed Full-time"
    );
    assert_eq!(
        api.get(&format!("/api/database/users/{}", ada.id), &ada)
            .await
            .status,
        200
    );

    api.fund(&ada, ada.regular, "1000.00").await;
    let budget = api
        .post(
            "/api/database/budget",
            &ada,
            json!({"budget_name": "Groceries", "total_limit": "400", "priority_level_int": 2}),
        )
        .await;
    assert_eq!(budget.status, 201, "{:?}", budget.json);
    let budget_id = budget.json["budget"]["budget_id"].as_i64().unwrap();
    assert_eq!(
        api.get("/api/database/budget", &ada).await.json[0]["total_limit"],
        "400.00"
    );
    let changed = api
        .put(
            &format!("/api/database/budget/{budget_id}"),
            &ada,
            json!({"total_limit": 450}),
        )
        .await;
    assert_eq!(changed.json["budget"]["total_limit"], "450.00");

    let expense = api
        .post(
            "/api/database/transactions",
            &ada,
            json!({"date": today(), "amount": 42.5, "store_name": "Market", "city": "Lyon", "neighbourhood": "Croix-Rousse", "budget_id": budget_id, "account_id": ada.regular}),
        )
        .await;
    assert_eq!(expense.status, 201, "{:?}", expense.json);
    let transaction = &expense.json["transaction"];
    assert_eq!(
        (
            transaction["amount"].as_str(),
            transaction["description"].as_str()
        ),
        (Some("42.50"), Some("Market"))
    );
    assert_eq!(transaction["budget_name"], "Groceries");
    assert_eq!(api.balance(&ada, ada.regular).await, "957.50");
    let id = transaction["transaction_id"].as_i64().unwrap();
    let updated = api
        .put(
            &format!("/api/database/transactions/{id}"),
            &ada,
            json!({"amount": "50"}),
        )
        .await;
    assert_eq!(updated.json["transaction"]["amount"], "50.00");
    assert_eq!(api.balance(&ada, ada.regular).await, "950.00");
    let listed = api.get("/api/database/transactions?limit=10", &ada).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 2);
    let found = api
        .get(
            "/api/database/transactions/search?query=mark&category=groc&min_amount=10",
            &ada,
        )
        .await;
    assert_eq!(
        (
            found.json["count"].as_i64(),
            found.json["transactions"][0]["transaction_id"].as_i64()
        ),
        (Some(1), Some(id))
    );
    let every_filter = format!(
        "/api/database/transactions/search?query=market&category=Groceries&min_amount=50&max_amount=50.00\
         &start_date={0}&end_date={0}&city=lyon&neighbourhood=croix&transaction_type=expense",
        today()
    );
    assert_eq!(api.get(&every_filter, &ada).await.json["count"], 1);
    let other_city = api
        .get("/api/database/transactions/search?city=Paris", &ada)
        .await;
    assert_eq!(other_city.json["count"], 0);

    let transfer = api
        .post(
            "/api/database/accounts/transfer",
            &ada,
            json!({"from_account_id": ada.regular, "to_account_id": ada.savings, "amount": "200"}),
        )
        .await;
    assert_eq!(transfer.status, 201, "{:?}", transfer.json);
    assert_eq!(transfer.json["to_account"]["balance"], "200.00");
    let account = api
        .post(
            "/api/database/accounts",
            &ada,
            json!({"name": "Wallet", "account_type": "regular"}),
        )
        .await;
    assert_eq!(
        (account.status, account.json["currency"].as_str()),
        (201, Some("EUR"))
    );

    let goal = api
        .post(
            "/api/database/goals",
            &ada,
            json!({"goal_name": "Bike", "target": "500", "plan": "save 50 a month"}),
        )
        .await;
    assert_eq!(goal.status, 201, "{:?}", goal.json);
    let goal_id = goal.json["goal"]["goal_id"].as_i64().unwrap();
    assert_eq!(goal.json["goal"]["plan"], "save 50 a month");
    let deposit = api
        .post(
            &format!("/api/database/goals/{goal_id}/deposit"),
            &ada,
            json!({"amount": "150"}),
        )
        .await;
    assert_eq!(
        (deposit.status, deposit.json["goal"]["saved_amount"].as_str()),
        (200, Some("150.00"))
    );
    assert_eq!(api.balance(&ada, ada.savings).await, "50.00");
    let withdraw = api
        .post(
            &format!("/api/database/goals/{goal_id}/withdraw"),
            &ada,
            json!({"amount": "50"}),
        )
        .await;
    assert_eq!(withdraw.json["goal"]["progress_percentage"], 20);
    assert_eq!(
        api.put(
            &format!("/api/database/goals/{goal_id}"),
            &ada,
            json!({"goal_name": "E-bike"})
        )
        .await
        .json["goal"]["goal_name"],
        "E-bike"
    );
    let goals = api.get("/api/database/goals", &ada).await;
    assert_eq!(goals.json.as_array().map(Vec::len), Some(1), "{:?}", goals.json);
    let deleted = api.delete(&format!("/api/database/goals/{goal_id}"), &ada).await;
    assert_eq!(deleted.json["goal"]["status"], "inactive");
    assert_eq!(
        api.balance(&ada, ada.savings).await,
        "200.00",
        "the goal's 100.00 came back"
    );

    let income = api
        .post(
            "/api/database/income",
            &ada,
            json!({"type_income": "salary", "amount": "2500", "account_id": ada.regular, "payment_day": 1}),
        )
        .await;
    assert_eq!(income.status, 201, "{:?}", income.json);
    let income_id = income.json["income"]["income_id"].as_i64().unwrap();
    assert_eq!(
        api.get("/api/database/income", &ada).await.json[0]["type_income"],
        "salary"
    );
    assert_eq!(
        api.put(
            &format!("/api/database/income/{income_id}"),
            &ada,
            json!({"amount": "2600"})
        )
        .await
        .json["income"]["amount"],
        "2600.00"
    );

    let spend = api.get("/api/database/analytics/monthly-spend", &ada).await;
    assert_eq!(spend.json["data"][0]["total_spent"], "50.00");
    let overspend = api.get("/api/database/analytics/overspend", &ada).await;
    assert_eq!(overspend.json["data"][0]["spent"], "50.00");
    assert_eq!(overspend.json["summary"]["total_income"], "1000.00");
    assert_eq!(
        api.get("/api/database/analytics/income-total", &ada).await.json["data"][0]["total_amount"],
        "2600.00"
    );
    let breakdown = api.get("/api/database/analytics/monthly-breakdown", &ada).await;
    assert_eq!(
        (
            breakdown.json["transaction_count"].as_i64(),
            breakdown.json["categories"][0]["name"].as_str()
        ),
        (Some(1), Some("Groceries"))
    );
    let dashboard = api.get("/api/dashboard/summary", &ada).await;
    assert_eq!(dashboard.json["total_assets"], "950.00", "{:?}", dashboard.json);

    let conversation = api
        .post(
            "/api/personal_assistant/conversations/start",
            &ada,
            json!({"channel": "web"}),
        )
        .await;
    assert_eq!(conversation.status, 201);
    let conversation_id = conversation.json["conversation_id"].as_i64().unwrap();
    let message = api
        .post(
            &format!("/api/database/conversations/{conversation_id}/messages"),
            &ada,
            json!({"content": "How much on groceries?", "data": {"total": "50.00", "day": today()}}),
        )
        .await;
    assert_eq!(message.status, 201, "{:?}", message.json);
    let messages = api
        .get(
            &format!("/api/database/conversations/{conversation_id}/messages"),
            &ada,
        )
        .await;
    assert_eq!(messages.json[0]["data"]["total"], "50.00");
    assert_eq!(
        api.get("/api/database/conversations", &ada).await.json[0]["conversation_id"],
        conversation_id
    );
    assert_eq!(
        api.get(&format!("/api/database/conversations/{conversation_id}"), &ada)
            .await
            .status,
        200
    );

    assert_eq!(
        api.delete(&format!("/api/database/transactions/{id}"), &ada)
            .await
            .json["success"],
        true
    );
    assert_eq!(api.balance(&ada, ada.regular).await, "800.00");
    assert_eq!(
        api.delete(&format!("/api/database/income/{income_id}"), &ada)
            .await
            .status,
        200
    );
    assert_eq!(
        api.delete(&format!("/api/database/budget/{budget_id}"), &ada)
            .await
            .json["budget"]["is_active"],
        false
    );
    assert_eq!(api.get("/api/notifications", &ada).await.status, 200);
    assert_eq!(
        api.call(Method::POST, "/api/auth/logout", Some(&ada.token), None)
            .await
            .status,
        204
    );
    assert_eq!(api.get("/api/profile", &ada).await.status, 401);
}
