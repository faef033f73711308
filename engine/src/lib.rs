//! Finch's engine: agent graphs that live in files.
//!
//! A graph is a YAML file (typed state, nodes, edges) with its prompts in minijinja templates
//! and its types in JSON Schemas. [`load`] reads one and checks everything that can be checked
//! without running it — names, types, templates, expressions, the shape of the graph — and
//! returns either a [`Graph`] or every problem found, as [`Diagnostic`]s with file, line and
//! column. The engine reads no environment variables and touches no network or database while
//! loading; it reads only the paths it is given.

// The engine reports through return values and events, never by printing.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod cases;
pub mod diagnostic;
pub mod diff;
pub mod graph;
pub mod llm;
pub mod nodes;
pub mod registry;
pub mod replay;
pub mod run;
pub mod sandbox;
pub mod source;
pub mod state;
pub mod store;
pub mod template;
pub mod worker;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use graph::{Graph, LoadOptions, NodeId, Project, load, load_source, load_with};

/// The JSON Schema of graph files (`schemas/graph.schema.json`), generated from the types
/// the loader reads.
pub fn graph_json_schema() -> String {
    graph::json_schema::generate()
}
