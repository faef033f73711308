//! Node kinds: the one list of what a node can be, and what every node shares.
//!
//! [`Node`] is the registry: adding a kind means a file in `nodes/`, one variant here, one
//! arm in [`Node::parse`] and [`Node::check`], and the compiler points at anything else.
//! Each kind is a plain struct read from YAML with `deny_unknown_fields`; its doc comment
//! shows it in a graph file, and ends up in `schemas/graph.schema.json` for editors.

mod interrupt;
mod llm;
mod map;
mod router;
pub(crate) mod sql;
mod sql_query;
mod subgraph;
mod tool;

use futures::future::BoxFuture;
use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::NodeId;
use crate::graph::check::NodeCx;
use crate::run::{NodeError, RunCx, Write};
use crate::yaml::{self, Error, Pos, Spanned, from_node};

pub use interrupt::InterruptNode;
pub use llm::{LlmNode, Prompt};
pub use map::MapNode;
pub use router::RouterNode;
pub use sql::{SqlMode, SqlNode};
pub use sql_query::SqlQueryNode;
pub use subgraph::SubgraphNode;
pub use tool::host::{HostCall, HostTool};
pub use tool::{TOOLS, ToolNode, ToolSpec};

/// Names bound to minijinja expressions: `{ answer: "output.text", route: "output.route" }`.
pub type Assignments = IndexMap<Spanned<String>, Spanned<String>>;

/// A JSON Schema: the name of a file in `schemas/`, or written inline.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct SchemaRef(pub Spanned<Value>);

impl JsonSchema for SchemaRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SchemaRef".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "A file in `schemas/` (such as `route.schema.json`) or an inline JSON Schema.",
            "anyOf": [{ "type": "string" }, { "type": "object" }],
        })
    }
}

/// Implemented once per node kind, in `nodes/<kind>.rs`.
pub(crate) trait NodeKind {
    /// Checks that need no network or database: pushes problems, never stops early, and
    /// records the fields the node writes (through [`NodeCx::writes`]).
    fn check(&self, cx: &mut NodeCx<'_, '_>);

    /// Runs the node on the step's state and returns what it writes.
    async fn run(&self, cx: &RunCx<'_>) -> Result<Vec<Write>, NodeError>;
}

/// What every node may set, whatever its kind.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCommon {
    /// What the node does, for people reading the graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How often the node may run in one run; a bound for a cycle through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_visits: Option<Spanned<u32>>,
    /// Time allowed for one attempt, in seconds (fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001))]
    pub timeout_secs: Option<Spanned<f64>>,
    /// Retries after a failed attempt, with exponential backoff and jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Spanned<Retry>>,
}

/// Keys of [`NodeCommon`], accepted on every node besides its kind's own.
pub(crate) const COMMON_KEYS: &[&str] = &["description", "max_visits", "timeout_secs", "retry"];

/// How a failing node is tried again: `{ attempts: 3, backoff_ms: 500 }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included.
    #[schemars(range(min = 1))]
    pub attempts: u32,
    /// Delay before the second attempt; each later one doubles it, with full jitter.
    #[serde(default = "Retry::default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest delay between attempts.
    #[serde(default = "Retry::default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Retry {
    fn default_backoff_ms() -> u64 {
        500
    }
    fn default_max_backoff_ms() -> u64 {
        30_000
    }
}

/// A node as written: its position, what every node has, and what its kind has.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFile {
    #[serde(skip)]
    pub pos: Pos,
    #[serde(flatten)]
    pub common: NodeCommon,
    #[serde(flatten)]
    pub node: Node,
}

/// A checked node of a graph.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDef {
    pub id: NodeId,
    #[serde(skip)]
    pub pos: Pos,
    #[serde(flatten)]
    pub common: NodeCommon,
    #[serde(flatten)]
    pub node: Node,
}

/// What a node does: one variant per kind.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    Llm(LlmNode),
    Router(RouterNode),
    Sql(SqlNode),
    SqlQuery(SqlQueryNode),
    Subgraph(SubgraphNode),
    Map(MapNode),
    Interrupt(InterruptNode),
    Tool(ToolNode),
}

impl Node {
    /// Every kind's name, as written after `kind:`.
    pub const KINDS: &[&str] = &[
        "llm",
        "router",
        "sql",
        "sql_query",
        "subgraph",
        "map",
        "interrupt",
        "tool",
    ];

    /// Whether its result depends on more than the state: a `sql` statement, a sandboxed
    /// query, or the `now` and `sql_schema` tools. A replay gives such a node its recorded
    /// writes instead of running it.
    pub fn reaches_outside(&self) -> bool {
        match self {
            Node::Sql(_) | Node::SqlQuery(_) => true,
            Node::Tool(tool) => matches!(tool.tool.as_str(), "now" | "sql_schema") || !tool.is_built_in(),
            _ => false,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Node::Llm(_) => "llm",
            Node::Router(_) => "router",
            Node::Sql(_) => "sql",
            Node::SqlQuery(_) => "sql_query",
            Node::Subgraph(_) => "subgraph",
            Node::Map(_) => "map",
            Node::Interrupt(_) => "interrupt",
            Node::Tool(_) => "tool",
        }
    }

