//! Irun.toml edited during watch mode: read it again, and if it is valid, hand the run to an engine for the new
//! plan once the current cycle is over. Tasks keep their state when their definition did not change (a service
//! stays up); those that are gone or changed are stopped first.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::{Driver, Watching, weights};
use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::engine::{Change, Engine, Input};
use crate::events::{Event, TaskKind};
use crate::plan::Plan;
use crate::watch::Batch;

/// A valid new Irun.toml waiting to be applied once the engine is quiet.
pub(super) struct Reload {
    config: Arc<Config>,
    plan: Arc<Plan>,
    jobs: usize,
    /// Per task of the new plan: the old task it continues (same name, same definition).
    map: Vec<Option<usize>>,
    /// Changes seen while the reload waits: the new configuration handles them.
    pub(super) held: Vec<Change>,
}

impl Driver {
    /// If this batch touched Irun.toml (or events were lost), read it again: a valid new version is applied once
    /// the current cycle is over; an invalid one is reported, and the old one stays in force.
    pub(super) fn check_config(&mut self, batch: &Batch, w: &Watching) {
        let path = self.config.source.path.clone();
        let rel = path.strip_prefix(&self.config.root).unwrap_or(&path).to_path_buf();
        if !(batch.rescan || batch.paths.contains(&rel)) {
            return;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                let message = format!("cannot read {}: {e}; still running the previous version", path.display());
                self.events.send(Event::Notice { task: None, message });
                return;
            }
        };
        if text == self.config_text {
            return;
        }
        self.config_text = text.clone();
        match load(&path, &text, &self.config.root, &w.targets, &w.args) {
            Err(d) => {
                let message = format!(
                    "{} changed but cannot be used; still running the previous version:\n{}",
                    rel.display(),
                    d.render(false).trim_end()
                );
                self.events.send(Event::Notice { task: None, message });
                // A valid version waiting to be applied is superseded: the configuration in force stays, and the
                // changes held for the new one are its again.
                if let Some(superseded) = self.reload.take() {
                    for change in superseded.held {
                        self.input(Input::Changed(change));
                    }
                }
            }
            Ok((config, plan)) => {
                let map = continuity(&self.config, &self.engine.plan(), &config, &plan);
                let jobs = w.cli_jobs.or(config.jobs).unwrap_or_else(default_jobs);
                let held = self.reload.take().map(|r| r.held).unwrap_or_default();
                self.reload = Some(Reload { config: Arc::new(config), plan: Arc::new(plan), jobs, map, held });
            }
        }
    }

    /// Apply a pending reload once nothing runs: stop what is gone or changed, then carry on with a new engine.
    pub(super) fn apply_reload(&mut self, watching: Option<&Watching>) {
        let (Some(w), true) = (watching, self.engine.quiet()) else { return };
        if self.engine.interrupted() {
            self.reload = None;
            return;
        }
        let Some(reload) = self.reload.as_mut() else { return };
        let old_plan = self.engine.plan();
        let kept: BTreeSet<usize> = reload.map.iter().flatten().copied().collect();
        // Stop what is gone or changed (again, should a change have started one of them meanwhile).
        let retire: Vec<usize> =
            old_plan.order.iter().copied().filter(|i| !kept.contains(i) && self.engine.life(*i).alive()).collect();
        if !retire.is_empty() {
            let effects = self.engine.retire(&retire);
            self.perform(effects);
            return;
        }
        let reload = self.reload.take().expect("checked above");
        let old_plan = self.engine.plan();
        let describe = |names: Vec<&str>| if names.is_empty() { None } else { Some(names.join(", ")) };
        let old_names: HashSet<&str> = old_plan.order.iter().map(|&i| &*old_plan.names[i]).collect();
        let new_names: HashSet<&str> = reload.plan.order.iter().map(|&j| &*reload.plan.names[j]).collect();
        let replaced = |j: usize| reload.map[j].is_none();
        let added = describe(
            reload
                .plan
                .order
                .iter()
                .filter(|&&j| replaced(j) && !old_names.contains(&*reload.plan.names[j]))
                .map(|&j| &*reload.plan.names[j])
                .collect(),
        );
        let changed = describe(
            reload
                .plan
                .order
                .iter()
                .filter(|&&j| replaced(j) && old_names.contains(&*reload.plan.names[j]))
                .map(|&j| &*reload.plan.names[j])
                .collect(),
        );
        let removed = describe(
            old_plan
                .order
                .iter()
                .filter(|&&i| !new_names.contains(&*old_plan.names[i]))
                .map(|&i| &*old_plan.names[i])
                .collect(),
        );
        let what: Vec<String> = [("added", added), ("changed", changed), ("removed", removed)]
            .into_iter()
            .filter_map(|(verb, names)| names.map(|n| format!("{verb} {n}")))
            .collect();
        let file =
            reload.config.source.path.file_name().map_or("Irun.toml".into(), |f| f.to_string_lossy().into_owned());
        let message = if what.is_empty() {
            format!("{file} changed; no task changed")
        } else {
            format!("{file} changed: {}", what.join("; "))
        };
        self.events.send(Event::Notice { task: None, message });

        // Runners and their channels follow their tasks to their new positions.
        let n = reload.config.tasks.len();
        let mut back = vec![None; self.controls.len()];
        for (j, &old) in reload.map.iter().enumerate() {
            if let Some(old) = old {
                back[old] = Some(j);
            }
        }
        let mut controls = vec![None; n];
        for (old, tx) in std::mem::take(&mut self.controls).into_iter().enumerate() {
            if let (Some(j), Some(tx)) = (back[old], tx) {
                controls[j] = Some(tx);
            }
        }
        self.controls = controls;
        self.instances.retain(|_, task| match back[*task] {
            Some(j) => {
                *task = j;
                true
            }
            None => false,
        });
        self.snapshots = vec![None; n];
        let outputs: Vec<String> =
            reload.plan.order.iter().flat_map(|&j| reload.config.tasks[j].outputs().iter().cloned()).collect();
        let sources: Vec<String> =
            reload.plan.order.iter().flat_map(|&j| reload.config.tasks[j].sources().iter().cloned()).collect();
        w.watcher.set_globs(&outputs, &sources);
        let sources = reload.config.tasks.iter().map(|t| crate::config::glob_set(t.sources())).collect();
        let weights = weights(&reload.config, &self.checker);
        let mut options = self.engine.options().clone();
        options.jobs = reload.jobs;
        let engine = Engine::new(reload.plan, sources, &weights, options, std::time::Instant::now());
        let old = std::mem::replace(&mut self.engine, engine);
        self.config = reload.config;
        let rel = self.config.source.path.strip_prefix(&self.config.root).unwrap_or(&self.config.source.path);
        let effects = self.engine.reconfigured(&old, &reload.map, rel.to_string_lossy().into_owned());
        self.perform(effects);
        for change in reload.held {
            self.input(Input::Changed(change));
        }
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Parse, check and plan a new Irun.toml text.
fn load(
    path: &Path,
    text: &str,
    root: &Path,
    targets: &[String],
    args: &[String],
) -> Result<(Config, Plan), Diagnostic> {
    let mut config = crate::config::parse(crate::diagnostic::Source::new(path, text), root.to_path_buf())?;
    crate::arguments::apply(&mut config, targets, args)?;
    let plan = {
        let graph = crate::graph::TaskGraph::new(&config)?;
        let targets = crate::plan::targets(&config, &graph, targets)?;
        Plan::new(&graph, &targets)
    };
    Ok((config, plan))
}

/// For each task of the new plan: the task of the old plan it continues, if it has the same name and the same
/// definition (a changed task is a new one).
fn continuity(old: &Config, old_plan: &Plan, new: &Config, new_plan: &Plan) -> Vec<Option<usize>> {
    let by_name: HashMap<&str, usize> = old_plan.order.iter().map(|&i| (old.tasks[i].name.as_str(), i)).collect();
    (0..new.tasks.len())
        .map(|j| {
            if !new_plan.selected[j] {
                return None;
            }
            let i = *by_name.get(new.tasks[j].name.as_str())?;
            let same = old.tasks[i].same_definition(&new.tasks[j]) && old_plan.kinds[i] == new_plan.kinds[j];
            // A service that was a target (foreground) and is now needed by others, or the reverse, runs
            // differently: start it afresh.
            let same =
                same && (new_plan.kinds[j] != TaskKind::Service || old_plan.foreground[i] == new_plan.foreground[j]);
            same.then_some(i)
        })
        .collect()
}
