//! The state file's form: binary, so that a project of 10,000 tasks reads its state in a few milliseconds (its
//! JSON took 20 ms and 5 MB to parse, at every run). A header names the tool and the format; a digest of the rest
//! closes the file, so a file cut short or changed by anything but irun is refused, not misread. `irun state --json`
//! shows what it holds.
//!
//! Layout (integers little-endian; a string is its length as a u32, then its UTF-8 bytes):
//! `irun-state` · format (u32) · number of entries (u32) · entries · xxh3-64 of all before it (u64). An entry:
//! name · flags (u8: 1 last run, 2 duration, 4 record) · last run (u8: 0 ok, 1 failed, 2 unfinished) · duration
//! (u64 ms) · record. A record: ok, unfinished, hashing (u8 each) · recorded_at, checked_at (i64) · command, env,
//! cwd, globs, probe, fingerprint · sources, outputs (a u32 count, then per file: path, size (u64), mtime (i64),
//! inode (u64), ctime (i64), hash) · deps (a u32 count, then per dep: name, stamp). A hash (every one but cwd and
//! the deps' stamps) is a byte, then: 1, its 16 bytes; 0, a string ([`Digest`]'s two forms). Format 3, which wrote
//! every hash as a string, is read too.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Digest, Entries, Entry, FileStamp, FileStamps, LastRun, TaskRecord};

const MAGIC: &[u8] = b"irun-state";
pub(super) const FORMAT: u32 = 4;
/// The format before hashes were written as their bytes: still read.
const FORMAT_TEXT_HASHES: u32 = 3;

pub(super) fn encode(entries: &Entries) -> Vec<u8> {
    encode_as(FORMAT, entries)
}

fn encode_as(format: u32, entries: &Entries) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(64 + entries.len() * 240), format);
    out.0.extend_from_slice(MAGIC);
    out.u32(format);
    let entries: Vec<(&String, &Entry)> = entries.iter().filter(|(_, e)| !e.is_empty()).collect();
    out.u32(entries.len() as u32);
    for (name, entry) in entries {
        let (l, d, r) = (entry.last.as_ref(), entry.duration_ms.as_ref(), entry.record.as_ref());
        out.str(name);
        out.u8(u8::from(l.is_some()) | u8::from(d.is_some()) << 1 | u8::from(r.is_some()) << 2);
        out.u8(match l {
            Some(LastRun::Ok) | None => 0,
            Some(LastRun::Failed) => 1,
            Some(LastRun::Unfinished) => 2,
        });
        out.u64(d.copied().unwrap_or(0));
        if let Some(r) = r {
            out.record(r);
        }
    }
    let digest = xxhash_rust::xxh3::xxh3_64(&out.0);
    out.u64(digest);
    out.0
}

/// Whether `bytes` start as this form does (another irun's format counts: it is refused by [`decode`]).
pub(super) fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The entries `bytes` hold; the error says why they cannot be used (after "is": the caller names the file).
pub(super) fn decode(bytes: &[u8]) -> Result<Entries, String> {
    let unreadable = |why: &str| format!("is unreadable ({why})");
    if !is_binary(bytes) {
        return Err(unreadable("not irun's state"));
    }
    let format = Reader { bytes: &bytes[MAGIC.len()..], format: FORMAT, cwd: Arc::from("") }
        .u32()
        .ok_or_else(|| unreadable("cut short"))?;
    if format != FORMAT && format != FORMAT_TEXT_HASHES {
        return Err(format!("was written by another irun (format {format}), not this one (format {FORMAT})"));
    }
    let body_len =
        bytes.len().checked_sub(8).filter(|&n| n >= MAGIC.len() + 8).ok_or_else(|| unreadable("cut short"))?;
    let (body, digest) = bytes.split_at(body_len);
    if digest != xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() {
        return Err(unreadable("cut short or changed: its digest does not match"));
    }
    let mut r = Reader { bytes: &body[MAGIC.len() + 4..], format, cwd: Arc::from(".") };
    r.entries().ok_or_else(|| unreadable("its entries do not add up"))
}

