//! Reporters consume the event stream. They never influence the run, with one exception: when irun's own stdout is
//! closed (`irun | head -1`), the run is stopped as if interrupted, since nobody reads it any more.

pub(crate) mod critical;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod progress;
pub(crate) mod spool;
pub(crate) mod tail;
pub(crate) mod tail_rules;
#[cfg(test)]
mod tail_samples;
pub(crate) mod terminal;
pub(crate) mod text;
pub(crate) mod timings;

use std::time::SystemTime;

use crate::config::env::Secrets;
use crate::events::{Event, EventReceiver};

pub(crate) trait Reporter: Send {
    fn event(&mut self, at: SystemTime, event: &Event);
    /// Write what the reporter holds. Called when no event is waiting (so output can be buffered under load and
    /// still appear at once when idle) and after every megabyte or so of output: by then every output event
    /// given to [`Reporter::event`] must be written, or kept within a bound of the reporter's own (a tail, a spool
    /// file), since the output readers' budget is given back.
    fn flush(&mut self) {}
    /// What went wrong writing this report since the last call, if anything (each trouble is given once; a reporter
    /// that failed writes nothing more).
    fn trouble(&mut self) -> Option<Trouble> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// irun's stdout was closed: its reader went away.
    OutputClosed,
    /// A report could not be written; the message names the file.
    WriteFailed(String),
}

impl Trouble {
    /// The trouble an error writing to `dest` ("stdout", or a file's path) is.
    pub(crate) fn of(error: &std::io::Error, what: &str, dest: &str) -> Trouble {
        if error.kind() == std::io::ErrorKind::BrokenPipe && dest == STDOUT {
            Trouble::OutputClosed
        } else {
            Trouble::WriteFailed(format!("cannot write the {what} to {dest}: {error}"))
        }
    }
}

/// How reports name irun's standard output.
pub(crate) const STDOUT: &str = "stdout";

/// Feed every event to every reporter until the last sender is gone. Runs on its own thread, so a blocked
/// stdout never stalls the scheduler. A report that cannot be written is said at once, on stderr; `closed` is
/// called (once) if stdout is closed. Returns the failures, so the exit code can say a report is missing.
pub(crate) fn drive(
    mut events: EventReceiver,
    mut reporters: Vec<Box<dyn Reporter>>,
    mut secrets: Secrets,
    closed: impl Fn(),
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |reporters: &mut Vec<Box<dyn Reporter>>| {
        for r in reporters.iter_mut() {
            match r.trouble() {
                None => {}
                Some(Trouble::OutputClosed) => closed(),
                Some(Trouble::WriteFailed(message)) => {
                    eprintln!("irun: error: {message}");
                    failures.push(message);
                }
            }
        }
    };
    while let Some(mut stamped) = events.blocking_recv() {
        if let Event::ReloadApplied { secrets: read_again, .. } = &stamped.event {
            // Values shown before the reload stay hidden too.
            secrets.merge(read_again);
        }
        stamped.event.hide_secrets(&secrets);
        for r in &mut reporters {
            r.event(stamped.at, &stamped.event);
        }
        // Written when nothing waits, and after each share of the output budget: what reporters hold stays small,
        // and the budget returns only once the bytes are out (a slow stdout slows the tasks' pipes down).
        let idle = events.is_empty();
        if idle || events.write_due() {
            for r in &mut reporters {
                r.flush();
            }
            events.written();
        }
        if idle {
            check(&mut reporters);
            events.rest();
        }
    }
    for r in &mut reporters {
        r.flush();
    }
    check(&mut reporters);
    failures
}
