//! Process supervision: every task runs as the leader of its own process group, and irun stops the whole group
//! (stop signal, grace period, SIGKILL) and waits until no member is left. It never signals anything else.
//!
//! Processes that leave the group (`setsid`, daemonising) are still found: irun is a child subreaper, so when
//! their parent dies they become irun's children, and the `IRUN_OWNER` marker in their environment says which
//! task they came from.

use std::collections::HashSet;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, sleep, timeout_at};

use crate::config::Cmd;
use crate::exec::guard::{self, OWNER_VAR};
use crate::exec::procfs;
use crate::exec::spawn::{self, SpawnError};

/// Last resort when a group ignores even SIGKILL (a process stuck in the kernel): give up waiting after this.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Pids of processes irun spawned and tokio has not reaped yet: its own children, as opposed to adopted orphans.
static SPAWNED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn spawned() -> std::sync::MutexGuard<'static, Option<HashSet<i32>>> {
    SPAWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Mark irun as a child subreaper, so orphaned descendants are re-parented to irun (which finds, stops and reaps
/// them) instead of to PID 1 (which, in some containers, never reaps).
pub fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// `now + d`, saturating instead of panicking on absurdly long durations.
pub fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30))
}

pub struct Spec<'a> {
    pub cmd: &'a Cmd,
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub capture_output: bool,
}

/// A running process group started by irun.
pub struct Process {
    pgid: i32,
    /// Readable once the leader has exited (none where the kernel has no pidfds: SIGCHLD tells instead).
    exited: Option<AsyncFd<OwnedFd>>,
    /// The value of `IRUN_OWNER` given to this process, inherited by everything it starts.
    owner: String,
    status: Option<ExitStatus>,
    /// Set once the leader is reaped and no member of the group remains.
    gone: bool,
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything exited within the grace period.
    Gracefully,
    /// SIGKILL was needed.
    Killed,
}

/// Start a command as the leader of a new process group (with its stdout and stderr, if captured).
pub fn spawn(spec: &Spec<'_>) -> Result<(Process, Option<OwnedFd>, Option<OwnedFd>), SpawnError> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let owner = format!("{}/{}", guard::run_token(), SEQUENCE.fetch_add(1, Ordering::Relaxed));
    let invocation = crate::exec::command_line::invocation(spec.cmd);
    let env: Vec<(&str, &str)> =
        spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain([(OWNER_VAR, owner.as_str())]).collect();
    let request = spawn::Request {
        invocation: &invocation,
        cwd: spec.cwd,
        env: &env,
        output: if spec.capture_output { spawn::Output::Piped } else { spawn::Output::Discarded },
    };
    // If irun dies, the guard kills the process groups it was told about, and sweeps anything carrying this run's
    // IRUN_OWNER marker, which covers the moment between spawning and telling the guard.
    // Registered before the child can exit, so the reaping helpers never take it for an adopted orphan.
    let mut registry = spawned();
    let child = spawn::spawn(&request)?;
    let pgid = child.pid;
    registry.get_or_insert_with(HashSet::new).insert(pgid);
    drop(registry);
    guard::watch(pgid);
    let exited = child.pidfd.or_else(|| pidfd(pgid)).and_then(watch_exit);
    Ok((Process { pgid, exited, owner, status: None, gone: false }, child.stdout, child.stderr))
}

/// A pidfd for a child (where the kernel has them), so its exit wakes irun without polling.
fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (or -1); nothing else is touched.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a descriptor this process now owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A pidfd registered with the reactor: readable once its process has exited.
fn watch_exit(pidfd: OwnedFd) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the same descriptor) until the AsyncFd is dropped.
    unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }.ok()
}

