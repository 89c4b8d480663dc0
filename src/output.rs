//! Reading a task's output: split into lines (bytes kept as they are), sent as events, and checked against a
//! service's `ready.log` pattern. The pipe is drained continuously, so a chatty task never blocks on a full pipe.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::events::{EventSender, Stream, TaskName};

/// A longer line is passed on in pieces of this size, so one endless line cannot exhaust memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Signals a `log` readiness probe when a line matches.
#[derive(Clone)]
pub struct LogMatch {
    pub pattern: Arc<regex::Regex>,
    pub matched: Arc<watch::Sender<bool>>,
}

pub async fn pump(
    reader: impl AsyncRead + Unpin,
    task: TaskName,
    stream: Stream,
    events: EventSender,
    log: Option<LogMatch>,
) {
    let mut reader = BufReader::with_capacity(MAX_LINE, reader);
    // The start of a line whose end has not arrived yet.
    let mut partial: Vec<u8> = Vec::new();
    // The last piece was cut at MAX_LINE: a newline right after it ends that line, not a new empty one.
    let mut just_cut = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        if std::mem::take(&mut just_cut) && buf[0] == b'\n' {
            reader.consume(1);
            continue;
        }
        let (chunk, consumed) = if partial.is_empty() {
            // Every complete line in the buffer goes out as one event: a chatty task costs one event per read,
            // not one per line.
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(last) => (Some(buf[..last].to_vec()), last + 1),
                None => {
                    partial.extend_from_slice(buf);
                    (None, buf.len())
                }
            }
        } else {
            // Finish the pending line first (it may be long, so it goes on its own).
            match buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    partial.extend_from_slice(&buf[..end]);
                    (Some(std::mem::take(&mut partial)), end + 1)
                }
                None => {
                    partial.extend_from_slice(buf);
                    (None, buf.len())
                }
            }
        };
        reader.consume(consumed);
        if let Some(text) = chunk {
            for piece in split_long(text) {
                emit(piece, &task, stream, &events, log.as_ref()).await;
            }
        }
        if partial.len() >= MAX_LINE {
            // A line with no end in sight is passed on in pieces, so one endless line cannot exhaust memory.
            let rest = partial.split_off(MAX_LINE);
            let piece = std::mem::replace(&mut partial, rest);
            just_cut = partial.is_empty();
            emit(piece, &task, stream, &events, log.as_ref()).await;
        }
    }
    if !partial.is_empty() {
        for piece in split_long(partial) {
            emit(piece, &task, stream, &events, log.as_ref()).await;
        }
    }
}

/// A single line longer than `MAX_LINE` becomes several pieces; text with several lines is left whole (each of its
/// lines is shorter than the read buffer).
fn split_long(text: Vec<u8>) -> Vec<Vec<u8>> {
    if text.len() <= MAX_LINE || text.contains(&b'\n') {
        return vec![text];
    }
    text.chunks(MAX_LINE).map(<[u8]>::to_vec).collect()
}

async fn emit(text: Vec<u8>, task: &TaskName, stream: Stream, events: &EventSender, log: Option<&LogMatch>) {
    if let Some(log) = log {
        if !*log.matched.borrow()
            && text.split(|&b| b == b'\n').any(|line| log.pattern.is_match(&String::from_utf8_lossy(line)))
        {
            log.matched.send_replace(true);
        }
    }
    events.send_output(task.clone(), stream, text).await;
}
