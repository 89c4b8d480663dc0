//! One instance of a task, in four steps: [`prepare`] what to start from the task's settings (pure), check before
//! starting ([`Job::preflight`]: a server to reuse, a port still held), [`Job::supervise`] the process (spawn,
//! output, readiness probe, timeout, stop requests from the engine) and [`Job::finish`] (stop what is left, make
//! sure the whole process group is gone, read the last output). It reports facts (started, ready, how it ended);
//! the engine decides what they mean, restarts included.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep};

use crate::config::env::expand_irun;
use crate::config::{Check, Cmd, Config, Probe, Task, TaskId};
use crate::engine::{Control, End, Happened};
use crate::events::{Event, EventSender, Stream, TaskName};
use crate::exec::guard::StopPlan;
use crate::exec::output::{self, LogMatch};
use crate::exec::probe;
use crate::exec::supervisor::{self, Process, Stopped};
use crate::exec::table::Table;
use crate::exec::{spawn, terminal};
use crate::outcome::{ChildExit, Failure, StopReason};

/// What a runner tells the driver, about one instance of a task.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) instance: u64,
    pub(crate) what: Happened,
}

/// One instance of a task to run.
pub(crate) struct Job {
    pub(crate) config: Arc<Config>,
    pub(crate) task: TaskId,
    /// Which instance of the task this is: reports carry it.
    pub(crate) instance: u64,
    pub(crate) name: TaskName,
    /// An earlier instance ran in this run: it may take a moment to free its port, and a server already
    /// answering the probe is that instance, not someone else's to reuse.
    pub(crate) restarting: bool,
    /// A service whose process exited, started again (`restart`) after this pause; a stop request ends it.
    pub(crate) after_exit: Option<Duration>,
    /// Added to the task's environment (watch mode's `IRUN_CHANGED_PATHS`, `IRUN_PORT`...).
    pub(crate) extra_env: Vec<(String, String)>,
    /// The port chosen for this service's `ready = { tcp = "auto" }`.
    pub(crate) port: Option<u16>,
    pub(crate) events: EventSender,
    pub(crate) reports: mpsc::UnboundedSender<Report>,
    /// Stop requests; only ever escalated (see [`crate::engine::control`]).
    pub(crate) control: watch::Receiver<Option<Control>>,
}

/// What starting the task takes, decided from its settings alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Launch {
    /// With `${IRUN_…}` expanded in an array command (no shell would).
    pub(crate) cmd: Cmd,
    pub(crate) cwd: PathBuf,
    /// The task's environment and what irun adds to it.
    pub(crate) env: Vec<(String, String)>,
    /// The readiness probe (`tcp = "auto"` resolved to the chosen port).
    pub(crate) probe: Option<Probe>,
    pub(crate) service: bool,
    /// A server already answering the probe is used as it is.
    pub(crate) reuse: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) stop_signal: Signal,
    pub(crate) stop_timeout: Duration,
    /// It gets irun's stdin, and irun's terminal if there is one.
    pub(crate) interactive: bool,
}

/// How the main wait ended.
enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    Stop(StopReason),
    Kill,
    NotReady,
    TimedOut(Duration),
    /// Stopped by SIGTTIN or SIGTTOU: it wants the terminal.
    WantsTerminal(Signal),
}

/// A task's output is passed on as it comes once the task has run this long; before, it is read when it ends.
/// Services' output is always read as it comes.
const LIVE_AFTER: Duration = Duration::from_millis(20);

/// How long a restarted service waits for its port to be released by the previous instance.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// A job as far as it got without waiting: see [`begin`].
pub(crate) struct Begun {
    job: Job,
    started: Instant,
    stage: Stage,
}

enum Stage {
    /// A service started again after its process exited: it pauses first, then starts as a new job does.
    Paused(Duration),
    /// A probe's address is checked before the process starts (see [`Job::preflight`]).
    Preflight(Launch),
    Running(Box<Running>),
    /// It ended without starting.
    Ended(End),
}

/// A process started for the job, and what watching it takes.
struct Running {
    launch: Launch,
    process: Process,
    pipes: [Option<std::os::fd::OwnedFd>; 2],
    /// The terminal, handed to an interactive task until it ends.
    handover: Option<terminal::Handover>,
}

