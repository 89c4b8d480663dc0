//! The task DAG: cycle checks, target selection, execution waves and Graphviz output.
//!
//! Edges point from a dependency to the task that depends on it, i.e. in the direction work flows.

use std::collections::HashMap;
use std::fmt::Write as _;

use petgraph::Direction;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::config::{Config, Task};
use crate::diagnostic::{Diagnostic, suggestion};

/// How a task's last run ended, for `irun graph --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastRun {
    Ok,
    Failed,
    /// Started but never finished (cancelled, interrupted, killed).
    Unfinished,
}

impl LastRun {
    fn colour_and_words(self) -> (&'static str, &'static str) {
        match self {
            LastRun::Ok => ("#c8e6c9", "last run: ok"),
            LastRun::Failed => ("#ffcdd2", "last run: failed"),
            LastRun::Unfinished => ("#fff3c4", "last run: did not finish"),
        }
    }
}

pub struct TaskGraph<'a> {
    pub config: &'a Config,
    /// Node `i` is `config.tasks[i]`.
    graph: DiGraph<(), ()>,
    index: HashMap<&'a str, usize>,
}

impl<'a> TaskGraph<'a> {
    /// Build the graph, rejecting dependency cycles with the cycle spelled out.
    pub fn new(config: &'a Config) -> Result<Self, Diagnostic> {
        let mut graph = DiGraph::with_capacity(config.tasks.len(), config.tasks.len());
        let index: HashMap<&str, usize> = config.tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        for _ in &config.tasks {
            graph.add_node(());
        }
        for (i, task) in config.tasks.iter().enumerate() {
            for dep in &task.deps {
                // Validation already rejected unknown deps.
                let d = index[dep.name.as_str()];
                graph.add_edge(NodeIndex::new(d), NodeIndex::new(i), ());
            }
        }
        let g = TaskGraph { config, graph, index };
        g.check_cycles()?;
        Ok(g)
    }

    pub fn task(&self, i: usize) -> &'a Task {
        &self.config.tasks[i]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Direct dependencies of task `i`, in declaration order.
    pub fn deps(&self, i: usize) -> Vec<usize> {
        self.config.tasks[i].deps.iter().map(|d| self.index[d.name.as_str()]).collect()
    }

