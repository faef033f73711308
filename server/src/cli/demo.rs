//! `finch demo`: seeds a demo user and plays the demo conversation (see [`crate::demo`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::run::llm_for_worker;
use super::sandbox::SandboxArgs;
use super::serve::DbArgs;
use crate::assistant::Assistant;
use crate::config::Config;
use crate::demo::{self, Options};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The folder holding `graphs/`, `prompts/` and `schemas/`.
    #[arg(long, env = "FINCH_PROJECT", default_value = ".")]
    project: PathBuf,
    /// Where the models' replies come from: `scripted:FILE` (offline), or `config` to ask
    /// the providers of finch.toml.
    #[arg(long, default_value = "scripted:examples/demo/demo.script.yaml")]
    llm: String,
    /// The user's messages, a YAML list.
    #[arg(long, default_value = "examples/demo/demo.conversation.yaml")]
    conversation: PathBuf,
    /// A folder to write each chart's SVG into.
    #[arg(long)]
    charts: Option<PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// `finch demo`.
pub(crate) async fn run(args: DemoArgs, config_path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let messages = demo::read_conversation(&args.project.join(&args.conversation))?;
    let config = Config::read(config_path)?;
    let llm = match args.llm.strip_prefix("scripted:") {
        Some(file) => llm_for_worker(&format!("scripted:{}", args.project.join(file).display()), None)?,
        None => llm_for_worker(&args.llm, config.as_ref())?,
    };
    let pool = args.db.connect().await?;
    let Some(sandbox) = args.sandbox.connect(&pool, config.as_ref()).await else {
        anyhow::bail!("the demo needs the SQL sandbox: see the warning above");
    };
    let assistant = Assistant::load(&args.project, llm, pool.clone(), Some(sandbox), 1_000)?;
    let today = chrono::Utc::now().date_naive();
    let seeded = demo::seed(&pool, today).await?;
    println!(
        "demo user {} (password {}): {} transactions, {} budgets, {} goals over the year to {today}",
        seeded.email, seeded.password, seeded.transactions, seeded.budgets, seeded.goals
    );
    println!("models: {}\n", args.llm);
    let options = Options { charts: args.charts };
    let mut out = std::io::stdout().lock();
    demo::play(pool, assistant, &seeded.email, &messages, &options, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}
