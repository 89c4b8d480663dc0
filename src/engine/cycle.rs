//! Watch mode's rules, in one place: which tasks a change puts into a cycle, and when cycles feed themselves.
//!
//! A change affects the tasks whose `sources` match a changed path or could match in a removed folder, and whose
//! inputs really changed by content (a touch changes nothing; lost events have every task with sources checked),
//! and every task that depends on them, transitively. A task that did not get to run (cancelled by an earlier cycle's failure, or blocked by a failed
//! dep) joins too, once every one of its deps is fine or runs in the cycle. A dep of an affected task is pulled in only when it cannot let it start (it failed, was
//! cancelled, or is a service that stopped): a dep that is up to date, or a service that is ready and whose inputs
//! did not change, is never pulled in. A service that is running is restarted when its own inputs change or any
//! of its deps runs again in the cycle, and its dependents then run again against the new instance.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Change, Control, Cycle, Effect, Engine, Life, OnBusy, Phase, Stopping, Then};
use crate::config::{PerTask, TaskId, TaskKind};
use crate::events::{Event, RunOutcome, TaskName};
use crate::outcome::{Outcome, RunReason, StopReason};
use crate::plan::Plan;

/// How a task stands when a change arrives, as far as the rule above cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Done well (ok, up to date), or a service that is ready: lets its dependents start.
    Satisfies,
    /// Failed, or a service that is no longer running: its dependents cannot start until it runs again.
    Unsatisfying,
    /// Cancelled before it could finish.
    Cancelled,
    /// Running, starting or stopping.
    Alive,
    /// Not started yet in the current cycle.
    Pending,
}

/// Why a task is in a cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Why {
    /// Its sources match these changed paths.
    Changed(Vec<String>),
    /// A task it depends on is in the cycle.
    Downstream,
    /// It did not get to run in an earlier cycle, and its deps are now fine or run in this one.
    Owed,
    /// A task of the cycle needs it, and its last run did not let it start.
    NeededBy(TaskId),
    /// Irun.toml was edited: the task is new or its definition changed.
    Reconfigured,
    /// It ran against this service, which was started again.
    ServiceRestarted(TaskId),
}

/// Which tasks the cycle runs: `Some(why)` for each member. `direct` are the tasks the change names (with why).
pub(crate) fn members(
    plan: &Plan,
    standing: impl Fn(TaskId) -> Standing,
    direct: Vec<(TaskId, Why)>,
) -> PerTask<Option<Why>> {
    let mut why: PerTask<Option<Why>> = PerTask::filled(plan.len(), None);
    let mut downstream: Vec<TaskId> = Vec::new();
    for (i, w) in direct {
        if plan[i].selected && why[i].is_none() {
            why[i] = Some(w);
            downstream.push(i);
        }
    }
    loop {
        // Everything downstream of a member.
        while let Some(i) = downstream.pop() {
            for &d in &plan[i].dependents {
                if why[d].is_none() {
                    why[d] = Some(Why::Downstream);
                    downstream.push(d);
                }
            }
        }
        // Deps that cannot let a member start, transitively.
        let mut upstream: Vec<TaskId> = why.ids().filter(|&i| why[i].is_some()).collect();
        while let Some(m) = upstream.pop() {
            for &d in &plan[m].deps {
                if why[d].is_none() && matches!(standing(d), Standing::Unsatisfying | Standing::Cancelled) {
                    why[d] = Some(Why::NeededBy(m));
                    upstream.push(d);
                }
            }
        }
        // Tasks that did not get to run owe their run once every dep is fine or runs in the cycle (plan order:
        // deps first).
        for &i in &plan.order {
            let ready = |d: TaskId| {
                why[d].is_some() || matches!(standing(d), Standing::Satisfies | Standing::Alive | Standing::Pending)
            };
            if why[i].is_none() && standing(i) == Standing::Cancelled && plan[i].deps.iter().all(|&d| ready(d)) {
                why[i] = Some(Why::Owed);
                downstream.push(i);
            }
        }
        // A running service whose dep runs again is restarted, and its dependents with it.
        for &s in &plan.order {
            if why[s].is_none()
                && plan[s].kind == TaskKind::Service
                && matches!(standing(s), Standing::Satisfies | Standing::Alive)
                && plan[s].deps.iter().any(|&d| why[d].is_some())
            {
                why[s] = Some(Why::Downstream);
                downstream.push(s);
            }
        }
        if downstream.is_empty() {
            return why;
        }
    }
}

/// Consecutive cycles started only by changes made while the previous cycle ran before irun says the cycle seems
/// to feed itself.
pub(crate) const LOOP_CYCLES: u32 = 3;

/// How late after a cycle's end an event may be seen and still count as written during it: the watcher thread
/// notes an event a moment after the write.
pub(crate) const LOOP_SLACK: Duration = Duration::from_millis(250);

/// Notices cycles that keep starting themselves: each started by changes to the same paths, all made while the
/// cycle before it ran (a task writing its own sources).
#[derive(Debug, Default, Clone)]
pub(crate) struct Loops {
    streak: u32,
    paths: BTreeSet<String>,
    said: Vec<BTreeSet<String>>,
}