/// The bytes, and the format they are written in.
struct Writer(Vec<u8>, u32);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn digest(&mut self, d: &Digest) {
        match d {
            _ if self.1 == FORMAT_TEXT_HASHES => d.with_text(|t| self.str(t)),
            Digest::Hex(bytes) => {
                self.u8(1);
                self.0.extend_from_slice(bytes);
            }
            Digest::Text(text) => {
                self.u8(0);
                self.str(text);
            }
        }
    }

    fn record(&mut self, r: &TaskRecord) {
        for v in [r.ok, r.unfinished] {
            self.u8(u8::from(v));
        }
        self.u8(r.hashing);
        self.i64(r.recorded_at);
        self.i64(r.checked_at);
        self.digest(&r.command);
        self.digest(&r.env);
        self.str(&r.cwd);
        for d in [&r.globs, &r.probe, &r.fingerprint] {
            self.digest(d);
        }
        for files in [&r.sources, &r.outputs] {
            self.u32(files.len() as u32);
            for (path, s) in files {
                self.str(path);
                self.u64(s.size);
                self.i64(s.mtime);
                self.u64(s.ino);
                self.i64(s.ctime);
                self.digest(&s.hash);
            }
        }
        self.u32(r.deps.len() as u32);
        for (dep, stamp) in &r.deps {
            self.str(dep);
            self.str(stamp);
        }
    }
}

