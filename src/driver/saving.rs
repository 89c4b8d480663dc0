//! Saving irun's state during a run: at once when a cycle or the run ends, otherwise at most once a second and at
//! least twenty times as long apart as the last save took (a big state must not become a cost paid over and over);
//! while another run holds the state's lock, again shortly. At the end of the run, irun waits for that lock (saying
//! so), but a signal ends the wait.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::Driver;
use super::signals::Signals;
use crate::events::Event;
use crate::exec::Launcher;

/// How long the last save waits for another run's save (the lock) before giving up with a warning.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);
/// How often the last save tries the lock again while another run holds it.
const LOCK_RETRY: Duration = Duration::from_millis(20);

pub(super) struct Saving {
    /// Something changed since the last save.
    pub(super) dirty: bool,
    saved: Instant,
    took: Duration,
    /// A save put off to keep saves rare; it happens at this time at the latest.
    pub(super) due: Option<Instant>,
    /// A save failed and the user was told.
    warned: bool,
}

impl Saving {
    pub(super) fn new() -> Saving {
        Saving { dirty: false, saved: Instant::now(), took: Duration::ZERO, due: None, warned: false }
    }
}

impl<L: Launcher> Driver<'_, L> {
    /// Save the state: now if `urgent`, else when convenient.
    pub(super) fn save_state(&mut self, urgent: bool) {
        self.try_save(urgent);
    }

    /// [`Self::save_state`]; `false`: another run holds the lock (it is tried again shortly).
    fn try_save(&mut self, urgent: bool) -> bool {
        let s = &mut self.saving;
        s.dirty |= self.checker.state.unsaved();
        if !s.dirty {
            s.due = None;
            return true;
        }
        let pause = Duration::from_secs(1).max(s.took * 20);
        if !urgent && s.saved.elapsed() < pause {
            s.due.get_or_insert(s.saved + pause);
            return true;
        }
        let started = Instant::now();
        // (All it would write is refreshed stamps: they only save reading files, so failing to is no warning.)
        let only_refreshed = self.checker.state.only_refreshed();
        let saved = self.checker.state.save();
        s.took = started.elapsed();
        s.saved = Instant::now();
        match saved {
            Ok(true) => {
                s.dirty = false;
                s.due = None;
            }
            Err(_) if only_refreshed => {
                s.dirty = false;
                s.due = None;
                self.checker.state.forget_refreshed();
            }
            // Another run is saving: again in a moment.
            Ok(false) => {
                s.due = Some(Instant::now() + Duration::from_millis(100));
                return false;
            }
            Err(e) => self.not_saved(e.to_string()),
        }
        true
    }

    /// A save failed: the run's result stands. Said once, as the next save would fail the same way.
    fn not_saved(&mut self, error: String) {
        let s = &mut self.saving;
        s.dirty = false;
        s.due = None;
        if !std::mem::replace(&mut s.warned, true) {
            let path = crate::state::State::path_for(&self.config.root);
            self.events.send(Event::StateNotSaved { path, error });
        }
    }

    /// The run is over: save, waiting (at most [`LOCK_PATIENCE`], and saying so) while another run holds the
    /// state's lock. A signal during that wait ends it, the state not saved: the signal that came first.
    pub(super) async fn save_last(&mut self, signals: &mut Signals) -> Option<Signal> {
        if self.try_save(true) {
            return None;
        }
        let lock = crate::state::State::lock_path_for(&self.config.root);
        self.events.send(Event::StateLockWait { lock: lock.clone() });
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            tokio::select! {
                received = signals.recv() => {
                    let Some(&sig) = received.first() else { continue };
                    let why = format!(
                        "interrupted by {} while waiting for another irun to release {}",
                        sig.as_str(),
                        lock.display()
                    );
                    self.not_saved(why);
                    return Some(sig);
                }
                () = tokio::time::sleep(LOCK_RETRY) => {}
            }
            if self.try_save(true) {
                return None;
            }
            if Instant::now() >= deadline {
                let why = format!("another irun has held {} for {}s", lock.display(), LOCK_PATIENCE.as_secs());
                self.not_saved(why);
                return None;
            }
        }
    }
}
