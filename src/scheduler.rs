//! The run: which task starts when. Owns the ready queue, job slots, fail-fast / keep-going, service lifetimes,
//! watch-mode cycles and signals to irun; talks to task runners through control channels and to reporters through
//! events.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use globset::GlobSet;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::events::{Event, EventSender, RunOutcome, Status, TaskKind};
use crate::plan::Plan;
use crate::runner::{self, Control, Job, Report, StopReason};
use crate::watch::Batch;

pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
    /// Say why each task runs or is skipped.
    pub explain: bool,
}

/// What watch mode does with a change that arrives while a cycle is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnBusy {
    /// Stop the affected running tasks and restart the cycle for the union of changes.
    Restart,
    /// Let the cycle finish, then run one more for everything that changed meanwhile.
    Queue,
}

/// Watch mode's inputs: batches of changed paths, and which task each path concerns.
pub struct Watching {
    pub changes: mpsc::UnboundedReceiver<Batch>,
    /// Per task index: its `sources` globs (empty when it has none).
    pub sources: Vec<GlobSet>,
    pub on_busy: OnBusy,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Not started: waiting for deps or a job slot.
    Waiting,
    /// A task running, or a service started but not ready yet.
    Running,
    /// A service that passed its readiness probe.
    Ready,
    Done(Status),
}

struct Node {
    state: State,
    control: Option<watch::Sender<Control>>,
    holds_slot: bool,
    stop_requested: bool,
    /// Watch mode: once the running instance has stopped, start the task again.
    rerun: bool,
    started_before: bool,
    /// This invocation (or watch cycle) ran it: its dependents are not up to date.
    ran: bool,
    /// The up-to-date decision, once made for this invocation (or watch cycle).
    decided: bool,
    /// The inputs it runs with, recorded once it succeeds.
    snapshot: Option<crate::fresh::Snapshot>,
}

/// Watch mode's cycle in progress.
struct Cycle {
    number: u32,
    started: Instant,
    changed: BTreeSet<String>,
    /// Events were lost: which inputs changed is unknown.
    rescan: bool,
    /// Every task the cycle ran (a restarted cycle keeps those of the one it replaced).
    tasks: BTreeSet<usize>,
}

struct Scheduler<'a> {
    config: Arc<Config>,
    plan: &'a Plan,
    options: &'a Options,
    events: EventSender,
    reports: mpsc::UnboundedSender<Report>,
    nodes: Vec<Node>,
    free_slots: usize,
    aborting: bool,
    interrupted: Option<Signal>,
    failed: bool,
    watching: bool,
    cycle: Option<Cycle>,
    cycles_begun: u32,
    queued: Option<Batch>,
    checker: crate::fresh::Checker,
    state_dirty: bool,
    state_saved: Instant,
    state_save_took: Duration,
    /// Positions (in plan order) of waiting tasks that may have become startable: only these are looked at, so a
    /// state change costs the number of its dependents, not the size of the graph.
    candidates: BTreeSet<usize>,
    /// Positions of tasks whose deps are met but that wait for a job slot.
    blocked: BTreeSet<usize>,
    /// Position of each task in plan order.
    position: Vec<usize>,
    /// How many selected tasks are in each state.
    waiting: usize,
    running: usize,
    ready: usize,
    done: usize,
    services: Vec<usize>,
}

