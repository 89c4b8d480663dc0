//! One road from a request to a plan, used by a run, a watch-mode reload, `-n`, `irun plan` and `irun explain`:
//! arguments after `--` go to their task, the graph is checked, targets are resolved (the named ones, else
//! `default`), a partition picks its shard, and the plan records, per task, what the engine needs to know.

use std::ops::Index;

use crate::arguments;
use crate::config::{Config, PerTask, Restart, TaskId, TaskKind};
use crate::diagnostic::{Diagnostic, suggestion};
use crate::events::{PlannedTask, TaskName};
use crate::graph::TaskGraph;
use crate::partition::{self, Partition};

/// What the command line asks to run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    /// Tasks named on the command line (empty: `default`).
    pub(crate) targets: Vec<String>,
    /// Arguments after `--`, for the one target that is a task.
    pub(crate) args: Vec<String>,
    /// `-j`, which wins over `jobs` in Irun.toml.
    pub(crate) jobs: Option<usize>,
    /// `--partition`: run one shard of the plan.
    pub(crate) partition: Option<Partition>,
    /// `--expect-plan`: the plan's hash must be this.
    pub(crate) expect_plan: Option<String>,
}

/// A request planned against an Irun.toml.
pub(crate) struct Prepared {
    /// Irun.toml, with the arguments after `--` appended to their task.
    pub(crate) config: Config,
    pub(crate) plan: Plan,
    pub(crate) jobs: usize,
    /// With `--partition`: which shard this is.
    pub(crate) shard: Option<Shard>,
}

/// The shard a `--partition` run is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shard {
    pub(crate) partition: Partition,
    /// How many leaf tasks the whole plan has.
    pub(crate) leaves: usize,
    /// The leaves this shard runs (with what they depend on).
    pub(crate) units: Vec<TaskName>,
}

/// Plan `request` against `config`.
pub(crate) fn prepare(mut config: Config, request: &Request) -> Result<Prepared, Diagnostic> {
    arguments::apply(&mut config, &request.targets, &request.args)?;
    let graph = TaskGraph::new(&config)?;
    let mut targets = targets(&config, &request.targets)?;
    let mut shard = None;
    if let Some(p) = request.partition {
        // One shard: its leaf tasks become the targets, after the whole plan's hash is checked.
        let whole = Plan::new(&config, &graph, &targets);
        let hash = partition::plan_hash(&whole);
        if let Some(expected) = request.expect_plan.as_deref().filter(|e| *e != hash) {
            return Err(Diagnostic::new(format!(
                "this plan's hash is {hash}, not {expected}: shard {} was planned from a different Irun.toml or \
                 other targets",
                p.shard()
            ))
            .with_help("run `irun plan --json` again on this checkout, and start every shard from its output"));
        }
        let leaves = partition::leaves(&whole).len();
        targets = partition::units_of(&whole, p);
        let units = targets.iter().map(|&u| whole[u].name.clone()).collect();
        shard = Some(Shard { partition: p, leaves, units });
    }
    let plan = Plan::new(&config, &graph, &targets);
    let jobs = request.jobs.or(config.jobs).unwrap_or_else(default_jobs);
    Ok(Prepared { config, plan, jobs, shard })
}

/// One job per CPU.
pub(crate) fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The tasks to run: those `named`, else the `default` ones.
pub(crate) fn targets(config: &Config, named: &[String]) -> Result<Vec<TaskId>, Diagnostic> {
    if !named.is_empty() {
        return resolve(config, named);
    }
    match &config.default {
        Some(d) => resolve(config, &d.iter().map(|n| n.name.clone()).collect::<Vec<_>>()),
        None => {
            Err(Diagnostic::new(format!("no targets given, and {} has no `default`", config.source.path.display()))
                .with_help(format!(
                    "name tasks to run (defined: {}), or add `default = [\"...\"]` to Irun.toml",
                    config.names().join(", ")
                )))
        }
    }
}

/// Resolve task names, with a did-you-mean for typos.
pub(crate) fn resolve(config: &Config, names: &[String]) -> Result<Vec<TaskId>, Diagnostic> {
    let mut out = Vec::new();
    for name in names {
        let Some(i) = config.id(name) else {
            let hint = suggestion(name, config.names());
            return Err(Diagnostic::new(format!("unknown task `{name}`{hint}")).with_help(format!(
                "tasks defined in {}: {} (`irun list` describes them)",
                config.source.path.display(),
                config.names().join(", ")
            )));
        };
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

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
        let mut tasks: PerTask<Planned> = config
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
                    restart: service.map_or(Restart::No, |s| s.restart),
                    max_restarts: service.map_or(0, |s| s.max_restarts),
                }
            })
            .collect();
        for &s in &order {
            if tasks[s].kind == TaskKind::Service {
                let needers = needers(&tasks, s);
                tasks[s].foreground = targets.contains(&s) || needers.is_empty();
                tasks[s].needers = needers;
            }
        }
        Plan { order, targets: targets.to_vec(), waves, tasks }
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
        self.order
            .iter()
            .map(|&i| PlannedTask {
                name: self[i].name.clone(),
                kind: self[i].kind,
                deps: self[i].deps.iter().map(|&d| self[d].name.clone()).collect(),
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

    /// The selected tasks' `outputs` and `sources` globs, as watch mode follows them.
    pub(crate) fn globs(&self, config: &Config) -> (Vec<String>, Vec<String>) {
        let tasks = || self.order.iter().map(|&i| &config.tasks[i]);
        (
            tasks().flat_map(|t| t.outputs().iter().cloned()).collect(),
            tasks().flat_map(|t| t.sources().iter().cloned()).collect(),
        )
    }
}

/// The selected non-group tasks that need service `s` running, looking through groups.
fn needers(tasks: &PerTask<Planned>, s: TaskId) -> Vec<TaskId> {
    let mut seen = PerTask::filled(tasks.len(), false);
    let mut stack: Vec<TaskId> = tasks[s].dependents.clone();
    let mut out = Vec::new();
    while let Some(d) = stack.pop() {
        if std::mem::replace(&mut seen[d], true) {
            continue;
        }
        if tasks[d].kind == TaskKind::Group {
            stack.extend(&tasks[d].dependents);
        } else {
            out.push(d);
        }
    }
    out.sort_unstable();
    out
}
