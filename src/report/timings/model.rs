//! The timings of a run as sections of bars on lanes, made from [`Record`]s: pure, and the same whether the records
//! come from a live run or from an events file.
//!
//! The rules, each stated once:
//! - A section is a run, or in watch mode a cycle (the first run is cycle 0); runs read from several events files
//!   (shards) are sections of their own. A section ends at its cycle's end, the next cycle's start, or the run's end.
//! - Job slots are lanes. A task takes the lowest free slot when it starts and gives it back when it ends; a service
//!   takes one when it starts and gives it back once ready (as the engine does), and has a lane of its own for its
//!   whole life. A task that ran no process (up to date, cached, skipped, cancelled, or its program could not be
//!   started) is on no lane.
//!   A service started again by its `restart` setting is the same bar, and takes no new slot (as in the engine: it
//!   keeps the one it held if it was not ready yet); one started again after it ended (watch mode) is drawn anew.
//! - A task waited for readiness from when its other deps were done and it was decided that it runs (its up-to-date
//!   check is not waiting) until its last service dep was ready, and for a slot from then until it started. A group
//!   stands for its members; deps outside the section count as done at its start.
//! - What still runs when a section ends (services; tasks, when a cycle is replaced by the next) goes on into the
//!   next one. A section a new cycle replaces before anything of its own happened is not drawn.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::record::{Planned, Record, What};
use crate::events::{TaskKind, TaskName};
use crate::report::critical::{self, Timing, Timings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Slot(usize),
    Service(usize),
    NoProcess,
}

/// One task's bar: times in microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    pub(crate) name: String,
    pub(crate) kind: TaskKind,
    pub(crate) lane: Lane,
    /// A service: the slot it held while it started, until ready.
    pub(crate) slot: Option<usize>,
    pub(crate) started: Option<u64>,
    pub(crate) ready: Option<u64>,
    pub(crate) stopping: Option<u64>,
    /// None: still running when the section ended.
    pub(crate) finished: Option<u64>,
    /// When it could have started but for a service's readiness, and when but for a slot (see the rules).
    pub(crate) queued: Option<u64>,
    pub(crate) satisfied: Option<u64>,
    /// As `task_finished` says (`ok`, `failed`, ...), or `running`.
    pub(crate) status: String,
    /// What the status means, when there is more to say (`exit code 1`).
    pub(crate) detail: Option<String>,
    pub(crate) why: Option<String>,
    /// What its JUnit reports counted (`junit`).
    pub(crate) tests: Option<String>,
    pub(crate) command: Option<String>,
    pub(crate) probe: Option<String>,
    pub(crate) stop_reason: Option<String>,
    /// When each restart of a service began (its process had exited).
    pub(crate) restarts: Vec<u64>,
    /// Started in an earlier section.
    pub(crate) carried: bool,
    /// When it was decided that it runs (`will_run`).
    pub(crate) decided: Option<u64>,
    /// A service's process exited and `restart` starts it again: the next start is the same instance's.
    pub(crate) restarting: bool,
    pub(crate) critical: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) jobs: usize,
    /// How it ended: `passed`, `failed`, `interrupted`; none when the events stop before.
    pub(crate) outcome: Option<String>,
    /// Slot lanes used, and the services' lanes by name.
    pub(crate) slots: usize,
    pub(crate) services: Vec<String>,
    /// In order of start (tasks that ran no process: of their end).
    pub(crate) bars: Vec<Bar>,
    /// The critical path, first task first.
    pub(crate) critical: Vec<String>,
    /// Each bar's deps that are tasks or services (a group stands for its members).
    pub(crate) deps: std::collections::BTreeMap<String, Vec<String>>,
}

/// Sections made as records come.
#[derive(Default)]
pub(crate) struct Builder {
    done: Vec<Section>,
    run: Option<Run>,
}

struct Run {
    plan: HashMap<String, (TaskKind, Vec<String>)>,
    jobs: usize,
    shard: Option<String>,
    open: Option<Open>,
    /// Services running between two cycles.
    carry: Vec<Bar>,
    last: u64,
}

struct Open {
    title: String,
    start: u64,
    bars: Vec<Bar>,
    index: HashMap<String, usize>,
    /// Who holds each slot.
    slots: Vec<Option<String>>,
    services: Vec<String>,
    /// When each group finished.
    groups: HashMap<String, u64>,
}

