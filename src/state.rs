//! irun's memory between runs: for each task, how its last run ended, how long it took, and what its inputs and
//! outputs looked like.
//!
//! Kept in `.irun/state.json` next to Irun.toml, one record per task. Saving takes `.irun/state.lock`, reads the
//! file again, replaces only the records this run changed, and writes the result atomically (a temporary file,
//! fsync, rename): two runs in one project at once never lose each other's records, and killing irun at any moment
//! leaves either the old state or the new one. A state irun cannot read (truncated, garbage, another program's or
//! another version's) is reported and treated as empty: everything runs, nothing crashes. The `.irun/state.toml` of
//! earlier versions is read, kept valid (no forced full rerun) and replaced by the first save.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DIR: &str = ".irun";
const FILE: &str = "state.json";
const LOCK: &str = "state.lock";
const LEGACY_FILE: &str = "state.toml";
const TOOL: &str = "irun";
const VERSION: u32 = 2;

/// How a record's settings were hashed: 1 from `Debug` text (the TOML state's era), 2 from canonical JSON.
pub const HASHING_LEGACY: u8 = 1;
pub const HASHING: u8 = 2;

/// What a file looked like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i64,
    /// xxh3-128 of the content, hex.
    pub hash: String,
}

fn current_hashing() -> u8 {
    HASHING
}

/// A task's last run (tasks with sources), or a service's fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub ok: bool,
    /// It was started (or decided to run) but never finished: killed, cancelled, interrupted.
    #[serde(default)]
    pub unfinished: bool,
    /// When the fingerprints were taken (nanoseconds since the epoch): files modified around then are re-hashed.
    pub recorded_at: i64,
    /// Hashes of the settings that change what the task does.
    pub command: String,
    pub env: String,
    pub cwd: String,
    pub globs: String,
    #[serde(default)]
    pub sources: BTreeMap<String, FileStamp>,
    #[serde(default)]
    pub outputs: BTreeMap<String, FileStamp>,
    /// For each dep: what it was when this task ran (a task's `recorded_at`, a service's fingerprint). A dep that
    /// has changed since makes this task stale, even in a later invocation.
    #[serde(default)]
    pub deps: BTreeMap<String, String>,
    /// How `command`, `env` and `globs` were hashed ([`HASHING`] for records written now).
    #[serde(default = "current_hashing")]
    pub hashing: u8,
    /// A service's fingerprint: its settings, sources and deps as it was last started.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
}

impl Default for TaskRecord {
    fn default() -> Self {
        TaskRecord {
            ok: false,
            unfinished: false,
            recorded_at: 0,
            command: String::new(),
            env: String::new(),
            cwd: String::new(),
            globs: String::new(),
            sources: BTreeMap::new(),
            outputs: BTreeMap::new(),
            deps: BTreeMap::new(),
            hashing: HASHING,
            fingerprint: String::new(),
        }
    }
}

/// How every task's last run ended (for `irun graph --status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastRun {
    Ok,
    Failed,
    Unfinished,
}

/// One task's entry in the file.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<LastRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<TaskRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    tool: String,
    version: u32,
    #[serde(default)]
    tasks: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct Maps {
    tasks: BTreeMap<String, TaskRecord>,
    last: BTreeMap<String, LastRun>,
    durations: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    pub tasks: BTreeMap<String, TaskRecord>,
    pub last: BTreeMap<String, LastRun>,
    /// How long each task last took, in milliseconds (a service: until it was ready), for scheduling priority.
    pub durations: BTreeMap<String, u64>,
    /// Tasks whose entry this run changed: a save writes only these over what is on disk.
    touched: BTreeSet<String>,
    /// The file these maps were read from or last written as (device, inode): every save replaces the file by a
    /// rename, so the same inode means nobody saved since, and the file need not be read again.
    disk: Option<(u64, u64)>,
}

/// The identity of the state file now, if there is one.
fn file_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join(FILE)).ok().map(|m| (m.dev(), m.ino()))
}

impl State {
    pub fn path_for(root: &Path) -> PathBuf {
        root.join(DIR).join(FILE)
    }

