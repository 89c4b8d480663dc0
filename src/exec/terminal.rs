//! The terminal, for an `interactive` task: whether irun has one (its stdin, with irun's process group in the
//! foreground), handing it to the task's process group as a shell hands it to a foreground job, and taking it back
//! when the task is over, with the terminal's modes as they were. Everything else irun starts runs in a background
//! group of its own, so a task that reads the terminal is stopped (SIGTTIN) and reported instead
//! ([`super::supervisor::stopped_for_terminal`]).

use nix::libc;

/// irun's terminal, while irun's process group is its foreground group.
pub(crate) struct Terminal {
    /// irun's process group, given the terminal back.
    irun: libc::pid_t,
}

/// The terminal, handed to a task's process group until this is dropped.
pub(crate) struct Handover {
    irun: libc::pid_t,
    /// The terminal's modes before the task could change them (none if they could not be read).
    modes: Option<libc::termios>,
}

/// irun's terminal, if its stdin is one and irun is in the foreground there (not started with `&`).
pub(crate) fn foreground() -> Option<Terminal> {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read the state of this process and of descriptor 0.
    unsafe {
        let irun = libc::getpgrp();
        (libc::isatty(0) == 1 && libc::tcgetpgrp(0) == irun).then_some(Terminal { irun })
    }
}

/// Whether irun's session has a controlling terminal (which its tasks share). `/dev/tty` opens only then.
pub(crate) fn controlling() -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOCTTY).open("/dev/tty").is_ok()
}

impl Terminal {
    /// Make `pgid` the terminal's foreground group, and continue it in case it was stopped reading the terminal
    /// before it had it.
    pub(crate) fn hand_to(self, pgid: i32) -> Handover {
        // SAFETY: tcgetattr writes the termios it is given; tcsetpgrp and kill take plain integers.
        let modes = unsafe {
            let mut modes: libc::termios = std::mem::zeroed();
            let modes = (libc::tcgetattr(0, &mut modes) == 0).then_some(modes);
            set_foreground(pgid);
            libc::kill(-pgid, libc::SIGCONT);
            modes
        };
        Handover { irun: self.irun, modes }
    }
}

impl Drop for Handover {
    /// irun's group takes the terminal back, with its modes as they were (the task may have left it raw).
    fn drop(&mut self) {
        set_foreground(self.irun);
        if let Some(modes) = &self.modes {
            // SAFETY: tcsetattr reads the termios it is given.
            unsafe { libc::tcsetattr(0, libc::TCSADRAIN, modes) };
        }
    }
}

/// tcsetpgrp on irun's terminal, with SIGTTOU blocked: from the background (while a task has the terminal), the
/// kernel would otherwise stop irun for asking. (irun's runtime runs on this thread; its other threads block
/// every signal.)
fn set_foreground(pgid: libc::pid_t) {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    let blocked = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_ok();
    // SAFETY: tcsetpgrp takes plain integers.
    unsafe { libc::tcsetpgrp(0, pgid) };
    if blocked {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}
