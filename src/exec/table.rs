//! What irun knows about the processes of one run, in one value: the processes it spawned and has not reaped, the
//! children it had before it started anything, the orphans it adopted, its guard, and what spawning needs. The
//! process layer owns it and lends it (an `Arc`) to each runner; there is no process-wide state besides it but
//! the signal handlers' counters (see [`crate::driver::signals`]), which a signal handler can only reach that way.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::cgroup::Cgroups;
use super::guard::{Guard, StopPlan};
use super::output::Buffers;
use super::spawn::Spawner;
use super::{procfs, sys};
use crate::events::TaskName;

pub(crate) struct Table {
    /// What identifies this run among every irun on the machine (its pid and start time): every process the run
    /// starts carries it in `IRUN_OWNER`, and the guard kills whatever carries it if irun dies.
    pub(crate) token: String,
    /// Numbers the processes spawned, for their `IRUN_OWNER` marker.
    sequence: AtomicU64,
    pub(crate) spawner: Spawner,
    /// Read buffers no output reader is using.
    pub(crate) buffers: Arc<Buffers>,
    /// The run's cgroup, where irun may make one (each process it spawns gets its own under it): none where only
    /// process groups hold a task's processes.
    pub(crate) cgroups: Option<Cgroups>,
    /// irun's session has a controlling terminal: a task that uses it from the background is stopped (SIGTTIN,
    /// SIGTTOU), and irun looks for that. Without one, nothing can be stopped so.
    pub(crate) controlling_terminal: bool,
    guard: Mutex<Option<Guard>>,
    children: Mutex<Children>,
}

/// irun's own children, as opposed to processes re-parented to it.
#[derive(Default)]
pub(crate) struct Children {
    /// Processes irun spawned and has not reaped yet.
    pub(crate) spawned: HashSet<i32>,
    /// Leaders whose [`super::supervisor::Process`] was dropped before they were reaped (they were killed): reaped
    /// when found, never taken for adopted orphans.
    pub(crate) dropped: HashSet<i32>,
    /// Children irun had before it started anything (a process that started them and then exec'ed irun keeps them
    /// as its children): never taken for escapees. Pid and start time.
    pub(crate) inherited: Vec<(i32, u64)>,
    /// Orphans re-parented to irun that the guard has been told about.
    pub(crate) adopted: HashSet<i32>,
    /// The process groups of running tasks (until they are empty), and the task each is for (none: a probe's).
    pub(crate) groups: HashMap<i32, Option<TaskName>>,
    /// Which task each `IRUN_OWNER` marker of the run was given to, for the run's length, by the marker's number
    /// (see [`Table::next_owner`]): 16 bytes a process, where a map of the markers took about 90.
    pub(crate) owners: Vec<Option<TaskName>>,
}

impl Children {
    /// Note that the marker numbered `n` was given to `task`.
    pub(crate) fn own(&mut self, n: usize, task: TaskName) {
        if self.owners.len() <= n {
            self.owners.resize(n + 1, None);
        }
        self.owners[n] = Some(task);
    }
}

impl Table {
    /// Take stock, in the one order that works: the children irun already has are not its tasks'; then irun's
    /// environment for spawning; then the guard, before any task; then irun becomes the subreaper of everything its
    /// tasks start, so orphaned descendants are re-parented to it (which finds, stops and reaps them) instead of to
    /// PID 1 (which, in some containers, never reaps).
    pub(crate) fn new() -> std::io::Result<Table> {
        let me = std::process::id() as i32;
        let inherited = procfs::children(me).into_iter().map(|(pid, s)| (pid, s.starttime)).collect();
        let spawner = Spawner::new();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let token = format!("{me}-{nanos}");
        // Before the guard, which removes it if irun dies.
        let cgroups = Cgroups::setup(&token);
        let guard = Guard::start(&token)?;
        let _ = nix::sys::prctl::set_child_subreaper(true);
        Ok(Table {
            token,
            sequence: AtomicU64::new(0),
            spawner,
            buffers: Arc::default(),
            cgroups,
            controlling_terminal: super::terminal::controlling(),
            guard: Mutex::new(Some(guard)),
            children: Mutex::new(Children { inherited, ..Children::default() }),
        })
    }

    /// The `IRUN_OWNER` value for the next process spawned: this run's token and the process's number (returned
    /// too).
    pub(crate) fn next_owner(&self) -> (usize, String) {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        (n as usize, format!("{}/{n}", self.token))
    }

    /// The task the `IRUN_OWNER` value `marker` was given to in this run, if it was.
    pub(crate) fn owner(&self, marker: &str) -> Option<TaskName> {
        let (token, n) = marker.rsplit_once('/')?;
        let n: usize = n.parse().ok().filter(|_| token == self.token)?;
        self.children().owners.get(n).cloned().flatten()
    }

    pub(crate) fn children(&self) -> MutexGuard<'_, Children> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// irun's guard (none once irun carries on without one).
    pub(crate) fn guard(&self) -> MutexGuard<'_, Option<Guard>> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tell the guard to watch process group `pgid` (and how to stop it if irun dies: `Some`), or to forget it.
    pub(crate) fn guard_group(&self, pgid: i32, watch: Option<StopPlan>) {
        if let Some(g) = self.guard().as_mut() {
            match watch {
                Some(stop) => g.watch(pgid, stop),
                None => g.forget(pgid),
            }
        }
    }

    /// A pidfd of the guard: readable once the guard has exited.
    pub(crate) fn guard_pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        self.guard().as_ref().and_then(Guard::pidfd)
    }

    /// Reap an adopted zombie, and forget it (its pid may be reused).
    pub(crate) fn reap_adopted(&self, pid: i32) {
        let _ = sys::try_reap(pid);
        if let Some(g) = self.guard().as_mut() {
            g.release(pid);
        }
        self.children().adopted.remove(&pid);
    }

    /// Every task is gone and irun cleaned up after itself: tell the guard, and wait for it to exit.
    pub(crate) fn finish(&self) {
        if let Some(c) = &self.cgroups {
            c.finish();
        }
        if let Some(g) = self.guard().take() {
            g.finish();
        }
    }
}
