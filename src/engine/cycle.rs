//! Watch mode's rules, in one place: which tasks a change puts into a cycle, and when cycles feed themselves.
//!
//! A change affects the tasks whose `sources` match a changed path, and every task that depends on them,
//! transitively. A task that did not get to run (cancelled by an earlier cycle's failure, or blocked by a failed
//! dep) joins too, once every one of its deps is fine or runs in the cycle. A dep of an affected task is pulled in only when it cannot let it start (it failed, was
//! cancelled, or is a service that stopped): a dep that is up to date, or a service that is ready and whose inputs
//! did not change, is never pulled in. A service that is running is restarted when its own inputs change or any
//! of its deps runs again in the cycle, and its dependents then run again against the new instance.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::events::TaskKind;
use crate::plan::Plan;

/// How a task stands when a change arrives, as far as the rule above cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
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
pub enum Why {
    /// Its sources match these changed paths.
    Changed(Vec<String>),
    /// A task it depends on is in the cycle.
    Downstream,
    /// It did not get to run in an earlier cycle, and its deps are now fine or run in this one.
    Owed,
    /// A task of the cycle needs it, and its last run did not let it start.
    NeededBy(usize),
    /// Irun.toml was edited: the task is new or its definition changed.
    Reconfigured,
}

/// Which tasks the cycle runs: `Some(why)` for each member. `direct` are the tasks the change names (with why).
pub fn members(plan: &Plan, standing: impl Fn(usize) -> Standing, direct: Vec<(usize, Why)>) -> Vec<Option<Why>> {
    let n = plan.selected.len();
    let mut why: Vec<Option<Why>> = vec![None; n];
    let mut downstream: Vec<usize> = Vec::new();
    for (i, w) in direct {
        if plan.selected[i] && why[i].is_none() {
            why[i] = Some(w);
            downstream.push(i);
        }
    }
    loop {
        // Everything downstream of a member.
        while let Some(i) = downstream.pop() {
            for &d in &plan.dependents[i] {
                if why[d].is_none() {
                    why[d] = Some(Why::Downstream);
                    downstream.push(d);
                }
            }
        }
        // Deps that cannot let a member start, transitively.
        let mut upstream: Vec<usize> = (0..n).filter(|&i| why[i].is_some()).collect();
        while let Some(m) = upstream.pop() {
            for &d in &plan.deps[m] {
                if why[d].is_none() && matches!(standing(d), Standing::Unsatisfying | Standing::Cancelled) {
                    why[d] = Some(Why::NeededBy(m));
                    upstream.push(d);
                }
            }
        }
        // Tasks that did not get to run owe their run once every dep is fine or runs in the cycle (plan order:
        // deps first).
        for &i in &plan.order {
            let ready = |d: usize| {
                why[d].is_some() || matches!(standing(d), Standing::Satisfies | Standing::Alive | Standing::Pending)
            };
            if why[i].is_none() && standing(i) == Standing::Cancelled && plan.deps[i].iter().all(|&d| ready(d)) {
                why[i] = Some(Why::Owed);
                downstream.push(i);
            }
        }
        // A running service whose dep runs again is restarted, and its dependents with it.
        for &s in &plan.order {
            if why[s].is_none()
                && plan.kinds[s] == TaskKind::Service
                && matches!(standing(s), Standing::Satisfies | Standing::Alive)
                && plan.deps[s].iter().any(|&d| why[d].is_some())
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
pub const LOOP_CYCLES: u32 = 3;

/// How late after a cycle's end an event may be seen and still count as written during it: the watcher thread
/// notes an event a moment after the write.
pub const LOOP_SLACK: Duration = Duration::from_millis(250);

/// Notices cycles that keep starting themselves: each started by changes to the same paths, all made while the
/// cycle before it ran (a task writing its own sources).
#[derive(Debug, Default, Clone)]
pub struct Loops {
    streak: u32,
    paths: BTreeSet<String>,
    said: Vec<BTreeSet<String>>,
}

impl Loops {
    /// A change to `paths` starts a cycle; `self_made` when every event of it came while a cycle ran. True when
    /// this makes the streak long enough to say so (once per set of paths).
    pub fn observe(&mut self, self_made: bool, paths: &BTreeSet<String>) -> bool {
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
pub fn during(first: Instant, last: Instant, start: Instant, end: Option<Instant>) -> bool {
    first >= start && end.is_none_or(|end| last <= end + LOOP_SLACK)
}
