//! A run as a stream of events. The scheduler and the task runners emit them; reporters only listen.

use std::sync::Arc;
use std::time::Duration;

pub type TaskName = Arc<str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Ok,
    /// The reason, such as "exit code 1" or "exited with code 3 before it was ready".
    Failed(String),
    TimedOut(Duration),
    /// Never started, or stopped, because the run was aborted (a failure elsewhere, or Ctrl-C).
    Cancelled,
    /// Not run, with the reason (a dep failed; nothing needed the service any more).
    Skipped(String),
}

impl Status {
    pub fn is_failure(&self) -> bool {
        matches!(self, Status::Failed(_) | Status::TimedOut(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed(_) => "failed",
            Status::TimedOut(_) => "timed out",
            Status::Cancelled => "cancelled",
            Status::Skipped(_) => "skipped",
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Status::Failed(why) | Status::Skipped(why) => Some(why.clone()),
            Status::TimedOut(after) => Some(format!("stopped after {}", humantime::format_duration(*after))),
            Status::Ok | Status::Cancelled => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Task,
    Service,
    Group,
}

#[derive(Debug, Clone)]
pub struct PlannedTask {
    pub name: TaskName,
    pub kind: TaskKind,
}

/// How the whole run ended; maps to irun's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Passed,
    Failed,
    Interrupted(nix::sys::signal::Signal),
}

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        tasks: Vec<PlannedTask>,
        jobs: usize,
    },
    TaskStarted {
        task: TaskName,
        pid: u32,
    },
    /// A service's readiness probe passed (or it has none); its dependents may start.
    TaskReady {
        task: TaskName,
        after: Duration,
        probe: Option<String>,
    },
    /// A service no longer needed, or a task being cancelled, is being stopped.
    TaskStopping {
        task: TaskName,
        reason: String,
    },
    /// One line of a task's output, without its line ending; bytes are passed through as they came.
    Output {
        task: TaskName,
        stream: Stream,
        line: Vec<u8>,
    },
    TaskFinished {
        task: TaskName,
        status: Status,
        duration: Duration,
    },
    /// Something the user should know that is not a task's status (a SIGKILL escalation, an interrupt).
    Notice {
        task: Option<TaskName>,
        message: String,
    },
    RunFinished {
        outcome: RunOutcome,
        elapsed: Duration,
    },
}

/// Where events go: a bounded channel, so a reporter that cannot keep up slows producers instead of eating memory.
pub type EventSender = tokio::sync::mpsc::Sender<Event>;
