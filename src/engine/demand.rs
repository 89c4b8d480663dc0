//! Which services a run wants, how a waiting task moves on, and what a service started again means. Outside watch mode a service starts only
//! once something that needs it will run: a task is checked for freshness as soon as its deps are settled (done,
//! or a service able to start), and a task that will run (or is downstream of one that will) wants the services it
//! needs. A service that comes back after its process exited is a new instance: what ran against the old one runs
//! again.

use std::time::Duration;

use super::{Effect, Engine, Life, Phase, Test};
use crate::config::{PerTask, TaskId, TaskKind};
use crate::outcome::{Outcome, RunReason};
use crate::plan::Plan;

impl Engine {
    /// A waiting task that may be able to move on: a group finishes, a service starts if it is wanted, a task is
    /// checked for freshness once its deps are settled and queued once its services are ready too.
    pub(super) fn consider(&mut self, i: TaskId) {
        match self.kind(i) {
            TaskKind::Group => {
                if self.all_deps(i, Test::Settled) {
                    // A group "ran" when any of its deps did: its dependents are then not up to date.
                    self.nodes[i].ran = self.plan[i].deps.iter().any(|&d| self.nodes[d].ran);
                    self.finish(i, Outcome::Ok, Duration::ZERO);
                }
            }
            TaskKind::Service if self.unneeded(i) => self.finish(i, Outcome::NotNeeded, Duration::ZERO),
            TaskKind::Service => match (self.all_deps(i, Test::Satisfies), self.wanted(i)) {
                (true, true) => self.enqueue(i),
                // Wanted, but a service it needs is not ready: that one is wanted too.
                (false, true) => self.reconsider_all(self.needs[i].clone()),
                // Not wanted (yet), but able to start: its needers may now decide whether they run.
                (satisfied, false) if satisfied || self.all_deps(i, Test::Settled) => {
                    let plan = self.plan.clone();
                    self.reconsider_all(plan[i].dependents.clone());
                }
                (_, false) => {}
            },
            // Decided to run (its deps were settled): it waits for them to satisfy it, which implies settled.
            TaskKind::Task if self.nodes[i].decided => {
                if self.all_deps(i, Test::Satisfies) {
                    self.enqueue(i);
                }
            }
            TaskKind::Task if !self.all_deps(i, Test::Settled) => {}
            TaskKind::Task => {
                let dep_ran = self.plan[i].deps.iter().copied().find(|&d| self.nodes[d].ran);
                self.set_life(i, Life::Checking);
                self.out.push(Effect::CheckFreshness { task: i, dep_ran });
            }
        }
    }

    pub(super) fn reconsider_all(&mut self, tasks: Vec<TaskId>) {
        for t in tasks {
            self.reconsider(t);
        }
    }

    /// Whether `dep` is as far as it needs to be for `dependent` to decide whether it runs: what `satisfies` asks,
    /// except that a service (or a group's gathered service) need not be ready yet, only able to start: it is
    /// started once something that needs it will run.
    pub(super) fn settled(&self, dep: TaskId, dependent: TaskId) -> bool {
        if self.satisfies(dep, dependent) {
            return true;
        }
        let service_can_start = |s: TaskId| match self.nodes[s].life {
            Life::Done(_) | Life::Stopping(_) => false,
            Life::Waiting => self.all_deps(s, Test::Settled),
            _ => true,
        };
        match (&self.nodes[dep].life, self.kind(dep)) {
            (_, TaskKind::Service) => service_can_start(dep),
            (Life::Done(o), TaskKind::Group) if o.is_success() => {
                self.gathered[dep].iter().all(|&s| self.nodes[s].life == Life::Ready || service_can_start(s))
            }
            _ => false,
        }
    }

    /// Whether service `s` should start: in watch mode or in the foreground always; otherwise once a task that
    /// needs it will run (or a service that needs it is wanted). One whose needers are all up to date never starts.
    pub(super) fn wanted(&self, s: TaskId) -> bool {
        self.opts.watch.is_some()
            || self.plan[s].foreground
            || self.plan[s].needers.iter().any(|&n| match (&self.nodes[n].life, self.kind(n)) {
                (Life::Done(_), _) => false,
                (Life::Waiting, TaskKind::Service) => self.wanted(n),
                (_, TaskKind::Service) => true,
                _ => self.nodes[n].will_run,
            })
    }

