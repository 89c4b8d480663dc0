//! Holding a process at a chosen open(2), for tests that must act at an exact point of what irun does on disk.
//!
//! A fanotify permission mark (FAN_OPEN_PERM on a directory, for the files in it) makes every open of a file there
//! wait in the kernel until this side answers. The test lets every open through until the one it wants, and acts
//! while that open is still held: the process cannot run one more instruction of its own until it is answered.
//! Closing the gate answers "allow" to every open still held. Needs CAP_SYS_ADMIN (tests run as root).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::harness::PATIENCE;

pub struct OpenGate {
    fd: OwnedFd,
}

/// An open the gate holds: of which file.
pub struct Held {
    pub path: PathBuf,
    /// The opened file as the event gave it: its number names the open until it is answered.
    _file: OwnedFd,
}

impl OpenGate {
    /// Hold every open of a file in `dir` (not below it) from now on.
    pub fn new(dir: &Path) -> OpenGate {
        let flags = libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC;
        let event_flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE) as libc::c_uint;
        // SAFETY: plain system call; the fd it returns is owned below.
        let fd = unsafe { libc::fanotify_init(flags, event_flags) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            panic!(
                "this test needs fanotify permission events, which need CAP_SYS_ADMIN (run the tests as root): \
                 fanotify_init failed: {e}"
            );
        }
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        let gate = OpenGate { fd: unsafe { OwnedFd::from_raw_fd(fd) } };
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let mask = libc::FAN_OPEN_PERM | libc::FAN_EVENT_ON_CHILD;
        // SAFETY: `path` is a valid C string for the duration of the call.
        let rc = unsafe { libc::fanotify_mark(fd, libc::FAN_MARK_ADD, mask, libc::AT_FDCWD, path.as_ptr()) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            panic!(
                "fanotify_mark on {} failed (permission events need a kernel built with \
                 CONFIG_FANOTIFY_ACCESS_PERMISSIONS): {e}",
                dir.display()
            );
        }
        gate
    }

    /// Let every open through until process `pid` opens a file for which `wanted` holds, and return with that open
    /// held. `None`: `pid` ended without such an open.
    pub fn hold(&self, pid: i32, wanted: impl Fn(&Path) -> bool) -> Option<Held> {
        // SAFETY: plain system call; the fd it returns is owned below. `pid` is an unreaped child: it names it.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(pidfd >= 0, "pidfd_open({pid}): {}", std::io::Error::last_os_error());
        // SAFETY: as above.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let timeout = PollTimeout::try_from(PATIENCE).unwrap();
        loop {
            let mut fds =
                [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN), PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let n = match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                n => n.expect("poll"),
            };
            assert!(n > 0, "process {pid} neither opened the file awaited nor ended within {PATIENCE:?}");
            let events_ready = fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
            if !events_ready {
                // It ended, and every open it made was answered (it could not end while one was held).
                return None;
            }
            let mut held = None;
            for (event_pid, file, path) in self.read_events() {
                if held.is_none() && event_pid == pid && wanted(&path) {
                    // Left unanswered: the open stays held until the gate is closed.
                    held = Some(Held { path, _file: file });
                } else {
                    self.answer(file.as_raw_fd(), libc::FAN_ALLOW);
                }
            }
            if held.is_some() {
                return held;
            }
        }
    }

    /// The events waiting: for each, who opened, the file it opened (open here, as the answer names it) and its
    /// path.
    fn read_events(&self) -> Vec<(i32, OwnedFd, PathBuf)> {
        let mut buf = [0u8; 4096];
        let n = nix::unistd::read(&self.fd, &mut buf).expect("read fanotify events");
        let mut events = Vec::new();
        let mut at = 0;
        while at + std::mem::size_of::<libc::fanotify_event_metadata>() <= n {
            // SAFETY: the kernel wrote a whole metadata record at `at`; read unaligned from the byte buffer.
            let meta: libc::fanotify_event_metadata = unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
            assert_eq!(meta.vers, libc::FANOTIFY_METADATA_VERSION, "fanotify metadata version");
            assert!(meta.fd >= 0, "fanotify event without a file (queue overflow?)");
            // SAFETY: each event carries a new fd for this process to close.
            let file = unsafe { OwnedFd::from_raw_fd(meta.fd) };
            let path = std::fs::read_link(format!("/proc/self/fd/{}", meta.fd)).unwrap_or_default();
            events.push((meta.pid, file, path));
            at += meta.event_len as usize;
        }
        events
    }

    fn answer(&self, fd: i32, response: u32) {
        let answer = libc::fanotify_response { fd, response };
        // SAFETY: `answer` is a plain struct, viewed as its bytes for the write.
        let bytes = unsafe {
            std::slice::from_raw_parts((&answer as *const libc::fanotify_response).cast::<u8>(), size_of_val(&answer))
        };
        nix::unistd::write(&self.fd, bytes).expect("answer a fanotify permission event");
    }
}
