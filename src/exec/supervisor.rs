//! Process supervision: every task runs as the leader of its own process group, and irun stops the whole group
//! (stop signal, grace period, SIGKILL) and waits until no member is left. It never signals anything else.
//! Processes that leave the group are found too ([`super::escapees`]). Where irun can make cgroups, each task also
//! has one ([`super::cgroup`]), which nothing can leave: it stands for the group in every signal and wait.

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, sleep, timeout_at};

use super::cgroup::TaskCgroup;
use super::escapees::{self, KILL_WAIT, deadline_after, group_alive};
use super::guard::{OWNER_VAR, StopPlan};
use super::spawn::{self, SpawnError};
use super::sys;
use super::table::Table;
use super::vfork::Exec;
use crate::config::Cmd;
use crate::events::TaskName;

pub(crate) struct Spec<'a> {
    pub(crate) cmd: &'a Cmd,
    pub(crate) cwd: &'a Path,
    pub(crate) env: &'a [(String, String)],
    pub(crate) output: spawn::Output,
    /// irun's stdin instead of /dev/null (an interactive task).
    pub(crate) stdin_inherited: bool,
    /// How the guard stops the group if irun dies.
    pub(crate) stop: StopPlan,
    /// The task the process is for (none: a probe's command), to name it when something leaves its group.
    pub(crate) task: Option<&'a TaskName>,
    /// Go on before the program is exec'ed, where that can be done (see [`spawn::Request::exec_later`]): an exec that
    /// fails is then told by [`Process::exec_failed`] once the process has exited.
    pub(crate) exec_later: bool,
}

/// A running process group started by irun.
pub(crate) struct Process {
    table: Arc<Table>,
    pgid: i32,
    /// Readable once the leader has exited (none where the kernel has no pidfds: SIGCHLD tells instead).
    exited: Option<AsyncFd<OwnedFd>>,
    /// The value of `IRUN_OWNER` given to this process, inherited by everything it starts.
    owner: String,
    status: Option<ExitStatus>,
    /// Set once the leader is reaped and no member of the group remains.
    gone: bool,
    /// The task's cgroup (none: irun makes none, or could not make this one).
    cgroup: Option<TaskCgroup>,
    /// Processes that had left the group when it was told to stop, with their start times (process groups only).
    outside: Vec<(i32, u64)>,
    /// Started before its exec: its way there, until it is known how that went.
    exec: Option<Exec>,
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// Everything exited within the grace period.
    Gracefully,
    /// SIGKILL was needed.
    Killed,
}

/// The output pipes of a process started with `capture_output`.
pub(crate) type Pipes = (Option<OwnedFd>, Option<OwnedFd>);

/// Start a command as the leader of a new process group (with its stdout and stderr, if captured).
pub(crate) fn spawn(table: &Arc<Table>, spec: &Spec<'_>) -> Result<(Process, Pipes), SpawnError> {
    let (number, owner) = table.next_owner();
    let invocation = super::command_line::invocation(spec.cmd);
    let env: Vec<(&str, &str)> =
        spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain([(OWNER_VAR, owner.as_str())]).collect();
    // A cgroup that cannot be made leaves this process to its process group, as where there are none.
    let cgroup = table.cgroups.as_ref().and_then(|c| c.task().ok());
    let request = spawn::Request {
        invocation: &invocation,
        cwd: spec.cwd,
        env: &env,
        output: spec.output,
        stdin_inherited: spec.stdin_inherited,
        cgroup: cgroup.as_ref(),
        exec_later: spec.exec_later,
    };
    // If irun dies, the guard kills the process groups it was told about, and sweeps anything carrying this run's
    // IRUN_OWNER marker or, not exec'ed yet, sharing irun's memory: that covers the moment between spawning and
    // telling the guard.
    // Registered before the child can exit, so the reaping helpers never take it for an adopted orphan.
    let mut children = table.children();
    let child = table.spawner.spawn(&request)?;
    let pgid = child.pid;
    children.spawned.insert(pgid);
    escapees::track(&mut children, pgid, number, spec.task);
    drop(children);
    table.guard_group(pgid, Some(spec.stop));
    let exited = child.pidfd.or_else(|| sys::pidfd_open(pgid)).and_then(sys::watch_readable);
    let (table, exec) = (table.clone(), child.exec);
    let process = Process { table, pgid, exited, owner, status: None, gone: false, cgroup, outside: Vec::new(), exec };
    Ok((process, (child.stdout, child.stderr)))
}

