//! The local store under `.irun/cache/`: one file per key, written atomically (a temporary file, then renamed),
//! kept under a size limit (`IRUN_CACHE_MAX`) by removing the least recently used entries; a hit touches its
//! entry. An index of the last key stored per task lets `irun explain` name the part that changed. A store keeps
//! what it learned in memory (the index, the entries' total size), so a run storing many results pays for each
//! once, not for all of them every time.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// 1 GiB.
pub(crate) const DEFAULT_MAX: u64 = 1 << 30;
const SUFFIX: &str = ".tar.gz";
const INDEX: &str = "index.json";
/// How often, at most, the index is written during a run (and once more as the store goes away).
const INDEX_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct LocalStore {
    dir: PathBuf,
    max: u64,
    /// The index as read and changed since, and whether the file is behind it; when it was last written.
    index: Option<BTreeMap<String, Vec<(String, String)>>>,
    index_behind: bool,
    index_written: Option<std::time::Instant>,
    /// The entries' total size, once counted.
    total: Option<u64>,
}

/// What `irun cache status` says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) entries: usize,
    pub(crate) bytes: u64,
}

/// `IRUN_CACHE_MAX`: bytes, or a number with `K`, `M`, `G` or `T` (powers of 1024, `KiB`/`KB` alike).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a size: write bytes, or e.g. 500M, 2G"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("`{text}` has an unknown unit: use K, M, G or T (e.g. 500M, 2G)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("`{text}` is too large"))
}

impl LocalStore {
    /// The store of the project at `root`, limited to `max` bytes.
    pub(crate) fn new(root: &Path, max: u64) -> LocalStore {
        LocalStore {
            dir: root.join(".irun").join("cache"),
            max,
            index: None,
            index_behind: false,
            index_written: None,
            total: None,
        }
    }

    /// The store with its limit from `IRUN_CACHE_MAX`; a warning when that could not be read (the default holds).
    pub(crate) fn from_env(root: &Path) -> (LocalStore, Option<String>) {
        match std::env::var("IRUN_CACHE_MAX") {
            Ok(text) => match parse_size(&text) {
                Ok(max) => (LocalStore::new(root, max), None),
                Err(e) => (LocalStore::new(root, DEFAULT_MAX), Some(format!("IRUN_CACHE_MAX: {e}; using 1G"))),
            },
            Err(_) => (LocalStore::new(root, DEFAULT_MAX), None),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{SUFFIX}"))
    }

    /// The artifact stored under `key`, touched as just used.
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(bytes)
    }

    /// Store `bytes` under `key` (atomically), remember it as `task`'s last key with its parts, and evict the least
    /// recently used entries past the limit (never the one just stored).
    pub(crate) fn put(
        &mut self,
        key: &str,
        task: &str,
        parts: &[(String, String)],
        bytes: &[u8],
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let replaced = std::fs::metadata(self.path(key)).map_or(0, |m| m.len());
        write_atomic(&self.dir, &self.path(key), bytes)?;
        let mut index = self.index();
        index.insert(task.to_string(), parts.to_vec());
        self.index = Some(index);
        self.index_behind = true;
        if self.index_written.is_none_or(|at| at.elapsed() >= INDEX_EVERY) {
            self.write_index()?;
        }
        let total = match self.total {
            Some(total) => total.saturating_sub(replaced) + bytes.len() as u64,
            None => self.entries().iter().map(|(_, size, _)| size).sum(),
        };
        self.total = Some(total);
        if total > self.max {
            self.evict(key)?;
        }
        Ok(())
    }

    /// Write the index if it is behind what this store knows.
    pub(crate) fn write_index(&mut self) -> std::io::Result<()> {
        if let (true, Some(index)) = (self.index_behind, &self.index) {
            write_atomic(&self.dir, &self.dir.join(INDEX), &serde_json::to_vec(index)?)?;
            self.index_behind = false;
            self.index_written = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// Remove an entry that turned out to be unusable.
    pub(crate) fn remove(&mut self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
        self.total = None;
    }

    /// The last stored key's parts, by task.
    pub(crate) fn index(&self) -> BTreeMap<String, Vec<(String, String)>> {
        if let Some(index) = &self.index {
            return index.clone();
        }
        std::fs::read(self.dir.join(INDEX)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Entries, oldest use first: (path, size, last used).
    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut out: Vec<_> = dir
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((e.path(), meta.len(), meta.modified().ok()?))
            })
            .collect();
        out.sort_by_key(|(path, _, used)| (*used, path.clone()));
        out
    }

    fn evict(&mut self, keep: &str) -> std::io::Result<()> {
        let entries = self.entries();
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        let keep = self.path(keep);
        for (path, size, _) in entries {
            if total <= self.max {
                break;
            }
            if path != keep {
                std::fs::remove_file(&path)?;
                total -= size;
            }
        }
        self.total = Some(total);
        Ok(())
    }

    pub(crate) fn status(&self) -> Status {
        let entries = self.entries();
        Status { entries: entries.len(), bytes: entries.iter().map(|(_, size, _)| size).sum() }
    }

    /// Remove every entry and the index; how many entries there were.
    pub(crate) fn clean(&self) -> std::io::Result<usize> {
        let n = self.entries().len();
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(n),
        }
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        // The index only serves `irun explain`: a failure to write it loses nothing else.
        let _ = self.write_index();
    }
}

fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10k"), Ok(10 << 10));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("5X").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn the_least_recently_used_entries_go_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LocalStore::new(dir.path(), 250);
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        for (i, key) in ["a", "b"].iter().enumerate() {
            store.put(key, "t", &[], &[0; 100]).unwrap();
            let file = std::fs::File::options().append(true).open(store.path(key)).unwrap();
            file.set_modified(old + std::time::Duration::from_secs(i as u64)).unwrap();
        }
        // `a` is used: `b` is now the least recently used.
        assert!(store.get("a").is_some());
        store.put("c", "t", &[], &[0; 100]).unwrap();
        assert!(store.get("b").is_none());
        assert!(store.get("a").is_some() && store.get("c").is_some());
        assert_eq!(store.status(), Status { entries: 2, bytes: 200 });
        assert_eq!(store.clean().unwrap(), 2);
        assert_eq!(store.status(), Status { entries: 0, bytes: 0 });
    }

    #[test]
    fn the_index_keeps_each_tasks_last_parts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LocalStore::new(dir.path(), DEFAULT_MAX);
        store.put("k1", "build", &[("env".into(), "1".into())], b"x").unwrap();
        store.put("k2", "build", &[("env".into(), "2".into())], b"x").unwrap();
        assert_eq!(store.index()["build"], [("env".to_string(), "2".to_string())]);
        drop(store);
        let again = LocalStore::new(dir.path(), DEFAULT_MAX);
        assert_eq!(again.index()["build"], [("env".to_string(), "2".to_string())], "written as the store went away");
    }
}
