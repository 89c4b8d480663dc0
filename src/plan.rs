//! What one invocation will do: the selected tasks, their order, and which services run in the foreground.

use std::fmt::Write as _;

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::events::{PlannedTask, TaskKind};
use crate::graph::TaskGraph;
use crate::outcome::Verdict;

/// The tasks to run: those `named`, else the `default` ones, as task indices.
pub fn targets(config: &Config, graph: &TaskGraph<'_>, named: &[String]) -> Result<Vec<usize>, Diagnostic> {
    if !named.is_empty() {
        return graph.resolve(named);
    }
    match &config.default {
        Some(d) => graph.resolve(&d.iter().map(|n| n.name.clone()).collect::<Vec<_>>()),
        None => {
            let names: Vec<&str> = config.tasks.iter().map(|t| t.name.as_str()).collect();
            Err(Diagnostic::new(format!("no targets given, and {} has no `default`", config.source.path.display()))
                .with_help(format!(
                    "name tasks to run (defined: {}), or add `default = [\"...\"]` to Irun.toml",
                    names.join(", ")
                )))
        }
    }
}

pub struct Plan {
    /// Selected tasks in a topological order.
    pub order: Vec<usize>,
    pub targets: Vec<usize>,
    pub selected: Vec<bool>,
    /// Per task index: its deps (all selected when the task is).
    pub deps: Vec<Vec<usize>>,
    /// Per service: the selected non-group tasks that need it running. Groups are transparent: a task that depends
    /// on a group needs the services the group gathers.
    pub needers: Vec<Vec<usize>>,
    /// Services kept up until they exit or irun is interrupted: named as targets, or needed by nothing in the run.
    pub foreground: Vec<bool>,
    pub waves: Vec<Vec<usize>>,
    pub kinds: Vec<TaskKind>,
    pub names: Vec<std::sync::Arc<str>>,
    /// Per task: `output = "on-failure"`.
    pub quiet: Vec<bool>,
    /// Per task index: the selected tasks that list it among their deps.
    pub dependents: Vec<Vec<usize>>,
}

impl Plan {
    pub fn new(graph: &TaskGraph<'_>, targets: &[usize]) -> Plan {
        let n = graph.config.tasks.len();
        let order = graph.select(targets);
        let selected = graph.selection_mask(&order);
        let deps: Vec<Vec<usize>> = (0..n).map(|i| graph.deps(i)).collect();
        let kinds: Vec<TaskKind> = graph.config.tasks.iter().map(|t| t.tag()).collect();

        let mut needers = vec![Vec::new(); n];
        let mut foreground = vec![false; n];
        for &s in &order {
            if kinds[s] != TaskKind::Service {
                continue;
            }
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = graph.dependents(s);
            while let Some(d) = stack.pop() {
                if !selected[d] || std::mem::replace(&mut seen[d], true) {
                    continue;
                }
                if kinds[d] == TaskKind::Group {
                    stack.extend(graph.dependents(d));
                } else {
                    needers[s].push(d);
                }
            }
            needers[s].sort_unstable();
            foreground[s] = targets.contains(&s) || needers[s].is_empty();
        }

        let waves = graph.waves(&selected);
        let names = graph.config.tasks.iter().map(|t| std::sync::Arc::from(t.name.as_str())).collect();
        let dependents = (0..n).map(|i| graph.dependents(i).into_iter().filter(|&d| selected[d]).collect()).collect();
        let quiet = graph
            .config
            .tasks
            .iter()
            .map(|t| t.process().is_some_and(|p| p.output == crate::config::OutputPolicy::OnFailure))
            .collect();
        Plan {
            order,
            targets: targets.to_vec(),
            selected,
            deps,
            needers,
            foreground,
            waves,
            kinds,
            names,
            quiet,
            dependents,
        }
    }

    /// Names of the tasks `i` depends on, looking through groups to what they gather.
    pub fn dep_names_through_groups(&self, i: usize) -> Vec<std::sync::Arc<str>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<usize> = self.deps[i].clone();
        while let Some(d) = stack.pop() {
            if !seen.insert(d) {
                continue;
            }
            if self.kinds[d] == TaskKind::Group {
                stack.extend(&self.deps[d]);
            } else {
                out.push(self.names[d].clone());
            }
        }
        out
    }

    /// Watch mode: the selected tasks that `directly` names, and everything downstream of them.
    pub fn with_dependents(&self, directly: impl IntoIterator<Item = usize>) -> Vec<bool> {
        let mut mask = vec![false; self.selected.len()];
        let mut stack: Vec<usize> = directly.into_iter().filter(|&i| self.selected[i]).collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut mask[i], true) {
                stack.extend(&self.dependents[i]);
            }
        }
        mask
    }

    pub fn planned_tasks(&self) -> Vec<PlannedTask> {
        self.order
            .iter()
            .map(|&i| PlannedTask {
                name: self.names[i].clone(),
                kind: self.kinds[i],
                deps: self.deps[i].iter().map(|&d| self.names[d].clone()).collect(),
                quiet: self.quiet[i],
            })
            .collect()
    }

    /// The `--dry-run` text: waves of tasks that may run side by side.
    pub fn describe(&self, graph: &TaskGraph<'_>, jobs: usize, verdicts: &[Option<Verdict>]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "plan: {} task{} in {} wave{}, up to {jobs} at a time (dry run: nothing is started)",
            self.order.len(),
            plural(self.order.len()),
            self.waves.len(),
            plural(self.waves.len())
        );
        for (w, wave) in self.waves.iter().enumerate() {
            let items: Vec<String> = wave
                .iter()
                .map(|&i| {
                    let task = graph.task(i);
                    match (self.kinds[i], task.service()) {
                        (TaskKind::Group, _) => format!("{} (group)", task.name),
                        (TaskKind::Service, Some(svc)) => {
                            let until = if self.foreground[i] { ", kept in the foreground" } else { "" };
                            match &svc.ready {
                                Some(p) => format!(
                                    "{} (service, ready when {}{until})",
                                    task.name,
                                    crate::report::text::check(&p.check)
                                ),
                                None => format!("{} (service, ready once started{until})", task.name),
                            }
                        }
                        _ if verdicts.get(i) == Some(&Some(Verdict::UpToDate)) => {
                            format!("{} (up to date)", task.name)
                        }
                        _ => task.name.clone(),
                    }
                })
                .collect();
            let _ = writeln!(out, "  wave {}: {}", w + 1, items.join(", "));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