/// Run the plan to the end and say how it went. Every process started is gone when this returns.
///
/// With `watching`, the plan runs once, then again for each batch of changes (only the affected tasks), until irun
/// is interrupted.
pub async fn run(
    config: Arc<Config>,
    plan: &Plan,
    options: &Options,
    checker: crate::fresh::Checker,
    events: EventSender,
    mut watching: Option<Watching>,
    notices: Vec<String>,
) -> RunOutcome {
    let started = Instant::now();
    // Installed before anything is spawned: from here on SIGINT/SIGTERM/SIGHUP only set irun's own teardown going.
    let (mut sigint, mut sigterm, mut sighup) =
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            _ => {
                let message = "cannot install signal handlers; nothing was started".to_string();
                events.send(Event::Notice { task: None, message });
                return RunOutcome::Failed;
            }
        };
    let (reports, mut inbox) = mpsc::unbounded_channel();
    let nodes = (0..config.tasks.len())
        .map(|_| Node {
            state: State::Waiting,
            control: None,
            holds_slot: false,
            stop_requested: false,
            rerun: false,
            started_before: false,
            ran: false,
            decided: false,
            snapshot: None,
        })
        .collect();
    let mut s = Scheduler {
        config,
        plan,
        options,
        events,
        reports,
        nodes,
        free_slots: options.jobs.max(1),
        aborting: false,
        interrupted: None,
        failed: false,
        watching: watching.is_some(),
        cycle: None,
        cycles_begun: 0,
        queued: None,
        checker,
        state_dirty: false,
        state_saved: Instant::now(),
        state_save_took: Duration::ZERO,
        candidates: (0..plan.order.len()).collect(),
        blocked: BTreeSet::new(),
        position: {
            let mut position = vec![usize::MAX; plan.selected.len()];
            for (pos, &i) in plan.order.iter().enumerate() {
                position[i] = pos;
            }
            position
        },
        waiting: plan.order.len(),
        running: 0,
        ready: 0,
        done: 0,
        services: plan.order.iter().copied().filter(|&i| plan.kinds[i] == TaskKind::Service).collect(),
    };
    s.emit(Event::RunStarted { tasks: plan.planned_tasks(), jobs: options.jobs, watch: s.watching });
    for message in notices {
        s.emit(Event::Notice { task: None, message });
    }
    if s.watching {
        s.begin_cycle(vec![true; plan.selected.len()], BTreeSet::new(), false);
    }

    loop {
        s.start_what_can_start();
        if !s.watching {
            s.stop_unneeded_services();
        }
        if s.cycle.is_some() && s.settled() {
            s.save_state(true);
            s.end_cycle();
            if let (Some(batch), Some(w), None) = (s.queued.take(), watching.as_ref(), s.interrupted) {
                s.on_change(batch, w);
                continue;
            }
        }
        if s.all_done() && (!s.watching || s.interrupted.is_some()) {
            break;
        }
        if s.has_waiting() && !s.anything_running() {
            // Nothing runs and nothing could start: what is left waits for deps that will never be met.
            s.give_up_on_waiting();
            continue;
        }
        tokio::select! {
            Some(report) = inbox.recv() => s.on_report(report),
            _ = sigint.recv() => s.on_signal(Signal::SIGINT),
            _ = sigterm.recv() => s.on_signal(Signal::SIGTERM),
            _ = sighup.recv() => s.on_signal(Signal::SIGHUP),
            Some(batch) = next_batch(&mut watching) => {
                if s.interrupted.is_none() {
                    let w = watching.as_ref().expect("batches come only in watch mode");
                    s.on_change(batch, w);
                }
            }
        }
    }

    s.save_state(true);
    // Every task is done; anything of this run still alive escaped its group after its task ended.
    let escaped = crate::supervisor::stop_all_escaped(Signal::SIGTERM, crate::config::DEFAULT_STOP_TIMEOUT).await;
    if escaped > 0 {
        let message = format!(
            "stopped {escaped} process{} that had left {} task's process group and outlived it",
            if escaped == 1 { "" } else { "es" },
            if escaped == 1 { "its" } else { "their" }
        );
        s.emit(Event::Notice { task: None, message });
    }

    let outcome = match (s.interrupted, s.failed) {
        (Some(sig), _) => RunOutcome::Interrupted(sig),
        (None, true) => RunOutcome::Failed,
        (None, false) => RunOutcome::Passed,
    };
    s.emit(Event::RunFinished { outcome, elapsed: started.elapsed() });
    outcome
}

async fn next_batch(watching: &mut Option<Watching>) -> Option<Batch> {
    match watching {
        Some(w) => w.changes.recv().await,
        None => std::future::pending().await,
    }
}