/// Start the job's process now, with the run's processes in `table`, unless something must be waited for first (a
/// pause before a restart, a probe's address to check): the caller (the driver's turn) starts it the moment the
/// engine says so, and the rest of the job is [`Begun::run`].
pub(crate) fn begin(mut job: Job, table: &Arc<Table>) -> Begun {
    let started = Instant::now();
    let stage = match job.after_exit {
        Some(pause) => Stage::Paused(pause),
        None => match prepare(&job.config.tasks[job.task], &job.extra_env, job.port) {
            Err(failure) => Stage::Ended(End::NotStarted(failure)),
            Ok(launch) if launch.probe.is_some() => Stage::Preflight(launch),
            Ok(launch) => match job.start(table, launch) {
                Ok(running) => Stage::Running(Box::new(running)),
                Err(end) => Stage::Ended(end),
            },
        },
    };
    Begun { job, started, stage }
}

impl Begun {
    /// Run the job to its end and report it. (A panic here is reported as an end by the launcher.)
    pub(crate) async fn run(self, table: Arc<Table>) {
        let Begun { mut job, started, stage } = self;
        let end = match stage {
            Stage::Ended(end) => end,
            Stage::Running(running) => job.watch(&table, *running, started).await,
            Stage::Preflight(launch) => job.execute(&table, launch, started).await,
            Stage::Paused(pause) => {
                let stopped = tokio::select! {
                    // A stop asked for during the pause wins, even if the pause ended at the same moment.
                    biased;
                    _ = next_control(&mut job.control) => true,
                    () = sleep(pause) => job.control.borrow().is_some(),
                };
                let config = job.config.clone();
                match prepare(&config.tasks[job.task], &job.extra_env, job.port) {
                    _ if stopped => End::Stopped,
                    Ok(launch) => job.execute(&table, launch, Instant::now()).await,
                    Err(failure) => End::NotStarted(failure),
                }
            }
        };
        job.report(Happened::Exited { end, duration: started.elapsed() });
    }
}

/// `FORCE_COLOR=1` and `CLICOLOR_FORCE=1`, for a task whose output irun colours: tools that colour only on a terminal
/// colour under irun too. Each unless the task's environment or irun's (`inherited`) has it, or `color = false`.
/// Added as the task starts, not to its `env`: they are no part of its fingerprint.
pub(crate) fn color_env(task: &Task, inherited: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let Some(process) = task.process().filter(|p| p.color) else { return Vec::new() };
    ["FORCE_COLOR", "CLICOLOR_FORCE"]
        .into_iter()
        .filter(|name| !inherited(name) && !process.env.iter().any(|(k, _)| k == name))
        .map(|name| (name.to_string(), "1".to_string()))
        .collect()
}

/// What starting `task` takes: its command, directory, environment (with `extra_env`) and probe. `port` is the
/// one chosen for `tcp = "auto"`; without one, such a service cannot start.
pub(crate) fn prepare(task: &Task, extra_env: &[(String, String)], port: Option<u16>) -> Result<Launch, Failure> {
    let settings = task.process().expect("groups are not run as processes");
    if port.is_none() && task.service().is_some_and(|s| s.auto_port) {
        return Err(Failure::NoFreePort);
    }
    let mut env: Vec<(String, String)> = settings.env.iter().chain(extra_env).cloned().collect();
    // `env` values may name the ports chosen as services start (`BASE_URL = "http://127.0.0.1:${IRUN_PORT_WEB}"`).
    let resolved: Vec<String> = env.iter().map(|(_, v)| expand_irun(v, extra_env)).collect();
    for ((_, value), resolved) in env.iter_mut().zip(resolved) {
        *value = resolved;
    }
    let cmd = argv_expanded(&settings.cmd, settings.passed, &env);
    let probe = match (task.probe(), port) {
        (Some(p), Some(port)) if p.check == Check::AutoTcp => {
            Some(Probe { check: Check::Tcp { host: None, port }, interval: p.interval, timeout: p.timeout })
        }
        (Some(p), _) => {
            let check = match &p.check {
                Check::Exec(cmd) => Check::Exec(argv_expanded(cmd, 0, &env)),
                check => crate::config::resolve_probe(check, &env).map_err(Failure::Internal)?,
            };
            Some(Probe { check, ..p.clone() })
        }
        (None, _) => None,
    };
    Ok(Launch {
        cmd,
        cwd: settings.cwd.to_path_buf(),
        env,
        probe,
        service: task.is_service(),
        reuse: task.service().is_some_and(|s| s.reuse),
        timeout: settings.timeout,
        stop_signal: settings.stop_signal,
        stop_timeout: settings.stop_timeout,
        interactive: task.is_interactive(),
    })
}

