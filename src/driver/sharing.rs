//! The remote cache in a run: lookups and uploads on threads of their own, their answers back into the loop. A
//! lookup answers its task's freshness check, unless the check it answers is gone (the task was cancelled, or
//! checked again) or files changed while it was asked (the task is then checked again, against the files as they
//! are now). A server that cannot answer is said once, and not asked again in the run.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::Driver;
use super::workers::Workers;
use crate::cache::Key;
use crate::cache::remote::{Mode, Problem, Remote};
use crate::config::TaskId;
use crate::engine::{Input, Life};
use crate::events::TaskName;
use crate::exec::Launcher;
use crate::outcome::Verdict;

/// How long the end of a run waits for uploads still going.
const UPLOADS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Lookups at once: the engine starts nothing while one is under way, so they have threads of their own.
const LOOKUP_THREADS: usize = 8;
const UPLOAD_THREADS: usize = 4;

/// A remote request that came back, for the driver's loop.
pub(super) enum RemoteDone {
    Looked(Lookup, Result<Option<Vec<u8>>, Problem>),
    Uploaded { name: String, result: Result<(), Problem> },
}

/// One freshness check waiting on the remote cache: what it answers, and the verdict to give on a miss.
pub(super) struct Lookup {
    name: String,
    /// Which check of the task this is (a task checked again makes an earlier answer moot).
    check: u64,
    /// How many batches of changed files there had been (watch mode).
    generation: u64,
    dep_ran: Option<TaskName>,
    key: Key,
    verdict: Verdict,
}

/// What the driver keeps for the remote cache.
pub(super) struct Sharing {
    remote: Option<Arc<Remote>>,
    /// Set by the first request the server could not answer: requests not yet sent are not sent.
    off: Arc<AtomicBool>,
    lookups: Workers,
    uploading: Workers,
    done: mpsc::UnboundedSender<RemoteDone>,
    /// Uploads not finished yet.
    uploads: usize,
    /// Counts the batches of changed files (watch mode): a lookup made before one is stale.
    pub(super) generation: u64,
    /// The check each task's answer must carry to count, by task name.
    pending: HashMap<String, u64>,
    checks: u64,
}

impl Sharing {
    pub(super) fn new(remote: Option<Remote>, done: mpsc::UnboundedSender<RemoteDone>) -> Sharing {
        Sharing {
            remote: remote.map(Arc::new),
            off: Arc::new(AtomicBool::new(false)),
            lookups: Workers::new(LOOKUP_THREADS),
            uploading: Workers::new(UPLOAD_THREADS),
            done,
            uploads: 0,
            generation: 0,
            pending: HashMap::new(),
            checks: 0,
        }
    }

    /// The remote cache, while it answers.
    fn remote(&self) -> Option<Arc<Remote>> {
        self.remote.clone().filter(|_| !self.off.load(Ordering::Relaxed))
    }

    /// Ask the remote cache for `key` on behalf of a freshness check; false when there is none to ask.
    pub(super) fn ask(
        &mut self,
        name: &str,
        dep_ran: Option<TaskName>,
        key: Key,
        verdict: Verdict,
    ) -> Result<(), Verdict> {
        let Some(remote) = self.remote() else { return Err(verdict) };
        self.checks += 1;
        self.pending.insert(name.to_string(), self.checks);
        let lookup =
            Lookup { name: name.to_string(), check: self.checks, generation: self.generation, dep_ran, key, verdict };
        let (done, off) = (self.done.clone(), self.off.clone());
        self.lookups.run(Box::new(move || {
            let result =
                if off.load(Ordering::Relaxed) { Ok(None) } else { guarded(&off, || remote.get(&lookup.key.hex)) };
            let _ = done.send(RemoteDone::Looked(lookup, result));
        }));
        Ok(())
    }

    /// Upload a result in the background, unless the remote cache is read-only (or off).
    pub(super) fn upload(&mut self, name: String, key: String, bytes: Vec<u8>, took: Option<std::time::Duration>) {
        let Some(remote) = self.remote().filter(|r| r.mode == Mode::Write) else { return };
        let (done, off) = (self.done.clone(), self.off.clone());
        let ms = took.map_or(0, |t| t.as_millis() as u64);
        self.uploads += 1;
        self.uploading.run(Box::new(move || {
            let result =
                if off.load(Ordering::Relaxed) { Ok(()) } else { guarded(&off, || remote.put(&key, &bytes, ms)) };
            let _ = done.send(RemoteDone::Uploaded { name, result });
        }));
    }
}

