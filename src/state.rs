//! irun's memory between runs: what each task's inputs and outputs looked like when it last ran.
//!
//! Kept in `.irun/state.toml` next to Irun.toml. Written atomically (a temporary file, fsync, rename), so killing
//! irun at any moment leaves either the old state or the new one. A state irun cannot read — truncated, garbage,
//! another program's or another version's — is reported and treated as empty: everything runs, nothing crashes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DIR: &str = ".irun";
const FILE: &str = "state.toml";
const TOOL: &str = "irun";
const VERSION: u32 = 1;

/// What a file looked like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i64,
    /// xxh3-128 of the content, hex.
    pub hash: String,
}

/// A task's last run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// For each dep with a record: its `recorded_at` when this task ran. A dep that ran since makes this task stale
    /// even in a later invocation.
    #[serde(default)]
    pub deps: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    tool: String,
    version: u32,
    /// xxh3-128 of everything after the header's blank line: a file cut short (or edited) is not mistaken for a
    /// smaller valid state.
    #[serde(default)]
    digest: String,
    #[serde(default)]
    last: BTreeMap<String, LastRun>,
    #[serde(default)]
    tasks: BTreeMap<String, TaskRecord>,
    #[serde(default)]
    durations: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    last: &'a BTreeMap<String, LastRun>,
    tasks: &'a BTreeMap<String, TaskRecord>,
    durations: &'a BTreeMap<String, u64>,
}

/// How every task's last run ended (for `irun graph --status`), kept apart from the fuller records of tasks with
/// sources so that a graph of thousands of tasks keeps a small state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastRun {
    Ok,
    Failed,
    Unfinished,
}

fn digest(body: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body.as_bytes()))
}

#[derive(Debug)]
pub struct State {
    path: PathBuf,
    pub tasks: BTreeMap<String, TaskRecord>,
    pub last: BTreeMap<String, LastRun>,
    /// How long each task last took, in milliseconds (a service: until it was ready), for scheduling priority.
    pub durations: BTreeMap<String, u64>,
}

impl State {
    pub fn path_for(root: &Path) -> PathBuf {
        root.join(DIR).join(FILE)
    }

    /// Load the state of the project at `root`. The error (with an empty state) says why it could not be used.
    pub fn load(root: &Path) -> (State, Option<String>) {
        let path = Self::path_for(root);
        let fresh =
            |path: PathBuf| State { path, tasks: BTreeMap::new(), last: BTreeMap::new(), durations: BTreeMap::new() };
        let empty = |why: String| (fresh(path.clone()), Some(why));
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (fresh(path), None);
            }
            Err(e) => return empty(format!("cannot read {}: {e}", path.display())),
        };
        let parsed = std::str::from_utf8(&text)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<StateFile>(t).map_err(|e| e.message().to_string()));
        let body = std::str::from_utf8(&text).ok().and_then(|t| t.split_once("\n\n")).map_or("", |(_, b)| b);
        match parsed {
            Ok(file) if file.tool == TOOL && file.version == VERSION && file.digest != digest(body) => {
                empty(format!("{} is unreadable (cut short or edited: its digest does not match)", path.display()))
            }
            Ok(file) if file.tool == TOOL && file.version == VERSION => {
                (State { path, tasks: file.tasks, last: file.last, durations: file.durations }, None)
            }
            Ok(file) => empty(format!(
                "{} was written by {} (format {}), not this irun (format {VERSION})",
                path.display(),
                file.tool,
                file.version
            )),
            Err(e) => empty(format!("{} is unreadable ({e})", path.display())),
        }
    }

    /// Write the state atomically.
    pub fn save(&self) -> std::io::Result<()> {
        let dir = self.path.parent().expect("the state file is in a folder");
        std::fs::create_dir_all(dir)?;
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "# irun's state; not for version control\n*\n")?;
        }
        let body = toml::to_string(&Body { last: &self.last, tasks: &self.tasks, durations: &self.durations })
            .map_err(std::io::Error::other)?;
        let text = format!("tool = \"{TOOL}\"\nversion = {VERSION}\ndigest = \"{}\"\n\n{body}", digest(&body));
        let tmp = dir.join(format!("{FILE}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Remove temporary files left by an irun that was killed while saving.
    pub fn clean_leftovers(root: &Path) {
        let Ok(entries) = std::fs::read_dir(root.join(DIR)) else { return };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&format!("{FILE}.tmp-"))) else { continue };
            // Only files whose writer is gone: another irun may be saving right now.
            let writer_alive = pid.parse::<i32>().is_ok_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !writer_alive {
                let _ = std::fs::remove_file(e.path());
            }
        }
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
        s.tasks.insert("setup".into(), rec.clone());
        s.save().unwrap();
        let (back, warning) = State::load(dir.path());
        assert!(warning.is_none());
        assert_eq!(back.tasks["setup"], rec);
        assert!(dir.path().join(".irun/.gitignore").exists());
    }

    #[test]
    fn a_state_cut_short_or_edited_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = State::load(dir.path());
        for name in ["a", "b"] {
            s.tasks.insert(name.into(), TaskRecord { ok: true, command: "c".into(), ..Default::default() });
        }
        s.save().unwrap();
        let text = std::fs::read_to_string(State::path_for(dir.path())).unwrap();
        // Cut just before the second task: still valid TOML, and a smaller state.
        let cut = &text[..text.find("[tasks.b]").unwrap()];
        let edited = text.replacen("ok = true", "ok = false", 1);
        for broken in [cut.to_string(), edited] {
            std::fs::write(State::path_for(dir.path()), broken).unwrap();
            let (s, warning) = State::load(dir.path());
            assert!(s.tasks.is_empty());
            assert!(warning.unwrap().contains("digest does not match"));
        }
    }

    #[test]
    fn garbage_and_foreign_files_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
        for (content, expect) in [
            (&b"\xff\xfe garbage"[..], "unreadable"),
            (b"tool = \"irun\"\nversion = 1\n[tasks.a]\nok = tr", "unreadable"),
            (b"tool = \"other\"\nversion = 1\n", "written by other"),
            (b"tool = \"irun\"\nversion = 99\n", "format 99"),
        ] {
            std::fs::write(State::path_for(dir.path()), content).unwrap();
            let (s, warning) = State::load(dir.path());
            assert!(s.tasks.is_empty());
            let warning = warning.unwrap();
            assert!(warning.contains(expect), "{warning}");
        }
    }
}
