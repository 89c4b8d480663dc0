//! Reading a task's output: split into lines (bytes kept as they are), sent as events, and checked against a
//! service's `ready.log` pattern. The pipe is drained continuously, so a chatty task never blocks on a full pipe.
//! Reading ends when the pipe closes, or once the task's processes are all gone ([`Pumps::finish`]): what a
//! process that left the task still holds open does not keep the task running.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::sys;
use crate::events::{EventSender, Stream, TaskName};

/// A longer line is passed on in pieces of this size, so one endless line cannot exhaust memory.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Signals a `log` readiness probe when a line matches.
#[derive(Clone)]
pub(crate) struct LogMatch {
    pub(crate) pattern: Arc<regex::Regex>,
    pub(crate) matched: Arc<watch::Sender<bool>>,
}

/// At most this many reads (of up to 64 KiB) by [`Reader::drain_now`] before a pipe is left to a pump.
const DRAIN_NOW_READS: usize = 16;

/// Read buffers no reader is using: a short task costs no allocation (or zeroing) of one.
#[derive(Default)]
pub(crate) struct Buffers(Mutex<Vec<Box<[u8]>>>);

/// A read buffer, back to its pool when dropped.
struct Buffer<'a> {
    pool: &'a Buffers,
    buffer: Option<Box<[u8]>>,
}

impl Buffers {
    fn take(&self) -> Buffer<'_> {
        let pooled = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Buffer { pool: self, buffer: Some(pooled.unwrap_or_else(|| vec![0; MAX_LINE].into_boxed_slice())) }
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool.0.lock().unwrap_or_else(|e| e.into_inner()).push(b);
        }
    }
}

/// One output stream of a task and where its lines go.
pub(crate) struct Reader {
    pub(crate) fd: OwnedFd,
    pub(crate) task: TaskName,
    pub(crate) stream: Stream,
    pub(crate) events: EventSender,
    pub(crate) log: Option<LogMatch>,
    pub(crate) lines: Lines,
    pub(crate) buffers: Arc<Buffers>,
}

impl Reader {
    /// Make the pipe non-blocking, as [`pump`] and [`Reader::drain_now`] need. Pipes are created blocking: a task that
    /// ends quickly and wrote nothing never needs this (see [`ended`]).
    fn set_nonblocking(&self) {
        sys::set_nonblocking(self.fd.as_fd());
    }

    /// Read what the pipe holds now, without waiting: done at end-of-file, or the reader back if the pipe is still
    /// open for writing (a process that outlived its task holds it) and must be [`pump`]ed.
    async fn drain_now(mut self) -> Option<Reader> {
        self.set_nonblocking();
        let buffers = self.buffers.clone();
        let mut buffer = buffers.take();
        let buf = buffer.buffer.as_deref_mut().expect("taken buffers hold one");
        let mut pieces = Vec::new();
        // A pipe that keeps refilling (a process that outlived its task writes on) is left to a pump, whose wait is
        // bounded: after this many reads.
        for _ in 0..DRAIN_NOW_READS {
            match sys::read(self.fd.as_fd(), buf) {
                Ok(0) => return self.finish().await,
                Ok(n) => {
                    self.lines.feed(&buf[..n], &mut pieces);
                    for piece in pieces.drain(..) {
                        emit(piece, &self.task, self.stream, &self.events, self.log.as_ref()).await;
                    }
                }
                Err(e) => match e.kind() {
                    std::io::ErrorKind::Interrupted => {}
                    std::io::ErrorKind::WouldBlock => return Some(self),
                    _ => return self.finish().await,
                },
            }
        }
        Some(self)
    }

    /// End of the stream: a last line without a newline goes out.
    async fn finish(self) -> Option<Reader> {
        let Reader { task, stream, events, log, lines, .. } = self;
        let mut pieces = Vec::new();
        lines.finish(&mut pieces);
        for piece in pieces {
            emit(piece, &task, stream, &events, log.as_ref()).await;
        }
        None
    }
}

