//! The run's rules, as a pure state machine: inputs in (a task started, became ready, ended; a signal; changed
//! paths; a freshness verdict; the time), effects out (spawn, stop, check freshness, record, save, emit an event).
//! No tokio, no processes, no files, no clock reads: the driver ([`crate::driver`]) does all of that.
//!
//! The rules, each stated once:
//! - A task starts when every dep is satisfied: done well (ok or up to date) or, for a service, ready. A group
//!   finishes as soon as its deps are; for a group, a service that served and stopped still counts.
//! - A task (not a service or group) is checked for freshness once its deps are settled: done well, and the
//!   services it needs able to start (not necessarily started). Up to date, it is done; otherwise it waits for
//!   its services to be ready, then for a slot.
//! - Outside watch mode a service starts only when it is wanted: it is a target (in the foreground), or a task
//!   that needs it will run (it was decided to run, or a task upstream of it was). One whose needers are all up
//!   to date is never started.
//! - A service started again (its process exited and `restart` brought it back) is a new instance: the tasks that
//!   need it and ran against the old one run again before the tasks after them (in watch mode, in a new cycle).
//! - At most `jobs` tasks hold a job slot; a service gives its slot back once ready. Free slots go by
//!   [`priority`].
//! - Outside watch mode a service is stopped as soon as every task that needs it is done, unless it runs in the
//!   foreground; one whose needers are all done before it starts is not started.
//! - The first failure cancels what has not started and stops what runs (fail-fast); with keep-going, only what
//!   depends on it is blocked. In watch mode a failure ends the cycle, and services stay up.
//! - At most one `interactive` task runs at a time (it has the terminal); others run beside it. One that ends by
//!   SIGINT got the terminal's Ctrl-C: it counts as Ctrl-C to irun.
//! - The first signal stops everything gracefully; every further one kills at once. Controls only escalate.
//! - Watch cycles follow [`cycle`].
//!
//! [`io`] holds what goes in and comes out; this file how tasks start; `ending.rs` how they end (outcomes, failures,
//! signals, stop requests); [`node`] a task's life; [`cycle`] watch mode; [`priority`] the order of the queue;
//! `fanin.rs` whether all of a task's deps pass a test, at a cost that does not grow with the square of their number.

pub(crate) mod control;
pub(crate) mod cycle;
mod demand;
mod ending;
mod fanin;
pub(crate) mod io;
pub(crate) mod node;
pub(crate) mod priority;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub(crate) use control::Control;
use cycle::Why;
use demand::gathered_services;
use fanin::Test;
pub(crate) use io::{Change, Changed, Effect, End, Happened, Input, OnBusy, Options};
pub(crate) use node::{Life, Node, Phase, Stopping, Then};

use crate::config::{Globs, PerTask, TaskId, TaskKind};
use crate::events::{Event, RunOutcome, TaskName};
use crate::outcome::{Blocked, Outcome, RunReason, Verdict};
use crate::plan::Plan;

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
    why: PerTask<Option<Why>>,
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

