//! How events travel from the run (the runtime's thread) to the reporters (a thread of their own): in batches,
//! never blocking the sender, with only task output throttled: a task's pipe is read only as fast as the reporters
//! write what it says.

use std::sync::Arc;

use super::{Event, Stream, TaskName};

/// An event and when it happened.
#[derive(Debug, Clone)]
pub(crate) struct Stamped {
    pub(crate) at: std::time::SystemTime,
    pub(crate) event: Event,
}

/// Bytes of task output that may be queued for the reporters or held by them, not yet written, before output
/// readers are slowed down.
const OUTPUT_BUDGET: usize = 4 << 20;

/// Bytes of output handed to the reporters after which they write what they hold (and give the budget back), even
/// while more events wait: a quarter of the budget, so readers keep reading while the reporters write.
const WRITE_AT: usize = OUTPUT_BUDGET / 4;

/// Events are handed to the reporters in batches: when the runtime has nothing left to do (see
/// [`EventSender::flusher`]), or once a batch holds this many events or bytes of output.
const BATCH_EVENTS: usize = 512;
const BATCH_BYTES: usize = 256 << 10;

/// After the reporters have written everything and gone idle, they look for more this long after, unless told
/// sooner (see [`EventReceiver::rest`]): on a busy run the runtime goes idle at every task's start and end, and
/// waking the reporters' thread each time would take a CPU from the tasks that often. A person sees no difference.
const REST: std::time::Duration = std::time::Duration::from_millis(10);

/// Where events go. Sending never blocks, so the scheduler stays responsive (timeouts, Ctrl-C) even when irun's
/// stdout is slow or blocked; only task output is throttled: when `OUTPUT_BUDGET` bytes are queued or held by the
/// reporters and not yet written, output readers wait, and the task's pipe fills, as if it wrote to that stdout
/// directly. The budget comes back when the reporters have written the bytes ([`EventReceiver::written`]), not when
/// they take the event: a reporter that holds output back and writes it later cannot make memory grow.
///
/// Events sent while the runtime works are collected and handed over together when it goes idle: the reporter
/// thread wakes (and writes) once per burst, not once per event, and, after it has written, not again before
/// [`REST`] has passed unless a batch is handed over with a call to hurry (see [`EventSender::flush`]).
#[derive(Clone)]
pub(crate) struct EventSender {
    shared: Arc<Shared>,
}

struct Shared {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<Stamped>>,
    budget: Arc<tokio::sync::Semaphore>,
    batch: std::sync::Mutex<Batch>,
    hurry: Arc<Hurry>,
}

/// Cuts the reporters' rest short: set when a batch must be written now (see [`EventSender::flush`]).
#[derive(Default)]
struct Hurry {
    now: std::sync::Mutex<bool>,
    told: std::sync::Condvar,
}

impl Hurry {
    fn tell(&self) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.told.notify_one();
    }

    /// Wait until `until`, or until told to hurry (since the last wait).
    fn rest(&self, until: std::time::Instant) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        while !*now {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            now = self.told.wait_timeout(now, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        *now = false;
    }
}

#[derive(Default)]
struct Batch {
    events: Vec<Stamped>,
    bytes: usize,
    /// The output of tasks whose result will be cached, as it is sent: (stderr, line).
    captures: std::collections::HashMap<TaskName, Vec<(bool, Vec<u8>)>>,
}

impl Shared {
    /// Hand the batch over; with `hurry`, the reporters write it now even if they are resting.
    fn flush(&self, hurry: bool) {
        let mut batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        if !batch.events.is_empty() {
            batch.bytes = 0;
            // Sent under the lock: batches from two threads never overtake each other.
            let _ = self.tx.send(std::mem::take(&mut batch.events));
        }
        drop(batch);
        if hurry {
            self.hurry.tell();
        }
    }
}

