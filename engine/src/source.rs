//! Where a project's files come from: folders on disk, or the stored files of a graph version.
//!
//! The loader reads graphs, templates and schemas only through a [`Source`], by kind and by
//! name, and keeps every file it read as [`GraphFiles`]: exactly what a checked graph is made
//! of. Their hash is the graph's version; stored, they load the same graph again, without the
//! folders — so a thread keeps running the graph it started on after the files change.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The three kinds of files a graph is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A graph file, named without `.yaml`.
    Graph,
    /// A template under `prompts/`, named by its path there.
    Template,
    /// A JSON Schema under `schemas/`, named by its path there.
    Schema,
}

/// Files by kind and name.
pub trait Source: Send + Sync + fmt::Debug {
    /// The text of a file; `NotFound` when there is none.
    fn read(&self, kind: FileKind, name: &str) -> io::Result<String>;
    /// The names of every file of a kind, for "did you mean" hints.
    fn names(&self, kind: FileKind) -> Vec<String>;
    /// Where a file is (or would be), for messages.
    fn path(&self, kind: FileKind, name: &str) -> PathBuf;
}

/// A project on disk: the folder of the graphs, and the `prompts/` and `schemas/` folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    pub graphs: PathBuf,
    pub prompts: PathBuf,
    pub schemas: PathBuf,
}

impl Source for Folders {
    fn read(&self, kind: FileKind, name: &str) -> io::Result<String> {
        if !is_relative_name(name) {
            let message = format!("`{name}` leaves its folder");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        std::fs::read_to_string(self.path(kind, name))
    }

    fn names(&self, kind: FileKind) -> Vec<String> {
        let mut names = Vec::new();
        match kind {
            FileKind::Graph => {
                let Ok(entries) = std::fs::read_dir(&self.graphs) else {
                    return names;
                };
                for path in entries.flatten().map(|entry| entry.path()) {
                    if crate::graph::is_graph_file(&path) {
                        names.push(crate::graph::graph_name(&path));
                    }
                }
                names.sort();
            }
            FileKind::Template => list_files(&self.prompts, &self.prompts, &mut names),
            FileKind::Schema => {
                list_files(&self.schemas, &self.schemas, &mut names);
                names.retain(|name| name.ends_with(".json"));
            }
        }
        names
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        match kind {
            FileKind::Graph => self.graphs.join(format!("{name}.yaml")),
            FileKind::Template => self.prompts.join(name),
            FileKind::Schema => self.schemas.join(name),
        }
    }
}

/// The files of one graph version: its graph file, the subgraphs it uses, and every template
/// and schema they use, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphFiles {
    /// The name of the graph the files are for.
    pub graph: String,
    pub graphs: BTreeMap<String, String>,
    pub templates: BTreeMap<String, String>,
    pub schemas: BTreeMap<String, String>,
}

impl GraphFiles {
    /// The version: a SHA-256 of the files, in hex. Equal files, equal version.
    pub fn version(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.graph.as_bytes());
        for (kind, files) in [
            ("graph", &self.graphs),
            ("template", &self.templates),
            ("schema", &self.schemas),
        ] {
            for (name, text) in files {
                // Lengths first, so no two different sets of files can hash alike.
                for part in [kind.as_bytes(), name.as_bytes(), text.as_bytes()] {
                    hash.update((part.len() as u64).to_le_bytes());
                    hash.update(part);
                }
            }
        }
        hash.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
    }

    pub(crate) fn record(&mut self, kind: FileKind, name: &str, text: &str) {
        let files = match kind {
            FileKind::Graph => &mut self.graphs,
            FileKind::Template => &mut self.templates,
            FileKind::Schema => &mut self.schemas,
        };
        files.insert(name.to_owned(), text.to_owned());
    }

    fn files(&self, kind: FileKind) -> &BTreeMap<String, String> {
        match kind {
            FileKind::Graph => &self.graphs,
            FileKind::Template => &self.templates,
            FileKind::Schema => &self.schemas,
        }
    }
}

impl Source for GraphFiles {
    fn read(&self, kind: FileKind, name: &str) -> io::Result<String> {
        self.files(kind).get(name).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{name}` is not in this graph version"),
            )
        })
    }

    fn names(&self, kind: FileKind) -> Vec<String> {
        self.files(kind).keys().cloned().collect()
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        match kind {
            FileKind::Graph => PathBuf::from(format!("graphs/{name}.yaml")),
            FileKind::Template => Path::new("prompts").join(name),
            FileKind::Schema => Path::new("schemas").join(name),
        }
    }
}

/// A name that stays inside its folder: relative, with no `..`.
fn is_relative_name(name: &str) -> bool {
    Path::new(name)
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
}

/// Every file under `dir`, as paths relative to `root` with `/` separators, sorted.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            out.push(parts.join("/"));
        }
    }
    out.sort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> GraphFiles {
        let mut files = GraphFiles {
            graph: "support".to_owned(),
            ..GraphFiles::default()
        };
        files.record(FileKind::Graph, "support", "version: 1\n");
        files.record(FileKind::Template, "support/answer.j2", "Hi {{ name }}");
        files
    }

    #[test]
    fn the_version_changes_with_any_file_and_only_then() {
        let version = files().version();
        assert_eq!(version.len(), 64);
        assert_eq!(files().version(), version);
        let mut changed = files();
        changed.record(FileKind::Template, "support/answer.j2", "Hello {{ name }}");
        assert_ne!(changed.version(), version);
        let mut renamed = files();
        renamed.templates = BTreeMap::from([("support/reply.j2".to_owned(), "Hi {{ name }}".to_owned())]);
        assert_ne!(renamed.version(), version);
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let folders = Folders {
            graphs: "g".into(),
            prompts: "p".into(),
            schemas: "s".into(),
        };
        let err = folders.read(FileKind::Template, "../secrets.txt").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
