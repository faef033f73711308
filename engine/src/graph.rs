//! The checked graph: what a graph file means once every check has passed.
//!
//! Loading goes in two stages, as in Vector and rustc: [`file`] reads the YAML into raw types
//! that keep every position, then [`check`] validates them against each other, the state
//! schema, the templates and the other graphs, collecting every problem. Only a graph with no
//! errors becomes a [`Graph`]; code that holds one never checks it again.

pub(crate) mod check;
pub mod draw;
pub(crate) mod file;
pub(crate) mod json_schema;
mod topology;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, normalize};
use crate::nodes::NodeDef;
use crate::source::{FileKind, Folders, GraphFiles, Source};
use crate::state::{Field, Schemas};
use crate::template::Templates;
use crate::yaml::{Pos, Spanned};

pub use file::GraphFile;

/// The folders a graph reads from: its own (for subgraphs), `prompts/` and `schemas/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub prompts: PathBuf,
    pub schemas: PathBuf,
}

impl Project {
    /// The usual layout: `prompts/` and `schemas/` beside each other under `root`.
    pub fn at(root: impl AsRef<Path>) -> Project {
        let root = root.as_ref();
        Project {
            prompts: root.join("prompts"),
            schemas: root.join("schemas"),
        }
    }
}

/// What loading may know beyond the files themselves.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Model aliases defined in the configuration. An alias a node uses that is not among
    /// them gets a warning (a deployment may configure more); `None` skips the check.
    pub models: Option<BTreeSet<String>>,
    /// Tools the application adds to the engine's (see [`crate::nodes::HostTool`]).
    pub tools: Vec<&'static crate::nodes::ToolSpec>,
}

/// Loads and checks the graph file at `path`, and every subgraph it uses.
///
/// Returns the graph (with its warnings) when there is no error, and otherwise every error
/// and warning found, sorted by file and position. Reads only `path`, the graph files beside
/// it, and files under `project.prompts` and `project.schemas`; no network, no database.
pub fn load(project: &Project, path: &Path) -> Result<Graph, Vec<Diagnostic>> {
    load_with(project, path, &LoadOptions::default())
}

/// [`load`] with options.
pub fn load_with(project: &Project, path: &Path, options: &LoadOptions) -> Result<Graph, Vec<Diagnostic>> {
    let folders = Folders {
        graphs: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        prompts: project.prompts.clone(),
        schemas: project.schemas.clone(),
    };
    load_source(Arc::new(folders), &graph_name(path), options)
}

/// Loads the graph `name` from `source`: folders, or the stored files of a graph version.
/// The graph keeps the files it was loaded from ([`Graph::files`]) and their version.
pub fn load_source(
    source: Arc<dyn Source>,
    name: &str,
    options: &LoadOptions,
) -> Result<Graph, Vec<Diagnostic>> {
    let mut loader = Loader::new(source, options.clone());
    let result = loader.load(name);
    let files = loader.files();
    let mut diagnostics = loader.diagnostics;
    normalize(&mut diagnostics);
    match result {
        Some(graph) if !diagnostics.iter().any(Diagnostic::is_error) => {
            let mut graph = Arc::unwrap_or_clone(graph);
            graph.warnings = diagnostics;
            graph.version = files.version();
            graph.files = Arc::new(files);
            Ok(graph)
        }
        _ => Err(diagnostics),
    }
}

/// Loads graphs and their subgraphs once each, and notices subgraphs that include themselves.
pub(crate) struct Loader {
    pub(crate) source: Arc<dyn Source>,
    pub(crate) options: LoadOptions,
    pub(crate) templates: Templates,
    pub(crate) schemas: Schemas,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Graphs loaded so far, by name; `None` for one that had errors.
    done: HashMap<String, Option<Arc<Graph>>>,
    /// The graphs being loaded, outermost first.
    stack: Vec<String>,
    /// The text of every graph file read.
    graph_texts: BTreeMap<String, String>,
    /// The graph asked for first.
    entry: Option<String>,
}

/// What [`Loader::subgraph`] found.
pub(crate) enum SubgraphLookup {
    Found(Arc<Graph>),
    /// The file exists but has errors (reported in its own file).
    Broken,
    Missing,
    /// Loading it would include a graph that is already being loaded: the cycle, by name.
    Recursive(Vec<String>),
}

impl Loader {
    pub(crate) fn new(source: Arc<dyn Source>, options: LoadOptions) -> Loader {
        Loader {
            templates: Templates::new(source.clone()),
            schemas: Schemas::new(source.clone()),
            source,
            options,
            diagnostics: Vec::new(),
            done: HashMap::new(),
            stack: Vec::new(),
            graph_texts: BTreeMap::new(),
            entry: None,
        }
    }

