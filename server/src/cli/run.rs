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
use engine::store::StartMode;
use engine::worker::Ran;
use serde_json::Value;

use super::sandbox::SandboxArgs;
use super::{database, durable, graph_path, load_graph};
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
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Run on a durable thread: `new` creates one (its id is printed first), an id continues
    /// one. Every step is then recorded in the database.
    #[arg(long)]
    thread: Option<String>,
    /// With `--thread`: when the thread has an open run, queue this one instead of refusing.
    #[arg(long)]
    queue: bool,
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
    let answers = parse_answers(&args.answers)?;
    refuse_unknown_answers(&graph, &answers)?;
    let llm = llm(&args.llm, config.as_ref(), &graph)?;
    let (events, mut receiver) = Events::channel();
    let format = args.format;
    let printer = tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            print_event(&event, format);
        }
    });
    let request = Request {
        graph: &graph,
        input,
        context,
        answers,
        events: &events,
    };
    let outcome = match &args.thread {
        None => {
            let mut engine = Engine::new(llm);
            for tool in crate::tools::all() {
                engine = engine.with_host_tool(tool);
            }
            if let Some(url) = &args.db {
                let pool = database(url)?;
                if let Some(sandbox) = args.sandbox.connect(&pool, config.as_ref()).await {
                    engine = engine.with_sandbox(sandbox);
                }
                engine = engine.with_database(pool);
            }
            Some(run_in_memory(&engine, request).await?)
        }
        Some(thread) => run_durable(&args, thread, config.as_ref(), llm, request).await?,
    };
    drop(events);
    printer.await.context("printing events")?;
    let Some(outcome) = outcome else {
        return Ok(ExitCode::SUCCESS);
    };
    print_outcome(&outcome, format)?;
    Ok(match outcome.status {
        RunStatus::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// `println!`, but a closed stdout (`finch run … | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// One run's graph, input and answers.
struct Request<'a> {
    graph: &'a engine::Graph,
    input: State,
    context: State,
    answers: BTreeMap<String, Value>,
    events: &'a Events,
}

impl Request<'_> {
    /// The answers given for the interrupts an outcome waits for.
    fn answers_for(&mut self, outcome: &RunOutcome) -> Answers {
        outcome
            .interrupts
            .iter()
            .filter_map(|interrupt| Some((interrupt.id.clone(), self.answers.remove(&interrupt.id)?)))
            .collect()
    }
}

async fn run_in_memory(engine: &Engine, mut request: Request<'_>) -> anyhow::Result<RunOutcome> {
    let (graph, events) = (request.graph, request.events);
    let mut outcome = engine
        .start(graph, request.input.clone(), request.context.clone(), events)
        .await?;
    while outcome.status == RunStatus::Interrupted {
        let answers = request.answers_for(&outcome);
        if answers.is_empty() {
            break;
        }
        outcome = engine.resume(graph, outcome.checkpoint, answers, events).await?;
    }
    Ok(outcome)
}