impl Scheduler<'_> {
    fn emit(&self, event: Event) {
        self.events.send(event);
    }

    fn all_done(&self) -> bool {
        self.done == self.plan.order.len()
    }

    fn anything_running(&self) -> bool {
        self.running + self.ready > 0
    }

    fn has_waiting(&self) -> bool {
        self.waiting > 0
    }

    /// Watch mode: the cycle's work is over (services stay up).
    fn settled(&self) -> bool {
        self.waiting == 0 && self.running == 0 && self.services.iter().all(|&i| !self.nodes[i].rerun)
    }

    /// Change a task's state, keeping the counts, and queue what the change may unblock: the task itself if it now
    /// waits, and its waiting dependents.
    fn set_state(&mut self, i: usize, state: State) {
        let count = |s: &mut Self, st: &State, delta: isize| {
            let c = match st {
                State::Waiting => &mut s.waiting,
                State::Running => &mut s.running,
                State::Ready => &mut s.ready,
                State::Done(_) => &mut s.done,
            };
            *c = c.checked_add_signed(delta).expect("state counts never go negative");
        };
        let old = std::mem::replace(&mut self.nodes[i].state, state);
        count(self, &old, -1);
        let new = self.nodes[i].state.clone();
        count(self, &new, 1);
        if new == State::Waiting {
            self.candidates.insert(self.position[i]);
        }
        for idx in 0..self.plan.dependents[i].len() {
            let d = self.plan.dependents[i][idx];
            if self.nodes[d].state == State::Waiting {
                self.candidates.insert(self.position[d]);
            }
        }
    }

    /// A job slot is free again (tasks waiting for one are taken, in plan order, by `start_what_can_start`).
    fn release_slot(&mut self, i: usize) {
        if std::mem::take(&mut self.nodes[i].holds_slot) {
            self.free_slots += 1;
        }
    }

    /// A service that was ready and was then stopped because nothing needed it any more: for a group, which only
    /// gathers its deps, that still counts as done.
    fn served(&self, dep: usize) -> bool {
        self.plan.kinds[dep] == TaskKind::Service && self.nodes[dep].state == State::Done(Status::Ok)
    }

    fn is_done(&self, i: usize) -> bool {
        matches!(self.nodes[i].state, State::Done(_))
    }

    /// A dep lets its dependents start once it finished successfully (or was up to date), or, for a service, once
    /// it is ready.
    fn satisfied(&self, dep: usize) -> bool {
        match &self.nodes[dep].state {
            State::Ready => !self.nodes[dep].rerun,
            State::Done(s) if s.is_success() => self.plan.kinds[dep] != TaskKind::Service,
            _ => false,
        }
    }

    /// Save the up-to-date state: now if `now`, else at most once a second (a killed irun loses little).
    fn save_state(&mut self, now: bool) {
        // Between saves, at least a second, and at least twenty times as long as the last save took: a big state
        // (thousands of tasks) must not turn into a cost paid over and over during the run.
        let pause = Duration::from_secs(1).max(self.state_save_took * 20);
        if !self.state_dirty || (!now && self.state_saved.elapsed() < pause) {
            return;
        }
        self.state_dirty = false;
        let started = Instant::now();
        let saved = self.checker.state.save();
        self.state_save_took = started.elapsed();
        self.state_saved = Instant::now();
        if let Err(e) = saved {
            let message = format!("cannot save irun's state in {}: {e}", crate::state::DIR);
            self.emit(Event::Notice { task: None, message });
        }
    }

    /// For a task about to start: run it, or is its last run still valid? True when it was up to date (and has
    /// been recorded as such).
    fn up_to_date(&mut self, i: usize) -> bool {
        if std::mem::replace(&mut self.nodes[i].decided, true) {
            return false;
        }
        let dep_ran = self.plan.deps[i].iter().find(|&&d| self.nodes[d].ran).map(|&d| self.plan.names[d].clone());
        let deps = self.plan.dep_names_through_groups(i);
        let deps: Vec<&str> = deps.iter().map(|d| &**d).collect();
        let (mut verdict, snapshot) = self.checker.verdict(&self.config.tasks[i], &deps, dep_ran.as_deref(), "ran");
        self.nodes[i].snapshot = snapshot;
        // A watch cycle runs what the change affects. Only after lost events (a rescan), when nobody knows what
        // changed, do the up-to-date checks pick what really did.
        if let Some(c) = self.cycle.as_ref().filter(|c| c.number > 0 && !c.rescan) {
            let what = if c.changed.is_empty() { "a dep reran".to_string() } else { join(&c.changed, ", ") };
            verdict = crate::fresh::Verdict::Run(format!("watch: {what}"));
        }
        match verdict {
            crate::fresh::Verdict::UpToDate => {
                self.nodes[i].snapshot = None;
                self.record(i, Status::UpToDate, Duration::ZERO);
                true
            }
            crate::fresh::Verdict::Run(why) => {
                self.checker.started(&self.config.tasks[i]);
                self.state_dirty = true;
                if self.options.explain {
                    self.emit(Event::Notice {
                        task: Some(self.plan.names[i].clone()),
                        message: format!("will run: {why}"),
                    });
                }
                false
            }
        }
    }

    /// Why `dep` can never let its dependents start, if it cannot.
    fn unmeetable(&self, dep: usize) -> Option<String> {
        let name = &self.plan.names[dep];
        match &self.nodes[dep].state {
            State::Done(s) if s.is_failure() => Some(format!("dep `{name}` failed")),
            State::Done(s) if s.is_success() && self.plan.kinds[dep] == TaskKind::Service => {
                Some(format!("service `{name}` is no longer running"))
            }
            State::Done(s) if s.is_success() => None,
            State::Done(_) => Some(format!("dep `{name}` did not run")),
            _ => None,
        }
    }

    /// Record the end of task `i`, whatever it was.
    fn record(&mut self, i: usize, status: Status, duration: Duration) {
        self.release_slot(i);
        self.set_state(i, State::Done(status.clone()));
        self.nodes[i].control = None;
        self.emit(Event::TaskFinished { task: self.plan.names[i].clone(), status, duration });
    }

    /// Record the end of task `i` and react to a failure.
    fn finish(&mut self, i: usize, mut status: Status, duration: Duration) {
        if self.plan.kinds[i] == TaskKind::Service && status == Status::Ok && !self.nodes[i].stop_requested {
            // A foreground service may end on its own, but not while tasks still count on it.
            let waiting: Vec<&str> =
                self.plan.needers[i].iter().filter(|&&n| !self.is_done(n)).map(|&n| &*self.plan.names[n]).collect();
            if !waiting.is_empty() {
                status = Status::Failed(format!("exited (exit code 0) while {} still needed it", waiting.join(", ")));
            }
        }
        let failure = status.is_failure();
        if let Some(snapshot) = self.nodes[i].snapshot.take() {
            // A failed run is remembered as failed: it is never taken for up to date. A cancelled one stays
            // marked as unfinished (since it was started).
            if matches!(status, Status::Ok | Status::Failed(_) | Status::TimedOut(_)) {
                self.checker.record(&self.config.tasks[i], snapshot, status == Status::Ok);
                self.state_dirty = true;
            }
        } else if self.plan.kinds[i] != TaskKind::Group
            && matches!(status, Status::Ok | Status::Failed(_) | Status::TimedOut(_))
        {
            self.checker.record_status(&self.config.tasks[i], status == Status::Ok);
            self.state_dirty = true;
        }
        self.save_state(false);
        self.record(i, status, duration);
        if failure {
            self.failed = true;
            if self.options.keep_going {
                self.skip_blocked();
            } else if self.watching {
                self.abort_cycle();
            } else {
                self.abort(StopReason::Cancelled);
            }
        }
    }

    /// Start every task whose deps are satisfied, while job slots last. Groups finish as soon as their deps do.
    fn start_what_can_start(&mut self) {
        while !self.aborting {
            // The next task in plan order: a new candidate, or one that waits for a slot if a slot is free.
            let blocked = if self.free_slots > 0 { self.blocked.first().copied() } else { None };
            let pos = match (self.candidates.first().copied(), blocked) {
                (Some(c), Some(b)) if b < c => self.blocked.pop_first(),
                (Some(_), _) => self.candidates.pop_first(),
                (None, Some(_)) => self.blocked.pop_first(),
                (None, None) => None,
            };
            let Some(pos) = pos else { break };
            let i = self.plan.order[pos];
            let group = self.plan.kinds[i] == TaskKind::Group;
            if self.nodes[i].state != State::Waiting
                || !self.plan.deps[i].iter().all(|&d| self.satisfied(d) || (group && self.served(d)))
            {
                continue;
            }
            match self.plan.kinds[i] {
                TaskKind::Group => {
                    // A group "ran" when any of its deps did: its dependents are then not up to date.
                    self.nodes[i].ran = self.plan.deps[i].iter().any(|&d| self.nodes[d].ran);
                    self.finish(i, Status::Ok, Duration::ZERO);
                }
                TaskKind::Task if self.up_to_date(i) => {}
                TaskKind::Service
                    if !self.watching
                        && !self.plan.foreground[i]
                        && self.plan.needers[i].iter().all(|&n| self.is_done(n)) =>
                {
                    let why = "nothing that needs it is left to run".to_string();
                    self.finish(i, Status::Skipped(why), Duration::ZERO);
                }
                _ if self.free_slots > 0 => self.start(i),
                _ => {
                    self.blocked.insert(pos);
                }
            }
        }
    }

    fn start(&mut self, i: usize) {
        let (tx, rx) = watch::channel(Control::Run);
        self.free_slots -= 1;
        let extra_env = match &self.cycle {
            Some(c) if c.number > 0 => changed_paths_env(&c.changed, c.rescan),
            _ => Vec::new(),
        };
        self.set_state(i, State::Running);
        let node = &mut self.nodes[i];
        node.holds_slot = true;
        node.control = Some(tx);
        node.stop_requested = false;
        node.ran = true;
        let restarting = std::mem::replace(&mut node.started_before, true);
        let job = Job {
            config: self.config.clone(),
            index: i,
            name: self.plan.names[i].clone(),
            foreground: self.plan.foreground[i] || self.watching,
            restarting,
            extra_env,
            events: self.events.clone(),
            reports: self.reports.clone(),
            control: rx,
        };
        let reports = self.reports.clone();
        tokio::spawn(async move {
            // A runner that panics still reports an end (its process group is killed as it unwinds), so the run
            // cannot wait for it forever.
            if let Err(e) = tokio::spawn(runner::run(job)).await {
                let status = Status::Failed(format!("internal error in irun: {e}"));
                let _ = reports.send(Report::Finished { task: i, status, duration: Duration::ZERO });
            }
        });
    }

    /// Services are stopped as soon as every task that needs them has finished.
    fn stop_unneeded_services(&mut self) {
        for idx in 0..self.services.len() {
            let i = self.services[idx];
            if self.plan.foreground[i] || self.nodes[i].stop_requested {
                continue;
            }
            if matches!(self.nodes[i].state, State::Running | State::Ready)
                && self.plan.needers[i].iter().all(|&n| self.is_done(n))
            {
                self.request(i, Control::Stop(StopReason::NotNeeded));
            }
        }
    }

    fn request(&mut self, i: usize, control: Control) {
        let node = &mut self.nodes[i];
        if let Some(tx) = &node.control {
            node.stop_requested = true;
            let _ = tx.send(control);
        }
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Started { task, pid } => {
                self.emit(Event::TaskStarted { task: self.plan.names[task].clone(), pid });
            }
            Report::Ready { task, after, probe } => {
                if self.nodes[task].state == State::Running {
                    self.set_state(task, State::Ready);
                }
                // A ready service no longer occupies a job slot, so `-j1` cannot deadlock on a service and its client.
                self.release_slot(task);
                self.emit(Event::TaskReady { task: self.plan.names[task].clone(), after, probe });
            }
            Report::Finished { task, status, duration } => {
                if self.is_done(task) {
                    return;
                }
                if std::mem::take(&mut self.nodes[task].rerun) {
                    if self.aborting || self.interrupted.is_some() {
                        // Stopped to run again, but the cycle was called off meanwhile: it did not complete.
                        self.record(task, Status::Cancelled, duration);
                        return;
                    }
                    // Stopped to be run again (watch mode): back to the queue. Reporters see this instance end.
                    self.emit(Event::TaskFinished {
                        task: self.plan.names[task].clone(),
                        status: Status::Restarted,
                        duration,
                    });
                    self.release_slot(task);
                    self.set_state(task, State::Waiting);
                    self.nodes[task].control = None;
                    return;
                }
                self.finish(task, status, duration);
            }
        }
    }

    /// Fail-fast or interrupt: nothing new starts, everything running is stopped.
    fn abort(&mut self, reason: StopReason) {
        self.aborting = true;
        self.queued = None;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].state {
                State::Waiting => self.record(i, Status::Cancelled, Duration::ZERO),
                State::Running | State::Ready => self.request(i, Control::Stop(reason)),
                State::Done(_) => {}
            }
        }
    }

    /// Watch mode's fail-fast: the rest of this cycle is cancelled, but services stay up for the next one.
    fn abort_cycle(&mut self) {
        self.aborting = true;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].state {
                State::Waiting => self.record(i, Status::Cancelled, Duration::ZERO),
                State::Running if self.plan.kinds[i] != TaskKind::Service && !self.nodes[i].rerun => {
                    self.request(i, Control::Stop(StopReason::Cancelled));
                }
                _ => {}
            }
        }
    }

    /// Keep-going: tasks waiting on a dep that failed, did not run or is gone are skipped, transitively.
    fn skip_blocked(&mut self) {
        // The order is topological, so one pass carries skips down a chain.
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.nodes[i].state != State::Waiting {
                continue;
            }
            let group = self.plan.kinds[i] == TaskKind::Group;
            if let Some(why) =
                self.plan.deps[i].iter().filter(|&&d| !(group && self.served(d))).find_map(|&d| self.unmeetable(d))
            {
                self.record(i, Status::Skipped(why), Duration::ZERO);
            }
        }
    }

    /// Nothing is running, yet tasks wait: their deps can never be met. Skip them rather than wait forever.
    fn give_up_on_waiting(&mut self) {
        self.skip_blocked();
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.nodes[i].state == State::Waiting {
                let why = "its deps can no longer be met".to_string();
                self.record(i, Status::Skipped(why), Duration::ZERO);
            }
        }
    }

    fn on_signal(&mut self, sig: Signal) {
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            let running = self.nodes.iter().filter(|n| n.control.is_some()).count();
            self.emit(Event::Notice {
                task: None,
                message: format!(
                    "received {}; stopping {running} running task{} (send it again to kill them at once)",
                    sig.as_str(),
                    if running == 1 { "" } else { "s" }
                ),
            });
            self.abort(StopReason::Interrupted);
        } else {
            let message = format!("received {} again; killing everything now", sig.as_str());
            self.emit(Event::Notice { task: None, message });
            for i in 0..self.nodes.len() {
                self.request(i, Control::Kill);
            }
        }
    }

    // -- watch mode ---------------------------------------------------------------------------------------------

    /// A batch of changes: start a cycle for the tasks it affects, or fold it into the running one.
    fn on_change(&mut self, batch: Batch, w: &Watching) {
        for notice in &batch.notices {
            self.emit(Event::Notice { task: None, message: notice.clone() });
        }
        let direct = (0..self.plan.selected.len()).filter(|&i| {
            self.plan.selected[i]
                && !w.sources[i].is_empty()
                && (batch.rescan || batch.paths.iter().any(|p| w.sources[i].is_match(p)))
        });
        let affected = self.plan.with_dependents(direct);
        if !affected.iter().any(|&a| a) {
            return;
        }
        // The paths that matter: those some selected task has among its sources.
        let relevant =
            |p: &std::path::PathBuf| (0..w.sources.len()).any(|i| self.plan.selected[i] && w.sources[i].is_match(p));
        let changed: BTreeSet<String> =
            batch.paths.iter().filter(|p| relevant(p)).map(|p| p.to_string_lossy().into_owned()).collect();
        if self.cycle.is_some() && w.on_busy == OnBusy::Queue {
            let what = if batch.rescan { "events were lost".to_string() } else { join(&changed, ", ") };
            let message = format!("change during the run: {what}; one more cycle will follow this one");
            self.emit(Event::Notice { task: None, message });
            let queued = self.queued.get_or_insert_with(Batch::default);
            queued.paths.extend(changed.into_iter().map(std::path::PathBuf::from));
            queued.rescan |= batch.rescan;
            return;
        }
        self.begin_cycle(affected, changed, batch.rescan);
    }

    /// Run the `affected` tasks again. Running ones (a cycle restarted by a change, or a service whose inputs
    /// changed) are stopped first; deps that cannot be met (they failed or never ran) are run again too.
    fn begin_cycle(&mut self, mut affected: Vec<bool>, changed: BTreeSet<String>, rescan: bool) {
        // Pull in deps that could not satisfy their dependents, transitively.
        let mut grew = true;
        while grew {
            grew = false;
            for &i in self.plan.order.iter().rev() {
                if !affected[i] {
                    continue;
                }
                for &d in &self.plan.deps[i] {
                    let stuck = match &self.nodes[d].state {
                        State::Done(Status::Ok) => self.plan.kinds[d] == TaskKind::Service,
                        State::Done(_) => true,
                        _ => false,
                    };
                    if stuck && !affected[d] {
                        affected[d] = true;
                        grew = true;
                    }
                }
            }
        }
        let mut tasks = Vec::new();
        let mut members = BTreeSet::new();
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if !affected[i] {
                continue;
            }
            members.insert(i);
            tasks.push(self.plan.names[i].clone());
            self.nodes[i].decided = false;
            self.nodes[i].ran = false;
            self.candidates.insert(self.position[i]);
            match self.nodes[i].state {
                State::Done(_) => self.set_state(i, State::Waiting),
                State::Running | State::Ready if !self.nodes[i].rerun => {
                    self.nodes[i].rerun = true;
                    self.request(i, Control::Stop(StopReason::Restart));
                }
                _ => {}
            }
        }
        let number = self.cycles_begun;
        self.cycles_begun += 1;
        let (changed, rescan) = match self.cycle.take() {
            // A change during a cycle (`--on-busy restart`): the new cycle covers both sets of changes.
            Some(previous) => {
                members.extend(previous.tasks);
                (previous.changed.into_iter().chain(changed).collect(), previous.rescan || rescan)
            }
            None => (changed, rescan),
        };
        self.emit(Event::CycleStarted { cycle: number, changed: changed.iter().cloned().collect(), rescan, tasks });
        self.cycle = Some(Cycle { number, started: Instant::now(), changed, rescan, tasks: members });
        self.aborting = false;
    }

    fn end_cycle(&mut self) {
        if let Some(c) = self.cycle.take() {
            let failed = c.tasks.iter().any(|&i| matches!(&self.nodes[i].state, State::Done(s) if s.is_failure()));
            let outcome = match self.interrupted {
                Some(sig) => RunOutcome::Interrupted(sig),
                None if failed => RunOutcome::Failed,
                None => RunOutcome::Passed,
            };
            self.emit(Event::CycleFinished { cycle: c.number, outcome, elapsed: c.started.elapsed() });
        }
    }
}

fn join(items: &BTreeSet<String>, separator: &str) -> String {
    items.iter().map(String::as_str).collect::<Vec<_>>().join(separator)
}

/// Largest `IRUN_CHANGED_PATHS` passed on: the kernel refuses a single variable over 128 KiB.
const CHANGED_PATHS_MAX: usize = 64 * 1024;

/// `IRUN_CHANGED_PATHS` (`:`-separated, relative to the project), with `IRUN_CHANGED_PATHS_TRUNCATED=1` when the
/// list was cut short, or `IRUN_CHANGED_UNKNOWN=1` when events were lost and the paths are not known.
fn changed_paths_env(changed: &BTreeSet<String>, rescan: bool) -> Vec<(String, String)> {
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
    if rescan {
        env.push(("IRUN_CHANGED_UNKNOWN".to_string(), "1".to_string()));
    }
    env
}
