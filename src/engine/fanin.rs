//! Whether every dep of a task passes a test ([`Engine::settled`] or [`Engine::satisfies`]), at a cost that does not
//! grow with the square of its fan-in.
//!
//! A waiting task is looked at again each time one of its deps moves on: a group `all` over 10,000 tasks, tested dep
//! by dep from the first each time, costs 50 million tests. So each task keeps, per test, a cursor: the deps before
//! it passed when it was last looked at. A look starts at the cursor and moves it past the deps that pass now. Once it
//! reaches the end, every dep is tested again, once, from the first: one before the cursor may have stopped passing
//! since (a service restarting or stopping, a dep run again by a watch cycle, a group's gathered service gone); the
//! cursor then goes back to the first that fails. So the answer is always the full rule's — every dep passes, tested
//! now — and the cursor only saves work: a dep that moves on costs its dependent O(1) amortised, plus a full pass
//! when a look reaches the end. That look moves the dependent on, or finds a dep that stopped passing since the
//! cursor went by (one full pass per such change). Only a service that could start but is not wanted yet stays put
//! after a full pass that found all its deps settled; it pays one per look until it is wanted or not needed.

use std::cell::Cell;

use super::Engine;
use crate::config::{PerTask, TaskId};

/// What a dependent asks of its deps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Test {
    /// [`Engine::settled`]: far enough along for the dependent to decide whether it runs.
    Settled,
    /// [`Engine::satisfies`]: lets the dependent start.
    Satisfies,
}

/// Per task and test: how many of its deps, from the first, passed when it was last looked at. Cells, because the
/// rules that ask are `&self` and ask through each other (a service's deps are settled before it can start).
pub(super) struct Cursors {
    settled: PerTask<Cell<u32>>,
    satisfies: PerTask<Cell<u32>>,
}

impl Cursors {
    pub(super) fn new(n: usize) -> Cursors {
        Cursors { settled: PerTask::from_fn(n, |_| Cell::new(0)), satisfies: PerTask::from_fn(n, |_| Cell::new(0)) }
    }

    fn of(&self, test: Test, i: TaskId) -> &Cell<u32> {
        match test {
            Test::Settled => &self.settled[i],
            Test::Satisfies => &self.satisfies[i],
        }
    }
}

impl Engine {
    /// Whether every dep of `i` passes `test` now: the one rule, `deps.iter().all(test)`, answered from the cursor.
    pub(super) fn all_deps(&self, i: TaskId, test: Test) -> bool {
        let deps = &self.plan[i].deps;
        let passes = |d: TaskId| match test {
            Test::Settled => self.settled(d, i),
            Test::Satisfies => self.satisfies(d, i),
        };
        let cursor = self.cursors.of(test, i);
        let from = (cursor.get() as usize).min(deps.len());
        let failing = match deps[from..].iter().position(|&d| !passes(d)) {
            Some(k) => Some(from + k),
            // This look tested them all.
            None if from == 0 => None,
            // The deps before the cursor passed once: test them again, now.
            None => deps.iter().position(|&d| !passes(d)),
        };
        let all = failing.is_none();
        cursor.set(failing.unwrap_or(deps.len()) as u32);
        #[cfg(test)]
        {
            // Every test's every look is checked against the full rule (not counted as work: only the look is).
            let counted = self.dep_tests.get();
            assert_eq!(all, deps.iter().all(|&d| passes(d)), "the cursor's answer for {i:?} ({test:?}) is stale");
            self.dep_tests.set(counted);
        }
        all
    }
}
