//! Watch mode's eyes: an inotify watch (through notify) on every folder of the project that is not ignored,
//! turned into debounced batches of changed paths.
//!
//! Folders, not files, are watched, so editors' atomic saves (write a temporary file, rename it over the original)
//! and backup renames are seen. A folder created later is watched as soon as it appears and scanned, so files
//! created in it before the watch was in place are not missed. A kernel queue overflow becomes a "rescan" batch:
//! everything may have changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

/// Changes seen since the last batch.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Changed paths, relative to the project root.
    pub paths: BTreeSet<PathBuf>,
    /// The kernel dropped events: anything may have changed.
    pub rescan: bool,
    /// Problems worth telling the user (a folder that could not be watched).
    pub notices: Vec<String>,
}

/// Folders and files never worth reacting to.
const IGNORED_NAMES: &[&str] = &[".git", "target", ".venv", "__pycache__", ".irun", ".mypy_cache", ".pytest_cache"];
/// Compiled files and editors' swap, backup and temporary files.
const IGNORED_GLOBS: &[&str] = &[
    "*.pyc",
    "*.pyo",
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.kate-swp",
    ".goutputstream-*",
    "*___jb_tmp___",
    "*___jb_old___",
    ".DS_Store",
];

/// Which paths changes are ignored for.
pub struct Filter {
    root: PathBuf,
    builtin: GlobSet,
    /// Tasks' declared outputs: writing them must never trigger a cycle.
    outputs: GlobSet,
    gitignores: Vec<Gitignore>,
}

impl Filter {
    /// `outputs` are globs relative to `root`.
    pub fn new(root: &Path, outputs: &[String]) -> Filter {
        let mut builtin = GlobSetBuilder::new();
        for g in IGNORED_GLOBS {
            builtin.add(Glob::new(g).expect("built-in globs are valid"));
        }
        let mut out = GlobSetBuilder::new();
        for g in outputs {
            if let Ok(glob) = Glob::new(g) {
                out.add(glob);
            }
        }
        let mut filter = Filter {
            root: root.to_path_buf(),
            builtin: builtin.build().expect("built-in globs are valid"),
            outputs: out.build().unwrap_or_else(|_| GlobSet::empty()),
            gitignores: Vec::new(),
        };
        filter.gitignores = filter.find_gitignores();
        filter
    }

    /// Every .gitignore in the project (outside ignored folders), plus .git/info/exclude.
    fn find_gitignores(&self) -> Vec<Gitignore> {
        let mut found = Vec::new();
        let mut root_rules = GitignoreBuilder::new(&self.root);
        root_rules.add(self.root.join(".git/info/exclude"));
        root_rules.add(self.root.join(".gitignore"));
        if let Ok(g) = root_rules.build() {
            found.push(g);
        }
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for sub in subfolders(&dir) {
                let rel = sub.strip_prefix(&self.root).unwrap_or(&sub).to_path_buf();
                if self.ignored_by(&found, &rel, true) {
                    continue;
                }
                let file = sub.join(".gitignore");
                if file.is_file() {
                    let mut b = GitignoreBuilder::new(&sub);
                    b.add(&file);
                    if let Ok(g) = b.build() {
                        found.push(g);
                    }
                }
                stack.push(sub);
            }
        }
        found
    }

    fn ignored_by(&self, gitignores: &[Gitignore], rel: &Path, is_dir: bool) -> bool {
        if rel.components().any(|c| IGNORED_NAMES.iter().any(|n| c.as_os_str() == *n)) {
            return true;
        }
        if rel.file_name().is_some_and(|name| self.builtin.is_match(name)) || self.builtin.is_match(rel) {
            return true;
        }
        let abs = self.root.join(rel);
        gitignores.iter().any(|g| abs.starts_with(g.path()) && g.matched_path_or_any_parents(&abs, is_dir).is_ignore())
    }

    /// Whether a change to `rel` (relative to the root) is to be ignored.
    pub fn ignored(&self, rel: &Path, is_dir: bool) -> bool {
        self.outputs.is_match(rel) || self.ignored_by(&self.gitignores, rel, is_dir)
    }
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    // `file_type` does not follow symlinks: a link to a folder is not descended into (no loops, no escapes).
    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
}