    /// Load the state of the project at `root`. The error (with an empty state) says why it could not be used.
    pub fn load(root: &Path) -> (State, Option<String>) {
        let dir = root.join(DIR);
        let (maps, warning) = match read(&dir) {
            Ok(maps) => (maps, None),
            Err(why) => (Maps::default(), Some(why)),
        };
        // A state of the previous format is written anew (as JSON) by the first save, whatever the run changes.
        let touched = if dir.join(FILE).exists() {
            BTreeSet::new()
        } else {
            maps.tasks.keys().chain(maps.last.keys()).chain(maps.durations.keys()).cloned().collect()
        };
        let disk = if warning.is_none() { file_id(&dir) } else { None };
        let state = State { dir, tasks: maps.tasks, last: maps.last, durations: maps.durations, touched, disk };
        (state, warning)
    }

    /// Whether this run changed something a save would write.
    pub fn unsaved(&self) -> bool {
        !self.touched.is_empty()
    }

    pub fn set_record(&mut self, name: &str, record: TaskRecord) {
        self.tasks.insert(name.to_string(), record);
        self.touched.insert(name.to_string());
    }

    pub fn set_last(&mut self, name: &str, last: LastRun) {
        self.last.insert(name.to_string(), last);
        self.touched.insert(name.to_string());
    }

    pub fn set_duration(&mut self, name: &str, ms: u64) {
        self.durations.insert(name.to_string(), ms);
        self.touched.insert(name.to_string());
    }

    /// Until it succeeds again, the task's record vouches for nothing.
    pub fn mark_unfinished(&mut self, name: &str) {
        if let Some(r) = self.tasks.get_mut(name) {
            r.unfinished = true;
        }
        self.set_last(name, LastRun::Unfinished);
    }