    pub(crate) fn load(&mut self, name: &str) -> Option<Arc<Graph>> {
        self.entry.get_or_insert_with(|| name.to_owned());
        if let Some(done) = self.done.get(name) {
            return done.clone();
        }
        self.stack.push(name.to_owned());
        let graph = self.load_uncached(name).map(Arc::new);
        self.stack.pop();
        self.done.insert(name.to_owned(), graph.clone());
        graph
    }

    fn load_uncached(&mut self, name: &str) -> Option<Graph> {
        let path = self.source.path(FileKind::Graph, name);
        let text = match self.source.read(FileKind::Graph, name) {
            Ok(text) => text,
            Err(err) => {
                let message = format!("cannot read graph file: {err}");
                self.diagnostics
                    .push(Diagnostic::error(&path, Pos::UNKNOWN, message));
                return None;
            }
        };
        self.graph_texts.insert(name.to_owned(), text.clone());
        let file = match file::parse(&text) {
            Ok(file) => file,
            Err(errors) => {
                let found = errors
                    .into_iter()
                    .map(|err| Diagnostic::error(&path, err.pos, err.message).with_hint_opt(err.hint));
                self.diagnostics.extend(found);
                return None;
            }
        };
        check::check(self, &path, name, file)
    }

    /// The graph named `name`, beside the others.
    pub(crate) fn subgraph(&mut self, name: &str) -> SubgraphLookup {
        if let Some(start) = self.stack.iter().position(|open| open == name) {
            let mut cycle = self.stack[start..].to_vec();
            cycle.push(name.to_owned());
            return SubgraphLookup::Recursive(cycle);
        }
        if !self.done.contains_key(name)
            && !self
                .source
                .names(FileKind::Graph)
                .iter()
                .any(|known| known == name)
        {
            return SubgraphLookup::Missing;
        }
        match self.load(name) {
            Some(graph) => SubgraphLookup::Found(graph),
            None => SubgraphLookup::Broken,
        }
    }

    /// Graph names, for "did you mean" hints.
    pub(crate) fn graph_names(&self) -> Vec<String> {
        self.source.names(FileKind::Graph)
    }

    /// Every file read: the graph version's files.
    fn files(&self) -> GraphFiles {
        let mut files = GraphFiles {
            graph: self.entry.clone().unwrap_or_default(),
            graphs: self.graph_texts.clone(),
            ..GraphFiles::default()
        };
        for (name, text) in self.templates.loaded() {
            files.record(FileKind::Template, name, text);
        }
        for name in self.schemas.loaded().keys() {
            if let Some(text) = self.schemas.text(name) {
                files.record(FileKind::Schema, name, text);
            }
        }
        files
    }
}

/// A graph's name: its file name without `.yaml`.
pub fn graph_name(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `path` looks like a graph file (test cases and scripts are `*.<what>.yaml`).
pub fn is_graph_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    path.is_file() && name.ends_with(".yaml") && name.matches('.').count() == 1
}

/// A node's id: an identifier, unique in its graph, never `START` or `END`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(id: &str) -> Result<NodeId, String> {
        if id == "START" || id == "END" {
            return Err(format!("`{id}` is reserved for the graph's entry and exit"));
        }
        if !is_identifier(id) {
            return Err(format!(
                "node id `{id}` is not an identifier (letters, digits and `_`, not starting with a digit)"
            ));
        }
        Ok(NodeId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<NodeId, D::Error> {
        let id = String::deserialize(deserializer)?;
        NodeId::parse(&id).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where an edge starts or ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Start,
    End,
    Node(NodeId),
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Start => f.write_str("START"),
            Endpoint::End => f.write_str("END"),
            Endpoint::Node(id) => id.fmt(f),
        }
    }
}

/// Ordered conditions, first match wins, and where to go when none matches.
#[derive(Debug, Clone)]
pub struct Routes {
    pub cases: Vec<RouteCase>,
    pub default: Vec<Endpoint>,
}

#[derive(Debug, Clone)]
pub struct RouteCase {
    /// A minijinja expression over the state.
    pub when: Spanned<String>,
    pub to: Vec<Endpoint>,
}

