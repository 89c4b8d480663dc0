//! Saving irun's state during a run: at once when a cycle or the run ends, otherwise at most once a second and at
//! least twenty times as long apart as the last save took (a big state must not become a cost paid over and over);
//! while another run holds the state's lock, again shortly.

use std::time::Duration;

use tokio::time::Instant;

use super::Driver;
use crate::events::Event;
use crate::exec::Launcher;

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
        self.save(urgent, false);
    }

    /// `last`: the run is over, so wait for another run's lock rather than try again later.
    pub(super) fn save(&mut self, urgent: bool, last: bool) {
        let s = &mut self.saving;
        s.dirty |= self.checker.state.unsaved();
        if !s.dirty {
            s.due = None;
            return;
        }
        let pause = Duration::from_secs(1).max(s.took * 20);
        if !urgent && s.saved.elapsed() < pause {
            s.due.get_or_insert(s.saved + pause);
            return;
        }
        let started = Instant::now();
        let saved = self.checker.state.save(last);
        s.took = started.elapsed();
        s.saved = Instant::now();
        match saved {
            Ok(true) => {
                s.dirty = false;
                s.due = None;
            }
            // Another run is saving: again in a moment.
            Ok(false) => s.due = Some(Instant::now() + Duration::from_millis(100)),
            Err(e) => {
                s.dirty = false;
                s.due = None;
                // Said once: the run's result stands, and the next save would fail the same way.
                if !std::mem::replace(&mut s.warned, true) {
                    let path = crate::state::State::path_for(&self.config.root);
                    self.events.send(Event::StateNotSaved { path, error: e.to_string() });
                }
            }
        }
    }
}
