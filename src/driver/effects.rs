//! Carrying out the engine's effects: runners started through the launcher and told to stop, freshness checked
//! at once, outcomes recorded in irun's state, events sent.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use tokio::sync::watch;

use super::Driver;
use crate::config::{TaskId, port_variable};
use crate::engine::{self, Changed, Effect, Input};
use crate::events::{Event, TaskName};
use crate::exec::Launcher;
use crate::exec::runner::Job;
use crate::outcome::{Outcome, Verdict};

impl<L: Launcher> Driver<'_, L> {
    /// Carry out effects in order. A freshness check is answered at once, before any other input; the effects of
    /// the answer come after those already queued, in the order the engine decided them.
    pub(super) fn perform(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Emit(mut event) => {
                    if let (true, Event::TaskStarted { task, command, .. }) = (self.describe, &mut *event) {
                        *command = self
                            .config
                            .id(task)
                            .and_then(|i| self.config.tasks[i].process())
                            .map(|p| p.cmd.to_string());
                    }
                    self.events.send(*event)
                }
                Effect::Spawn { task, restarting, changed, after_exit } => {
                    self.spawn(task, restarting, changed, after_exit)
                }
                Effect::Stop { task, control } => {
                    if let Some(tx) = self.controls.get(&self.engine.plan()[task].name) {
                        tx.send_modify(|c| *c = Some(engine::control::merge(*c, control)));
                    }
                }
                Effect::CheckFreshness { task, dep_ran } => {
                    let dep_ran = dep_ran.map(|d| self.engine.plan()[d].name.clone());
                    // (Without a verdict yet, the remote cache is being asked: its answer gives it.)
                    if let Some(verdict) = self.check_freshness(task, dep_ran) {
                        queue.extend(self.engine.handle(Input::Freshness { task, verdict }));
                    }
                }
                Effect::CheckInputs { tasks } => {
                    // Hashing sources can take a while: what happened before is shown first.
                    self.events.flush();
                    let mut changed = Vec::new();
                    for t in tasks {
                        let (config, live) = (&self.config, self.snapshots[t].as_deref());
                        if self.checker.inputs_changed(config, &config.tasks[t], live) {
                            changed.push(t);
                        }
                    }
                    queue.extend(self.engine.handle(Input::InputsChecked { changed }));
                }
                Effect::Record { task, outcome, took } => self.record(task, outcome, took),
                Effect::SaveState { urgent } => self.save_state(urgent),
            }
        }
    }

    /// Whether `task` runs, is up to date or is restored from the cache, with what it looks like now kept to be
    /// recorded; `None` while the remote cache is asked.
    pub(super) fn check_freshness(&mut self, task: TaskId, dep_ran: Option<TaskName>) -> Option<Verdict> {
        if !self.config.tasks[task].sources().is_empty() {
            // Hashing sources can take a while: what happened before is shown meanwhile. (Handed over, not written
            // at once: most checks read nothing, and a no-op run of 10,000 tasks would wake the reporters 10,000
            // times.)
            self.events.hand_over();
        }
        let (verdict, snapshot) = self.checker.verdict(&self.config, &self.config.tasks[task], dep_ran.as_ref());
        if let (Verdict::UpToDate, Some(snapshot)) = (&verdict, &snapshot) {
            // Files it had to read are not read again next time.
            self.saving.dirty |= self.checker.refresh(&self.config.tasks[task], snapshot);
        }
        // Kept even for a task up to date: the engine may still run it (a service it needs came back, watch mode),
        // and that run is recorded from it.
        self.snapshots[task] = snapshot.map(Box::new);
        self.look_up_cache(task, verdict, dep_ran)
    }

    fn spawn(&mut self, task: TaskId, restarting: bool, changed: Option<Changed>, after_exit: Option<Duration>) {
        let def = &self.config.tasks[task];
        if self.snapshots[task].is_some() {
            // Until it succeeds, its old record no longer vouches for anything.
            self.checker.started(def);
            self.saving.dirty = true;
        }
        // (A service started again after its process exited is the same service: its fingerprint stands.)
        if def.is_service() && after_exit.is_none() {
            // Its dependents compare this fingerprint with the one they last ran against.
            self.checker.service_started(&self.config, def);
            self.saving.dirty = true;
        }
        self.capture(task);
        let name = self.engine.plan()[task].name.clone();
        let (tx, control) = watch::channel(None);
        self.controls.insert(name.clone(), tx);
        let instance = self.next_instance;
        self.next_instance += 1;
        self.instances.insert(instance, name.clone());
        self.before_tests(task, instance);
        let mut extra_env = changed.map(|c| changed_paths_env(&c.paths, c.unknown)).unwrap_or_default();
        // A service started again after its process exited keeps its port.
        let port = match after_exit {
            Some(_) => self.ports.get(&*name).copied(),
            None => self.choose_port(task),
        };
        extra_env.extend(self.port_env(task, port));
        let job = Job {
            config: self.config.clone(),
            task,
            instance,
            name,
            restarting,
            after_exit,
            extra_env,
            port,
            events: self.events.clone(),
            reports: self.reports.clone(),
            control,
        };
        self.launcher.launch(job);
    }

    /// For a service with `ready = { tcp = "auto" }`: a port free on this machine now, remembered for the tasks
    /// that depend on it. `None` for any other task (or if no port could be had: its runner says so).
    fn choose_port(&mut self, task: TaskId) -> Option<u16> {
        let def = &self.config.tasks[task];
        if !def.service().is_some_and(|s| s.auto_port) {
            return None;
        }
        let port = std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).ok()?.port();
        self.ports.insert(def.name.clone(), port);
        Some(port)
    }

    /// `IRUN_PORT` for a service's own chosen port, and `IRUN_PORT_<NAME>` for it and for every service with a
    /// chosen port that the task needs (depends on directly or through groups).
    fn port_env(&self, task: TaskId, own: Option<u16>) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(port) = own {
            env.push(("IRUN_PORT".to_string(), port.to_string()));
        }
        if self.ports.is_empty() {
            return env;
        }
        let plan = self.engine.plan();
        let mut seen = crate::config::PerTask::filled(plan.len(), false);
        let mut stack = vec![task];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let name = &self.config.tasks[i].name;
            if let Some(port) = self.ports.get(name) {
                env.push((port_variable(name), port.to_string()));
            }
            // Only the services it needs (up while it runs): through groups, not through other tasks.
            if i == task || plan[i].kind == crate::config::TaskKind::Group {
                stack.extend(plan[i].deps.iter().copied());
            }
        }
        env
    }

    fn record(&mut self, task: TaskId, outcome: Outcome, took: Option<Duration>) {
        self.store(task, &outcome, took);
        let snapshot = self.snapshots[task].take();
        let def = &self.config.tasks[task];
        if let Some(took) = took {
            self.checker.state.set_duration(&def.name, took.as_millis() as u64);
        }
        if !outcome.is_recorded() {
            // Up to date: its record stands. Cancelled or blocked: a run that started stays marked unfinished.
            return;
        }
        let ok = outcome.is_success();
        match snapshot {
            Some(snapshot) => self.checker.record(def, *snapshot, ok),
            None => self.checker.record_status(def, ok),
        }
        self.saving.dirty = true;
    }
}

/// Largest `IRUN_CHANGED_PATHS` passed on: the kernel refuses a single variable over 128 KiB.
const CHANGED_PATHS_MAX: usize = 64 * 1024;

/// `IRUN_CHANGED_PATHS` (`:`-separated, relative to the project), with `IRUN_CHANGED_PATHS_TRUNCATED=1` when the
/// list was cut short, or `IRUN_CHANGED_UNKNOWN=1` when events were lost and the paths are not known.
fn changed_paths_env(changed: &BTreeSet<String>, unknown: bool) -> Vec<(String, String)> {
    let mut value = String::new();
    let mut truncated = false;
    for path in changed {
        if value.len() + path.len() + 1 > CHANGED_PATHS_MAX {
            truncated = true;
            break;
        }
        if !value.is_empty() {
            value.push(':');
        }
        value.push_str(path);
    }
    let mut env = vec![("IRUN_CHANGED_PATHS".to_string(), value)];
    if truncated {
        env.push(("IRUN_CHANGED_PATHS_TRUNCATED".to_string(), "1".to_string()));
    }
    if unknown {
        env.push(("IRUN_CHANGED_UNKNOWN".to_string(), "1".to_string()));
    }
    env
}
