//! One road from a request to a plan, used by a run, a watch-mode reload, `-n`, `irun plan` and `irun explain`:
//! arguments after `--` go to their task, the graph is checked, targets are resolved (the named ones, else
//! `default`), a partition picks its shard, and [`Plan`] records, per task, what the engine needs to know.

use crate::arguments;
use crate::config::{Config, TaskId};
use crate::diagnostic::{Diagnostic, suggestion};
use crate::events::TaskName;
use crate::graph::TaskGraph;
use crate::partition::{self, Partition};
use crate::plan::Plan;

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
pub(crate) fn plan(mut config: Config, request: &Request) -> Result<Prepared, Diagnostic> {
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
        Some(d) => resolve(config, &d.iter().map(|n| config.tasks[n.id].name.clone()).collect::<Vec<_>>()),
        None => {
            Err(Diagnostic::new(format!("no targets given, and {} has no `default`", config.source.path.display()))
                .with_help(format!(
                    "name tasks to run (defined: {}), or add `default = [\"...\"]` to Irun.toml",
                    a_few(&config.names())
                )))
        }
    }
}

/// The first names of a list, and how many more there are: a help line stays a line however large the file.
fn a_few(names: &[&str]) -> String {
    const SHOWN: usize = 10;
    match names.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{}, and {more} more: `irun list`", names[..SHOWN].join(", ")),
        _ => names.join(", "),
    }
}

/// Resolve task names, with a did-you-mean for typos.
pub(crate) fn resolve(config: &Config, names: &[String]) -> Result<Vec<TaskId>, Diagnostic> {
    let mut out = Vec::new();
    for name in names {
        let Some(i) = config.id(name) else {
            let hint = suggestion(name, config.names());
            return Err(Diagnostic::new(format!("unknown task {}{hint}", crate::diagnostic::shown(name))).with_help(
                format!(
                    "tasks defined in {}: {} (`irun list` describes them)",
                    config.source.path.display(),
                    config.names().join(", ")
                ),
            ));
        };
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}
