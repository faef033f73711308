//! Spanned YAML: every value of a document together with where it was written.
//!
//! A file is parsed once, by serde-saphyr, into a [`Node`] tree whose every value and key
//! carries its line and column. Typed values are then deserialized from that tree by
//! [`from_node`], so an error always points at the innermost value that caused it, and the
//! callers can deserialize the parts of a document one by one and report every broken part
//! instead of stopping at the first. serde-saphyr's own `Spanned` loses its locations inside
//! internally tagged enums (the `kind:` of a node), which is why we keep our own tree.
//!
//! Wrap a field in [`Spanned`] to keep its location in the typed value.

mod de;
mod spanned;

use std::fmt;

use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};

use crate::diagnostic::closest;

pub use spanned::Spanned;

/// A position in a text file, 1-based; `line == 0` means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, column: 0 };

    pub fn new(line: u32, column: u32) -> Pos {
        Pos { line, column }
    }

    /// The position `offset` bytes into `text`, which starts at `self`.
    pub(crate) fn advance(self, text: &str, offset: usize) -> Pos {
        let before = &text[..offset.min(text.len())];
        match before.rfind('\n') {
            Some(newline) => Pos {
                line: self.line + before.matches('\n').count() as u32,
                column: before[newline + 1..].chars().count() as u32 + 1,
            },
            None => Pos {
                line: self.line,
                column: self.column + before.chars().count() as u32,
            },
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys may repeat (see [`Node::duplicate_keys`]).
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// A map node holding the given entries, at this node's position.
    pub(crate) fn with_entries(&self, entries: Vec<(Node, Node)>) -> Node {
        Node {
            pos: self.pos,
            value: Value::Map(entries),
        }
    }

    /// What a YAML reader would call this value, for error messages.
    pub fn describe(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// Keys that appear more than once in this map, as (first, repeated) pairs.
    pub(crate) fn duplicate_keys(&self) -> Vec<(&Node, &Node)> {
        let Some(entries) = self.entries() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (index, (key, _)) in entries.iter().enumerate() {
            if let Some((first, _)) = entries[..index].iter().find(|(k, _)| k.value == key.value) {
                found.push((first, key));
            }
        }
        found
    }
}

/// Parses a YAML document into a tree of spanned values.
pub fn parse(text: &str) -> Result<Node, Error> {
    let mut options = serde_saphyr::Options::default();
    // We report repeated keys ourselves, naming what they are (a node id, a field).
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    // YAML 1.2: only `true` and `false` are booleans, so `n: 3` or `on: …` stay names.
    options.strict_booleans = true;
    match serde_saphyr::from_str_with_options::<Option<Node>>(text, options) {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Ok(Node {
            pos: Pos::new(1, 1),
            value: Value::Null,
        }),
        Err(err) => {
            let pos = err
                .location()
                .map(|loc| Pos::new(loc.line() as u32, loc.column() as u32))
                .unwrap_or(Pos::new(1, 1));
            Err(Error::new(yaml_message(&err)).at(pos))
        }
    }
}

/// serde-saphyr's message without its "line N column M: " prefix, which we print ourselves.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let message = match first.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("line ") => rest,
        _ => first,
    };
    // The parser repeats the position at the end; it is printed once, by the diagnostic.
    let message = match message.rfind(" at line ") {
        Some(at) if message[at..].contains(", column ") => &message[..at],
        _ => message,
    };
    format!("invalid YAML: {message}")
}

/// Deserializes a typed value from a node; errors point at the innermost failing value.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, Error> {
    T::deserialize(node)
}

