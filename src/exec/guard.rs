//! The guard: a tiny process started before irun starts anything, which kills every process irun still owns if
//! irun dies without cleaning up (even by SIGKILL, which no handler can catch).
//!
//! irun keeps the list of process groups it owns in memory it shares with the guard (a memfd mapped by both: one
//! slot per running group, written by irun as groups start and end, at no cost per task, and read by the guard only
//! when irun is gone). Over a pipe it tells the guard about each process that left its task's group and was
//! re-parented to irun (`p+PID START`, `p-PID`; START is the process's start time, so a reused pid is never mistaken
//! for it); where no shared memory can be had, groups go over the pipe too (`g+PGID`, `g-PGID`). The write end is
//! close-on-exec and held only by irun, so the guard sees end-of-file exactly when irun has exited, for whatever
//! reason. It then sends SIGKILL to the groups and processes still listed, and to anything carrying the run's
//! `IRUN_OWNER` marker. After a normal exit (`done`) the lists are empty and it does nothing.
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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::unistd::{Pid, pipe2};

use crate::events::{ChildExit, GuardNews};

/// The environment variable that marks every process a run started, and their descendants.
pub const OWNER_VAR: &str = "IRUN_OWNER";

/// Set (to the run token) in the environment of the guard process only: irun started as the guard.
const GUARD_VAR: &str = "IRUN_GUARD";

/// The guard's argument when its stdout is the memfd of shared slots.
const SHARED_ARG: &str = "shared-slots";

/// The guard's exit code when it was handed shared slots it could not map.
const NO_SHARED_SLOTS: i32 = 3;

struct Guard {
    pipe: File,
    child: Child,
    /// The groups irun owns, shared with the guard (and with the next one, if this one dies).
    slots: Option<Slots>,
    /// What the guard has been told over the pipe and not told to forget, so a new guard can be told again.
    groups: HashSet<i32>,
    adopted: HashMap<i32, u64>,
    /// A write failed: the guard is gone.
    broken: bool,
    /// When guards were started again: one that keeps dying is not started over and over.
    revived: Vec<std::time::Instant>,
}

/// Guards started again within this window, at most [`MAX_REVIVALS`] times.
const REVIVAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_REVIVALS: usize = 3;

static GUARD: OnceLock<Mutex<Option<Guard>>> = OnceLock::new();

fn guard() -> MutexGuard<'static, Option<Guard>> {
    GUARD.get_or_init(|| Mutex::new(None)).lock().unwrap_or_else(|e| e.into_inner())
}

/// What identifies this run among every irun on the machine: its pid and start time.
pub fn run_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// The guard's pid, so irun does not mistake it for an adopted orphan.
pub fn pid() -> Option<i32> {
    guard().as_ref().map(|g| g.child.id() as i32)
}

/// If this process was started as a guard, be the guard and never return.
pub fn run_if_guard() {
    if let Some(token) = std::env::var_os(GUARD_VAR) {
        guard_main(&token.to_string_lossy())
    }
}

/// Start the guard.
pub fn start() -> std::io::Result<()> {
    let g = spawn(Slots::new(), HashSet::new())?;
    *guard() = Some(g);
    Ok(())
}

/// Slots for this many groups at once; the memory is only touched as far as it is used.
const SLOTS: usize = 1 << 20;

/// The shared list of process groups: slot 0 holds how many slots have ever been used, each other slot a group id
/// (0: free).
struct Slots {
    memfd: OwnedFd,
    table: &'static [AtomicI32],
    used: HashMap<i32, usize>,
    free: Vec<usize>,
    next: usize,
}

impl Slots {
    fn new() -> Option<Slots> {
        // SAFETY: memfd_create takes a name and flags and returns a new descriptor (or -1).
        let fd = unsafe { libc::memfd_create(c"irun-guard".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a non-negative return is a descriptor this process now owns.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let table = map(memfd.as_fd(), true)?;
        table[0].store(1, Ordering::Release);
        Some(Slots { memfd, table, used: HashMap::new(), free: Vec::new(), next: 1 })
    }

    /// Record a group; false if every slot is taken.
    fn insert(&mut self, pgid: i32) -> bool {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.next < SLOTS => {
                self.next += 1;
                self.table[0].store(self.next as i32, Ordering::Release);
                self.next - 1
            }
            None => return false,
        };
        self.table[slot].store(pgid, Ordering::Release);
        self.used.insert(pgid, slot);
        true
    }

    fn remove(&mut self, pgid: i32) -> bool {
        let Some(slot) = self.used.remove(&pgid) else { return false };
        self.table[slot].store(0, Ordering::Release);
        self.free.push(slot);
        true
    }
}

/// Map the slots of a memfd (`create`: size it first), shared, for the life of the process.
fn map(fd: BorrowedFd<'_>, create: bool) -> Option<&'static [AtomicI32]> {
    let len = SLOTS * std::mem::size_of::<AtomicI32>();
    // SAFETY: ftruncate and mmap on a descriptor we hold; the mapping is never unmapped, so a 'static slice over it
    // stays valid, and AtomicI32 has the size and alignment of the i32s the other process reads and writes.
    unsafe {
        if create && libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) != 0 {
            return None;
        }
        let prot = if create { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        let at = libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), 0);
        if at == libc::MAP_FAILED {
            return None;
        }
        Some(std::slice::from_raw_parts(at as *const AtomicI32, SLOTS))
    }
}

