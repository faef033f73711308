//! Edges: resolving them, and the checks on the shape of the graph they make.
//!
//! A router's routes are its outgoing edge, so after resolution the edge list holds every way
//! control can move. The shape checks — an entry from `START`, every node reachable, a way
//! to `END` from every node, a bound on every cycle, no two writers of a `replace` field in
//! one step — only run when every edge resolved, so one typo gives one error, not five.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};

mod steps;

use super::check::Checker;
use super::file::{EdgeFile, RouteFile, Targets};
use super::{Edge, Endpoint, Next, NodeId, RouteCase, Routes};
use crate::diagnostic::did_you_mean;
use crate::nodes::{Node, NodeDef};
use crate::yaml::{Pos, Spanned};

/// Resolves the edges (and routers' routes) and checks the graph's shape.
pub(crate) fn check(
    checker: &mut Checker<'_>,
    edges: &[Spanned<EdgeFile>],
    nodes: &IndexMap<NodeId, NodeDef>,
    max_steps_set: bool,
) -> Vec<Edge> {
    let mut resolver = Resolver {
        checker,
        nodes,
        resolved: true,
    };
    let mut resolved: Vec<Edge> = edges.iter().filter_map(|edge| resolver.edge(edge)).collect();
    for node in nodes.values() {
        if let Node::Router(router) = &node.node {
            let routes = resolver.routes(&router.routes, &router.default);
            resolved.push(Edge {
                from: vec![Endpoint::Node(node.id.clone())],
                next: Next::Routes(routes),
                pos: node.pos,
            });
        }
    }
    let all_resolved = resolver.resolved;
    one_routes_edge_per_node(checker, &resolved);
    if all_resolved {
        let shape = Shape::new(nodes, &resolved);
        shape.check_entry_and_exits(checker, edges.first().map_or(Pos::new(1, 1), |e| e.pos));
        shape.check_cycles(checker, max_steps_set);
        let exploration = steps::explore(&shape);
        steps::check_parallel_writes(checker, &exploration);
        steps::check_joins(checker, &shape, &exploration);
    }
    resolved
}

struct Resolver<'c, 'l, 'n> {
    checker: &'c mut Checker<'l>,
    nodes: &'n IndexMap<NodeId, NodeDef>,
    /// Every endpoint named an existing node (or `START`/`END` where allowed).
    resolved: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Source,
    Target,
}

