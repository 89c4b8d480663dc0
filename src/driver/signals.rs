//! SIGINT, SIGTERM and SIGHUP to irun, counted one by one.
//!
//! tokio's signal streams wake the loop, but merge deliveries that arrive before the loop looks: two Ctrl-C
//! presses in quick succession would read as one, and irun would wait out a service's whole stop timeout instead
//! of killing it. So each delivery also increments a counter from inside the signal handler (registered before
//! tokio's, so it has run by the time tokio wakes the loop), and the loop reads the counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

/// For a thread irun starts besides the main one: block every signal, so the kernel hands them all to the main
/// thread. (A signal the main thread blocks for a moment, such as the SIGCHLD of a task that ends while irun
/// starts another, would otherwise wake this thread for nothing.)
pub(crate) fn leave_to_main_thread() {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None);
}

const HANDLED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

struct Counters {
    counts: [AtomicU32; 3],
    /// The first signal received and not yet read (0: none), so the one that interrupted irun decides its exit
    /// code even when another follows at once.
    first: AtomicI32,
}

pub(crate) struct Signals {
    /// None: a driver fed by a test, which no signal reaches.
    installed: Option<(Arc<Counters>, [tokio::signal::unix::Signal; 3])>,
}

impl Signals {
    /// Install the handlers. From here on these signals only set irun's own teardown going.
    pub(crate) fn install() -> std::io::Result<Signals> {
        let counters = Arc::new(Counters {
            counts: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
            first: AtomicI32::new(0),
        });
        for (n, sig) in HANDLED.into_iter().enumerate() {
            let c = counters.clone();
            // SAFETY: the action only touches atomics, which is async-signal-safe; it allocates nothing and takes
            // no lock.
            unsafe {
                signal_hook_registry::register(sig as i32, move || {
                    c.counts[n].fetch_add(1, Ordering::SeqCst);
                    let _ = c.first.compare_exchange(0, sig as i32, Ordering::SeqCst, Ordering::SeqCst);
                })
            }?;
        }
        let streams =
            [signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?, signal(SignalKind::hangup())?];
        Ok(Signals { installed: Some((counters, streams)) })
    }

    /// No signal ever arrives (for a driver under test: the test process's own signals are left alone).
    #[cfg(test)]
    pub(crate) fn none() -> Signals {
        Signals { installed: None }
    }

    /// Wait for signals; every delivery since the last call, the earliest first.
    pub(crate) async fn recv(&mut self) -> Vec<Signal> {
        let Some((counters, [int, term, hup])) = &mut self.installed else { return std::future::pending().await };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        take(counters)
    }
}

/// Every delivery since the last call, the one that came first in front.
fn take(counters: &Counters) -> Vec<Signal> {
    let first = Signal::try_from(counters.first.swap(0, Ordering::SeqCst)).ok();
    let mut out = Vec::new();
    for (n, sig) in HANDLED.into_iter().enumerate() {
        let count = counters.counts[n].swap(0, Ordering::SeqCst);
        out.extend(std::iter::repeat_n(sig, count as usize));
    }
    if let Some(pos) = first.and_then(|f| out.iter().position(|&s| s == f)) {
        let sig = out.remove(pos);
        out.insert(0, sig);
    }
    out
}
