//! Every semantic check of a graph file; pushes diagnostics, never stops at the first.
//!
//! [`check`] walks a [`GraphFile`]: the state and context fields and their schemas, the
//! `input`/`output` lists, each node (through [`Node::check`], which calls back into
//! [`NodeCx`] for the checks all kinds share), then the edges ([`super::topology`]).
//! Along the way it records which fields each node reads and writes, for the warnings at the
//! end and for the "two writers in one step" check.

mod node_cx;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::file::{FieldFile, GraphFile};
use super::{Compiled, DEFAULT_MAX_STEPS, Graph, Loader, NodeId, is_identifier, topology};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::nodes::{Node, NodeCommon, NodeDef, Retry};
use crate::state::{Field, Reducer, declared_types};
use crate::yaml::{Pos, Spanned, backticked};

pub(crate) use node_cx::{Local, NodeCx, WritesDefault};

/// Variable names with a meaning of their own in expressions and templates.
const RESERVED_NAMES: &[&str] = &[
    "context", "output", "item", "index", "loop", "true", "false", "none",
];

/// A field a node writes.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub(crate) node: NodeId,
    pub(crate) field: String,
    /// Written once per item, by the node inside a `map`.
    pub(crate) repeated: bool,
}

/// What is known while one graph file is checked.
pub(crate) struct Checker<'l> {
    pub(crate) loader: &'l mut Loader,
    pub(crate) file: PathBuf,
    pub(crate) state: IndexMap<String, Field>,
    pub(crate) context: IndexMap<String, Field>,
    /// State field schemas with a top-level `$ref` followed, for property checks.
    pub(crate) resolved: BTreeMap<String, Value>,
    pub(crate) reads: BTreeSet<String>,
    pub(crate) writes: Vec<Write>,
    pub(crate) subgraphs: BTreeMap<String, Arc<Graph>>,
    pub(crate) templates: BTreeSet<String>,
    pub(crate) schemas: BTreeSet<String>,
    /// Ids of nodes that were reported as invalid: edges naming them get no second error.
    pub(crate) broken_ids: BTreeSet<String>,
    /// An error was found in this graph or in a graph it uses.
    pub(crate) failed: bool,
    pub(crate) compiled: Compiled,
}

/// Checks a parsed graph file; `None` when it has errors (all reported to the loader).
pub(crate) fn check(loader: &mut Loader, path: &Path, name: &str, file: GraphFile) -> Option<Graph> {
    let mut checker = Checker {
        loader,
        file: path.to_path_buf(),
        state: IndexMap::new(),
        context: IndexMap::new(),
        resolved: BTreeMap::new(),
        reads: BTreeSet::new(),
        writes: Vec::new(),
        subgraphs: BTreeMap::new(),
        templates: BTreeSet::new(),
        schemas: BTreeSet::new(),
        broken_ids: BTreeSet::new(),
        failed: false,
        compiled: Compiled::default(),
    };
    checker.context = checker.fields(&file.context, true);
    checker.state = checker.fields(&file.state, false);
    let input = checker.field_list(&file.input, "input");
    let output = checker.field_list(&file.output, "output");
    checker.reads.extend(output.iter().cloned());
    if let Some(max_steps) = &file.max_steps
        && max_steps.value == 0
    {
        checker.error(max_steps.pos, "`max_steps` must be at least 1", None);
    }
    let nodes = checker.nodes(file.nodes);
    let edges = topology::check(&mut checker, &file.edges, &nodes, file.max_steps.is_some());
    if checker.failed {
        return None;
    }
    // Only for a graph without errors: a broken node's writes are not known.
    checker.usage_warnings(&input);
    let mut templates = BTreeMap::new();
    for name in &checker.templates {
        checker.loader.templates.closure(name, &mut templates);
    }
    let schemas = checker.schemas.iter().filter_map(|name| {
        let content = checker.loader.schemas.loaded().get(name)?;
        Some((name.clone(), content.clone()))
    });
    let mut compiled = std::mem::take(&mut checker.compiled);
    compiled.templates = crate::template::environment();
    for (name, source) in &templates {
        if let Err(err) = compiled
            .templates
            .add_template_owned(name.clone(), source.clone())
        {
            checker.error(
                Pos::UNKNOWN,
                format!("template `{name}` does not compile: {err}"),
                None,
            );
            return None;
        }
    }
    Some(Graph {
        name: name.to_owned(),
        file: path.to_path_buf(),
        description: file.description,
        max_steps: file
            .max_steps
            .as_ref()
            .map_or(DEFAULT_MAX_STEPS, |steps| steps.value),
        templates,
        schemas: schemas.collect(),
        compiled: Arc::new(compiled),
        version: String::new(),
        files: Arc::default(),
        context: checker.context,
        state: checker.state,
        input,
        output,
        nodes,
        edges,
        subgraphs: checker.subgraphs,
        warnings: Vec::new(),
    })
}

