//! The guard: a tiny process started before irun starts anything, which kills every process irun still owns if
//! irun dies without cleaning up (even by SIGKILL, which no handler can catch).
//!
//! irun keeps the list of process groups it owns in memory it shares with the guard (a memfd mapped by both: one
//! slot per running group with its task's stop signal and grace period, written by irun as groups start and end, at
//! no cost per task, and read by the guard only when irun is gone). Over a pipe it tells the guard about each
//! process that left its task's group and was re-parented to irun (`p+PID START`, `p-PID`; START is the process's
//! start time, so a reused pid is never mistaken for it); where no shared memory can be had, groups go over the pipe
//! too (`g+PGID SIGNAL GRACE_MS`, `g-PGID`). The write end is close-on-exec and held only by irun, so the guard sees
//! end-of-file exactly when irun has exited, for whatever reason. It then stops the groups still listed as irun
//! would have: each group's stop signal, up to its grace period for the group to empty, then SIGKILL; then SIGKILL
//! to the processes still listed (and to what left those groups while its parent stayed in them, found by descent
//! first), to anything carrying the run's `IRUN_OWNER` marker or still sharing irun's memory (started by irun, not
//! yet exec'ed), and to the run's cgroup if it has one ([`super::cgroup`]), which it then removes. After a normal
//! exit (`done`) the lists are empty and it does nothing.
//!
//! The guard is irun's own binary started again (`/proc/self/exe` with `IRUN_GUARD` set), not a fork: irun can
//! start a new one at any time, even with threads running. If the guard dies, irun notices at once (a pidfd),
//! says so, starts a new one and tells it everything it must know.
//!
//! `PR_SET_PDEATHSIG` alone is not enough: it reaches only the direct child, while a service's workers
//! (gunicorn's, or anything under `sh -c`) are grandchildren.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::unistd::{Pid, pipe2};

use super::sys;
use crate::events::{ChildExit, GuardNews};

/// The environment variable that marks every process a run started, and their descendants.
pub(crate) const OWNER_VAR: &str = "IRUN_OWNER";

/// Set (to the run token) in the environment of the guard process only: irun started as the guard.
const GUARD_VAR: &str = "IRUN_GUARD";

/// The guard's argument when its stdout is the memfd of shared slots.
const SHARED_ARG: &str = "shared-slots";

/// The guard's exit code when it was handed shared slots it could not map.
const NO_SHARED_SLOTS: i32 = 3;

/// The name of the shared slots' memfd, as `/proc/PID/maps` shows it (`/memfd:NAME`).
const SLOTS_NAME: &std::ffi::CStr = c"irun-guard";

/// How the guard stops a process group if irun dies: its task's stop signal, then SIGKILL once `grace` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StopPlan {
    pub(crate) signal: Signal,
    pub(crate) grace: Duration,
}

impl StopPlan {
    /// SIGKILL at once (a probe's command).
    pub(crate) const KILL: StopPlan = StopPlan { signal: Signal::SIGKILL, grace: Duration::ZERO };

    /// The plan as two integers (signal number, grace in milliseconds), for the shared slots and the pipe.
    fn encode(self) -> (i32, i32) {
        (self.signal as i32, self.grace.as_millis().min(i32::MAX as u128) as i32)
    }

    /// Read back; anything unreadable is SIGKILL at once.
    fn decode(signal: i32, grace_ms: i32) -> StopPlan {
        match Signal::try_from(signal) {
            Ok(signal) => StopPlan { signal, grace: Duration::from_millis(grace_ms.max(0) as u64) },
            Err(_) => StopPlan::KILL,
        }
    }
}

/// irun's handle on its guard process.
pub(crate) struct Guard {
    /// What identifies this run (see [`super::table::Table::token`]): the guard kills what carries it.
    token: String,
    pipe: File,
    child: Child,
    /// The groups irun owns, shared with the guard (and with the next one, if this one dies).
    slots: Option<Slots>,
    /// What the guard has been told over the pipe and not told to forget, so a new guard can be told again.
    groups: HashMap<i32, StopPlan>,
    adopted: HashMap<i32, u64>,
    /// A write failed: the guard is gone.
    broken: bool,
    /// When guards were started again: one that keeps dying is not started over and over.
    revived: Vec<std::time::Instant>,
}

