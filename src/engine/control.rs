//! What the engine asks of a running task, and the rule that asks only ever escalate: once a task has been told to
//! die at once, nothing turns that back into a graceful stop.

use crate::outcome::StopReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Stop gracefully: the task's stop signal, its grace period, then SIGKILL.
    Stop(StopReason),
    /// SIGKILL now (a second Ctrl-C).
    Kill,
}

impl Control {
    fn level(self) -> u8 {
        match self {
            Control::Stop(_) => 1,
            Control::Kill => 2,
        }
    }

    /// What `self` becomes when `next` is asked for too: the stronger of the two (the earlier one on a tie).
    pub(crate) fn escalate(self, next: Control) -> Control {
        if next.level() > self.level() { next } else { self }
    }

    /// Whether `next` asks for more than `self` already does.
    pub(crate) fn weaker_than(self, next: Control) -> bool {
        self.level() < next.level()
    }
}

/// The control a runner should obey once `next` arrives, given what it was told before (if anything).
pub(crate) fn merge(current: Option<Control>, next: Control) -> Control {
    current.map_or(next, |c| c.escalate(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_is_never_turned_back_into_a_stop() {
        let stops = [StopReason::NotNeeded, StopReason::Cancelled, StopReason::Interrupted, StopReason::Restart];
        for reason in stops {
            assert_eq!(merge(Some(Control::Kill), Control::Stop(reason)), Control::Kill);
            assert_eq!(merge(Some(Control::Stop(reason)), Control::Kill), Control::Kill);
            assert_eq!(merge(None, Control::Stop(reason)), Control::Stop(reason));
        }
    }

    #[test]
    fn escalating_keeps_the_stronger_control() {
        let stop = Control::Stop(StopReason::NotNeeded);
        assert_eq!(stop.escalate(Control::Kill), Control::Kill);
        assert_eq!(Control::Kill.escalate(stop), Control::Kill);
        assert_eq!(stop.escalate(Control::Stop(StopReason::Interrupted)), stop);
    }

    #[test]
    fn the_first_reason_to_stop_is_kept() {
        let first = Control::Stop(StopReason::Cancelled);
        assert_eq!(merge(Some(first), Control::Stop(StopReason::Interrupted)), first);
    }
}