impl Checker<'_> {
    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.failed = true;
        let diagnostic = Diagnostic::error(&self.file, pos, message).with_hint_opt(hint);
        self.loader.diagnostics.push(diagnostic);
    }

    pub(crate) fn warning(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        let diagnostic = Diagnostic::warning(&self.file, pos, message).with_hint_opt(hint);
        self.loader.diagnostics.push(diagnostic);
    }

    /// A diagnostic about another file (a template, a schema).
    pub(crate) fn error_in(&mut self, file: &Path, pos: Pos, message: String, hint: Option<String>) {
        self.failed = true;
        self.loader
            .diagnostics
            .push(Diagnostic::error(file, pos, message).with_hint_opt(hint));
    }

    /// The declared state (or context) fields, each checked.
    fn fields(
        &mut self,
        fields: &IndexMap<Spanned<String>, FieldFile>,
        context: bool,
    ) -> IndexMap<String, Field> {
        let mut checked = IndexMap::new();
        for (name, file) in fields {
            if !is_identifier(name) {
                let message = format!("field name `{name}` is not an identifier");
                let hint = "use letters, digits and `_`, so templates can name it".to_owned();
                self.error(name.pos, message, Some(hint));
            } else if RESERVED_NAMES.contains(&name.as_str()) {
                let message =
                    format!("`{name}` cannot be a field name: expressions use it for something else");
                self.error(
                    name.pos,
                    message,
                    Some(format!("the reserved names are {}", backticked(RESERVED_NAMES))),
                );
            }
            let field = Field {
                name: name.clone(),
                schema: file.schema.clone(),
                reducer: file.reducer.as_ref().map_or(Reducer::Replace, |r| r.value),
                reducer_pos: file.reducer.as_ref().map(|r| r.pos),
            };
            if let Some(reducer) = &file.reducer
                && context
            {
                self.error(
                    reducer.pos,
                    "context fields have no reducer: nodes cannot write them",
                    None,
                );
            }
            if let Some(validator) = self.field_schema(&field, file.pos) {
                let compiled = match context {
                    true => &mut self.compiled.context,
                    false => &mut self.compiled.state,
                };
                compiled.insert(name.value.clone(), validator);
            }
            checked.insert(name.value.clone(), field);
        }
        checked
    }

    /// Checks a field's schema (and its reducer and default against it); returns it compiled.
    fn field_schema(&mut self, field: &Field, pos: Pos) -> Option<jsonschema::Validator> {
        let name = field.name.as_str();
        let validator = match self.loader.schemas.compile(&field.schema) {
            Ok((validator, files)) => {
                self.schemas.extend(files);
                validator
            }
            Err(message) => {
                self.error(
                    pos,
                    format!("field `{name}` has an invalid schema: {message}"),
                    None,
                );
                return None;
            }
        };
        let resolved = self
            .loader
            .schemas
            .resolve(&field.schema)
            .unwrap_or_else(|_| field.schema.clone());
        let types = declared_types(&resolved);
        let needed = field.reducer.required_types();
        if !needed.is_empty() && !types.is_empty() && !types.iter().any(|t| needed.contains(t)) {
            let message = format!(
                "reducer `{}` works on {} fields, but `{name}` is {}",
                field.reducer.name(),
                backticked(needed).replace(", ", " or "),
                backticked(&types)
            );
            self.error(field.reducer_pos.unwrap_or(pos), message, None);
        }
        if let Some(default) = field.default_value()
            && let Some(problem) = validator.iter_errors(default).next()
        {
            let message = format!("the default of `{name}` does not match its schema: {problem}");
            self.error(pos, message, None);
        }
        self.resolved.insert(name.to_owned(), resolved);
        Some(validator)
    }

    /// `input:` and `output:`: each must name a state field.
    fn field_list(&mut self, names: &[Spanned<String>], key: &str) -> Vec<String> {
        let mut found = Vec::new();
        for name in names {
            if self.state.contains_key(name.as_str()) {
                found.push(name.value.clone());
            } else {
                let message = format!("`{key}` names `{name}`, which is not a state field");
                let hint = self.field_hint(name);
                self.error(name.pos, message, Some(hint));
            }
        }
        found
    }

    /// "did you mean" among state fields, or how to declare one.
    pub(crate) fn field_hint(&self, name: &str) -> String {
        did_you_mean(name, self.state.keys().map(String::as_str))
            .unwrap_or_else(|| format!("declare it under `state:`, e.g. `{name}: {{ type: string }}`"))
    }

    fn nodes(
        &mut self,
        nodes: IndexMap<Spanned<String>, crate::nodes::NodeFile>,
    ) -> IndexMap<NodeId, NodeDef> {
        let mut checked = IndexMap::new();
        for (id, file) in nodes {
            let id = match NodeId::parse(&id) {
                Ok(parsed) => parsed,
                Err(message) => {
                    self.error(id.pos, message, None);
                    self.broken_ids.insert(id.value);
                    continue;
                }
            };
            let mut cx = NodeCx::new(self, &id, file.pos);
            cx.common(&file.common, &file.node);
            file.node.check(&mut cx);
            let def = NodeDef {
                id: id.clone(),
                pos: file.pos,
                common: file.common,
                node: file.node,
            };
            checked.insert(id, def);
        }
        checked
    }

    /// Fields written but never read, and read but never given a value.
    fn usage_warnings(&mut self, input: &[String]) {
        let written: BTreeSet<&str> = self.writes.iter().map(|w| w.field.as_str()).collect();
        let mut warnings = Vec::new();
        for (name, field) in &self.state {
            let read = self.reads.contains(name);
            let has_value =
                written.contains(name.as_str()) || input.contains(name) || field.default_value().is_some();
            if written.contains(name.as_str()) && !read {
                let hint = "use it in a template or expression, list it in `output`, or remove it";
                warnings.push((
                    field.name.pos,
                    format!("state field `{name}` is written but never read"),
                    hint,
                ));
            } else if read && !has_value {
                let hint = "list it in `input`, give it a `default`, or write it from a node";
                warnings.push((
                    field.name.pos,
                    format!("state field `{name}` is read but never given a value"),
                    hint,
                ));
            }
        }
        for (pos, message, hint) in warnings {
            self.warning(pos, message, Some(hint.to_owned()));
        }
    }

    /// The schema `context` has in expressions: an object of the context fields.
    pub(crate) fn context_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .context
            .iter()
            .map(|(name, field)| (name.clone(), field.schema.clone()))
            .collect();
        json!({ "type": "object", "properties": properties, "additionalProperties": false })
    }

    /// The fields written by each node, for the topology checks.
    pub(crate) fn writes_by_node(&self) -> BTreeMap<&NodeId, Vec<&Write>> {
        let mut by_node: BTreeMap<&NodeId, Vec<&Write>> = BTreeMap::new();
        for write in &self.writes {
            by_node.entry(&write.node).or_default().push(write);
        }
        by_node
    }
}