/// Guards started again within this window, at most [`MAX_REVIVALS`] times.
const REVIVAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_REVIVALS: usize = 3;

/// If this process was started as a guard, be the guard and never return.
pub(crate) fn run_if_guard() {
    if let Some(token) = std::env::var_os(GUARD_VAR) {
        guard_main(&token.to_string_lossy())
    }
}

/// Slots for this many groups at once; the memory is only touched as far as it is used.
const SLOTS: usize = 1 << 20;

/// Integers per slot: the group id, its stop signal, its grace period in milliseconds.
const STRIDE: usize = 3;

/// The shared list of process groups: slot 0 holds how many slots have ever been used, each other slot a group id
/// (0: free) and how to stop it ([`StopPlan::encode`]).
struct Slots {
    memfd: OwnedFd,
    table: &'static [AtomicI32],
    used: HashMap<i32, usize>,
    free: Vec<usize>,
    next: usize,
}

impl Slots {
    fn new() -> Option<Slots> {
        let memfd = sys::memfd(SLOTS_NAME, SLOTS * STRIDE * std::mem::size_of::<AtomicI32>())?;
        let table = sys::map_shared(memfd.as_fd(), SLOTS * STRIDE, true)?;
        table[0].store(1, Ordering::Release);
        Some(Slots { memfd, table, used: HashMap::new(), free: Vec::new(), next: 1 })
    }

    /// Record a group; false if every slot is taken.
    fn insert(&mut self, pgid: i32, stop: StopPlan) -> bool {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.next < SLOTS => {
                self.next += 1;
                self.table[0].store(self.next as i32, Ordering::Release);
                self.next - 1
            }
            None => return false,
        };
        // How to stop it is written first: the group id, stored last, publishes the slot.
        let (signal, grace) = stop.encode();
        self.table[slot * STRIDE + 1].store(signal, Ordering::Relaxed);
        self.table[slot * STRIDE + 2].store(grace, Ordering::Relaxed);
        self.table[slot * STRIDE].store(pgid, Ordering::Release);
        self.used.insert(pgid, slot);
        true
    }

    fn remove(&mut self, pgid: i32) -> bool {
        let Some(slot) = self.used.remove(&pgid) else { return false };
        self.table[slot * STRIDE].store(0, Ordering::Release);
        self.free.push(slot);
        true
    }

    /// Every group in the slots and how to stop it.
    fn entries(&self) -> HashMap<i32, StopPlan> {
        self.used.iter().map(|(&pgid, &slot)| (pgid, read_slot(self.table, slot).1)).collect()
    }
}

/// A slot's group id (0: free) and how to stop the group.
fn read_slot(table: &[AtomicI32], slot: usize) -> (i32, StopPlan) {
    let pgid = table[slot * STRIDE].load(Ordering::Acquire);
    let plan = StopPlan::decode(
        table[slot * STRIDE + 1].load(Ordering::Relaxed),
        table[slot * STRIDE + 2].load(Ordering::Relaxed),
    );
    (pgid, plan)
}

impl Guard {
    /// Start the guard of the run `token` names.
    pub(crate) fn start(token: &str) -> std::io::Result<Guard> {
        Guard::spawn(token, Slots::new(), HashMap::new())
    }