impl Builder {
    pub(crate) fn push(&mut self, record: Record) {
        let Record { at, shard, what } = record;
        if let What::RunStarted { jobs, watch, tasks } = what {
            self.end_run(None);
            let mut run = Run { plan: plan(tasks), jobs, shard, open: None, carry: Vec::new(), last: at };
            run.open_section(at, if watch { "cycle 0".into() } else { "run".into() });
            self.run = Some(run);
            return;
        }
        let run = self.run.get_or_insert_with(|| {
            let mut run =
                Run { plan: HashMap::new(), jobs: 1, shard: shard.clone(), open: None, carry: Vec::new(), last: at };
            run.open_section(at, "run".into());
            run
        });
        run.last = run.last.max(at);
        match what {
            What::RunStarted { .. } => unreachable!("handled above"),
            What::PlanChanged { jobs, tasks } => {
                run.jobs = jobs;
                run.plan.extend(plan(tasks));
            }
            What::CycleStarted { cycle, restarted } => {
                let replaced = run.close_section(at, restarted.then(|| "restarted".to_string()));
                self.done.extend(replaced.filter(|s| s.bars.iter().any(|b| !b.carried)));
                run.open_section(at, format!("cycle {cycle}"));
            }
            What::CycleFinished { outcome, .. } => self.done.extend(run.close_section(at, Some(outcome))),
            What::RunFinished { outcome } => self.end_run(Some((at, outcome))),
            other => run.task_event(at, other),
        }
    }

    /// Every section, the last one closed at the last record if the events stop before its end.
    pub(crate) fn finish(mut self) -> Vec<Section> {
        self.end_run(None);
        self.done
    }

    /// The sections so far, and the open one as it stands (watch mode writes the page after every cycle).
    pub(crate) fn sections(&self) -> Vec<Section> {
        let mut all = self.done.clone();
        if let Some(run) = &self.run
            && let Some(open) = &run.open
        {
            all.push(run.section_of(open, run.last, None));
        }
        all
    }

    fn end_run(&mut self, end: Option<(u64, String)>) {
        let Some(mut run) = self.run.take() else { return };
        let (at, outcome) = match end {
            Some((at, outcome)) => (at, Some(outcome)),
            None => (run.last, None),
        };
        self.done.extend(run.close_section(at, outcome));
    }
}

/// A task's deps, a group's replaced by its members (at any depth).
fn members(plan: &HashMap<String, (TaskKind, Vec<String>)>, task: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<&str> =
        plan.get(task).map_or_else(Vec::new, |(_, d)| d.iter().map(String::as_str).rev().collect());
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = todo.pop() {
        if !seen.insert(d) {
            continue;
        }
        match plan.get(d) {
            Some((TaskKind::Group, deps)) => todo.extend(deps.iter().map(String::as_str).rev()),
            _ => out.push(d.to_string()),
        }
    }
    out
}

fn plan(tasks: Vec<Planned>) -> HashMap<String, (TaskKind, Vec<String>)> {
    tasks.into_iter().map(|t| (t.name, (t.kind, t.deps))).collect()
}

impl Run {
    fn open_section(&mut self, at: u64, title: String) {
        let title = match &self.shard {
            Some(shard) => format!("shard {shard}: {title}"),
            None => title,
        };
        let mut open = Open {
            title,
            start: at,
            bars: Vec::new(),
            index: HashMap::new(),
            slots: Vec::new(),
            services: Vec::new(),
            groups: HashMap::new(),
        };
        // (One that stopped between two cycles is not carried.)
        for mut bar in std::mem::take(&mut self.carry).into_iter().filter(|b| b.finished.is_none()) {
            bar.carried = true;
            if bar.kind == TaskKind::Service {
                bar.lane = Lane::Service(open.service_lane(&bar.name));
                // Not ready yet: it still holds a slot.
                bar.slot = bar.slot.filter(|_| bar.ready.is_none()).map(|_| open.take_slot(&bar.name));
            } else {
                bar.lane = Lane::Slot(open.take_slot(&bar.name));
            }
            open.index.insert(bar.name.clone(), open.bars.len());
            open.bars.push(bar);
        }
        self.open = Some(open);
    }

    /// The open section, closed at `at`; services still running are carried into the next.
    fn close_section(&mut self, at: u64, outcome: Option<String>) -> Option<Section> {
        let open = self.open.take()?;
        let section = self.section_of(&open, at, outcome);
        self.carry = open.bars.into_iter().filter(|b| b.finished.is_none()).collect();
        Some(section)
    }