impl Resolver<'_, '_, '_> {
    fn edge(&mut self, edge: &Spanned<EdgeFile>) -> Option<Edge> {
        let from = self.targets(&edge.from, Role::Source);
        let next = match (&edge.to, &edge.routes, &edge.default) {
            (Some(to), None, None) => Next::Static(self.targets(to, Role::Target)),
            (None, Some(routes), Some(default)) => Next::Routes(self.routes(routes, default)),
            (None, Some(_), None) => {
                let hint = "where to go when no route matches, such as `default: END`";
                return self.fail(edge.pos, "`routes` needs a `default`", Some(hint));
            }
            (None, None, _) => {
                return self.fail(edge.pos, "edge has no `to`", Some("add `to:` or `routes:`"));
            }
            (Some(_), _, _) => {
                let hint = "use `to:` for where to always go, or `routes:` with `default:` to choose";
                return self.fail(
                    edge.pos,
                    "edge has `to` together with `routes` or `default`",
                    Some(hint),
                );
            }
        };
        if from.len() > 1 && matches!(next, Next::Routes(_)) {
            let hint = "route from the node that runs after both";
            return self.fail(edge.pos, "an edge with `routes` starts from one node", Some(hint));
        }
        if from.len() > 1 && from.contains(&Endpoint::Start) {
            return self.fail(edge.pos, "`START` cannot be joined with nodes", None);
        }
        for source in &from {
            let Endpoint::Node(id) = source else { continue };
            if matches!(self.nodes[id].node, Node::Router(_)) {
                let message = format!("router `{id}` routes by itself; an edge cannot start from it");
                return self.fail(
                    edge.pos,
                    &message,
                    Some("add the target to its `routes` or `default`"),
                );
            }
        }
        Some(Edge {
            from,
            next,
            pos: edge.pos,
        })
    }

    fn fail(&mut self, pos: Pos, message: &str, hint: Option<&str>) -> Option<Edge> {
        self.resolved = false;
        self.checker.error(pos, message, hint.map(str::to_owned));
        None
    }

    fn routes(&mut self, routes: &[Spanned<RouteFile>], default: &Targets) -> Routes {
        let cases = routes
            .iter()
            .map(|route| RouteCase {
                when: route.when.clone(),
                to: self.targets(&route.to, Role::Target),
            })
            .collect();
        for route in routes {
            self.checker.expression(&route.when, &[]);
        }
        Routes {
            cases,
            default: self.targets(default, Role::Target),
        }
    }

    fn targets(&mut self, targets: &Targets, role: Role) -> Vec<Endpoint> {
        if targets.ids.is_empty() {
            self.resolved = false;
            self.checker
                .error(targets.pos, "the list of nodes is empty", None);
        }
        targets
            .ids
            .iter()
            .filter_map(|name| self.endpoint(name, role))
            .collect()
    }

    fn endpoint(&mut self, name: &Spanned<String>, role: Role) -> Option<Endpoint> {
        let what = match role {
            Role::Source => "edge source",
            Role::Target => "edge target",
        };
        let (endpoint, problem) = match (name.as_str(), role) {
            ("START", Role::Target) => (None, Some("`START` cannot be an edge target".to_owned())),
            ("END", Role::Source) => (None, Some("nothing can follow `END`".to_owned())),
            ("START", Role::Source) => (Some(Endpoint::Start), None),
            ("END", Role::Target) => (Some(Endpoint::End), None),
            (id, _) => match self.nodes.get_key_value(id) {
                Some((id, _)) => (Some(Endpoint::Node(id.clone())), None),
                // Already reported where the node is defined.
                None if self.checker.broken_ids.contains(id) => {
                    self.resolved = false;
                    (None, None)
                }
                None => (None, Some(format!("{what} `{id}` is not a node in this graph"))),
            },
        };
        if let Some(message) = problem {
            let special = match role {
                Role::Source => "START",
                Role::Target => "END",
            };
            let candidates = self.nodes.keys().map(NodeId::as_str).chain([special]);
            let hint = did_you_mean(name, candidates);
            self.resolved = false;
            self.checker.error(name.pos, message, hint);
        }
        endpoint
    }
}

fn one_routes_edge_per_node(checker: &mut Checker<'_>, edges: &[Edge]) {
    let mut seen: BTreeMap<&Endpoint, Pos> = BTreeMap::new();
    for edge in edges {
        let (Next::Routes(_), [source]) = (&edge.next, edge.from.as_slice()) else {
            continue;
        };
        if let Some(first) = seen.get(source) {
            let message = format!("`{source}` already has `routes` (line {})", first.line);
            checker.error(
                edge.pos,
                message,
                Some("merge them into one list of routes".to_owned()),
            );
        } else {
            seen.insert(source, edge.pos);
        }
    }
}

/// The graph as a petgraph, with `START` and `END` as nodes of their own.
struct Shape<'n> {
    nodes: &'n IndexMap<NodeId, NodeDef>,
    edges: &'n [Edge],
    graph: DiGraph<Endpoint, ()>,
    index: BTreeMap<Endpoint, NodeIndex>,
}