/// Reads what [`Writer`] wrote; `None` when the bytes end early or a string is not UTF-8.
struct Reader<'a> {
    bytes: &'a [u8],
    format: u32,
    /// The cwd of the record read last: the next with the same shares it.
    cwd: Arc<str>,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }
    fn text(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        let (s, rest) = (self.bytes.get(..n)?, &self.bytes[n..]);
        self.bytes = rest;
        std::str::from_utf8(s).ok()
    }
    fn str(&mut self) -> Option<String> {
        self.text().map(String::from)
    }
    fn digest(&mut self) -> Option<Digest> {
        if self.format == FORMAT_TEXT_HASHES {
            return self.text().map(Digest::parse);
        }
        match self.u8()? {
            1 => self.take::<16>().map(Digest::Hex),
            0 => self.text().map(Digest::parse),
            _ => None,
        }
    }
    /// A count of things each at least `min` bytes long: never more than the bytes left could hold.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n <= self.bytes.len() / min).then_some(n)
    }

    fn entries(&mut self) -> Option<Entries> {
        // Gathered, then built whole: the file lists tasks by name, and a map built from sorted entries compares
        // no keys and fills its nodes (inserted one by one, each would search the map and leave half of each node
        // empty). A damaged file's unsorted or doubled names still give the map one would insert (the last wins).
        let n = self.count(14)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?;
            let (flags, run, duration) = (self.u8()?, self.u8()?, self.u64()?);
            let last = match flags & 1 {
                0 => None,
                _ => Some([LastRun::Ok, LastRun::Failed, LastRun::Unfinished].get(usize::from(run)).copied()?),
            };
            let duration_ms = (flags & 2 != 0).then_some(duration);
            let record = match flags & 4 {
                0 => None,
                _ => Some(Box::new(self.record()?)),
            };
            let entry = Entry { last, duration_ms, record };
            if !entry.is_empty() {
                entries.push((name, entry));
            }
        }
        self.bytes.is_empty().then(|| entries.into_iter().collect())
    }

    fn record(&mut self) -> Option<TaskRecord> {
        let (ok, unfinished, hashing) = (self.u8()? != 0, self.u8()? != 0, self.u8()?);
        let (recorded_at, checked_at) = (self.i64()?, self.i64()?);
        let (command, env, cwd) = (self.digest()?, self.digest()?, self.text()?);
        if *self.cwd != *cwd {
            self.cwd = Arc::from(cwd);
        }
        let cwd = self.cwd.clone();
        let (globs, probe, fingerprint) = (self.digest()?, self.digest()?, self.digest()?);
        let mut files = [FileStamps::default(), FileStamps::default()];
        for stamps in &mut files {
            let mut list = Vec::new();
            for _ in 0..self.count(40)? {
                let path = self.str()?;
                let (size, mtime, ino, ctime) = (self.u64()?, self.i64()?, self.u64()?, self.i64()?);
                list.push((path, FileStamp { size, mtime, ino, ctime, hash: self.digest()? }));
            }
            *stamps = list.into_iter().collect();
        }
        let mut deps = BTreeMap::new();
        for _ in 0..self.count(8)? {
            deps.insert(self.str()?, self.str()?);
        }
        let [sources, outputs] = files;
        Some(TaskRecord {
            ok,
            unfinished,
            recorded_at,
            checked_at,
            command,
            env,
            cwd,
            globs,
            probe,
            sources,
            outputs,
            deps,
            hashing,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entries {
        let mut maps = Entries::default();
        let stamp = FileStamp { size: 3, mtime: -5, ino: 7, ctime: 6, hash: "ff".into() };
        let record = TaskRecord {
            ok: true,
            checked_at: 9,
            command: "c".into(),
            sources: [("a b/ü.txt".to_string(), stamp.clone()), ("z".into(), stamp)].into_iter().collect(),
            deps: [("dep".to_string(), "42".to_string())].into_iter().collect(),
            fingerprint: "fp".into(),
            ..Default::default()
        };
        let entry = |last, duration_ms, record| Entry { last, duration_ms, record };
        maps.insert("build".into(), entry(Some(LastRun::Unfinished), None, Some(Box::new(record))));
        maps.insert("lint".into(), entry(Some(LastRun::Failed), None, None));
        maps.insert("serve".into(), entry(None, Some(1234), None));
        maps
    }

    #[test]
    fn what_is_written_is_read_back_the_same() {
        let maps = sample();
        let bytes = encode(&maps);
        assert!(is_binary(&bytes));
        assert_eq!(decode(&bytes).unwrap(), maps);
    }

    #[test]
    fn a_file_of_the_format_that_wrote_hashes_as_text_is_read_the_same() {
        let mut maps = sample();
        let hash = Digest::of(xxhash_rust::xxh3::xxh3_128(b"x"));
        maps.get_mut("build").unwrap().record.as_mut().unwrap().env = hash.clone();
        let old = encode_as(FORMAT_TEXT_HASHES, &maps);
        let hex = hash.to_string();
        assert!(memchr::memmem::find(&old, hex.as_bytes()).is_some(), "format 3 wrote the hex text");
        assert_eq!(decode(&old).unwrap(), maps);
        let new = encode(&maps);
        assert!(memchr::memmem::find(&new, hex.as_bytes()).is_none() && new.len() < old.len(), "now: its bytes");
    }

    #[test]
    fn records_read_with_the_same_cwd_share_it() {
        let record = |cwd: &str| Entry {
            record: Some(Box::new(TaskRecord { cwd: cwd.into(), ..Default::default() })),
            ..Default::default()
        };
        let entries: Entries =
            [("a", "."), ("b", "."), ("c", "web")].into_iter().map(|(n, cwd)| (n.to_string(), record(cwd))).collect();
        let read = decode(&encode(&entries)).unwrap();
        let cwd = |n: &str| read[n].record.as_ref().unwrap().cwd.clone();
        assert!(Arc::ptr_eq(&cwd("a"), &cwd("b")) && &*cwd("c") == "web");
        assert_eq!(read, entries);
    }

    #[test]
    fn a_file_cut_short_or_changed_anywhere_is_refused() {
        let maps = sample();
        let bytes = encode(&maps);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut to {n} bytes");
            let mut changed = bytes.clone();
            changed[n] ^= 0x20;
            assert!(decode(&changed).is_err(), "byte {n} changed");
        }
    }

    #[test]
    fn another_format_is_named_in_the_refusal() {
        let maps = sample();
        let mut bytes = encode(&maps);
        bytes[MAGIC.len()] = 9;
        let why = decode(&bytes).unwrap_err();
        assert!(why.contains("format 9") && why.contains(&format!("format {FORMAT}")), "{why}");
    }
}
