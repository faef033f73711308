//! The current version of every graph in a project's folders, kept current as the files change.
//!
//! A [`Registry`] loads every graph in the graphs folder and hands out the current
//! `Arc<Graph>` for a name. A thread is pinned to the version it was created with
//! ([`Worker::create_thread`](crate::worker::Worker::create_thread)), so a new version changes
//! only the threads created after it.
//!
//! [`Registry::reload`] loads every graph again: any template or schema may be shared, so
//! reloading them all is the simple way to be right, and a graph whose files did not change
//! keeps the `Arc` it had. A graph that no longer loads keeps its last good version, and its
//! diagnostics are kept as its [`problems`](Registry::problems) until it loads again. A graph
//! whose file is deleted is no longer served: the folder says which graphs exist, threads
//! already created keep their stored version, and a file deleted and written again within
//! the debounce (as some editors save) is never seen missing.
//!
//! [`Registry::watch`] reloads after [`DEBOUNCE`] of quiet following a change in the graphs
//! folder or anywhere under `prompts/` and `schemas/`. Folders are watched, not files, so
//! editors that save by renaming a new file over the old one are seen too.
//! What a reload did goes out as [`RegistryEvent`]s to every subscriber: the engine never
//! prints, and the server decides what to log.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::broadcast;

use crate::diagnostic::Diagnostic;
use crate::graph::{Graph, LoadOptions, load_source};
use crate::source::{FileKind, Folders, Source};

/// How long the folders must be quiet after a change before the graphs are reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Events kept for a subscriber that falls behind; past that it gets `Lagged`.
const EVENT_BUFFER: usize = 256;

/// What a reload did to one graph, or what went wrong with watching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// The graph loads, and new threads now get `version`: it is new (`previous` is `None`),
    /// its files changed, or it loads again after problems (then `previous` may equal `version`).
    Reloaded {
        graph: String,
        version: String,
        previous: Option<String>,
        warnings: Vec<Diagnostic>,
    },
    /// The graph changed and has errors: new threads still get `serving`, its last good
    /// version (`None` if it never loaded). Sent again only when the diagnostics change.
    Rejected {
        graph: String,
        diagnostics: Vec<Diagnostic>,
        serving: Option<String>,
    },
    /// The graph's file is gone, and the graph is no longer served.
    Removed { graph: String },
    /// The file watcher reported an error; it keeps watching.
    WatchFailed { message: String },
}

impl RegistryEvent {
    /// The graph the event is about (`None` for a watcher error).
    pub fn graph(&self) -> Option<&str> {
        match self {
            RegistryEvent::Reloaded { graph, .. }
            | RegistryEvent::Rejected { graph, .. }
            | RegistryEvent::Removed { graph } => Some(graph),
            RegistryEvent::WatchFailed { .. } => None,
        }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start the file watcher: {0}")]
    Start(notify::Error),
    #[error("cannot watch `{}`: {error}", folder.display())]
    Folder { folder: PathBuf, error: notify::Error },
}

/// Every graph of a project, each at its current version. Cheap to clone: clones share it.
#[derive(Debug, Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    folders: Folders,
    options: LoadOptions,
    graphs: RwLock<HashMap<String, Entry>>,
    /// Held for a whole reload, so that two reloads never interleave.
    reloading: Mutex<()>,
    events: broadcast::Sender<RegistryEvent>,
}

/// One graph: its last good version, and the diagnostics of the load that failed after it.
#[derive(Debug, Default)]
struct Entry {
    current: Option<Arc<Graph>>,
    problems: Vec<Diagnostic>,
}

/// Watching the folders; dropping it stops watching.
///
/// No change made after the drop is seen; a reload already under way finishes.
#[derive(Debug)]
pub struct Watching {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl Registry {
    /// Loads every graph in `folders.graphs`. A graph with errors has no version, only problems.
    ///
    /// Reads files: in async code, call it where blocking is allowed.
    pub fn new(folders: Folders, options: LoadOptions) -> Registry {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let registry = Registry {
            shared: Arc::new(Shared {
                folders,
                options,
                graphs: RwLock::new(HashMap::new()),
                reloading: Mutex::new(()),
                events,
            }),
        };
        registry.reload();
        registry
    }

    pub fn folders(&self) -> &Folders {
        &self.shared.folders
    }

    /// The current version of the graph `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<Arc<Graph>> {
        let graphs = self.shared.graphs.read().unwrap_or_else(PoisonError::into_inner);
        graphs.get(name)?.current.clone()
    }

    /// Every graph that has a current version, by name.
    pub fn graphs(&self) -> BTreeMap<String, Arc<Graph>> {
        let graphs = self.shared.graphs.read().unwrap_or_else(PoisonError::into_inner);
        let current = graphs
            .iter()
            .filter_map(|(name, entry)| Some((name.clone(), entry.current.clone()?)));
        current.collect()
    }

    /// The diagnostics of the graph's last load, if it failed (empty when it loads).
    pub fn problems(&self, name: &str) -> Vec<Diagnostic> {
        let graphs = self.shared.graphs.read().unwrap_or_else(PoisonError::into_inner);
        graphs
            .get(name)
            .map(|entry| entry.problems.clone())
            .unwrap_or_default()
    }

