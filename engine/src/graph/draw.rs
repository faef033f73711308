//! Drawing a checked graph exactly: Mermaid, Graphviz DOT and JSON.
//!
//! Edges and routes are data, so the drawing shows every edge and every route outcome,
//! with its condition, and each subgraph as a cluster holding its own graph. Node ids inside
//! a cluster are prefixed with the path of subgraph nodes that leads to them.

use std::fmt::Write;

use serde_json::{Value, json};

use super::{Edge, Endpoint, Graph, Next};
use crate::nodes::{Node, NodeDef};

/// `flowchart TD` text for Mermaid.
pub fn mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart TD\n");
    mermaid_body(&mut out, graph, "", 1);
    out
}

fn mermaid_body(out: &mut String, graph: &Graph, prefix: &str, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}{prefix}__start__((START))");
    let _ = writeln!(out, "{pad}{prefix}__end__((END))");
    for node in graph.nodes.values() {
        let id = format!("{prefix}{}", node.id);
        match inner_graph(graph, node) {
            Some(inner) => {
                let _ = writeln!(out, "{pad}subgraph {id}[\"{}\"]", escape(&label(node)));
                let _ = writeln!(out, "{pad}  direction TB");
                mermaid_body(out, inner, &format!("{id}__"), depth + 1);
                let _ = writeln!(out, "{pad}end");
            }
            None => {
                let (open, close) = mermaid_shape(&node.node);
                let _ = writeln!(out, "{pad}{id}{open}\"{}\"{close}", escape(&label(node)));
            }
        }
    }
    for edge in &graph.edges {
        let sources: Vec<String> = edge.from.iter().map(|e| mermaid_id(prefix, e)).collect();
        let sources = sources.join(" & ");
        let joined = if edge.from.len() > 1 { "all done" } else { "" };
        for (target, condition, default) in outcomes(edge) {
            let target = mermaid_id(prefix, target);
            let text = if default {
                "default".to_owned()
            } else {
                condition.unwrap_or(joined).to_owned()
            };
            let arrow = if default { "-.->" } else { "-->" };
            match text.is_empty() {
                true => _ = writeln!(out, "{pad}{sources} {arrow} {target}"),
                false => _ = writeln!(out, "{pad}{sources} {arrow}|\"{}\"| {target}", escape(&text)),
            }
        }
    }
}

fn mermaid_id(prefix: &str, endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Start => format!("{prefix}__start__"),
        Endpoint::End => format!("{prefix}__end__"),
        Endpoint::Node(id) => format!("{prefix}{id}"),
    }
}

fn mermaid_shape(node: &Node) -> (&'static str, &'static str) {
    match node {
        Node::Llm(_) => ("([", "])"),
        Node::Router(_) => ("{", "}"),
        Node::Sql(_) | Node::SqlQuery(_) => ("[(", ")]"),
        Node::Subgraph(_) | Node::Map(_) => ("[[", "]]"),
        Node::Interrupt(_) => (">", "]"),
        Node::Tool(_) => ("[/", "/]"),
    }
}

fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Graphviz `digraph` text.
pub fn dot(graph: &Graph) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  compound=true;\n  node [fontname=\"Helvetica\"];\n",
        graph.name
    );
    dot_body(&mut out, graph, "", 1);
    out.push_str("}\n");
    out
}

fn dot_body(out: &mut String, graph: &Graph, prefix: &str, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}\"{prefix}START\" [label=\"START\", shape=circle];");
    let _ = writeln!(out, "{pad}\"{prefix}END\" [label=\"END\", shape=doublecircle];");
    for node in graph.nodes.values() {
        let id = format!("{prefix}{}", node.id);
        match inner_graph(graph, node) {
            Some(inner) => {
                let _ = writeln!(out, "{pad}subgraph \"cluster_{id}\" {{");
                let _ = writeln!(out, "{pad}  label=\"{}\";", dot_escape(&label(node)));
                dot_body(out, inner, &format!("{id}/"), depth + 1);
                let _ = writeln!(out, "{pad}}}");
            }
            None => {
                let shape = dot_shape(&node.node);
                let _ = writeln!(
                    out,
                    "{pad}\"{id}\" [label=\"{}\", {shape}];",
                    dot_escape(&label(node))
                );
            }
        }
    }
    for edge in &graph.edges {
        for source in &edge.from {
            for (target, condition, default) in outcomes(edge) {
                let mut attributes = Vec::new();
                let (from, tail) = dot_endpoint(graph, prefix, source, false);
                let (to, head) = dot_endpoint(graph, prefix, target, true);
                attributes.extend(tail.map(|cluster| format!("ltail=\"{cluster}\"")));
                attributes.extend(head.map(|cluster| format!("lhead=\"{cluster}\"")));
                if default {
                    attributes.push("label=\"default\", style=dashed".to_owned());
                } else if let Some(condition) = condition {
                    attributes.push(format!("label=\"{}\"", dot_escape(condition)));
                } else if edge.from.len() > 1 {
                    attributes.push("label=\"all done\"".to_owned());
                }
                let attributes = match attributes.is_empty() {
                    true => String::new(),
                    false => format!(" [{}]", attributes.join(", ")),
                };
                let _ = writeln!(out, "{pad}\"{from}\" -> \"{to}\"{attributes};");
            }
        }
    }
}

