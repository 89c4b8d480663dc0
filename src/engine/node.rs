//! A task's life during a run, as one state.

use std::time::Duration;

use super::control::Control;
use crate::outcome::Outcome;

/// Where a task is in its life. Every selected task is in exactly one of these.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Life {
    /// Not started in this run (or watch cycle): waits for its deps.
    Waiting,
    /// Its deps are met; the driver is asked whether it is up to date.
    Checking,
    /// Decided to run; waits for a job slot.
    Queued,
    /// Spawn requested; holds a job slot; no pid yet.
    Starting,
    /// A task running, or a service started and not ready yet; holds a job slot.
    Running,
    /// A service that passed its readiness probe; holds no job slot.
    Ready,
    /// Asked to stop; waits for its runner to report the end.
    Stopping(Stopping),
    Done(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopping {
    pub(crate) control: Control,
    pub(crate) then: Then,
    /// It still holds a job slot (it was not ready when asked to stop).
    pub(crate) slot: bool,
    /// It had become ready (a service).
    pub(crate) ready: bool,
}

/// What happens once a stopping task has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// It is done: its outcome follows from how it was stopped.
    End,
    /// Watch mode: it is started again (its instance ends as `Restarted`).
    Rerun,
}

/// The coarse groups the engine counts, so that "is anything still running?" costs nothing on big graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting, Checking or Queued: not started.
    Pending,
    /// Starting, Running or Stopping: a process may be alive and will report its end.
    Active,
    Ready,
    Done,
}

impl Life {
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Life::Waiting | Life::Checking | Life::Queued => Phase::Pending,
            Life::Starting | Life::Running | Life::Stopping(_) => Phase::Active,
            Life::Ready => Phase::Ready,
            Life::Done(_) => Phase::Done,
        }
    }

    /// Whether it occupies a job slot.
    pub(crate) fn holds_slot(&self) -> bool {
        match self {
            Life::Starting | Life::Running => true,
            Life::Stopping(s) => s.slot,
            _ => false,
        }
    }

    /// A process of it may be alive (it was spawned and has not reported its end).
    pub(crate) fn alive(&self) -> bool {
        matches!(self.phase(), Phase::Active | Phase::Ready)
    }

    pub(crate) fn outcome(&self) -> Option<&Outcome> {
        match self {
            Life::Done(o) => Some(o),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) life: Life,
    /// It ran (was spawned; for a group, a dep ran) in this run or watch cycle: its dependents are not up to date.
    pub(crate) ran: bool,
    /// How many times it was spawned in this run: a service started again waits for its old port to be free.
    pub(crate) spawns: u32,
    /// When its current instance became ready (services).
    pub(crate) ready_after: Option<Duration>,
    /// How many times its process exited and was started again since the engine last spawned it.
    pub(crate) restarts: u32,
    /// How long the instances that ended in such a restart ran: its end counts them all.
    pub(crate) earlier: Duration,
    /// What its instance was told changed (watch mode), so an instance started again is told the same.
    pub(crate) changed: Option<super::Changed>,
    /// A task whose up-to-date check said it runs: it waits only for its services to be ready.
    pub(crate) decided: bool,
    /// It will run in this run or cycle unless something fails: it was decided to run, or a task upstream of it
    /// was. The services it needs are then wanted.
    pub(crate) will_run: bool,
    /// Why it must run whatever its up-to-date check says (a service it ran against was started again). Boxed: it
    /// is rare, and a node of each of 10,000 tasks would otherwise take 32 bytes more.
    pub(crate) forced: Option<Box<crate::outcome::RunReason>>,
}

impl Node {
    pub(crate) fn new() -> Node {
        Node {
            life: Life::Waiting,
            ran: false,
            spawns: 0,
            ready_after: None,
            restarts: 0,
            earlier: Duration::ZERO,
            changed: None,
            decided: false,
            will_run: false,
            forced: None,
        }
    }
}

impl Default for Node {
    fn default() -> Self {
        Node::new()
    }
}
