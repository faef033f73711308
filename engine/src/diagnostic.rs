//! Diagnostics: problems found in graph files, templates and schemas, as data.
//!
//! Validation never stops at the first problem: checks push [`Diagnostic`]s into a list, which
//! is sorted by file and position and deduplicated before it is shown. Messages are lower-case
//! fragments with names in backticks; the hint, when there is one, says how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::yaml::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, with the file and position it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &Path, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, file, pos, message)
    }

    pub fn warning(file: &Path, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, file, pos, message)
    }

    fn new(severity: Severity, file: &Path, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn pos(&self) -> Pos {
        Pos::new(self.line, self.column)
    }

    fn sort_key(&self) -> (&Path, u32, u32, Severity, &str) {
        (&self.file, self.line, self.column, self.severity, &self.message)
    }
}

/// Renders like the compiler does:
///
/// ```text
/// error: edge target `sumarize` is not a node in this graph
///   --> graphs/support.yaml:14:9
///   help: did you mean `summarize`?
/// ```
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{severity}: {}", self.message)?;
        write!(f, "  --> {}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {hint}")?;
        }
        Ok(())
    }
}

/// Sorts by file and position, and drops repeats (a subgraph checked from two parents).
pub fn normalize(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diagnostics.dedup();
}

/// Renders a list of diagnostics, separated by blank lines.
pub fn render(diagnostics: &[Diagnostic]) -> String {
    let blocks: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    blocks.join("\n\n")
}

/// The candidate closest to `name`, if one is close enough to be what was meant.
///
/// Jaro similarity with clap's cutoff of 0.7, which misses typos in short names (`lm` for
/// `llm`), so an edit distance of one per three characters (at least one) also counts.
/// A case-only difference always matches.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    let max_edits = (name.chars().count() / 3).max(1);
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let score = if candidate.eq_ignore_ascii_case(name) {
            2.0
        } else {
            strsim::jaro(name, candidate)
        };
        let close = score >= 0.7 || strsim::osa_distance(name, candidate) <= max_edits;
        if close && best.is_none_or(|(top, _)| score > top) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// "did you mean `x`?" for a close candidate.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(name, candidates).map(|best| format!("did you mean `{best}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_ignores_strangers() {
        let names = ["summarize", "classify", "reply"];
        assert_eq!(closest("sumarize", names), Some("summarize"));
        assert_eq!(closest("Reply", names), Some("reply"));
        assert_eq!(closest("database", names), None);
    }

    #[test]
    fn renders_message_location_and_hint() {
        let diagnostic = Diagnostic::error(
            Path::new("graphs/support.yaml"),
            Pos::new(14, 9),
            "edge target `sumarize` is not a node in this graph",
        )
        .with_hint("did you mean `summarize`?");
        assert_eq!(
            diagnostic.to_string(),
            "error: edge target `sumarize` is not a node in this graph\n  --> graphs/support.yaml:14:9\n  help: did you mean `summarize`?"
        );
    }
}
