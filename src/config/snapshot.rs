//! A loaded Irun.toml kept in `.irun/config.bin`, so that loading an unchanged one reads it back instead of parsing
//! and checking it again (10,000 tasks: parsing alone takes ~25 ms and ~45 MB at its peak, reading back a few ms).
//!
//! It is used only while everything it was made from still holds: the same irun (its version and its very
//! executable), the same Irun.toml in the same place (its bytes, by hash), the same values of the variables of irun's
//! environment that `${NAME}` looked up (or the same absence), and the optional dotenv files it found missing still
//! missing. A file that cannot be read, is cut short or fails any of these checks is passed over: Irun.toml is parsed
//! as if there were none, and the file replaced. It is written only into an `.irun/` that exists (by a run before),
//! atomically, and never for an Irun.toml that took a value from irun's environment or read a dotenv file: such
//! values, secrets often, stay off the disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Config;
use super::codec::{self, Reader, Stored, Writer};
use super::env::Shell;
use super::validate::Files;
use crate::diagnostic::Source;

#[cfg(test)]
mod tests;

/// irun's folder in the project (the one its state is kept in).
const DIR: &str = ".irun";
const FILE: &str = "config.bin";
/// How the file starts: what it is, and the version of its layout.
const MAGIC: &[u8] = b"irun: Irun.toml as loaded, v1\n";

/// What a stored configuration was made from: all of it must still hold for it to be used.
#[derive(Debug, PartialEq)]
struct Made {
    /// irun's version and its executable (see [`irun`]): another build may read the same file differently.
    irun: String,
    /// Irun.toml's path and a hash of its bytes.
    path: PathBuf,
    text: u128,
    /// The variables of irun's environment that `${NAME}` looked up, with their values (`None`: not set).
    env: Vec<(String, Option<String>)>,
    /// The optional dotenv files that did not exist.
    missing: Vec<PathBuf>,
}

impl Stored for Made {
    fn put(&self, w: &mut Writer) {
        let Made { irun, path, text, env, missing } = self;
        irun.put(w);
        path.put(w);
        text.put(w);
        env.put(w);
        missing.put(w);
    }

    fn load(r: &mut Reader) -> Option<Self> {
        let (irun, path, text) = (String::load(r)?, PathBuf::load(r)?, u128::load(r)?);
        Some(Made { irun, path, text, env: Vec::load(r)?, missing: Vec::load(r)? })
    }
}

/// The configuration kept for Irun.toml's `source` at `root`, if everything it was made from still holds.
pub(super) fn read(source: &Source, root: &Path, shell: &Shell) -> Option<Config> {
    let bytes = read_regular(&root.join(DIR).join(FILE))?;
    let mut r = Reader::new(bytes.strip_prefix(MAGIC)?, root);
    let (made, body_hash) = (Made::load(&mut r)?, u128::load(&mut r)?);
    let now = (irun()?, &source.path, u128::from_le_bytes(source.digest));
    if (made.irun, &made.path, made.text) != now || !shell.gives(&made.env) || !made.missing.iter().all(|p| missing(p))
    {
        return None;
    }
    let body = r.rest();
    if hash(body) != body_hash {
        return None;
    }
    codec::decode(&mut Reader::new(body, root), source.without_text())
}

/// Keep `config`, loaded with what `shell` was asked and the dotenv `files` looked for, for the next load. Nothing
/// is said when it cannot be: it only saves time.
pub(super) fn write(config: &Config, shell: &Shell, files: &Files) {
    let dir = config.root.join(DIR);
    if !dir.is_dir() {
        return;
    }
    let path = dir.join(FILE);
    let Some(irun) = irun().filter(|_| config.secrets.is_empty() && !files.read) else {
        // One made before would not match again: gone with it.
        let _ = std::fs::remove_file(&path);
        return;
    };
    let made = Made {
        irun,
        path: config.source.path.clone(),
        text: u128::from_le_bytes(config.source.digest),
        env: shell.asked(),
        missing: files.missing.clone(),
    };
    let mut body = Writer::new(&config.root);
    codec::encode(config, &mut body);
    let mut w = Writer::new(&config.root);
    w.out.extend_from_slice(MAGIC);
    made.put(&mut w);
    hash(&body.out).put(&mut w);
    w.out.extend_from_slice(&body.out);
    let _ = write_atomic(&dir, &path, &w.out);
}

/// This irun: its version and its executable as it is on disk (path, size, modification and change times, device
/// and inode), so that a rebuilt or replaced irun never reads what another one stored. `None` when it cannot say.
fn irun() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::env::current_exe().ok()?;
    let m = std::fs::metadata(&exe).ok()?;
    let (version, len, dev, ino) = (env!("CARGO_PKG_VERSION"), m.len(), m.dev(), m.ino());
    let times = format!("{}.{} {}.{}", m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
    Some(format!("{version} {} {len} {times} {dev}:{ino}", exe.display()))
}

fn hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// Whether `path` does not exist, as reading a dotenv file finds it.
fn missing(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// The most of a stored configuration irun reads: far more than any Irun.toml makes, far less than fills memory.
const MAX_BYTES: u64 = 256 << 20;

/// The content of the regular file at `path`. Anything else there (a named pipe, a link to /dev/zero, a folder) is
/// passed over without reading from it, and so is a file over [`MAX_BYTES`]: it is opened without blocking (a pipe
/// with no writer would wait forever) and checked once open.
fn read_regular(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags.bits()).open(path).ok()?;
    let meta = file.metadata().ok().filter(|m| m.is_file() && m.len() <= MAX_BYTES)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// How the temporary files that become [`FILE`] are named.
const TEMPORARY: &str = ".config.bin-";

/// `bytes` as the file at `path`, whole or not at all (another irun may be reading it). Temporary files an irun
/// killed while writing left behind go first (one another irun is writing now goes too: that irun then keeps
/// nothing, which only costs it time).
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_name().as_encoded_bytes().starts_with(TEMPORARY.as_bytes()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let mut tmp = tempfile::Builder::new().prefix(TEMPORARY).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