/// Reap `pid` if it has exited.
fn try_reap(pid: i32) -> io::Result<Option<ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into the integer it is given.
        match unsafe { nix::libc::waitpid(pid, &mut status, nix::libc::WNOHANG) } {
            0 => return Ok(None),
            r if r == pid => return Ok(Some(ExitStatus::from_raw(status))),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.pgid as u32
    }

    /// Wait for the leader to exit (other members of its group may live on).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = match &self.exited {
            Some(fd) => loop {
                let mut ready = fd.readable().await?;
                if let Some(s) = try_reap(self.pgid)? {
                    break s;
                }
                ready.clear_ready();
            },
            None => wait_for_sigchld(self.pgid).await?,
        };
        self.reaped(s);
        Ok(s)
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // The pidfd has done its work.
        self.exited = None;
        if let Some(set) = spawned().as_mut() {
            set.remove(&self.pgid);
        }
    }

    /// Signal the group, unless it is known to be gone: once the leader is reaped and the group empty, its id may
    /// be reused by a stranger.
    fn signal(&mut self, sig: Signal) {
        if self.gone || (self.status.is_some() && !group_alive(self.pgid)) {
            self.mark_gone();
            return;
        }
        let _ = kill(Pid::from_raw(-self.pgid), sig);
    }

    fn mark_gone(&mut self) {
        if !self.gone {
            self.gone = true;
            guard::forget(self.pgid);
        }
    }

    /// Stop the whole group and anything that escaped it: `sig`, up to `grace` for every process to exit, then
    /// SIGKILL. Also used after the leader exited on its own, to stop what it left behind.
    pub async fn stop(&mut self, sig: Signal, grace: Duration) -> Stopped {
        let deadline = deadline_after(grace);
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
    pub async fn kill_and_wait(&mut self) {
        let deadline = deadline_after(KILL_WAIT);
        self.signal(Signal::SIGKILL);
        self.wait_gone(deadline).await;
        self.stop_escapees(Signal::SIGKILL, deadline, &mut HashSet::new()).await;
    }

    /// Whether processes the (exited) leader started are still running in its group, or, with `escaped`, outside
    /// it too. Looking for escapees scans /proc, which would double the cost of a short task; the run-end sweep
    /// ([`stop_all_escaped`]) finds them anyway.
    pub fn has_leftovers(&mut self, escaped: bool) -> bool {
        if !self.gone {
            if group_alive(self.pgid) {
                return true;
            }
            if self.status.is_some() {
                self.mark_gone();
            }
        }
        escaped && !escapees(Some(&self.owner)).is_empty()
    }

    /// Wait until the leader is reaped and no member of the group is left, or until `deadline`.
    pub async fn wait_gone(&mut self, deadline: Instant) -> bool {
        if self.status.is_none() {
            match timeout_at(deadline, self.wait()).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
        // No notification exists for "process group empty": poll, quickly at first.
        let mut pause = Duration::from_millis(1);
        loop {
            if self.gone || !group_alive(self.pgid) {
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
        stop_escaped(Some(&self.owner), sig, deadline, signalled).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Never leak a group: if the owner bailed out early (a cancelled probe, a panic), kill what is left.
        if !self.gone {
            self.signal(Signal::SIGKILL);
            self.gone = true;
            // SIGKILL cannot be caught, so the guard need not (and, once the id is reused, must not) act on it.
            guard::forget(self.pgid);
        }
        if self.status.is_none() {
            if !matches!(try_reap(self.pgid), Ok(Some(_))) {
                // Killed but not dead yet: reaped by a later scan, never taken for an escaped process.
                dropped().insert(self.pgid);
            }
            if let Some(set) = spawned().as_mut() {
                set.remove(&self.pgid);
            }
        }
    }
}

/// Where pidfds are not available: wait for SIGCHLD, and check again at least every 50ms (a signal that arrived
/// before the listener was in place is not delivered again).
async fn wait_for_sigchld(pid: i32) -> io::Result<ExitStatus> {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
    loop {
        if let Some(s) = try_reap(pid)? {
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

/// At the end of a run: stop everything of this run that escaped its group and is still around, whichever task
/// it came from (`sig`, `grace`, then SIGKILL). Returns how many processes were found.
pub async fn stop_all_escaped(sig: Signal, grace: Duration) -> usize {
    let mut signalled = HashSet::new();
    if !stop_escaped(None, sig, deadline_after(grace), &mut signalled).await {
        stop_escaped(None, Signal::SIGKILL, deadline_after(KILL_WAIT), &mut HashSet::new()).await;
    }
    signalled.len()
}

async fn stop_escaped(owner: Option<&str>, sig: Signal, deadline: Instant, signalled: &mut HashSet<i32>) -> bool {
    let mut pause = Duration::from_millis(1);
    loop {
        let found = escapees(owner);
        if found.is_empty() {
            return true;
        }
        for pid in found {
            if signalled.insert(pid) || sig == Signal::SIGKILL {
                let _ = kill(Pid::from_raw(pid), sig);
                // An escapee usually leads a group of its own (setsid): its members are its descendants.
                if procfs::stat(pid).is_some_and(|s| s.pgrp == pid) {
                    let _ = kill(Pid::from_raw(-pid), sig);
                }
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Live processes re-parented to irun: with `Some(owner)`, those that carry that task's marker; with `None`, all
/// of them, marker or not (a process that cleared its environment is still a descendant of a task: nothing else
/// can be re-parented to irun, which is their subreaper). Adopted zombies are reaped on the way.
fn escapees(owner: Option<&str>) -> Vec<i32> {
    let marker = owner.map(|o| format!("{OWNER_VAR}={o}\0"));
    adopted()
        .into_iter()
        .filter(|(pid, _)| marker.as_ref().is_none_or(|m| marker_matches(*pid, m)))
        .map(|(pid, _)| pid)
        .collect()
}

/// Leaders whose [`Process`] was dropped before they were reaped (they were killed): reaped when found, never
/// taken for adopted orphans.
fn dropped() -> std::sync::MutexGuard<'static, HashSet<i32>> {
    static DROPPED: std::sync::LazyLock<Mutex<HashSet<i32>>> = std::sync::LazyLock::new(|| Mutex::new(HashSet::new()));
    DROPPED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Children irun had before it started anything (a process that started them and then exec'ed irun keeps them as
/// its children): never taken for escapees. Pid and start time.
static INHERITED: Mutex<Vec<(i32, u64)>> = Mutex::new(Vec::new());

/// Note the children irun has before it starts anything: they are not its tasks' and are left alone.
pub fn note_inherited_children() {
    let me = std::process::id() as i32;
    let found = procfs::children(me).into_iter().map(|(pid, s)| (pid, s.starttime)).collect();
    *INHERITED.lock().unwrap_or_else(|e| e.into_inner()) = found;
}

/// irun's live children that it did not spawn itself, that are not its guard and that it did not inherit, with
/// their start times. Zombies among them are reaped.
fn adopted() -> Vec<(i32, u64)> {
    let me = std::process::id() as i32;
    let guard_pid = guard::pid();
    let own: HashSet<i32> = spawned().as_ref().cloned().unwrap_or_default();
    let inherited = INHERITED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut found = Vec::new();
    for (pid, stat) in procfs::children(me) {
        if own.contains(&pid) || Some(pid) == guard_pid || inherited.contains(&(pid, stat.starttime)) {
            continue;
        }
        if dropped().contains(&pid) {
            if stat.is_zombie() && matches!(try_reap(pid), Ok(Some(_))) {
                dropped().remove(&pid);
            }
            continue;
        }
        if stat.is_zombie() {
            reap_adopted(pid);
        } else {
            found.push((pid, stat.starttime));
        }
    }
    found
}

/// Reap an adopted zombie, and forget it (its pid may be reused).
fn reap_adopted(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    guard::release(pid);
    known().remove(&pid);
}

/// Adopted processes already told to the guard.
fn known() -> std::sync::MutexGuard<'static, HashSet<i32>> {
    static KNOWN: std::sync::LazyLock<Mutex<HashSet<i32>>> = std::sync::LazyLock::new(|| Mutex::new(HashSet::new()));
    KNOWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Processes that left their task's group and have just been re-parented to irun: the guard is told about them (so
/// they die with irun even if it is killed), and they are returned so irun can say so. The run's end stops them.
pub fn adopt_orphans() -> Vec<i32> {
    let mut new = Vec::new();
    for (pid, start) in adopted() {
        if known().insert(pid) {
            guard::adopt(pid, start);
            new.push(pid);
        }
    }
    new
}

fn marker_matches(pid: i32, marker: &str) -> bool {
    match marker.strip_suffix('\0') {
        // An exact entry: `IRUN_OWNER=token/3` must not match `IRUN_OWNER=token/30`.
        Some(entry) => {
            let (name, value) = entry.split_once('=').expect("marker has a name");
            procfs::environ_is(pid, name, value)
        }
        None => procfs::environ_has(pid, marker),
    }
}

/// Whether any live (non-zombie) process is in group `pgid`. Adopted zombies in it are reaped on the way; the
/// leader (reaped by its [`Process`]) is left alone.
fn group_alive(pgid: i32) -> bool {
    if let Err(Errno::ESRCH) = kill(Pid::from_raw(-pgid), None) {
        return false;
    }
    // Members exist, but they may all be zombies waiting for a parent to reap them.
    let me = std::process::id() as i32;
    let mut alive = false;
    for pid in procfs::pids() {
        let Some(stat) = procfs::stat(pid) else { continue };
        if stat.pgrp != pgid {
            continue;
        }
        if stat.is_zombie() {
            if stat.ppid == me && pgid != pid {
                reap_adopted(pid);
            }
        } else {
            alive = true;
        }
    }
    alive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate() {
        assert!(deadline_after(Duration::MAX) > Instant::now());
    }
}