pub(crate) struct Engine {
    plan: Arc<Plan>,
    /// Per task: its `sources` globs (empty when it has none).
    sources: PerTask<Globs>,
    opts: Options,
    nodes: PerTask<Node>,
    /// Scheduling rank per task (lower first), and the task at each rank.
    rank: PerTask<usize>,
    by_rank: Vec<TaskId>,
    /// Ranks of waiting tasks that may have become startable: only these are looked at, so a change of state
    /// costs the number of its dependents, not the size of the graph.
    candidates: BTreeSet<usize>,
    /// Ranks of tasks decided to run, waiting for a job slot.
    queue: BTreeSet<usize>,
    /// Tasks whose freshness verdict is awaited. Slots are handed out only once every verdict is in (the driver
    /// answers at once), so a task checked a moment later cannot lose its slot to one of lower priority.
    checking: usize,
    free_slots: usize,
    /// Interactive tasks alive (spawned, not ended): at most one.
    interactive_alive: usize,
    counts: Counts,
    /// Per service: how many of the tasks that need it are not done.
    needers_left: PerTask<usize>,
    /// Per task: the services it needs (through groups).
    needs: PerTask<Vec<TaskId>>,
    /// Per group: the services it gathers (through nested groups).
    gathered: PerTask<Vec<TaskId>>,
    /// How far each task's deps are known to pass its tests ([`fanin`]).
    cursors: fanin::Cursors,
    /// Services whose process exited and that are being started again (`restart`): not ready until they say so.
    restarting: BTreeSet<TaskId>,
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
    /// The change whose tasks' inputs are being checked ([`Effect::CheckInputs`]). One slot is enough: the driver
    /// answers before any other input, and one input asks at most once — a change asks as it arrives, or (queued
    /// during a cycle) as the cycle ends, and a cycle cannot end in the step a change arrives in, since every step
    /// ends by ending a cycle that has nothing left to do ([`Engine::advance`]).
    checked_change: Option<Change>,
    loops: cycle::Loops,
    out: Vec<Effect>,
    /// How many times a dep was tested for a dependent: what a finished dep costs, counted without a clock.
    #[cfg(test)]
    dep_tests: std::cell::Cell<u64>,
}

/// How many up-to-date checks are asked for at a time. Each check's answer is followed by what it decides (a
/// task up to date is finished and recorded), and the driver keeps what a task looked like from its check until
/// it is recorded: asked all at once, 10,000 ready tasks would have 10,000 checks queued, then 10,000 answers and
/// their snapshots held before the first record. Nothing starts while a check is out, so the order tasks start in
/// is the same either way.
const CHECKS_AT_ONCE: usize = 64;

impl Engine {
    /// An engine for `plan`. `weights`: per task, how long it took last time (for scheduling priority).
    pub(crate) fn new(
        plan: Arc<Plan>,
        sources: PerTask<Globs>,
        weights: &PerTask<Option<Duration>>,
        opts: Options,
        now: Instant,
    ) -> Engine {
        let n = plan.len();
        let rank = priority::ranks(&plan, weights);
        let mut by_rank = vec![TaskId::new(0); plan.order.len()];
        for &i in &plan.order {
            by_rank[rank[i]] = i;
        }
        let mut needs = PerTask::filled(n, Vec::new());
        let mut needers_left = PerTask::filled(n, 0);
        for &s in &plan.order {
            for &d in &plan[s].needers {
                needs[d].push(s);
            }
            needers_left[s] = plan[s].needers.len();
        }
        let gathered = gathered_services(&plan);
        Engine {
            gathered,
            cursors: fanin::Cursors::new(n),
            restarting: BTreeSet::new(),
            sources,
            nodes: PerTask::filled(n, Node::new()),
            candidates: plan.order.iter().map(|&i| rank[i]).collect(),
            queue: BTreeSet::new(),
            checking: 0,
            rank,
            by_rank,
            free_slots: opts.jobs.max(1),
            interactive_alive: 0,
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
            checked_change: None,
            loops: cycle::Loops::default(),
            out: Vec::new(),
            #[cfg(test)]
            dep_tests: std::cell::Cell::new(0),
            opts,
            plan,
        }
    }

    pub(crate) fn plan(&self) -> Arc<Plan> {
        self.plan.clone()
    }

