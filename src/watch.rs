//! Watch mode's eyes: an inotify watch (through notify) on every folder of the project that is not ignored,
//! turned into debounced batches of changed paths.
//!
//! Folders, not files, are watched, so editors' atomic saves (write a temporary file, rename it over the original)
//! and backup renames are seen. A folder created later is watched as soon as it appears and scanned, so files
//! created in it before the watch was in place are not missed. A folder removed or moved away is reported as such
//! (what was in it went with it); a kernel queue overflow becomes a "rescan" batch: anything may have changed.
//! Links to folders are followed, inside the project or out (each real folder is watched once, so a link loop
//! ends), and a change is reported at every path the file has through them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use std::collections::{HashMap, HashSet};

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::config::Globs;
use crate::events::WatchProblem;
use crate::ignore::{Filter, source_roots};

/// Changes seen since the last batch.
#[derive(Debug, Default, Clone)]
pub(crate) struct Batch {
    /// Changed paths, relative to the project root.
    pub(crate) paths: BTreeSet<PathBuf>,
    /// Folders removed or moved away (relative to the project root): what they held went with them, perhaps without
    /// events of its own.
    pub(crate) removed_dirs: BTreeSet<PathBuf>,
    /// Events were lost (the kernel's queue overflowed, or the watch failed): anything may have changed.
    pub(crate) rescan: bool,
    /// Problems worth telling the user (a folder that could not be watched).
    pub(crate) notices: Vec<WatchProblem>,
    /// When the first and the last event of the batch were seen.
    pub(crate) first_seen: Option<Instant>,
    pub(crate) last_seen: Option<Instant>,
}

/// Subfolders, and the links to folders that `filter` follows (a task's `sources` may reach through them).
fn subfolders_and_links(filter: &Filter, dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| match e.file_type() {
            Ok(t) if t.is_dir() => true,
            Ok(t) if t.is_symlink() => filter.follows_link(&e.path()),
            _ => false,
        })
        .map(|e| e.path())
        .collect()
}

/// Every path (relative to the root) each real folder is seen at: itself, and through links to it.
type Aliases = HashMap<PathBuf, Vec<PathBuf>>;

/// A running watch. Dropping it stops watching.
pub(crate) struct Watcher {
    _inner: Arc<Mutex<RecommendedWatcher>>,
    pub(crate) folders: usize,
    outputs: Arc<Mutex<Globs>>,
    source_roots: Arc<Mutex<Vec<PathBuf>>>,
}

impl Watcher {
    /// Irun.toml was reloaded: these are the tasks' outputs and sources now.
    pub(crate) fn set_globs(&self, outputs: &[Vec<String>], sources: &[String]) {
        *self.outputs.lock().unwrap_or_else(|e| e.into_inner()) = Globs::any(outputs);
        *self.source_roots.lock().unwrap_or_else(|e| e.into_inner()) = source_roots(sources);
    }
}

/// Watch every non-ignored folder under `filter`'s root; batches arrive on the returned channel at the `pace` given
/// (or at most `MAX_DELAY` after the first change of a burst that never pauses).
pub(crate) fn start(
    filter: Filter,
    pace: Pace,
) -> Result<(Watcher, tokio::sync::mpsc::UnboundedReceiver<Batch>), WatchProblem> {
    let (raw_tx, raw_rx) = mpsc::channel();
    let watcher = notify::recommended_watcher(raw_tx).map_err(|e| problem(&e, &filter.root))?;
    let watcher = Arc::new(Mutex::new(watcher));
    let mut aliases = Aliases::new();
    let watcher_folders = folders_to_watch(&filter, &filter.root, &mut aliases);
    for dir in &watcher_folders {
        watch_folder(&watcher, dir)?;
    }
    let folders = watcher_folders.len();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = watcher.clone();
    let outputs = filter.outputs.clone();
    let source_roots = filter.source_roots.clone();
    let watched: HashSet<PathBuf> = watcher_folders.into_iter().collect();
    std::thread::Builder::new()
        .name("irun-watch".into())
        .spawn(move || {
            // Like every thread irun starts besides the main one, it takes no signal (see `driver::signals`).
            let all = nix::sys::signal::SigSet::all();
            let _ = nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&all), None);
            Debouncer { filter, watcher: handle, pace, unfinished: HashSet::new(), watched, aliases }.run(raw_rx, tx)
        })
        .map_err(|e| WatchProblem::NoThread { error: e.to_string() })?;
    Ok((Watcher { _inner: watcher, folders, outputs, source_roots }, rx))
}