impl Loops {
    /// A change to `paths` starts a cycle; `self_made` when every event of it came while a cycle ran. True when
    /// this makes the streak long enough to say so (once per set of paths).
    pub(crate) fn observe(&mut self, self_made: bool, paths: &BTreeSet<String>) -> bool {
        if !self_made || paths.is_empty() {
            self.streak = 0;
            return false;
        }
        if self.streak > 0 && &self.paths == paths {
            self.streak += 1;
        } else {
            self.streak = 1;
            self.paths = paths.clone();
        }
        if self.streak >= LOOP_CYCLES && !self.said.contains(paths) {
            self.said.push(paths.clone());
            return true;
        }
        false
    }
}

/// Whether a change seen from `first` to `last` was made while a cycle ran from `start` to `end` (`None`: it is
/// still running).
pub(crate) fn during(first: Instant, last: Instant, start: Instant, end: Option<Instant>) -> bool {
    first >= start && end.is_none_or(|end| last <= end + LOOP_SLACK)
}

// -- the engine in watch mode ----------------------------------------------------------------------------------

impl Engine {
    pub(super) fn standing(&self, i: TaskId) -> Standing {
        match &self.nodes[i].life {
            Life::Ready => Standing::Satisfies,
            // A group is only as good as the services it gathers.
            Life::Done(o)
                if self.kind(i) == TaskKind::Group
                    && o.is_success()
                    && self.gathered[i].iter().any(|&s| matches!(self.nodes[s].life, Life::Done(_))) =>
            {
                Standing::Unsatisfying
            }
            Life::Done(o) if o.is_success() && self.kind(i) != TaskKind::Service => Standing::Satisfies,
            Life::Done(Outcome::Cancelled | Outcome::Blocked(_)) => Standing::Cancelled,
            Life::Done(_) => Standing::Unsatisfying,
            life if life.phase() == Phase::Active => Standing::Alive,
            _ => Standing::Pending,
        }
    }

    /// A batch of changes: the tasks it may affect have their inputs checked by content first
    /// ([`Effect::CheckInputs`]); [`Engine::on_inputs_checked`] goes on with those whose inputs did change.
    pub(super) fn on_change(&mut self, change: Change) {
        if self.opts.watch.is_none() || self.interrupted.is_some() {
            return;
        }
        for problem in &change.notices {
            self.emit(Event::WatchTrouble { problem: problem.clone() });
        }
        let tasks: Vec<TaskId> = self
            .plan
            .order
            .iter()
            .copied()
            .filter(|&i| change.rescan || !self.touched(i, &change).is_empty())
            .collect();
        let tasks: Vec<TaskId> = tasks.into_iter().filter(|&i| !self.sources[i].is_empty()).collect();
        if tasks.is_empty() {
            return;
        }
        debug_assert!(self.checked_change.is_none(), "a second input check before the first was answered");
        self.out.push(Effect::CheckInputs { tasks });
        self.checked_change = Some(change);
    }

    /// What of `change` task `i`'s sources take in: the changed paths they match, and the removed folders they
    /// could have matched something in.
    fn touched(&self, i: TaskId, change: &Change) -> BTreeSet<String> {
        let sources = &self.sources[i];
        let paths = change.paths.iter().filter(|p| sources.is_match(p));
        let dirs = change.removed_dirs.iter().filter(|d| sources.may_match_under(d));
        paths.chain(dirs).map(|p| p.to_string_lossy().into_owned()).collect()
    }

