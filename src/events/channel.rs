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

/// Where events go. Sending never blocks, so the scheduler stays responsive (timeouts, Ctrl-C) even when irun's
/// stdout is slow or blocked; only task output is throttled: when `OUTPUT_BUDGET` bytes are queued or held by the
/// reporters and not yet written, output readers wait, and the task's pipe fills, as if it wrote to that stdout
/// directly. The budget comes back when the reporters have written the bytes ([`EventReceiver::written`]), not when
/// they take the event: a reporter that holds output back and writes it later cannot make memory grow.
///
/// Events sent while the runtime works are collected and handed over together when it goes idle: the reporter
/// thread wakes (and writes) once per burst, not once per event.
#[derive(Clone)]
pub(crate) struct EventSender {
    shared: Arc<Shared>,
}

struct Shared {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<Stamped>>,
    budget: Arc<tokio::sync::Semaphore>,
    batch: std::sync::Mutex<Batch>,
}

#[derive(Default)]
struct Batch {
    events: Vec<Stamped>,
    bytes: usize,
    /// The output of tasks whose result will be cached, as it is sent: (stderr, line).
    captures: std::collections::HashMap<TaskName, Vec<(bool, Vec<u8>)>>,
}

impl Shared {
    fn flush(&self) {
        let mut batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        if batch.events.is_empty() {
            return;
        }
        batch.bytes = 0;
        // Sent under the lock: batches from two threads never overtake each other.
        let _ = self.tx.send(std::mem::take(&mut batch.events));
    }
}

impl Drop for Shared {
    /// The last sender is gone: what it collected still reaches the reporters.
    fn drop(&mut self) {
        self.flush();
    }
}

pub(crate) struct EventReceiver {
    rx: tokio::sync::mpsc::UnboundedReceiver<Vec<Stamped>>,
    budget: Arc<tokio::sync::Semaphore>,
    /// The rest of the batch being handed out.
    current: std::collections::VecDeque<Stamped>,
    /// Budget taken by output handed out and not yet written.
    unwritten: usize,
}

pub(crate) fn channel() -> (EventSender, EventReceiver) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let budget = Arc::new(tokio::sync::Semaphore::new(OUTPUT_BUDGET));
    let shared = Shared { tx, budget: budget.clone(), batch: std::sync::Mutex::new(Batch::default()) };
    (EventSender { shared: Arc::new(shared) }, EventReceiver { rx, budget, current: Default::default(), unwritten: 0 })
}

impl EventSender {
    pub(crate) fn send(&self, event: Event) {
        let bytes = match &event {
            Event::Output { text, .. } => text.len(),
            _ => 0,
        };
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
        if full || tokio::runtime::Handle::try_current().is_err() {
            self.shared.flush();
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

    /// Hand over what was collected.
    pub(crate) fn flush(&self) {
        self.shared.flush();
    }

    /// What the runtime calls before it goes idle (`on_thread_park`): hands over what was collected. It does not
    /// keep the channel open.
    pub(crate) fn flusher(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::downgrade(&self.shared);
        move || {
            if let Some(shared) = shared.upgrade() {
                shared.flush();
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
                self.shared.flush();
                if let Ok(permit) = self.shared.budget.acquire_many(cost).await {
                    // Returned once the reporters have written the line (see `EventReceiver::written`).
                    permit.forget();
                }
            }
        }
        self.send(Event::Output { task, stream, text: line });
    }
}

impl EventReceiver {
    /// The next event, blocking this (non-async) thread; `None` once every sender is gone.
    pub(crate) fn blocking_recv(&mut self) -> Option<Stamped> {
        while self.current.is_empty() {
            self.current = self.rx.blocking_recv()?.into();
        }
        let event = self.current.pop_front()?;
        if let Event::Output { text: line, .. } = &event.event {
            self.unwritten += line.len().clamp(1, OUTPUT_BUDGET);
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

    /// No event is waiting: the reporters may write what they hold.
    pub(crate) fn is_empty(&self) -> bool {
        self.current.is_empty() && self.rx.is_empty()
    }
}
