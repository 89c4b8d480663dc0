//! A run as a stream of typed events: everything a run says, as data. The engine, the driver and the task runners
//! send them ([`channel`]); reporters only listen, and their words live in [`crate::report::text`].

mod channel;

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::Check;
pub(crate) use crate::config::TaskKind;
use crate::config::env::Secrets;
use crate::outcome::Failure;
pub(crate) use crate::outcome::{ChildExit, Outcome, RunReason, StopReason, TaskName};
pub(crate) use crate::testcases::TestReports;
pub(crate) use channel::{EventReceiver, EventSender, channel};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub(crate) struct PlannedTask {
    pub(crate) name: TaskName,
    pub(crate) kind: TaskKind,
    /// Shared, so a reporter keeps them without a copy.
    pub(crate) deps: std::sync::Arc<[TaskName]>,
    /// `output = "on-failure"`: its output is shown only if it fails.
    pub(crate) quiet: bool,
}

/// How the whole run ended; maps to irun's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOutcome {
    Passed,
    Failed,
    Interrupted(Signal),
}

/// Why a folder could not be watched.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WatchProblem {
    /// The inotify watch limit (`fs.inotify.max_user_watches`, whose value is given) is reached.
    TooManyWatches {
        path: PathBuf,
        limit: String,
    },
    /// Too many inotify instances (`fs.inotify.max_user_instances`, whose value is given).
    TooManyInstances {
        path: PathBuf,
        limit: String,
    },
    Other {
        path: PathBuf,
        error: String,
    },
    /// The watcher's thread could not be started.
    NoThread {
        error: String,
    },
}

/// What became of irun's guard process, which had ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GuardNews {
    /// A new one was started, and told every running process.
    Replaced,
    /// It ended this many times within `within`: irun carries on without one.
    GivenUp { times: usize, within: Duration },
    /// A new one could not be started.
    NotReplaced { error: String },
}