    pub(crate) fn options(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn life(&self, task: TaskId) -> &Life {
        &self.nodes[task].life
    }

    /// Announce the run and start what can start.
    pub(crate) fn start(&mut self, notices: Vec<Event>) -> Vec<Effect> {
        let watch = self.opts.watch.is_some();
        self.emit(Event::RunStarted { tasks: self.plan.planned_tasks(), jobs: self.opts.jobs, watch });
        for notice in notices {
            self.emit(notice);
        }
        if watch {
            let all = self.plan.order.iter().map(|&i| (i, Why::Downstream)).collect();
            self.begin_cycle(all, Arc::default(), false, false, self.now);
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    pub(crate) fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Tick(now) => self.now = now,
            Input::Task { task, what: Happened::Started { pid, port } } => self.on_started(task, pid, port),
            Input::Task { task, what: Happened::Ready { after, probe, reused } } => {
                self.on_ready(task, after, probe, reused)
            }
            Input::Task { task, what: Happened::Exited { end, duration } } => self.on_exited(task, end, duration),
            Input::Signal(sig) => self.on_signal(sig),
            Input::Changed(change) => self.on_change(change),
            Input::Freshness { task, verdict } => self.on_freshness(task, verdict),
            Input::InputsChecked { changed } => self.on_inputs_checked(&changed),
        }
        self.advance();
        std::mem::take(&mut self.out)
    }

    /// The run is over: every task is done (and, in watch mode, irun was interrupted). How it went.
    pub(crate) fn finished(&self) -> Option<RunOutcome> {
        let over =
            self.counts.done == self.plan.order.len() && (self.opts.watch.is_none() || self.interrupted.is_some());
        over.then(|| self.outcome())
    }

    /// Watch mode: no cycle is running and nothing is starting or stopping (services may be up).
    pub(crate) fn quiet(&self) -> bool {
        self.cycle.is_none() && self.counts.pending == 0 && self.counts.active == 0
    }

    pub(crate) fn interrupted(&self) -> bool {
        self.interrupted.is_some()
    }

    fn outcome(&self) -> RunOutcome {
        match (self.interrupted, self.failed) {
            (Some(sig), _) => RunOutcome::Interrupted(sig),
            (None, true) => RunOutcome::Failed,
            (None, false) => RunOutcome::Passed,
        }
    }

    fn emit(&mut self, event: Event) {
        self.out.push(Effect::Emit(Box::new(event)));
    }

    fn name(&self, i: TaskId) -> TaskName {
        self.plan[i].name.clone()
    }

    fn kind(&self, i: TaskId) -> TaskKind {
        self.plan[i].kind
    }

    /// Change a task's life, keeping the counts, and queue what the change may unblock: the task itself if it now
    /// waits, and its waiting dependents.
    fn set_life(&mut self, i: TaskId, life: Life) {
        let old = std::mem::replace(&mut self.nodes[i].life, life);
        if old == Life::Checking {
            self.checking -= 1;
        }
        if self.nodes[i].life == Life::Checking {
            self.checking += 1;
        }
        if self.plan[i].interactive && old.alive() != self.nodes[i].life.alive() {
            if old.alive() { self.interactive_alive -= 1 } else { self.interactive_alive += 1 }
        }
        let (was, is) = (old.phase(), self.nodes[i].life.phase());
        *self.counts.slot(was) -= 1;
        *self.counts.slot(is) += 1;
        if is == Phase::Pending && was != Phase::Pending {
            // Waiting again (to run again): what was decided for its last run no longer holds.
            let node = &mut self.nodes[i];
            (node.decided, node.will_run, node.forced) = (false, false, None);
        }
        if (was == Phase::Done) != (is == Phase::Done) {
            for idx in 0..self.needs[i].len() {
                let s = self.needs[i][idx];
                if is == Phase::Done {
                    self.needers_left[s] -= 1;
                    // The last task that needed it is done: a service that waits is not started at all.
                    if self.needers_left[s] == 0 {
                        self.reconsider(s);
                    }
                } else {
                    self.needers_left[s] += 1;
                }
            }
        }
        self.reconsider(i);
        for idx in 0..self.plan[i].dependents.len() {
            self.reconsider(self.plan[i].dependents[idx]);
        }
    }

    /// A waiting task that may have become startable is looked at again.
    fn reconsider(&mut self, i: TaskId) {
        if self.nodes[i].life == Life::Waiting {
            self.candidates.insert(self.rank[i]);
        }
    }

    fn release_slot(&mut self, i: TaskId) {
        if self.nodes[i].life.holds_slot() {
            self.free_slots += 1;
        }
    }

    /// Whether `dep` lets `dependent` start.
    fn satisfies(&self, dep: TaskId, dependent: TaskId) -> bool {
        #[cfg(test)]
        self.dep_tests.set(self.dep_tests.get() + 1);
        let for_group = self.kind(dependent) == TaskKind::Group;
        match (&self.nodes[dep].life, self.kind(dep)) {
            (Life::Ready, _) => !self.restarting.contains(&dep),
            // A group that finished lends its dependents the services it gathers: they must still be up.
            (Life::Done(o), TaskKind::Group) => {
                o.is_success()
                    && (for_group
                        || self.gathered[dep]
                            .iter()
                            .all(|&s| self.nodes[s].life == Life::Ready && !self.restarting.contains(&s)))
            }
            (Life::Done(o), TaskKind::Task) => o.is_success(),
            // A group only gathers: a service that served and was stopped (or was not needed) counts.
            (Life::Done(Outcome::Ok | Outcome::NotNeeded), TaskKind::Service) => for_group,
            _ => false,
        }
    }

    /// Why `dep` can never let `dependent` start, if it cannot.
    fn blocks(&self, dep: TaskId, dependent: TaskId) -> Option<Blocked> {
        let name = self.name(dep);
        match &self.nodes[dep].life {
            Life::Done(_) if self.satisfies(dep, dependent) => None,
            // A finished group whose gathered service is gone: that service is the reason.
            Life::Done(Outcome::Ok) if self.kind(dep) == TaskKind::Group => self.gathered[dep]
                .iter()
                .find(|&&s| matches!(self.nodes[s].life, Life::Done(_)))
                .and_then(|&s| self.blocks(s, dependent)),
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
            // (A ready service cannot unblock anything: its readiness already counted. One being restarted can.)
            let stuck = self.counts.pending > 0
                && self.counts.active == 0
                && self.queue.is_empty()
                && self.checking == 0
                && !self.restarting.iter().any(|&i| self.nodes[i].life.alive());
            if stuck {
                self.give_up_on_waiting();
                continue;
            }
            return;
        }
    }

    fn start_what_can_start(&mut self) {
        while !self.aborting && self.interrupted.is_none() {
            // At most CHECKS_AT_ONCE checks asked at a time: the rest are considered as answers come.
            if self.checking < CHECKS_AT_ONCE
                && let Some(r) = self.candidates.pop_first()
            {
                let i = self.by_rank[r];
                if self.nodes[i].life == Life::Waiting {
                    self.consider(i);
                }
                continue;
            }
            if self.free_slots > 0
                && self.checking == 0
                && let Some(r) = self.next_in_queue()
            {
                let i = self.by_rank[r];
                if self.kind(i) == TaskKind::Service && self.unneeded(i) {
                    // Its needers ended (blocked, say) while it waited for a slot.
                    self.finish(i, Outcome::NotNeeded, Duration::ZERO);
                } else if !self.all_deps(i, Test::Satisfies) {
                    // A dep stopped satisfying it while it waited (a service crashed): wait again.
                    self.set_life(i, Life::Waiting);
                } else {
                    self.spawn(i);
                }
                continue;
            }
            break;
        }
    }

    /// The first task in the queue that may start now: an interactive one waits while another has the terminal.
    fn next_in_queue(&mut self) -> Option<usize> {
        if self.interactive_alive == 0 {
            return self.queue.pop_first();
        }
        let r = *self.queue.iter().find(|&&r| !self.plan[self.by_rank[r]].interactive)?;
        self.queue.remove(&r);
        Some(r)
    }

    /// A service that need not run: outside watch mode, not in the foreground, and every task that needs it done.
    fn unneeded(&self, i: TaskId) -> bool {
        self.opts.watch.is_none() && !self.plan[i].foreground && self.needers_left[i] == 0
    }

    fn enqueue(&mut self, i: TaskId) {
        self.set_life(i, Life::Queued);
        self.queue.insert(self.rank[i]);
    }

    fn spawn(&mut self, i: TaskId) {
        self.free_slots -= 1;
        self.set_life(i, Life::Starting);
        let service = self.kind(i) == TaskKind::Service;
        let node = &mut self.nodes[i];
        // A service starting does not make its dependents stale: its fingerprint decides (see fresh.rs).
        node.ran = !service;
        node.ready_after = None;
        let restarting = node.spawns > 0;
        node.spawns += 1;
        node.restarts = 0;
        node.earlier = Duration::ZERO;
        let changed = self.cycle_changes();
        self.nodes[i].changed = changed.clone();
        self.out.push(Effect::Spawn { task: i, restarting, changed, after_exit: None });
    }

    /// What a task started in a watch cycle (after the first) is told changed.
    fn cycle_changes(&self) -> Option<Changed> {
        match &self.cycle {
            Some(c) if c.number > 0 => Some(Changed { paths: c.changed.clone(), unknown: c.rescan }),
            _ => None,
        }
    }

    fn on_freshness(&mut self, i: TaskId, verdict: Verdict) {
        if self.nodes[i].life != Life::Checking {
            return;
        }
        let dep_ran = self.plan[i].deps.iter().copied().find(|&d| self.nodes[d].ran);
        let forced = self.nodes[i].forced.take().map(|r| *r).or_else(|| self.forced_reason(i, dep_ran));
        let verdict = match (forced, verdict, dep_ran) {
            (Some(why), _, _) => Verdict::Run(why),
            // A task after one that ran runs, and so does one after a service whose dep ran (it has another
            // fingerprint). The up-to-date checks say so too; the services wanted for it rely on it.
            (None, Verdict::UpToDate, Some(d)) => Verdict::Run(RunReason::DepRan(self.name(d))),
            (None, Verdict::UpToDate, None) if self.nodes[i].will_run => {
                match self.plan[i].deps.iter().copied().find(|&d| self.nodes[d].will_run) {
                    Some(d) if self.kind(d) == TaskKind::Service => {
                        Verdict::Run(RunReason::ServiceChanged(self.name(d)))
                    }
                    Some(d) => Verdict::Run(RunReason::DepRan(self.name(d))),
                    None => Verdict::UpToDate,
                }
            }
            (None, verdict, _) => verdict,
        };
        match verdict {
            Verdict::UpToDate => self.finish(i, Outcome::UpToDate, Duration::ZERO),
            Verdict::Cached(hit) => {
                // Its outputs may differ from before: what comes after it sees it as a task that ran.
                self.nodes[i].ran = true;
                self.finish(i, Outcome::Cached(Box::new(hit)), Duration::ZERO)
            }
            Verdict::Run(why) => {
                if self.opts.explain {
                    self.emit(Event::TaskWillRun { task: self.name(i), reason: why });
                }
                self.nodes[i].decided = true;
                self.doom(i);
                if self.all_deps(i, Test::Satisfies) {
                    self.enqueue(i);
                } else {
                    // Its services are not ready yet (they are wanted now).
                    self.set_life(i, Life::Waiting);
                }
            }
        }
    }

    fn on_started(&mut self, i: TaskId, pid: u32, port: Option<u16>) {
        if self.nodes[i].life == Life::Starting {
            self.set_life(i, Life::Running);
        }
        self.emit(Event::TaskStarted { task: self.name(i), pid, port, command: None });
    }

    fn on_ready(&mut self, i: TaskId, after: Duration, probe: Option<crate::config::Check>, reused: bool) {
        if let (true, Some(probe)) = (reused, &probe) {
            self.emit(Event::ServiceReused { task: self.name(i), probe: probe.clone() });
        }
        let restarted = self.restarting.remove(&i);
        match self.nodes[i].life.clone() {
            // Ready again after a restart: the tasks that waited for it may start.
            Life::Ready if restarted => {
                self.ran_against_old_instance(i);
                let plan = self.plan.clone();
                for &n in plan[i].needers.iter().chain(&plan[i].dependents) {
                    self.reconsider(n);
                }
            }
            Life::Running | Life::Starting => {
                self.release_slot(i);
                self.set_life(i, Life::Ready);
                // Tasks that need it through a group that is already done wait for it too.
                let plan = self.plan.clone();
                self.reconsider_all(plan[i].needers.clone());
            }
            Life::Stopping(s) => {
                self.release_slot(i);
                self.nodes[i].life = Life::Stopping(Stopping { slot: false, ready: true, ..s });
            }
            _ => return,
        }
        self.nodes[i].ready_after = Some(after);
        self.emit(Event::TaskReady { task: self.name(i), after, probe, reused });
    }
}