/// The task's process has ended: read what its pipes hold. One `poll` tells, for all of them at once, which are at
/// end-of-file with nothing to read (the common case: nothing more to do); the others are read now, and those still
/// held open by a process that outlived the task are returned, to be [`pump`]ed.
pub(crate) async fn ended(readers: Vec<Reader>) -> Vec<Reader> {
    let finished = sys::hung_up(&readers.iter().map(|r| r.fd.as_fd()).collect::<Vec<_>>());
    let mut open = Vec::new();
    for (reader, finished) in readers.into_iter().zip(finished) {
        if finished {
            reader.finish().await;
        } else if let Some(still_open) = reader.drain_now().await {
            open.push(still_open);
        }
    }
    open
}

/// The readers of one task's pipes, each running on its own until its pipe closes or the task is over.
pub(crate) struct Pumps {
    running: Vec<JoinHandle<()>>,
    /// Set once no process of the task is left.
    gone: watch::Sender<bool>,
}

impl Default for Pumps {
    fn default() -> Pumps {
        Pumps { running: Vec::new(), gone: watch::Sender::new(false) }
    }
}

impl Pumps {
    /// Pass the reader's lines on as they come.
    pub(crate) fn start(&mut self, reader: Reader) {
        self.running.push(tokio::spawn(pump(reader, self.gone.subscribe())));
    }

    /// The task's processes are all gone (or given up on): every pipe is read to its end, or, if something still
    /// holds it open (a process that left the task), as far as it holds now. Returns once every line is passed on.
    pub(crate) async fn finish(self) {
        self.gone.send_replace(true);
        for reader in self.running {
            let _ = reader.await;
        }
    }
}

/// Drain the reader's pipe (its non-blocking reading end) until end-of-file, sending its lines as events; once
/// `gone` is set, only what the pipe holds then.
async fn pump(reader: Reader, mut gone: watch::Receiver<bool>) {
    reader.set_nonblocking();
    let Reader { fd, task, stream, events, log, mut lines, buffers } = reader;
    // The descriptor is a pipe's reading end, made non-blocking just above.
    let Ok(rx) = pipe::Receiver::from_owned_fd_unchecked(fd) else { return };
    let mut buffer = buffers.take();
    let buf = buffer.buffer.as_deref_mut().expect("taken buffers hold one");
    let mut pieces = Vec::new();
    // After the task is gone, a pipe that keeps refilling is read at most this many more times.
    let mut last_reads: Option<usize> = None;
    loop {
        if last_reads.is_none() {
            // Registering reports the pipe's state at once: no read is tried before there is something to read.
            tokio::select! {
                readable = rx.readable() => if readable.is_err() { break },
                _ = gone.wait_for(|gone| *gone) => last_reads = Some(DRAIN_NOW_READS),
            }
        }
        if let Some(left) = last_reads.as_mut() {
            if *left == 0 {
                break;
            }
            *left -= 1;
        }
        // Once the task is gone, the pipe is read as it is: the reactor may not have seen it readable yet.
        let read = if last_reads.is_some() { sys::read(rx.as_fd(), buf) } else { rx.try_read(buf) };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Nothing there: wait for more, unless the task is over.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && last_reads.is_none() => continue,
            Err(_) => break,
        };
        lines.feed(&buf[..n], &mut pieces);
        for piece in pieces.drain(..) {
            emit(piece, &task, stream, &events, log.as_ref()).await;
        }
    }
    lines.finish(&mut pieces);
    for piece in pieces {
        emit(piece, &task, stream, &events, log.as_ref()).await;
    }
}

/// Splits a byte stream into events: every complete line of a read goes out as one event (a chatty task costs one
/// event per read, not one per line); a line longer than [`MAX_LINE`] goes out in pieces of that size.
#[derive(Default)]
pub(crate) struct Lines {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The last piece was cut at MAX_LINE: a newline right after it ends that line, not a new empty one.
    just_cut: bool,
}

