//! A cgroup for each task, where irun may create them (cgroup v2 writable: irun runs as root, or in a slice
//! delegated to its user; a kernel with `cgroup.kill`, 5.14 or later). Unlike a process group, a cgroup cannot be
//! left by `setsid`, a double fork or a cleared environment: what a task starts stays in its cgroup, is signalled
//! with it, and dies with it (`cgroup.kill`), and the kernel says when the last of them is gone (`populated 0` in
//! `cgroup.events`, which can be waited for).
//!
//! The run gets a cgroup of its own under irun's (`irun-<run token>`), each spawned process a child of it. The
//! child starts in its cgroup (`clone3` with CLONE_INTO_CGROUP, see [`super::vfork`]); where that is refused it joins
//! by itself before it execs (it writes to `cgroup.procs`, opened by irun). Either way it cannot start anything
//! before it is in. (Moving a process costs the kernel an RCU grace period when nothing else moved lately: about
//! 14 ms before a service's dependent could start, measured with `bench/run`'s readiness figure.) The guard finds the run's cgroup by the same name (it shares irun's cgroup) and kills
//! it if irun dies. Where any of this is missing, or `IRUN_CGROUP=off`, irun uses process groups alone (see
//! [`super::supervisor`] and [`super::escapees`]).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::{Instant, sleep, timeout_at};

use super::sys;

/// `IRUN_CGROUP=off` makes irun use process groups even where it could use cgroups.
pub(crate) const MODE_VAR: &str = "IRUN_CGROUP";

/// The run's cgroup, under which each spawned process gets one of its own.
pub(crate) struct Cgroups {
    dir: PathBuf,
    next: AtomicU64,
    /// Emptied cgroups kept for the next processes: making and removing one costs more than the rest together.
    spare: Spare,
}

type Spare = Arc<Mutex<Vec<Slot>>>;

/// At most this many emptied cgroups are kept.
const SPARE_MAX: usize = 64;

/// One cgroup of the run, with the files irun uses open.
struct Slot {
    dir: PathBuf,
    /// The cgroup's folder, open (O_PATH): a child is started straight into it (`clone3`, CLONE_INTO_CGROUP).
    handle: OwnedFd,
    /// Its `cgroup.procs`, open for writing: the child writes `0` to it to join.
    procs: File,
    /// Its `cgroup.events`: `populated 0|1`, pollable (POLLPRI) for changes.
    events: File,
}