/// No shell will expand `${IRUN_PORT}` and the like in an array command: irun does, except in its last `passed`
/// items (arguments given after `--`, which reach the task as given).
fn argv_expanded(cmd: &Cmd, passed: usize, env: &[(String, String)]) -> Cmd {
    match cmd {
        Cmd::Argv(argv) if argv.iter().any(|a| a.contains("${IRUN_")) => {
            let own = argv.len().saturating_sub(passed);
            let expanded = argv[..own].iter().map(|a| expand_irun(a, env));
            Cmd::Argv(expanded.chain(argv[own..].iter().cloned()).collect())
        }
        cmd => cmd.clone(),
    }
}

impl Job {
    fn report(&self, what: Happened) {
        let _ = self.reports.send(Report { instance: self.instance, what });
    }

    fn report_ready(&self, started: Instant, probe: Option<&Probe>, reused: bool) {
        let probe = probe.map(|p| p.check.clone());
        self.report(Happened::Ready { after: started.elapsed(), probe, reused });
    }

    /// Check before starting, start, and watch the process to its end.
    async fn execute(&mut self, table: &Arc<Table>, launch: Launch, started: Instant) -> End {
        if let Some(end) = self.preflight(table, &launch, started).await {
            return end;
        }
        match self.start(table, launch) {
            Ok(running) => self.watch(table, running, started).await,
            Err(end) => end,
        }
    }

    /// Start the process (no waiting), and report that it started.
    fn start(&mut self, table: &Arc<Table>, launch: Launch) -> Result<Running, End> {
        // An interactive task talks to irun's terminal itself (if irun has one), in its foreground.
        let terminal = if launch.interactive { terminal::foreground() } else { None };
        let spec = supervisor::Spec {
            cmd: &launch.cmd,
            cwd: &launch.cwd,
            env: &launch.env,
            output: if terminal.is_some() { spawn::Output::Inherited } else { spawn::Output::Piped },
            stdin_inherited: launch.interactive,
            stop: StopPlan { signal: launch.stop_signal, grace: launch.stop_timeout },
            task: Some(&self.name),
            // A task need not hold irun up until its program is exec'ed: irun goes on with the run meanwhile. (A
            // service reports its readiness, an interactive task gets the terminal: they wait for it.)
            exec_later: !launch.service && !launch.interactive,
        };
        let (process, (stdout, stderr)) = match supervisor::spawn(table, &spec) {
            Ok(spawned) => spawned,
            Err(e) => return Err(not_started(&launch, e)),
        };
        let handover = terminal.map(|t| t.hand_to(process.pid() as i32));
        if handover.is_some() {
            // Handed to the reporters at once, so they stop drawing before the task does (see `events::channel`).
            self.events.send(Event::TerminalHandedOver { task: self.name.clone() });
        }
        self.report(Happened::Started { pid: process.pid(), port: self.port });
        Ok(Running { launch, process, pipes: [stdout, stderr], handover })
    }

    /// Watch the started process to its end (see [`Job::supervise`] and [`Job::finish`]).
    async fn watch(&mut self, table: &Arc<Table>, running: Running, started: Instant) -> End {
        let Running { launch, mut process, pipes, handover } = running;
        let (ending, readers) = self.supervise(table, &launch, &mut process, pipes, started, handover.is_some()).await;
        let end = self.finish(&launch, process, ending, readers).await;
        // irun takes the terminal back (a Ctrl-C that ended the task is the engine's to act on).
        drop(handover);
        end
    }