    fn section_of(&self, open: &Open, end: u64, outcome: Option<String>) -> Section {
        let mut bars = open.bars.clone();
        waits(&mut bars, &self.plan, open.start);
        let critical = critical_path(&bars, &self.plan, &open.groups);
        for bar in &mut bars {
            bar.critical = critical.contains(&bar.name);
        }
        bars.sort_by_key(|b| (b.started.or(b.finished).unwrap_or(end), b.name.clone()));
        Section {
            title: open.title.clone(),
            start: open.start,
            end: end.max(open.start),
            jobs: self.jobs,
            outcome,
            slots: open.slots.len(),
            services: open.services.clone(),
            deps: bars.iter().map(|b| (b.name.clone(), members(&self.plan, &b.name))).collect(),
            bars,
            critical,
        }
    }

    fn kind(&self, task: &str) -> TaskKind {
        self.plan.get(task).map_or(TaskKind::Task, |(k, _)| *k)
    }

    fn task_event(&mut self, at: u64, what: What) {
        let kind = match &what {
            What::Started { task, .. }
            | What::Ready { task, .. }
            | What::Restarting { task, .. }
            | What::Stopping { task, .. }
            | What::Finished { task, .. }
            | What::WillRun { task, .. }
            | What::Tests { task, .. } => self.kind(task),
            _ => return,
        };
        if let Some(open) = &mut self.open {
            open.apply(at, kind, what);
        } else if let Some(bar) = self.carry.iter_mut().find(|b| Some(b.name.as_str()) == task_of(&what)) {
            // Between two cycles: a running service restarts or stops.
            apply_to_bar(bar, at, what);
        }
    }
}

fn task_of(what: &What) -> Option<&str> {
    match what {
        What::Started { task, .. }
        | What::Ready { task, .. }
        | What::Restarting { task, .. }
        | What::Stopping { task, .. }
        | What::Finished { task, .. }
        | What::WillRun { task, .. }
        | What::Tests { task, .. } => Some(task),
        _ => None,
    }
}

impl Open {
    fn service_lane(&mut self, name: &str) -> usize {
        match self.services.iter().position(|s| s == name) {
            Some(i) => i,
            None => {
                self.services.push(name.to_string());
                self.services.len() - 1
            }
        }
    }

    fn take_slot(&mut self, name: &str) -> usize {
        let free = self.slots.iter().position(Option::is_none).unwrap_or(self.slots.len());
        if free == self.slots.len() {
            self.slots.push(None);
        }
        self.slots[free] = Some(name.to_string());
        free
    }

    fn give_slot(&mut self, name: &str) {
        for s in &mut self.slots {
            if s.as_deref() == Some(name) {
                *s = None;
            }
        }
    }

    fn apply(&mut self, at: u64, kind: TaskKind, what: What) {
        let Some(task) = task_of(&what).map(str::to_string) else { return };
        if let (What::Finished { .. }, TaskKind::Group) = (&what, kind) {
            self.groups.insert(task, at);
            return;
        }
        // Only a service becomes ready (its kind is not known when the events begin after the plan).
        let kind = if matches!(what, What::Ready { .. }) { TaskKind::Service } else { kind };
        let i = self.index_of(&task, kind);
        match &what {
            What::Started { .. } => {
                let restarting = self.bars[i].restarting;
                apply_to_bar(&mut self.bars[i], at, what);
                if !restarting {
                    let slot = self.take_slot(&task);
                    if kind == TaskKind::Service {
                        let lane = Lane::Service(self.service_lane(&task));
                        (self.bars[i].lane, self.bars[i].slot) = (lane, Some(slot));
                    } else {
                        self.bars[i].lane = Lane::Slot(slot);
                    }
                }
                return;
            }
            What::Ready { .. } => {
                self.give_slot(&task);
                if self.bars[i].kind != TaskKind::Service {
                    let bar = &self.bars[i];
                    let slot = if let Lane::Slot(s) = bar.lane { Some(s) } else { bar.slot };
                    let lane = Lane::Service(self.service_lane(&task));
                    let bar = &mut self.bars[i];
                    (bar.kind, bar.lane, bar.slot) = (TaskKind::Service, lane, slot);
                }
            }
            What::Finished { .. } => self.give_slot(&task),
            _ => {}
        }
        apply_to_bar(&mut self.bars[i], at, what);
    }

    fn index_of(&mut self, name: &str, kind: TaskKind) -> usize {
        *self.index.entry(name.to_string()).or_insert_with(|| {
            self.bars.push(Bar::new(name, kind));
            self.bars.len() - 1
        })
    }
}