impl Drop for Shared {
    /// The last sender is gone: what it collected still reaches the reporters, at once.
    fn drop(&mut self) {
        self.flush(true);
    }
}

pub(crate) struct EventReceiver {
    rx: tokio::sync::mpsc::UnboundedReceiver<Vec<Stamped>>,
    budget: Arc<tokio::sync::Semaphore>,
    /// The rest of the batch being handed out.
    current: std::collections::VecDeque<Stamped>,
    /// Budget taken by output handed out and not yet written.
    unwritten: usize,
    hurry: Arc<Hurry>,
    /// No new batch is looked for before this, unless told to hurry (see [`EventReceiver::rest`]).
    resting: Option<std::time::Instant>,
    /// Task output was handed out since the reporters last rested: output is flowing (see [`EventReceiver::rest`]).
    flowing: bool,
}

pub(crate) fn channel() -> (EventSender, EventReceiver) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let budget = Arc::new(tokio::sync::Semaphore::new(OUTPUT_BUDGET));
    let hurry = Arc::new(Hurry::default());
    let batch = std::sync::Mutex::new(Batch::default());
    let shared = Shared { tx, budget: budget.clone(), batch, hurry: hurry.clone() };
    let rx =
        EventReceiver { rx, budget, current: Default::default(), unwritten: 0, hurry, resting: None, flowing: false };
    (EventSender { shared: Arc::new(shared) }, rx)
}

impl EventSender {
    pub(crate) fn send(&self, event: Event) {
        let bytes = match &event {
            Event::Output { text, .. } => text.len(),
            _ => 0,
        };
        let now = urgent(&event);
        let full = {
            let mut batch = self.shared.batch.lock().unwrap_or_else(|e| e.into_inner());
            if let Event::Output { task, stream, text } = &event
                && let Some(capture) = batch.captures.get_mut(task)
            {
                capture.push((*stream == Stream::Stderr, text.clone()));
            }
            batch.events.push(Stamped { at: std::time::SystemTime::now(), event });
            batch.bytes += bytes;
            batch.events.len() >= BATCH_EVENTS || batch.bytes >= BATCH_BYTES
        };
        // Off the runtime's thread nothing would hand the batch over: do it now.
        if full || now || tokio::runtime::Handle::try_current().is_err() {
            self.shared.flush(true);
        }
    }

    /// Keep a copy of `task`'s output from now on (replacing what was kept), until [`EventSender::captured`].
    pub(crate) fn capture(&self, task: TaskName) {
        self.shared.batch.lock().unwrap_or_else(|e| e.into_inner()).captures.insert(task, Vec::new());
    }

    /// The output of `task` kept since [`EventSender::capture`], and no more kept.
    pub(crate) fn captured(&self, task: &TaskName) -> Option<Vec<(bool, Vec<u8>)>> {
        self.shared.batch.lock().unwrap_or_else(|e| e.into_inner()).captures.remove(task)
    }

    /// Hand over what was collected, to be written now.
    pub(crate) fn flush(&self) {
        self.shared.flush(true);
    }

    /// Before work that may take a while: hand over what was collected, so that what happened before is shown
    /// meanwhile, once its oldest event has waited [`REST`] (the reporters would not look sooner), and without
    /// waking them. Called before each of 10,000 quick checks, it hands over a batch every [`REST`], not 10,000.
    pub(crate) fn hand_over(&self) {
        let waited = {
            let batch = self.shared.batch.lock().unwrap_or_else(|e| e.into_inner());
            batch.events.first().is_some_and(|e| e.at.elapsed().is_ok_and(|waited| waited >= REST))
        };
        if waited {
            self.shared.flush(false);
        }
    }

    /// What the runtime calls before it goes idle (`on_thread_park`): hands over what was collected, for the
    /// reporters to write when they next look (at once, unless they are resting). It does not keep the channel open.
    pub(crate) fn flusher(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::downgrade(&self.shared);
        move || {
            if let Some(shared) = shared.upgrade() {
                shared.flush(false);
            }
        }
    }

