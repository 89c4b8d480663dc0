//! The guard: a tiny process forked before irun starts anything, which kills every process group irun still
//! owns if irun dies without cleaning up (even by SIGKILL, which no handler can catch).
//!
//! irun tells the guard about each process group over a pipe (`+PGID` when started, `-PGID` once it is gone).
//! The write end is close-on-exec and held only by irun, so the guard sees end-of-file exactly when irun has
//! exited, for whatever reason. It then sends SIGKILL to the groups still listed. After a normal exit the list
//! is empty and it does nothing.
//!
//! `PR_SET_PDEATHSIG` alone is not enough: it reaches only the direct child, while a service's workers
//! (gunicorn's, or anything under `sh -c`) are grandchildren.
//!
//! Processes that left their group (`setsid`, daemonising) are found by the marker irun puts in every task's
//! environment, `IRUN_OWNER=<run token>/<n>`, which their descendants inherit: the guard kills those too.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, pipe2, setpgid};

struct Guard {
    pipe: File,
    pid: Pid,
}

static GUARD: OnceLock<Mutex<Guard>> = OnceLock::new();

/// The environment variable that marks every process a run started, and their descendants.
pub const OWNER_VAR: &str = "IRUN_OWNER";

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
    GUARD.get().map(|g| g.lock().unwrap_or_else(|e| e.into_inner()).pid.as_raw())
}

/// Fork the guard. Must be called while irun is still single-threaded (before the async runtime starts).
pub fn start() -> std::io::Result<()> {
    let token = run_token().to_string();
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: irun has no other threads yet, so the child may do anything the parent could.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(write);
            guard_main(read, &token)
        }
        ForkResult::Parent { child } => {
            drop(read);
            let _ = GUARD.set(Mutex::new(Guard { pipe: File::from(write), pid: child }));
            Ok(())
        }
    }
}

/// Record that irun owns process group `pgid`.
pub fn watch(pgid: i32) {
    tell(&format!("+{pgid}\n"));
}

/// Record that process group `pgid` is gone, so the guard must never signal it (the id may be reused).
pub fn forget(pgid: i32) {
    tell(&format!("-{pgid}\n"));
}

fn tell(line: &str) {
    if let Some(g) = GUARD.get() {
        let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
        // Lines are far shorter than PIPE_BUF, so each write is atomic.
        let _ = g.pipe.write_all(line.as_bytes());
    }
}

/// Tell the guard that irun cleaned up after itself, close the pipe, and wait for the guard to exit.
pub fn finish() {
    tell("done\n");
    if let Some(g) = GUARD.get() {
        let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
        // Replacing the pipe with /dev/null closes our end, which is the guard's signal to exit.
        if let Ok(null) = File::open("/dev/null") {
            g.pipe = null;
            let _ = waitpid(g.pid, None);
        }
    }
}

fn guard_main(read: OwnedFd, token: &str) -> ! {
    // Out of the terminal's foreground group, and deaf to the signals meant for irun: the guard must outlive it.
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGPIPE] {
        // SAFETY: installing SIG_IGN runs no code in signal context.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    close_other_fds(read.as_raw_fd());

    let mut groups: HashSet<i32> = HashSet::new();
    let mut reader = BufReader::new(File::from(read));
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
        if let Some(id) = l.strip_prefix('+').and_then(|s| s.parse().ok()) {
            groups.insert(id);
        } else if let Some(id) = l.strip_prefix('-').and_then(|s| s.parse::<i32>().ok()) {
            groups.remove(&id);
        }
    }
    for pgid in groups {
        if pgid > 1 {
            let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        }
    }
    // Then whatever escaped those groups but still carries this run's marker. SIGKILL cannot be ignored and nothing
    // new is spawned by the dead, so a second pass only catches what the first raced with.
    let prefix = format!("{OWNER_VAR}={token}/");
    for _ in 0..2 {
        for pid in crate::procfs::pids() {
            if pid > 1 && crate::procfs::environ_has(pid, &prefix) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    std::process::exit(0)
}

/// Keep only the pipe: holding irun's stdout or a test harness's pipes open would make readers wait for us.
fn close_other_fds(keep: i32) {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in fds {
        if fd > 2 && fd != keep {
            // Nothing else in this single-threaded process uses these descriptors.
            let _ = nix::unistd::close(fd);
        }
    }
}
