//! Reporters consume the event stream; they never influence the run.

pub mod critical;
pub mod json;
pub mod junit;
pub mod progress;
pub mod terminal;
pub mod text;

use std::time::SystemTime;

use crate::events::{Event, EventReceiver};

pub trait Reporter: Send {
    fn event(&mut self, at: SystemTime, event: &Event);
    /// Called when no event is waiting, so output can be buffered under load and still appear at once when idle.
    fn flush(&mut self) {}
}

/// Feed every event to every reporter until the last sender is gone. Runs on its own thread, so a blocked
/// stdout never stalls the scheduler.
pub fn drive(mut events: EventReceiver, mut reporters: Vec<Box<dyn Reporter>>) {
    while let Some(stamped) = events.blocking_recv() {
        for r in &mut reporters {
            r.event(stamped.at, &stamped.event);
        }
        if events.is_empty() {
            for r in &mut reporters {
                r.flush();
            }
        }
    }
    for r in &mut reporters {
        r.flush();
    }
}