/// Start a guard that reads `slots` (or, without them, is told about groups over its pipe; `groups` are told now).
fn spawn(slots: Option<Slots>, mut groups: HashSet<i32>) -> std::io::Result<Guard> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    let mut command = Command::new("/proc/self/exe");
    command.arg0("irun-guard").env(GUARD_VAR, run_token()).stdin(Stdio::from(read)).stderr(Stdio::null());
    // The shared slots are the guard's stdout: the one way to hand it a descriptor without a hook in the child.
    let slots = match slots.map(|s| (s.memfd.try_clone(), s)) {
        Some((Ok(fd), s)) => {
            command.arg(SHARED_ARG).stdout(Stdio::from(fd));
            Some(s)
        }
        Some((Err(_), s)) => {
            // No way to share them: the groups they hold go over the pipe from now on.
            groups.extend(s.used.keys());
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
        pipe: File::from(write),
        child,
        slots,
        groups: HashSet::new(),
        adopted: HashMap::new(),
        broken: false,
        revived: Vec::new(),
    };
    for pgid in groups {
        g.groups.insert(pgid);
        tell(&mut g, &format!("g+{pgid}\n"));
    }
    Ok(g)
}

fn tell(g: &mut Guard, line: &str) {
    // Lines are far shorter than PIPE_BUF, so each write is atomic.
    if g.pipe.write_all(line.as_bytes()).is_err() {
        g.broken = true;
    }
}

/// Record that irun owns process group `pgid`.
pub fn watch(pgid: i32) {
    if let Some(g) = guard().as_mut() {
        if !g.slots.as_mut().is_some_and(|s| s.insert(pgid)) {
            g.groups.insert(pgid);
            tell(g, &format!("g+{pgid}\n"));
        }
    }
}

/// Record that process group `pgid` is gone, so the guard must never signal it (the id may be reused).
pub fn forget(pgid: i32) {
    if let Some(g) = guard().as_mut() {
        if !g.slots.as_mut().is_some_and(|s| s.remove(pgid)) && g.groups.remove(&pgid) {
            tell(g, &format!("g-{pgid}\n"));
        }
    }
}

/// Record a process that left its task's group and was re-parented to irun (`start`: its start time).
pub fn adopt(pid: i32, start: u64) {
    if let Some(g) = guard().as_mut() {
        g.adopted.insert(pid, start);
        tell(g, &format!("p+{pid} {start}\n"));
    }
}

/// Record that an adopted process is gone.
pub fn release(pid: i32) {
    if let Some(g) = guard().as_mut() {
        if g.adopted.remove(&pid).is_some() {
            tell(g, &format!("p-{pid}\n"));
        }
    }
}

/// A pidfd of the guard: readable once the guard has exited.
pub fn pidfd() -> Option<OwnedFd> {
    let pid = pid()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (or -1); nothing else is touched.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a descriptor this process now owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// If the guard has died, start a new one and tell it everything the old one knew. How it ended (none: it stopped
/// reading) and what became of it, for the user.
pub(crate) fn revive() -> Option<(Option<ChildExit>, GuardNews)> {
    let mut slot = guard();
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
    let mut told = HashSet::new();
    if exited.and_then(|s| s.code()) == Some(NO_SHARED_SLOTS) {
        told.extend(slots.take().into_iter().flat_map(|s| s.used.into_keys()));
    }
    match spawn(slots, told) {
        Ok(mut new) => {
            let (groups, adopted) = (std::mem::take(&mut g.groups), std::mem::take(&mut g.adopted));
            new.revived = std::mem::take(&mut g.revived);
            new.revived.push(now);
            for &pgid in &groups {
                tell(&mut new, &format!("g+{pgid}\n"));
            }
            for (&pid, &start) in &adopted {
                tell(&mut new, &format!("p+{pid} {start}\n"));
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

/// Tell the guard that irun cleaned up after itself, close the pipe, and wait for the guard to exit.
pub fn finish() {
    if let Some(mut g) = guard().take() {
        tell(&mut g, "done\n");
        // Closing our end is the guard's signal to exit.
        drop(g.pipe);
        let _ = g.child.wait();
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
        match map(unsafe { BorrowedFd::borrow_raw(1) }, false) {
            Some(table) => Some(table),
            // irun would write groups where nobody reads them: end, so it starts a guard it tells over the pipe.
            None => std::process::exit(NO_SHARED_SLOTS),
        }
    } else {
        None
    };
    close_other_fds();

    let mut groups: HashSet<i32> = HashSet::new();
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
        if let Some(id) = l.strip_prefix("g+").and_then(|s| s.parse().ok()) {
            groups.insert(id);
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
        groups.extend(table.get(1..used).unwrap_or(&[]).iter().map(|slot| slot.load(Ordering::Acquire)));
    }
    for pgid in groups {
        if pgid > 1 {
            let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        }
    }
    // Processes that left their groups: only if still the same process (same start time), with their own group.
    for (pid, start) in adopted {
        if pid > 1 && crate::exec::procfs::stat(pid).is_some_and(|s| s.starttime == start) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            if crate::exec::procfs::stat(pid).is_some_and(|s| s.pgrp == pid) {
                let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
            }
        }
    }
    // Then whatever escaped those groups but still carries this run's marker. SIGKILL cannot be ignored and nothing
    // new is spawned by the dead, so a second pass only catches what the first raced with.
    let prefix = format!("{OWNER_VAR}={token}/");
    for _ in 0..2 {
        for pid in crate::exec::procfs::pids() {
            if pid > 1 && crate::exec::procfs::environ_has(pid, &prefix) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    std::process::exit(0)
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