    /// Before anything is started: a server already up to reuse (only before irun's own first start), a port the
    /// previous instance has not let go of yet, a port someone else holds. `Some`: how it ended without starting.
    async fn preflight(&mut self, table: &Arc<Table>, launch: &Launch, started: Instant) -> Option<End> {
        let probe = launch.probe.as_ref()?;
        if launch.reuse && !self.restarting {
            let ctx = probe::Context { table, cwd: &launch.cwd, env: &launch.env, log_matched: None };
            if probe::passes_now(probe, &ctx).await {
                // Someone else's server: used as it is, never signalled.
                self.report_ready(started, Some(probe), true);
                next_control(&mut self.control).await;
                return Some(End::Stopped);
            }
        }
        let (host, port) = probe.check.address()?;
        if self.restarting {
            // The previous instance may take a moment to let go of the port; a stop request wins.
            tokio::select! {
                () = probe::wait_until_free(host, port, PORT_RELEASE_WAIT) => {}
                _ = next_control(&mut self.control) => return Some(End::Stopped),
            }
        }
        if probe::address_in_use(host, port).await {
            let file = self.config.file_name();
            let (key, reuse) = (probe.check.key(), launch.reuse);
            return Some(End::NotStarted(Failure::PortInUse { port, key, file, reuse }));
        }
        None
    }

