//! What a task's fingerprint is made of, part by part, and which parts changed since it last ran (a service: since
//! it last started): what `irun explain` shows under each task.

use super::{Checker, compare};
use crate::config::{Check, Config, Task};
use crate::outcome::Setting;
use crate::state::TaskRecord;

/// One part of a fingerprint, and whether it differs from the last run's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    pub(crate) kind: PartKind,
    pub(crate) changed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PartKind {
    Command(String),
    /// The names of the variables irun gives it (not irun's own environment).
    Env(Vec<String>),
    /// Relative to the project's root (absolute outside it).
    Cwd(String),
    Sources {
        globs: Vec<String>,
        files: usize,
    },
    /// `content`: what they hold counts (a task with sources); else only that they exist.
    Outputs {
        globs: Vec<String>,
        files: usize,
        content: bool,
    },
    /// Each dep, and whether it changed since (ran, or a service with another fingerprint).
    Deps(Vec<(String, bool)>),
    /// A service's readiness probe (`None`: ready once started).
    Probe(Option<Check>),
}

impl Checker {
    /// The parts of `task`'s fingerprint. `None` when it has none: a group, or a task with neither sources nor
    /// outputs (it always runs).
    pub(crate) fn parts(&self, config: &Config, task: &Task) -> Option<Vec<Part>> {
        let process = task.process()?;
        let service = task.is_service();
        let outputs_only = task.sources().is_empty();
        if !service && outputs_only && task.outputs().is_empty() {
            return None;
        }
        // A task's record is its last run; a service's, its last start.
        let prev = self.state.record(&task.name).filter(|p| match service {
            true => !p.fingerprint.is_empty(),
            false => !p.command.is_empty() && p.fingerprint.is_empty(),
        });
        let deps = config.deps_through_groups(task);
        let now = self.snapshot(config, task, prev, &deps).record;
        let settings = prev.map(|p| self.settings_changed(task, p)).unwrap_or_default();
        let setting = |s: Setting| settings.contains(&s);
        let mut env: Vec<String> = process.env.iter().map(|(k, _)| k.clone()).collect();
        env.sort();
        let mut parts = vec![
            (PartKind::Command(config.shown(&process.cmd.to_string()).into_owned()), setting(Setting::Command)),
            (PartKind::Env(env), setting(Setting::Env)),
            (PartKind::Cwd(config.shown(&now.cwd).into_owned()), setting(Setting::Cwd)),
            (
                PartKind::Sources { globs: task.sources().to_vec(), files: now.sources.len() },
                setting(Setting::Globs) || prev.is_some_and(|p| compare(&p.sources, &now.sources).is_some()),
            ),
        ];
        if !(service && task.outputs().is_empty()) {
            let files = self.files(task.outputs(), false).len();
            let content = !outputs_only && !service;
            let changed = !service && prev.is_some_and(|p| self.outputs_changed(task, p, outputs_only).is_err());
            let globs = task.outputs().to_vec();
            parts.push((PartKind::Outputs { globs, files, content }, setting(Setting::Globs) || changed));
        }
        let deps: Vec<(String, bool)> =
            deps.iter().map(|d| (d.name.clone(), prev.is_some_and(|p| self.dep_changed(d, p, &now)))).collect();
        let any = deps.iter().any(|(_, changed)| *changed);
        parts.push((PartKind::Deps(deps), any));
        if service {
            let probe = task.probe().map(|p| p.check.hidden(&config.secrets));
            parts.push((PartKind::Probe(probe), setting(Setting::Probe)));
        }
        Some(parts.into_iter().map(|(kind, changed)| Part { kind, changed }).collect())
    }

    /// Whether `dep` changed since `prev` was recorded: a task that ran since, a service with another fingerprint.
    fn dep_changed(&self, dep: &Task, prev: &TaskRecord, now: &TaskRecord) -> bool {
        let (then, now) = (prev.deps.get(&dep.name), now.deps.get(&dep.name));
        match dep.is_service() {
            true => then != now && !(then.is_some() && then == self.legacy_fingerprint(dep, prev).as_ref()),
            false => then.is_some() && then != now,
        }
    }
}
