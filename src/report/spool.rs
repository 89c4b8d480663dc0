//! Output kept to be written later (grouped output: a task's block when it ends, failed blocks at the end of the
//! run): the first few MiB in memory, the rest in a temporary file, so memory stays bounded whatever a task prints.
//!
//! The file is unnamed (`O_TMPFILE` in `$TMPDIR`, or a name removed as soon as it is made): it never appears in a
//! folder, and the system frees it when irun's descriptor closes, however irun ends, even when it is killed. It is
//! close-on-exec, so no task inherits it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

/// Bytes of a spool kept in memory; the rest goes to its file.
const MEMORY: usize = 4 << 20;

/// Bytes gathered before one write to the file, and read back at a time.
const CHUNK: usize = 256 << 10;

#[derive(Default)]
pub(crate) struct Spool {
    /// The first bytes, up to [`MEMORY`].
    memory: Vec<u8>,
    /// The bytes after them, once there are more.
    file: Option<File>,
    /// How many bytes the file holds (those of writes that succeeded whole).
    in_file: u64,
    /// Bytes after the file's: gathered for the next write to it (or all of them if the file failed).
    after: Vec<u8>,
    /// Creating or writing the file failed: the rest stays in memory.
    failed: bool,
    len: u64,
    newlines: u64,
}

/// A spool file that could not be made or written: what went wrong, said once (the output stays in memory).
#[derive(Debug)]
pub(crate) struct SpillFailed(pub(crate) std::io::Error);

impl Spool {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many newlines it holds.
    pub(crate) fn newlines(&self) -> u64 {
        self.newlines
    }

    /// Whether part of it is in a file.
    #[cfg(test)]
    pub(crate) fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Add bytes at the end. An error means the spool file could not be made or written; nothing is lost (the bytes
    /// stay in memory), and later pushes do not try again.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), SpillFailed> {
        self.len += bytes.len() as u64;
        self.newlines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        let room = MEMORY.saturating_sub(self.memory.len());
        if self.file.is_none() && self.after.is_empty() && bytes.len() <= room {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        let (first, rest) = bytes.split_at(room.min(bytes.len()));
        if self.file.is_none() && self.after.is_empty() {
            self.memory.extend_from_slice(first);
        } else {
            self.after.extend_from_slice(first);
        }
        self.after.extend_from_slice(rest);
        if self.after.len() >= CHUNK && !self.failed { self.spill() } else { Ok(()) }
    }

    /// Write what was gathered to the file (made now if need be).
    fn spill(&mut self) -> Result<(), SpillFailed> {
        let written = match &mut self.file {
            Some(file) => file.write_all(&self.after),
            None => tempfile::tempfile().and_then(|mut file| {
                file.write_all(&self.after)?;
                self.file = Some(file);
                Ok(())
            }),
        };
        match written {
            Ok(()) => {
                self.in_file += self.after.len() as u64;
                self.after.clear();
                Ok(())
            }
            Err(e) => {
                // A failed write may have written part of the bytes: the file is read back only up to what was
                // written whole, and the bytes stay here.
                self.failed = true;
                Err(SpillFailed(e))
            }
        }
    }

    /// Add another spool's bytes at the end, a chunk at a time. A spool that could not be read back whole is an
    /// error; what could be read is added.
    pub(crate) fn append(&mut self, other: Spool) -> Result<(), SpillFailed> {
        let mut spilled = Ok(());
        let read = other.drain(|chunk| {
            if let Err(e) = self.push(chunk) {
                spilled = Err(e);
            }
        });
        read.map_err(SpillFailed).and(spilled)
    }

    /// Hand every byte, in order and a chunk at a time, to `write`; the spool (and its file) goes. A file that
    /// cannot be read back is an error once the bytes read from it have been handed over.
    pub(crate) fn drain(self, mut write: impl FnMut(&[u8])) -> std::io::Result<()> {
        let Spool { memory, file, in_file, after, .. } = self;
        if !memory.is_empty() {
            write(&memory);
        }
        drop(memory);
        let mut result = Ok(());
        if let Some(mut file) = file {
            result = file.seek(SeekFrom::Start(0)).map(|_| ());
            let mut file = file.take(in_file);
            let mut buf = vec![0; CHUNK];
            while result.is_ok() {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => write(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => result = Err(e),
                }
            }
        }
        if !after.is_empty() {
            write(&after);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that say where they are: any loss, repeat or reordering shows.
    fn numbered(from: usize, to: usize) -> Vec<u8> {
        (from..to).flat_map(|i| format!("{i}\n").into_bytes()).collect()
    }

    fn fill(spool: &mut Spool, bytes: &[u8]) {
        // Pieces of varied sizes, as output events come.
        let mut rest = bytes;
        let mut size = 1;
        while !rest.is_empty() {
            let (piece, after) = rest.split_at(size.min(rest.len()));
            spool.push(piece).unwrap();
            rest = after;
            size = size * 7 % 100_003 + 1;
        }
    }

    fn drained(spool: Spool) -> Vec<u8> {
        let mut out = Vec::new();
        spool.drain(|chunk| out.extend_from_slice(chunk)).unwrap();
        out
    }

    #[test]
    fn past_its_memory_a_spool_spills_to_a_file_and_gives_every_byte_back_in_order() {
        let small = numbered(0, 1000);
        let mut spool = Spool::default();
        fill(&mut spool, &small);
        assert!(!spool.spilled(), "a little output stays in memory");
        assert_eq!(drained(spool), small);

        let big = numbered(0, 2_000_000);
        assert!(big.len() > 3 * MEMORY);
        let mut spool = Spool::default();
        fill(&mut spool, &big);
        assert!(spool.spilled());
        assert_eq!(spool.memory.len(), MEMORY, "memory holds the first bytes, no more");
        assert!(spool.after.len() < CHUNK, "the rest is in the file but for a chunk");
        assert_eq!(spool.newlines(), 2_000_000);
        assert_eq!(drained(spool), big);
    }

    #[test]
    fn a_spool_appended_to_another_keeps_both_in_order() {
        let (first, second) = (numbered(0, 10), numbered(10, 1_500_000));
        let mut spool = Spool::default();
        fill(&mut spool, &first);
        let mut other = Spool::default();
        fill(&mut other, &second);
        assert!(other.spilled());
        spool.append(other).unwrap();
        spool.push(b"end\n").unwrap();
        assert!(spool.memory.len() <= MEMORY);
        assert_eq!(drained(spool), [first, second, b"end\n".to_vec()].concat());
    }
}