/// `start` and every folder below it that is not ignored, following links to folders (inside the project or not),
/// each real folder once: a link loop ends, and a folder seen through two paths has one watch and two `aliases`.
fn folders_to_watch(filter: &Filter, start: &Path, aliases: &mut Aliases) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![start.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(real) = std::fs::canonicalize(&dir) else { continue };
        let rel = dir.strip_prefix(&filter.root).unwrap_or(&dir).to_path_buf();
        let seen = aliases.entry(real.clone()).or_default();
        if !seen.contains(&rel) {
            seen.push(rel);
        }
        if !visited.insert(real) {
            continue;
        }
        for sub in subfolders_and_links(filter, &dir) {
            let rel = sub.strip_prefix(&filter.root).unwrap_or(&sub);
            if !filter.ignored(rel, true) {
                stack.push(sub);
            }
        }
        out.push(dir);
    }
    out
}

fn watch_folder(watcher: &Mutex<RecommendedWatcher>, dir: &Path) -> Result<(), WatchProblem> {
    let mut w = watcher.lock().unwrap_or_else(|e| e.into_inner());
    w.watch(dir, RecursiveMode::NonRecursive).map_err(|e| problem(&e, dir))
}

/// A burst that never pauses still yields a batch this long after its first change (or four quiet periods, if that
/// is longer).
const MAX_DELAY: Duration = Duration::from_secs(1);

/// When a batch of changes is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// Changes must pause this long (`--debounce`).
    pub(crate) quiet: Duration,
    /// With `Some`, once every file written in the batch has been closed (or the changes were renames, removals,
    /// new folders), only this long: a save is complete when its file is closed.
    pub(crate) settle: Option<Duration>,
}

impl Pace {
    /// Without `--debounce`: 10ms after a completed change, 50ms of quiet otherwise. With it: always its quiet.
    pub(crate) fn new(debounce: Option<Duration>) -> Pace {
        match debounce {
            Some(quiet) => Pace { quiet, settle: None },
            None => Pace { quiet: Duration::from_millis(50), settle: Some(Duration::from_millis(10)) },
        }
    }
}

struct Debouncer {
    filter: Filter,
    watcher: Arc<Mutex<RecommendedWatcher>>,
    pace: Pace,
    /// Files written to (or created) and not closed since: their change may not be complete yet.
    unfinished: HashSet<PathBuf>,
    /// Folders with a watch: a removed or renamed one means files vanished without events of their own.
    watched: HashSet<PathBuf>,
    /// The paths each watched real folder is seen at (through links): a change is reported at each.
    aliases: Aliases,
}

