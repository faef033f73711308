//! Prompt templates and expressions, both minijinja.
//!
//! Templates are files under the project's `prompts/` folder; expressions are the short
//! minijinja expressions written in graph files (`when:`, `writes:`, `input:` …). This module
//! compiles them and lists the variables they use, so the checker can compare those with the
//! state schema before anything runs. It keeps the source of every template it loaded, so a
//! checked graph carries the exact prompts it was checked with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use crate::source::{FileKind, Source};
use crate::yaml::Pos;

/// Names minijinja provides inside templates without any context.
const BUILTIN_NAMES: &[&str] = &["loop", "self", "super", "caller", "varargs", "kwargs"];

/// Why a template could not be used.
#[derive(Debug)]
pub(crate) enum TemplateProblem {
    Missing,
    /// A syntax error, at a position in a template (`template` names it when it is another
    /// template than the one loaded, which uses it).
    Syntax {
        template: Option<String>,
        pos: Pos,
        message: String,
    },
    Other(String),
}

/// The templates of one project, read through its [`Source`].
#[derive(Debug)]
pub struct Templates {
    source: Arc<dyn Source>,
    env: Environment<'static>,
    sources: BTreeMap<String, String>,
}

impl Templates {
    pub fn new(source: Arc<dyn Source>) -> Templates {
        let mut env = environment();
        let reader = source.clone();
        env.set_loader(move |name| match reader.read(FileKind::Template, name) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                err.to_string(),
            )),
        });
        Templates {
            source,
            env,
            sources: BTreeMap::new(),
        }
    }

    /// Where template `name` is, for messages.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.source.path(FileKind::Template, name)
    }

    /// Loads and compiles `name`, and the templates it includes, extends or imports; on
    /// success returns the variables it uses (see [`undeclared`]).
    pub(crate) fn load(&mut self, name: &str) -> Result<BTreeSet<String>, TemplateProblem> {
        let template = match self.env.get_template(name) {
            Ok(template) => template,
            Err(err) if err.kind() == ErrorKind::TemplateNotFound => return Err(TemplateProblem::Missing),
            Err(err) => return Err(problem(&err, err.template_source().unwrap_or_default())),
        };
        let variables = self.undeclared(template.undeclared_variables(true));
        let source = template.source().to_owned();
        self.sources.insert(name.to_owned(), source.clone());
        for used in referenced_templates(&source) {
            if self.sources.contains_key(&used) {
                continue;
            }
            match self.load(&used) {
                Ok(_) => {}
                Err(TemplateProblem::Missing) => {
                    return Err(TemplateProblem::Other(format!(
                        "it uses `{used}`, which does not exist"
                    )));
                }
                Err(other) => return Err(other),
            }
        }
        Ok(variables)
    }

    /// The source of a template loaded earlier.
    pub fn source(&self, name: &str) -> Option<&str> {
        self.sources.get(name).map(String::as_str)
    }

    /// `name` and the templates it includes, extends or imports, each once, with their sources:
    /// what rendering it needs. Only templates loaded earlier are listed.
    pub(crate) fn closure(&self, name: &str, into: &mut BTreeMap<String, String>) {
        let Some(source) = self.sources.get(name) else {
            return;
        };
        if into.insert(name.to_owned(), source.clone()).is_none() {
            for used in referenced_templates(source) {
                self.closure(&used, into);
            }
        }
    }

    /// Every template loaded so far, by name.
    pub fn loaded(&self) -> &BTreeMap<String, String> {
        &self.sources
    }

    /// Template names, for "did you mean" hints.
    pub(crate) fn available(&self) -> Vec<String> {
        self.source.names(FileKind::Template)
    }

    /// Compiles template text given in a graph file; on success returns the variables it uses.
    pub(crate) fn text(&self, source: &str) -> Result<BTreeSet<String>, TemplateProblem> {
        let template = self
            .env
            .template_from_str(source)
            .map_err(|err| problem(&err, source))?;
        Ok(self.undeclared(template.undeclared_variables(true)))
    }

    /// The string an expression is, when it is a literal (`'Hello {{ name }}'`).
    pub(crate) fn literal(&self, source: &str) -> Option<String> {
        let expression = self.env.compile_expression(source).ok()?;
        if !expression.undeclared_variables(false).is_empty() {
            return None;
        }
        let value = expression.eval(minijinja::context! {}).ok()?;
        value.as_str().map(str::to_owned)
    }

    /// Compiles an expression; on success returns the variables it uses.
    pub(crate) fn expression(&self, source: &str) -> Result<BTreeSet<String>, TemplateProblem> {
        let expression = self
            .env
            .compile_expression(source)
            .map_err(|err| problem(&err, source))?;
        Ok(self.undeclared(expression.undeclared_variables(true)))
    }

    /// Variables (with trivial attribute paths, `user.name`) minus what minijinja provides.
    fn undeclared(&self, found: std::collections::HashSet<String>) -> BTreeSet<String> {
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        found
            .into_iter()
            .filter(|path| {
                let root = path.split('.').next().unwrap_or(path);
                !globals.contains(root) && !BUILTIN_NAMES.contains(&root)
            })
            .collect()
    }
}

