//! One task's life: check its port is free, spawn it, pump its output, probe readiness, enforce its timeout, obey
//! stop requests from the engine, and make sure its whole process group is gone before reporting the end. It
//! reports facts (started, ready, how it ended); the engine decides what they mean.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::config::{Check, Config, Probe, Task};
use crate::engine::{Control, End};
use crate::events::{Event, EventSender, Stream, TaskName};
use crate::outcome::{ChildExit, Failure, StopReason};
use crate::output::{self, LogMatch};
use crate::probe;
use crate::supervisor::{self, Process, Stopped};

/// What a runner tells the driver, about one instance of a task.
#[derive(Debug)]
pub struct Report {
    pub instance: u64,
    pub what: Happened,
}

#[derive(Debug)]
pub enum Happened {
    Started {
        pid: u32,
        port: Option<u16>,
    },
    Ready {
        after: Duration,
        probe: Option<String>,
    },
    /// A service's process exited and, by its `restart` policy, is started again after `delay`.
    Restarting {
        attempt: u32,
        max: u32,
        exit: ChildExit,
        delay: Duration,
    },
    Finished {
        end: End,
        duration: Duration,
    },
}

pub struct Job {
    pub config: Arc<Config>,
    pub index: usize,
    /// Which run of the task this is: reports carry it.
    pub instance: u64,
    pub name: TaskName,
    /// A service started again in watch mode: its previous instance may take a moment to free its port.
    pub restarting: bool,
    /// Added to the task's environment (watch mode's `IRUN_CHANGED_PATHS`, `IRUN_PORT`...).
    pub extra_env: Vec<(String, String)>,
    /// The port chosen for this service's `ready = { tcp = "auto" }`.
    pub port: Option<u16>,
    pub events: EventSender,
    pub reports: mpsc::UnboundedSender<Report>,
    /// Stop requests; only ever escalated (see [`crate::engine::control`]).
    pub control: watch::Receiver<Option<Control>>,
}

/// How the main wait ended.
enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    Stop(StopReason),
    Kill,
    ProbeFailed(String),
    TimedOut(Duration),
}

/// Readers get this long to drain the pipes once the process group is gone; only a process that escaped the group
/// (and still holds the pipe) can make them wait that long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A task's output is passed on as it comes once the task has run this long; before, it is read when it ends.
/// Services' output is always read as it comes.
const LIVE_AFTER: Duration = Duration::from_millis(20);

/// How long a restarted service waits for its port to be released by the previous instance.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(10);

pub async fn run(mut job: Job) {
    let started = Instant::now();
    let (policy, max) = {
        let service = job.config.tasks[job.index].service();
        service.map_or((crate::config::Restart::No, 0), |s| (s.restart, s.max_restarts))
    };
    let mut restarts = 0;
    let end = loop {
        let end = job.execute(Instant::now()).await;
        // A service that exited by itself may be started again (`restart`), after a growing pause; a stop
        // request during the pause ends it.
        let End::Exited(exit) = end else { break end };
        // A stop already requested (perhaps seen while the exited instance's group was cleaned up) wins.
        let stop_requested = |job: &Job| job.control.borrow().is_some();
        if !policy.after(exit) || restarts >= max || stop_requested(&job) {
            break end;
        }
        restarts += 1;
        let delay = restart_delay(restarts);
        job.report(Happened::Restarting { attempt: restarts, max, exit, delay });
        tokio::select! {
            () = sleep(delay) => {}
            _ = next_control(&mut job.control) => break End::Stopped,
        }
        if stop_requested(&job) {
            break End::Stopped;
        }
        job.restarting = true;
    };
    job.report(Happened::Finished { end, duration: started.elapsed() });
}

/// The pause before restart number `n` (from 1): 100ms, doubling each time, at most 10s.
pub fn restart_delay(n: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(n.saturating_sub(1).min(16))).min(Duration::from_secs(10))
}

impl Job {
    fn notice(&self, message: String) {
        self.events.send(Event::Notice { task: Some(self.name.clone()), message });
    }

