//! `finch run`: one run of a graph, its events printed as they happen.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use engine::llm::LlmClient;
use engine::llm::scripted::Scripted;
use engine::run::{Answers, Engine, Event, Events, RunOutcome, RunStatus, State};
use serde_json::Value;

use super::{database, graph_path, load_graph};
use crate::config::Config;

/// Run a graph once and print what happens.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// A graph name (in graphs/) or the path of a graph file.
    graph: String,
    /// The run's input: a JSON object of the graph's `input` fields.
    #[arg(long, default_value = "{}")]
    input: String,
    /// The run's context: a JSON object of the graph's `context` fields.
    #[arg(long, default_value = "{}")]
    context: String,
    /// Where model replies come from: `config` (finch.toml, keys from the environment) or
    /// `scripted:FILE` (a script of replies by node id, no network).
    #[arg(long, default_value = "config")]
    llm: String,
    /// The database for `sql` nodes.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
    /// An answer for an interrupt, `ID=JSON`; given when the run waits there. Repeatable.
    #[arg(long = "answer", value_name = "ID=JSON")]
    answers: Vec<String>,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    format: RunFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunFormat {
    /// Readable lines.
    Human,
    /// One JSON object per event, then the outcome.
    Json,
}

pub(crate) async fn run(args: RunArgs, config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::read(config)?;
    let graph = load_graph(&graph_path(&args.graph)?, config.as_ref())?;
    let input = json_object(&args.input, "--input")?;
    let context = json_object(&args.context, "--context")?;
    let mut answers = parse_answers(&args.answers)?;
    let mut engine = Engine::new(llm(&args.llm, config.as_ref(), &graph)?);
    if let Some(url) = &args.db {
        engine = engine.with_database(database(url)?);
    }
    let (events, mut receiver) = Events::channel();
    let format = args.format;
    let printer = tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            print_event(&event, format);
        }
    });
    refuse_unknown_answers(&graph, &answers)?;
    let mut outcome = engine.start(&graph, input, context, &events).await?;
    while outcome.status == RunStatus::Interrupted {
        let waiting: Answers = outcome
            .interrupts
            .iter()
            .filter_map(|interrupt| Some((interrupt.id.clone(), answers.remove(&interrupt.id)?)))
            .collect();
        if waiting.is_empty() {
            break;
        }
        outcome = engine
            .resume(&graph, outcome.checkpoint, waiting, &events)
            .await?;
    }
    drop(events);
    printer.await.context("printing events")?;
    print_outcome(&outcome, format)?;
    Ok(match outcome.status {
        RunStatus::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// An `--answer` for an interrupt the graph does not have is a typo: say so.
fn refuse_unknown_answers(graph: &engine::Graph, answers: &BTreeMap<String, Value>) -> anyhow::Result<()> {
    let known = graph.interrupt_ids();
    for id in answers.keys() {
        if !known.contains(id) {
            let hint = engine::diagnostic::closest(id, known.iter().map(String::as_str)).map_or_else(
                || format!("its interrupts are: {}", known.join(", ")),
                |best| format!("did you mean `{best}`?"),
            );
            bail!(
                "--answer `{id}`: graph `{}` has no interrupt `{id}`; {hint}",
                graph.name
            );
        }
    }
    Ok(())
}

/// The model client: scripted replies, or the configured models the graph uses.
fn llm(choice: &str, config: Option<&Config>, graph: &engine::Graph) -> anyhow::Result<Arc<dyn LlmClient>> {
    if let Some(file) = choice.strip_prefix("scripted:") {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading the script {file}"))?;
        let script = Scripted::parse(&text).map_err(|err| anyhow::anyhow!("{file}:{err}"))?;
        return Ok(Arc::new(script));
    }
    if choice != "config" {
        bail!("--llm takes `config` or `scripted:FILE`, not `{choice}`");
    }
    let needed = graph.model_aliases();
    match config {
        Some(config) => Ok(Arc::new(config.models(&needed)?)),
        None if needed.is_empty() => Ok(Arc::new(engine::llm::NoModels)),
        None => bail!(
            "graph `{}` uses models, but there is no finch.toml; or pass --llm scripted:FILE",
            graph.name
        ),
    }
}

fn json_object(text: &str, flag: &str) -> anyhow::Result<State> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => bail!("{flag} takes a JSON object, such as '{{\"question\": \"hi\"}}'"),
        Err(err) => bail!("{flag} is not valid JSON: {err}"),
    }
}

fn parse_answers(answers: &[String]) -> anyhow::Result<BTreeMap<String, Value>> {
    answers
        .iter()
        .map(|answer| {
            let Some((id, json)) = answer.split_once('=') else {
                bail!("--answer takes ID=JSON, such as approve='{{\"approved\": true}}'");
            };
            let value =
                serde_json::from_str(json).with_context(|| format!("--answer {id}: not valid JSON"))?;
            Ok((id.to_owned(), value))
        })
        .collect()
}

fn print_event(event: &Event, format: RunFormat) {
    if format == RunFormat::Json {
        if let Ok(line) = serde_json::to_string(event) {
            println!("{line}");
        }
        return;
    }
    match event {
        Event::NodeFinished {
            step,
            node,
            writes,
            duration_ms,
        } => {
            let fields: Vec<String> = writes
                .iter()
                .map(|w| format!("{} = {}", w.field, short(&w.value)))
                .collect();
            println!("step {step}  {node}  ({duration_ms} ms)  {}", fields.join(", "));
        }
        Event::NodeRetrying {
            step,
            node,
            attempt,
            error,
            delay_ms,
        } => {
            println!("step {step}  {node}  attempt {attempt} failed: {error}; retrying in {delay_ms} ms");
        }
        Event::NodeFailed { step, node, error } => println!("step {step}  {node}  failed: {error}"),
        Event::NodeInterrupted { step, node, payload } => {
            println!("step {step}  {node}  waits for an answer: {payload}")
        }
        _ => {}
    }
}

/// A value on one line, cut to a readable length.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn print_outcome(outcome: &RunOutcome, format: RunFormat) -> anyhow::Result<()> {
    if format == RunFormat::Json {
        let summary = serde_json::json!({
            "status": outcome.status,
            "error": outcome.error,
            "output": outcome.output,
            "interrupts": outcome.interrupts,
            "state": outcome.checkpoint.state,
        });
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    match outcome.status {
        RunStatus::Succeeded => println!("\nsucceeded\n{}", serde_json::to_string_pretty(&outcome.output)?),
        RunStatus::Failed => println!("\nfailed: {}", outcome.error.as_deref().unwrap_or_default()),
        RunStatus::Interrupted => {
            println!("\nwaiting for an answer; run again with --answer ID=JSON for:");
            for interrupt in &outcome.interrupts {
                println!("  {}: {}", interrupt.id, interrupt.payload);
            }
        }
    }
    Ok(())
}