/// The environment every template and expression is compiled in, for checks and for runs.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_reload(false);
    env
}

fn problem(err: &minijinja::Error, source: &str) -> TemplateProblem {
    let message = err.detail().unwrap_or("invalid template").to_owned();
    if err.kind() != ErrorKind::SyntaxError {
        return TemplateProblem::Other(format!("{}: {message}", err.kind()));
    }
    let pos = match err.range() {
        Some(range) => Pos::new(1, 1).advance(source, range.start),
        None => Pos::new(err.line().unwrap_or(1) as u32, 1),
    };
    TemplateProblem::Syntax {
        template: err
            .name()
            .filter(|name| *name != "<string>" && *name != "<expression>")
            .map(str::to_owned),
        pos,
        message,
    }
}

/// Templates named by `{% include %}`, `{% extends %}`, `{% import %}` and `{% from %}` with a
/// literal name: loaded with the template, so a graph version holds them too.
fn referenced_templates(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for tag in source.split("{%").skip(1) {
        let tag = tag
            .split("%}")
            .next()
            .unwrap_or_default()
            .trim_start_matches('-')
            .trim_start();
        let Some(rest) = ["include", "extends", "import", "from"]
            .iter()
            .find_map(|word| tag.strip_prefix(word))
        else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'')
            && let Some(name) = rest[1..].split(quote).next()
        {
            found.push(name.to_owned());
        }
    }
    found
}

/// Where a variable is first used inside a `{{ … }}` or `{% … %}` tag of `source`.
pub(crate) fn find_variable(source: &str, name: &str) -> Option<Pos> {
    let mut rest_start = 0;
    while let Some(open) = find_tag_open(&source[rest_start..]) {
        let tag_start = rest_start + open + 2;
        let close = ["}}", "%}"]
            .iter()
            .filter_map(|end| source[tag_start..].find(end))
            .min()
            .map_or(source.len(), |end| tag_start + end);
        if let Some(offset) = find_word(&source[tag_start..close], name) {
            return Some(Pos::new(1, 1).advance(source, tag_start + offset));
        }
        rest_start = close;
    }
    None
}

fn find_tag_open(text: &str) -> Option<usize> {
    ["{{", "{%"].iter().filter_map(|open| text.find(open)).min()
}

/// The offset of `word` in `text` as a whole identifier, outside string literals.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut quote: Option<char> = None;
    let mut previous: Option<char> = None;
    for (offset, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {
                let starts_word = !previous.is_some_and(|p| is_ident(p) || p == '.');
                if starts_word && text[offset..].starts_with(word) {
                    let after = text[offset + word.len()..].chars().next();
                    if !after.is_some_and(is_ident) {
                        return Some(offset);
                    }
                }
            }
        }
        previous = Some(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_variables_inside_tags_only() {
        let source = "Hello messages\n{{ user.name }} and {% for m in messages %}{{ m }}{% endfor %}";
        assert_eq!(find_variable(source, "messages"), Some(Pos::new(2, 33)));
        assert_eq!(find_variable(source, "user"), Some(Pos::new(2, 4)));
        assert_eq!(find_variable(source, "name"), None);
    }

    #[test]
    fn ignores_words_in_string_literals() {
        assert_eq!(
            find_variable("{{ 'route' ~ route }}", "route"),
            Some(Pos::new(1, 14))
        );
    }

    fn templates() -> Templates {
        Templates::new(Arc::new(crate::source::GraphFiles::default()))
    }

    #[test]
    fn included_templates_are_found() {
        let source =
            "{% extends \"base.j2\" %}{%- include 'parts/a.j2' %}{% import \"m.j2\" as m %}{% if x %}";
        assert_eq!(referenced_templates(source), ["base.j2", "parts/a.j2", "m.j2"]);
    }

    #[test]
    fn expressions_list_their_variables_without_builtins() {
        let templates = templates();
        let variables = templates
            .expression("route == 'db' and range(3) | length > count.total")
            .unwrap();
        assert_eq!(
            variables.into_iter().collect::<Vec<_>>(),
            ["count.total", "route"]
        );
    }

    #[test]
    fn expression_syntax_errors_have_a_position() {
        let templates = templates();
        let Err(TemplateProblem::Syntax { message, .. }) = templates.expression("route ==") else {
            panic!("expected a syntax error");
        };
        assert!(message.contains("unexpected end of input"), "{message}");
    }
}
