//! irun's memory between runs: for each task, how its last run ended, how long it took, and what its inputs and
//! outputs looked like.
//!
//! Kept in `.irun/state.bin` next to Irun.toml, one record per task ([`binary`] holds its form; `irun state --json`
//! shows it). Saving takes `.irun/state.lock`, reads the
//! file again, replaces only the records this run changed, and writes the result atomically (a temporary file,
//! fsync, rename): two runs in one project at once never lose each other's records, and killing irun at any moment
//! leaves either the old state or the new one. A state irun cannot read (truncated, garbage, another program's or
//! another version's) is reported and treated as empty: everything runs, nothing crashes. The `.irun/state.json` and
//! `.irun/state.toml` of earlier versions are read, kept valid (no forced full rerun) and replaced by the first save.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) use digest::Digest;
pub(crate) use stamps::{FileStamp, FileStamps};

pub(crate) const DIR: &str = ".irun";
const FILE: &str = "state.bin";
const LOCK: &str = "state.lock";
/// The state's JSON file, of irun before the binary form (format 2), and its TOML file before that (format 1).
const JSON_FILE: &str = "state.json";
const LEGACY_FILE: &str = "state.toml";
const TOOL: &str = "irun";
/// The JSON form's format: 2 as written to `state.json`, 3 or 4 as `irun state --json` shows the binary file.
const JSON_VERSIONS: [u32; 3] = [2, 3, binary::FORMAT];

/// How a record's settings were hashed: 1 from `Debug` text (the TOML state's era), 2 from canonical JSON, 3 from
/// canonical JSON independent of where the project is (a relative cwd, the root's path replaced: see
/// `fresh/settings.rs`), with a service's probe.
pub(crate) const HASHING_LEGACY: u8 = 1;
pub(crate) const HASHING_ABSOLUTE: u8 = 2;
pub(crate) const HASHING: u8 = 3;

/// A record without `hashing` was written before records said how they were hashed: before [`HASHING`] 3.
fn unmarked_hashing() -> u8 {
    HASHING_ABSOLUTE
}

/// Tasks' entries by name: one map, so each name is held once (three maps of 10,000 names took 1.2 MB more).
pub(crate) type Entries = BTreeMap<String, Entry>;

/// A task's last run (tasks with sources), or a service's fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    pub(crate) ok: bool,
    /// It was started (or decided to run) but never finished: killed, cancelled, interrupted.
    #[serde(default)]
    pub(crate) unfinished: bool,
    /// When the task's run was recorded (nanoseconds since the epoch): what its dependents remember it by.
    pub(crate) recorded_at: i64,
    /// When the files of `sources` and `outputs` were last read or found unchanged since (nanoseconds since the
    /// epoch; 0 in records of an irun before it was recorded): see `fresh::stamp` for what it vouches for.
    #[serde(default)]
    pub(crate) checked_at: i64,
    /// Hashes of the settings that change what the task does.
    pub(crate) command: Digest,
    pub(crate) env: Digest,
    /// Relative to the project's root (absolute outside it, and in records of an older [`HASHING`]). Shared: the
    /// records read from the state file that have the same cwd (most often `.`) hold one allocation.
    pub(crate) cwd: std::sync::Arc<str>,
    pub(crate) globs: Digest,
    /// A service's readiness probe, hashed (empty for a task).
    #[serde(default, skip_serializing_if = "Digest::is_empty")]
    pub(crate) probe: Digest,
    #[serde(default)]
    pub(crate) sources: FileStamps,
    #[serde(default)]
    pub(crate) outputs: FileStamps,
    /// For each dep: what it was when this task ran (a task's `recorded_at`, a service's fingerprint). A dep that
    /// has changed since makes this task stale, even in a later invocation.
    #[serde(default)]
    pub(crate) deps: BTreeMap<String, String>,
    /// How `command`, `env` and `globs` were hashed ([`HASHING`] for records written now).
    #[serde(default = "unmarked_hashing")]
    pub(crate) hashing: u8,
    /// A service's fingerprint: its settings, sources and deps as it was last started.
    #[serde(default, skip_serializing_if = "Digest::is_empty")]
    pub(crate) fingerprint: Digest,
}