impl Debouncer {
    fn run(
        mut self,
        raw: mpsc::Receiver<notify::Result<notify::Event>>,
        out: tokio::sync::mpsc::UnboundedSender<Batch>,
    ) {
        let max_delay = MAX_DELAY.max(self.pace.quiet * 4);
        let mut batch = Batch::default();
        // The first and the latest change of the batch being collected.
        let mut changes: Option<(Instant, Instant)> = None;
        loop {
            let event = match changes {
                None => match raw.recv() {
                    Ok(e) => Some(e),
                    Err(_) => return,
                },
                Some((first, last)) => {
                    let due = (last + self.window(&batch)).min(first + max_delay);
                    match raw.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(e) => Some(e),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            let due = match event {
                Some(e) => {
                    if self.absorb(e, &mut batch) {
                        let now = Instant::now();
                        batch.first_seen.get_or_insert(now);
                        batch.last_seen = Some(now);
                        changes = Some((changes.map_or(now, |(first, _)| first), now));
                    }
                    changes.is_some_and(|(first, last)| {
                        let now = Instant::now();
                        now >= first + max_delay || now >= last + self.window(&batch)
                    })
                }
                None => true,
            };
            if due {
                changes = None;
                self.unfinished.clear();
                if batch.rescan {
                    self.rewatch(&mut batch);
                }
                if out.send(std::mem::take(&mut batch)).is_err() {
                    return;
                }
            }
        }
    }

    /// How long the batch waits for more changes: briefly once every file written has been closed (more changes of
    /// the same save or burst come within it), the whole quiet period while one is still being written or after
    /// lost events.
    fn window(&self, batch: &Batch) -> Duration {
        match self.pace.settle {
            Some(settle) if self.unfinished.is_empty() && !batch.rescan => settle.min(self.pace.quiet),
            _ => self.pace.quiet,
        }
    }

    /// After lost events: read the ignore rules again and watch folders that appeared unseen.
    fn rewatch(&mut self, batch: &mut Batch) {
        self.filter.reload_gitignores();
        let root = self.filter.root.clone();
        for dir in folders_to_watch(&self.filter, &root, &mut self.aliases) {
            if !self.watched.contains(&dir) {
                match watch_folder(&self.watcher, &dir) {
                    Ok(()) => {
                        self.watched.insert(dir);
                    }
                    Err(e) => batch.notices.push(e),
                }
            }
        }
    }

    /// Add an event to the batch; true if it changed anything.
    fn absorb(&mut self, event: notify::Result<notify::Event>, batch: &mut Batch) -> bool {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                batch.notices.push(problem(&e, &self.filter.root));
                batch.rescan = true;
                return true;
            }
        };
        if event.need_rescan() {
            batch.rescan = true;
            return true;
        }
        // A file closed after writing: its change is complete.
        if matches!(event.kind, EventKind::Access(AccessKind::Close(AccessMode::Write))) {
            for path in &event.paths {
                self.unfinished.remove(path);
            }
            return false;
        }
        // Opening or reading a file changes nothing; a write also arrives as a modification.
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        let writing =
            matches!(event.kind, EventKind::Modify(ModifyKind::Data(_)) | EventKind::Create(CreateKind::File));
        let appeared = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both | RenameMode::Any))
        );
        let vanished = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From | RenameMode::Any))
        );
        let mut changed = false;
        for path in event.paths {
            let Ok(rel) = path.strip_prefix(&self.filter.root).map(Path::to_path_buf) else { continue };
            if rel.as_os_str().is_empty() {
                continue;
            }
            // A link to a folder that is followed counts as the folder: tasks' sources reach through it.
            let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            let is_dir =
                matches!(event.kind, EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder))
                    || self.watched.contains(&path)
                    || if is_link { self.filter.follows_link(&path) } else { path.is_dir() };
            if self.filter.ignored(&rel, is_dir) {
                continue;
            }
            if rel.file_name().is_some_and(|n| n == ".gitignore") {
                self.filter.reload_gitignores();
            }
            if is_dir {
                // (A rename of unknown direction counts as both: the folder is gone only if nothing is there now.)
                if vanished && !(appeared && path.exists()) {
                    // The folder's files went with it, perhaps without events of their own (moved away): the tasks
                    // whose sources could match in it are checked. (One made again at once is adopted by its own
                    // creation event.)
                    self.watched.retain(|w| !w.starts_with(&path));
                    batch.removed_dirs.extend(self.aliases_of(&path, &rel));
                    changed = true;
                } else if appeared {
                    changed |= self.adopt_folder(&path, batch);
                }
                continue;
            }
            if writing {
                self.unfinished.insert(path.clone());
            }
            // The same file as seen through every link to its folder.
            for alias in self.aliases_of(&path, &rel) {
                if alias == rel || !self.filter.ignored(&alias, false) {
                    batch.paths.insert(alias);
                }
            }
            changed = true;
        }
        changed
    }

    /// `rel` (the changed file at `path`), and the paths of the same file through links to its folder or to any
    /// folder above it.
    fn aliases_of(&self, path: &Path, rel: &Path) -> Vec<PathBuf> {
        let mut out = vec![rel.to_path_buf()];
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return out };
        let Ok(real) = std::fs::canonicalize(parent) else { return out };
        for folder in real.ancestors() {
            let Some(seen) = self.aliases.get(folder) else { continue };
            let below = real.strip_prefix(folder).unwrap_or(Path::new(""));
            for dir in seen {
                let alias = dir.join(below).join(name);
                if !out.contains(&alias) {
                    out.push(alias);
                }
            }
        }
        out
    }

    /// A folder appeared: watch it and everything below, and count the files already in it as changed (they may
    /// have been created before the watch was in place).
    fn adopt_folder(&mut self, dir: &Path, batch: &mut Batch) -> bool {
        let mut changed = false;
        let mut visited = HashSet::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            // Each real folder once (a link loop ends); its path through a link is remembered as an alias.
            let Ok(real) = std::fs::canonicalize(&d) else { continue };
            let rel = d.strip_prefix(&self.filter.root).unwrap_or(&d).to_path_buf();
            let seen = self.aliases.entry(real.clone()).or_default();
            if !seen.contains(&rel) {
                seen.push(rel);
            }
            if !visited.insert(real) {
                continue;
            }
            match watch_folder(&self.watcher, &d) {
                Ok(()) => {
                    self.watched.insert(d.clone());
                }
                Err(e) => batch.notices.push(e),
            }
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(&self.filter.root).map(Path::to_path_buf) else { continue };
                let is_dir =
                    entry.file_type().is_ok_and(|t| t.is_dir() || (t.is_symlink() && self.filter.follows_link(&path)));
                if self.filter.ignored(&rel, is_dir) {
                    continue;
                }
                if is_dir {
                    stack.push(path);
                } else {
                    batch.paths.insert(rel);
                    changed = true;
                }
            }
        }
        changed
    }
}

