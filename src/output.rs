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
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let (take, complete) = match memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if complete || line.len() >= MAX_LINE {
            if complete {
                line.pop();
            }
            emit(&mut line, &task, stream, &events, log.as_ref()).await;
        }
    }
    if !line.is_empty() {
        emit(&mut line, &task, stream, &events, log.as_ref()).await;
    }
}

async fn emit(line: &mut Vec<u8>, task: &TaskName, stream: Stream, events: &EventSender, log: Option<&LogMatch>) {
    let line = std::mem::take(line);
    if let Some(log) = log {
        if !*log.matched.borrow() && log.pattern.is_match(&String::from_utf8_lossy(&line)) {
            log.matched.send_replace(true);
        }
    }
    events.send_output(task.clone(), stream, line).await;
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}
