//! The HTTP API, in-process through poem's test client, against a fresh PostgreSQL database
//! per test.

pub(crate) mod assistant;
mod conventions;
mod isolation;
mod ledger;
mod makers;
mod routes;
mod threads;

use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, Method};
use poem::test::TestClient;
use poem::{EndpointExt, Response};
use serde_json::{Value, json};
use server::api::ApiConfig;
use sqlx::PgPool;

/// A test client of the whole application.
struct Api {
    client: TestClient<BoxEndpoint<'static, Response>>,
}

/// What a request got back.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

/// A registered user.
#[derive(Debug, Clone)]
struct User {
    id: i64,
    token: String,
    regular: i64,
    savings: i64,
}

impl Api {
    fn new(pool: PgPool) -> Api {
        Api::with_config(pool, &ApiConfig::default())
    }

    fn with_config(pool: PgPool, config: &ApiConfig) -> Api {
        // Internal errors are logged, not shown: print them with the failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("server=warn")
            .with_test_writer()
            .try_init();
        Api {
            client: TestClient::new(server::api::app(pool, config).boxed()),
        }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.send(method, path, token, body, &[]).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body_json(&body);
        }
        let response = request.send().await.0;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().into_vec().await.expect("a body");
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            json,
        }
    }

    async fn get(&self, path: &str, user: &User) -> Reply {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    async fn post(&self, path: &str, user: &User, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&user.token), Some(body)).await
    }

    async fn put(&self, path: &str, user: &User, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(&user.token), Some(body)).await
    }

    async fn delete(&self, path: &str, user: &User) -> Reply {
        self.call(Method::DELETE, path, Some(&user.token), None).await
    }

    /// Registers `email` and finds its two accounts.
    async fn register(&self, email: &str) -> User {
        let reply = self
            .call(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"email": email, "password": "correct horse battery", "first_name": "Ada", "last_name": "Test", "preferred_currency": "EUR"})),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.json);
        let token = reply.json["access_token"].as_str().expect("a token").to_owned();
        let id = reply.json["user_id"].as_i64().expect("an id");
        let mut user = User {
            id,
            token,
            regular: 0,
            savings: 0,
        };
        let accounts = self.get("/api/database/accounts", &user).await.json;
        user.regular = accounts[0]["account_id"].as_i64().expect("Regular");
        user.savings = accounts[1]["account_id"].as_i64().expect("Savings");
        user
    }

    /// Puts `amount` into `account` with a deposit.
    async fn fund(&self, user: &User, account: i64, amount: &str) {
        let reply = self
            .post(
                "/api/database/transactions",
                user,
                json!({"transaction_type": "deposit", "date": today(), "amount": amount, "account_id": account}),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.json);
    }

    async fn balance(&self, user: &User, account: i64) -> String {
        let accounts = self.get("/api/database/accounts", user).await.json;
        accounts
            .as_array()
            .expect("a list")
            .iter()
            .find(|a| a["account_id"] == account)
            .map(|a| a["balance"].as_str().expect("a string").to_owned())
            .expect("the account")
    }
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

#[test]
fn serve_names_the_database_setting_to_fix() {
    let missing = crate::finch_with_env(&["serve"], &[], &["DATABASE_URL", "DB_HOST"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert_eq!(
        stderr.trim(),
        "error: no database configured: set DATABASE_URL (or DB_HOST, DB_NAME, DB_USER and DB_PASSWORD)"
    );

    let unreachable = crate::finch_with_env(
        &["serve"],
        &[("DATABASE_URL", "postgres://root@127.0.0.1:1/nowhere")],
        &[],
    );
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(!unreachable.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach the database at 127.0.0.1:1") && stderr.contains("check DATABASE_URL"),
        "{stderr}"
    );

    let by_parts = crate::finch_with_env(
        &["serve"],
        &[("DB_HOST", "127.0.0.1"), ("DB_PORT", "1")],
        &["DATABASE_URL"],
    );
    let stderr = String::from_utf8_lossy(&by_parts.stderr);
    assert!(
        stderr.contains("check DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD"),
        "{stderr}"
    );
}

#[test]
fn serve_answers_and_stops_gracefully_on_sigterm() {
    use std::io::{Read, Write};
    let port = 20000 + (std::process::id() % 10000) as u16;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_finch"))
        .arg("serve")
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        // Log lines go to standard output.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("finch serve starts");
    let mut health = String::new();
    for _ in 0..600 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(b"GET /api/personal_assistant/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            stream.read_to_string(&mut health).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut logs = String::new();
    child.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "{health:?} / {status} / {logs}"
    );
    assert!(killed.success());
    assert!(status.success(), "{status}: {logs}");
    assert!(logs.contains("shutting down"), "{logs}");
    let request = logs
        .lines()
        .find(|line| line.contains("path=/api/personal_assistant/health"));
    assert!(
        request.is_some_and(|line| line.contains("request_id=") && line.contains("status=200")),
        "{logs}"
    );
}