    /// [`problems`](Registry::problems) of every graph that has some, by name.
    pub fn all_problems(&self) -> BTreeMap<String, Vec<Diagnostic>> {
        let graphs = self.shared.graphs.read().unwrap_or_else(PoisonError::into_inner);
        let failed = graphs.iter().filter(|(_, entry)| !entry.problems.is_empty());
        failed
            .map(|(name, entry)| (name.clone(), entry.problems.clone()))
            .collect()
    }

    /// Events from every reload from now on, whoever started it.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.shared.events.subscribe()
    }

    /// Loads every graph again and returns what changed (also sent to subscribers).
    ///
    /// Reads files: in async code, call it where blocking is allowed.
    pub fn reload(&self) -> Vec<RegistryEvent> {
        let shared = &self.shared;
        let _reloading = shared.reloading.lock().unwrap_or_else(PoisonError::into_inner);
        let source: Arc<dyn Source> = Arc::new(shared.folders.clone());
        let loaded: Vec<_> = source
            .names(FileKind::Graph)
            .into_iter()
            .map(|name| {
                let result = load_source(source.clone(), &name, &shared.options);
                (name, result)
            })
            .collect();
        let events = {
            let mut graphs = shared.graphs.write().unwrap_or_else(PoisonError::into_inner);
            apply(&mut graphs, loaded)
        };
        for event in &events {
            // No subscriber is not an error: the events are also returned.
            let _ = shared.events.send(event.clone());
        }
        events
    }

    /// Reloads whenever something changes in the graphs folder (not its subfolders: graphs
    /// are only at its top) or anywhere under `prompts/` and `schemas/`.
    ///
    /// `prompts/` or `schemas/` are skipped when missing (a project may have no schemas).
    /// Reloads once after the watcher starts, so a change since the last load is not missed.
    pub fn watch(&self) -> Result<Watching, WatchError> {
        let registry = Arc::downgrade(&self.shared);
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            on_change(&registry, result);
        })
        .map_err(WatchError::Start)?;
        let folders = &self.shared.folders;
        let watched = [
            (&folders.graphs, RecursiveMode::NonRecursive, true),
            (&folders.prompts, RecursiveMode::Recursive, false),
            (&folders.schemas, RecursiveMode::Recursive, false),
        ];
        for (folder, mode, required) in watched {
            if !required && !folder.is_dir() {
                continue;
            }
            debouncer
                .watch(folder, mode)
                .map_err(|error| WatchError::Folder {
                    folder: folder.clone(),
                    error,
                })?;
        }
        self.reload();
        Ok(Watching {
            _debouncer: debouncer,
        })
    }
}

/// What the watcher does with a batch of debounced events.
fn on_change(registry: &Weak<Shared>, result: DebounceEventResult) {
    let Some(shared) = registry.upgrade() else {
        return;
    };
    match result {
        // Reading a file is an access event too: reacting to those would reload forever.
        Ok(events) => {
            if events
                .iter()
                .any(|event| !matches!(event.kind, EventKind::Access(_)))
            {
                Registry { shared }.reload();
            }
        }
        Err(errors) => {
            for error in errors {
                let message = error.to_string();
                let _ = shared.events.send(RegistryEvent::WatchFailed { message });
            }
        }
    }
}

/// Records what a reload loaded, by graph name, and says what changed.
fn apply(
    graphs: &mut HashMap<String, Entry>,
    loaded: Vec<(String, Result<Graph, Vec<Diagnostic>>)>,
) -> Vec<RegistryEvent> {
    let mut gone: Vec<String> = graphs
        .keys()
        .filter(|name| !loaded.iter().any(|(found, _)| found == *name))
        .cloned()
        .collect();
    gone.sort();
    let mut events = Vec::new();
    for graph in gone {
        graphs.remove(&graph);
        events.push(RegistryEvent::Removed { graph });
    }
    for (name, result) in loaded {
        let entry = graphs.entry(name.clone()).or_default();
        events.extend(entry.update(name, result));
    }
    events
}

impl Entry {
    fn update(&mut self, graph: String, result: Result<Graph, Vec<Diagnostic>>) -> Option<RegistryEvent> {
        let previous = self.current.as_ref().map(|current| current.version.clone());
        match result {
            Ok(loaded) => {
                let had_problems = !std::mem::take(&mut self.problems).is_empty();
                let same = previous.as_ref() == Some(&loaded.version);
                if same && !had_problems {
                    return None;
                }
                let warnings = loaded.warnings.clone();
                let version = loaded.version.clone();
                if !same {
                    self.current = Some(Arc::new(loaded));
                }
                Some(RegistryEvent::Reloaded {
                    graph,
                    version,
                    previous,
                    warnings,
                })
            }
            Err(diagnostics) => {
                if diagnostics == self.problems {
                    return None;
                }
                self.problems = diagnostics.clone();
                Some(RegistryEvent::Rejected {
                    graph,
                    diagnostics,
                    serving: previous,
                })
            }
        }
    }
}
