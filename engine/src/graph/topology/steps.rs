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
pub(super) fn check_parallel_writes(checker: &mut Checker<'_>, exploration: &Exploration<'_>) {
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
    for step in &exploration.steps {
        let mut writers: BTreeMap<&str, BTreeSet<&NodeId>> = BTreeMap::new();
        for node in step {
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

/// What running the graph with every route choice at once found.
pub(super) struct Exploration<'n> {
    /// Every set of nodes that can run together in one step.
    pub(super) steps: Vec<BTreeSet<&'n NodeId>>,
    /// The joining edges (by index) that fired at least once.
    pub(super) fired_joins: BTreeSet<usize>,
    /// Whether every state was explored (small graphs always are).
    pub(super) complete: bool,
}

/// Explores the graph, every route choice at once; joins wait for all their sources, as at
/// run time.
pub(super) fn explore<'n>(shape: &Shape<'n>) -> Exploration<'n> {
    let start: State<'n> = (BTreeSet::from([&Endpoint::Start]), BTreeSet::new());
    let mut seen = BTreeSet::from([start.clone()]);
    let mut queue = vec![start];
    let mut exploration = Exploration {
        steps: Vec::new(),
        fired_joins: BTreeSet::new(),
        complete: true,
    };
    while let Some((active, arrived)) = queue.pop() {
        exploration
            .steps
            .push(active.iter().filter_map(|e| as_node(e)).collect());
        for next in successors(shape, &active, &arrived, &mut exploration.fired_joins) {
            if seen.len() >= MAX_STATES {
                exploration.complete = false;
            } else if seen.insert(next.clone()) {
                queue.push(next);
            }
        }
    }
    exploration
}

/// A join whose sources never all run can never fire: what follows it is dead.
pub(super) fn check_joins(checker: &mut Checker<'_>, shape: &Shape<'_>, exploration: &Exploration<'_>) {
    if !exploration.complete {
        return;
    }
    for (index, edge) in shape.edges.iter().enumerate() {
        if edge.from.len() < 2 || exploration.fired_joins.contains(&index) {
            continue;
        }
        let sources: Vec<String> = edge.from.iter().map(|e| format!("`{e}`")).collect();
        let message = format!(
            "this join can never fire: {} never all run in one run",
            sources.join(" and ")
        );
        let hint =
            "a join waits for every source; when they are alternatives, use one edge from each instead";
        checker.error(edge.pos, message, Some(hint.to_owned()));
    }
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
    fired_joins: &mut BTreeSet<usize>,
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
            fired_joins.insert(index);
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
