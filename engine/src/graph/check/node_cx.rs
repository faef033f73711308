//! [`NodeCx`]: the checks node kinds share — expressions, templates, schemas, writes.
//!
//! Variables in expressions and templates resolve, innermost first, to the node's locals
//! (`output`, a `map` item, an `llm` node's `input`), then to state fields, then to
//! `context`. A path such as `summary.total` is also checked against the field's schema when
//! that schema lists its properties and admits no others.

use std::sync::Arc;

use serde_json::Value;

use super::{Checker, RESERVED_NAMES, Write};
use crate::diagnostic::did_you_mean;
use crate::graph::{Graph, NodeId, SubgraphLookup, is_identifier};
use crate::nodes::{Assignments, SchemaRef};
use crate::source::FileKind;
use crate::state::{SchemaFileError, closed_properties, property_names};
use crate::template::{TemplateProblem, find_variable};
use crate::yaml::{Pos, Spanned, backticked};

/// A variable a node adds to what its expressions and templates can use.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    pub(crate) name: String,
    /// Its JSON Schema, when known.
    pub(crate) schema: Option<Value>,
}

impl Local {
    pub(crate) fn new(name: &str, schema: Option<Value>) -> Local {
        Local {
            name: name.to_owned(),
            schema,
        }
    }
}