    /// Task `i` will run: so will every task downstream of it (a task after it sees a dep that ran; a service after
    /// it gets another fingerprint). The services they need are wanted.
    pub(super) fn doom(&mut self, i: TaskId) {
        let plan = self.plan.clone();
        let mut stack = vec![i];
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut self.nodes[x].will_run, true) {
                continue;
            }
            for idx in 0..self.needs[x].len() {
                self.reconsider(self.needs[x][idx]);
            }
            stack.extend(plan[x].dependents.iter().copied().filter(|&d| self.nodes[d].life.phase() != Phase::Done));
        }
    }

    /// Service `s` is ready again after its process exited and was started again: the tasks that need it and ran
    /// (or were up to date) against the old instance run again, before the tasks after them. Outside watch mode
    /// only those with something after them still to run; in watch mode all of them, in a new cycle.
    pub(super) fn ran_against_old_instance(&mut self, s: TaskId) {
        let plan = self.plan.clone();
        let watch = self.opts.watch.is_some();
        let stale: Vec<TaskId> = plan[s]
            .needers
            .iter()
            .copied()
            .filter(|&n| self.kind(n) == TaskKind::Task)
            .filter(|&n| matches!(self.nodes[n].life, Life::Done(Outcome::Ok | Outcome::UpToDate | Outcome::Cached(_))))
            // Outside watch mode, only for a task after it that has not started: one that runs already ran against
            // the old instance too (it cannot wait for this one any more).
            .filter(|&n| {
                watch
                    || plan
                        .through_groups(&plan[n].dependents, |p| &p.dependents)
                        .iter()
                        .any(|&d| matches!(self.nodes[d].life, Life::Waiting | Life::Queued))
            })
            .collect();
        if stale.is_empty() {
            return;
        }
        let reason = RunReason::ServiceRestarted(self.name(s));
        if watch {
            let direct = stale.iter().map(|&n| (n, super::cycle::Why::ServiceRestarted(s))).collect();
            self.begin_cycle(direct, std::sync::Arc::default(), false, true, self.now);
        } else {
            for &n in &stale {
                self.set_life(n, Life::Waiting);
                self.wait_again_through_groups(n);
            }
        }
        for n in stale {
            self.nodes[n].forced = Some(Box::new(reason.clone()));
        }
    }

    /// Groups after `n` that are done wait again, so that what comes after them waits for `n` too.
    fn wait_again_through_groups(&mut self, n: TaskId) {
        let plan = self.plan.clone();
        let mut stack = vec![n];
        while let Some(x) = stack.pop() {
            for &d in &plan[x].dependents {
                if self.kind(d) == TaskKind::Group && matches!(self.nodes[d].life, Life::Done(_)) {
                    self.set_life(d, Life::Waiting);
                    stack.push(d);
                }
            }
        }
    }
}

/// For each group, the services it gathers, directly or through nested groups, sorted (none for a task or service).
/// Each group's list is made once, from its deps' lists: a chain of groups costs its length, not its square.
pub(super) fn gathered_services(plan: &Plan) -> PerTask<Vec<TaskId>> {
    let is_group = |i: TaskId| plan[i].kind == TaskKind::Group;
    let mut out: PerTask<Option<Vec<TaskId>>> = PerTask::filled(plan.len(), None);
    let mut stack = Vec::new();
    for root in out.ids().filter(|&i| is_group(i)) {
        stack.push(root);
        while let Some(&g) = stack.last() {
            if out[g].is_some() {
                stack.pop();
                continue;
            }
            // Nested groups first (the graph has no cycles); then this one, from theirs.
            let before = stack.len();
            stack.extend(plan[g].deps.iter().filter(|&&d| is_group(d) && out[d].is_none()));
            if stack.len() > before {
                continue;
            }
            let mut mine = Vec::new();
            for &d in &plan[g].deps {
                match plan[d].kind {
                    TaskKind::Service => mine.push(d),
                    TaskKind::Group => mine.extend(out[d].iter().flatten()),
                    TaskKind::Task => {}
                }
            }
            mine.sort_unstable();
            mine.dedup();
            out[g] = Some(mine);
            stack.pop();
        }
    }
    out.iter().map(|g| g.clone().unwrap_or_default()).collect()
}
