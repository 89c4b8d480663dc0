//! One task's life: check its port is free, spawn it, pump its output, probe readiness, enforce its timeout, obey
//! stop requests from the scheduler, and make sure its whole process group is gone before reporting the end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::config::{Check, Config, Task};
use crate::events::{Event, EventSender, Status, Stream, TaskName};
use crate::output::{self, LogMatch};
use crate::probe;
use crate::supervisor::{self, Process, Stopped};

/// What the scheduler asks of a running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Run,
    /// Stop gracefully: stop signal, grace period, SIGKILL.
    Stop(StopReason),
    /// SIGKILL now (Ctrl-C pressed twice).
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A service nothing needs any more.
    NotNeeded,
    /// Another task failed (fail-fast).
    Cancelled,
    /// irun received SIGINT or SIGTERM.
    Interrupted,
    /// Watch mode: its sources changed (or a dep reran); it will be started again.
    Restart,
}

impl StopReason {
    fn describe(self) -> &'static str {
        match self {
            StopReason::NotNeeded => "no longer needed",
            StopReason::Cancelled => "cancelled after a failure",
            StopReason::Interrupted => "interrupted",
            StopReason::Restart => "restarting: its inputs changed",
        }
    }
}

/// What a runner tells the scheduler.
#[derive(Debug)]
pub enum Report {
    Started { task: usize, pid: u32 },
    Ready { task: usize, after: Duration, probe: Option<String> },
    Finished { task: usize, status: Status, duration: Duration },
}

pub struct Job {
    pub config: Arc<Config>,
    pub index: usize,
    pub name: TaskName,
    /// A foreground service may exit on its own; any other service exiting while needed is a failure.
    pub foreground: bool,
    /// A service started again in watch mode: its previous instance may take a moment to free its port.
    pub restarting: bool,
    /// Added to the task's environment (watch mode's `IRUN_CHANGED_PATHS`).
    pub extra_env: Vec<(String, String)>,
    pub events: EventSender,
    pub reports: mpsc::UnboundedSender<Report>,
    pub control: watch::Receiver<Control>,
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

/// How long a restarted service waits for its port to be released by the previous instance.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(10);

pub async fn run(mut job: Job) {
    let started = Instant::now();
    let status = job.execute(started).await;
    let _ = job.reports.send(Report::Finished { task: job.index, status, duration: started.elapsed() });
}

impl Job {
    fn notice(&self, message: String) {
        self.events.send(Event::Notice { task: Some(self.name.clone()), message });
    }

