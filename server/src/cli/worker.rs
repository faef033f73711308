//! `finch worker`: takes over runs whose worker went away, and starts queued runs.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use engine::run::Events;
use engine::worker::Ran;

use super::durable::{store, worker};
use super::run::{RunFormat, llm_for_worker, print_event};
use super::sandbox::SandboxArgs;
use crate::config::Config;

/// Run a worker.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Where model replies come from: `config` or `scripted:FILE`.
    #[arg(long, default_value = "config")]
    llm: String,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Stop when there is nothing left to take over or start, instead of polling.
    #[arg(long)]
    once: bool,
    /// Seconds between looks for work.
    #[arg(long, default_value_t = 1.0)]
    poll_secs: f64,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    format: RunFormat,
}

pub(crate) async fn run(args: WorkerArgs, config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::read(config)?;
    let store = store(args.db.as_deref(), config.as_ref()).await?;
    let sandbox = args.sandbox.connect(store.pool(), config.as_ref()).await;
    let worker = worker(
        store,
        llm_for_worker(&args.llm, config.as_ref())?,
        config.as_ref(),
        sandbox,
    );
    let (events, mut receiver) = Events::channel();
    let format = args.format;
    let printer = tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            print_event(&event, format);
        }
    });
    loop {
        let mut did = false;
        while let Some(ran) = worker.recover(&events).await? {
            println!("took over {}", describe(&ran));
            did = true;
        }
        while let Some(ran) = worker.start_queued(&events).await? {
            println!("started from the queue {}", describe(&ran));
            did = true;
        }
        if args.once && !did {
            break;
        }
        if !did {
            tokio::time::sleep(Duration::from_secs_f64(args.poll_secs.max(0.05))).await;
        }
    }
    drop(events);
    printer.await?;
    Ok(ExitCode::SUCCESS)
}

fn describe(ran: &Ran) -> String {
    match ran {
        Ran::Ran { run, outcome } => {
            let error = outcome
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            format!("run {run}: {}{error}", outcome.status.name())
        }
        Ran::Queued { run } => format!("run {run}: queued"),
    }
}