    /// The process runs: pass its output on, probe its readiness, enforce its timeout, and wait for it to exit or
    /// for the engine to ask it to stop. How that wait ended, and the output readers still running.
    async fn supervise(
        &mut self,
        table: &Arc<Table>,
        launch: &Launch,
        process: &mut Process,
        pipes: [Option<std::os::fd::OwnedFd>; 2],
        started: Instant,
        has_terminal: bool,
    ) -> (Ending, output::Pumps) {
        let (log, log_matched) = match launch.probe.as_ref().map(|p| &p.check) {
            Some(Check::Log(re)) => {
                let (tx, rx) = watch::channel(false);
                (Some(LogMatch { pattern: Arc::new(re.0.clone()), matched: Arc::new(tx) }), Some(rx))
            }
            _ => (None, None),
        };
        // Read later: a short task's output is read once it has ended (no reader to start, no wake-up for the
        // pipes closing); one still running after `LIVE_AFTER` gets readers that pass its lines on as they come.
        let [stdout, stderr] = pipes;
        let mut unread: Vec<output::Reader> = [(stdout, Stream::Stdout), (stderr, Stream::Stderr)]
            .into_iter()
            .filter_map(|(fd, stream)| Some(self.reader(table, fd?, stream, log.clone())))
            .collect();
        let mut readers = output::Pumps::default();
        let live = sleep(if launch.service { Duration::ZERO } else { LIVE_AFTER });
        tokio::pin!(live);
        let mut ready = !launch.service;
        if launch.service && launch.probe.is_none() {
            ready = true;
            self.report_ready(started, None, false);
        }
        let mut probe_ctx = probe::Context { table, cwd: &launch.cwd, env: &launch.env, log_matched };
        let probe_fut = async {
            match &launch.probe {
                Some(p) => probe::wait_ready(p, &mut probe_ctx).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(probe_fut);
        let deadline = sleep(launch.timeout.unwrap_or(Duration::from_secs(86400 * 365 * 10)));
        tokio::pin!(deadline);
        let terminal = supervisor::stopped_for_terminal(process.pid() as i32, LIVE_AFTER, table.controlling_terminal);
        tokio::pin!(terminal);
        let ending = loop {
            tokio::select! {
                status = process.wait() => break Ending::Exited(status),
                () = &mut live, if !unread.is_empty() => {
                    unread.drain(..).for_each(|r| readers.start(r));
                }
                passed = &mut probe_fut, if !ready => {
                    if !passed {
                        break Ending::NotReady;
                    }
                    ready = true;
                    self.report_ready(started, launch.probe.as_ref(), false);
                }
                () = &mut deadline, if launch.timeout.is_some() => break Ending::TimedOut(launch.timeout.unwrap_or_default()),
                signal = &mut terminal, if !has_terminal => break Ending::WantsTerminal(signal),
                control = next_control(&mut self.control) => match control {
                    Control::Stop(reason) => break Ending::Stop(reason),
                    Control::Kill => break Ending::Kill,
                },
            }
        };
        // Output not read yet is read now, before anything is stopped: what the task wrote comes before the stop,
        // and a process that writes much while it stops must not block on a full pipe.
        if !unread.is_empty() {
            let still_open = match ending {
                // The leader is gone: what it left in the pipes is read at once, most often all there is.
                Ending::Exited(_) => output::ended(unread).await,
                _ => unread,
            };
            still_open.into_iter().for_each(|r| readers.start(r));
        }
        (ending, readers)
    }

    fn reader(&self, table: &Table, fd: std::os::fd::OwnedFd, stream: Stream, log: Option<LogMatch>) -> output::Reader {
        let (task, events, buffers) = (self.name.clone(), self.events.clone(), table.buffers.clone());
        output::Reader { fd, task, stream, events, log, lines: output::Lines::default(), buffers }
    }

    /// The wait is over: stop what is left as it asks, make sure the group is gone, and read the last output.
    async fn finish(&mut self, launch: &Launch, mut process: Process, ending: Ending, readers: output::Pumps) -> End {
        let end = match ending {
            // Started before its exec, which failed (it said so, then exited, without running anything).
            Ending::Exited(_) if let Some(error) = process.exec_failed() => {
                let program = crate::exec::command_line::invocation(&launch.cmd).program;
                not_started(launch, spawn::SpawnError { program, error })
            }
            Ending::Exited(result) => {
                if process.has_leftovers(launch.service) {
                    // The leader is gone but processes it started linger in its group: they must not outlive it.
                    self.stop(&mut process, launch, StopReason::LeftBehind).await;
                } else {
                    // Nothing left to signal; just record that the group is gone.
                    process.wait_gone(Instant::now()).await;
                }
                match result {
                    Err(e) => End::Broken(format!("could not wait for the process: {e}")),
                    Ok(exit) => End::Exited(ChildExit::from_status(exit)),
                }
            }
            Ending::Stop(reason) => {
                self.stop(&mut process, launch, reason).await;
                End::Stopped
            }
            Ending::Kill => {
                process.kill_and_wait().await;
                End::Stopped
            }
            Ending::NotReady => {
                self.stop(&mut process, launch, StopReason::ProbeFailed).await;
                let probe = launch.probe.as_ref().expect("only a probe can fail");
                End::NotReady { timeout: probe.timeout, check: probe.check.clone() }
            }
            Ending::TimedOut(after) => {
                self.stop(&mut process, launch, StopReason::TimedOut).await;
                End::TimedOut(after)
            }
            Ending::WantsTerminal(signal) => {
                self.events.send(Event::WaitingForTerminal { task: self.name.clone(), signal });
                self.stop(&mut process, launch, StopReason::WantsTerminal).await;
                End::WantedTerminal(signal)
            }
        };
        // Every line the task wrote is reported before its end; a pipe still held by a process that left the task
        // does not hold the end back.
        readers.finish().await;
        end
    }

    /// Stop the process group gracefully, switching to SIGKILL at once if a kill is requested meanwhile.
    async fn stop(&mut self, process: &mut Process, launch: &Launch, reason: StopReason) {
        let signal = reason.signal(launch.stop_signal);
        self.events.send(Event::TaskStopping { task: self.name.clone(), reason, signal });
        let graceful = tokio::select! {
            stopped = process.stop(signal, launch.stop_timeout) => Some(stopped),
            () = kill_requested(&mut self.control) => None,
        };
        match graceful {
            Some(Stopped::Gracefully) => {}
            Some(Stopped::Killed) => {
                self.events.send(Event::TaskKilled { task: self.name.clone(), grace: launch.stop_timeout, signal })
            }
            None => process.kill_and_wait().await,
        }
    }
}

/// The next control message; never resolves once the driver has gone.
async fn next_control(rx: &mut watch::Receiver<Option<Control>>) -> Control {
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Some(control) = *rx.borrow_and_update() {
            return control;
        }
    }
}

async fn kill_requested(rx: &mut watch::Receiver<Option<Control>>) {
    loop {
        if *rx.borrow_and_update() == Some(Control::Kill) {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why a task could not start: its directory is missing, or what the spawn (or the child's exec) said.
fn not_started(launch: &Launch, e: spawn::SpawnError) -> End {
    if !launch.cwd.is_dir() {
        return End::NotStarted(Failure::NoWorkingDirectory(launch.cwd.clone()));
    }
    End::NotStarted(Failure::SpawnFailed { program: e.program, kind: e.error.kind(), message: e.error.to_string() })
}

#[cfg(test)]
mod tests;
