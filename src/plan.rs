//! What one invocation will do: the selected tasks, their order, and one record per task with what the engine
//! needs to know of it.

use std::ops::Index;

use crate::config::{Config, PerTask, Restart, TaskId, TaskKind};
use crate::events::{PlannedTask, TaskName};
use crate::graph::TaskGraph;

/// What one invocation will do: the selected tasks, their order, and each task's part in it.
pub(crate) struct Plan {
    /// Selected tasks in a topological order that follows the file where it can.
    pub(crate) order: Vec<TaskId>,
    pub(crate) targets: Vec<TaskId>,
    /// Selected tasks that may run side by side: each wave depends only on earlier ones.
    pub(crate) waves: Vec<Vec<TaskId>>,
    tasks: PerTask<Planned>,
}

/// A task of Irun.toml as the plan sees it.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) name: TaskName,
    pub(crate) kind: TaskKind,
    pub(crate) selected: bool,
    /// Its deps (all selected when the task is).
    pub(crate) deps: Vec<TaskId>,
    /// The selected tasks that list it among their deps.
    pub(crate) dependents: Vec<TaskId>,
    /// A service: the selected non-group tasks that need it running. Groups are transparent: a task that depends
    /// on a group needs the services the group gathers.
    pub(crate) needers: Vec<TaskId>,
    /// A service kept up until it exits or irun is interrupted: named as a target, or needed by nothing in the run.
    pub(crate) foreground: bool,
    /// `output = "on-failure"`: its output is shown only if it fails.
    pub(crate) quiet: bool,
    /// `interactive = true`: it has the terminal while it runs, so no other interactive task runs meanwhile.
    pub(crate) interactive: bool,
    /// A service: when it is started again after it exits, and how often at most.
    pub(crate) restart: Restart,
    pub(crate) max_restarts: u32,
}

impl Index<TaskId> for Plan {
    type Output = Planned;

    fn index(&self, id: TaskId) -> &Planned {
        &self.tasks[id]
    }
}

impl Plan {
    pub(crate) fn new(config: &Config, graph: &TaskGraph, targets: &[TaskId]) -> Plan {
        let selected = graph.closure(targets);
        let waves = graph.waves(&selected);
        let order: Vec<TaskId> = waves.iter().flatten().copied().collect();
        let tasks: PerTask<Planned> = config
            .tasks
            .enumerate()
            .map(|(i, t)| {
                let service = t.service();
                Planned {
                    name: TaskName::from(t.name.as_str()),
                    kind: t.tag(),
                    selected: selected[i],
                    deps: graph.deps(i).to_vec(),
                    dependents: graph.dependents(i).into_iter().filter(|&d| selected[d]).collect(),
                    needers: Vec::new(),
                    foreground: false,
                    quiet: t.process().is_some_and(|p| p.output == crate::config::OutputPolicy::OnFailure),
                    interactive: t.is_interactive(),
                    restart: service.map_or(Restart::No, |s| s.restart),
                    max_restarts: service.map_or(0, |s| s.max_restarts),
                }
            })
            .collect();
        let mut plan = Plan { order, targets: targets.to_vec(), waves, tasks };
        for idx in 0..plan.order.len() {
            let s = plan.order[idx];
            if plan[s].kind == TaskKind::Service {
                let mut needers = plan.through_groups(&plan[s].dependents, |p| &p.dependents);
                needers.sort_unstable();
                plan.tasks[s].foreground = targets.contains(&s) || needers.is_empty();
                plan.tasks[s].needers = needers;
            }
        }
        plan
    }

    /// The tasks `from` leads to, following `next` (deps or dependents) through groups: a group stands for what it
    /// gathers (or for what depends on it). Tasks and services, each once; groups are transparent.
    pub(crate) fn through_groups(&self, from: &[TaskId], next: impl Fn(&Planned) -> &[TaskId]) -> Vec<TaskId> {
        let mut seen = std::collections::HashSet::new();
        let mut stack = from.to_vec();
        let mut out = Vec::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d) {
                continue;
            }
            if self[d].kind == TaskKind::Group {
                stack.extend(next(&self[d]));
            } else {
                out.push(d);
            }
        }
        out
    }

    /// How many tasks Irun.toml has (selected or not).
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Every task of Irun.toml with its part in the plan.
    #[cfg(test)]
    pub(crate) fn tasks(&self) -> &PerTask<Planned> {
        &self.tasks
    }

    /// The selected tasks as reporters are told about them, in plan order.
    pub(crate) fn planned_tasks(&self) -> Vec<PlannedTask> {
        // Tasks without deps share one empty list (an `Arc` of nothing still takes an allocation).
        let none: std::sync::Arc<[TaskName]> = std::sync::Arc::from([]);
        self.order
            .iter()
            .map(|&i| PlannedTask {
                name: self[i].name.clone(),
                kind: self[i].kind,
                deps: match self[i].deps.is_empty() {
                    true => none.clone(),
                    false => self[i].deps.iter().map(|&d| self[d].name.clone()).collect(),
                },
                quiet: self[i].quiet,
            })
            .collect()
    }

    /// `units` and everything they depend on, in plan order.
    pub(crate) fn closure(&self, units: &[TaskId]) -> Vec<TaskId> {
        let mut wanted = PerTask::filled(self.len(), false);
        let mut stack = units.to_vec();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut wanted[i], true) {
                stack.extend(&self[i].deps);
            }
        }
        self.order.iter().copied().filter(|&i| wanted[i]).collect()
    }

    /// The selected tasks' `outputs` and `junit` reports (one list each: a `!` in one takes out of that list only),
    /// which watch mode ignores, and `sources` globs, which it follows.
    pub(crate) fn globs(&self, config: &Config) -> (Vec<Vec<String>>, Vec<String>) {
        let tasks = || self.order.iter().map(|&i| &config.tasks[i]);
        let written = tasks().flat_map(|t| [t.outputs(), t.junit()]).filter(|l| !l.is_empty()).map(<[_]>::to_vec);
        (written.collect(), tasks().flat_map(|t| t.sources().iter().cloned()).collect())
    }
}
