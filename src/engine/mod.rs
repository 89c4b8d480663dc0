//! The run's rules, as a pure state machine: inputs in (a task started, became ready, ended; a signal; changed
//! paths; a freshness verdict; the time), effects out (spawn, stop, check freshness, record, save, emit an event).
//! No tokio, no processes, no files, no clock reads: the driver ([`crate::driver`]) does all of that.
//!
//! The rules, each stated once:
//! - A task starts when every dep is satisfied: done well (ok or up to date) or, for a service, ready. A group
//!   finishes as soon as its deps are; for a group, a service that served and stopped still counts.
//! - A task (not a service or group) whose deps are met is checked for freshness first; up to date, it is done.
//! - At most `jobs` tasks hold a job slot; a service gives its slot back once ready. Free slots go by
//!   [`priority`].
//! - Outside watch mode a service is stopped as soon as every task that needs it is done, unless it runs in the
//!   foreground; one whose needers are all done before it starts is not started.
//! - The first failure cancels what has not started and stops what runs (fail-fast); with keep-going, only what
//!   depends on it is blocked. In watch mode a failure ends the cycle, and services stay up.
//! - The first signal stops everything gracefully; every further one kills at once. Controls only escalate.
//! - Watch cycles follow [`cycle`].

pub mod control;
pub mod cycle;
pub mod node;
pub mod priority;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::GlobSet;
use nix::sys::signal::Signal;

pub use control::Control;
use cycle::{Standing, Why};
pub use node::{Life, Node, Phase, Stopping, Then};

use crate::events::{Event, RunOutcome, TaskKind, TaskName};
use crate::outcome::{Blocked, ChildExit, Failure, Outcome, StopReason, Verdict};
use crate::plan::Plan;

/// What watch mode does with a change that arrives while a cycle is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnBusy {
    /// Stop the affected running tasks and restart the cycle for the union of changes.
    Restart,
    /// Let the cycle finish, then run one more for everything that changed meanwhile.
    Queue,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
    /// Say why each task runs.
    pub explain: bool,
    /// Watch mode, and its policy for changes during a cycle.
    pub watch: Option<OnBusy>,
}

/// A batch of changed paths from the watcher.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Relative to the project root.
    pub paths: BTreeSet<PathBuf>,
    /// Events were lost: anything may have changed.
    pub rescan: bool,
    pub notices: Vec<String>,
    /// When the first and the last event of the batch were seen.
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

/// How a runner says its task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The main process exited by itself (whatever it left behind in its group was stopped).
    Exited(ChildExit),
    /// Stopped at the engine's request.
    Stopped,
    TimedOut(Duration),
    ProbeFailed(String),
    /// It could not be started; nothing ran.
    NotStarted(Failure),
    /// irun lost track of it (it could not wait for it, or the runner broke).
    Broken(String),
}

#[derive(Debug, Clone)]
pub enum Input {
    /// The time is now: the engine has no clock of its own.
    Tick(Instant),
    Started {
        task: usize,
        pid: u32,
    },
    Ready {
        task: usize,
        after: Duration,
        probe: Option<String>,
    },
    Exited {
        task: usize,
        end: End,
        duration: Duration,
    },
    /// One delivery of a signal to irun (two deliveries are two inputs, however close together).
    Signal(Signal),
    Changed(Change),
    Freshness {
        task: usize,
        verdict: Verdict,
    },
}

/// The changed paths a task of a watch cycle is told about (`IRUN_CHANGED_PATHS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub paths: Arc<BTreeSet<String>>,
    /// Events were lost: which paths changed is unknown.
    pub unknown: bool,
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// Start the task. `restarting`: an earlier instance ran in this run (its port may take a moment to be free).
    Spawn {
        task: usize,
        restarting: bool,
        changed: Option<Changed>,
    },
    Stop {
        task: usize,
        control: Control,
    },
    /// Decide whether the task is up to date (`dep_ran`: a dep that ran in this run or cycle) and answer with
    /// [`Input::Freshness`] before any other input.
    CheckFreshness {
        task: usize,
        dep_ran: Option<usize>,
    },
    /// Remember how the task ended. `took`: how long it ran (for a service, how long until it was ready).
    Record {
        task: usize,
        outcome: Outcome,
        took: Option<Duration>,
    },
    /// Write the state now (`urgent`: a cycle or the run ended) or when convenient.
    SaveState {
        urgent: bool,
    },
    Emit(Event),
}

