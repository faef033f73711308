//! Tools the application adds to the `tool` node, such as the finance tools of `finch serve`.
//!
//! A host tool runs in the step's transaction, which commits together with the step's
//! record: its writes happen once, with the step, or not at all. It gets the run's context
//! (whom it acts for, which only the caller of the run sets) and the node's arguments.

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::ToolSpec;
use crate::run::State;

/// One tool of the application.
pub trait HostTool: Send + Sync + std::fmt::Debug {
    /// Its name, arguments and description, as the checker sees them.
    fn spec(&self) -> &'static ToolSpec;

    /// Runs it. `Ok` is its output (a refusal the model should hear is output too);
    /// `Err` fails the node, and the step's transaction with it.
    fn call<'a>(&'a self, call: HostCall<'a>) -> BoxFuture<'a, Result<Value, String>>;
}

/// What a host tool is called with.
#[derive(Debug)]
pub struct HostCall<'a> {
    /// The step's transaction.
    pub tx: &'a mut sqlx::PgConnection,
    /// The run's context.
    pub context: &'a State,
    pub args: Map<String, Value>,
}