impl Bar {
    pub(crate) fn new(name: &str, kind: TaskKind) -> Bar {
        Bar {
            name: name.to_string(),
            kind,
            lane: Lane::NoProcess,
            slot: None,
            started: None,
            ready: None,
            stopping: None,
            finished: None,
            queued: None,
            satisfied: None,
            status: "running".into(),
            detail: None,
            why: None,
            tests: None,
            command: None,
            probe: None,
            stop_reason: None,
            restarts: Vec::new(),
            carried: false,
            decided: None,
            restarting: false,
            critical: false,
        }
    }
}

fn apply_to_bar(bar: &mut Bar, at: u64, what: What) {
    match what {
        What::Started { command, .. } => {
            if bar.finished.take().is_some() {
                // Started again after it ended (watch mode): a new instance, drawn from now.
                (bar.ready, bar.stopping, bar.stop_reason, bar.slot, bar.carried) = (None, None, None, None, false);
                bar.started = Some(at);
            }
            bar.started.get_or_insert(at);
            bar.restarting = false;
            bar.status = "running".into();
            bar.command = command.or(bar.command.take());
        }
        What::Ready { probe, .. } => {
            bar.ready.get_or_insert(at);
            bar.probe = probe;
        }
        What::Restarting { exit, .. } => {
            bar.restarts.push(at);
            bar.detail = Some(exit);
            bar.restarting = true;
        }
        What::Stopping { reason, .. } => {
            bar.stopping.get_or_insert(at);
            bar.stop_reason.get_or_insert(reason);
        }
        What::Finished { status, reason, .. } => {
            bar.finished = Some(at);
            bar.status = status;
            bar.detail = reason;
        }
        What::WillRun { why, .. } => {
            bar.why = Some(why);
            bar.decided = Some(at);
        }
        What::Tests { counts, .. } => bar.tests = Some(counts),
        _ => {}
    }
}

/// When each task that started could have started but for a service's readiness, and but for a slot.
fn waits(bars: &mut [Bar], plan: &HashMap<String, (TaskKind, Vec<String>)>, start: u64) {
    let available: HashMap<&str, (TaskKind, Option<u64>)> = bars
        .iter()
        .map(|b| (b.name.as_str(), (b.kind, if b.kind == TaskKind::Service { b.ready } else { b.finished })))
        .collect();
    let mut found = Vec::with_capacity(bars.len());
    for bar in bars.iter() {
        let (mut done, mut ready) = (start.max(bar.decided.unwrap_or(0)), None::<u64>);
        for dep in members(plan, &bar.name) {
            match available.get(dep.as_str()) {
                Some((TaskKind::Service, Some(at))) => ready = Some(ready.map_or(*at, |r| r.max(*at))),
                Some((_, Some(at))) => done = done.max(*at),
                _ => {}
            }
        }
        found.push((done, ready.map_or(done, |r| r.max(done))));
    }
    for (bar, (queued, satisfied)) in bars.iter_mut().zip(found) {
        if let (Some(started), false) = (bar.started, bar.carried) {
            bar.queued = Some(queued.min(started));
            bar.satisfied = Some(satisfied.min(started));
        }
    }
}

fn critical_path(
    bars: &[Bar],
    plan: &HashMap<String, (TaskKind, Vec<String>)>,
    groups: &HashMap<String, u64>,
) -> Vec<String> {
    let time = |us: u64| SystemTime::UNIX_EPOCH + Duration::from_micros(us);
    let deps = |name: &str| -> std::sync::Arc<[TaskName]> {
        plan.get(name).map_or_else(|| [].into(), |(_, d)| d.iter().map(|d| TaskName::from(d.as_str())).collect())
    };
    let timing = |kind, name: &str, started: Option<u64>, available: Option<u64>| Timing {
        kind,
        deps: deps(name),
        started: started.map(time),
        available: available.map(time),
        colour: 0,
        row: None,
    };
    let list = bars
        .iter()
        .filter(|b| !b.carried)
        .map(|b| {
            let available = if b.kind == TaskKind::Service { b.ready } else { b.finished };
            (TaskName::from(b.name.as_str()), timing(b.kind, &b.name, b.started, available))
        })
        .chain(groups.iter().map(|(g, &at)| (TaskName::from(g.as_str()), timing(TaskKind::Group, g, None, Some(at)))))
        .collect();
    critical::critical_path(&Timings::new(list)).iter().map(|n| n.to_string()).collect()
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