impl Default for TaskRecord {
    fn default() -> Self {
        TaskRecord {
            ok: false,
            unfinished: false,
            recorded_at: 0,
            checked_at: 0,
            command: Digest::default(),
            env: Digest::default(),
            cwd: "".into(),
            globs: Digest::default(),
            probe: Digest::default(),
            sources: FileStamps::default(),
            outputs: FileStamps::default(),
            deps: BTreeMap::new(),
            hashing: HASHING,
            fingerprint: Digest::default(),
        }
    }
}

/// How every task's last run ended (for `irun graph --status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LastRun {
    Ok,
    Failed,
    Unfinished,
}

/// One task's entry: how its last run ended, how long it took, and its record. The record is boxed: it takes 240
/// bytes, and a map's node holds eleven entries, about half of them empty when it was filled in order.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last: Option<LastRun>,
    /// How long it last took, in milliseconds (a service: until it was ready), for scheduling priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) record: Option<Box<TaskRecord>>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.last.is_none() && self.duration_ms.is_none() && self.record.is_none()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    tool: String,
    version: u32,
    #[serde(default)]
    tasks: Entries,
}

#[derive(Serialize)]
struct StateFileRef<'a> {
    tool: &'a str,
    version: u32,
    tasks: &'a Entries,
}

#[derive(Debug)]
pub(crate) struct State {
    dir: PathBuf,
    entries: Entries,
    /// Tasks whose entry this run changed: a save writes only these over what is on disk.
    touched: BTreeSet<String>,
    /// Entries read from the previous format: a save writes them only where the file has none, never over what
    /// another run saved since.
    migrated: BTreeSet<String>,
    /// Records of up-to-date tasks given their files' new stamps ([`State::refresh_record`]): a save writes them only
    /// over the same run's record, never over what another run saved since, and nothing else of their entry.
    refreshed: BTreeSet<String>,
    /// The state file as this run last read or wrote it, kept open: while it is open its inode cannot be reused, so
    /// the path still naming this inode means no other run saved since (every save replaces the file by a rename).
    disk: Option<File>,
}

impl State {
    pub(crate) fn path_for(root: &Path) -> PathBuf {
        root.join(DIR).join(FILE)
    }

    /// The lock a save takes, for the project at `root`.
    pub(crate) fn lock_path_for(root: &Path) -> PathBuf {
        root.join(DIR).join(LOCK)
    }

    /// Load the state of the project at `root`. The error (with an empty state) says why it could not be used.
    pub(crate) fn load(root: &Path) -> (State, Option<String>) {
        let dir = root.join(DIR);
        let (entries, disk, legacy, warning) = match read(&dir) {
            Ok(Read { entries, file, legacy }) => (entries, file, legacy, None),
            Err(why) => (Entries::default(), None, false, Some(why)),
        };
        let migrated = if legacy { entries.keys().cloned().collect() } else { BTreeSet::new() };
        let state = State { dir, entries, touched: BTreeSet::new(), migrated, refreshed: BTreeSet::new(), disk };
        (state, warning)
    }

    /// `name`'s record, if it has one.
    pub(crate) fn record(&self, name: &str) -> Option<&TaskRecord> {
        self.entries.get(name)?.record.as_deref()
    }

    /// How `name`'s last run ended, if it is known.
    #[cfg(test)]
    pub(crate) fn last(&self, name: &str) -> Option<LastRun> {
        self.entries.get(name)?.last
    }

    /// How long `name` last took, in milliseconds, if it is known.
    pub(crate) fn duration(&self, name: &str) -> Option<u64> {
        self.entries.get(name)?.duration_ms
    }

    /// Every task's entry, by name.
    pub(crate) fn entries(&self) -> &Entries {
        &self.entries
    }

    #[cfg(test)]
    pub(crate) fn record_mut(&mut self, name: &str) -> Option<&mut TaskRecord> {
        self.entries.get_mut(name)?.record.as_deref_mut()
    }

    /// `name`'s entry, made if it has none.
    fn entry(&mut self, name: &str) -> &mut Entry {
        if !self.entries.contains_key(name) {
            self.entries.insert(name.to_string(), Entry::default());
        }
        self.entries.get_mut(name).expect("just made")
    }

    /// Whether this run has something a save would write.
    pub(crate) fn unsaved(&self) -> bool {
        !self.touched.is_empty() || !self.migrated.is_empty() || !self.refreshed.is_empty()
    }

    /// Whether all a save would write is refreshed stamps (which only save reading files again).
    pub(crate) fn only_refreshed(&self) -> bool {
        self.touched.is_empty() && self.migrated.is_empty()
    }