    /// The inputs of the tasks a change may affect were checked: `changed` are those whose content did change (a
    /// touch, or a folder removed and made again the same, changes nothing). A cycle starts for them, or they join
    /// the running one.
    pub(super) fn on_inputs_checked(&mut self, changed: &[TaskId]) {
        let Some(change) = self.checked_change.take() else { return };
        if self.interrupted.is_some() {
            return;
        }
        let plan = self.plan.clone();
        // The paths that matter: those some selected task takes in.
        let relevant: BTreeSet<String> = plan.order.iter().flat_map(|&i| self.touched(i, &change)).collect();
        let direct: Vec<(TaskId, Why)> = plan
            .order
            .iter()
            .filter(|i| changed.contains(i))
            .map(|&i| (i, Why::Changed(self.touched(i, &change).into_iter().collect())))
            .collect();
        if direct.is_empty() {
            return;
        }
        if self.cycle.is_some() && self.opts.watch == Some(OnBusy::Queue) {
            self.emit(Event::ChangeQueued { paths: relevant.iter().cloned().collect(), rescan: change.rescan });
            let queued = self.queued_change.get_or_insert_with(Change::default);
            queued.paths.extend(change.paths.iter().filter(|p| relevant.contains(&*p.to_string_lossy())).cloned());
            queued
                .removed_dirs
                .extend(change.removed_dirs.iter().filter(|d| relevant.contains(&*d.to_string_lossy())).cloned());
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
    pub(super) fn watch_for_loops(&mut self, change: &Change, relevant: &BTreeSet<String>, direct: &[(TaskId, Why)]) {
        let (Some(first), Some(last)) = (change.first, change.last) else { return };
        let self_made = !change.rescan
            && match (&self.cycle, self.last_cycle) {
                (Some(c), _) => during(first, last, c.began, None),
                (None, Some((start, end))) => during(first, last, start, Some(end)),
                (None, None) => false,
            };
        if self.loops.observe(self_made, relevant) {
            let tasks = direct.iter().map(|(i, _)| self.name(*i)).collect();
            let paths = relevant.iter().cloned().collect();
            self.emit(Event::FeedbackLoop { cycles: LOOP_CYCLES, paths, tasks });
        }
    }

    /// Start a cycle for `direct` and what the watch rules add to it. Members that are running are stopped first
    /// (to run again); members that are done wait again.
    pub(super) fn begin_cycle(
        &mut self,
        direct: Vec<(TaskId, Why)>,
        changed: Arc<BTreeSet<String>>,
        rescan: bool,
        forced: bool,
        since: Instant,
    ) {
        let plan = self.plan.clone();
        let first = self.cycles_begun == 0;
        let why = if first {
            let mut why = PerTask::filled(plan.len(), None);
            for (i, w) in direct {
                why[i] = Some(w);
            }
            why
        } else {
            members(&plan, |i| self.standing(i), direct)
        };
        if self.cycle.is_none() {
            // "A dep ran" means in this cycle: what ran in earlier ones made its dependents run then.
            for node in self.nodes.iter_mut() {
                node.ran = false;
            }
        }
        let tasks: Vec<TaskName> = plan
            .order
            .iter()
            .copied()
            .filter(|&i| why[i].is_some())
            .collect::<Vec<_>>()
            .into_iter()
            .map(|i| {
                self.run_again(i);
                self.name(i)
            })
            .collect();
        let number = self.cycles_begun;
        self.cycles_begun += 1;
        let restarted = self.cycle.is_some();
        let mut forced = forced && !rescan;
        let (changed, rescan, since, began, why) = match self.cycle.take() {
            // A change during a cycle (`--on-busy restart`): the new cycle covers both.
            Some(previous) => {
                let mut all: BTreeSet<String> = (*previous.changed).clone();
                all.extend(changed.iter().cloned());
                let mut merged = previous.why;
                for (i, w) in why.ids().zip(why) {
                    if w.is_some() {
                        merged[i] = w;
                    }
                }
                // The up-to-date checks keep deciding for a cycle where they did (the first run, lost events,
                // a reload): its tasks still waiting are not forced by the change that joins it.
                forced &= previous.forced;
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
        self.cycle = Some(Cycle { number, since, began, changed, rescan, forced, why });
        self.aborting = false;
    }

    /// A member of a new cycle: stopped first if it runs (to run again), waiting again if it is done.
    fn run_again(&mut self, i: TaskId) {
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

    pub(super) fn end_cycle(&mut self) {
        let Some(c) = self.cycle.take() else { return };
        let failed =
            c.why.ids().any(|i| c.why[i].is_some() && self.nodes[i].life.outcome().is_some_and(Outcome::is_failure));
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

    /// Take over from `old`, the engine of the previous Irun.toml: `map` gives, per task of this plan, the task of
    /// the old plan it continues. Those keep their state (a ready service stays up); the others (new or changed)
    /// start a cycle, with what the watch rules add to it, their up-to-date checks deciding.
    /// `file`: Irun.toml's path relative to the project, told to the cycle's tasks as what changed.
    pub(crate) fn reconfigured(&mut self, old: &Engine, map: &PerTask<Option<TaskId>>, file: String) -> Vec<Effect> {
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
                    // It carries on as it was, restarts and all (only "a dep ran" is the new cycle's to say).
                    let life = old.nodes[i].life.clone();
                    self.nodes[j] = crate::engine::Node { life: Life::Waiting, ran: false, ..old.nodes[i].clone() };
                    if old.restarting.contains(&i) {
                        self.restarting.insert(j);
                    }
                    self.set_life(j, life);
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

    /// In a watch cycle started by a change, why task `i` runs whatever its up-to-date check says.
    pub(super) fn forced_reason(&self, i: TaskId, dep_ran: Option<TaskId>) -> Option<RunReason> {
        let c = self.cycle.as_ref().filter(|c| c.forced)?;
        Some(match c.why[i].as_ref()? {
            Why::Changed(paths) => RunReason::WatchChanged(paths.clone()),
            Why::Owed => RunReason::WatchOwed,
            Why::NeededBy(m) => RunReason::WatchNeededBy(self.name(*m)),
            Why::ServiceRestarted(s) => RunReason::ServiceRestarted(self.name(*s)),
            // Irun.toml changed: the up-to-date checks know what that means for the task.
            Why::Reconfigured => return None,
            Why::Downstream => match dep_ran {
                Some(d) => RunReason::DepRan(self.name(d)),
                None => RunReason::WatchDepChanged,
            },
        })
    }
}