    /// Send a line of output once the reporters have room for it.
    pub(crate) async fn send_output(&self, task: TaskName, stream: Stream, line: Vec<u8>) {
        let cost = line.len().clamp(1, OUTPUT_BUDGET) as u32;
        match self.shared.budget.try_acquire_many(cost) {
            Ok(permit) => permit.forget(),
            Err(_) => {
                // The reporters are behind: let them have what was collected, then wait for room.
                self.shared.flush(true);
                if let Ok(permit) = self.shared.budget.acquire_many(cost).await {
                    // Returned once the reporters have written the line (see `EventReceiver::written`).
                    permit.forget();
                }
            }
        }
        self.send(Event::Output { task, stream, text: line });
    }
}

/// Whether the reporters must act on `event` at once, not when their rest is over: the terminal reporter stops
/// drawing its status area at it, which must not be drawn over what an interactive task now draws on the terminal
/// itself, nor over the `^C` the terminal echoed.
fn urgent(event: &Event) -> bool {
    matches!(event, Event::TerminalHandedOver { .. } | Event::Interrupted { .. })
}

impl EventReceiver {
    /// The next event, blocking this (non-async) thread; `None` once every sender is gone.
    pub(crate) fn blocking_recv(&mut self) -> Option<Stamped> {
        while self.current.is_empty() {
            if let Some(until) = self.resting.take() {
                self.hurry.rest(until);
            }
            self.current = self.rx.blocking_recv()?.into();
        }
        let event = self.current.pop_front()?;
        if let Event::Output { text: line, .. } = &event.event {
            self.unwritten += line.len().clamp(1, OUTPUT_BUDGET);
            self.flowing = true;
        }
        Some(event)
    }

    /// Whether the reporters should write what they hold now, though more events wait: a share of the budget
    /// ([`WRITE_AT`] bytes of output) was handed out since the last [`EventReceiver::written`].
    pub(crate) fn write_due(&self) -> bool {
        self.unwritten >= WRITE_AT
    }

    /// The reporters have written (or stored within their bounds) every output event handed out so far: its budget
    /// goes back to the output readers.
    pub(crate) fn written(&mut self) {
        self.budget.add_permits(std::mem::take(&mut self.unwritten));
    }

    /// The reporters have written everything and have nothing to do: the next batch is looked for [`REST`] from
    /// now, or as soon as one is handed over with a call to hurry. Batches handed over meanwhile wake nobody.
    /// Except while task output flows (some was handed out since the last rest): then the next batch is looked for
    /// at once, so reading a task's pipe and writing what it said go on side by side (resting, the reporters wrote
    /// 200 MB of output 30% slower, each rest leaving the readers to fill the budget and wait).
    pub(crate) fn rest(&mut self) {
        if !std::mem::take(&mut self.flowing) {
            self.rest_for(REST);
        }
    }

    fn rest_for(&mut self, rest: std::time::Duration) {
        self.resting = Some(std::time::Instant::now() + rest);
    }

