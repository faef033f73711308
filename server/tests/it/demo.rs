//! `finch demo`'s conversation, played as the command plays it: the demo user seeded on a
//! fresh database, every message through the HTTP API, the models' side from
//! `examples/demo/demo.script.yaml`.

use serde_json::{Value, json};
use server::demo::{self, Options};
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn the_demo_conversation_reaches_every_agent_and_saves_only_what_was_confirmed(pool: PgPool) {
    let root = crate::repo_root();
    let script = std::fs::read_to_string(root.join("examples/demo/demo.script.yaml")).unwrap();
    let messages = demo::read_conversation(&root.join("examples/demo/demo.conversation.yaml")).unwrap();
    let assistant = crate::api::assistant::assistant(&pool, &script).await;
    let seeded = demo::seed(&pool, chrono::Utc::now().date_naive()).await.unwrap();
    let mut transcript = Vec::new();
    demo::play(
        pool.clone(),
        assistant,
        &seeded.email,
        &messages,
        &Options::default(),
        &mut transcript,
    )
    .await
    .unwrap();
    let transcript = String::from_utf8(transcript).unwrap();

    let speakers: Vec<&str> = transcript
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.starts_with("you:"))
        .filter_map(|line| line.split_once(':').map(|(who, _)| who))
        .collect();
    assert_eq!(
        speakers,
        [
            "database_agent",
            "behaviour_analyst",
            "database_agent",
            "GoalMaker",
            "GoalMaker",
            "BudgetMaker",
            "BudgetMaker",
            "TransactionMaker",
            "TransactionMaker",
        ],
        "{transcript}"
    );
    for expected in [
        "  finding: How much did I spend on dining out at weekends and on weekdays over the last three months?",
        "  chart: line of `spent` by `month`",
        "GoalMaker: Shall I create the goal \"Japan trip\": 2000 by 2036-06-30?",
        "GoalMaker: Saved: \"Japan trip\", 2000.00 by 2036-06-30.",
        "BudgetMaker: Saved: \"Coffee\", 80.00 a month.",
        "TransactionMaker: Recorded 12.50 for \"Time Out Market\"",
    ] {
        assert!(
            transcript.contains(expected),
            "missing {expected:?} in\n{transcript}"
        );
    }

    let saved: (Value, Value, i64, Value) = sqlx::query_as(
        "SELECT (SELECT to_jsonb(array_agg(name ORDER BY id)) FROM goals WHERE user_id = $1),
                (SELECT to_jsonb(array_agg(name ORDER BY id)) FROM budgets WHERE user_id = $1 AND name = 'Coffee'),
                (SELECT count(*) FROM transactions WHERE user_id = $1),
                (SELECT jsonb_build_array(description, amount::text) FROM transactions
                 WHERE user_id = $1 ORDER BY id DESC LIMIT 1)",
    )
    .bind(seeded.user_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let goals = saved.0.as_array().unwrap();
    assert_eq!(
        (goals.len(), goals.last().unwrap()),
        (seeded.goals + 1, &json!("Japan trip"))
    );
    assert_eq!(saved.1, json!(["Coffee"]));
    assert_eq!(saved.2 as usize, seeded.transactions + 1);
    assert_eq!(saved.3, json!(["Time Out Market", "12.50"]));
}