    /// Tasks that list `i` among their deps.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        let mut out: Vec<usize> =
            self.graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing).map(|n| n.index()).collect();
        out.sort_unstable();
        out
    }

    fn check_cycles(&self) -> Result<(), Diagnostic> {
        // Both algorithms are iterative: a chain of tens of thousands of tasks must not overflow the stack (petgraph's
        // `tarjan_scc` recurses once per task).
        if petgraph::algo::toposort(&self.graph, None).is_ok() {
            return Ok(());
        }
        let mut sccs = kosaraju_scc(&self.graph);
        // Reverse topological order, as the cycle reported first has always been found.
        sccs.reverse();
        for scc in sccs {
            let start = scc.iter().map(|n| n.index()).min().expect("an SCC is never empty");
            let self_loop = self.graph.contains_edge(NodeIndex::new(start), NodeIndex::new(start));
            if scc.len() == 1 && !self_loop {
                continue;
            }
            let members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
            let cycle = self.cycle_from(start, &members);
            let names: Vec<&str> = cycle.iter().map(|&i| self.task(i).name.as_str()).collect();
            // Point at the dep entry that starts the cycle.
            let first = self.task(cycle[0]);
            let next = &self.task(cycle[1]).name;
            let span = first.deps.iter().find(|d| d.name == *next).map_or(first.span.clone(), |d| d.span.clone());
            return Err(Diagnostic::at(&self.config.source, span, format!("dependency cycle: {}", names.join(" -> ")))
                .with_help("`a -> b` means task a depends on task b; remove one of these deps to break the cycle"));
        }
        Ok(())
    }

    /// A cycle through `start` along "depends on" links, staying inside one strongly connected component.
    fn cycle_from(&self, start: usize, members: &[usize]) -> Vec<usize> {
        // Breadth-first search for the shortest way back to `start`.
        let mut prev: HashMap<usize, usize> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for dep in self.deps(n) {
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

    /// Resolve target names to task indices, with a did-you-mean for typos.
    pub fn resolve(&self, targets: &[String]) -> Result<Vec<usize>, Diagnostic> {
        let mut out = Vec::new();
        for t in targets {
            let Some(i) = self.index_of(t) else {
                let hint = suggestion(t, self.config.tasks.iter().map(|t| t.name.as_str()));
                let known: Vec<&str> = self.config.tasks.iter().map(|t| t.name.as_str()).collect();
                return Err(Diagnostic::new(format!("unknown task `{t}`{hint}")).with_help(format!(
                    "tasks defined in {}: {} (`irun list` describes them)",
                    self.config.source.path.display(),
                    known.join(", ")
                )));
            };
            if !out.contains(&i) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// The targets and everything they depend on, in a topological order that follows the file where it can.
    pub fn select(&self, targets: &[usize]) -> Vec<usize> {
        let mut selected = vec![false; self.config.tasks.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut selected[n], true) {
                stack.extend(self.deps(n));
            }
        }
        self.waves(&selected).into_iter().flatten().collect()
    }

    /// Selected tasks grouped into waves: each wave depends only on earlier ones.
    pub fn waves(&self, selected: &[bool]) -> Vec<Vec<usize>> {
        let mut level: Vec<Option<usize>> = vec![None; self.config.tasks.len()];
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for n in petgraph::algo::toposort(&self.graph, None).expect("cycles were rejected in new()") {
            let i = n.index();
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

    pub fn selection_mask(&self, tasks: &[usize]) -> Vec<bool> {
        let mut mask = vec![false; self.config.tasks.len()];
        for &t in tasks {
            mask[t] = true;
        }
        mask
    }

    fn mask(&self, selected: Option<&[usize]>) -> Vec<bool> {
        match selected {
            Some(s) => self.selection_mask(s),
            None => vec![true; self.config.tasks.len()],
        }
    }

    /// Edges among the selected tasks, from a dependency to its dependent, in declaration order.
    fn edges(&self, mask: &[bool]) -> Vec<(usize, usize)> {
        let mut edges: Vec<(usize, usize)> = self
            .graph
            .edge_references()
            .map(|e| (e.source().index(), e.target().index()))
            .filter(|&(from, to)| mask[from] && mask[to])
            .collect();
        edges.sort_by_key(|&(from, to)| (to, from));
        edges
    }

    /// Graphviz DOT of the selected tasks (all when `selected` is `None`).
    ///
    /// Tasks are boxes, services are filled ellipses, groups dashed boxes; an edge `a -> b` means a runs before b.
    /// With `last_runs` (task name → whether its last run succeeded), nodes are coloured by it: green ok, red
    /// failed, grey never ran (or not recorded).
    pub fn to_dot(&self, selected: Option<&[usize]>, last_runs: Option<&HashMap<String, LastRun>>) -> String {
        let mask = self.mask(selected);
        let mut out = String::from("digraph irun {\n    rankdir=LR;\n    node [shape=box, fontname=\"Helvetica\"];\n");
        out.push_str("    // edges point from a dependency to the task that depends on it\n");
        for (i, task) in self.config.tasks.iter().enumerate() {
            if !mask[i] {
                continue;
            }
            let mut attrs = Vec::new();
            let label = match task.tag().as_str() {
                "task" => dot_escape(&task.name),
                kind => format!("{}\\n({kind})", dot_escape(&task.name)),
            };
            attrs.push(format!("label=\"{label}\""));
            let fill = match last_runs.map(|runs| runs.get(&task.name)) {
                None => task.is_service().then_some("#cfe2ff"),
                Some(Some(run)) => Some(run.colour_and_words().0),
                Some(None) => Some("#e0e0e0"),
            };
            if task.is_service() {
                attrs.push("shape=ellipse".into());
            }
            match (task.is_group(), fill) {
                (true, Some(f)) => attrs.push(format!("style=\"dashed,filled\", fillcolor=\"{f}\"")),
                (true, None) => attrs.push("style=dashed".into()),
                (false, Some(f)) => attrs.push(format!("style=filled, fillcolor=\"{f}\"")),
                (false, None) => {}
            }
            if let Some(runs) = last_runs {
                let state = runs.get(&task.name).map_or("never ran", |r| r.colour_and_words().1);
                attrs.push(format!("tooltip=\"{state}\""));
            }
            let _ = writeln!(out, "    \"{}\" [{}];", dot_escape(&task.name), attrs.join(", "));
        }
        for (from, to) in self.edges(&mask) {
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\";",
                dot_escape(&self.task(from).name),
                dot_escape(&self.task(to).name)
            );
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart of the selected tasks: tasks are rectangles, services stadiums, groups subroutine
    /// shapes; `a --> b` means a runs before b. With `last_runs`, nodes get classes `ok`, `failed` or `never`.
    pub fn to_mermaid(&self, selected: Option<&[usize]>, last_runs: Option<&HashMap<String, LastRun>>) -> String {
        let mask = self.mask(selected);
        let mut out = String::from("flowchart LR\n");
        for (i, task) in self.config.tasks.iter().enumerate() {
            if !mask[i] {
                continue;
            }
            let label = mermaid_escape(&task.name);
            let node = match task.tag().as_str() {
                "service" => format!("t{i}([\"{label} (service)\"])"),
                "group" => format!("t{i}[[\"{label} (group)\"]]"),
                _ => format!("t{i}[\"{label}\"]"),
            };
            let class = last_runs.map(|runs| match runs.get(&task.name) {
                Some(LastRun::Ok) => ":::ok",
                Some(LastRun::Failed) => ":::failed",
                Some(LastRun::Unfinished) => ":::unfinished",
                None => ":::never",
            });
            let _ = writeln!(out, "    {node}{}", class.unwrap_or_default());
        }
        for (from, to) in self.edges(&mask) {
            let _ = writeln!(out, "    t{from} --> t{to}");
        }
        if last_runs.is_some() {
            out.push_str("    classDef ok fill:#c8e6c9,stroke:#2e7d32\n");
            out.push_str("    classDef failed fill:#ffcdd2,stroke:#c62828\n");
            out.push_str("    classDef unfinished fill:#fff3c4,stroke:#f9a825\n");
            out.push_str("    classDef never fill:#e0e0e0,stroke:#757575\n");
        }
        out
    }
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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
        assert_eq!(graph.select(&[19_999]).len(), 20_000);
    }
}