/// What a node writes when it has no `writes:`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WritesDefault {
    /// Each top-level property its output's schema lists, to the state field of the same name
    /// (nothing when the schema lists none).
    Properties,
    /// The same, but a schema that lists no property is a mistake: the hint says what to do.
    PropertiesRequired(&'static str),
    /// Nothing.
    Nothing,
    /// Nothing, which is a mistake: the hint says what to write instead.
    Required(&'static str),
}

/// The checks node kinds call while one node is being checked.
pub(crate) struct NodeCx<'c, 'l> {
    checker: &'c mut Checker<'l>,
    id: NodeId,
    pos: Pos,
    locals: Vec<Local>,
    /// Inside a `map`: every write happens once per item.
    repeated: bool,
}

impl<'c, 'l> NodeCx<'c, 'l> {
    pub(crate) fn new(checker: &'c mut Checker<'l>, id: &NodeId, pos: Pos) -> NodeCx<'c, 'l> {
        NodeCx {
            checker,
            id: id.clone(),
            pos,
            locals: Vec::new(),
            repeated: false,
        }
    }

    /// Where the node is defined.
    pub(crate) fn pos(&self) -> Pos {
        self.pos
    }

    pub(crate) fn error(&mut self, pos: Pos, message: &str) {
        self.checker.error(pos, message, None);
    }

    pub(crate) fn error_hint(&mut self, pos: Pos, message: &str, hint: &str) {
        self.checker.error(pos, message, Some(hint.to_owned()));
    }

    pub(crate) fn warning_hint(&mut self, pos: Pos, message: &str, hint: &str) {
        self.checker.warning(pos, message, Some(hint.to_owned()));
    }

    /// A model alias: warned about when the configuration does not define it.
    pub(crate) fn model(&mut self, alias: &Spanned<String>) {
        let Some(models) = &self.checker.loader.options.models else {
            return;
        };
        if models.contains(alias.as_str()) {
            return;
        }
        let hint = did_you_mean(alias, models.iter().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "the configured aliases are {}",
                backticked(&models.iter().collect::<Vec<_>>())
            )
        });
        let message = format!("model alias `{alias}` is not configured");
        self.checker.warning(alias.pos, message, Some(hint));
    }

    /// A minijinja expression: it compiles, and every variable it uses exists.
    pub(crate) fn expression(&mut self, expression: &Spanned<String>, locals: &[Local]) {
        let locals: Vec<Local> = self.locals.iter().chain(locals).cloned().collect();
        self.checker.expression(expression, &locals);
    }

    /// A template file: it exists, compiles, and uses only known variables.
    pub(crate) fn template(&mut self, name: &Spanned<String>, locals: &[Local]) {
        let templates = &mut self.checker.loader.templates;
        let path = templates.path(name);
        let variables = match templates.load(name) {
            Ok(variables) => variables,
            Err(TemplateProblem::Missing) => {
                let available = templates.available();
                let hint = did_you_mean(name, available.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("expected the file `{}`", path.display()));
                self.checker
                    .error(name.pos, format!("template `{name}` does not exist"), Some(hint));
                return;
            }
            Err(TemplateProblem::Syntax {
                template,
                pos,
                message,
            }) => {
                let file = template.map_or(path, |inner| templates.path(&inner));
                self.checker
                    .error_in(&file, pos, format!("template syntax error: {message}"), None);
                return;
            }
            Err(TemplateProblem::Other(message)) => {
                self.checker.error(
                    name.pos,
                    format!("template `{name}` cannot be loaded: {message}"),
                    None,
                );
                return;
            }
        };
        self.checker.templates.insert(name.value.clone());
        let source = self
            .checker
            .loader
            .templates
            .source(name)
            .unwrap_or_default()
            .to_owned();
        for variable in variables {
            let locals: Vec<Local> = self.locals.iter().chain(locals).cloned().collect();
            if let Err((message, hint)) = self.checker.resolve(&variable, &locals) {
                let root = variable.split('.').next().unwrap_or(&variable);
                let pos = find_variable(&source, root).unwrap_or(Pos::new(1, 1));
                self.checker.error_in(&path, pos, message, hint);
            }
        }
    }

    /// Template text written in the graph (the `format` tool's `template`, when it is a
    /// literal): it compiles, and every variable it uses exists.
    pub(crate) fn template_text(&mut self, expression: &Spanned<String>, locals: &[Local]) {
        let Some(text) = self.checker.loader.templates.literal(expression) else {
            return;
        };
        let variables = match self.checker.loader.templates.text(&text) {
            Ok(variables) => variables,
            Err(TemplateProblem::Syntax { message, .. } | TemplateProblem::Other(message)) => {
                self.error(
                    expression.pos,
                    &format!("this template does not compile: {message}"),
                );
                return;
            }
            Err(TemplateProblem::Missing) => return,
        };
        let locals: Vec<Local> = self.locals.iter().chain(locals).cloned().collect();
        for variable in variables {
            if let Err((message, hint)) = self.checker.resolve(&variable, &locals) {
                self.checker.error(expression.pos, message, hint);
            }
        }
    }

    /// A state field named directly (such as a prompt's `history`); counts as a read.
    pub(crate) fn read_field(&mut self, name: &Spanned<String>, role: &str) {
        if self.checker.state.contains_key(name.as_str()) {
            self.checker.reads.insert(name.value.clone());
        } else {
            let hint = self.checker.field_hint(name);
            self.checker.error(
                name.pos,
                format!("{role} names `{name}`, which is not a state field"),
                Some(hint),
            );
        }
    }

    /// A name a node introduces for its expressions (`as:` of a `map`).
    pub(crate) fn local_name(&mut self, name: &Spanned<String>) {
        if !is_identifier(name) {
            self.error(name.pos, &format!("`{name}` is not an identifier"));
        } else if self.checker.state.contains_key(name.as_str()) {
            let message = format!("`{name}` would hide the state field of the same name");
            self.error_hint(name.pos, &message, "choose another name");
        } else if RESERVED_NAMES.contains(&name.as_str()) && name.as_str() != "item" {
            self.error(name.pos, &format!("`{name}` is reserved in expressions"));
        }
    }

    /// The schema of one item of `over`, when `over` is a list field with `items`.
    pub(crate) fn item_schema(&mut self, over: &Spanned<String>) -> Option<Value> {
        let list = self.checker.resolved.get(over.as_str())?;
        let items = list.get("items")?.clone();
        self.checker.loader.schemas.resolve(&items).ok()
    }

    /// Whether the graph declares the context field `name`.
    /// The tool of this name: one of the engine's, or one the application declared.
    pub(crate) fn tool(&self, name: &str) -> Option<&'static crate::nodes::ToolSpec> {
        crate::nodes::TOOLS
            .iter()
            .chain(self.checker.loader.options.tools.iter().copied())
            .find(|spec| spec.name == name)
    }

    pub(crate) fn tool_names(&self) -> Vec<&'static str> {
        crate::nodes::TOOLS
            .iter()
            .chain(self.checker.loader.options.tools.iter().copied())
            .map(|spec| spec.name)
            .collect()
    }

    pub(crate) fn has_context(&self, name: &str) -> bool {
        self.checker.context.contains_key(name)
    }

    /// Whether this is the node inside a `map`.
    pub(crate) fn in_map(&self) -> bool {
        self.repeated
    }

    /// Runs `check` for the node inside a `map`, with the item's variables in scope.
    pub(crate) fn inside_map(&mut self, locals: &[Local], check: impl FnOnce(&mut Self)) {
        let outer = self.locals.len();
        self.locals.extend_from_slice(locals);
        let was_repeated = std::mem::replace(&mut self.repeated, true);
        check(self);
        self.repeated = was_repeated;
        self.locals.truncate(outer);
    }

    /// A schema file or inline schema: it exists and compiles. Returns it with a top-level
    /// `$ref` followed, so callers can look at its properties.
    pub(crate) fn schema(&mut self, schema: &SchemaRef) -> Option<Value> {
        let Spanned { pos, value } = &schema.0;
        let schemas = &mut self.checker.loader.schemas;
        let content = match value {
            Value::String(name) => match schemas.file(name) {
                Ok(content) => (*content).clone(),
                Err(err @ SchemaFileError::Missing { .. }) => {
                    let available = schemas.available();
                    let hint = did_you_mean(name, available.iter().map(String::as_str));
                    self.checker.error(*pos, err.to_string(), hint);
                    return None;
                }
                Err(err) => {
                    self.checker.error(*pos, err.to_string(), None);
                    return None;
                }
            },
            Value::Object(_) => value.clone(),
            _ => {
                self.error(*pos, "expected a schema file name or an inline JSON Schema");
                return None;
            }
        };
        match self.checker.loader.schemas.compile(&content) {
            Ok((validator, files)) => {
                self.checker.schemas.extend(files);
                self.checker.compiled.nodes.insert(self.id.clone(), validator);
                if let Ok(inlined) = self.checker.loader.schemas.inline(&content) {
                    self.checker
                        .compiled
                        .node_schemas
                        .insert(self.id.clone(), inlined);
                }
            }
            Err(message) => {
                self.error(*pos, &format!("invalid JSON Schema: {message}"));
                return None;
            }
        }
        if let Value::String(name) = value {
            self.checker.schemas.insert(name.clone());
        }
        self.checker.loader.schemas.resolve(&content).ok()
    }

    /// The node's `writes` (or what it writes by default), given the schema of its `output`.
    /// `origin` is where that schema is written, for errors about its properties.
    pub(crate) fn writes(
        &mut self,
        writes: Option<&Assignments>,
        output: Option<&Value>,
        default: WritesDefault,
        origin: Pos,
    ) {
        let output_local = [Local::new("output", output.cloned())];
        if let Some(writes) = writes {
            for (field, expression) in writes {
                self.write(field, None);
                self.expression(expression, &output_local);
            }
            return;
        }
        let properties = output.and_then(property_names).unwrap_or_default();
        let missing_hint = match default {
            WritesDefault::Nothing => return,
            WritesDefault::Required(hint) => Some(hint),
            WritesDefault::PropertiesRequired(hint) if properties.is_empty() => Some(hint),
            WritesDefault::Properties | WritesDefault::PropertiesRequired(_) => None,
        };
        if let Some(hint) = missing_hint {
            let message = format!("node `{}` does not say what it writes", self.id);
            self.error_hint(self.pos, &message, hint);
            return;
        }
        // At run time the node writes exactly these fields, whatever else its output holds.
        self.checker
            .compiled
            .default_writes
            .insert(self.id.clone(), properties.clone());
        for name in properties {
            let schema = output.and_then(|o| o.pointer(&format!("/properties/{name}")));
            self.write(&Spanned::new(origin, name), schema);
        }
    }

    /// Records that the node writes `field`; `schema` is the field's schema in the node's
    /// output, when the field comes from there.
    fn write(&mut self, field: &Spanned<String>, schema: Option<&Value>) {
        if !self.checker.state.contains_key(field.as_str()) {
            let hint = match schema {
                Some(schema) => {
                    format!("add `{field}: {schema}` under `state:`, or choose what to store with `writes:`")
                }
                None => self.checker.field_hint(field),
            };
            let message = format!("node `{}` writes `{field}`, which is not a state field", self.id);
            self.checker.error(field.pos, message, Some(hint));
            return;
        }
        self.checker.writes.push(Write {
            node: self.id.clone(),
            field: field.value.clone(),
            repeated: self.repeated,
        });
    }

    /// The graph a `subgraph` node names, loaded and checked.
    pub(crate) fn subgraph(&mut self, name: &Spanned<String>) -> Option<Arc<Graph>> {
        match self.checker.loader.subgraph(name) {
            SubgraphLookup::Found(graph) => {
                self.checker.subgraphs.insert(name.value.clone(), graph.clone());
                Some(graph)
            }
            SubgraphLookup::Broken => {
                // Its own errors are reported in its own file.
                self.checker.failed = true;
                None
            }
            SubgraphLookup::Missing => {
                let names = self.checker.loader.graph_names();
                let expected = self.checker.loader.source.path(FileKind::Graph, name);
                let hint = did_you_mean(name, names.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("expected the file `{}`", expected.display()));
                self.checker
                    .error(name.pos, format!("graph `{name}` does not exist"), Some(hint));
                None
            }
            SubgraphLookup::Recursive(cycle) => {
                let message = format!("graph `{name}` includes itself: {}", cycle.join(" → "));
                let hint = "a graph cannot run itself, directly or through another graph".to_owned();
                self.checker.error(name.pos, message, Some(hint));
                None
            }
        }
    }
}

