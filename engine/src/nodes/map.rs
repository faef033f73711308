//! `map`: runs one inner node once per item of a list, concurrently.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Node, NodeFile, NodeKind};
use crate::graph::check::{Local, NodeCx};
use crate::run::{NodeError, Resume, RunCx, Write, run_node};
use crate::yaml::{self, Error, Spanned, from_node};
use futures::StreamExt;
use serde_json::Value;

/// Runs `node` once per item of the list `over`, at most `max_concurrency` at a time. Every
/// run's writes are merged by the fields' reducers, in the order of the items, so the fields
/// it writes need a reducer such as `append`.
///
/// ```yaml
/// answer_all:
///   kind: map
///   over: questions
///   as: question
///   max_concurrency: 4
///   node:
///     kind: subgraph
///     graph: database_agent
///     input: { question: question }
///     writes: { answers: "[output.answer]" }
/// ```
///
/// Inside, the item is a variable (`item` unless `as` names it) and `index` is its position.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapNode {
    /// A minijinja expression giving the list, such as `questions`.
    pub over: Spanned<String>,
    /// The name of the item variable inside `node` (default `item`).
    #[serde(rename = "as")]
    pub item: Option<Spanned<String>>,
    /// How many items run at once (default 4).
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<Spanned<u32>>,
    /// The node to run per item: an `llm`, `sql`, `subgraph` or `tool` node.
    pub node: Box<NodeFile>,
}

/// The keys of a `map` node besides `node`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    over: Spanned<String>,
    #[serde(default, rename = "as")]
    item: Option<Spanned<String>>,
    #[serde(default)]
    max_concurrency: Option<Spanned<u32>>,
}

const INNER_KINDS: &[&str] = &["llm", "sql", "subgraph", "tool"];

/// Items run at once when `max_concurrency` is not given.
const DEFAULT_CONCURRENCY: u32 = 4;

impl MapNode {
    pub fn item_name(&self) -> &str {
        self.item.as_ref().map_or("item", |item| item.as_str())
    }

    pub(super) fn parse(body: &yaml::Node) -> Result<MapNode, Vec<Error>> {
        let entries = body.entries().unwrap_or_default();
        let (inner, settings): (Vec<_>, Vec<_>) = entries
            .iter()
            .cloned()
            .partition(|(key, _)| key.as_str() == Some("node"));
        let settings =
            from_node::<Settings>(&body.with_entries(settings)).map_err(|err| err.suggest_among(&["node"]));
        let inner = match inner.first() {
            Some((_, inner)) => NodeFile::parse(inner),
            None => Err(vec![
                Error::new("`map` has no `node`")
                    .at(body.pos)
                    .hint("add `node:`, the node to run for each item"),
            ]),
        };
        let (settings, inner) = yaml::both(settings, inner)?;
        Ok(MapNode {
            over: settings.over,
            item: settings.item,
            max_concurrency: settings.max_concurrency,
            node: Box::new(inner),
        })
    }
}

impl NodeKind for MapNode {
    fn check(&self, cx: &mut NodeCx<'_, '_>) {
        cx.expression(&self.over, &[]);
        if let Some(item) = &self.item {
            cx.local_name(item);
        }
        if let Some(limit) = &self.max_concurrency
            && limit.value == 0
        {
            cx.error(limit.pos, "`max_concurrency` must be at least 1");
        }
        let inner = &self.node;
        if !INNER_KINDS.contains(&inner.node.kind()) {
            let message = format!("a `map` cannot run a `{}` node", inner.node.kind());
            let hint = format!("it runs {}", yaml::backticked(INNER_KINDS));
            cx.error_hint(inner.pos, &message, &hint);
            return;
        }
        if let Some(visits) = &inner.common.max_visits {
            cx.error_hint(
                visits.pos,
                "`max_visits` does not apply inside a `map`",
                "set it on the `map` node",
            );
        }
        let item_schema = cx.item_schema(&self.over);
        let locals = [
            Local::new(self.item_name(), item_schema),
            Local::new("index", Some(serde_json::json!({ "type": "integer" }))),
        ];
        cx.inside_map(&locals, |cx| {
            cx.common(&inner.common, &inner.node);
            inner.node.check(cx);
        });
    }

    /// Runs the inner node per item, at most `max_concurrency` at once; writes in item order.
    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError> {
        let items = match cx.eval(&self.over)? {
            Value::Array(items) => items,
            other => {
                let message = format!("`over` gave {}, not a list", crate::state::kind(&other));
                return Err(NodeError::failed(message));
            }
        };
        let limit = self
            .max_concurrency
            .as_ref()
            .map_or(DEFAULT_CONCURRENCY, |limit| limit.value) as usize;
        let inner = &self.node;
        let runs = items.into_iter().enumerate().map(|(index, item)| {
            let mut item_cx = cx.clone();
            item_cx.path = format!("{}[{index}]", cx.path);
            item_cx.scope = cx
                .scope
                .with(self.item_name(), &item)
                .with("index", &Value::from(index));
            item_cx.resume = Resume::Fresh;
            async move { run_node(&item_cx, &inner.common, &inner.node).await }
        });
        let results: Vec<_> = futures::stream::iter(runs).buffered(limit.max(1)).collect().await;
        let mut writes = Vec::new();
        for result in results {
            match result {
                Ok(item_writes) => writes.extend(item_writes),
                Err(NodeError::Wait(_)) => {
                    return Err(NodeError::failed(
                        "a run inside a `map` cannot wait for an answer",
                    ));
                }
                Err(failure) => return Err(failure),
            }
        }
        Ok(writes)
    }
}

impl Node {
    /// The node a `map` runs, if this is one.
    pub fn map_inner(&self) -> Option<&NodeFile> {
        match self {
            Node::Map(map) => Some(&map.node),
            _ => None,
        }
    }
}