    /// Start a guard that reads `slots` (or, without them, is told about groups over its pipe; `groups` are told
    /// now).
    fn spawn(token: &str, slots: Option<Slots>, mut groups: HashMap<i32, StopPlan>) -> std::io::Result<Guard> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
        let mut command = Command::new("/proc/self/exe");
        command.arg0("irun-guard").env(GUARD_VAR, token).stdin(Stdio::from(read)).stderr(Stdio::null());
        // The shared slots are the guard's stdout: the one way to hand it a descriptor without a hook in the child.
        let slots = match slots.map(|s| (s.memfd.try_clone(), s)) {
            Some((Ok(fd), s)) => {
                command.arg(SHARED_ARG).stdout(Stdio::from(fd));
                Some(s)
            }
            Some((Err(_), s)) => {
                // No way to share them: the groups they hold go over the pipe from now on.
                groups.extend(s.entries());
                command.stdout(Stdio::null());
                None
            }
            None => {
                command.stdout(Stdio::null());
                None
            }
        };
        // Out of the terminal's foreground group: Ctrl-C is for irun, not for its guard.
        let child = command.process_group(0).spawn()?;
        let mut g = Guard {
            token: token.to_string(),
            pipe: File::from(write),
            child,
            slots,
            groups: HashMap::new(),
            adopted: HashMap::new(),
            broken: false,
            revived: Vec::new(),
        };
        for (pgid, stop) in groups {
            g.tell_group(pgid, stop);
        }
        Ok(g)
    }

    fn tell(&mut self, line: &str) {
        // Lines are far shorter than PIPE_BUF, so each write is atomic.
        if self.pipe.write_all(line.as_bytes()).is_err() {
            self.broken = true;
        }
    }

    fn tell_group(&mut self, pgid: i32, stop: StopPlan) {
        self.groups.insert(pgid, stop);
        let (signal, grace) = stop.encode();
        self.tell(&format!("g+{pgid} {signal} {grace}\n"));
    }

    /// The guard's pid, so irun does not mistake it for an adopted orphan.
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A pidfd of the guard: readable once the guard has exited.
    pub(crate) fn pidfd(&self) -> Option<OwnedFd> {
        sys::pidfd_open(self.pid())
    }

    /// Record that irun owns process group `pgid`, and how the guard is to stop it.
    pub(crate) fn watch(&mut self, pgid: i32, stop: StopPlan) {
        if !self.slots.as_mut().is_some_and(|s| s.insert(pgid, stop)) {
            self.tell_group(pgid, stop);
        }
    }

    /// Record that process group `pgid` is gone, so the guard must never signal it (the id may be reused).
    pub(crate) fn forget(&mut self, pgid: i32) {
        if !self.slots.as_mut().is_some_and(|s| s.remove(pgid)) && self.groups.remove(&pgid).is_some() {
            self.tell(&format!("g-{pgid}\n"));
        }
    }

    /// Record a process that left its task's group and was re-parented to irun (`start`: its start time).
    pub(crate) fn adopt(&mut self, pid: i32, start: u64) {
        self.adopted.insert(pid, start);
        self.tell(&format!("p+{pid} {start}\n"));
    }

    /// Record that an adopted process is gone.
    pub(crate) fn release(&mut self, pid: i32) {
        if self.adopted.remove(&pid).is_some() {
            self.tell(&format!("p-{pid}\n"));
        }
    }

    /// Tell the guard that irun cleaned up after itself, close the pipe, and wait for the guard to exit.
    pub(crate) fn finish(mut self) {
        self.tell("done\n");
        // Closing our end is the guard's signal to exit.
        drop(self.pipe);
        let _ = self.child.wait();
    }
}