impl Routes {
    /// Every endpoint the routes can lead to, in order, without repeats.
    pub fn targets(&self) -> Vec<&Endpoint> {
        let mut targets: Vec<&Endpoint> = Vec::new();
        let all = self.cases.iter().flat_map(|case| &case.to).chain(&self.default);
        for target in all {
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        targets
    }
}

/// What happens when the sources of an edge have finished.
#[derive(Debug, Clone)]
pub enum Next {
    /// All of these run next.
    Static(Vec<Endpoint>),
    /// The first matching route's targets run next.
    Routes(Routes),
}

/// A resolved edge. With several sources, it fires once all of them have finished.
#[derive(Debug, Clone)]
pub struct Edge {
    pub from: Vec<Endpoint>,
    pub next: Next,
    pub pos: Pos,
}

/// A checked graph, ready to run.
#[derive(Debug, Clone)]
pub struct Graph {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    /// The most steps a run may take.
    pub max_steps: u32,
    /// Read-only values the caller provides to a run (such as the user's id).
    pub context: IndexMap<String, Field>,
    pub state: IndexMap<String, Field>,
    pub input: Vec<String>,
    pub output: Vec<String>,
    pub nodes: IndexMap<NodeId, NodeDef>,
    pub edges: Vec<Edge>,
    /// Graphs used by `subgraph` nodes (also inside `map`), by name.
    pub subgraphs: BTreeMap<String, Arc<Graph>>,
    /// Every template used, by name, with the source it was checked with.
    pub templates: BTreeMap<String, String>,
    /// Every schema file used, by name, with its content.
    pub schemas: BTreeMap<String, Arc<Value>>,
    /// Warnings found while loading (errors prevent a `Graph`).
    pub warnings: Vec<Diagnostic>,
    /// The version: the hash of `files` (empty for a subgraph, whose files its parent holds).
    pub version: String,
    /// Every file the graph (and its subgraphs) was loaded from.
    pub files: Arc<GraphFiles>,
    /// Compiled schemas, ready to validate writes and replies.
    pub(crate) compiled: Arc<Compiled>,
}

/// What a checked graph compiles once: validators and the template environment.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    /// Each state field's schema.
    pub(crate) state: BTreeMap<String, jsonschema::Validator>,
    /// Each context field's schema.
    pub(crate) context: BTreeMap<String, jsonschema::Validator>,
    /// A node's `output_schema` or `response_schema`.
    pub(crate) nodes: BTreeMap<NodeId, jsonschema::Validator>,
    /// The same schemas with file references inlined, as sent to models.
    pub(crate) node_schemas: BTreeMap<NodeId, Value>,
    /// The fields a node without `writes:` writes from its output's properties.
    pub(crate) default_writes: BTreeMap<NodeId, Vec<String>>,
    /// The graph's templates, by name.
    pub(crate) templates: minijinja::Environment<'static>,
}

/// Default bound on the number of steps of a run.
pub const DEFAULT_MAX_STEPS: u32 = 100;

impl Graph {
    pub fn node(&self, id: &str) -> Option<&NodeDef> {
        self.nodes.get(id)
    }

    /// The model aliases the `llm` nodes of this graph and its subgraphs use.
    pub fn model_aliases(&self) -> BTreeSet<String> {
        let mut aliases = BTreeSet::new();
        for node in self.nodes.values() {
            let inner = node.node.map_inner().map_or(&node.node, |inner| &inner.node);
            if let crate::nodes::Node::Llm(llm) = inner {
                aliases.insert(llm.model.value.clone());
            }
        }
        for subgraph in self.subgraphs.values() {
            aliases.extend(subgraph.model_aliases());
        }
        aliases
    }

    /// The ids of every interrupt node, as answers name them (`confirm`, `maker/confirm`).
    pub fn interrupt_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for (id, node) in &self.nodes {
            match &node.node {
                crate::nodes::Node::Interrupt(_) => ids.push(id.to_string()),
                crate::nodes::Node::Subgraph(subgraph) => {
                    if let Some(inner) = self.subgraphs.get(subgraph.graph.as_str()) {
                        ids.extend(
                            inner
                                .interrupt_ids()
                                .into_iter()
                                .map(|inner_id| format!("{id}/{inner_id}")),
                        );
                    }
                }
                _ => {}
            }
        }
        ids
    }

    /// Whether a run of this graph can pause: it has an `interrupt` node, or a subgraph that can.
    pub fn can_pause(&self) -> bool {
        self.nodes
            .values()
            .any(|node| matches!(node.node, crate::nodes::Node::Interrupt(_)))
            || self.subgraphs.values().any(|subgraph| subgraph.can_pause())
    }

    /// The graph holding the node at `path` (`maker/confirm` is in the subgraph of `maker`),
    /// and the node's id there.
    pub(crate) fn locate<'g>(&'g self, path: &'g str) -> Option<(&'g Graph, &'g str)> {
        match path.split_once('/') {
            None => self.nodes.contains_key(path).then_some((self, path)),
            Some((first, rest)) => {
                let node = self.nodes.get(first)?;
                let name = match &node.node {
                    crate::nodes::Node::Subgraph(subgraph) => &subgraph.graph.value,
                    _ => return None,
                };
                self.subgraphs.get(name)?.locate(rest)
            }
        }
    }
}

/// The cycle through `node`, drawn as `a → b → a`, if it is on one.
pub(crate) fn cycle_through(graph: &Graph, node: &NodeId) -> Option<String> {
    topology::cycle_through(graph, node)
}