/// Watch mode's cycle in progress.
#[derive(Debug, Clone)]
struct Cycle {
    number: u32,
    /// When it started: its first change (kept across `--on-busy restart`), or the start of the run.
    since: Instant,
    /// When this cycle (or the one it replaced) began running: changes seen after this were made during it.
    began: Instant,
    changed: Arc<BTreeSet<String>>,
    rescan: bool,
    /// Its tasks run whatever their up-to-date checks say: the change is the reason. Not for the first run, after
    /// lost events, or after Irun.toml changed, where the checks decide.
    forced: bool,
    why: Vec<Option<Why>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    pending: usize,
    active: usize,
    ready: usize,
    done: usize,
}

impl Counts {
    fn slot(&mut self, phase: Phase) -> &mut usize {
        match phase {
            Phase::Pending => &mut self.pending,
            Phase::Active => &mut self.active,
            Phase::Ready => &mut self.ready,
            Phase::Done => &mut self.done,
        }
    }
}

pub struct Engine {
    plan: Arc<Plan>,
    /// Per task: its `sources` globs (empty when it has none).
    sources: Vec<GlobSet>,
    opts: Options,
    nodes: Vec<Node>,
    /// Scheduling rank per task (lower first), and the task at each rank.
    rank: Vec<usize>,
    by_rank: Vec<usize>,
    /// Ranks of waiting tasks that may have become startable: only these are looked at, so a change of state
    /// costs the number of its dependents, not the size of the graph.
    candidates: BTreeSet<usize>,
    /// Ranks of tasks decided to run, waiting for a job slot.
    queue: BTreeSet<usize>,
    /// Tasks whose freshness verdict is awaited. Slots are handed out only once every verdict is in (the driver
    /// answers at once), so a task checked a moment later cannot lose its slot to one of lower priority.
    checking: usize,
    free_slots: usize,
    counts: Counts,
    /// Per service: how many of the tasks that need it are not done.
    needers_left: Vec<usize>,
    /// Per task: the services it needs (through groups).
    needs: Vec<Vec<usize>>,
    aborting: bool,
    interrupted: Option<Signal>,
    signals: u32,
    failed: bool,
    now: Instant,
    cycle: Option<Cycle>,
    cycles_begun: u32,
    /// When the last finished cycle began and ended.
    last_cycle: Option<(Instant, Instant)>,
    queued_change: Option<Change>,
    loops: cycle::Loops,
    out: Vec<Effect>,
}

impl Engine {
    /// An engine for `plan`. `weights`: per task, how long it took last time (for scheduling priority).
    pub fn new(
        plan: Arc<Plan>,
        sources: Vec<GlobSet>,
        weights: &[Option<Duration>],
        opts: Options,
        now: Instant,
    ) -> Engine {
        let n = plan.selected.len();
        let rank = priority::ranks(&plan, weights);
        let mut by_rank = vec![usize::MAX; plan.order.len()];
        for &i in &plan.order {
            by_rank[rank[i]] = i;
        }
        let mut needs = vec![Vec::new(); n];
        let mut needers_left = vec![0; n];
        for &s in &plan.order {
            for &d in &plan.needers[s] {
                needs[d].push(s);
            }
            needers_left[s] = plan.needers[s].len();
        }
        Engine {
            sources,
            nodes: vec![Node::new(); n],
            candidates: plan.order.iter().map(|&i| rank[i]).collect(),
            queue: BTreeSet::new(),
            checking: 0,
            rank,
            by_rank,
            free_slots: opts.jobs.max(1),
            counts: Counts { pending: plan.order.len(), ..Counts::default() },
            needers_left,
            needs,
            aborting: false,
            interrupted: None,
            signals: 0,
            failed: false,
            now,
            cycle: None,
            cycles_begun: 0,
            last_cycle: None,
            queued_change: None,
            loops: cycle::Loops::default(),
            out: Vec::new(),
            opts,
            plan,
        }
    }