/// Run one request: a server that cannot answer turns the remote cache off at once (requests queued behind it are
/// not sent), and a request that panics is a problem, not a lost answer.
fn guarded<T>(off: &AtomicBool, request: impl FnOnce() -> Result<T, Problem>) -> Result<T, Problem> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(request))
        .unwrap_or_else(|_| Err(Problem::Unavailable("the remote cache request failed unexpectedly".into())));
    if matches!(result, Err(Problem::Unavailable(_))) {
        off.store(true, Ordering::Relaxed);
    }
    result
}

impl<L: Launcher> Driver<'_, L> {
    /// A remote request came back: a lookup gives its task's verdict (a hit is kept in the local store too); an
    /// upload that failed is a warning.
    pub(super) fn on_remote(&mut self, done: RemoteDone) {
        match done {
            RemoteDone::Looked(lookup, result) => self.looked(lookup, result),
            RemoteDone::Uploaded { name, result } => {
                self.caching.sharing.uploads -= 1;
                match result {
                    Err(Problem::Unusable(problem)) => {
                        self.warn(format!("the result of {name} was not uploaded: {problem}"))
                    }
                    Err(problem) => self.remote_problem(&name, problem),
                    Ok(()) => {}
                }
            }
        }
    }

    fn looked(&mut self, lookup: Lookup, result: Result<Option<Vec<u8>>, Problem>) {
        let Lookup { name, check, generation, dep_ran, key, verdict } = lookup;
        if let Err(problem) = &result {
            self.remote_problem(&name, problem.clone());
        }
        // The check it answers is gone: the task was cancelled, or is checked again.
        if self.caching.sharing.pending.get(&name) != Some(&check) {
            return;
        }
        self.caching.sharing.pending.remove(&name);
        let Some(task) = self.config.id(&name).filter(|&t| *self.engine.life(t) == Life::Checking) else { return };
        if generation != self.caching.sharing.generation {
            // Files changed while it was asked: what it holds may not be what the task would make now.
            return self.check_again(task, dep_ran);
        }
        let verdict = match result {
            Ok(Some(bytes)) => match self.restore(task, &key, &bytes, "remote") {
                Ok(hit) => {
                    if let Err(e) = self.caching.store.put(&key.hex, &name, &key.parts, &bytes) {
                        self.warn(format!("cannot keep {name}'s remote result in the local cache: {e}"));
                    }
                    hit
                }
                Err(problem) => {
                    self.warn(format!("{problem}; it runs"));
                    verdict
                }
            },
            Ok(None) | Err(_) => verdict,
        };
        self.input(Input::Freshness { task, verdict });
    }

    fn check_again(&mut self, task: TaskId, dep_ran: Option<TaskName>) {
        if let Some(verdict) = self.check_freshness(task, dep_ran) {
            self.input(Input::Freshness { task, verdict });
        }
    }

    fn remote_problem(&mut self, name: &str, problem: Problem) {
        match problem {
            Problem::Unavailable(problem) => {
                // The first says it; the others (requests under way meanwhile) add nothing.
                if !self.caching.remote_said {
                    self.caching.remote_said = true;
                    self.warn(problem);
                }
            }
            Problem::Unusable(problem) => {
                self.warn(format!("the remote entry for {name} is unusable: {problem}; it runs"))
            }
        }
    }

    /// The run is over: uploads still going are waited for, up to a deadline or a signal, then abandoned; an
    /// interrupted run does not wait.
    pub(super) async fn wait_for_uploads(
        &mut self,
        done: &mut mpsc::UnboundedReceiver<RemoteDone>,
        interrupted: bool,
        signals: &mut super::signals::Signals,
    ) {
        let deadline = tokio::time::Instant::now() + UPLOADS_WAIT;
        while self.caching.sharing.uploads > 0 {
            let abandoned = if interrupted {
                "were interrupted"
            } else {
                tokio::select! {
                    Some(d) = done.recv() => {
                        self.on_remote(d);
                        continue;
                    }
                    () = tokio::time::sleep_until(deadline) => "did not finish in time",
                    _ = signals.recv() => "were interrupted",
                }
            };
            let n = self.caching.sharing.uploads;
            self.warn(format!("{n} upload(s) to the remote cache {abandoned}; those results stay local"));
            return;
        }
    }
}
