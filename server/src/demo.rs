//! `finch demo`: the demo user seeded, then a conversation played through the HTTP API, in
//! process, exactly as a client would send it (login, a conversation, each message to
//! `POST /api/personal_assistant/analyze`), with a transcript of what every agent answered.
//!
//! The models' side comes from a script of replies (offline) or from the configured
//! providers; everything else is real: the router's choice runs the graphs, SQL runs in the
//! sandbox on the demo user's rows, and the makers save only after the conversation's "yes".

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use poem::http::Method;
use poem::{Endpoint, Request};
use serde_json::{Value, json};

use crate::api::{self, ApiConfig};
use crate::assistant::Assistant;
use crate::charts;
use crate::finance::demo::{self, DEMO_EMAIL, DEMO_PASSWORD};

/// Where a chart's SVG is written, when asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub charts: Option<PathBuf>,
}

/// Seeds a demo user on `pool`: the demo user, or `demo+N@…` (one more than the highest
/// taken) when it exists already.
pub async fn seed(pool: &sqlx::PgPool, today: chrono::NaiveDate) -> anyhow::Result<demo::Demo> {
    let (taken, highest): (bool, i64) = sqlx::query_as(
        r"SELECT coalesce(bool_or(lower(email) = $1), false),
                 coalesce(max(substring(lower(email) from '^demo\+([0-9]{1,9})@finch\.example$')::bigint), 0)
          FROM users",
    )
    .bind(DEMO_EMAIL)
    .fetch_one(pool)
    .await?;
    let email = match taken {
        false => DEMO_EMAIL.to_owned(),
        true => format!("demo+{}@finch.example", highest + 1),
    };
    let mut tx = pool.begin().await?;
    let seeded = demo::seed_user(&mut tx, &email, DEMO_PASSWORD, today, 2026).await?;
    tx.commit().await?;
    Ok(seeded)
}

/// Plays `messages` as `email` in one conversation with `assistant`, writing the transcript
/// to `out`. Fails on the first message the API does not answer with 200.
pub async fn play(
    pool: sqlx::PgPool,
    assistant: Assistant,
    email: &str,
    messages: &[String],
    options: &Options,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let config = ApiConfig {
        assistant: Some(std::sync::Arc::new(assistant)),
        ..ApiConfig::default()
    };
    let app = api::app(pool, &config);
    let login = call(
        &app,
        None,
        "/api/auth/login",
        json!({ "email": email, "password": DEMO_PASSWORD }),
    )
    .await?;
    let token = login["access_token"]
        .as_str()
        .context("the login gave no token")?
        .to_owned();
    let started = call(
        &app,
        Some(&token),
        "/api/personal_assistant/conversations/start",
        json!({}),
    )
    .await?;
    let conversation = started["conversation_id"].clone();
    let mut charts_written = 0;
    for message in messages {
        writeln!(out, "you: {message}")?;
        let body = json!({ "query": message, "conversation_id": conversation });
        let reply = call(&app, Some(&token), "/api/personal_assistant/analyze", body).await?;
        let agent = reply["agent"].as_str().unwrap_or("assistant");
        let answer = reply["final_output"].as_str().unwrap_or_default();
        writeln!(out, "{agent}: {}", answer.trim())?;
        if reply["chart"].is_object() {
            charts_written += 1;
            describe_chart(&reply["chart"], charts_written, options, out)?;
        } else {
            describe_data(agent, &reply["data"], out)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The messages of a conversation file: a YAML list of texts.
pub fn read_conversation(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let messages: Vec<String> = serde_saphyr::from_str(&text)
        .with_context(|| format!("{}: expected a list of messages", path.display()))?;
    if messages.is_empty() {
        bail!("{}: the conversation has no messages", path.display());
    }
    Ok(messages)
}

/// Sends `body` to `path` as the holder of `token`; the reply's JSON, or why it is not 200.
async fn call(
    app: &impl Endpoint<Output = poem::Response>,
    token: Option<&str>,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri_str(path)
        .content_type("application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .call(request.body(body.to_string()))
        .await
        .map_err(|err| anyhow::anyhow!("POST {path}: {err}"))?;
    let status = response.status();
    let text = response.into_body().into_string().await?;
    if !status.is_success() {
        bail!("POST {path} answered {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("POST {path}: the reply is not JSON"))
}

/// The rows an answer came from, as a table; an analysis's findings one by one.
fn describe_data(agent: &str, data: &Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(items) = data.as_array().filter(|items| !items.is_empty()) else {
        return Ok(());
    };
    if agent == "behaviour_analyst" {
        for finding in items {
            writeln!(
                out,
                "  finding: {}",
                finding["question"].as_str().unwrap_or_default()
            )?;
            indented(&charts::markdown_table(&finding["rows"]), out)?;
        }
        return Ok(());
    }
    indented(&charts::markdown_table(data), out)
}

fn describe_chart(
    chart: &Value,
    number: usize,
    options: &Options,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let svg = chart["svg"].as_str().unwrap_or_default();
    write!(
        out,
        "  chart: {} of `{}` by `{}` (a Vega-Lite spec, an SVG of {} bytes, and this table)",
        chart["kind"].as_str().unwrap_or("chart"),
        chart["y"].as_str().unwrap_or_default(),
        chart["x"].as_str().unwrap_or_default(),
        svg.len(),
    )?;
    if let Some(folder) = &options.charts {
        std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
        let file = folder.join(format!("chart-{number}.svg"));
        std::fs::write(&file, svg).with_context(|| format!("writing {}", file.display()))?;
        write!(out, "; saved as {}", file.display())?;
    }
    writeln!(out)?;
    indented(chart["table"].as_str().unwrap_or_default(), out)
}

fn indented(text: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    for line in text.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