/// If the guard in `slot` has died, start a new one and tell it everything the old one knew (or, after too many
/// deaths or a failure to start one, carry on without: `slot` is then empty). How it ended (none: it stopped
/// reading) and what became of it, for the user.
pub(crate) fn revive(slot: &mut Option<Guard>) -> Option<(Option<ChildExit>, GuardNews)> {
    let g = slot.as_mut()?;
    let exited = g.child.try_wait().ok().flatten();
    if exited.is_none() && !g.broken {
        return None;
    }
    let how = exited.map(ChildExit::from_status);
    let _ = g.child.kill();
    let _ = g.child.wait();
    let now = std::time::Instant::now();
    g.revived.retain(|&t| now.duration_since(t) < REVIVAL_WINDOW);
    if g.revived.len() >= MAX_REVIVALS {
        *slot = None;
        return Some((how, GuardNews::GivenUp { times: MAX_REVIVALS, within: REVIVAL_WINDOW }));
    }
    // A guard that could not map the shared slots says so by its exit code: its successor is told over the pipe.
    let mut slots = g.slots.take();
    let mut told = HashMap::new();
    if exited.and_then(|s| s.code()) == Some(NO_SHARED_SLOTS) {
        told.extend(slots.take().into_iter().flat_map(|s| s.entries()));
    }
    match Guard::spawn(&g.token, slots, told) {
        Ok(mut new) => {
            let (groups, adopted) = (std::mem::take(&mut g.groups), std::mem::take(&mut g.adopted));
            new.revived = std::mem::take(&mut g.revived);
            new.revived.push(now);
            for (&pgid, &stop) in &groups {
                new.tell_group(pgid, stop);
            }
            for (&pid, &start) in &adopted {
                new.tell(&format!("p+{pid} {start}\n"));
            }
            new.groups.extend(groups);
            new.adopted = adopted;
            *g = new;
            Some((how, GuardNews::Replaced))
        }
        Err(e) => {
            // The groups stay listed for the run's own cleanup.
            *slot = None;
            Some((how, GuardNews::NotReplaced { error: e.to_string() }))
        }
    }
}

fn guard_main(token: &str) -> ! {
    let _ = nix::sys::prctl::set_name(c"irun-guard");
    // Deaf to the signals meant for irun: the guard must outlive it.
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGPIPE] {
        // SAFETY: installing SIG_IGN runs no code in signal context.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    // The shared slots come as stdout; mapped before stdout goes to /dev/null (the mapping outlives the descriptor).
    let shared = if std::env::args_os().nth(1).is_some_and(|a| a == SHARED_ARG) {
        // SAFETY: fd 1 is open (Rust's runtime sees to that) and stays open while borrowed here.
        match sys::map_shared(unsafe { BorrowedFd::borrow_raw(1) }, SLOTS * STRIDE, false) {
            Some(table) => Some(table),
            // irun would write groups where nobody reads them: end, so it starts a guard it tells over the pipe.
            None => std::process::exit(NO_SHARED_SLOTS),
        }
    } else {
        None
    };
    // Which file the slots are (its inode), to know irun's memory by it: see `sweep`.
    let slots_file = shared.and_then(|_| std::fs::metadata("/proc/self/fd/1").ok()).map(|m| m.ino());
    close_other_fds();

    let mut groups: HashMap<i32, StopPlan> = HashMap::new();
    let mut adopted: HashMap<i32, u64> = HashMap::new();
    let mut reader = BufReader::new(std::io::stdin().lock());
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let l = line.trim();
        if l == "done" {
            // irun finished its own cleanup; the ids it left listed may already belong to someone else.
            std::process::exit(0);
        }
        if let Some((id, stop)) = l.strip_prefix("g+").and_then(parse_group) {
            groups.insert(id, stop);
        } else if let Some(id) = l.strip_prefix("g-").and_then(|s| s.parse::<i32>().ok()) {
            groups.remove(&id);
        } else if let Some((pid, start)) = l.strip_prefix("p+").and_then(|s| s.split_once(' ')) {
            if let (Ok(pid), Ok(start)) = (pid.parse(), start.parse()) {
                adopted.insert(pid, start);
            }
        } else if let Some(pid) = l.strip_prefix("p-").and_then(|s| s.parse::<i32>().ok()) {
            adopted.remove(&pid);
        }
    }
    if let Some(table) = shared {
        let used = (table[0].load(Ordering::Acquire).max(0) as usize).min(SLOTS);
        groups.extend((1..used).map(|slot| read_slot(table, slot)).filter(|&(pgid, _)| pgid != 0));
    }
    adopted.extend(crate::exec::procfs::outside(&groups.keys().copied().collect::<Vec<_>>()));
    stop_groups(groups);
    // Processes that left their groups: only if still the same process (same start time), with their own group.
    for (pid, start) in adopted {
        if pid > 1 && crate::exec::procfs::stat(pid).is_some_and(|s| s.starttime == start) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            if crate::exec::procfs::stat(pid).is_some_and(|s| s.pgrp == pid) {
                let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
            }
        }
    }
    sweep(token, slots_file);
    crate::exec::cgroup::guard_cleanup(token);
    std::process::exit(0)
}