/// Checks shared by all nodes, whatever their kind.
impl NodeCx<'_, '_> {
    pub(crate) fn common(&mut self, common: &NodeCommon, node: &Node) {
        let kind = node.kind();
        if let Some(timeout) = &common.timeout_secs {
            if !node.does_work() {
                self.error(
                    timeout.pos,
                    &format!("`timeout_secs` does not apply to a `{kind}` node"),
                );
            } else if timeout.value <= 0.0 || Duration::try_from_secs_f64(timeout.value).is_err() {
                self.error(
                    timeout.pos,
                    "`timeout_secs` must be a positive number of seconds, such as `30` or `0.5`",
                );
            }
        }
        if let Some(retry) = &common.retry {
            self.retry(retry, node);
        }
        if let Some(visits) = &common.max_visits
            && visits.value == 0
        {
            self.error(visits.pos, "`max_visits` must be at least 1");
        }
    }

    fn retry(&mut self, retry: &Spanned<Retry>, node: &Node) {
        let kind = node.kind();
        if !node.does_work() {
            self.error(retry.pos, &format!("`retry` does not apply to a `{kind}` node"));
        } else if matches!(node, Node::Subgraph(_) | Node::Map(_)) {
            let message = format!("`retry` does not apply to a `{kind}` node");
            let hint = "set `retry` on the nodes it runs: they are retried one by one";
            self.error_hint(retry.pos, &message, hint);
        } else if retry.attempts == 0 {
            self.error_hint(
                retry.pos,
                "`retry.attempts` must be at least 1",
                "it counts the first attempt too",
            );
        } else if retry.backoff_ms > retry.max_backoff_ms {
            self.warning_hint(
                retry.pos,
                "`retry.backoff_ms` is above `max_backoff_ms`",
                "the delay will never grow",
            );
        }
    }
}