/// A running watch. Dropping it stops watching.
pub struct Watcher {
    _inner: Arc<Mutex<RecommendedWatcher>>,
    pub folders: usize,
}

/// Watch every non-ignored folder under `filter`'s root; batches arrive on the returned channel after `debounce`
/// of quiet (or at most `MAX_DELAY` after the first change of a burst that never pauses).
pub fn start(
    filter: Filter,
    debounce: Duration,
) -> Result<(Watcher, tokio::sync::mpsc::UnboundedReceiver<Batch>), String> {
    let (raw_tx, raw_rx) = mpsc::channel();
    let watcher = notify::recommended_watcher(raw_tx).map_err(|e| describe_error(&e, &filter.root))?;
    let watcher = Arc::new(Mutex::new(watcher));
    let mut folders = 0;
    let mut stack = vec![filter.root.clone()];
    while let Some(dir) = stack.pop() {
        watch_folder(&watcher, &dir)?;
        folders += 1;
        for sub in subfolders(&dir) {
            let rel = sub.strip_prefix(&filter.root).unwrap_or(&sub);
            if !filter.ignored(rel, true) {
                stack.push(sub);
            }
        }
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = watcher.clone();
    std::thread::Builder::new()
        .name("irun-watch".into())
        .spawn(move || Debouncer { filter, watcher: handle, debounce }.run(raw_rx, tx))
        .map_err(|e| format!("cannot start the watch thread: {e}"))?;
    Ok((Watcher { _inner: watcher, folders }, rx))
}

fn watch_folder(watcher: &Mutex<RecommendedWatcher>, dir: &Path) -> Result<(), String> {
    let mut w = watcher.lock().unwrap_or_else(|e| e.into_inner());
    w.watch(dir, RecursiveMode::NonRecursive).map_err(|e| describe_error(&e, dir))
}

/// A burst that never pauses still yields a batch this long after its first change.
const MAX_DELAY: Duration = Duration::from_secs(1);

struct Debouncer {
    filter: Filter,
    watcher: Arc<Mutex<RecommendedWatcher>>,
    debounce: Duration,
}

impl Debouncer {
    fn run(self, raw: mpsc::Receiver<notify::Result<notify::Event>>, out: tokio::sync::mpsc::UnboundedSender<Batch>) {
        let mut batch = Batch::default();
        let mut first_change: Option<Instant> = None;
        loop {
            let event = match first_change {
                None => match raw.recv() {
                    Ok(e) => Some(e),
                    Err(_) => return,
                },
                Some(first) => {
                    let wait = self.debounce.min(MAX_DELAY.saturating_sub(first.elapsed()));
                    match raw.recv_timeout(wait) {
                        Ok(e) => Some(e),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            match event {
                Some(e) => {
                    if self.absorb(e, &mut batch) && first_change.is_none() {
                        first_change = Some(Instant::now());
                    }
                    if first_change.is_some_and(|f| f.elapsed() >= MAX_DELAY) {
                        first_change = None;
                        if out.send(std::mem::take(&mut batch)).is_err() {
                            return;
                        }
                    }
                }
                None => {
                    first_change = None;
                    if out.send(std::mem::take(&mut batch)).is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Add an event to the batch; true if it changed anything.
    fn absorb(&self, event: notify::Result<notify::Event>, batch: &mut Batch) -> bool {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                batch.notices.push(describe_error(&e, &self.filter.root));
                batch.rescan = true;
                return true;
            }
        };
        if event.need_rescan() {
            batch.rescan = true;
            return true;
        }
        // Opening or reading a file changes nothing; a write also arrives as a modification.
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        let appeared = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both | RenameMode::Any))
        );
        let mut changed = false;
        for path in event.paths {
            let Ok(rel) = path.strip_prefix(&self.filter.root).map(Path::to_path_buf) else { continue };
            let is_dir = path.is_dir();
            if rel.as_os_str().is_empty() || self.filter.ignored(&rel, is_dir) {
                continue;
            }
            if is_dir {
                if appeared {
                    changed |= self.adopt_folder(&path, batch);
                }
                continue;
            }
            batch.paths.insert(rel);
            changed = true;
        }
        changed
    }

    /// A folder appeared: watch it and everything below, and count the files already in it as changed (they may
    /// have been created before the watch was in place).
    fn adopt_folder(&self, dir: &Path, batch: &mut Batch) -> bool {
        let mut changed = false;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            if let Err(e) = watch_folder(&self.watcher, &d) {
                batch.notices.push(e);
            }
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(&self.filter.root).map(Path::to_path_buf) else { continue };
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
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

/// A watch error, with what to do about the kernel limits behind the common ones.
pub fn describe_error(e: &notify::Error, path: &Path) -> String {
    let limit = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
            .map(|v| v.trim().to_string())
            .unwrap_or("?".into())
    };
    let io = match &e.kind {
        notify::ErrorKind::Io(io) => io.raw_os_error(),
        _ => None,
    };
    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) || io == Some(nix::libc::ENOSPC) {
        return format!(
            "cannot watch {}: the inotify watch limit is reached (fs.inotify.max_user_watches = {}); raise it with \
             `sudo sysctl fs.inotify.max_user_watches=524288`, or ignore large folders in .gitignore",
            path.display(),
            limit("max_user_watches")
        );
    }
    if io == Some(nix::libc::EMFILE) {
        return format!(
            "cannot watch {}: too many inotify instances (fs.inotify.max_user_instances = {}); raise it with \
             `sudo sysctl fs.inotify.max_user_instances=1024`, or stop other watching programs",
            path.display(),
            limit("max_user_instances")
        );
    }
    format!("cannot watch {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_ignores_and_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let f = Filter::new(dir.path(), &["build/**".to_string()]);
        for p in [
            ".git/index",
            "target/debug/x",
            ".venv/bin/python",
            "a/__pycache__/m.cpython-311.pyc",
            "x.pyc",
            "notes.txt~",
            ".file.py.swp",
            "4913",
            "build/out.bin",
        ] {
            assert!(f.ignored(Path::new(p), false), "{p} should be ignored");
        }
        for p in ["src/main.rs", "integration/thread", "targets/list", "buildings.txt"] {
            assert!(!f.ignored(Path::new(p), false), "{p} should be watched");
        }
    }

    #[test]
    fn gitignore_rules_apply_including_nested_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.log\n/generated/\n").unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deep")).unwrap();
        std::fs::write(dir.path().join("sub/.gitignore"), "secret.txt\n").unwrap();
        let f = Filter::new(dir.path(), &[]);
        assert!(f.ignored(Path::new("a/b.log"), false));
        assert!(f.ignored(Path::new("generated/x.rs"), false));
        assert!(f.ignored(Path::new("sub/deep/secret.txt"), false));
        assert!(!f.ignored(Path::new("secret.txt"), false));
        assert!(!f.ignored(Path::new("sub/deep/code.rs"), false));
    }

    #[test]
    fn watch_limit_errors_say_which_limit_and_how_to_raise_it() {
        let e = notify::Error::new(notify::ErrorKind::MaxFilesWatch);
        let text = describe_error(&e, Path::new("/p"));
        assert!(text.contains("fs.inotify.max_user_watches") && text.contains("sysctl"), "{text}");
        let e = notify::Error::io(std::io::Error::from_raw_os_error(nix::libc::EMFILE));
        let text = describe_error(&e, Path::new("/p"));
        assert!(text.contains("fs.inotify.max_user_instances"), "{text}");
    }
}