impl Cgroups {
    /// The run's cgroup, made now; none where cgroups cannot be used (or are turned off).
    pub(crate) fn setup(token: &str) -> Option<Cgroups> {
        if std::env::var_os(MODE_VAR).is_some_and(|v| v == "off" || v == "0") {
            return None;
        }
        let dir = run_dir(token)?;
        std::fs::create_dir(&dir).ok()?;
        // Moving a process needs write access to the cgroup.procs of the cgroup it leaves (irun's).
        let movable = dir
            .parent()
            .is_some_and(|p| nix::unistd::access(&p.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK).is_ok());
        if !movable || !dir.join("cgroup.kill").exists() || !dir.join("cgroup.events").exists() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Cgroups { dir, next: AtomicU64::new(0), spare: Spare::default() })
    }

    /// The run's cgroup (a directory of the cgroup2 file system).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// An empty cgroup for one process and everything it starts: a spare one (found empty when it was given back,
    /// and only irun starts processes in the run's cgroups), else a new one.
    pub(crate) fn task(&self) -> io::Result<TaskCgroup> {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let slot = match spare {
            Some(slot) => slot,
            None => self.make()?,
        };
        Ok(TaskCgroup { slot: Some(slot), spare: self.spare.clone(), emptied: false })
    }

    fn make(&self) -> io::Result<Slot> {
        let dir = self.dir.join(format!("t{}", self.next.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&dir)?;
        let opened = (|| {
            let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
            let events = File::open(dir.join("cgroup.events"))?;
            let handle = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
                .open(&dir)?;
            Ok((procs, events, OwnedFd::from(handle)))
        })();
        match opened {
            Ok((procs, events, handle)) => Ok(Slot { dir, handle, procs, events }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// The run is over: kill whatever is still in the run's cgroup, wait for it to empty, and remove it.
    pub(crate) fn finish(&self) {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
        kill_and_remove(&self.dir, Duration::from_secs(10));
    }
}

/// The cgroup of one spawned process.
pub(crate) struct TaskCgroup {
    /// Always there until dropped.
    slot: Option<Slot>,
    /// Where it goes once empty.
    spare: Spare,
    /// Found empty after its process exited: it stays so (only irun starts processes in it).
    emptied: bool,
}

impl TaskCgroup {
    fn slot(&self) -> &Slot {
        self.slot.as_ref().expect("a task's cgroup has its slot until dropped")
    }

    /// The cgroup's folder, to start a child straight into it.
    pub(crate) fn handle(&self) -> BorrowedFd<'_> {
        self.slot().handle.as_fd()
    }

    /// What the child writes `0` to, before it execs, to join the cgroup.
    pub(crate) fn procs(&self) -> BorrowedFd<'_> {
        self.slot().procs.as_fd()
    }

    /// Move process `pid` in, from irun (where the child could not join by itself: `posix_spawn`).
    pub(crate) fn join(&self, pid: i32) -> io::Result<()> {
        (&self.slot().procs).write_all(pid.to_string().as_bytes())
    }

    /// Whether any live process is in the cgroup (zombies are not).
    pub(crate) fn populated(&self) -> bool {
        populated(&self.slot().events)
    }

    /// Its process has exited and the cgroup was found empty: given back, it needs no look.
    pub(crate) fn emptied(&mut self) {
        self.emptied = true;
    }

    /// The processes in the cgroup.
    pub(crate) fn members(&self) -> Vec<i32> {
        members(&self.slot().dir)
    }

    /// Send `sig` to every process in the cgroup; SIGKILL through `cgroup.kill`, which nothing can slip past.
    pub(crate) fn signal(&self, sig: Signal) {
        if sig == Signal::SIGKILL {
            kill_all(&self.slot().dir);
            return;
        }
        for pid in self.members() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// Wait until no live process is left in the cgroup, or until `deadline`; whether it is empty.
    pub(crate) async fn wait_empty(&self, deadline: Instant) -> bool {
        // Watched before the first look, so a change between the look and the wait is not missed.
        let changes = self.slot().events.try_clone().ok().map(OwnedFd::from).and_then(sys::watch_priority);
        loop {
            if !self.populated() {
                return true;
            }
            let changed = async {
                match &changes {
                    Some(fd) => match fd.ready(tokio::io::Interest::PRIORITY).await {
                        Ok(mut ready) => ready.clear_ready(),
                        Err(_) => sleep(Duration::from_millis(10)).await,
                    },
                    None => sleep(Duration::from_millis(10)).await,
                }
            };
            if timeout_at(deadline, changed).await.is_err() {
                return !self.populated();
            }
        }
    }
}

impl Drop for TaskCgroup {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        // Nothing of a task outlives it; one still emptying is removed with the run's cgroup.
        if !self.emptied && populated(&slot.events) {
            kill_all(&slot.dir);
            return;
        }
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_MAX {
            spare.push(slot);
        } else {
            drop(spare);
            let _ = std::fs::remove_dir(&slot.dir);
        }
    }
}

/// For tests: a run's cgroups of their own, with one task cgroup frozen, so a child started in it runs nothing, not
/// even as far as its exec, until [`Frozen::thaw`]. What is left in them is killed, and they are removed, when it
/// is dropped.
#[cfg(test)]
pub(crate) struct Frozen {
    pub(crate) task: TaskCgroup,
    run: Cgroups,
}

#[cfg(test)]
impl Frozen {
    /// None where irun cannot make cgroups (the caller's test says so and does nothing).
    pub(crate) fn new() -> Option<Frozen> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let token = format!("test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let run = Cgroups::setup(&token)?;
        let Ok(task) = run.task() else {
            run.finish();
            return None;
        };
        let frozen = Frozen { task, run };
        frozen.freeze(true).then_some(frozen)
    }

    pub(crate) fn thaw(&self) {
        assert!(self.freeze(false), "a frozen cgroup thaws");
    }

    fn freeze(&self, frozen: bool) -> bool {
        std::fs::write(self.task.slot().dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }).is_ok()
    }
}

