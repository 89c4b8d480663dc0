//! The task DAG: cycle checks, the closure of a set of targets, execution waves and edges.
//!
//! Edges point from a dependency to the task that depends on it, i.e. in the direction work flows.

use std::collections::{HashMap, VecDeque};

use petgraph::Direction;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::config::{Config, PerTask, TaskId};
use crate::diagnostic::Diagnostic;

pub(crate) struct TaskGraph {
    /// Node `i` is task `i` of Irun.toml.
    graph: DiGraph<(), ()>,
    /// Each task's direct deps, in declaration order.
    deps: PerTask<Vec<TaskId>>,
}

fn node(id: TaskId) -> NodeIndex {
    NodeIndex::new(id.index())
}

fn id(node: NodeIndex) -> TaskId {
    TaskId::new(node.index())
}

impl TaskGraph {
    /// Build the graph of `config`'s tasks, rejecting dependency cycles with the cycle spelled out.
    pub(crate) fn new(config: &Config) -> Result<TaskGraph, Diagnostic> {
        let n = config.tasks.len();
        let mut graph = DiGraph::with_capacity(n, n);
        for _ in 0..n {
            graph.add_node(());
        }
        // Validation found the task each dep names.
        let deps: PerTask<Vec<TaskId>> = config.tasks.iter().map(|t| t.deps.iter().map(|d| d.id).collect()).collect();
        for (i, list) in deps.enumerate() {
            for &d in list {
                graph.add_edge(node(d), node(i), ());
            }
        }
        let g = TaskGraph { graph, deps };
        g.check_cycles(config)?;
        Ok(g)
    }

    pub(crate) fn len(&self) -> usize {
        self.deps.len()
    }

    /// Direct dependencies of task `i`, in declaration order.
    pub(crate) fn deps(&self, i: TaskId) -> &[TaskId] {
        &self.deps[i]
    }

    /// Tasks that list `i` among their deps, in declaration order.
    pub(crate) fn dependents(&self, i: TaskId) -> Vec<TaskId> {
        let mut out: Vec<TaskId> = self.graph.neighbors_directed(node(i), Direction::Outgoing).map(id).collect();
        out.sort_unstable();
        out
    }

    fn check_cycles(&self, config: &Config) -> Result<(), Diagnostic> {
        // Both algorithms are iterative: a chain of tens of thousands of tasks must not overflow the stack (petgraph's
        // `tarjan_scc` recurses once per task).
        if petgraph::algo::toposort(&self.graph, None).is_ok() {
            return Ok(());
        }
        let mut sccs = kosaraju_scc(&self.graph);
        // Reverse topological order, as the cycle reported first has always been found.
        sccs.reverse();
        for scc in sccs {
            let start = scc.iter().copied().map(id).min().expect("an SCC is never empty");
            let self_loop = self.graph.contains_edge(node(start), node(start));
            if scc.len() == 1 && !self_loop {
                continue;
            }
            let members: Vec<TaskId> = scc.into_iter().map(id).collect();
            let cycle = self.cycle_from(start, &members);
            let names: Vec<&str> = cycle.iter().map(|&i| config.tasks[i].name.as_str()).collect();
            // Point at the dep entry that starts the cycle.
            let first = &config.tasks[cycle[0]];
            let span = first.deps.iter().find(|d| d.id == cycle[1]).map_or(first.span.clone(), |d| d.span.clone());
            return Err(Diagnostic::at(&config.source, span, format!("dependency cycle: {}", names.join(" -> ")))
                .with_help("`a -> b` means task a depends on task b; remove one of these deps to break the cycle"));
        }
        Ok(())
    }

    /// A cycle through `start` along "depends on" links, staying inside one strongly connected component.
    fn cycle_from(&self, start: TaskId, members: &[TaskId]) -> Vec<TaskId> {
        // Breadth-first search for the shortest way back to `start`.
        let mut prev: HashMap<TaskId, TaskId> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for &dep in self.deps(n) {
                if !members.contains(&dep) {
                    continue;
                }
                if dep == start {
                    let mut path = vec![start];
                    let mut cur = n;
                    while cur != start {
                        path.push(cur);
                        cur = prev[&cur];
                    }
                    path.push(start);
                    let end = path.len() - 1;
                    path[1..end].reverse();
                    return path;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(dep) {
                    e.insert(n);
                    queue.push_back(dep);
                }
            }
        }
        vec![start, start]
    }

    /// The targets and everything they depend on.
    pub(crate) fn closure(&self, targets: &[TaskId]) -> PerTask<bool> {
        let mut selected = PerTask::filled(self.len(), false);
        let mut stack: Vec<TaskId> = targets.to_vec();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut selected[n], true) {
                stack.extend(self.deps(n));
            }
        }
        selected
    }

    /// Selected tasks grouped into waves: each wave depends only on earlier ones.
    pub(crate) fn waves(&self, selected: &PerTask<bool>) -> Vec<Vec<TaskId>> {
        let mut level: PerTask<Option<usize>> = PerTask::filled(self.len(), None);
        let mut waves: Vec<Vec<TaskId>> = Vec::new();
        for n in petgraph::algo::toposort(&self.graph, None).expect("cycles were rejected in new()") {
            let i = id(n);
            if !selected[i] {
                continue;
            }
            let l = self.deps(i).iter().filter_map(|&d| level[d]).map(|l| l + 1).max().unwrap_or(0);
            level[i] = Some(l);
            if waves.len() <= l {
                waves.resize_with(l + 1, Vec::new);
            }
            waves[l].push(i);
        }
        for w in &mut waves {
            w.sort_unstable();
        }
        waves
    }

    /// Edges among the selected tasks, from a dependency to its dependent, in declaration order.
    pub(crate) fn edges(&self, selected: &PerTask<bool>) -> Vec<(TaskId, TaskId)> {
        let mut edges: Vec<(TaskId, TaskId)> = self
            .graph
            .edge_references()
            .map(|e| (id(e.source()), id(e.target())))
            .filter(|&(from, to)| selected[from] && selected[to])
            .collect();
        edges.sort_by_key(|&(from, to)| (to, from));
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_of_twenty_thousand_tasks_loads_without_overflowing_the_stack() {
        let mut text = String::from("[tasks.t0]\ncmd = \"x\"\n");
        for i in 1..20_000 {
            text.push_str(&format!("[tasks.t{i}]\ncmd = \"x\"\ndeps = [\"t{}\"]\n", i - 1));
        }
        let config =
            crate::config::parse(crate::diagnostic::Source::new(std::path::Path::new("Irun.toml"), &text), ".".into())
                .unwrap_or_else(|d| panic!("{}", d.render(false)));
        let graph = TaskGraph::new(&config).unwrap_or_else(|d| panic!("{}", d.render(false)));
        let all = graph.closure(&[TaskId::new(19_999)]);
        assert_eq!(graph.waves(&all).into_iter().flatten().count(), 20_000);
    }
}