    pub fn plan(&self) -> Arc<Plan> {
        self.plan.clone()
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn life(&self, task: usize) -> &Life {
        &self.nodes[task].life
    }

    /// Announce the run and start what can start.
    pub fn start(&mut self, notices: Vec<String>) -> Vec<Effect> {
        let watch = self.opts.watch.is_some();
        self.emit(Event::RunStarted { tasks: self.plan.planned_tasks(), jobs: self.opts.jobs, watch });
        for message in notices {
            self.emit(Event::Notice { task: None, message });
        }
        if watch {
            let all = self.plan.order.iter().map(|&i| (i, Why::Downstream)).collect();
            self.begin_cycle(all, Arc::default(), false, false, self.now);
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Tick(now) => self.now = now,
            Input::Started { task, pid } => self.on_started(task, pid),
            Input::Ready { task, after, probe } => self.on_ready(task, after, probe),
            Input::Exited { task, end, duration } => self.on_exited(task, end, duration),
            Input::Signal(sig) => self.on_signal(sig),
            Input::Changed(change) => self.on_change(change),
            Input::Freshness { task, verdict } => self.on_freshness(task, verdict),
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    /// The run is over: every task is done (and, in watch mode, irun was interrupted). How it went.
    pub fn finished(&self) -> Option<RunOutcome> {
        let over =
            self.counts.done == self.plan.order.len() && (self.opts.watch.is_none() || self.interrupted.is_some());
        over.then(|| self.outcome())
    }

    /// Watch mode: no cycle is running and nothing is starting or stopping (services may be up).
    pub fn quiet(&self) -> bool {
        self.cycle.is_none() && self.counts.pending == 0 && self.counts.active == 0
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted.is_some()
    }

    /// Irun.toml changed: stop these tasks (gone from it, or changed), before a new engine takes over.
    pub fn retire(&mut self, tasks: &[usize]) -> Vec<Effect> {
        for &i in tasks {
            self.stop(i, Control::Stop(StopReason::Reconfigured), Then::End);
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    /// Take over from `old`, the engine of the previous Irun.toml: `map` gives, per task of this plan, the task of
    /// the old plan it continues. Those keep their state (a ready service stays up); the others (new or changed)
    /// start a cycle, with what the watch rules add to it, their up-to-date checks deciding.
    /// `file`: Irun.toml's path relative to the project, told to the cycle's tasks as what changed.
    pub fn reconfigured(&mut self, old: &Engine, map: &[Option<usize>], file: String) -> Vec<Effect> {
        self.now = old.now;
        self.cycles_begun = old.cycles_begun;
        self.last_cycle = old.last_cycle;
        self.loops = old.loops.clone();
        self.failed = old.failed;
        let plan = self.plan.clone();
        let mut direct = Vec::new();
        for &j in &plan.order {
            match map[j] {
                Some(i) => {
                    self.nodes[j].ran = false;
                    self.nodes[j].spawns = old.nodes[i].spawns;
                    self.nodes[j].ready_after = old.nodes[i].ready_after;
                    self.set_life(j, old.nodes[i].life.clone());
                }
                None => direct.push((j, Why::Reconfigured)),
            }
        }
        self.emit(Event::PlanChanged { tasks: plan.planned_tasks(), jobs: self.opts.jobs });
        if !direct.is_empty() {
            self.begin_cycle(direct, Arc::new(BTreeSet::from([file])), false, false, self.now);
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    fn outcome(&self) -> RunOutcome {
        match (self.interrupted, self.failed) {
            (Some(sig), _) => RunOutcome::Interrupted(sig),
            (None, true) => RunOutcome::Failed,
            (None, false) => RunOutcome::Passed,
        }
    }

    fn emit(&mut self, event: Event) {
        self.out.push(Effect::Emit(event));
    }

    fn name(&self, i: usize) -> TaskName {
        self.plan.names[i].clone()
    }

    fn kind(&self, i: usize) -> TaskKind {
        self.plan.kinds[i]
    }

    /// Change a task's life, keeping the counts, and queue what the change may unblock: the task itself if it now
    /// waits, and its waiting dependents.
    fn set_life(&mut self, i: usize, life: Life) {
        let old = std::mem::replace(&mut self.nodes[i].life, life);
        if old == Life::Checking {
            self.checking -= 1;
        }
        if self.nodes[i].life == Life::Checking {
            self.checking += 1;
        }
        let (was, is) = (old.phase(), self.nodes[i].life.phase());
        *self.counts.slot(was) -= 1;
        *self.counts.slot(is) += 1;
        if (was == Phase::Done) != (is == Phase::Done) {
            for idx in 0..self.needs[i].len() {
                let s = self.needs[i][idx];
                if is == Phase::Done {
                    self.needers_left[s] -= 1;
                } else {
                    self.needers_left[s] += 1;
                }
            }
        }
        if self.nodes[i].life == Life::Waiting {
            self.candidates.insert(self.rank[i]);
        }
        for idx in 0..self.plan.dependents[i].len() {
            let d = self.plan.dependents[i][idx];
            if self.nodes[d].life == Life::Waiting {
                self.candidates.insert(self.rank[d]);
            }
        }
    }

    fn release_slot(&mut self, i: usize) {
        if self.nodes[i].life.holds_slot() {
            self.free_slots += 1;
        }
    }

    /// Whether `dep` lets `dependent` start.
    fn satisfies(&self, dep: usize, dependent: usize) -> bool {
        match &self.nodes[dep].life {
            Life::Ready => true,
            Life::Done(o) if self.kind(dep) != TaskKind::Service => o.is_success(),
            // A group only gathers: a service that served and was stopped (or was not needed) counts.
            Life::Done(Outcome::Ok | Outcome::NotNeeded) => self.kind(dependent) == TaskKind::Group,
            _ => false,
        }
    }

    /// Why `dep` can never let `dependent` start, if it cannot.
    fn blocks(&self, dep: usize, dependent: usize) -> Option<Blocked> {
        let name = self.name(dep);
        match &self.nodes[dep].life {
            Life::Done(_) if self.satisfies(dep, dependent) => None,
            Life::Done(o) if o.is_failure() => Some(Blocked::DepFailed(name)),
            Life::Done(o) if o.is_success() => Some(Blocked::ServiceGone(name)),
            Life::Done(_) => Some(Blocked::DepDidNotRun(name)),
            _ => None,
        }
    }

    // -- the run's progress -------------------------------------------------------------------------------------

    /// Everything that follows from the last input: start what can start, stop services nothing needs, end the
    /// cycle, give up on tasks whose deps can never be met.
    fn advance(&mut self) {
        loop {
            self.start_what_can_start();
            if self.cycle.is_some() && self.counts.pending == 0 && self.counts.active == 0 {
                self.end_cycle();
                if let Some(change) = self.queued_change.take() {
                    self.on_change(change);
                }
                continue;
            }
            let stuck = self.counts.pending > 0
                && self.counts.active == 0
                && self.counts.ready == 0
                && self.queue.is_empty()
                && self.checking == 0;
            if stuck {
                self.give_up_on_waiting();
                continue;
            }
            return;
        }
    }

    fn start_what_can_start(&mut self) {
        while !self.aborting && self.interrupted.is_none() {
            if let Some(r) = self.candidates.pop_first() {
                let i = self.by_rank[r];
                if self.nodes[i].life != Life::Waiting || !self.plan.deps[i].iter().all(|&d| self.satisfies(d, i)) {
                    continue;
                }
                match self.kind(i) {
                    TaskKind::Group => {
                        // A group "ran" when any of its deps did: its dependents are then not up to date.
                        self.nodes[i].ran = self.plan.deps[i].iter().any(|&d| self.nodes[d].ran);
                        self.finish(i, Outcome::Ok, Duration::ZERO);
                    }
                    TaskKind::Service if self.unneeded(i) => self.finish(i, Outcome::NotNeeded, Duration::ZERO),
                    TaskKind::Service => self.enqueue(i),
                    TaskKind::Task => {
                        let dep_ran = self.plan.deps[i].iter().copied().find(|&d| self.nodes[d].ran);
                        self.set_life(i, Life::Checking);
                        self.out.push(Effect::CheckFreshness { task: i, dep_ran });
                    }
                }
                continue;
            }
            if self.free_slots > 0 && self.checking == 0 {
                if let Some(r) = self.queue.pop_first() {
                    let i = self.by_rank[r];
                    if self.kind(i) == TaskKind::Service && self.unneeded(i) {
                        // Its needers ended (blocked, say) while it waited for a slot.
                        self.finish(i, Outcome::NotNeeded, Duration::ZERO);
                    } else if !self.plan.deps[i].iter().all(|&d| self.satisfies(d, i)) {
                        // A dep stopped satisfying it while it waited (a service crashed): wait again.
                        self.set_life(i, Life::Waiting);
                    } else {
                        self.spawn(i);
                    }
                    continue;
                }
            }
            break;
        }
    }

    /// A service that need not run: outside watch mode, not in the foreground, and every task that needs it done.
    fn unneeded(&self, i: usize) -> bool {
        self.opts.watch.is_none() && !self.plan.foreground[i] && self.needers_left[i] == 0
    }

    fn enqueue(&mut self, i: usize) {
        self.set_life(i, Life::Queued);
        self.queue.insert(self.rank[i]);
    }

    fn spawn(&mut self, i: usize) {
        self.free_slots -= 1;
        self.set_life(i, Life::Starting);
        let node = &mut self.nodes[i];
        node.ran = true;
        node.ready_after = None;
        let restarting = node.spawns > 0;
        node.spawns += 1;
        let changed = match &self.cycle {
            Some(c) if c.number > 0 => Some(Changed { paths: c.changed.clone(), unknown: c.rescan }),
            _ => None,
        };
        self.out.push(Effect::Spawn { task: i, restarting, changed });
    }

    fn on_freshness(&mut self, i: usize, verdict: Verdict) {
        if self.nodes[i].life != Life::Checking {
            return;
        }
        let dep_ran = self.plan.deps[i].iter().copied().find(|&d| self.nodes[d].ran);
        let verdict = match self.forced_reason(i, dep_ran) {
            Some(why) => Verdict::Run(why),
            None => verdict,
        };
        match verdict {
            Verdict::UpToDate => self.finish(i, Outcome::UpToDate, Duration::ZERO),
            Verdict::Run(why) => {
                if self.opts.explain {
                    self.emit(Event::Notice { task: Some(self.name(i)), message: format!("will run: {why}") });
                }
                self.enqueue(i);
            }
        }
    }

    /// In a watch cycle started by a change, why task `i` runs whatever its up-to-date check says.
    fn forced_reason(&self, i: usize, dep_ran: Option<usize>) -> Option<String> {
        let c = self.cycle.as_ref().filter(|c| c.forced)?;
        Some(match c.why[i].as_ref()? {
            Why::Changed(paths) => format!("watch: {} changed", list(paths)),
            Why::Owed => "watch: it did not get to run in an earlier cycle".to_string(),
            Why::NeededBy(m) => format!("watch: `{}` needs it and its last run did not succeed", self.plan.names[*m]),
            Why::Downstream | Why::Reconfigured => match dep_ran {
                Some(d) => format!("dep `{}` ran", self.plan.names[d]),
                None => "watch: a dep changed".to_string(),
            },
        })
    }

    fn on_started(&mut self, i: usize, pid: u32) {
        if self.nodes[i].life == Life::Starting {
            self.set_life(i, Life::Running);
        }
        self.emit(Event::TaskStarted { task: self.name(i), pid });
    }

    fn on_ready(&mut self, i: usize, after: Duration, probe: Option<String>) {
        match self.nodes[i].life.clone() {
            Life::Running | Life::Starting => {
                self.release_slot(i);
                self.set_life(i, Life::Ready);
            }
            Life::Stopping(s) => {
                self.release_slot(i);
                self.nodes[i].life = Life::Stopping(Stopping { slot: false, ready: true, ..s });
            }
            _ => return,
        }
        self.nodes[i].ready_after = Some(after);
        self.emit(Event::TaskReady { task: self.name(i), after, probe });
    }

    fn on_exited(&mut self, i: usize, end: End, duration: Duration) {
        let life = self.nodes[i].life.clone();
        if !life.alive() {
            return;
        }
        if let Life::Stopping(Stopping { then: Then::Rerun, .. }) = life {
            if self.interrupted.is_none() {
                // Stopped to be run again (watch mode): back to waiting. Reporters see this instance end.
                self.emit(Event::TaskFinished { task: self.name(i), outcome: Outcome::Restarted, duration });
                self.release_slot(i);
                self.set_life(i, Life::Waiting);
                return;
            }
        }
        let outcome = self.outcome_of(i, &life, end);
        self.finish(i, outcome, duration);
    }

    /// How a task that was alive (`life`) ended, given what its runner reports.
    fn outcome_of(&self, i: usize, life: &Life, end: End) -> Outcome {
        let service = self.kind(i) == TaskKind::Service;
        let exit = match end {
            End::NotStarted(f) => return Outcome::Failed(f),
            End::Broken(why) => return Outcome::Failed(Failure::Internal(why)),
            End::TimedOut(after) => return Outcome::TimedOut(after),
            End::ProbeFailed(why) => return Outcome::Failed(Failure::ProbeFailed(why)),
            End::Exited(exit) => Some(exit),
            End::Stopped => None,
        };
        match (life, exit) {
            // A task's exit code counts, even while a stop was pending: irun had not signalled it yet.
            (_, Some(exit)) if !service && exit.success() => Outcome::Ok,
            (_, Some(exit)) if !service => Outcome::Failed(Failure::Exit(exit)),
            (Life::Stopping(s), _) if !service || !s.ready => Outcome::Cancelled,
            // A service that was being stopped may end any way it likes; only one stopped because it was no
            // longer needed has done its job.
            (Life::Stopping(s), _) => match s.control {
                Control::Stop(StopReason::NotNeeded | StopReason::Reconfigured) => Outcome::Ok,
                _ => Outcome::Cancelled,
            },
            (_, None) => Outcome::Cancelled,
            (Life::Ready, Some(exit)) => {
                let needed_by: Vec<TaskName> = self.plan.needers[i]
                    .iter()
                    .filter(|&&n| !matches!(self.nodes[n].life, Life::Done(_)))
                    .map(|&n| self.name(n))
                    .collect();
                let foreground = self.plan.foreground[i] || self.opts.watch.is_some();
                match (foreground, exit.success()) {
                    (true, true) if needed_by.is_empty() => Outcome::Ok,
                    (true, true) => Outcome::Failed(Failure::ExitedWhileNeeded { exit, needed_by }),
                    (true, false) => Outcome::Failed(Failure::Exit(exit)),
                    (false, _) => Outcome::Failed(Failure::ExitedWhileNeeded { exit, needed_by: Vec::new() }),
                }
            }
            (_, Some(exit)) => Outcome::Failed(Failure::ExitedBeforeReady(exit)),
        }
    }

    /// Record the end of task `i` and react to a failure.
    fn finish(&mut self, i: usize, outcome: Outcome, duration: Duration) {
        self.release_slot(i);
        self.set_life(i, Life::Done(outcome.clone()));
        if self.kind(i) != TaskKind::Group {
            let took = match self.kind(i) {
                TaskKind::Service => self.nodes[i].ready_after,
                _ => outcome.is_recorded().then_some(duration),
            };
            self.out.push(Effect::Record { task: i, outcome: outcome.clone(), took });
            if outcome.is_recorded() {
                self.out.push(Effect::SaveState { urgent: false });
            }
        }
        let failure = outcome.is_failure();
        self.emit(Event::TaskFinished { task: self.name(i), outcome, duration });
        if self.opts.watch.is_none() {
            self.stop_unneeded_services(i);
        }
        if failure {
            self.failed = true;
            if self.opts.keep_going {
                self.block_dependents_of(i);
            } else if self.opts.watch.is_some() {
                self.abort_cycle();
            } else {
                self.abort(StopReason::Cancelled);
            }
        }
    }

    /// Services that `i` needed and that nothing else still needs are stopped (outside watch mode).
    fn stop_unneeded_services(&mut self, i: usize) {
        for idx in 0..self.needs[i].len() {
            let s = self.needs[i][idx];
            if self.unneeded(s) {
                self.stop(s, Control::Stop(StopReason::NotNeeded), Then::End);
            }
        }
    }

    /// Ask a live task to stop (or to stop harder), and what to do once it has.
    fn stop(&mut self, i: usize, control: Control, then: Then) {
        let (control, slot, ready, send) = match self.nodes[i].life.clone() {
            Life::Starting | Life::Running => (control, true, false, true),
            Life::Ready => (control, false, true, true),
            Life::Stopping(s) => (s.control.escalate(control), s.slot, s.ready, s.control.weaker_than(control)),
            _ => return,
        };
        self.set_life(i, Life::Stopping(Stopping { control, then, slot, ready }));
        if send {
            self.out.push(Effect::Stop { task: i, control });
        }
    }

    /// Keep-going: tasks waiting on a dep that failed, did not run or is gone are blocked, transitively.
    fn block_dependents_of(&mut self, from: usize) {
        let mut stack = vec![from];
        while let Some(d) = stack.pop() {
            for idx in 0..self.plan.dependents[d].len() {
                let i = self.plan.dependents[d][idx];
                if self.nodes[i].life.phase() != Phase::Pending {
                    continue;
                }
                if let Some(why) = self.blocks(d, i) {
                    if self.nodes[i].life == Life::Queued {
                        self.queue.remove(&self.rank[i]);
                    }
                    self.finish(i, Outcome::Blocked(why), Duration::ZERO);
                    // Not `finish`'s business (no recursion): long chains are walked here.
                    stack.push(i);
                }
            }
        }
    }

    /// Nothing runs, yet tasks wait: their deps can never be met. Block them rather than wait forever.
    fn give_up_on_waiting(&mut self) {
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.nodes[i].life.phase() != Phase::Pending {
                continue;
            }
            let why = self.plan.deps[i].iter().find_map(|&d| self.blocks(d, i)).unwrap_or(Blocked::Unmeetable);
            self.finish(i, Outcome::Blocked(why), Duration::ZERO);
        }
    }

    /// Fail-fast or a signal: nothing new starts, everything alive is stopped.
    fn abort(&mut self, reason: StopReason) {
        self.aborting = true;
        self.queued_change = None;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].life.phase() {
                Phase::Pending => self.cancel(i),
                Phase::Active | Phase::Ready => self.stop(i, Control::Stop(reason), Then::End),
                Phase::Done => {}
            }
        }
    }

    fn cancel(&mut self, i: usize) {
        if self.nodes[i].life == Life::Queued {
            self.queue.remove(&self.rank[i]);
        }
        self.finish(i, Outcome::Cancelled, Duration::ZERO);
    }

    /// Watch mode's fail-fast: the rest of this cycle is cancelled, but services stay up for the next one.
    fn abort_cycle(&mut self) {
        self.aborting = true;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].life.clone() {
                Life::Waiting | Life::Checking | Life::Queued => self.cancel(i),
                Life::Starting | Life::Running if self.kind(i) != TaskKind::Service => {
                    self.stop(i, Control::Stop(StopReason::Cancelled), Then::End);
                }
                // A service being restarted is not started again by this cycle.
                Life::Stopping(s) if s.then == Then::Rerun => {
                    self.nodes[i].life = Life::Stopping(Stopping { then: Then::End, ..s });
                }
                _ => {}
            }
        }
    }

    fn on_signal(&mut self, sig: Signal) {
        self.signals += 1;
        let running = self.plan.order.iter().filter(|&&i| self.nodes[i].life.alive()).count();
        self.emit(Event::Interrupted { signal: sig, count: self.signals, running });
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            self.abort(StopReason::Interrupted);
        } else {
            for idx in 0..self.plan.order.len() {
                let i = self.plan.order[idx];
                if self.nodes[i].life.alive() {
                    self.stop(i, Control::Kill, Then::End);
                }
            }
        }
    }

    // -- watch mode ---------------------------------------------------------------------------------------------

    fn standing(&self, i: usize) -> Standing {
        match &self.nodes[i].life {
            Life::Ready => Standing::Satisfies,
            Life::Done(o) if o.is_success() && self.kind(i) != TaskKind::Service => Standing::Satisfies,
            Life::Done(Outcome::Cancelled | Outcome::Blocked(_)) => Standing::Cancelled,
            Life::Done(_) => Standing::Unsatisfying,
            life if life.phase() == Phase::Active => Standing::Alive,
            _ => Standing::Pending,
        }
    }

    /// A batch of changes: start a cycle for the tasks it affects, or fold it into the running one.
    fn on_change(&mut self, change: Change) {
        if self.opts.watch.is_none() || self.interrupted.is_some() {
            return;
        }
        for message in &change.notices {
            self.emit(Event::Notice { task: None, message: message.clone() });
        }
        let plan = self.plan.clone();
        // The paths that matter: those some selected task has among its sources.
        let relevant: BTreeSet<String> = change
            .paths
            .iter()
            .filter(|p| plan.order.iter().any(|&i| self.sources[i].is_match(p)))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let direct: Vec<(usize, Why)> = plan
            .order
            .iter()
            .filter(|&&i| !self.sources[i].is_empty())
            .filter_map(|&i| {
                let mine: Vec<String> =
                    relevant.iter().filter(|p| self.sources[i].is_match(p.as_str())).cloned().collect();
                (change.rescan || !mine.is_empty()).then_some((i, Why::Changed(mine)))
            })
            .collect();
        if direct.is_empty() {
            return;
        }
        if self.cycle.is_some() && self.opts.watch == Some(OnBusy::Queue) {
            let what = if change.rescan { "events were lost".to_string() } else { list(&relevant) };
            let message = format!("change during the run: {what}; one more cycle will follow this one");
            self.emit(Event::Notice { task: None, message });
            let queued = self.queued_change.get_or_insert_with(Change::default);
            queued.paths.extend(relevant.iter().map(PathBuf::from));
            queued.rescan |= change.rescan;
            queued.first = queued.first.or(change.first);
            queued.last = change.last.or(queued.last);
            return;
        }
        self.watch_for_loops(&change, &relevant, &direct);
        let since = change.first.unwrap_or(self.now);
        self.begin_cycle(direct, Arc::new(relevant), change.rescan, !change.rescan, since);
    }

    /// Say once when cycles keep starting themselves.
    fn watch_for_loops(&mut self, change: &Change, relevant: &BTreeSet<String>, direct: &[(usize, Why)]) {
        let (Some(first), Some(last)) = (change.first, change.last) else { return };
        let self_made = !change.rescan
            && match (&self.cycle, self.last_cycle) {
                (Some(c), _) => cycle::during(first, last, c.began, None),
                (None, Some((start, end))) => cycle::during(first, last, start, Some(end)),
                (None, None) => false,
            };
        if self.loops.observe(self_made, relevant) {
            let tasks: Vec<String> = direct.iter().map(|(i, _)| format!("`{}`", self.plan.names[*i])).collect();
            let message = format!(
                "the last {} cycles were each started by changes to {} made while the cycle before ran: {} seems to \
                 write {} own sources; list them in `outputs` or narrow `sources` in Irun.toml",
                cycle::LOOP_CYCLES,
                list(relevant),
                tasks.join(", "),
                if tasks.len() == 1 { "its" } else { "their" }
            );
            self.emit(Event::Notice { task: None, message });
        }
    }

    /// Start a cycle for `direct` and what the watch rules add to it. Members that are running are stopped first
    /// (to run again); members that are done wait again.
    fn begin_cycle(
        &mut self,
        direct: Vec<(usize, Why)>,
        changed: Arc<BTreeSet<String>>,
        rescan: bool,
        forced: bool,
        since: Instant,
    ) {
        let plan = self.plan.clone();
        let first = self.cycles_begun == 0;
        let why = if first {
            let mut why = vec![None; plan.selected.len()];
            for (i, w) in direct {
                why[i] = Some(w);
            }
            why
        } else {
            cycle::members(&plan, |i| self.standing(i), direct)
        };
        let mut tasks = Vec::new();
        for idx in 0..plan.order.len() {
            let i = plan.order[idx];
            if why[i].is_none() {
                continue;
            }
            tasks.push(self.name(i));
            self.nodes[i].ran = false;
            match self.nodes[i].life.clone() {
                Life::Done(_) => self.set_life(i, Life::Waiting),
                Life::Starting | Life::Running | Life::Ready => {
                    self.stop(i, Control::Stop(StopReason::Restart), Then::Rerun);
                }
                Life::Stopping(s) => self.nodes[i].life = Life::Stopping(Stopping { then: Then::Rerun, ..s }),
                Life::Queued => {
                    self.queue.remove(&self.rank[i]);
                    self.set_life(i, Life::Waiting);
                }
                Life::Waiting | Life::Checking => {}
            }
        }
        let number = self.cycles_begun;
        self.cycles_begun += 1;
        let restarted = self.cycle.is_some();
        let (changed, rescan, since, began, why) = match self.cycle.take() {
            // A change during a cycle (`--on-busy restart`): the new cycle covers both.
            Some(previous) => {
                let mut all: BTreeSet<String> = (*previous.changed).clone();
                all.extend(changed.iter().cloned());
                let mut merged = previous.why;
                for (i, w) in why.into_iter().enumerate() {
                    if w.is_some() {
                        merged[i] = w;
                    }
                }
                (Arc::new(all), previous.rescan || rescan, previous.since, previous.began, merged)
            }
            None => (changed, rescan, since, self.now, why),
        };
        let all_tasks: Vec<TaskName> = if restarted {
            plan.order.iter().filter(|&&i| why[i].is_some()).map(|&i| self.name(i)).collect()
        } else {
            tasks
        };
        self.emit(Event::CycleStarted {
            cycle: number,
            changed: changed.iter().cloned().collect(),
            rescan,
            tasks: all_tasks,
            restarted,
        });
        self.cycle = Some(Cycle { number, since, began, changed, rescan, forced: forced && !rescan, why });
        self.aborting = false;
    }

    fn end_cycle(&mut self) {
        let Some(c) = self.cycle.take() else { return };
        let failed = (0..c.why.len())
            .any(|i| c.why[i].is_some() && self.nodes[i].life.outcome().is_some_and(Outcome::is_failure));
        let outcome = match self.interrupted {
            Some(sig) => RunOutcome::Interrupted(sig),
            None if failed => RunOutcome::Failed,
            None => RunOutcome::Passed,
        };
        self.out.push(Effect::SaveState { urgent: true });
        self.emit(Event::CycleFinished {
            cycle: c.number,
            outcome,
            elapsed: self.now.saturating_duration_since(c.since),
        });
        self.last_cycle = Some((c.began, self.now));
    }
}

/// Up to five items, then how many more.
fn list<'a>(items: impl IntoIterator<Item = &'a String, IntoIter: ExactSizeIterator>) -> String {
    const SHOWN: usize = 5;
    let items = items.into_iter();
    let n = items.len();
    let mut text = items.take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if n > SHOWN {
        text.push_str(&format!(" (+{} more)", n - SHOWN));
    }
    text
}