    /// Write this run's changes: under the lock, re-read the file, replace the entries this run touched, write it
    /// atomically. What other runs wrote meanwhile is kept, and becomes part of this state too.
    pub fn save(&mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let ignore = self.dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "# irun's state; not for version control\n*\n")?;
        }
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.dir.join(LOCK))?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| std::io::Error::from(errno))?;
        if self.disk.is_none() || file_id(&self.dir) != self.disk {
            // Another run saved since: take its file and put this run's entries on it. (A file irun cannot read
            // is replaced, as at load.)
            let mut merged = read(&self.dir).unwrap_or_default();
            for name in &self.touched {
                copy(&mut merged.tasks, &self.tasks, name);
                copy(&mut merged.last, &self.last, name);
                copy(&mut merged.durations, &self.durations, name);
            }
            self.tasks = merged.tasks;
            self.last = merged.last;
            self.durations = merged.durations;
        }
        let maps = Maps {
            tasks: std::mem::take(&mut self.tasks),
            last: std::mem::take(&mut self.last),
            durations: std::mem::take(&mut self.durations),
        };
        let written = write(&self.dir, &maps);
        (self.tasks, self.last, self.durations) = (maps.tasks, maps.last, maps.durations);
        written?;
        self.touched.clear();
        self.disk = file_id(&self.dir);
        let _ = std::fs::remove_file(self.dir.join(LEGACY_FILE));
        Ok(())
    }

    /// Remove temporary files left by an irun that was killed while saving.
    pub fn clean_leftovers(root: &Path) {
        let Ok(entries) = std::fs::read_dir(root.join(DIR)) else { return };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(pid) = [FILE, LEGACY_FILE].iter().find_map(|f| name.strip_prefix(&format!("{f}.tmp-"))) else {
                continue;
            };
            // Only files whose writer is gone: another irun may be saving right now.
            let writer_alive = pid.parse::<i32>().is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !writer_alive {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// `to[name] = from[name]`, or no entry if `from` has none.
fn copy<V: Clone>(to: &mut BTreeMap<String, V>, from: &BTreeMap<String, V>, name: &str) {
    match from.get(name) {
        Some(v) => {
            to.insert(name.to_string(), v.clone());
        }
        None => {
            to.remove(name);
        }
    }
}

/// The state in `dir`: the JSON file, else the TOML file of earlier versions, else nothing.
fn read(dir: &Path) -> Result<Maps, String> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => parse(&bytes).map_err(|why| format!("{} {why}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match legacy::read(&dir.join(LEGACY_FILE)) {
            Ok(Some(maps)) => Ok(maps),
            Ok(None) => Ok(Maps::default()),
            Err(why) => Err(why),
        },
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn parse(bytes: &[u8]) -> Result<Maps, String> {
    let file: StateFile = serde_json::from_slice(bytes).map_err(|e| format!("is unreadable ({e})"))?;
    if file.tool != TOOL || file.version != VERSION {
        return Err(format!(
            "was written by {} (format {}), not this irun (format {VERSION})",
            file.tool, file.version
        ));
    }
    let mut maps = Maps::default();
    for (name, entry) in file.tasks {
        if let Some(last) = entry.last {
            maps.last.insert(name.clone(), last);
        }
        if let Some(ms) = entry.duration_ms {
            maps.durations.insert(name.clone(), ms);
        }
        if let Some(record) = entry.record {
            maps.tasks.insert(name, record);
        }
    }
    Ok(maps)
}

fn write(dir: &Path, maps: &Maps) -> std::io::Result<()> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for (name, last) in &maps.last {
        entries.entry(name.clone()).or_default().last = Some(*last);
    }
    for (name, ms) in &maps.durations {
        entries.entry(name.clone()).or_default().duration_ms = Some(*ms);
    }
    for (name, record) in &maps.tasks {
        entries.entry(name.clone()).or_default().record = Some(record.clone());
    }
    let file = StateFile { tool: TOOL.to_string(), version: VERSION, tasks: entries };
    let mut text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let tmp = dir.join(format!("{FILE}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
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

/// The TOML state of irun's first format, read once and converted.
mod legacy {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde::Deserialize;

    use super::{FileStamp, HASHING_LEGACY, LastRun, Maps, TaskRecord};

    #[derive(Deserialize)]
    struct File {
        tool: String,
        version: u32,
        #[serde(default)]
        digest: String,
        #[serde(default)]
        last: BTreeMap<String, LastRun>,
        #[serde(default)]
        tasks: BTreeMap<String, Record>,
        #[serde(default)]
        durations: BTreeMap<String, u64>,
    }

    #[derive(Deserialize)]
    struct Record {
        ok: bool,
        #[serde(default)]
        unfinished: bool,
        recorded_at: i64,
        command: String,
        env: String,
        cwd: String,
        globs: String,
        #[serde(default)]
        sources: BTreeMap<String, FileStamp>,
        #[serde(default)]
        outputs: BTreeMap<String, FileStamp>,
        #[serde(default)]
        deps: BTreeMap<String, i64>,
    }

    /// `Ok(None)`: there is no such file.
    pub(super) fn read(path: &Path) -> Result<Option<Maps>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let unreadable = |why: String| format!("{} is unreadable ({why})", path.display());
        let text = std::str::from_utf8(&bytes).map_err(|e| unreadable(e.to_string()))?;
        let file: File = toml::from_str(text).map_err(|e| unreadable(e.message().to_string()))?;
        if file.tool != "irun" || file.version != 1 {
            return Err(format!(
                "{} was written by {} (format {}), not this irun",
                path.display(),
                file.tool,
                file.version
            ));
        }
        let body = text.split_once("\n\n").map_or("", |(_, b)| b);
        if file.digest != format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body.as_bytes())) {
            return Err(format!("{} is unreadable (cut short or edited: its digest does not match)", path.display()));
        }
        let tasks = file
            .tasks
            .into_iter()
            .map(|(name, r)| {
                let record = TaskRecord {
                    ok: r.ok,
                    unfinished: r.unfinished,
                    recorded_at: r.recorded_at,
                    command: r.command,
                    env: r.env,
                    cwd: r.cwd,
                    globs: r.globs,
                    sources: r.sources,
                    outputs: r.outputs,
                    deps: r.deps.into_iter().map(|(d, at)| (d, at.to_string())).collect(),
                    hashing: HASHING_LEGACY,
                    fingerprint: String::new(),
                };
                (name, record)
            })
            .collect();
        Ok(Some(Maps { tasks, last: file.last, durations: file.durations }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, warning) = State::load(dir.path());
        assert!(warning.is_none() && s.tasks.is_empty());
        let mut rec = TaskRecord { ok: true, command: "c".into(), ..Default::default() };
        rec.sources.insert("a b/ü.txt".into(), FileStamp { size: 3, mtime: 5, hash: "ff".into() });
        s.set_record("setup", rec.clone());
        s.set_last("setup", LastRun::Ok);
        s.set_duration("setup", 12);
        s.save().unwrap();
        let (back, warning) = State::load(dir.path());
        assert!(warning.is_none());
        assert_eq!(back.tasks["setup"], rec);
        assert_eq!((back.last["setup"], back.durations["setup"]), (LastRun::Ok, 12));
        assert!(dir.path().join(".irun/.gitignore").exists());
    }

    #[test]
    fn a_save_keeps_what_another_run_saved_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, _) = State::load(dir.path());
        let (mut second, _) = State::load(dir.path());
        second.set_record("x", TaskRecord { ok: false, command: "x".into(), ..Default::default() });
        second.set_last("x", LastRun::Failed);
        second.save().unwrap();
        // The first run loaded the state before the second saved; it only touched y.
        first.set_last("y", LastRun::Ok);
        first.save().unwrap();
        let (after, _) = State::load(dir.path());
        assert_eq!(after.last.get("x"), Some(&LastRun::Failed), "x's failure survives y's save");
        assert!(!after.tasks["x"].ok);
        assert_eq!(after.last.get("y"), Some(&LastRun::Ok));
        assert_eq!(first.last.get("x"), Some(&LastRun::Failed), "and the first run now knows it too");
    }

    #[test]
    fn a_toml_state_of_an_earlier_version_is_read_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
        let body = "[last]\na = \"ok\"\n\n[tasks.a]\nok = true\nrecorded_at = 7\ncommand = \"c\"\nenv = \"e\"\ncwd = \"/p\"\nglobs = \"g\"\n\n[tasks.a.deps]\nb = 5\n";
        let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body.as_bytes()));
        let text = format!("tool = \"irun\"\nversion = 1\ndigest = \"{digest}\"\n\n{body}");
        std::fs::write(dir.path().join(DIR).join(LEGACY_FILE), text).unwrap();
        let (mut s, warning) = State::load(dir.path());
        assert!(warning.is_none(), "{warning:?}");
        let a = &s.tasks["a"];
        assert_eq!((a.ok, a.hashing, a.deps["b"].as_str()), (true, HASHING_LEGACY, "5"));
        s.set_last("c", LastRun::Ok);
        s.save().unwrap();
        assert!(!dir.path().join(DIR).join(LEGACY_FILE).exists());
        let (back, _) = State::load(dir.path());
        assert_eq!(back.tasks["a"].hashing, HASHING_LEGACY, "the record keeps its hashing until it is written anew");
    }

    #[test]
    fn a_state_cut_short_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = State::load(dir.path());
        for name in ["a", "b"] {
            s.set_record(name, TaskRecord { ok: true, command: "c".into(), ..Default::default() });
        }
        s.save().unwrap();
        let text = std::fs::read_to_string(State::path_for(dir.path())).unwrap();
        let cut = &text[..text.len() / 2];
        std::fs::write(State::path_for(dir.path()), cut).unwrap();
        let (s, warning) = State::load(dir.path());
        assert!(s.tasks.is_empty());
        assert!(warning.unwrap().contains("is unreadable"));
    }

    #[test]
    fn garbage_and_foreign_files_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
        for (content, expect) in [
            (&b"\xff\xfe garbage"[..], "unreadable"),
            (b"{\"tool\": \"irun\", \"version\": 2, \"tasks\": {\"a\": {\"last\": \"o", "unreadable"),
            (b"{\"tool\": \"other\", \"version\": 2}", "written by other"),
            (b"{\"tool\": \"irun\", \"version\": 99}", "format 99"),
        ] {
            std::fs::write(State::path_for(dir.path()), content).unwrap();
            let (s, warning) = State::load(dir.path());
            assert!(s.tasks.is_empty());
            let warning = warning.unwrap();
            assert!(warning.contains(expect), "{warning}");
        }
    }
}