/// The DOT node for an endpoint; a subgraph node is entered at its `START` and left at its
/// `END`, with the cluster named so Graphviz draws the edge to the cluster's border.
fn dot_endpoint(
    graph: &Graph,
    prefix: &str,
    endpoint: &Endpoint,
    entering: bool,
) -> (String, Option<String>) {
    match endpoint {
        Endpoint::Start => (format!("{prefix}START"), None),
        Endpoint::End => (format!("{prefix}END"), None),
        Endpoint::Node(id) => {
            let id_path = format!("{prefix}{id}");
            match inner_graph(graph, &graph.nodes[id]) {
                Some(_) => {
                    let inner = if entering { "START" } else { "END" };
                    (format!("{id_path}/{inner}"), Some(format!("cluster_{id_path}")))
                }
                None => (id_path, None),
            }
        }
    }
}

fn dot_shape(node: &Node) -> &'static str {
    match node {
        Node::Llm(_) => "shape=box, style=rounded",
        Node::Router(_) => "shape=diamond",
        Node::Sql(_) | Node::SqlQuery(_) => "shape=cylinder",
        Node::Subgraph(_) | Node::Map(_) => "shape=box3d",
        Node::Interrupt(_) => "shape=hexagon",
        Node::Tool(_) => "shape=parallelogram",
    }
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A node's label: its id and what it does in a few words.
fn label(node: &NodeDef) -> String {
    let what = match &node.node {
        Node::Llm(llm) => format!("llm · {}", llm.model.value),
        Node::Router(_) => "router".to_owned(),
        Node::Sql(sql) => format!(
            "sql · {}",
            if sql.mode == crate::nodes::SqlMode::Write {
                "write"
            } else {
                "read"
            }
        ),
        Node::SqlQuery(_) => "sql_query · sandboxed".to_owned(),
        Node::Subgraph(subgraph) => format!("subgraph · {}", subgraph.graph.value),
        Node::Map(map) => format!("map over {} · {}", map.over.value, map.node.node.kind()),
        Node::Interrupt(_) => "interrupt".to_owned(),
        Node::Tool(tool) => format!("tool · {}", tool.tool.value),
    };
    format!("{}: {what}", node.id)
}

/// The graph a node runs, if it is a subgraph node (or a map over one).
fn inner_graph<'g>(graph: &'g Graph, node: &NodeDef) -> Option<&'g Graph> {
    let name = match &node.node {
        Node::Subgraph(subgraph) => &subgraph.graph.value,
        Node::Map(map) => match &map.node.node {
            Node::Subgraph(subgraph) => &subgraph.graph.value,
            _ => return None,
        },
        _ => return None,
    };
    graph.subgraphs.get(name).map(|graph| &**graph)
}

/// Every way out of an edge: (target, condition, is the default).
fn outcomes(edge: &Edge) -> Vec<(&Endpoint, Option<&str>, bool)> {
    match &edge.next {
        Next::Static(targets) => targets.iter().map(|target| (target, None, false)).collect(),
        Next::Routes(routes) => {
            let cases = routes
                .cases
                .iter()
                .flat_map(|case| case.to.iter().map(|t| (t, Some(case.when.as_str()), false)));
            cases
                .chain(routes.default.iter().map(|target| (target, None, true)))
                .collect()
        }
    }
}

/// The graph as data: state, nodes as written, resolved edges and subgraphs.
pub fn json(graph: &Graph) -> Value {
    let state: serde_json::Map<String, Value> = graph
        .state
        .iter()
        .map(|(name, field)| {
            (
                name.clone(),
                json!({ "schema": field.schema, "reducer": field.reducer }),
            )
        })
        .collect();
    let edges: Vec<Value> = graph.edges.iter().map(edge_json).collect();
    let subgraphs: serde_json::Map<String, Value> = graph
        .subgraphs
        .iter()
        .map(|(name, inner)| (name.clone(), json(inner)))
        .collect();
    json!({
        "name": graph.name,
        "description": graph.description,
        "max_steps": graph.max_steps,
        "state": state,
        "input": graph.input,
        "output": graph.output,
        "nodes": graph.nodes.values().collect::<Vec<_>>(),
        "edges": edges,
        "subgraphs": subgraphs,
    })
}

fn edge_json(edge: &Edge) -> Value {
    match &edge.next {
        Next::Static(targets) => json!({ "from": edge.from, "to": targets }),
        Next::Routes(routes) => {
            let cases: Vec<Value> = routes
                .cases
                .iter()
                .map(|case| json!({ "when": case.when.value, "to": case.to }))
                .collect();
            json!({ "from": edge.from, "routes": cases, "default": routes.default })
        }
    }
}