    fn report(&self, what: Happened) {
        let _ = self.reports.send(Report { instance: self.instance, what });
    }

    async fn execute(&mut self, started: Instant) -> End {
        let config = self.config.clone();
        let task = &config.tasks[self.index];
        let settings = task.process().expect("groups are not run as processes");
        let cmd = &settings.cmd;
        let configured = task.probe();
        // `tcp = "auto"` probes the port chosen for this start.
        let chosen = match (configured, self.port) {
            (Some(p), Some(port)) if p.check == Check::AutoTcp => {
                Some(Probe { check: Check::Tcp { host: None, port }, interval: p.interval, timeout: p.timeout })
            }
            _ => None,
        };
        if chosen.is_none() && configured.is_some_and(|p| p.check == Check::AutoTcp) {
            let why = "no free port could be found on 127.0.0.1 for `ready = { tcp = \"auto\" }`".to_string();
            return End::NotStarted(Failure::Internal(why));
        }
        let probe = chosen.as_ref().or(configured);

        // Only before irun's own first start: a restarted service's old instance must not pass for someone else's.
        if let (true, false, Some(p)) = (task.service().is_some_and(|s| s.reuse), self.restarting, probe) {
            let ctx = probe::Context { cwd: &settings.cwd, env: &settings.env, log_matched: None };
            if probe::passes_now(p, &ctx).await {
                // Someone else's server: used as it is, never signalled.
                self.notice(format!(
                    "reusing the server already running ({}); irun did not start it and will not stop it",
                    crate::report::text::check(&p.check)
                ));
                self.report_ready(
                    started,
                    Some(format!("{} (already running, reused)", crate::report::text::check(&p.check))),
                );
                next_control(&mut self.control).await;
                return End::Stopped;
            }
        }
        if let Some(p) = probe {
            if let Some((host, port)) = p.check.address() {
                if self.restarting {
                    // The previous instance may take a moment to let go of the port; a stop request wins.
                    tokio::select! {
                        () = probe::wait_until_free(host, port, PORT_RELEASE_WAIT) => {}
                        _ = next_control(&mut self.control) => return End::Stopped,
                    }
                }
                if probe::address_in_use(host, port).await {
                    let file = config.source.path.file_name().map_or("Irun.toml".into(), |f| f.to_string_lossy());
                    return End::NotStarted(Failure::PortInUse { port, key: p.check.key(), file: file.into_owned() });
                }
            }
        }
        let log = match probe.map(|p| &p.check) {
            Some(Check::Log(re)) => {
                let (tx, rx) = watch::channel(false);
                Some((LogMatch { pattern: Arc::new(re.0.clone()), matched: Arc::new(tx) }, rx))
            }
            _ => None,
        };
        let env: Vec<(String, String)> = settings.env.iter().chain(&self.extra_env).cloned().collect();
        let expanded;
        let cmd = match cmd {
            // No shell will expand `${IRUN_PORT}` and the like in an array command: irun does.
            crate::config::Cmd::Argv(argv) if argv.iter().any(|a| a.contains("${IRUN_")) => {
                let argv = argv.iter().map(|a| crate::config::env::expand_irun(a, &env)).collect();
                expanded = crate::config::Cmd::Argv(argv);
                &expanded
            }
            _ => cmd,
        };
        let spec = supervisor::Spec { cmd, cwd: &settings.cwd, env: &env, capture_output: true };
        let (mut process, stdout, stderr) = match supervisor::spawn(&spec) {
            Ok(spawned) => spawned,
            Err(_) if !settings.cwd.is_dir() => {
                return End::NotStarted(Failure::NoWorkingDirectory(settings.cwd.clone()));
            }
            Err(e) => return End::NotStarted(spawn_error(e)),
        };
        self.report(Happened::Started { pid: process.pid(), port: self.port });

        let log_match = log.as_ref().map(|(m, _)| m.clone());
        let reader = |fd, stream| output::Reader {
            fd,
            task: self.name.clone(),
            stream,
            events: self.events.clone(),
            log: log_match.clone(),
            lines: output::Lines::default(),
        };
        // Read later: a short task's output is read once it has ended (no reader to start, no wake-up for the
        // pipes closing); one still running after `LIVE_AFTER` gets readers that pass its lines on as they come.
        let mut unread: Vec<output::Reader> = [(stdout, Stream::Stdout), (stderr, Stream::Stderr)]
            .into_iter()
            .filter_map(|(fd, stream)| Some(reader(fd?, stream)))
            .collect();
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let is_service = task.is_service();
        let live = sleep(if is_service { Duration::ZERO } else { LIVE_AFTER });
        tokio::pin!(live);

        let mut ready = !is_service;
        if is_service && probe.is_none() {
            ready = true;
            self.report_ready(started, None);
        }
        let mut probe_ctx = probe::Context { cwd: &settings.cwd, env: &env, log_matched: log.map(|(_, rx)| rx) };
        let probe_fut = async {
            match probe {
                Some(p) => probe::wait_ready(p, &mut probe_ctx).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(probe_fut);
        let time_limit = settings.timeout.unwrap_or(Duration::MAX);
        let deadline = sleep(settings.timeout.unwrap_or(Duration::from_secs(86400 * 365 * 10)));
        tokio::pin!(deadline);

        let ending = loop {
            tokio::select! {
                status = process.wait() => break Ending::Exited(status),
                () = &mut live, if !unread.is_empty() => {
                    readers.extend(unread.drain(..).map(|r| tokio::spawn(output::pump(r))));
                }
                result = &mut probe_fut, if !ready => match result {
                    Ok(()) => {
                        ready = true;
                        self.report_ready(started, probe.map(|p| crate::report::text::check(&p.check)));
                    }
                    Err(why) => break Ending::ProbeFailed(why),
                },
                () = &mut deadline, if settings.timeout.is_some() => break Ending::TimedOut(time_limit),
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
                Ending::Exited(_) => output::ended(std::mem::take(&mut unread)).await,
                _ => std::mem::take(&mut unread),
            };
            readers.extend(still_open.into_iter().map(|r| tokio::spawn(output::pump(r))));
        }

        let end = match ending {
            Ending::Exited(result) => {
                if process.has_leftovers(is_service) {
                    // The leader is gone but processes it started linger in its group: they must not outlive it.
                    self.stop(&mut process, settings, StopReason::LeftBehind).await;
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
                self.stop(&mut process, settings, reason).await;
                End::Stopped
            }
            Ending::Kill => {
                process.kill_and_wait().await;
                End::Stopped
            }
            Ending::ProbeFailed(why) => {
                self.stop(&mut process, settings, StopReason::ProbeFailed).await;
                End::ProbeFailed(why)
            }
            Ending::TimedOut(after) => {
                self.stop(&mut process, settings, StopReason::TimedOut).await;
                End::TimedOut(after)
            }
        };

        // Every line the task wrote is reported before its end.
        for reader in readers {
            let abort = reader.abort_handle();
            if timeout(DRAIN_TIMEOUT, reader).await.is_err() {
                abort.abort();
            }
        }
        end
    }

    fn report_ready(&self, started: Instant, probe: Option<String>) {
        self.report(Happened::Ready { after: started.elapsed(), probe });
    }

    /// Stop the process group gracefully, switching to SIGKILL at once if a kill is requested meanwhile.
    async fn stop(&mut self, process: &mut Process, task: &crate::config::Process, reason: StopReason) {
        self.events.send(Event::TaskStopping { task: self.name.clone(), reason });
        let graceful = tokio::select! {
            stopped = process.stop(task.stop_signal, task.stop_timeout) => Some(stopped),
            () = kill_requested(&mut self.control) => None,
        };
        match graceful {
            Some(Stopped::Gracefully) => {}
            Some(Stopped::Killed) => self.notice(format!(
                "did not exit within {} of {}; killed it with SIGKILL",
                humantime::format_duration(task.stop_timeout),
                task.stop_signal.as_str()
            )),
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

fn spawn_error(e: crate::spawn::SpawnError) -> Failure {
    Failure::SpawnFailed { program: e.program, kind: e.error.kind(), message: e.error.to_string() }
}
