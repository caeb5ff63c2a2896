//! Cycles in a directed graph of named nodes: Tarjan's strongly connected components, and one
//! shortest concrete cycle through a component, to show which edges to cut.
//!
//! ```text
//! let edges = [("a", ["b"]), ("b", ["c"]), ("c", ["a"])];   // as a BTreeMap of BTreeSets
//! cycles(&edges)                      // [["a", "b", "c"]]
//! cycle_through(&["a", "b", "c"], &edges)   // ["a", "b", "c", "a"]
//! ```
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Adjacency: each node and the nodes it depends on. A node that only appears as a target
/// need not be a key.
pub(crate) type Edges = BTreeMap<String, BTreeSet<String>>;

/// The strongly connected components with more than one node, each sorted, in name order of
/// their first node. Self-loops are not cycles here (a module may use itself).
pub(crate) fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let mut tarjan = Tarjan {
        edges,
        next_index: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(from, to)| std::iter::once(from.as_str()).chain(to.iter().map(String::as_str)))
        .collect();
    for node in nodes {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    let mut found: Vec<Vec<String>> = tarjan
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut c: Vec<String> = c.into_iter().map(str::to_owned).collect();
            c.sort();
            c
        })
        .collect();
    found.sort();
    found
}

struct Tarjan<'a> {
    edges: &'a Edges,
    next_index: usize,
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    on_stack: BTreeSet<&'a str>,
    components: Vec<Vec<&'a str>>,
}

impl<'a> Tarjan<'a> {
    // Recursive: module graphs are a few dozen nodes deep at most.
    fn visit(&mut self, node: &'a str) {
        self.index.insert(node, self.next_index);
        self.low.insert(node, self.next_index);
        self.next_index += 1;
        self.stack.push(node);
        self.on_stack.insert(node);
        for next in self.edges.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !self.index.contains_key(next) {
                self.visit(next);
                let low = self.low[node].min(self.low[next]);
                self.low.insert(node, low);
            } else if self.on_stack.contains(next) {
                let low = self.low[node].min(self.index[next]);
                self.low.insert(node, low);
            }
        }
        if self.low[node] == self.index[node] {
            let mut component = Vec::new();
            while let Some(top) = self.stack.pop() {
                self.on_stack.remove(top);
                component.push(top);
                if top == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// A shortest cycle through the first node of `component` that stays inside it, as the nodes
/// visited with the first repeated at the end (`[a, b, a]`). Empty if there is none.
pub(crate) fn cycle_through(component: &[String], edges: &Edges) -> Vec<String> {
    let Some(start) = component.first() else {
        return Vec::new();
    };
    let inside: BTreeSet<&String> = component.iter().collect();
    // Breadth-first from `start`; `parent` of each reached node.
    let mut parent: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in edges.get(node).into_iter().flatten() {
            if !inside.contains(next) || next == node {
                continue;
            }
            if next == start {
                let mut path = vec![start.clone()];
                let mut at = node;
                while at != start {
                    path.push(at.clone());
                    at = parent[at];
                }
                path.push(start.clone());
                path.reverse();
                return path;
            }
            if !parent.contains_key(next) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(list: &[(&str, &[&str])]) -> Edges {
        list.iter()
            .map(|(from, to)| {
                (
                    (*from).to_owned(),
                    to.iter().map(|t| (*t).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_three_cycle_is_named_with_its_path() {
        // event -> client -> dns -> event, plus a leaf and an edge into the cycle.
        let edges = graph(&[
            ("event", &["client", "clock"]),
            ("client", &["dns"]),
            ("dns", &["event", "clock"]),
            ("tracer", &["event"]),
            ("clock", &[]),
        ]);
        assert_eq!(cycles(&edges), [["client", "dns", "event"]]);
        assert_eq!(
            cycle_through(&cycles(&edges)[0], &edges),
            ["client", "dns", "event", "client"]
        );
    }

    #[test]
    fn a_dag_passes() {
        let edges = graph(&[
            ("tracer", &["recorder", "sock", "event"]),
            ("sock", &["event"]),
            ("recorder", &["event", "clock"]),
            ("event", &["clock"]),
            ("self_user", &["self_user"]),
        ]);
        assert!(cycles(&edges).is_empty());
    }

    #[test]
    fn separate_cycles_and_shortest_path() {
        let edges = graph(&[
            ("a", &["b"]),
            ("b", &["a", "c"]),
            ("c", &["d"]),
            ("d", &["e"]),
            ("e", &["c", "a"]),
            ("x", &["y"]),
            ("y", &["x"]),
        ]);
        assert_eq!(
            cycles(&edges),
            [vec!["a", "b", "c", "d", "e"], vec!["x", "y"]]
        );
        assert_eq!(cycle_through(&cycles(&edges)[0], &edges), ["a", "b", "a"]);
    }
}
