//! A run as a stream of events. The engine and the task runners emit them; reporters only listen.

use std::sync::Arc;
use std::time::Duration;

pub use crate::outcome::{Outcome, StopReason};

pub type TaskName = Arc<str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub use crate::config::TaskKind;

#[derive(Debug, Clone)]
pub struct PlannedTask {
    pub name: TaskName,
    pub kind: TaskKind,
    pub deps: Vec<TaskName>,
    /// `output = "on-failure"`: its output is shown only if it fails.
    pub quiet: bool,
}

/// How the whole run ended; maps to irun's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Passed,
    Failed,
    Interrupted(nix::sys::signal::Signal),
}

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        tasks: Vec<PlannedTask>,
        jobs: usize,
        watch: bool,
    },
    /// Watch mode: Irun.toml was edited and reloaded; from now on these are the tasks.
    PlanChanged {
        tasks: Vec<PlannedTask>,
        jobs: usize,
    },
    /// Watch mode: a cycle begins (cycle 0 is the initial run), for these changed paths and tasks. With
    /// `restarted`, a change arrived during the previous cycle, which this one replaces: `changed` and `tasks` then
    /// cover both.
    CycleStarted {
        cycle: u32,
        changed: Vec<String>,
        rescan: bool,
        tasks: Vec<TaskName>,
        restarted: bool,
    },
    /// Watch mode: every task of the cycle has finished (services stay up); irun waits for the next change.
    CycleFinished {
        cycle: u32,
        outcome: RunOutcome,
        elapsed: Duration,
    },
    TaskStarted {
        task: TaskName,
        pid: u32,
        /// The port chosen for a service with `ready = { tcp = "auto" }`.
        port: Option<u16>,
    },
    /// A service's readiness probe passed (or it has none); its dependents may start.
    TaskReady {
        task: TaskName,
        after: Duration,
        probe: Option<String>,
    },
    /// A service's process exited and is started again after `delay` (`restart`), restart `attempt` of `max`.
    TaskRestarting {
        task: TaskName,
        attempt: u32,
        max: u32,
        exit: crate::outcome::ChildExit,
        delay: Duration,
    },
    /// A service no longer needed, or a task being cancelled, is being stopped.
    TaskStopping {
        task: TaskName,
        reason: StopReason,
    },
    /// Output of a task: one or more complete lines, separated by `\n`, without the last line's ending (a line
    /// longer than 64 KiB arrives in pieces). Bytes are passed through as they came. Use [`Event::lines`].
    Output {
        task: TaskName,
        stream: Stream,
        text: Vec<u8>,
    },
    TaskFinished {
        task: TaskName,
        outcome: Outcome,
        duration: Duration,
    },
    /// irun received a signal: the first stops everything gracefully, any further one kills at once.
    Interrupted {
        signal: nix::sys::signal::Signal,
        /// 1 for the first signal of the run.
        count: u32,
        /// Tasks and services being stopped.
        running: usize,
    },
    /// Something the user should know that is not a task's status (a SIGKILL escalation, an interrupt).
    Notice {
        task: Option<TaskName>,
        message: String,
    },
    RunFinished {
        outcome: RunOutcome,
        elapsed: Duration,
    },
}

impl Event {
    /// The lines of an `Output` event (none for other events).
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let text = match self {
            Event::Output { text, .. } => Some(text),
            _ => None,
        };
        text.into_iter().flat_map(|t| t.split(|&b| b == b'\n'))
    }
}

/// An event and when it happened.
#[derive(Debug, Clone)]
pub struct Stamped {
    pub at: std::time::SystemTime,
    pub event: Event,
}

/// Bytes of task output that may wait for reporters before output readers are slowed down.
const OUTPUT_BUDGET: usize = 4 << 20;

/// Events are handed to the reporters in batches: when the runtime has nothing left to do (see
/// [`EventSender::flusher`]), or once a batch holds this many events or bytes of output.
const BATCH_EVENTS: usize = 512;
const BATCH_BYTES: usize = 256 << 10;

/// Where events go. Sending never blocks, so the scheduler stays responsive (timeouts, Ctrl-C) even when irun's
/// stdout is slow or blocked; only task output is throttled: when reporters fall `OUTPUT_BUDGET` bytes behind,
/// output readers wait, and the task's pipe fills, as if it wrote to that stdout directly.
///
/// Events sent while the runtime works are collected and handed over together when it goes idle: the reporter
/// thread wakes (and writes) once per burst, not once per event.
#[derive(Clone)]
pub struct EventSender {
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

pub struct EventReceiver {
    rx: tokio::sync::mpsc::UnboundedReceiver<Vec<Stamped>>,
    budget: Arc<tokio::sync::Semaphore>,
    /// The rest of the batch being handed out.
    current: std::collections::VecDeque<Stamped>,
}

pub fn channel() -> (EventSender, EventReceiver) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let budget = Arc::new(tokio::sync::Semaphore::new(OUTPUT_BUDGET));
    let shared = Shared { tx, budget: budget.clone(), batch: std::sync::Mutex::new(Batch::default()) };
    (EventSender { shared: Arc::new(shared) }, EventReceiver { rx, budget, current: Default::default() })
}

impl EventSender {
    pub fn send(&self, event: Event) {
        let bytes = match &event {
            Event::Output { text, .. } => text.len(),
            _ => 0,
        };
        let full = {
            let mut batch = self.shared.batch.lock().unwrap_or_else(|e| e.into_inner());
            batch.events.push(Stamped { at: std::time::SystemTime::now(), event });
            batch.bytes += bytes;
            batch.events.len() >= BATCH_EVENTS || batch.bytes >= BATCH_BYTES
        };
        // Off the runtime's thread nothing would hand the batch over: do it now.
        if full || tokio::runtime::Handle::try_current().is_err() {
            self.shared.flush();
        }
    }

    /// Hand over what was collected.
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// What the runtime calls before it goes idle (`on_thread_park`): hands over what was collected. It does not
    /// keep the channel open.
    pub fn flusher(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::downgrade(&self.shared);
        move || {
            if let Some(shared) = shared.upgrade() {
                shared.flush();
            }
        }
    }

    /// Send a line of output once the reporters have room for it.
    pub async fn send_output(&self, task: TaskName, stream: Stream, line: Vec<u8>) {
        let cost = line.len().clamp(1, OUTPUT_BUDGET) as u32;
        match self.shared.budget.try_acquire_many(cost) {
            Ok(permit) => permit.forget(),
            Err(_) => {
                // The reporters are behind: let them have what was collected, then wait for room.
                self.shared.flush();
                if let Ok(permit) = self.shared.budget.acquire_many(cost).await {
                    // Returned by the receiver once the line has been handled.
                    permit.forget();
                }
            }
        }
        self.send(Event::Output { task, stream, text: line });
    }
}

impl EventReceiver {
    /// The next event, blocking this (non-async) thread; `None` once every sender is gone.
    pub fn blocking_recv(&mut self) -> Option<Stamped> {
        while self.current.is_empty() {
            self.current = self.rx.blocking_recv()?.into();
        }
        let event = self.current.pop_front()?;
        if let Event::Output { text: line, .. } = &event.event {
            self.budget.add_permits(line.len().clamp(1, OUTPUT_BUDGET));
        }
        Some(event)
    }

    /// No event is waiting: the reporters may write what they hold.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.rx.is_empty()
    }
}