/// A watch error, with the kernel limit behind the common ones.
pub(crate) fn problem(e: &notify::Error, path: &Path) -> WatchProblem {
    let limit = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
            .map(|v| v.trim().to_string())
            .unwrap_or("?".into())
    };
    let io = match &e.kind {
        notify::ErrorKind::Io(io) => io.raw_os_error(),
        _ => None,
    };
    let path = path.to_path_buf();
    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) || io == Some(nix::libc::ENOSPC) {
        return WatchProblem::TooManyWatches { path, limit: limit("max_user_watches") };
    }
    if io == Some(nix::libc::EMFILE) {
        return WatchProblem::TooManyInstances { path, limit: limit("max_user_instances") };
    }
    WatchProblem::Other { path, error: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_is_unfinished_until_closed_and_only_then_the_batch_settles_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (tx, _rx) = mpsc::channel();
        let watcher = notify::recommended_watcher(tx).unwrap();
        let mut d = Debouncer {
            filter: Filter::new(&root, &[]),
            watcher: Arc::new(Mutex::new(watcher)),
            pace: Pace::new(None),
            unfinished: HashSet::new(),
            watched: HashSet::new(),
            aliases: Aliases::new(),
        };
        let file = root.join("a.txt");
        std::fs::write(&file, "x").unwrap();
        let event = |kind| Ok(notify::Event::new(kind).add_path(file.clone()));
        let mut batch = Batch::default();
        let written = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert!(d.absorb(event(written), &mut batch));
        assert_eq!(d.window(&batch), Duration::from_millis(50), "still being written: the whole quiet period");
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(!d.absorb(event(closed), &mut batch), "closing changes nothing by itself");
        assert_eq!(d.window(&batch), Duration::from_millis(10), "closed: the save is complete");
        assert!(batch.paths.contains(Path::new("a.txt")));
        // A rename into place is complete at once.
        let mut batch = Batch::default();
        assert!(d.absorb(event(EventKind::Modify(ModifyKind::Name(RenameMode::To))), &mut batch));
        assert_eq!(d.window(&batch), Duration::from_millis(10));
        // Lost events: anything may still be changing.
        batch.rescan = true;
        assert_eq!(d.window(&batch), Duration::from_millis(50));
        // An explicit --debounce is always waited for in full.
        d.pace = Pace::new(Some(Duration::from_millis(300)));
        batch.rescan = false;
        assert_eq!(d.window(&batch), Duration::from_millis(300));
    }

    #[test]
    fn watch_limit_errors_say_which_limit() {
        let e = notify::Error::new(notify::ErrorKind::MaxFilesWatch);
        assert!(matches!(problem(&e, Path::new("/p")), WatchProblem::TooManyWatches { .. }));
        let e = notify::Error::io(std::io::Error::from_raw_os_error(nix::libc::ENOSPC));
        assert!(matches!(problem(&e, Path::new("/p")), WatchProblem::TooManyWatches { .. }));
        let e = notify::Error::io(std::io::Error::from_raw_os_error(nix::libc::EMFILE));
        assert!(matches!(problem(&e, Path::new("/p")), WatchProblem::TooManyInstances { .. }));
    }
}
