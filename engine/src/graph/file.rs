//! The graph file as written: raw types that keep every position.
//!
//! The top level, the state fields and each node are read separately from the YAML tree, so
//! a file with a mistake in three nodes gets three errors, not one. Everything here is also
//! the source of `schemas/graph.schema.json` (through schemars), so the doc comments are what
//! editors show while a graph is typed.

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::nodes::NodeFile;
use crate::state::Reducer;
use crate::yaml::{self, Error, Node, Pos, Spanned, from_node};

/// A graph file (format version 1): typed state, nodes and the edges between them.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Finch graph")]
pub struct GraphFile {
    /// Version of the graph-file format. Always `1`.
    #[schemars(range(min = 1, max = 1))]
    pub version: Spanned<u32>,
    /// What the graph does, for people reading it.
    #[serde(default)]
    pub description: Option<String>,
    /// The most steps one run may take (default 100). Setting it bounds every cycle.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_steps: Option<Spanned<u32>>,
    /// Read-only values the caller gives each run, such as the user's id; templates and
    /// expressions see them as `context.<name>`. Each is a JSON Schema.
    #[serde(default)]
    pub context: IndexMap<Spanned<String>, FieldFile>,
    /// The typed state: each field is a JSON Schema plus an optional `reducer`.
    #[serde(default)]
    pub state: IndexMap<Spanned<String>, FieldFile>,
    /// The state fields a run accepts as input.
    #[serde(default)]
    pub input: Vec<Spanned<String>>,
    /// The state fields a run returns.
    #[serde(default)]
    pub output: Vec<Spanned<String>>,
    /// The nodes, by id.
    pub nodes: IndexMap<Spanned<String>, NodeFile>,
    /// How control flows between nodes, from `START` to `END`.
    pub edges: Vec<Spanned<EdgeFile>>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "version",
    "description",
    "max_steps",
    "context",
    "state",
    "input",
    "output",
    "nodes",
    "edges",
];

/// A state or context field: a JSON Schema, plus `reducer` for state fields.
#[derive(Debug, Clone)]
pub struct FieldFile {
    pub pos: Pos,
    pub reducer: Option<Spanned<Reducer>>,
    /// The JSON Schema: everything but `reducer`.
    pub schema: Value,
}

impl JsonSchema for FieldFile {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Field".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let reducer = generator.subschema_for::<Reducer>();
        json_schema!({
            "description": "A JSON Schema for the field's value (`type`, `items`, `properties`, `enum`, `$ref` to a file in `schemas/`, `default` for its initial value …), plus `reducer`.",
            "type": "object",
            "properties": {
                "reducer": reducer,
            },
            "additionalProperties": true,
        })
    }
}

/// An edge: `from` one node (or several, to wait for all of them) `to` the next ones,
/// or through `routes` where the first matching condition decides.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    /// Where the edge starts: `START`, a node id, or a list of node ids (wait for all).
    pub from: Targets,
    /// Where it goes: `END`, a node id, or a list of node ids (run in parallel).
    #[serde(default)]
    pub to: Option<Targets>,
    /// Conditions tried in order; the first that holds picks the next node(s).
    #[serde(default)]
    pub routes: Option<Vec<Spanned<RouteFile>>>,
    /// Where to go when no route matches. Required with `routes`.
    #[serde(default)]
    pub default: Option<Targets>,
}

/// One route: a minijinja expression over the state, and where to go when it holds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// A minijinja expression over the state, such as `route == 'database'`.
    pub when: Spanned<String>,
    /// Where to go when it holds.
    pub to: Targets,
}

/// One node id, or a list of them.
#[derive(Debug, Clone)]
pub struct Targets {
    pub pos: Pos,
    pub ids: Vec<Spanned<String>>,
}

impl Serialize for Targets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.ids.as_slice() {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Targets, D::Error> {
        let spanned = Spanned::<OneOrMany>::deserialize(deserializer)?;
        let ids = match spanned.value {
            OneOrMany::One(id) => vec![Spanned::new(spanned.pos, id)],
            OneOrMany::Many(ids) => ids,
        };
        Ok(Targets {
            pos: spanned.pos,
            ids,
        })
    }
}

/// Read with a visitor rather than `#[serde(untagged)]`, which would lose the positions.
enum OneOrMany {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OneOrMany, D::Error> {
        struct OneOrManyVisitor;

        impl<'de> serde::de::Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a node id or a list of node ids")
            }

            fn visit_str<E>(self, id: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(id.to_owned()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element()? {
                    ids.push(id);
                }
                Ok(OneOrMany::Many(ids))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

impl JsonSchema for Targets {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Targets".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A node id (or `START` / `END`), or a list of them.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            ],
        })
    }
}