impl Process {
    pub(crate) fn pid(&self) -> u32 {
        self.pgid as u32
    }

    /// Wait for the leader to exit (other members of its group may live on).
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = match &self.exited {
            Some(fd) => loop {
                let mut ready = fd.readable().await?;
                if let Some(s) = sys::try_reap(self.pgid)? {
                    break s;
                }
                ready.clear_ready();
            },
            None => wait_for_sigchld(self.pgid).await?,
        };
        self.reaped(s);
        Ok(s)
    }

    /// Why the program could not be exec'ed, for a process started before its exec that has exited (it exits
    /// with 127 then); `None` if it was exec'ed (or irun waited for the exec: the spawn said so then).
    pub(crate) fn exec_failed(&mut self) -> Option<io::Error> {
        // Exited, so past its exec or gone before it: the kernel has cleared its word, or is about to.
        let failed = self.exec.as_ref()?.outcome(EXEC_PATIENCE)?.err();
        self.exec = None;
        failed
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // The pidfd has done its work.
        self.exited = None;
        self.table.children().spawned.remove(&self.pgid);
    }

    /// Signal the group, unless it is known to be gone: once the leader is reaped and the group empty, its id may
    /// be reused by a stranger.
    fn signal(&mut self, sig: Signal) {
        if self.gone || (self.status.is_some() && !self.members_alive()) {
            self.mark_gone();
            return;
        }
        match &self.cgroup {
            Some(cgroup) => cgroup.signal(sig),
            None => drop(kill(Pid::from_raw(-self.pgid), sig)),
        }
    }

    /// Whether any live process is in the group (or the cgroup, which holds the group and whatever left it).
    fn members_alive(&self) -> bool {
        match &self.cgroup {
            Some(cgroup) => cgroup.populated(),
            None => group_alive(&self.table, self.pgid),
        }
    }

    fn mark_gone(&mut self) {
        if !self.gone {
            self.gone = true;
            if let Some(cgroup) = &mut self.cgroup {
                cgroup.emptied();
            }
            self.table.guard_group(self.pgid, None);
            escapees::untrack(&mut self.table.children(), self.pgid);
        }
    }

    /// Stop the whole group and anything that escaped it: `sig`, up to `grace` for every process to exit, then
    /// SIGKILL. Also used after the leader exited on its own, to stop what it left behind.
    pub(crate) async fn stop(&mut self, sig: Signal, grace: Duration) -> Stopped {
        let deadline = deadline_after(grace);
        self.note_outside();
        self.signal(sig);
        // A stopped (SIGTSTP) process would not act on the signal until continued.
        self.signal(Signal::SIGCONT);
        let mut signalled = HashSet::new();
        if self.wait_gone(deadline).await && self.stop_escapees(sig, deadline, &mut signalled).await {
            return Stopped::Gracefully;
        }
        self.kill_and_wait().await;
        Stopped::Killed
    }

    /// SIGKILL the group and anything that escaped it, and wait until all are gone.
    pub(crate) async fn kill_and_wait(&mut self) {
        let deadline = deadline_after(KILL_WAIT);
        self.note_outside();
        self.signal(Signal::SIGKILL);
        self.wait_gone(deadline).await;
        self.stop_escapees(Signal::SIGKILL, deadline, &mut HashSet::new()).await;
    }

    /// Whether processes the (exited) leader started are still running in its group, or, with `escaped`, outside
    /// it too. Looking for escapees scans /proc, which would double the cost of a short task; the run-end sweep
    /// ([`escapees::stop_all_escaped`]) finds them anyway.
    pub(crate) fn has_leftovers(&mut self, escaped: bool) -> bool {
        if !self.gone {
            if self.members_alive() {
                return true;
            }
            if self.status.is_some() {
                self.mark_gone();
            }
        }
        // Nothing leaves a cgroup: an empty one is all there is to know.
        escaped && self.cgroup.is_none() && !escapees::escapees(&self.table, Some(&self.owner)).is_empty()
    }

    /// Before the group is signalled, while the processes that left it still descend from its members: note them,
    /// so they are stopped with it even if they cleared their environment (process groups only).
    fn note_outside(&mut self) {
        if self.cgroup.is_none() && !self.gone && self.outside.is_empty() {
            self.outside = super::procfs::outside(&[self.pgid]);
        }
    }

    /// Wait until the leader is reaped and no member of the group is left, or until `deadline`.
    pub(crate) async fn wait_gone(&mut self, deadline: Instant) -> bool {
        if self.status.is_none() {
            match timeout_at(deadline, self.wait()).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
        if let Some(cgroup) = &self.cgroup {
            let empty = self.gone || cgroup.wait_empty(deadline).await;
            if empty {
                self.mark_gone();
            }
            return empty;
        }
        // No notification exists for "process group empty": poll, quickly at first.
        let mut pause = Duration::from_millis(1);
        loop {
            if self.gone || !group_alive(&self.table, self.pgid) {
                self.mark_gone();
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Signal every escaped process of this task once with `sig`, and wait (until `deadline`) for all to be gone.
    async fn stop_escapees(&self, sig: Signal, deadline: Instant, signalled: &mut HashSet<i32>) -> bool {
        if self.cgroup.is_some() {
            return true;
        }
        let found = escapees::Found { owner: Some(&self.owner), outside: &self.outside };
        escapees::stop_escaped(&self.table, found, sig, deadline, signalled).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Never leak a group: if the owner bailed out early (a cancelled probe, a panic), kill what is left.
        if !self.gone {
            self.signal(Signal::SIGKILL);
            self.gone = true;
            // SIGKILL cannot be caught, so the guard need not (and, once the id is reused, must not) act on it.
            self.table.guard_group(self.pgid, None);
        }
        if self.status.is_none() {
            let reaped = matches!(sys::try_reap(self.pgid), Ok(Some(_)));
            let mut children = self.table.children();
            if !reaped {
                // Killed but not dead yet: reaped by a later scan, never taken for an escaped process.
                children.dropped.insert(self.pgid);
            }
            children.spawned.remove(&self.pgid);
        }
    }
}

/// Resolves once child `pid` (a group leader irun has not reaped) is stopped by SIGTTIN or SIGTTOU: it used the
/// terminal from the background, and would wait for it forever. Only where irun's session has a controlling terminal
/// (`terminal`) can that happen; elsewhere this never resolves and costs nothing. Looked at first after `after`, so
/// a short task costs nothing, then at growing intervals: a SIGCHLD handler would tell at once, but once installed
/// it stays for the run and interrupts irun at every child's exit.
pub(crate) async fn stopped_for_terminal(pid: i32, after: Duration, terminal: bool) -> Signal {
    if !terminal {
        return std::future::pending().await;
    }
    let mut pause = after;
    loop {
        sleep(pause).await;
        if let Some(sig @ (Signal::SIGTTIN | Signal::SIGTTOU)) = sys::stopped_by(pid) {
            return sig;
        }
        pause = (pause * 2).min(STOP_CHECK_MAX);
    }
}

/// How long irun waits, at most, to learn how the exec of a process that has exited went.
const EXEC_PATIENCE: Duration = Duration::from_secs(1);

/// The longest pause between two looks at a task that may be stopped for the terminal.
const STOP_CHECK_MAX: Duration = Duration::from_secs(1);

/// Where pidfds are not available: wait for SIGCHLD, and check again at least every 50ms (a signal that arrived
/// before the listener was in place is not delivered again).
async fn wait_for_sigchld(pid: i32) -> io::Result<ExitStatus> {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    loop {
        if let Some(s) = sys::try_reap(pid)? {
            return Ok(s);
        }
        let tick = sleep(Duration::from_millis(50));
        match sigchld.as_mut() {
            Some(rx) => {
                tokio::select! {
                    _ = rx.recv() => {}
                    () = tick => {}
                }
            }
            None => tick.await,
        }
    }
}