/// What a reloaded Irun.toml changed in the plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct PlanDiff {
    pub(crate) added: Vec<TaskName>,
    pub(crate) changed: Vec<TaskName>,
    pub(crate) removed: Vec<TaskName>,
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    RunStarted {
        tasks: Vec<PlannedTask>,
        jobs: usize,
        watch: bool,
    },
    /// Watch mode: Irun.toml was edited and reloaded; from now on these are the tasks.
    PlanChanged {
        tasks: Vec<PlannedTask>,
        jobs: usize,
    },
    /// Watch mode: a cycle begins (cycle 0 is the initial run), for these changed paths and tasks. With
    /// `restarted`, a change arrived during the previous cycle, which this one replaces: `changed` and `tasks` then
    /// cover both.
    CycleStarted {
        cycle: u32,
        changed: Vec<String>,
        rescan: bool,
        tasks: Vec<TaskName>,
        restarted: bool,
    },
    /// Watch mode: every task of the cycle has finished (services stay up); irun waits for the next change.
    CycleFinished {
        cycle: u32,
        outcome: RunOutcome,
        elapsed: Duration,
    },
    TaskStarted {
        task: TaskName,
        pid: u32,
        /// The port chosen for a service with `ready = { tcp = "auto" }`.
        port: Option<u16>,
        /// Its command as written in Irun.toml: told only where a report shows it (`--json`, `--events`, timings).
        command: Option<String>,
    },
    /// A service's readiness probe passed (or it has none); its dependents may start.
    TaskReady {
        task: TaskName,
        after: Duration,
        /// What was probed (none: ready once started).
        probe: Option<Check>,
        /// A server irun did not start already answered the probe (`reuse = true`).
        reused: bool,
    },
    /// A service's process exited and is started again after `delay` (`restart`), restart `attempt` of `max`.
    TaskRestarting {
        task: TaskName,
        attempt: u32,
        max: u32,
        exit: ChildExit,
        delay: Duration,
    },
    /// A service no longer needed, or a task being cancelled, is being stopped.
    TaskStopping {
        task: TaskName,
        reason: StopReason,
        /// The signal sent first (see [`StopReason::signal`]); SIGKILL follows after the task's grace period.
        signal: Signal,
    },
    /// An interactive task was given irun's terminal: its output goes there directly, until it exits.
    TerminalHandedOver {
        task: TaskName,
    },
    /// A task was stopped by `signal` (SIGTTIN or SIGTTOU): it wants the terminal, which it does not have.
    WaitingForTerminal {
        task: TaskName,
        signal: Signal,
    },
    /// A task did not exit within `grace` of its stop signal and was killed with SIGKILL.
    TaskKilled {
        task: TaskName,
        grace: Duration,
        signal: Signal,
    },
    /// Output of a task: one or more complete lines, separated by `\n`, without the last line's ending (a line
    /// longer than 64 KiB arrives in pieces). Bytes are passed through as they came.
    Output {
        task: TaskName,
        stream: Stream,
        text: Vec<u8>,
    },
    TaskFinished {
        task: TaskName,
        outcome: Outcome,
        duration: Duration,
    },
    /// `--explain`: why a task runs.
    TaskWillRun {
        task: TaskName,
        reason: RunReason,
    },
    /// A service's probe already passed before irun started it (`reuse = true`): irun uses that server and will
    /// neither start nor stop it.
    ServiceReused {
        task: TaskName,
        probe: Check,
    },
    /// irun received a signal: the first stops everything gracefully, any further one kills at once.
    Interrupted {
        signal: Signal,
        /// 1 for the first signal of the run.
        count: u32,
        /// Tasks and services being stopped.
        running: usize,
    },
    /// The cache could not be used for a task (a corrupt entry, a write that failed): the task runs, or its result
    /// is not stored. Said once per problem.
    CacheWarning {
        problem: String,
    },
    /// irun's state could not be used: every task runs, as if none had run before.
    StateIgnored {
        problem: String,
    },
    /// The run is over and another irun holds the state's lock: irun waits for it (a signal ends the wait).
    StateLockWait {
        lock: PathBuf,
    },
    /// irun's state could not be saved (said once a run).
    StateNotSaved {
        path: PathBuf,
        error: String,
    },
    /// `--partition`: this run is one shard of the plan.
    ShardSelected {
        shard: String,
        partition: String,
        /// The plan's leaf tasks, of which this shard runs `units`.
        leaves: usize,
        units: Vec<TaskName>,
    },
    /// Watch mode: the folders watched.
    Watching {
        folders: usize,
        root: PathBuf,
    },
    /// Watch mode: a folder could not be watched.
    WatchTrouble {
        problem: WatchProblem,
    },
    /// Watch mode (`--on-busy queue`): a change during a cycle; one more cycle follows it.
    ChangeQueued {
        paths: Vec<String>,
        /// Events were lost: what changed is not known.
        rescan: bool,
    },
    /// Watch mode: the last `cycles` cycles were each started by changes made while the cycle before ran.
    FeedbackLoop {
        cycles: u32,
        paths: Vec<String>,
        tasks: Vec<TaskName>,
    },
    /// Watch mode: Irun.toml changed and could not be read; the previous version stays in force.
    ConfigUnreadable {
        path: PathBuf,
        error: String,
    },
    /// Watch mode: Irun.toml changed but is not valid; the previous version stays in force.
    ReloadRejected {
        file: String,
        diagnostic: String,
    },
    /// Watch mode: a changed Irun.toml is in force.
    ReloadApplied {
        file: String,
        diff: PlanDiff,
        /// The values read again with it (dotenv files, irun's environment): reports hide them from now on.
        secrets: Secrets,
    },
    /// A process left its task's process group and outlived its parent; irun stops it when the run ends.
    OrphanAdopted {
        pid: i32,
        /// Its name (`comm`) and command line.
        program: String,
        command: String,
        /// Its task (none: not known, it cleared its environment).
        task: Option<TaskName>,
    },
    /// How the run holds its tasks' processes: a cgroup each, under this one, or (none) process groups alone.
    Isolation {
        cgroup: Option<PathBuf>,
    },
    /// At the end of the run: processes that had left their task's group and outlived it were stopped.
    EscapeesStopped {
        count: usize,
    },
    /// irun's guard process ended.
    GuardEnded {
        /// How it ended (none: it stopped reading).
        exit: Option<ChildExit>,
        news: GuardNews,
    },
    RunFinished {
        outcome: RunOutcome,
        elapsed: Duration,
    },
    /// A run of a task with `junit` ended: the test cases of the JUnit reports it wrote in that run (none if it
    /// wrote none), and the files that could not be read. Sent before the task's `TaskFinished`.
    TestReports {
        task: TaskName,
        /// Shared: a report may hold 100,000 cases, and every reporter gets the event.
        reports: std::sync::Arc<TestReports>,
    },
}

impl Event {
    /// The event as irun shows it: values from irun's environment and dotenv files in the probes, programs and
    /// commands it names replaced by their `${NAME}` references (see [`crate::config::Config::shown`]). Every
    /// reporter gets the event after this.
    pub(crate) fn hide_secrets(&mut self, secrets: &Secrets) {
        let hide = |s: &mut String| {
            if let std::borrow::Cow::Owned(hidden) = secrets.hide(s) {
                *s = hidden;
            }
        };
        match self {
            Event::TaskReady { probe: Some(probe), .. } | Event::ServiceReused { probe, .. } => {
                *probe = probe.hidden(secrets)
            }
            Event::TaskFinished { outcome: Outcome::Failed(failure), .. } => match &mut **failure {
                Failure::NotReady { check, .. } => *check = check.hidden(secrets),
                Failure::SpawnFailed { program, message, .. } => {
                    hide(program);
                    hide(message);
                }
                _ => {}
            },
            Event::OrphanAdopted { program, command, .. } => {
                hide(program);
                hide(command);
            }
            Event::TaskStarted { command: Some(command), .. } => hide(command),
            _ => {}
        }
    }
}
