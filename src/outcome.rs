//! How things end, as data: a child process's exit, a task's outcome and why a task did not run. The engine decides
//! outcomes from these facts; reporters turn them into words ([`crate::report::text`]).

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A task's name, shared by every event and outcome that names it.
pub(crate) type TaskName = std::sync::Arc<str>;

/// How a child process ended, or that it never started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildExit {
    Code(i32),
    /// Killed by a signal (the number, for signals nix has no name for).
    Signal(i32),
}

impl ChildExit {
    pub(crate) fn success(self) -> bool {
        self == ChildExit::Code(0)
    }

    /// From a process's wait status.
    pub(crate) fn from_status(status: std::process::ExitStatus) -> ChildExit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ChildExit::Code(code),
            (None, Some(sig)) => ChildExit::Signal(sig),
            // Neither: not possible for a reaped child on Unix; treat as a failure.
            (None, None) => ChildExit::Code(-1),
        }
    }

    pub(crate) fn signal(self) -> Option<Signal> {
        match self {
            ChildExit::Signal(n) => Signal::try_from(n).ok(),
            _ => None,
        }
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// A task's process (or a foreground service) exited unsuccessfully.
    Exit(ChildExit),
    /// A service exited before its readiness probe passed.
    ExitedBeforeReady(ChildExit),
    /// A service exited on its own while tasks still needed it (`needed_by` names them when known).
    ExitedWhileNeeded {
        exit: ChildExit,
        needed_by: Vec<TaskName>,
    },
    /// A service's readiness probe did not pass within its timeout.
    NotReady {
        timeout: Duration,
        check: crate::config::Check,
    },
    /// No free port for `ready = { tcp = "auto" }`.
    NoFreePort,
    /// Something else accepts connections at the address a service's probe checks.
    PortInUse {
        port: u16,
        key: &'static str,
        file: String,
        /// The service has `reuse = true`: what holds the port did not pass its probe.
        reuse: bool,
    },
    NoWorkingDirectory(PathBuf),
    /// The program could not be started.
    SpawnFailed {
        program: String,
        kind: std::io::ErrorKind,
        message: String,
    },
    /// irun could not wait for the process, or a runner broke.
    Internal(String),
    /// It tried to read (SIGTTIN) or set up (SIGTTOU) the terminal from the background and was stopped; irun
    /// stopped it for good rather than wait forever.
    WantedTerminal {
        signal: Signal,
    },
}

/// Why a task was not run: a dep cannot let it start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Blocked {
    DepFailed(TaskName),
    /// A dep that was cancelled or itself blocked.
    DepDidNotRun(TaskName),
    /// A service it needs was ready once and has stopped.
    ServiceGone(TaskName),
    /// Nothing runs, and its deps are still not met.
    Unmeetable,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Ok,
    /// Not run: its last successful run is still valid.
    UpToDate,
    /// Not run: a stored result of the same inputs was restored (outputs and output). Boxed, as `Failed` is: an
    /// outcome is held per task (in the engine's nodes, in each reporter's results), most of them without either.
    Cached(Box<CacheHit>),
    Failed(Box<Failure>),
    TimedOut(Duration),
    /// Never started, or stopped, because the run (or watch cycle) was aborted: a failure elsewhere, or a signal.
    Cancelled,
    Blocked(Blocked),
    /// A service not started because nothing that needs it is left to run.
    NotNeeded,
    /// Watch mode: this instance was stopped to be started again. Not an end of the task, only of the instance.
    Restarted,
}

impl Outcome {
    pub(crate) fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::TimedOut(_))
    }

    /// Ended well: ran successfully, or did not need to.
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::UpToDate | Outcome::Cached(_))
    }

    /// The task ran to an end of its own (ok, failed or timed out): worth remembering in irun's state.
    pub(crate) fn is_recorded(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Cached(_) | Outcome::Failed(_) | Outcome::TimedOut(_))
    }
}

/// Which stored result a task was restored from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheHit {
    pub(crate) key: String,
    /// Where it came from: `local` (a remote store will say `remote`).
    pub(crate) source: &'static str,
}

/// Whether a task runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    UpToDate,
    /// Restored from the cache (the driver has put its outputs back).
    Cached(CacheHit),
    Run(RunReason),
}