/// Reads a graph file, reporting every problem in its shape at once.
pub(crate) fn parse(text: &str) -> Result<GraphFile, Vec<Error>> {
    let tree = yaml::parse(text).map_err(|err| vec![err])?;
    let Some(entries) = tree.entries() else {
        return Err(vec![
            Error::new(format!("a graph file is a map, found {}", tree.describe()))
                .at(tree.pos)
                .hint("start with `version: 1`, then `state:`, `nodes:` and `edges:`"),
        ]);
    };
    let mut errors = duplicate_keys(&tree, "key `{}` is given twice");
    let mut version = None;
    let mut description = None;
    let mut max_steps = None;
    let mut context = IndexMap::new();
    let mut state = IndexMap::new();
    let mut input = Vec::new();
    let mut output = Vec::new();
    let mut nodes = None;
    let mut edges = None;
    for (key, value) in entries {
        match key.as_str().unwrap_or_default() {
            "version" => version = read(value, &mut errors),
            "description" => description = read(value, &mut errors),
            "max_steps" => max_steps = read(value, &mut errors),
            "context" => context = parse_fields(value, &mut errors),
            "state" => state = parse_fields(value, &mut errors),
            "input" => input = read(value, &mut errors).unwrap_or_default(),
            "output" => output = read(value, &mut errors).unwrap_or_default(),
            "nodes" => nodes = Some(parse_nodes(value, &mut errors)),
            "edges" => edges = Some(parse_edges(value, &mut errors)),
            "name" => errors.push(
                Error::new("unknown key `name`")
                    .at(key.pos)
                    .hint("a graph is named after its file: `support.yaml` is the graph `support`"),
            ),
            other => errors.push(
                Error::new(format!("unknown key `{other}`"))
                    .at(key.pos)
                    .hint(yaml::suggestion(other, TOP_LEVEL_KEYS)),
            ),
        }
    }
    let version: Option<Spanned<u32>> = version;
    if let Some(version) = &version
        && version.value != 1
    {
        errors.push(
            Error::new(format!(
                "graph format version `{}` is not supported",
                version.value
            ))
            .at(version.pos)
            .hint("this Finch reads `version: 1`"),
        );
    }
    let missing = |key: &str, hint: &str| Error::new(format!("missing key `{key}`")).at(tree.pos).hint(hint);
    if version.is_none() && !errors.iter().any(|e| e.message.contains("`version`")) {
        errors.push(missing("version", "start the file with `version: 1`"));
    }
    if nodes.is_none() {
        errors.push(missing("nodes", "add `nodes:`, a map from node id to node"));
    }
    if edges.is_none() {
        errors.push(missing(
            "edges",
            "add `edges:`, starting with `- { from: START, to: <first node> }`",
        ));
    }
    match (errors.is_empty(), version, nodes, edges) {
        (true, Some(version), Some(nodes), Some(edges)) => Ok(GraphFile {
            version,
            description,
            max_steps,
            context,
            state,
            input,
            output,
            nodes,
            edges,
        }),
        _ => Err(errors),
    }
}

/// Deserializes `node`, pushing the error if it fails.
fn read<T: serde::de::DeserializeOwned>(node: &Node, errors: &mut Vec<Error>) -> Option<T> {
    from_node(node).map_err(|err| errors.push(err)).ok()
}

/// Repeated keys in `map`; `message` has a `{}` for the key.
fn duplicate_keys(map: &Node, message: &str) -> Vec<Error> {
    map.duplicate_keys()
        .into_iter()
        .map(|(first, again)| {
            let key = again.as_str().unwrap_or("?");
            Error::new(message.replace("{}", key))
                .at(again.pos)
                .hint(format!("it was first given at line {}", first.pos.line))
        })
        .collect()
}

/// Each entry of a map must have a string key; returns the entries that do.
fn string_keyed<'a>(map: &'a Node, what: &str, errors: &mut Vec<Error>) -> Vec<(Spanned<String>, &'a Node)> {
    let Some(entries) = map.entries() else {
        if map.value != yaml::Value::Null {
            errors
                .push(Error::new(format!("expected a map of {what}, found {}", map.describe())).at(map.pos));
        }
        return Vec::new();
    };
    let mut found = Vec::new();
    for (key, value) in entries {
        match key.as_str() {
            Some(name) => found.push((Spanned::new(key.pos, name.to_owned()), value)),
            None => {
                errors.push(Error::new(format!("a key here is a name, found {}", key.describe())).at(key.pos))
            }
        }
    }
    found
}

fn parse_fields(map: &Node, errors: &mut Vec<Error>) -> IndexMap<Spanned<String>, FieldFile> {
    errors.extend(duplicate_keys(map, "field `{}` is declared twice"));
    let mut fields = IndexMap::new();
    for (name, value) in string_keyed(map, "fields", errors) {
        if let Some(field) = parse_field(value, errors) {
            fields.insert(name, field);
        }
    }
    fields
}