    /// Refreshed stamps that could not be saved: not tried again (the files are read again next time).
    pub(crate) fn forget_refreshed(&mut self) {
        self.refreshed.clear();
    }

    /// `record` is the task's record with its files' stamps now: what it vouches for is the same (its run, settings
    /// and deps), so it replaces on disk only that same record.
    pub(crate) fn refresh_record(&mut self, name: &str, record: TaskRecord) {
        self.entry(name).record = Some(Box::new(record));
        self.refreshed.insert(name.to_string());
    }

    pub(crate) fn set_record(&mut self, name: &str, record: TaskRecord) {
        self.entry(name).record = Some(Box::new(record));
        self.touched.insert(name.to_string());
    }

    pub(crate) fn set_last(&mut self, name: &str, last: LastRun) {
        self.entry(name).last = Some(last);
        self.touched.insert(name.to_string());
    }

    pub(crate) fn set_duration(&mut self, name: &str, ms: u64) {
        self.entry(name).duration_ms = Some(ms);
        self.touched.insert(name.to_string());
    }

    /// Until it succeeds again, the task's record vouches for nothing.
    pub(crate) fn mark_unfinished(&mut self, name: &str) {
        if let Some(r) = self.entries.get_mut(name).and_then(|e| e.record.as_mut()) {
            r.unfinished = true;
        }
        self.set_last(name, LastRun::Unfinished);
    }

    /// Write this run's changes: under the lock, read the file again if another run replaced it, put the entries
    /// this run touched on it, and write it atomically. What other runs wrote meanwhile is kept, and becomes part
    /// of this state too. A lock held by another run's save means "not now" (`Ok(false)`): irun's loop must not
    /// freeze behind a run that was suspended while saving (and waits, if it must, where a signal can reach it).
    pub(crate) fn save(&mut self) -> std::io::Result<bool> {
        std::fs::create_dir_all(&self.dir)?;
        // Written only where there is nothing at all (not through a link or into a pipe someone left there).
        let ignore = self.dir.join(".gitignore");
        if std::fs::symlink_metadata(&ignore).is_err() {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&ignore)?;
            f.write_all(b"# irun's state; not for version control\n*\n")?;
        }
        let Some(_lock) = lock(&self.dir.join(LOCK))? else { return Ok(false) };
        clean_leftovers(&self.dir);
        let unchanged = match (&self.disk, std::fs::metadata(self.dir.join(FILE))) {
            (Some(file), Ok(now)) => file.metadata().is_ok_and(|then| same_file(&then, &now)),
            _ => false,
        };
        if !unchanged {
            // Another run saved since (or there is no file yet): take what is on disk and put this run's entries
            // on it. (A file irun cannot read is replaced, as at load.)
            let mut merged = read(&self.dir).map(|r| r.entries).unwrap_or_default();
            for name in &self.touched {
                match self.entries.get(name) {
                    Some(ours) => merged.insert(name.clone(), ours.clone()),
                    None => merged.remove(name),
                };
            }
            for name in self.migrated.difference(&self.touched) {
                let Some(ours) = self.entries.get(name) else { continue };
                let on_disk = merged.entry(name.clone()).or_default();
                on_disk.last = on_disk.last.or(ours.last);
                on_disk.duration_ms = on_disk.duration_ms.or(ours.duration_ms);
                if on_disk.record.is_none() {
                    on_disk.record = ours.record.clone();
                }
            }
            for name in self.refreshed.difference(&self.touched) {
                if let (Some(on_disk), Some(ours)) =
                    (merged.get_mut(name).and_then(|e| e.record.as_mut()), self.record(name))
                    && same_run(on_disk, ours)
                {
                    **on_disk = ours.clone();
                }
            }
            self.entries = merged;
        }
        write(&self.dir, &self.entries)?;
        self.disk = File::open(self.dir.join(FILE)).ok();
        self.touched.clear();
        self.migrated.clear();
        self.refreshed.clear();
        for earlier in [JSON_FILE, LEGACY_FILE] {
            let _ = std::fs::remove_file(self.dir.join(earlier));
        }
        Ok(true)
    }
}