impl Lines {
    /// Take the bytes of one read (at most [`MAX_LINE`]); what is complete is added to `out`.
    pub(crate) fn feed(&mut self, mut data: &[u8], out: &mut Vec<Vec<u8>>) {
        while !data.is_empty() {
            if std::mem::take(&mut self.just_cut) && data[0] == b'\n' {
                data = &data[1..];
                continue;
            }
            let (chunk, consumed) = if self.partial.is_empty() {
                match data.iter().rposition(|&b| b == b'\n') {
                    Some(last) => (Some(data[..last].to_vec()), last + 1),
                    None => {
                        self.partial.extend_from_slice(data);
                        (None, data.len())
                    }
                }
            } else {
                // Finish the pending line first (it may be long, so it goes on its own).
                match data.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.partial.extend_from_slice(&data[..end]);
                        (Some(std::mem::take(&mut self.partial)), end + 1)
                    }
                    None => {
                        self.partial.extend_from_slice(data);
                        (None, data.len())
                    }
                }
            };
            data = &data[consumed..];
            if let Some(text) = chunk {
                split_long(text, out);
            }
            if self.partial.len() >= MAX_LINE {
                // A line with no end in sight is passed on in pieces, so one endless line cannot exhaust memory.
                let rest = self.partial.split_off(MAX_LINE);
                let piece = std::mem::replace(&mut self.partial, rest);
                self.just_cut = self.partial.is_empty();
                out.push(piece);
            }
        }
    }

    /// The stream ended: a last line without a newline.
    pub(crate) fn finish(self, out: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() {
            split_long(self.partial, out);
        }
    }
}

/// A single line longer than `MAX_LINE` becomes several pieces; text with several lines is left whole (each of its
/// lines is shorter than the read buffer).
fn split_long(text: Vec<u8>, out: &mut Vec<Vec<u8>>) {
    if text.len() <= MAX_LINE || text.contains(&b'\n') {
        out.push(text);
    } else {
        out.extend(text.chunks(MAX_LINE).map(<[u8]>::to_vec));
    }
}

async fn emit(text: Vec<u8>, task: &TaskName, stream: Stream, events: &EventSender, log: Option<&LogMatch>) {
    if let Some(log) = log
        && !*log.matched.borrow()
        && text.split(|&b| b == b'\n').any(|line| log.pattern.is_match(&String::from_utf8_lossy(line)))
    {
        log.matched.send_replace(true);
    }
    events.send_output(task.clone(), stream, text).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(reads: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for r in reads {
            lines.feed(r, &mut out);
        }
        lines.finish(&mut out);
        out
    }

    #[test]
    fn complete_lines_of_a_read_go_out_together_and_a_partial_line_waits() {
        assert_eq!(run(&[b"a\nb\nc"]), vec![b"a\nb".to_vec(), b"c".to_vec()]);
        assert_eq!(run(&[b"a\nb", b"c\nd\n"]), vec![b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()]);
        assert_eq!(run(&[b"\n\n"]), vec![b"\n".to_vec()]);
    }

    #[test]
    fn pumps_finish_once_the_task_is_gone_though_a_pipe_is_still_held_open_and_pass_on_what_it_held() {
        let (events, mut rx) = crate::events::channel();
        let (read, write) = sys::pipe().unwrap();
        nix::unistd::write(&write, b"before\n").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut pumps = Pumps::default();
            let buffers = Arc::default();
            let (task, stream, lines) = (TaskName::from("t"), Stream::Stdout, Lines::default());
            pumps.start(Reader { fd: read, task, stream, events: events.clone(), log: None, lines, buffers });
            // `write` stays open (a process that left the task holds it): a pump waiting for end-of-file would
            // never end.
            pumps.finish().await;
        });
        events.flush();
        drop(events);
        let texts: Vec<Vec<u8>> = std::iter::from_fn(|| rx.blocking_recv())
            .filter_map(|e| match e.event {
                crate::events::Event::Output { text, .. } => Some(text),
                _ => None,
            })
            .collect();
        assert_eq!(texts, vec![b"before".to_vec()]);
        drop(write);
    }

    #[test]
    fn an_endless_line_goes_out_in_pieces_and_its_newline_adds_no_empty_line() {
        let long = vec![b'x'; MAX_LINE];
        let out = run(&[&long, b"\nnext\n"]);
        assert_eq!(out, vec![long.clone(), b"next".to_vec()]);
    }
}