    async fn execute(&mut self, started: Instant) -> Status {
        let config = self.config.clone();
        let task = &config.tasks[self.index];
        let cmd = task.cmd.as_ref().expect("groups are not run as processes");
        let probe = task.service.as_ref().and_then(|s| s.ready.as_ref());

        if let Some(p) = probe {
            if let Some((host, port)) = p.check.address() {
                if self.restarting {
                    // The previous instance may take a moment to let go of the port; a stop request wins.
                    tokio::select! {
                        () = probe::wait_until_free(host, port, PORT_RELEASE_WAIT) => {}
                        _ = next_control(&mut self.control) => return Status::Cancelled,
                    }
                }
                if probe::address_in_use(host, port).await {
                    return Status::Failed(format!(
                        "port {port} is already in use by another process; stop it or change `ready.{}` in {}",
                        p.check.key(),
                        config.source.path.file_name().map_or("Irun.toml".into(), |f| f.to_string_lossy()),
                    ));
                }
            }
        }
        if !task.cwd.is_dir() {
            return Status::Failed(format!(
                "working directory {} does not exist; create it or fix `cwd` in Irun.toml",
                task.cwd.display()
            ));
        }

        let log = match probe.map(|p| &p.check) {
            Some(Check::Log(re)) => {
                let (tx, rx) = watch::channel(false);
                Some((LogMatch { pattern: Arc::new(re.clone()), matched: Arc::new(tx) }, rx))
            }
            _ => None,
        };
        let env: Vec<(String, String)> = task.env.iter().chain(&self.extra_env).cloned().collect();
        let spec = supervisor::Spec { cmd, cwd: &task.cwd, env: &env, capture_output: true };
        let (mut process, stdout, stderr) = match supervisor::spawn(&spec) {
            Ok(spawned) => spawned,
            Err(e) => return Status::Failed(spawn_error(cmd, &e)),
        };
        let _ = self.reports.send(Report::Started { task: self.index, pid: process.pid() });

        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let log_match = log.as_ref().map(|(m, _)| m.clone());
        if let Some(out) = stdout {
            readers.push(tokio::spawn(output::pump(
                out,
                self.name.clone(),
                Stream::Stdout,
                self.events.clone(),
                log_match.clone(),
            )));
        }
        if let Some(err) = stderr {
            readers.push(tokio::spawn(output::pump(
                err,
                self.name.clone(),
                Stream::Stderr,
                self.events.clone(),
                log_match,
            )));
        }

        let is_service = task.is_service();
        let mut ready = !is_service;
        if is_service && probe.is_none() {
            ready = true;
            self.report_ready(started, None);
        }
        let mut probe_ctx = probe::Context { cwd: &task.cwd, env: &task.env, log_matched: log.map(|(_, rx)| rx) };
        let probe_fut = async {
            match probe {
                Some(p) => probe::wait_ready(p, &mut probe_ctx).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(probe_fut);
        let time_limit = task.timeout.unwrap_or(Duration::MAX);
        let deadline = sleep(task.timeout.unwrap_or(Duration::from_secs(86400 * 365 * 10)));
        tokio::pin!(deadline);

        let ending = loop {
            tokio::select! {
                status = process.wait() => break Ending::Exited(status),
                result = &mut probe_fut, if !ready => match result {
                    Ok(()) => {
                        ready = true;
                        self.report_ready(started, probe.map(|p| p.check.describe()));
                    }
                    Err(why) => break Ending::ProbeFailed(why),
                },
                () = &mut deadline, if task.timeout.is_some() => break Ending::TimedOut(time_limit),
                control = next_control(&mut self.control) => match control {
                    Control::Run => {}
                    Control::Stop(reason) => break Ending::Stop(reason),
                    Control::Kill => break Ending::Kill,
                },
            }
        };

        let status = match ending {
            Ending::Exited(result) => {
                if process.has_leftovers(is_service) {
                    // The leader is gone but processes it started linger in its group: they must not outlive it.
                    self.stop(&mut process, task, "its main process exited and left processes behind").await;
                } else {
                    // Nothing left to signal; just record that the group is gone.
                    process.wait_gone(Instant::now()).await;
                }
                let stop_requested = matches!(*self.control.borrow(), Control::Stop(_) | Control::Kill);
                match result {
                    Err(e) => Status::Failed(format!("could not wait for the process: {e}")),
                    Ok(exit) => exit_status(
                        exit,
                        ExitContext { is_service, ready, foreground: self.foreground, stop_requested },
                    ),
                }
            }
            Ending::Stop(reason) => {
                self.stop(&mut process, task, reason.describe()).await;
                match reason {
                    StopReason::NotNeeded => Status::Ok,
                    // Restarted in watch mode: the scheduler runs it again and ignores this instance's end.
                    StopReason::Restart if is_service && ready => Status::Ok,
                    _ if is_service && ready => Status::Ok,
                    _ => Status::Cancelled,
                }
            }
            Ending::Kill => {
                process.kill_and_wait().await;
                if is_service && ready { Status::Ok } else { Status::Cancelled }
            }
            Ending::ProbeFailed(why) => {
                self.stop(&mut process, task, "its readiness probe failed").await;
                Status::Failed(why)
            }
            Ending::TimedOut(after) => {
                self.stop(&mut process, task, "it timed out").await;
                Status::TimedOut(after)
            }
        };

        // Every line the task wrote is reported before its end.
        for reader in readers {
            let abort = reader.abort_handle();
            if timeout(DRAIN_TIMEOUT, reader).await.is_err() {
                abort.abort();
            }
        }
        status
    }

    fn report_ready(&self, started: Instant, probe: Option<String>) {
        let _ = self.reports.send(Report::Ready { task: self.index, after: started.elapsed(), probe });
    }

    /// Stop the process group gracefully, switching to SIGKILL at once if a kill is requested meanwhile.
    async fn stop(&mut self, process: &mut Process, task: &Task, why: &str) {
        self.events.send(Event::TaskStopping { task: self.name.clone(), reason: why.to_string() });
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

/// What decides the status of a task whose main process exited by itself.
#[derive(Debug, Clone, Copy)]
struct ExitContext {
    is_service: bool,
    ready: bool,
    foreground: bool,
    /// The scheduler had asked it to stop (irun had not signalled it yet).
    stop_requested: bool,
}

fn exit_status(exit: std::process::ExitStatus, cx: ExitContext) -> Status {
    let how = supervisor::describe_exit(exit);
    match cx {
        // A task's exit code always counts: irun had not signalled it.
        ExitContext { is_service: false, .. } if exit.success() => Status::Ok,
        ExitContext { is_service: false, .. } => Status::Failed(how),
        // A service that was being stopped may end any way it likes.
        ExitContext { stop_requested: true, ready: true, .. } => Status::Ok,
        ExitContext { stop_requested: true, ready: false, .. } => Status::Cancelled,
        ExitContext { ready: false, .. } => Status::Failed(format!("exited with {how} before it was ready")),
        ExitContext { foreground: true, .. } if exit.success() => Status::Ok,
        ExitContext { foreground: true, .. } => Status::Failed(how),
        ExitContext { .. } => Status::Failed(format!("exited unexpectedly ({how}) while tasks still needed it")),
    }
}

/// The next control message; never resolves once the scheduler has gone.
async fn next_control(rx: &mut watch::Receiver<Control>) -> Control {
    match rx.changed().await {
        Ok(()) => *rx.borrow_and_update(),
        Err(_) => std::future::pending().await,
    }
}

async fn kill_requested(rx: &mut watch::Receiver<Control>) {
    loop {
        if *rx.borrow_and_update() == Control::Kill {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn spawn_error(cmd: &crate::config::Cmd, e: &std::io::Error) -> String {
    let program = match cmd {
        crate::config::Cmd::Shell(_) => "sh",
        crate::config::Cmd::Argv(argv) => argv[0].as_str(),
    };
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("cannot start `{program}`: no such program; check `cmd` in Irun.toml"),
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot start `{program}`: permission denied; is it executable (chmod +x)?")
        }
        _ => format!("cannot start `{program}`: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    const TASK: ExitContext = ExitContext { is_service: false, ready: true, foreground: false, stop_requested: false };
    const SERVICE: ExitContext =
        ExitContext { is_service: true, ready: true, foreground: false, stop_requested: false };

    fn code(c: i32) -> ExitStatus {
        ExitStatus::from_raw(c << 8)
    }

    #[test]
    fn a_task_that_fails_is_failed_even_while_a_stop_is_pending() {
        let cx = ExitContext { stop_requested: true, ..TASK };
        assert_eq!(exit_status(code(1), cx), Status::Failed("exit code 1".into()));
        assert_eq!(exit_status(code(0), cx), Status::Ok);
    }

    #[test]
    fn services_ending_on_their_own() {
        let not_ready = ExitContext { ready: false, ..SERVICE };
        assert_eq!(
            exit_status(code(3), not_ready),
            Status::Failed("exited with exit code 3 before it was ready".into())
        );
        assert_eq!(
            exit_status(code(0), SERVICE),
            Status::Failed("exited unexpectedly (exit code 0) while tasks still needed it".into())
        );
        let foreground = ExitContext { foreground: true, ..SERVICE };
        assert_eq!(exit_status(code(0), foreground), Status::Ok);
        assert_eq!(exit_status(code(2), foreground), Status::Failed("exit code 2".into()));
    }

    #[test]
    fn services_being_stopped_may_exit_any_way() {
        let stopping = ExitContext { stop_requested: true, ..SERVICE };
        assert_eq!(exit_status(code(143), stopping), Status::Ok);
        assert_eq!(exit_status(code(1), ExitContext { ready: false, ..stopping }), Status::Cancelled);
    }
}