/// Expressions and variables, for nodes and for edges alike.
impl Checker<'_> {
    /// A minijinja expression: it compiles, and every variable it uses exists.
    pub(crate) fn expression(&mut self, expression: &Spanned<String>, locals: &[Local]) {
        let variables = match self.loader.templates.expression(expression) {
            Ok(variables) => variables,
            Err(TemplateProblem::Syntax { message, .. } | TemplateProblem::Other(message)) => {
                let text = format!("expression `{}` does not compile: {message}", expression.value);
                self.error(expression.pos, text, None);
                return;
            }
            Err(TemplateProblem::Missing) => return,
        };
        for path in variables {
            if let Err((message, hint)) = self.resolve(&path, locals) {
                self.error(expression.pos, message, hint);
            }
        }
    }

    /// A variable path used by an expression or template; `Err` says what is wrong.
    pub(crate) fn resolve(&mut self, path: &str, locals: &[Local]) -> Result<(), (String, Option<String>)> {
        let mut segments = path.split('.');
        let root = segments.next().unwrap_or(path);
        let local = locals.iter().rev().find(|local| local.name == root);
        let mut schema = if let Some(local) = local {
            local.schema.clone()
        } else if self.state.contains_key(root) {
            self.reads.insert(root.to_owned());
            self.resolved.get(root).cloned()
        } else if root == "context" {
            Some(self.context_schema())
        } else {
            let visible: Vec<&str> = locals
                .iter()
                .map(|local| local.name.as_str())
                .chain(self.state.keys().map(String::as_str))
                .collect();
            if root == "output" {
                let hint = "`output` is the node's result; only `writes` can use it".to_owned();
                return Err(("`output` is not known here".to_owned(), Some(hint)));
            }
            let message = format!("`{root}` is not a state field or a variable of this node");
            let hint = did_you_mean(root, visible).unwrap_or_else(|| self.field_hint(root));
            return Err((message, Some(hint)));
        };
        let mut walked = root.to_owned();
        for segment in segments {
            let Some(current) = schema.take() else {
                break;
            };
            let current = self.loader.schemas.resolve(&current).unwrap_or(current);
            if let Some(properties) = closed_properties(&current)
                && !properties.contains(&segment)
            {
                let message = format!("`{walked}` has no property `{segment}`");
                let hint = did_you_mean(segment, properties.iter().copied())
                    .unwrap_or_else(|| format!("its properties are {}", backticked(&properties)));
                return Err((message, Some(hint)));
            }
            schema = current.pointer(&format!("/properties/{segment}")).cloned();
            walked = format!("{walked}.{segment}");
        }
        Ok(())
    }
}