    /// Reads the kind-specific keys of a node (`body` holds neither `kind` nor common keys).
    fn parse(kind: &yaml::Node, body: &yaml::Node) -> Result<Node, Vec<Error>> {
        fn read<T: serde::de::DeserializeOwned>(body: &yaml::Node) -> Result<T, Vec<Error>> {
            from_node(body).map_err(|err| vec![err.suggest_among(COMMON_KEYS)])
        }
        let Some(name) = kind.as_str() else {
            let message = format!("`kind` is a name, found {}", kind.describe());
            return Err(vec![Error::new(message).at(kind.pos).hint(kinds_hint())]);
        };
        match name {
            "llm" => read(body).map(Node::Llm),
            "router" => read(body).map(Node::Router),
            "sql" => read(body).map(Node::Sql),
            "sql_query" => read(body).map(Node::SqlQuery),
            "subgraph" => read(body).map(Node::Subgraph),
            "map" => MapNode::parse(body).map(Node::Map),
            "interrupt" => read(body).map(Node::Interrupt),
            "tool" => read(body).map(Node::Tool),
            other => Err(vec![
                Error::new(format!("unknown node kind `{other}`"))
                    .at(kind.pos)
                    .hint(yaml::suggestion(other, Node::KINDS)),
            ]),
        }
    }

    pub(crate) fn check(&self, cx: &mut NodeCx<'_, '_>) {
        match self {
            Node::Llm(node) => node.check(cx),
            Node::Router(node) => node.check(cx),
            Node::Sql(node) => node.check(cx),
            Node::SqlQuery(node) => node.check(cx),
            Node::Subgraph(node) => node.check(cx),
            Node::Map(node) => node.check(cx),
            Node::Interrupt(node) => node.check(cx),
            Node::Tool(node) => node.check(cx),
        }
    }

    /// Runs the node once (no timeout, no retry: see `run::task`). Boxed, because a `map`
    /// runs a node inside itself.
    pub(crate) fn run<'a>(&'a self, cx: &'a RunCx<'_>) -> BoxFuture<'a, Result<Vec<Write>, NodeError>> {
        Box::pin(async move {
            match self {
                Node::Llm(node) => node.run(cx).await,
                Node::Router(node) => node.run(cx).await,
                Node::Sql(node) => node.run(cx).await,
                Node::SqlQuery(node) => node.run(cx).await,
                Node::Subgraph(node) => node.run(cx).await,
                Node::Map(node) => node.run(cx).await,
                Node::Interrupt(node) => node.run(cx).await,
                Node::Tool(node) => node.run(cx).await,
            }
        })
    }

    /// Whether the node changes something outside the run (a `sql` write, a tool of the
    /// application), so that repeating it after an attempt of unknown outcome could apply it
    /// twice.
    pub fn writes_outside(&self) -> bool {
        match self {
            Node::Sql(sql) => sql.mode == SqlMode::Write,
            // The application's tools may change anything; they are treated as if they do.
            Node::Tool(tool) => !tool.is_built_in(),
            _ => false,
        }
    }

    /// Whether the node does work that can be timed out and retried.
    pub fn does_work(&self) -> bool {
        !matches!(self, Node::Router(_) | Node::Interrupt(_))
    }
}

fn kinds_hint() -> String {
    format!("one of {}", yaml::backticked(Node::KINDS))
}

impl NodeFile {
    /// Reads one node: `kind`, the keys every node has, and its kind's own keys.
    pub(crate) fn parse(body: &yaml::Node) -> Result<NodeFile, Vec<Error>> {
        let Some(entries) = body.entries() else {
            let message = format!("a node is a map with a `kind`, found {}", body.describe());
            return Err(vec![Error::new(message).at(body.pos).hint(kinds_hint())]);
        };
        let Some((_, kind)) = entries.iter().find(|(key, _)| key.as_str() == Some("kind")) else {
            let hint = format!("add `kind:`, {}", kinds_hint());
            return Err(vec![Error::new("node has no `kind`").at(body.pos).hint(hint)]);
        };
        let (common, specific): (Vec<_>, Vec<_>) = entries
            .iter()
            .filter(|(key, _)| key.as_str() != Some("kind"))
            .cloned()
            .partition(|(key, _)| key.as_str().is_some_and(|key| COMMON_KEYS.contains(&key)));
        let common = from_node::<NodeCommon>(&body.with_entries(common));
        let node = Node::parse(kind, &body.with_entries(specific));
        let (common, node) = yaml::both(common, node)?;
        Ok(NodeFile {
            pos: body.pos,
            common,
            node,
        })
    }
}

/// The schema editors see for a node: each kind's keys plus the keys every node has.
impl JsonSchema for NodeFile {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Node".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let common = NodeCommon::json_schema(generator);
        let common_properties = common.get("properties").cloned().unwrap_or_default();
        let mut schema = Node::json_schema(generator);
        if let Some(Value::Array(variants)) = schema.get_mut("oneOf") {
            for variant in variants {
                if let Some(Value::Object(properties)) = variant.get_mut("properties")
                    && let Value::Object(common) = &common_properties
                {
                    properties.extend(common.clone());
                }
            }
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lists_every_variant_of_the_schema() {
        let schema = schemars::schema_for!(Node);
        let variants = schema.get("oneOf").and_then(Value::as_array).expect("oneOf");
        let kinds: Vec<&str> = variants
            .iter()
            .filter_map(|variant| variant.pointer("/properties/kind/const").and_then(Value::as_str))
            .collect();
        assert_eq!(kinds, Node::KINDS);
    }

    #[test]
    fn an_unknown_kind_is_reported_at_the_kind_with_a_suggestion() {
        let tree = yaml::parse("kind: lm\nmodel: fast\n").unwrap();
        let errors = NodeFile::parse(&tree).unwrap_err();
        assert_eq!(errors[0].message, "unknown node kind `lm`");
        assert_eq!(errors[0].pos, Pos::new(1, 7));
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `llm`?"));
    }

    #[test]
    fn common_keys_are_suggested_for_typos_in_any_kind() {
        let tree = yaml::parse("kind: router\ndefault: END\nroutes: []\ntimout_secs: 3\n").unwrap();
        let errors = NodeFile::parse(&tree).unwrap_err();
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `timeout_secs`?"));
    }
}