    /// No event is waiting: the reporters may write what they hold.
    pub(crate) fn is_empty(&self) -> bool {
        self.current.is_empty() && self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RunOutcome;

    fn finished() -> Event {
        Event::RunFinished { outcome: RunOutcome::Passed, elapsed: std::time::Duration::ZERO }
    }

    #[test]
    fn a_flush_ends_the_reporters_rest_at_once_and_what_the_runtime_handed_over_meanwhile_comes_first() {
        let (tx, mut rx) = channel();
        // A rest no test waits out: the reporters look again only because they are told to.
        rx.rest_for(std::time::Duration::from_secs(3600));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (received, done) = std::sync::mpsc::channel::<()>();
        let sender = std::thread::spawn(move || {
            let _on_runtime = runtime.enter();
            // Collected, then handed over as the runtime goes idle: no hurry.
            tx.send(Event::Isolation { cgroup: None });
            tx.flusher()();
            tx.send(finished());
            tx.flush();
            // The sender stays until both are received (its end would cut the rest short too).
            let _ = done.recv();
        });
        let first = rx.blocking_recv().expect("the batch handed over while resting");
        assert!(matches!(first.event, Event::Isolation { .. }), "{:?}", first.event);
        let second = rx.blocking_recv().expect("the flushed batch");
        assert!(matches!(second.event, Event::RunFinished { .. }), "{:?}", second.event);
        received.send(()).unwrap();
        sender.join().unwrap();
        assert!(rx.blocking_recv().is_none(), "every sender is gone");
    }

    #[test]
    fn a_handover_of_the_terminal_or_an_interrupt_is_handed_to_the_reporters_at_once_ending_their_rest() {
        let interrupted = Event::Interrupted { signal: nix::sys::signal::Signal::SIGINT, count: 1, running: 1 };
        for urgent in [Event::TerminalHandedOver { task: TaskName::from("t") }, interrupted] {
            let (tx, mut rx) = channel();
            rx.rest_for(std::time::Duration::from_secs(3600));
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let on_runtime = runtime.enter();
            // Collected until the runtime goes idle, as any other event is...
            tx.send(Event::Isolation { cgroup: None });
            assert!(rx.rx.is_empty());
            // ...until one that cannot wait: handed over with what came before, and the reporters told to hurry.
            tx.send(urgent.clone());
            assert_eq!(rx.rx.len(), 1, "{urgent:?} was handed over");
            assert!(*rx.hurry.now.lock().unwrap(), "{urgent:?} ends the reporters' rest");
            drop(on_runtime);
            assert!(matches!(rx.blocking_recv().map(|s| s.event), Some(Event::Isolation { .. })));
            let second = rx.blocking_recv().map(|s| s.event);
            assert_eq!(std::mem::discriminant(&second.unwrap()), std::mem::discriminant(&urgent));
        }
    }

    #[test]
    fn the_reporters_rest_after_writing_unless_task_output_flows() {
        let (tx, mut rx) = channel();
        tx.send(finished());
        rx.blocking_recv().unwrap();
        rx.rest();
        assert!(rx.resting.is_some(), "nothing but a task's end: they rest");
        tx.send(Event::Output { task: TaskName::from("t"), stream: Stream::Stdout, text: b"line".to_vec() });
        tx.send(finished());
        rx.resting = None;
        rx.blocking_recv().unwrap();
        rx.blocking_recv().unwrap();
        rx.rest();
        assert!(rx.resting.is_none(), "output was handed out since the last rest: they look again at once");
        rx.rest();
        assert!(rx.resting.is_some(), "no output since: they rest again");
    }

    #[test]
    fn before_a_check_what_was_collected_is_handed_over_once_it_has_waited_a_rest_without_waking_the_reporters() {
        let (tx, rx) = channel();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _on_runtime = runtime.enter();
        tx.hand_over();
        assert!(rx.rx.is_empty(), "nothing collected, nothing handed over");
        tx.send(finished());
        tx.hand_over();
        assert!(rx.rx.is_empty(), "collected just now: kept for the batch");
        tx.shared.batch.lock().unwrap().events[0].at -= REST;
        tx.hand_over();
        assert_eq!(rx.rx.len(), 1, "waited a rest: handed over");
        assert!(!*rx.hurry.now.lock().unwrap(), "and the reporters were not told to hurry");
    }

    #[test]
    fn a_flush_before_the_rest_begins_is_not_lost() {
        let (tx, mut rx) = channel();
        tx.send(finished());
        tx.flush();
        rx.rest_for(std::time::Duration::from_secs(3600));
        assert!(matches!(rx.blocking_recv().map(|s| s.event), Some(Event::RunFinished { .. })));
    }
}