/// SIGKILL whatever escaped the groups but still carries this run's marker, and whatever irun started and had not
/// told the guard of yet: once exec'ed it carries the marker too; before its exec it shares irun's memory (it was
/// started with CLONE_VM), where its environment is still irun's, but where the slots' file (`slots_file`, its
/// inode) is mapped. SIGKILL cannot be ignored and nothing new is spawned by the dead, so a second pass only catches
/// what the first raced with (a child between the two states).
fn sweep(token: &str, slots_file: Option<u64>) {
    let prefix = format!("{OWNER_VAR}={token}/");
    let name = format!("/memfd:{}", SLOTS_NAME.to_string_lossy());
    let me = std::process::id() as i32;
    for _ in 0..2 {
        for pid in crate::exec::procfs::pids() {
            let before_exec = || slots_file.is_some_and(|file| crate::exec::procfs::maps_file(pid, &name, file));
            if pid > 1 && pid != me && (crate::exec::procfs::environ_has(pid, &prefix) || before_exec()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// `PGID SIGNAL GRACE_MS`, as irun writes it.
fn parse_group(line: &str) -> Option<(i32, StopPlan)> {
    let mut fields = line.split(' ').map(|f| f.parse::<i32>().ok());
    let (pgid, signal, grace) = (fields.next()??, fields.next()??, fields.next()??);
    Some((pgid, StopPlan::decode(signal, grace)))
}

/// Stop the groups irun left as irun would have: each its stop signal (and SIGCONT, in case it was stopped), then
/// SIGKILL for those not empty by the end of their grace period.
fn stop_groups(groups: HashMap<i32, StopPlan>) {
    let start = Instant::now();
    let mut left: Vec<(i32, Instant)> = Vec::new();
    for (pgid, stop) in groups {
        if pgid <= 1 {
            continue;
        }
        let group = Pid::from_raw(-pgid);
        if stop.grace.is_zero() || stop.signal == Signal::SIGKILL {
            let _ = kill(group, Signal::SIGKILL);
        } else if kill(group, stop.signal).is_ok() {
            let _ = kill(group, Signal::SIGCONT);
            left.push((pgid, start + stop.grace));
        }
    }
    let mut pause = Duration::from_millis(1);
    while !left.is_empty() {
        let alive = live_groups(left.iter().map(|&(pgid, _)| pgid));
        let now = Instant::now();
        left.retain(|&(pgid, deadline)| {
            if !alive.contains(&pgid) {
                return false;
            }
            if now >= deadline {
                let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
                return false;
            }
            true
        });
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Which of `groups` still have a member that is not a zombie (whoever inherited irun's children may be slow to
/// reap them, or never do).
fn live_groups(groups: impl Iterator<Item = i32>) -> HashSet<i32> {
    let maybe: HashSet<i32> = groups.filter(|&pgid| kill(Pid::from_raw(-pgid), None).is_ok()).collect();
    if maybe.is_empty() {
        return maybe;
    }
    crate::exec::procfs::pids()
        .into_iter()
        .filter_map(crate::exec::procfs::stat)
        .filter(|stat| !stat.is_zombie() && maybe.contains(&stat.pgrp))
        .map(|stat| stat.pgrp)
        .collect()
}

/// Keep only stdin (the pipe): holding irun's stdout or a test harness's pipes open would make readers wait for us.
fn close_other_fds() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in fds {
        if fd > 2 && fd != std::io::stdin().as_raw_fd() {
            // Nothing else in this single-threaded process uses these descriptors.
            let _ = nix::unistd::close(fd);
        }
    }
}
