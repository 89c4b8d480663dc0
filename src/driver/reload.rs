//! Irun.toml edited during watch mode: read it again, and if it is valid, hand the run to an engine for the new
//! plan once the current cycle is over. Tasks keep their state when their definition did not change (a service
//! stays up); those that are gone or changed are stopped first. Runners are known by task name, so the ones that
//! carry on need nothing moved.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Driver, Watching, sources, weights};
use crate::config::{Config, PerTask, TaskId, TaskKind};
use crate::diagnostic::{Diagnostic, Source};
use crate::engine::{Change, Engine, Input};
use crate::events::{Event, PlanDiff};
use crate::exec::Launcher;
use crate::plan::Plan;
use crate::request::{self, Prepared};
use crate::watch::Batch;

/// A valid new Irun.toml waiting to be applied once the engine is quiet.
pub(super) struct Reload {
    config: Arc<Config>,
    plan: Arc<Plan>,
    jobs: usize,
    /// Per task of the new plan: the old task it continues (same name, same definition).
    map: PerTask<Option<TaskId>>,
    /// Changes seen while the reload waits: the new configuration handles them.
    pub(super) held: Vec<Change>,
}

impl<L: Launcher> Driver<'_, L> {
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
                self.events.send(Event::ConfigUnreadable { path, error: e.to_string() });
                return;
            }
        };
        if self.config_source.is(&text) {
            return;
        }
        self.config_source = Source::new(&path, &text).without_text();
        let planned = crate::config::parse(Source::new(&path, &text), self.config.root.clone())
            .and_then(|config| request::plan(config, &w.request));
        match planned {
            Err(d) => self.reload_rejected(&rel, &d),
            Ok(Prepared { config, plan, jobs, .. }) => {
                let map = continuity(&self.config, &self.engine.plan(), &config, &plan);
                let held = self.reload.take().map(|r| r.held).unwrap_or_default();
                self.reload = Some(Reload { config: Arc::new(config), plan: Arc::new(plan), jobs, map, held });
            }
        }
    }

    fn reload_rejected(&mut self, rel: &std::path::Path, d: &Diagnostic) {
        let diagnostic = d.render(false).trim_end().to_string();
        self.events.send(Event::ReloadRejected { file: rel.display().to_string(), diagnostic });
        // A valid version waiting to be applied is superseded: the configuration in force stays, and the changes
        // held for the new one are its again.
        if let Some(superseded) = self.reload.take() {
            for change in superseded.held {
                self.input(Input::Changed(change));
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
        let kept: HashSet<TaskId> = reload.map.iter().flatten().copied().collect();
        // Stop what is gone or changed (again, should a change have started one of them meanwhile).
        let retire: Vec<TaskId> =
            old_plan.order.iter().copied().filter(|i| !kept.contains(i) && self.engine.life(*i).alive()).collect();
        if !retire.is_empty() {
            let effects = self.engine.retire(&retire);
            self.perform(effects);
            return;
        }
        let reload = self.reload.take().expect("checked above");
        let diff = what_changed(&old_plan, &reload);
        self.events.send(Event::ReloadApplied {
            file: reload.config.file_name(),
            diff,
            secrets: reload.config.secrets.clone(),
        });
        self.snapshots = PerTask::filled(reload.config.tasks.len(), None);
        let (outputs, sources_globs) = reload.plan.globs(&reload.config);
        w.watcher.set_globs(&outputs, &sources_globs);
        let weights = weights(&reload.config, &self.checker);
        let mut options = self.engine.options().clone();
        options.jobs = reload.jobs;
        let sources = sources(&reload.config, options.watch.is_some());
        let engine = Engine::new(reload.plan, sources, &weights, options, std::time::Instant::now());
        let old = std::mem::replace(&mut self.engine, engine);
        self.config = reload.config;
        // Which tasks are cached is worked out again, for the new configuration.
        self.caching.table = None;
        let rel = self.config.source.path.strip_prefix(&self.config.root).unwrap_or(&self.config.source.path);
        let effects = self.engine.reconfigured(&old, &reload.map, rel.to_string_lossy().into_owned());
        self.perform(effects);
        for change in reload.held {
            self.input(Input::Changed(change));
        }
    }
}

/// The tasks a reload adds, changes and removes.
fn what_changed(old_plan: &Plan, reload: &Reload) -> PlanDiff {
    let new_plan = &reload.plan;
    let old_names: HashSet<&str> = old_plan.order.iter().map(|&i| &*old_plan[i].name).collect();
    let new_names: HashSet<&str> = new_plan.order.iter().map(|&j| &*new_plan[j].name).collect();
    let replaced = || new_plan.order.iter().filter(|&&j| reload.map[j].is_none()).map(|&j| &new_plan[j].name);
    let removed = old_plan.order.iter().map(|&i| &old_plan[i].name).filter(|n| !new_names.contains(&***n));
    PlanDiff {
        added: replaced().filter(|n| !old_names.contains(&***n)).cloned().collect(),
        changed: replaced().filter(|n| old_names.contains(&***n)).cloned().collect(),
        removed: removed.cloned().collect(),
    }
}

/// For each task of the new plan: the task of the old plan it continues, if it has the same name and the same
/// definition (a changed task is a new one).
fn continuity(old: &Config, old_plan: &Plan, new: &Config, new_plan: &Plan) -> PerTask<Option<TaskId>> {
    let by_name: HashMap<&str, TaskId> = old_plan.order.iter().map(|&i| (old.tasks[i].name.as_str(), i)).collect();
    PerTask::from_fn(new.tasks.len(), |j| {
        if !new_plan[j].selected {
            return None;
        }
        let i = *by_name.get(new.tasks[j].name.as_str())?;
        let same = old.tasks[i].same_definition(old, &new.tasks[j], new) && old_plan[i].kind == new_plan[j].kind;
        // A service that was a target (foreground) and is now needed by others, or the reverse, runs differently:
        // start it afresh.
        let same = same && (new_plan[j].kind != TaskKind::Service || old_plan[i].foreground == new_plan[j].foreground);
        same.then_some(i)
    })
}
