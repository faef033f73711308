//! `/api/graphs`: the graphs threads can run, as resources — their versions, their source, a
//! Mermaid drawing, what `finch graph check` says of them now, and what the last reloads of
//! their files did (the server reloads them when they change).

use chrono::{DateTime, Utc};
use engine::registry::RegistryEvent;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::auth::Auth;
use super::{ApiError, Ctx, Tag};

pub(crate) struct GraphsApi(pub(crate) Ctx);

#[derive(Debug, Object)]
pub(crate) struct GraphSummary {
    name: String,
    /// The version new threads get; none when the graph has never loaded.
    version: Option<String>,
    description: Option<String>,
    /// Whether its files now have errors (it then keeps serving its last good version).
    has_errors: bool,
}

#[derive(Debug, Object)]
pub(crate) struct GraphDetail {
    name: String,
    version: Option<String>,
    description: Option<String>,
    /// The graph file, as loaded.
    source: Option<String>,
    /// The graph drawn in Mermaid (`flowchart`).
    mermaid: Option<String>,
    /// What the last load found: `[{severity, file, line, column, message, hint}]`.
    diagnostics: Value,
}

#[derive(Debug, Object)]
pub(crate) struct ReloadStatus {
    /// Whether the graph files are watched and reloaded when they change.
    watching: bool,
    /// When the last reload happened, if one did since the server started.
    last_reload: Option<DateTime<Utc>>,
    /// What the last reloads did, oldest first (at most 50).
    events: Vec<ReloadEvent>,
}

#[derive(Debug, Object)]
pub(crate) struct ReloadEvent {
    at: DateTime<Utc>,
    /// `reloaded`, `rejected`, `removed` or `watch_failed`.
    kind: String,
    graph: Option<String>,
    /// The version now served.
    version: Option<String>,
    /// The errors that kept the new files from loading, or the watcher's.
    diagnostics: Value,
}

#[OpenApi(prefix_path = "/graphs", tag = "Tag::Graphs")]
impl GraphsApi {
    /// Every graph, with the version new threads get.
    #[oai(path = "/", method = "get")]
    async fn list(&self, _auth: Auth) -> Result<Json<Vec<GraphSummary>>, ApiError> {
        let registry = self.0.runs()?.registry();
        let current = registry.graphs();
        let problems = registry.all_problems();
        let mut names: Vec<&String> = current.keys().chain(problems.keys()).collect();
        names.sort();
        names.dedup();
        Ok(Json(
            names
                .into_iter()
                .map(|name| {
                    let graph = current.get(name);
                    GraphSummary {
                        name: name.clone(),
                        version: graph.map(|graph| graph.version.clone()),
                        description: graph.and_then(|graph| graph.description.clone()),
                        has_errors: problems.contains_key(name),
                    }
                })
                .collect(),
        ))
    }

    /// What the last reloads of the graph files did.
    #[oai(path = "/reloads", method = "get")]
    async fn reloads(&self, _auth: Auth) -> Result<Json<ReloadStatus>, ApiError> {
        let runs = self.0.runs()?;
        let events: Vec<ReloadEvent> = runs.reloads().into_iter().map(reload_event).collect();
        Ok(Json(ReloadStatus {
            watching: runs.is_watching(),
            last_reload: events.last().map(|event| event.at),
            events,
        }))
    }

    /// One graph: its source, its drawing and its diagnostics.
    #[oai(path = "/:name", method = "get")]
    async fn get(&self, _auth: Auth, name: Path<String>) -> Result<Json<GraphDetail>, ApiError> {
        let registry = self.0.runs()?.registry();
        let graph = registry.get(&name.0);
        let problems = registry.problems(&name.0);
        if graph.is_none() && problems.is_empty() {
            return Err(ApiError::NotFound { what: "graph" });
        }
        Ok(Json(GraphDetail {
            version: graph.as_ref().map(|graph| graph.version.clone()),
            description: graph.as_ref().and_then(|graph| graph.description.clone()),
            source: graph
                .as_ref()
                .and_then(|graph| graph.files.graphs.get(&graph.name).cloned()),
            mermaid: graph.as_ref().map(|graph| engine::graph::draw::mermaid(graph)),
            diagnostics: serde_json::to_value(graph.as_ref().map_or(problems.clone(), |graph| {
                if problems.is_empty() {
                    graph.warnings.clone()
                } else {
                    problems.clone()
                }
            }))
            .unwrap_or_default(),
            name: name.0,
        }))
    }
}

fn reload_event((at, event): (DateTime<Utc>, RegistryEvent)) -> ReloadEvent {
    let (kind, graph, version, diagnostics) = match event {
        RegistryEvent::Reloaded {
            graph,
            version,
            warnings,
            ..
        } => (
            "reloaded",
            Some(graph),
            Some(version),
            serde_json::to_value(warnings),
        ),
        RegistryEvent::Rejected {
            graph,
            diagnostics,
            serving,
        } => (
            "rejected",
            Some(graph),
            serving,
            serde_json::to_value(diagnostics),
        ),
        RegistryEvent::Removed { graph } => ("removed", Some(graph), None, Ok(Value::Array(Vec::new()))),
        RegistryEvent::WatchFailed { message } => {
            ("watch_failed", None, None, Ok(Value::from(vec![message])))
        }
    };
    ReloadEvent {
        at,
        kind: kind.to_owned(),
        graph,
        version,
        diagnostics: diagnostics.unwrap_or_default(),
    }
}