/// A run on a durable thread (`new` for a new one), every step recorded; `None` when queued.
async fn run_durable(
    args: &RunArgs,
    thread: &str,
    config: Option<&Config>,
    llm: Arc<dyn LlmClient>,
    mut request: Request<'_>,
) -> anyhow::Result<Option<RunOutcome>> {
    let store = durable::store(args.db.as_deref(), config).await?;
    let sandbox = args.sandbox.connect(store.pool(), config).await;
    let worker = durable::worker(store, llm, config, sandbox);
    let thread = match thread {
        "new" => {
            let thread = worker
                .create_thread(request.graph, Value::Object(Default::default()))
                .await?;
            match args.format {
                RunFormat::Json => say!("{}", serde_json::json!({ "thread": thread.id })),
                RunFormat::Human => say!("thread {}", thread.id),
            }
            thread.id
        }
        id => {
            let id: uuid::Uuid = id
                .parse()
                .with_context(|| format!("--thread takes `new` or a thread id, not `{id}`"))?;
            let stored = worker.store().thread(id).await?;
            if stored.graph != request.graph.name {
                bail!(
                    "thread {id} runs graph `{}`, not `{}`",
                    stored.graph,
                    request.graph.name
                );
            }
            id
        }
    };
    let mode = if args.queue {
        StartMode::Enqueue
    } else {
        StartMode::Reject
    };
    let (input, context) = (
        std::mem::take(&mut request.input),
        std::mem::take(&mut request.context),
    );
    let mut ran = worker.start(thread, input, context, mode, request.events).await?;
    loop {
        match ran {
            Ran::Queued { run } => {
                say!("queued run {run}: it starts when the thread's open run ends (`finch worker`)");
                return Ok(None);
            }
            Ran::Ran { run, outcome } => {
                let answers = request.answers_for(&outcome);
                if outcome.status != RunStatus::Interrupted || answers.is_empty() {
                    return Ok(Some(*outcome));
                }
                ran = worker.resume(run, answers, request.events).await?;
            }
        }
    }
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

/// The model client of a worker, which may run any graph: every configured model.
pub(crate) fn llm_for_worker(choice: &str, config: Option<&Config>) -> anyhow::Result<Arc<dyn LlmClient>> {
    let aliases = config.map(Config::model_aliases).unwrap_or_default();
    llm_with(choice, config, &aliases, "the worker")
}

/// The model client for one graph: scripted replies, or the configured models it uses.
fn llm(choice: &str, config: Option<&Config>, graph: &engine::Graph) -> anyhow::Result<Arc<dyn LlmClient>> {
    llm_with(
        choice,
        config,
        &graph.model_aliases(),
        &format!("graph `{}`", graph.name),
    )
}

fn llm_with(
    choice: &str,
    config: Option<&Config>,
    needed: &std::collections::BTreeSet<String>,
    who: &str,
) -> anyhow::Result<Arc<dyn LlmClient>> {
    if let Some(file) = choice.strip_prefix("scripted:") {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading the script {file}"))?;
        let script = Scripted::parse(&text).map_err(|err| anyhow::anyhow!("{file}:{err}"))?;
        return Ok(Arc::new(script));
    }
    if choice != "config" {
        bail!("--llm takes `config` or `scripted:FILE`, not `{choice}`");
    }
    match config {
        Some(config) => Ok(Arc::new(config.models(needed)?)),
        None if needed.is_empty() => Ok(Arc::new(engine::llm::NoModels)),
        None => bail!("{who} uses models, but there is no finch.toml; or pass --llm scripted:FILE"),
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

pub(crate) fn print_event(event: &Event, format: RunFormat) {
    if format == RunFormat::Json {
        if let Ok(line) = serde_json::to_string(event) {
            say!("{line}");
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
            say!("step {step}  {node}  ({duration_ms} ms)  {}", fields.join(", "));
        }
        Event::NodeRetrying {
            step,
            node,
            attempt,
            error,
            delay_ms,
        } => {
            say!("step {step}  {node}  attempt {attempt} failed: {error}; retrying in {delay_ms} ms");
        }
        Event::NodeFailed { step, node, error } => say!("step {step}  {node}  failed: {error}"),
        Event::NodeInterrupted { step, node, payload } => {
            say!("step {step}  {node}  waits for an answer: {payload}")
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
        say!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    match outcome.status {
        RunStatus::Succeeded => say!("\nsucceeded\n{}", serde_json::to_string_pretty(&outcome.output)?),
        RunStatus::Failed => say!("\nfailed: {}", outcome.error.as_deref().unwrap_or_default()),
        RunStatus::Interrupted => {
            say!("\nwaiting for an answer; run again with --answer ID=JSON for:");
            for interrupt in &outcome.interrupts {
                say!("  {}: {}", interrupt.id, interrupt.payload);
            }
        }
    }
    Ok(())
}
