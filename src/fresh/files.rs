//! Which files globs match, and what they hold: a file is read only when its stat data does not vouch for the
//! content its stamp recorded ([`stamp`] states the rule).

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use super::Checker;
use crate::config::{Globs, parse_glob};
use crate::outcome::FileChange;
use crate::state::Digest;
use crate::state::{FileStamp, FileStamps};

/// Files that globs match, each with its metadata where finding it gave it, and the plain paths among the globs
/// that name nothing.
pub(super) struct Found {
    /// Sorted by path, each once.
    pub(super) files: Vec<(String, Option<Stat>)>,
    pub(super) missing: Vec<String>,
}

/// What files held, and whether any had to be read to know (its stamp did not vouch for it).
pub(super) struct Stamps {
    pub(super) files: FileStamps,
    pub(super) read: bool,
}

impl Checker {
    /// Files (relative paths) matched by `globs`. For sources, folders ignored by the project (.gitignore, .git,
    /// .venv, …) are not descended into unless a glob points into them. Links to folders are followed, each folder
    /// once (a link loop ends), and their files named by the path through the link.
    /// A `!` pattern takes out what the patterns before it matched.
    pub(crate) fn files(&self, globs: &[String], skip_ignored: bool) -> BTreeSet<String> {
        self.found(globs, skip_ignored).files.into_iter().map(|(path, _)| path).collect()
    }

    /// [`Checker::files`], each with its metadata where looking for it gave it (a plain path: one `stat` serves
    /// to find it and to stamp it), and the plain paths among `globs` that name nothing.
    pub(super) fn found(&self, globs: &[String], skip_ignored: bool) -> Found {
        self.found_with(globs, skip_ignored, None)
    }

