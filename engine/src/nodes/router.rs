//! `router`: picks the next node from the state, writing nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::NodeKind;
use crate::graph::check::NodeCx;
use crate::graph::file::{RouteFile, Targets};
use crate::run::{NodeError, RunCx, Write};
use crate::yaml::Spanned;

/// Chooses where to go next: the first route whose `when` holds, else `default`.
///
/// ```yaml
/// route:
///   kind: router
///   routes:
///     - { when: "intent == 'database'", to: database }
///     - { when: "intent == 'chat'", to: reply }
///   default: reply
/// ```
///
/// A router's routes are its outgoing edges: no edge in `edges` may start from it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterNode {
    /// Conditions tried in order; the first that holds picks the next node(s).
    pub routes: Vec<Spanned<RouteFile>>,
    /// Where to go when no route matches.
    pub default: Targets,
}

impl NodeKind for RouterNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        if self.routes.is_empty() {
            cx.warning_hint(
                cx.pos(),
                "router has no routes",
                "an edge `{ from: …, to: … }` says the same more simply",
            );
        }
        for route in &self.routes {
            cx.expression(&route.when, &[]);
        }
    }

    /// Writes nothing: its routes are evaluated with the other edges, on the merged state.
    async fn run(&self, _cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        Ok(Vec::new())
    }
}