#[cfg(test)]
impl Drop for Frozen {
    fn drop(&mut self) {
        self.run.finish();
    }
}

/// The guard, once irun is gone: kill everything in the run's cgroup (if the run had one) and remove it.
pub(crate) fn guard_cleanup(token: &str) {
    if let Some(dir) = run_dir(token).filter(|d| d.is_dir()) {
        kill_and_remove(&dir, Duration::from_secs(10));
    }
}

/// Whether process `pid` is in the run's cgroup `run` (or one of its tasks'), from `/proc/PID/cgroup`.
pub(crate) fn in_run(pid: i32, run: &Path) -> bool {
    let (Some(mine), Some(name)) = (own_cgroup_of(pid), run.file_name()) else { return false };
    let name = name.to_string_lossy();
    mine.split('/').any(|part| part == name)
}

fn populated(events: &File) -> bool {
    let mut buf = [0u8; 256];
    let Ok(n) = events.read_at(&mut buf, 0) else { return false };
    String::from_utf8_lossy(&buf[..n]).lines().any(|l| l.trim() == "populated 1")
}

fn members(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// `cgroup.kill`: SIGKILL to every process in the cgroup and its descendants, atomically.
fn kill_all(dir: &Path) {
    let _ = std::fs::write(dir.join("cgroup.kill"), b"1");
}

/// Kill the cgroup `dir` and its descendants, wait (up to `patience`) for them to empty, and remove them, deepest
/// first. Blocking: used at the very end of a run, and by the guard.
fn kill_and_remove(dir: &Path, patience: Duration) {
    if let Ok(events) = File::open(dir.join("cgroup.events"))
        && populated(&events)
    {
        kill_all(dir);
        let deadline = std::time::Instant::now() + patience;
        while populated(&events) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            sys::wait_priority(events.as_fd(), left.min(Duration::from_millis(100)));
        }
    }
    remove_tree(dir);
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Where the run named `token` has (or would have) its cgroup: under irun's own, in the cgroup2 file system.
fn run_dir(token: &str) -> Option<PathBuf> {
    let (root, mount) = cgroup2_mount(&std::fs::read_to_string("/proc/self/mountinfo").ok()?)?;
    let own = own_cgroup_of(std::process::id() as i32)?;
    // Inside a cgroup namespace or a bind mount, the mount's root is a cgroup of its own: paths are under it.
    let relative = own.strip_prefix(root.trim_end_matches('/'))?;
    let mut dir = mount;
    dir.extend(relative.split('/').filter(|p| !p.is_empty()));
    Some(dir.join(format!("irun-{token}")))
}

/// The cgroup v2 path (`0::/path` in `/proc/PID/cgroup`) of a process.
fn own_cgroup_of(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_string)
}

/// The first cgroup2 mount in `mountinfo`: its root within the hierarchy and where it is mounted.
fn cgroup2_mount(mountinfo: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split(' ').next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = mount.split(' ').collect();
        Some((unescape(fields.get(3)?), PathBuf::from(unescape(fields.get(4)?))))
    })
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_a_hybrid_host_and_unescapes_it() {
        let info = "25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro\n\
                    41 31 0:38 / /sys/fs/cgroup/un\\040ified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(info), Some(("/".into(), PathBuf::from("/sys/fs/cgroup/un ified"))));
        assert_eq!(cgroup2_mount("25 1 0:23 / /sys/fs/cgroup rw - cgroup cgroup rw,memory\n"), None);
    }
}
