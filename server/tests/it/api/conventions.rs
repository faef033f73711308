//! The API's conventions: problem+json errors naming the field, idempotency keys, pagination,
//! limits, the OpenAPI document and the offline docs, and what an unreachable database looks like.

use poem::http::Method;
use serde_json::json;
use server::api::ApiConfig;
use sqlx::PgPool;

use super::{Api, today};

#[sqlx::test(migrations = "../migrations")]
async fn validation_errors_name_the_field(pool: PgPool) {
    let api = Api::new(pool);
    let ada = api.register("ada@example.com").await;
    let cases = [
        (json!({"date": today(), "amount": "12.345"}), "amount"),
        (json!({"date": today(), "amount": -5}), "amount"),
        (json!({"amount": "5"}), "date"),
        (json!({"date": "yesterday", "amount": "5"}), "date"),
        (
            json!({"date": today(), "amount": "5", "transaction_type": "gift"}),
            "transaction_type",
        ),
        (
            json!({"date": today(), "amount": "5", "tags": ["a", 3]}),
            "tags[1]",
        ),
        (
            json!({"date": today(), "amount": "5", "transaction_type": "transfer", "account_id": ada.regular}),
            "transfer_to_id",
        ),
    ];
    for (body, field) in cases {
        let reply = api.post("/api/database/transactions", &ada, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.json);
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        assert_eq!(reply.json["code"], "validation_failed");
        assert_eq!(
            reply.json["errors"][0]["field"], field,
            "{body}: {:?}",
            reply.json
        );
    }
    let budget = api
        .post(
            "/api/database/budget",
            &ada,
            json!({"budget_name": "X", "total_limit": 1, "priority_level_int": 11}),
        )
        .await;
    assert_eq!(budget.json["errors"][0]["field"], "priority_level_int");
    let malformed = api
        .send(
            Method::POST,
            "/api/database/budget",
            Some(&ada.token),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.json["code"].as_str()),
        (400, Some("bad_request"))
    );
    let limit = api.get("/api/database/transactions?limit=0", &ada).await;
    assert_eq!(
        (limit.status, limit.json["errors"][0]["field"].as_str()),
        (400, Some("limit"))
    );
    let taken = api
        .call(Method::POST, "/api/auth/register", None, Some(json!({"email": "ada@example.com", "password": "0123456789", "first_name": "A", "last_name": "B"})))
        .await;
    assert_eq!(
        (taken.status, taken.json["code"].as_str()),
        (409, Some("email_taken"))
    );
    let wrong = api
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "ada@example.com", "password": "nope"})),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.json["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    for _ in 0..9 {
        api.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "ada@example.com", "password": "nope"})),
        )
        .await;
    }
    let limited = api
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "Ada@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(
        (limited.status, limited.json["code"].as_str()),
        (429, Some("rate_limited")),
        "{:?}",
        limited.json
    );
    assert!(limited.headers.contains_key("retry-after"));
    let method = api
        .call(Method::PATCH, "/api/profile", Some(&ada.token), None)
        .await;
    assert_eq!(
        (method.status, method.json["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let unknown = api.get("/api/nowhere", &ada).await;
    assert_eq!(
        (unknown.status, unknown.json["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_repeated_idempotency_key_replays_the_first_response(pool: PgPool) {
    let api = Api::new(pool.clone());
    let ada = api.register("ada@example.com").await;
    api.fund(&ada, ada.regular, "100").await;
    let body = json!({"date": today(), "amount": "10", "account_id": ada.regular});
    let send = |body: serde_json::Value| {
        let api = &api;
        let token = ada.token.clone();
        async move {
            api.send(
                Method::POST,
                "/api/database/transactions",
                Some(&token),
                Some(body),
                &[("idempotency-key", "k-1")],
            )
            .await
        }
    };
    let first = send(body.clone()).await;
    let again = send(body.clone()).await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.json, again.json);
    assert_eq!(api.balance(&ada, ada.regular).await, "90.00");
    let other = send(json!({"date": today(), "amount": "11", "account_id": ada.regular})).await;
    assert_eq!(
        (other.status, other.json["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE kind = 'expense'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn lists_page_with_cursors(pool: PgPool) {
    let api = Api::new(pool);
    let ada = api.register("ada@example.com").await;
    for amount in 1..=5 {
        api.post(
            "/api/database/transactions",
            &ada,
            json!({"date": today(), "amount": amount}),
        )
        .await;
    }
    let mut path = "/api/database/transactions?limit=2".to_owned();
    let mut seen = Vec::new();
    loop {
        let page = api.get(&path, &ada).await;
        let items = page
            .json
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {:?}", page.json));
        seen.extend(items.iter().map(|t| t["amount"].as_str().unwrap().to_owned()));
        let Some(link) = page.headers.get("link") else {
            break;
        };
        let link = link.to_str().unwrap();
        path = link[1..link.find('>').unwrap()].to_owned();
    }
    assert_eq!(seen, ["5.00", "4.00", "3.00", "2.00", "1.00"]);
    let bad = api.get("/api/database/transactions?cursor=xyz", &ada).await;
    assert_eq!(
        (bad.status, bad.json["errors"][0]["field"].as_str()),
        (400, Some("cursor"))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn bodies_over_the_limit_cors_and_request_ids(pool: PgPool) {
    let config = ApiConfig {
        cors_origins: vec!["https://app.example".to_owned()],
        body_limit: 64,
        ..ApiConfig::default()
    };
    let api = Api::with_config(pool, &config);
    let big = json!({"email": "x".repeat(100), "password": "p", "first_name": "a", "last_name": "b"});
    let reply = api
        .call(Method::POST, "/api/auth/register", None, Some(big))
        .await;
    assert_eq!(
        (reply.status, reply.json["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let allowed = api
        .send(
            Method::GET,
            "/api/personal_assistant/health",
            None,
            None,
            &[("origin", "https://app.example"), ("x-request-id", "req-42")],
        )
        .await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(allowed.headers["x-request-id"], "req-42");
    let other = api
        .send(
            Method::GET,
            "/api/personal_assistant/health",
            None,
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert!(
        other.headers.get("access-control-allow-origin").is_none(),
        "{:?}",
        other.headers
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_docs_render_offline(pool: PgPool) {
    let api = Api::new(pool);
    let docs = api.call(Method::GET, "/api/docs", None, None).await;
    let html = docs.json.as_str().expect("HTML");
    assert_eq!(docs.status, 200);
    assert!(
        html.contains("SwaggerUIBundle"),
        "the Swagger UI script is inline"
    );
    for external in ["src=\"http", "href=\"http", "src='http", "href='http", "@import"] {
        assert!(
            !html.contains(external),
            "the docs load `{external}…` from elsewhere"
        );
    }
    let spec = api.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(spec.json["info"]["title"], "Finch");
}

#[tokio::test]
async fn the_openapi_document_is_as_recorded() {
    let spec: serde_json::Value = serde_json::from_str(&server::api::openapi_json()).unwrap();
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() > 30, "{} paths", paths.len());
    assert!(
        !paths
            .keys()
            .any(|path| path.contains("execute") || path.contains("sql")),
        "no route runs client-supplied SQL"
    );
    insta::assert_json_snapshot!("openapi", spec);
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://root@127.0.0.1:1/nowhere")
        .unwrap();
    let api = Api::new(pool);
    let health = api
        .call(Method::GET, "/api/personal_assistant/health", None, None)
        .await;
    assert_eq!(
        (health.status, health.json["status"].as_str()),
        (503, Some("degraded"))
    );
    let login = api
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "a@b.co", "password": "whatever"})),
        )
        .await;
    assert_eq!(
        (login.status, login.json["code"].as_str()),
        (503, Some("database_unavailable")),
        "{:?}",
        login.json
    );
    assert!(login.headers.contains_key("retry-after"));
}