/// A problem found while reading a document: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
    /// Set for an unknown key, so callers can widen the suggestions (see `suggest_among`).
    pub(super) unknown_key: Option<(String, Vec<&'static str>)>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            pos: Pos::UNKNOWN,
            message: message.into(),
            hint: None,
            unknown_key: None,
        }
    }

    pub fn at(mut self, pos: Pos) -> Error {
        self.pos = pos;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Keeps the innermost position: only sets one that is still unknown.
    pub(super) fn or_at(mut self, pos: Pos) -> Error {
        if self.pos == Pos::UNKNOWN {
            self.pos = pos;
        }
        self
    }

    /// For an unknown key, recomputes the hint with more valid keys than serde knew of.
    pub(crate) fn suggest_among(mut self, more: &[&'static str]) -> Error {
        if let Some((key, expected)) = &self.unknown_key {
            let mut candidates = expected.clone();
            candidates.extend_from_slice(more);
            self.hint = Some(suggestion(key, &candidates));
        }
        self
    }
}

/// Both results, or every error of either: for a value read in two independent parts.
pub(crate) fn both<A, B>(
    first: Result<A, Error>,
    second: Result<B, Vec<Error>>,
) -> Result<(A, B), Vec<Error>> {
    match (first, second) {
        (Ok(first), Ok(second)) => Ok((first, second)),
        (first, second) => Err(first
            .err()
            .into_iter()
            .chain(second.err().into_iter().flatten())
            .collect()),
    }
}

/// "did you mean …?" when a candidate is close, otherwise the list of valid ones.
pub(crate) fn suggestion(name: &str, candidates: &[&str]) -> String {
    match closest(name, candidates.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!("expected one of {}", backticked(candidates)),
    }
}

pub(crate) fn backticked<S: AsRef<str>>(names: &[S]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    names.join(", ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl std::error::Error for Error {}

// ---------------------------------------------------------------------------------------------
// Building the tree from serde-saphyr.

/// Only ever read from YAML text by serde-saphyr, which knows where each value was.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        let spanned = serde_saphyr::Spanned::<Value>::deserialize(deserializer)?;
        let pos = Pos::new(
            spanned.referenced.line() as u32,
            spanned.referenced.column() as u32,
        );
        Ok(Node {
            pos,
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        name: Spanned<String>,
        timeout_secs: Option<u32>,
        tags: Vec<Spanned<String>>,
    }

    #[test]
    fn spans_point_at_values_keys_and_items() {
        let tree = parse("name: demo\ntags:\n  - a\n  - b\n").unwrap();
        let settings: Settings = from_node(&tree).unwrap();
        assert_eq!(settings.name.pos, Pos::new(1, 7));
        assert_eq!(settings.tags[1].pos, Pos::new(4, 5));
        assert_eq!(settings.timeout_secs, None);
    }

    #[test]
    fn an_unknown_key_is_reported_at_the_key_with_a_suggestion() {
        let tree = parse("name: demo\ntimout_secs: 3\ntags: []\n").unwrap();
        let err = from_node::<Settings>(&tree).unwrap_err();
        assert_eq!(err.pos, Pos::new(2, 1));
        assert_eq!(err.message, "unknown key `timout_secs`");
        assert_eq!(err.hint.as_deref(), Some("did you mean `timeout_secs`?"));
    }

    #[test]
    fn a_type_error_is_reported_at_the_innermost_value() {
        let tree = parse("name: demo\ntimeout_secs: soon\ntags: [a, [b]]\n").unwrap();
        let err = from_node::<Settings>(&tree).unwrap_err();
        assert_eq!(err.pos, Pos::new(2, 15));
        assert_eq!(
            err.message,
            "expected a whole number, 0 or more, found string \"soon\""
        );
    }

    #[test]
    fn a_missing_key_is_reported_at_its_map() {
        let tree = parse("first: 1\nsettings:\n  name: demo\n").unwrap();
        let settings = &tree.entries().unwrap()[1].1;
        let err = from_node::<Settings>(settings).unwrap_err();
        assert_eq!(
            (err.pos, err.message.as_str()),
            (Pos::new(3, 3), "missing key `tags`")
        );
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert_ne!(err.pos, Pos::UNKNOWN);
    }

    #[test]
    fn only_true_and_false_are_booleans() {
        let tree = parse("n: yes\ny: off\n").unwrap();
        let keys: Vec<_> = tree
            .entries()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.clone()))
            .collect();
        assert_eq!(keys[0], (Value::String("n".into()), Value::String("yes".into())));
        assert_eq!(keys[1], (Value::String("y".into()), Value::String("off".into())));
    }

    #[test]
    fn repeated_keys_stay_in_the_tree() {
        let tree = parse("a: 1\nb: 2\na: 3\n").unwrap();
        let duplicates = tree.duplicate_keys();
        assert_eq!(duplicates.len(), 1);
        assert_eq!(
            (duplicates[0].0.pos, duplicates[0].1.pos),
            (Pos::new(1, 1), Pos::new(3, 1))
        );
    }

    #[test]
    fn advance_counts_lines_and_columns() {
        let start = Pos::new(3, 10);
        assert_eq!(start.advance("ab\ncd", 4), Pos::new(4, 2));
        assert_eq!(start.advance("abcd", 2), Pos::new(3, 12));
    }
}