fn parse_field(node: &Node, errors: &mut Vec<Error>) -> Option<FieldFile> {
    let Some(entries) = node.entries() else {
        errors.push(
            Error::new(format!(
                "a field is a JSON Schema (a map), found {}",
                node.describe()
            ))
            .at(node.pos)
            .hint("for example `{ type: string }`"),
        );
        return None;
    };
    let (reducer, schema): (Vec<_>, Vec<_>) = entries
        .iter()
        .cloned()
        .partition(|(key, _)| key.as_str() == Some("reducer"));
    let reducer = match reducer.first() {
        Some((_, value)) => Some(read::<Spanned<Reducer>>(value, errors)?),
        None => None,
    };
    let schema = read::<Value>(&node.with_entries(schema), errors)?;
    Some(FieldFile {
        pos: node.pos,
        reducer,
        schema,
    })
}

fn parse_nodes(map: &Node, errors: &mut Vec<Error>) -> IndexMap<Spanned<String>, NodeFile> {
    errors.extend(duplicate_keys(map, "node id `{}` is defined twice"));
    let mut nodes = IndexMap::new();
    for (id, body) in string_keyed(map, "nodes", errors) {
        match NodeFile::parse(body) {
            Ok(node) => {
                nodes.insert(id, node);
            }
            Err(found) => errors.extend(found),
        }
    }
    nodes
}

fn parse_edges(list: &Node, errors: &mut Vec<Error>) -> Vec<Spanned<EdgeFile>> {
    let yaml::Value::Seq(items) = &list.value else {
        errors.push(
            Error::new(format!("`edges` is a list, found {}", list.describe()))
                .at(list.pos)
                .hint("write each edge as `- { from: a, to: b }`"),
        );
        return Vec::new();
    };
    items.iter().filter_map(|item| read(item, errors)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::NodeFile;

    /// The ```yaml blocks of a Markdown text (or of a doc comment).
    pub(crate) fn yaml_blocks(text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            match (&mut current, line.trim_start()) {
                (None, "```yaml") => current = Some(String::new()),
                (Some(block), "```") => {
                    blocks.push(std::mem::take(block));
                    current = None;
                }
                (Some(block), _) => {
                    block.push_str(line);
                    block.push('\n');
                }
                (None, _) => {}
            }
        }
        blocks
    }

    /// Reads a documentation example: a whole graph, top-level keys, nodes by id, or cases.
    fn read_example(block: &str) -> Result<(), Vec<Error>> {
        let first_key = block
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap_or_default();
        let first_key = first_key.split(':').next().unwrap_or_default();
        if block.contains("\nversion: 1") || block.starts_with("version: 1") {
            return parse(block).map(drop);
        }
        if first_key == "cases" {
            return crate::cases::read_cases(block).map(drop).map_err(|err| vec![err]);
        }
        if first_key == "writes" {
            return yaml::parse(block).map(drop).map_err(|err| vec![err]);
        }
        if TOP_LEVEL_KEYS.contains(&first_key) {
            let mut graph = String::from("version: 1\n");
            for (key, filler) in [("nodes", "nodes: {}\n"), ("edges", "edges: []\n")] {
                if !block.lines().any(|line| line.starts_with(&format!("{key}:"))) {
                    graph.push_str(filler);
                }
            }
            return parse(&(graph + block)).map(drop);
        }
        let tree = yaml::parse(block).map_err(|err| vec![err])?;
        let mut errors = Vec::new();
        for (_, node) in tree.entries().unwrap_or_default() {
            errors.extend(NodeFile::parse(node).err().into_iter().flatten());
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    #[test]
    fn every_example_in_the_format_guide_and_the_readme_reads() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let guide = std::fs::read_to_string(format!("{root}/graphs/README.md")).expect("graphs/README.md");
        let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
        let blocks = yaml_blocks(&(guide + &readme));
        assert!(blocks.len() > 10, "found only {} examples", blocks.len());
        for block in blocks {
            if let Err(errors) = read_example(&block) {
                panic!("example does not read:\n{block}\n{errors:#?}");
            }
        }
    }

    #[test]
    fn every_example_in_the_graph_schema_reads() {
        let schema = crate::graph::json_schema::generate();
        let blocks = yaml_blocks(&schema.replace("\\n", "\n").replace("\\\"", "\""));
        assert!(
            blocks.len() >= crate::nodes::Node::KINDS.len(),
            "a node kind has no example"
        );
        for block in blocks {
            if let Err(errors) = read_example(&block) {
                panic!("example does not read:\n{block}\n{errors:#?}");
            }
        }
    }
}
