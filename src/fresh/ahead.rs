//! Stat data taken ahead, on a thread of its own: while the run checks one task, the files of the next ones are
//! already looked at (20,000 `stat` calls are the largest part of a no-op run of 10,000 copy tasks; on a second
//! core they leave the run's own thread).
//!
//! The rule for when what was taken ahead may decide a task: only in a run that is not watch mode, for a task whose
//! `sources` and `outputs` are all plain paths and none of whose deps is a service, and only if no dep of it ran in
//! this run. Then nothing irun started has written its files since they were looked at: what was seen is what a
//! look now would see, except for a write by something else in that instant, which a look now could miss as well.
//! Its record's files count as checked when the look began (so a file changed around then is read, see
//! [`super::files::stamp`]). Anything else, or a task whose turn came before its look, is looked at as it is checked.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::files::Stat;
use crate::config::{Config, PerTask, TaskId, TaskKind, is_literal, parse_glob};

/// One task's files as looked at ahead: for each of its `sources`, then each of its `outputs`, what stat said.
pub(super) struct Looked {
    pub(super) stats: Box<[Option<Stat>]>,
}

struct Slot {
    /// Taken by the check that uses it (and freed after it: at 10,000 tasks, a megabyte kept to the end otherwise).
    looked: Mutex<Option<Looked>>,
    /// Its check began: looking ahead at it is no use any more.
    taken: AtomicBool,
}

pub(super) struct Ahead {
    /// When the first look began (nanoseconds since the epoch).
    pub(super) at: i64,
    slots: Arc<PerTask<Slot>>,
    stop: Arc<AtomicBool>,
}

impl Ahead {
    /// Start looking at the files of `order`'s tasks that the rule allows, from the last. `None` if there are none
    /// or no thread could be started.
    pub(super) fn start(config: &Arc<Config>, order: &[TaskId], root_fd: &OwnedFd, at: i64) -> Option<Ahead> {
        let wanted: Vec<TaskId> = order.iter().copied().filter(|&i| allowed(config, i)).collect();
        if wanted.is_empty() {
            return None;
        }
        let slots: Arc<PerTask<Slot>> = Arc::new(
            (0..config.tasks.len()).map(|_| Slot { looked: Mutex::new(None), taken: AtomicBool::new(false) }).collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let fd = root_fd.try_clone().ok()?;
        let (s, halt, config) = (slots.clone(), stop.clone(), config.clone());
        std::thread::Builder::new()
            .name("irun-stat-ahead".into())
            .spawn(move || {
                // Signals are the main thread's (a child's exit must not wake this one).
                let all = nix::sys::signal::SigSet::all();
                let _ = nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&all), None);
                // From the last: the run checks from the first, and each takes its share until they meet (the
                // first tasks are checked before a look ahead could reach them).
                for i in wanted.into_iter().rev() {
                    if halt.load(Ordering::Relaxed) {
                        return;
                    }
                    if s[i].taken.load(Ordering::Acquire) {
                        continue;
                    }
                    let task = &config.tasks[i];
                    let paths = task.sources().iter().chain(task.outputs());
                    let stats = paths.map(|p| Stat::at(&fd, plain(p))).collect();
                    *s[i].looked.lock().unwrap_or_else(PoisonError::into_inner) = Some(Looked { stats });
                }
            })
            .ok()?;
        Some(Ahead { at, slots, stop })
    }

    /// What was seen of task `i`'s files, if it was looked at in time, the first time this is asked (from then on
    /// it is not looked at ahead, and a later check of it looks again).
    pub(super) fn take(&self, i: TaskId) -> Option<Looked> {
        let slot = (i.index() < self.slots.len()).then(|| &self.slots[i])?;
        match slot.taken.swap(true, Ordering::AcqRel) {
            true => None,
            false => slot.looked.lock().unwrap_or_else(PoisonError::into_inner).take(),
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether task `i`'s files may be looked at ahead (see the module's rule; the run's own conditions are the
/// caller's).
fn allowed(config: &Config, i: TaskId) -> bool {
    let task = &config.tasks[i];
    let Some(process) = task.process() else { return false };
    let files = task.sources().iter().chain(task.outputs());
    task.tag() == TaskKind::Task
        && !process.always_run
        && !(task.sources().is_empty() && task.outputs().is_empty())
        && files.clone().all(|p| !parse_glob(p).0 && is_literal(p) && !p.contains('\\'))
        && config.deps_through_groups(task).iter().all(|d| !d.is_service())
}

/// A plain path as the checks look it up (`./src/a.txt` is `src/a.txt`, `out/` is `out`).
pub(super) fn plain(pattern: &str) -> &str {
    pattern.trim_start_matches("./").trim_end_matches('/')
}

#[cfg(test)]
impl Ahead {
    /// Until task `i` has been looked at (the look-ahead thread is done with it).
    pub(super) fn wait_for(&self, i: TaskId) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.slots[i].looked.lock().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "task {i:?} was never looked at ahead");
            std::thread::yield_now();
        }
    }
}
