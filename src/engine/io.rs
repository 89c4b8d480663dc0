//! What goes into the engine and what comes out of it: its options, the inputs the driver feeds it (what runners
//! report, signals, changed paths, freshness verdicts, the time) and the effects it asks for.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Control;
use crate::config::{Check, TaskId};
use crate::events::{Event, WatchProblem};
use crate::outcome::{ChildExit, Failure, Outcome, Verdict};

/// What watch mode does with a change that arrives while a cycle is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnBusy {
    /// Stop the affected running tasks and restart the cycle for the union of changes.
    Restart,
    /// Let the cycle finish, then run one more for everything that changed meanwhile.
    Queue,
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) jobs: usize,
    pub(crate) keep_going: bool,
    /// Say why each task runs.
    pub(crate) explain: bool,
    /// Watch mode, and its policy for changes during a cycle.
    pub(crate) watch: Option<OnBusy>,
}

/// A batch of changed paths from the watcher.
#[derive(Debug, Clone, Default)]
pub(crate) struct Change {
    /// Relative to the project root.
    pub(crate) paths: BTreeSet<PathBuf>,
    /// Folders removed or moved away, relative to the project root: what they held went with them.
    pub(crate) removed_dirs: BTreeSet<PathBuf>,
    /// Events were lost: anything may have changed.
    pub(crate) rescan: bool,
    pub(crate) notices: Vec<WatchProblem>,
    /// When the first and the last event of the batch were seen.
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
}

/// How a runner says its task ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum End {
    /// The main process exited by itself (whatever it left behind in its group was stopped).
    Exited(ChildExit),
    /// Stopped at the engine's request.
    Stopped,
    TimedOut(Duration),
    /// Its readiness probe did not pass within `timeout`.
    NotReady {
        timeout: Duration,
        check: Check,
    },
    /// It could not be started; nothing ran.
    NotStarted(Failure),
    /// irun lost track of it (it could not wait for it, or the runner broke).
    Broken(String),
    /// It was stopped by `signal` (SIGTTIN or SIGTTOU) for using the terminal from the background; irun stopped it.
    WantedTerminal(Signal),
}

/// What a task's runner reports about the instance it runs, in this order: started (unless it could not be),
/// ready (a service, once its probe passes), exited.
#[derive(Debug, Clone)]
pub(crate) enum Happened {
    Started {
        pid: u32,
        /// The port chosen for a service with `tcp = "auto"`.
        port: Option<u16>,
    },
    Ready {
        after: Duration,
        /// What was probed (none: ready once started).
        probe: Option<Check>,
        /// A server irun did not start already answered the probe (`reuse = true`).
        reused: bool,
    },
    Exited {
        end: End,
        duration: Duration,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// The time is now: the engine has no clock of its own.
    Tick(Instant),
    /// A task's runner says what happened to its instance.
    Task {
        task: TaskId,
        what: Happened,
    },
    /// One delivery of a signal to irun (two deliveries are two inputs, however close together).
    Signal(Signal),
    Changed(Change),
    Freshness {
        task: TaskId,
        verdict: Verdict,
    },
    /// The answer to [`Effect::CheckInputs`]: the tasks asked about whose inputs did change.
    InputsChecked {
        changed: Vec<TaskId>,
    },
}

/// The changed paths a task of a watch cycle is told about (`IRUN_CHANGED_PATHS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Changed {
    pub(crate) paths: Arc<BTreeSet<String>>,
    /// Events were lost: which paths changed is unknown.
    pub(crate) unknown: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// Start the task. `restarting`: an earlier instance ran in this run (its port may take a moment to be free).
    /// `after_exit`: a service whose process exited is started again (`restart`) after this pause, on its port.
    Spawn {
        task: TaskId,
        restarting: bool,
        changed: Option<Changed>,
        after_exit: Option<Duration>,
    },
    Stop {
        task: TaskId,
        control: Control,
    },
    /// Decide whether the task is up to date (`dep_ran`: a dep that ran in this run or cycle) and answer with
    /// [`Input::Freshness`]: at once, or later (the remote cache is being asked). Until every check is answered
    /// nothing new starts, so that what starts first is chosen among all the tasks that will run; other inputs may
    /// come meanwhile (a signal cancels the task, and its late answer changes nothing).
    CheckFreshness {
        task: TaskId,
        dep_ran: Option<TaskId>,
    },
    /// Watch mode: which of these tasks' own inputs differ by content from what they last ran with (a task running
    /// or about to: from what it runs with; a service: its fingerprint from the one it was started with; a group:
    /// its sources from when they were last looked at). Answer with [`Input::InputsChecked`] before any other input.
    CheckInputs {
        tasks: Vec<TaskId>,
    },
    /// Remember how the task ended. `took`: how long it ran (for a service, how long until it was ready).
    Record {
        task: TaskId,
        outcome: Outcome,
        took: Option<Duration>,
    },
    /// Write the state now (`urgent`: a cycle or the run ended) or when convenient.
    SaveState {
        urgent: bool,
    },
    Emit(Box<Event>),
}