/// Why a task runs: the first reason found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunReason {
    /// Services always run.
    Service,
    /// Without `sources`, nothing says it is up to date.
    NoSources,
    /// `--force`.
    Forced,
    /// `--rerun`: it was named (or gathered by a group that was).
    Rerun,
    /// `always_run = true`.
    AlwaysRun,
    NeverRan,
    LastUnfinished,
    LastFailed,
    /// A setting that changes what it does is not what it was.
    Setting(Setting),
    /// One of its sources was added, removed or changed.
    Source(FileChange),
    /// One of its outputs went missing, changed or appeared.
    Output(FileChange),
    /// A dep ran in this run (or cycle).
    DepRan(TaskName),
    /// A dep will run (`-n`, `irun explain`).
    DepWillRun(TaskName),
    /// A service it depends on is not the one it last ran against.
    ServiceChanged(TaskName),
    /// A service it ran against was started again (a new instance: new port, maybe new data).
    ServiceRestarted(TaskName),
    /// A dep ran since it last ran.
    DepRanSince(TaskName),
    /// Watch mode: its sources match these changed paths.
    WatchChanged(Vec<String>),
    /// Watch mode: it did not get to run in an earlier cycle.
    WatchOwed,
    /// Watch mode: a task of the cycle needs it, and its last run did not succeed.
    WatchNeededBy(TaskName),
    /// Watch mode: a dep changed.
    WatchDepChanged,
}

/// A task setting that is part of its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    Command,
    Env,
    Cwd,
    /// Its `sources` or `outputs` globs.
    Globs,
    /// A service's readiness probe.
    Probe,
}

/// How a file a task reads or writes differs from when it last ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileChange {
    Added(String),
    /// Gone (an output: missing).
    Removed(String),
    Changed(String),
}

/// Why a running task is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A service nothing needs any more.
    NotNeeded,
    /// Another task failed (fail-fast).
    Cancelled,
    /// irun received SIGINT (Ctrl-C): the task gets SIGINT too, as a shell's foreground job would.
    Interrupted,
    /// irun received SIGTERM or SIGHUP.
    Terminated,
    /// Watch mode: its inputs changed (or a dep reran); it will be started again.
    Restart,
    /// Irun.toml was edited: the task changed or is gone.
    Reconfigured,
    /// Its main process exited and left processes behind in its group.
    LeftBehind,
    ProbeFailed,
    TimedOut,
    /// It was stopped by SIGTTIN or SIGTTOU: it wants the terminal, which only an `interactive` task gets.
    WantsTerminal,
}

impl StopReason {
    /// Why irun stops its tasks when it receives `sig`.
    pub(crate) fn for_signal(sig: Signal) -> StopReason {
        if sig == Signal::SIGINT { StopReason::Interrupted } else { StopReason::Terminated }
    }

    /// The signal that starts the stop, given the task's `stop_signal`: SIGINT after Ctrl-C, as a terminal sends
    /// it to the job in the foreground; the task's own stop signal for every other reason.
    pub(crate) fn signal(self, stop_signal: Signal) -> Signal {
        match self {
            StopReason::Interrupted => Signal::SIGINT,
            _ => stop_signal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_stops_with_sigint_and_every_other_reason_with_the_task_s_stop_signal() {
        assert_eq!(StopReason::for_signal(Signal::SIGINT).signal(Signal::SIGTERM), Signal::SIGINT);
        assert_eq!(StopReason::for_signal(Signal::SIGINT).signal(Signal::SIGQUIT), Signal::SIGINT);
        for sig in [Signal::SIGTERM, Signal::SIGHUP] {
            assert_eq!(StopReason::for_signal(sig), StopReason::Terminated);
        }
        let others = [
            StopReason::NotNeeded,
            StopReason::Cancelled,
            StopReason::Terminated,
            StopReason::Restart,
            StopReason::Reconfigured,
            StopReason::LeftBehind,
            StopReason::ProbeFailed,
            StopReason::TimedOut,
            StopReason::WantsTerminal,
        ];
        for reason in others {
            assert_eq!(reason.signal(Signal::SIGQUIT), Signal::SIGQUIT, "{reason:?}");
        }
    }

    #[test]
    fn an_outcome_takes_no_more_than_a_name_and_a_tag() {
        // Held per task by the engine and every reporter: rare large cases are boxed.
        assert!(size_of::<Outcome>() <= 24, "{}", size_of::<Outcome>());
    }
}
