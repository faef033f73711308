//! Which nodes can run in the same step, and the check that needs it: a field with the
//! `replace` reducer must not be written twice in one step.
//!
//! The search runs the graph abstractly — every route choice at once, joins waiting for all
//! their sources — and collects each set of nodes that can be active together.

use std::collections::{BTreeMap, BTreeSet};

use super::Shape;
use crate::graph::check::Checker;
use crate::graph::{Endpoint, Next, NodeId};
use crate::state::Reducer;

/// How far the search for nodes that run in the same step goes before giving up.
const MAX_STATES: usize = 10_000;

/// A field with the `replace` reducer must not be written twice in one step.
pub(super) fn check_parallel_writes(checker: &mut Checker<'_>, shape: &Shape<'_>) {
    let writes = checker.writes_by_node();
    let mut conflicts: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    let replaces = |field: &str| {
        checker
            .state
            .get(field)
            .is_some_and(|f| f.reducer == Reducer::Replace)
    };
    for (node, node_writes) in &writes {
        for write in node_writes.iter().filter(|w| w.repeated && replaces(&w.field)) {
            conflicts.insert(write.field.clone(), (vec![node.to_string()], true));
        }
    }
    for step in steps(shape) {
        let mut writers: BTreeMap<&str, BTreeSet<&NodeId>> = BTreeMap::new();
        for node in &step {
            for write in writes.get(node).into_iter().flatten() {
                writers.entry(&write.field).or_default().insert(node);
            }
        }
        for (field, nodes) in writers {
            if nodes.len() > 1 && replaces(field) && !conflicts.contains_key(field) {
                let names = nodes.iter().map(ToString::to_string).collect();
                conflicts.insert(field.to_owned(), (names, false));
            }
        }
    }
    for (field, (nodes, repeated)) in conflicts {
        let pos = checker.state[&field].name.pos;
        let message = if repeated {
            format!(
                "state field `{field}` is written once per item by map `{}`, but its reducer is `replace`",
                nodes[0]
            )
        } else {
            let names: Vec<String> = nodes.iter().map(|n| format!("`{n}`")).collect();
            format!(
                "state field `{field}` can be written by {} in the same step, but its reducer is `replace`",
                names.join(" and ")
            )
        };
        let hint =
            "give it a reducer (`append`, `merge` or `add`), or make the nodes run one after the other";
        checker.error(pos, message, Some(hint.to_owned()));
    }
}

/// Every set of nodes that can run together in one step, found by running the graph with
/// every route choice at once. Joins wait for all their sources, as at run time.
fn steps<'n>(shape: &Shape<'n>) -> Vec<BTreeSet<&'n NodeId>> {
    let start: State<'n> = (BTreeSet::from([&Endpoint::Start]), BTreeSet::new());
    let mut seen = BTreeSet::from([start.clone()]);
    let mut queue = vec![start];
    let mut found = Vec::new();
    while let Some((active, arrived)) = queue.pop() {
        found.push(active.iter().filter_map(|e| as_node(e)).collect());
        for next in successors(shape, &active, &arrived) {
            if seen.len() < MAX_STATES && seen.insert(next.clone()) {
                queue.push(next);
            }
        }
    }
    found
}

fn as_node(endpoint: &Endpoint) -> Option<&NodeId> {
    match endpoint {
        Endpoint::Node(id) => Some(id),
        _ => None,
    }
}

/// Where a run can be: the nodes of the current step, and the sources of joins (by edge
/// index) that have finished while the join waits for the others.
type State<'n> = (BTreeSet<&'n Endpoint>, BTreeSet<(usize, &'n Endpoint)>);

/// The possible next steps after `active` ran: one per combination of route choices.
fn successors<'n>(
    shape: &Shape<'n>,
    active: &BTreeSet<&'n Endpoint>,
    arrived: &BTreeSet<(usize, &'n Endpoint)>,
) -> Vec<State<'n>> {
    let mut fixed: BTreeSet<&'n Endpoint> = BTreeSet::new();
    // Per routed edge, the target sets it may choose between.
    let mut choices: Vec<Vec<Vec<&'n Endpoint>>> = Vec::new();
    let mut arrived = arrived.clone();
    for (index, edge) in shape.edges.iter().enumerate() {
        let sources: Vec<&Endpoint> = edge.from.iter().filter(|s| active.contains(s)).collect();
        if sources.is_empty() {
            continue;
        }
        if edge.from.len() > 1 {
            arrived.extend(sources.iter().map(|s| (index, *s)));
            if !edge.from.iter().all(|s| arrived.contains(&(index, s))) {
                continue;
            }
            arrived.retain(|(edge_index, _)| *edge_index != index);
        }
        match &edge.next {
            Next::Static(targets) => fixed.extend(targets),
            Next::Routes(routes) => {
                let cases = routes.cases.iter().map(|case| &case.to).chain([&routes.default]);
                choices.push(cases.map(|targets| targets.iter().collect()).collect());
            }
        }
    }
    let mut combinations = vec![fixed];
    for options in choices {
        combinations = combinations
            .into_iter()
            .flat_map(|chosen| {
                options.iter().map(move |option| {
                    let mut next = chosen.clone();
                    next.extend(option.iter().copied());
                    next
                })
            })
            .take(MAX_STATES)
            .collect();
    }
    combinations
        .into_iter()
        .map(|mut next| {
            next.remove(&Endpoint::End);
            (next, arrived.clone())
        })
        .filter(|(next, _)| !next.is_empty())
        .collect()
}