    /// [`Checker::found`], with `ahead`: what stat said of each of `globs` (all plain paths), looked at ahead (see
    /// [`super::ahead`]).
    pub(super) fn found_with(&self, globs: &[String], skip_ignored: bool, ahead: Option<&[Option<Stat>]>) -> Found {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for (k, g) in globs.iter().enumerate() {
            if let (true, excluded) = parse_glob(g) {
                let excluded = Globs::new(&[excluded.to_string()]);
                out.retain(|(f, _)| !excluded.is_match(f));
                continue;
            }
            let pattern = g.trim_start_matches("./").trim_end_matches('/');
            let anywhere = pattern.starts_with("**");
            let literal: PathBuf = Path::new(pattern)
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[', '{']))
                .collect();
            let start = self.root.join(&literal);
            if literal.as_os_str() == pattern {
                let stat = match ahead {
                    Some(stats) => stats.get(k).copied().flatten(),
                    None => self.stat(pattern),
                };
                match stat {
                    Some(stat) if stat.kind == Kind::File => {
                        out.push((pattern.to_string(), Some(stat)));
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        missing.push(g.clone());
                        continue;
                    }
                }
            }
            let matcher = if literal.as_os_str() == pattern {
                Globs::new(&[format!("{pattern}/**")])
            } else {
                Globs::new(&[pattern.to_string()])
            };
            let mut visited: HashSet<(u64, u64)> = HashSet::new();
            let mut stack = vec![start.clone()];
            while let Some(dir) = stack.pop() {
                // The real folder, once: a link back up (or two links to one folder) is not walked again, nor a
                // link to the project itself or a folder above it (that would take in the whole project and more).
                let Ok(meta) = std::fs::metadata(&dir) else { continue };
                let id = (meta.dev(), meta.ino());
                if (dir != start && self.above.contains(&id)) || !visited.insert(id) {
                    continue;
                }
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for e in entries.flatten() {
                    let path = e.path();
                    let Ok(rel) = path.strip_prefix(&self.root) else { continue };
                    let Ok(kind) = e.file_type() else { continue };
                    let is_dir = kind.is_dir() || (kind.is_symlink() && path.is_dir());
                    if is_dir {
                        // Never into version control or irun's own state; into ignored folders (.venv, target,
                        // .gitignore'd ones) only when the glob names them, not when it matches `**` anywhere.
                        let special = rel.file_name().is_some_and(|n| n == ".git" || n == crate::state::DIR);
                        if !(special || (skip_ignored && anywhere && self.filter.ignored(rel, true))) {
                            stack.push(path);
                        }
                    } else if matcher.is_match(rel) {
                        out.push((rel.to_string_lossy().into_owned(), None));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        Found { files: out, missing }
    }

    /// What stat says of the file at `rel` (links followed), if there is one: relative to the project's folder,
    /// opened once (a path walk of two components for `src/a.txt`, not of every folder above the project).
    pub(super) fn stat(&self, rel: &str) -> Option<Stat> {
        match &self.root_fd {
            Some(fd) => Stat::at(fd, rel),
            None => std::fs::metadata(self.root.join(rel)).ok().map(|m| Stat::of_metadata(&m)),
        }
    }

    /// The stamps of `found`'s files, taking those of `previous` (last checked at `checked_at`) where they vouch
    /// for a file.
    pub(super) fn stamps(&self, found: Found, previous: &FileStamps, checked_at: i64) -> Stamps {
        let mut read = false;
        let files = found
            .files
            .into_iter()
            .filter_map(|(rel, stat)| {
                let stat = stat.or_else(|| self.stat(&rel))?;
                let (stamp, was_read) = stamp(&|| self.root.join(&rel), Some(stat), previous.get(&rel), checked_at)?;
                read |= was_read;
                Some((rel, stamp))
            })
            .collect();
        Stamps { files, read }
    }
}

/// The first difference between two sets of file stamps.
pub(super) fn compare(before: &FileStamps, after: &FileStamps) -> Option<FileChange> {
    for (path, stamp) in before {
        match after.get(path) {
            None => return Some(FileChange::Removed(path.clone())),
            Some(now) if now.hash != stamp.hash || now.size != stamp.size => {
                return Some(FileChange::Changed(path.clone()));
            }
            Some(_) => {}
        }
    }
    after.keys().find(|p| !before.contains_key(p)).map(|p| FileChange::Added(p.clone()))
}

/// How close to the moment a record's files were checked a file's ctime may be for its stamp not to vouch for it:
/// the coarsest timestamp granularity of the filesystems irun meets (a second: ext3, HFS+; FAT's two seconds apply
/// to mtime only, it keeps no ctime).
pub(super) const RACY_NS: i64 = 1_000_000_000;

/// What stat says of a file, as its stamp records it (times in nanoseconds since the epoch).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stat {
    size: u64,
    mtime: i64,
    ino: u64,
    ctime: i64,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Folder,
    /// A named pipe, a device, a socket.
    Other,
}

fn ns(seconds: i64, nanoseconds: i64) -> i64 {
    seconds.saturating_mul(1_000_000_000).saturating_add(nanoseconds)
}

impl Stat {
    /// What stat says of `rel` in the folder `dir` is (links followed).
    pub(super) fn at(dir: &std::os::fd::OwnedFd, rel: &str) -> Option<Stat> {
        nix::sys::stat::fstatat(dir, rel, nix::fcntl::AtFlags::empty()).ok().map(|s| Stat::of(&s))
    }

    fn of(s: &nix::sys::stat::FileStat) -> Stat {
        let kind = match s.st_mode & nix::libc::S_IFMT {
            nix::libc::S_IFREG => Kind::File,
            nix::libc::S_IFDIR => Kind::Folder,
            _ => Kind::Other,
        };
        Stat {
            size: s.st_size as u64,
            mtime: ns(s.st_mtime, s.st_mtime_nsec),
            ino: s.st_ino,
            ctime: ns(s.st_ctime, s.st_ctime_nsec),
            kind,
        }
    }

    pub(super) fn of_metadata(m: &std::fs::Metadata) -> Stat {
        let kind = match m.file_type() {
            t if t.is_file() => Kind::File,
            t if t.is_dir() => Kind::Folder,
            _ => Kind::Other,
        };
        Stat {
            size: m.len(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ino: m.ino(),
            ctime: ns(m.ctime(), m.ctime_nsec()),
            kind,
        }
    }
}

/// The stamp of the file at `path` (`stat`: what stat says of it, if already asked), and whether it was read.
///
/// The rule for when a file is not read: the stamp `previous` took vouches for the file's content when its size,
/// mtime, inode and ctime are still the ones it recorded, and that ctime is more than [`RACY_NS`] before
/// `checked_at`, the moment the record's files were last read or found unchanged. Every write, rename over the
/// file or `touch` sets the ctime (which no program can set back) to the clock's time, so a change after that
/// moment leaves another ctime, even within the same second and size, with the mtime set back; a file replaced
/// by another has another inode. A file changed too close to a check is read again until it is not. Anything
/// else is read and hashed.
pub(super) fn stamp(
    path: &dyn Fn() -> PathBuf,
    stat: Option<Stat>,
    previous: Option<&FileStamp>,
    checked_at: i64,
) -> Option<(FileStamp, bool)> {
    let stat = match stat {
        Some(stat) => stat,
        None => Stat::of_metadata(&std::fs::metadata(path()).ok()?),
    };
    if stat.kind != Kind::File {
        // A FIFO or device would block or never end: its presence counts, not its content.
        let stamp = FileStamp { size: 0, mtime: 0, ino: 0, ctime: 0, hash: "not a regular file".into() };
        return Some((stamp, false));
    }
    let Stat { size, mtime, ino, ctime, .. } = stat;
    if let Some(p) = previous {
        let same = p.size == size && p.mtime == mtime && p.ino == ino && p.ctime == ctime;
        if same && ino != 0 && ctime < checked_at.saturating_sub(RACY_NS) {
            return Some((p.clone(), false));
        }
    }
    let mut hasher = Xxh3::new();
    let mut file = std::fs::File::open(path()).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some((FileStamp { size, mtime, ino, ctime, hash: Digest::of(hasher.digest128()) }, true))
}
