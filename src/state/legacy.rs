//! The TOML state of irun's first format, read once and converted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Digest, Entries, FileStamps, HASHING_LEGACY, LastRun, TaskRecord};

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
    sources: FileStamps,
    #[serde(default)]
    outputs: FileStamps,
    #[serde(default)]
    deps: BTreeMap<String, i64>,
}

/// `Ok(None)`: there is no such file.
pub(super) fn read(path: &Path) -> Result<Option<Entries>, String> {
    let Some((bytes, _)) = super::read_regular(path)? else { return Ok(None) };
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
    let mut entries = Entries::new();
    for (name, last) in file.last {
        entries.entry(name).or_default().last = Some(last);
    }
    for (name, ms) in file.durations {
        entries.entry(name).or_default().duration_ms = Some(ms);
    }
    for (name, r) in file.tasks {
        {
            let record = TaskRecord {
                ok: r.ok,
                unfinished: r.unfinished,
                recorded_at: r.recorded_at,
                checked_at: 0,
                command: r.command.into(),
                env: r.env.into(),
                cwd: r.cwd.into(),
                globs: r.globs.into(),
                probe: Digest::default(),
                sources: r.sources,
                outputs: r.outputs,
                deps: r.deps.into_iter().map(|(d, at)| (d, at.to_string())).collect(),
                hashing: HASHING_LEGACY,
                fingerprint: Digest::default(),
            };
            entries.entry(name).or_default().record = Some(Box::new(record));
        }
    }
    Ok(Some(entries))
}