/// Whether two records are of one run of a task (they may differ in their files' stamps and when those were checked).
fn same_run(a: &TaskRecord, b: &TaskRecord) -> bool {
    let strip = |r: &TaskRecord| TaskRecord {
        sources: FileStamps::default(),
        outputs: FileStamps::default(),
        checked_at: 0,
        ..r.clone()
    };
    strip(a) == strip(b)
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Take the state's lock, at once. `None`: another run holds it.
fn lock(path: &Path) -> std::io::Result<Option<nix::fcntl::Flock<File>>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::OpenOptionsExt;
    // Without blocking: a named pipe there fails at once (no reader) instead of waiting forever.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(errno.into()),
    }
}

/// Remove temporary files left by an irun that was killed while saving (under the lock: nobody is saving).
fn clean_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if [FILE, JSON_FILE, LEGACY_FILE].iter().any(|f| name.starts_with(&format!("{f}.tmp-"))) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What `read` found: the entries, the open state file they came from, and whether they came from an earlier format.
struct Read {
    entries: Entries,
    file: Option<File>,
    legacy: bool,
}

/// The state in `dir`: the binary file, else the JSON or the TOML file of earlier versions, else nothing.
fn read(dir: &Path) -> Result<Read, String> {
    let path = dir.join(FILE);
    if let Some((bytes, file)) = read_regular(&path)? {
        let entries = match binary::is_binary(&bytes) {
            true => binary::decode(&bytes),
            false => Err("is unreadable (not irun's state)".into()),
        };
        let entries = entries.map_err(|why| format!("{} {why}", path.display()))?;
        return Ok(Read { entries, file: Some(file), legacy: false });
    }
    let json = dir.join(JSON_FILE);
    match read_regular(&json)? {
        Some((bytes, _)) => {
            let entries = parse(&bytes).map_err(|why| format!("{} {why}", json.display()))?;
            Ok(Read { entries, file: None, legacy: true })
        }
        None => match legacy::read(&dir.join(LEGACY_FILE)) {
            Ok(Some(entries)) => Ok(Read { entries, file: None, legacy: true }),
            Ok(None) => Ok(Read { entries: Entries::default(), file: None, legacy: false }),
            Err(why) => Err(why),
        },
    }
}

/// The most of a state file irun reads: far more than any project's state, far less than fills memory.
const MAX_BYTES: u64 = 256 << 20;

/// The content of the regular file at `path` and the file, open (`None`: there is none). Anything else there (a
/// named pipe, a link to /dev/zero, a folder) is refused without reading from it, and so is a file over
/// [`MAX_BYTES`]: it is opened without blocking (a pipe with no writer would wait forever) and checked once open.
fn read_regular(path: &Path) -> Result<Option<(Vec<u8>, File)>, String> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits() | nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let meta = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let kind = meta.file_type();
    let what = match () {
        _ if kind.is_file() => None,
        _ if kind.is_fifo() => Some("a named pipe"),
        _ if kind.is_char_device() || kind.is_block_device() => Some("a device"),
        _ if kind.is_dir() => Some("a folder"),
        _ => Some("not a file"),
    };
    if let Some(what) = what {
        return Err(format!("{} is not a regular file ({what})", path.display()));
    }
    let too_big = || format!("{} is larger than {} MiB", path.display(), MAX_BYTES >> 20);
    if meta.len() > MAX_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&file).take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_big());
    }
    Ok(Some((bytes, file)))
}

fn parse(bytes: &[u8]) -> Result<Entries, String> {
    let mut file: StateFile = serde_json::from_slice(bytes).map_err(|e| format!("is unreadable ({e})"))?;
    if file.tool != TOOL || !JSON_VERSIONS.contains(&file.version) {
        return Err(format!(
            "was written by {} (format {}), not this irun (format {})",
            file.tool,
            file.version,
            binary::FORMAT
        ));
    }
    file.tasks.retain(|_, entry| !entry.is_empty());
    Ok(file.tasks)
}

/// The state as `irun state --json` shows it: the JSON form of irun before the binary one (with what the binary
/// file holds, inode, ctime and `checked_at` included).
pub(crate) fn json(root: &Path) -> Result<String, String> {
    let entries = read(&root.join(DIR))?.entries;
    let file = StateFileRef { tool: TOOL, version: binary::FORMAT, tasks: &entries };
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

fn write(dir: &Path, entries: &Entries) -> std::io::Result<()> {
    let text = binary::encode(entries);
    let tmp = dir.join(format!("{FILE}.tmp-{}", std::process::id()));
    let result = (|| {
        // A new file of its own: never through whatever a killed run (or anyone) left at that name.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

mod binary;
mod digest;
mod legacy;
mod stamps;
#[cfg(test)]
mod tests;