impl<'n> Shape<'n> {
    fn new(nodes: &'n IndexMap<NodeId, NodeDef>, edges: &'n [Edge]) -> Shape<'n> {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        let endpoints = [Endpoint::Start, Endpoint::End]
            .into_iter()
            .chain(nodes.keys().cloned().map(Endpoint::Node));
        for endpoint in endpoints {
            index.insert(endpoint.clone(), graph.add_node(endpoint));
        }
        for edge in edges {
            for source in &edge.from {
                for target in next_endpoints(&edge.next) {
                    graph.update_edge(index[source], index[target], ());
                }
            }
        }
        Shape {
            nodes,
            edges,
            graph,
            index,
        }
    }

    /// Endpoints reachable from `START`; a join is reached once all its sources are.
    fn reachable(&self) -> BTreeSet<&Endpoint> {
        let mut reached = BTreeSet::from([&Endpoint::Start]);
        loop {
            let before = reached.len();
            for edge in self.edges {
                if edge.from.iter().all(|source| reached.contains(source)) {
                    reached.extend(next_endpoints(&edge.next));
                }
            }
            if reached.len() == before {
                return reached;
            }
        }
    }

    /// Endpoints from which some path leads to `END`.
    fn can_end(&self) -> BTreeSet<&Endpoint> {
        let mut ending = BTreeSet::from([&Endpoint::End]);
        loop {
            let before = ending.len();
            for edge in self.edges {
                if next_endpoints(&edge.next).any(|target| ending.contains(target)) {
                    ending.extend(&edge.from);
                }
            }
            if ending.len() == before {
                return ending;
            }
        }
    }

    fn check_entry_and_exits(&self, checker: &mut Checker<'_>, first_edge: Pos) {
        if !self.edges.iter().any(|edge| edge.from.contains(&Endpoint::Start)) {
            let hint = "add `- { from: START, to: <first node> }` to `edges`".to_owned();
            checker.error(first_edge, "no edge starts from `START`", Some(hint));
            return;
        }
        let reached = self.reachable();
        let ending = self.can_end();
        for (id, node) in self.nodes {
            let endpoint = Endpoint::Node(id.clone());
            let has_exit = self.edges.iter().any(|edge| edge.from.contains(&endpoint));
            if !reached.contains(&endpoint) {
                let message = format!("node `{id}` is unreachable from `START`");
                checker.error(
                    node.pos,
                    message,
                    Some("add an edge to it, or remove it".to_owned()),
                );
            }
            if !has_exit {
                let message = format!("node `{id}` has no outgoing edge");
                let hint = format!("add `- {{ from: {id}, to: END }}`, or an edge to the node after it");
                checker.error(node.pos, message, Some(hint));
            } else if !ending.contains(&endpoint) {
                let message = format!("node `{id}` has no path to `END`");
                let hint = "every path must end at `END`: add an edge out of the loop it is in".to_owned();
                checker.error(node.pos, message, Some(hint));
            }
        }
    }

    fn check_cycles(&self, checker: &mut Checker<'_>, max_steps_set: bool) {
        if max_steps_set {
            return;
        }
        for component in petgraph::algo::tarjan_scc(&self.graph) {
            let is_cycle = component.len() > 1 || self.graph.contains_edge(component[0], component[0]);
            if !is_cycle {
                continue;
            }
            let members: Vec<&NodeDef> = component
                .iter()
                .filter_map(|index| match &self.graph[*index] {
                    Endpoint::Node(id) => Some(&self.nodes[id]),
                    _ => None,
                })
                .collect();
            if members.iter().any(|node| node.common.max_visits.is_some()) {
                continue;
            }
            let first = members
                .iter()
                .min_by_key(|node| node.pos)
                .expect("a cycle has nodes");
            let message = format!("cycle `{}` has no bound", self.cycle_path(&first.id, &component));
            let hint = "set `max_visits` on one of its nodes, or `max_steps` for the graph".to_owned();
            checker.error(first.pos, message, Some(hint));
        }
    }

    /// A path around the cycle through `start`, staying inside `component`: `a → b → a`.
    fn cycle_path(&self, start: &NodeId, component: &[NodeIndex]) -> String {
        let start_index = self.index[&Endpoint::Node(start.clone())];
        let mut path = vec![start_index];
        let mut visited = BTreeSet::from([start_index]);
        let mut current = start_index;
        loop {
            let mut next = self
                .graph
                .neighbors(current)
                .filter(|n| component.contains(n))
                .collect::<Vec<_>>();
            next.sort();
            if next.contains(&start_index) {
                break;
            }
            match next.into_iter().find(|n| !visited.contains(n)) {
                Some(step) => {
                    visited.insert(step);
                    path.push(step);
                    current = step;
                }
                None => break,
            }
        }
        path.push(start_index);
        let names: Vec<String> = path.iter().map(|index| self.graph[*index].to_string()).collect();
        names.join(" → ")
    }
}

fn next_endpoints(next: &Next) -> Box<dyn Iterator<Item = &Endpoint> + '_> {
    match next {
        Next::Static(targets) => Box::new(targets.iter()),
        Next::Routes(routes) => Box::new(routes.targets().into_iter()),
    }
}

/// The cycle through `node` in a checked graph, as `a → b → a`, if it is on one.
pub(crate) fn cycle_through(graph: &super::Graph, node: &NodeId) -> Option<String> {
    let shape = Shape::new(&graph.nodes, &graph.edges);
    let index = shape.index[&Endpoint::Node(node.clone())];
    let component = petgraph::algo::tarjan_scc(&shape.graph)
        .into_iter()
        .find(|c| c.contains(&index))?;
    let is_cycle = component.len() > 1 || shape.graph.contains_edge(index, index);
    is_cycle.then(|| shape.cycle_path(node, &component))
}
