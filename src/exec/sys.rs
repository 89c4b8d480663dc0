//! The system calls the process layer makes that the standard library does not wrap, in one place: through nix's
//! safe wrappers where it has them, raw where it does not (pidfds, a wait that keeps the raw status, a shared
//! mapping, posix_spawn with a directory to change to). The child side of the cheap clone is in [`super::vfork`]:
//! it must be raw system calls only.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitStatus;
use std::sync::atomic::AtomicI32;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// A pidfd for a process (where the kernel has them): readable once it has exited.
pub(crate) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (or -1); nothing else is touched.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a descriptor this process now owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A descriptor registered with the reactor, to wait for it to become readable (a pidfd: its process exited).
pub(crate) fn watch_readable(fd: OwnedFd) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the same descriptor) until the AsyncFd is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

/// A descriptor registered with the reactor, to wait for priority events on it (a cgroup's `cgroup.events`: its
/// contents changed).
pub(crate) fn watch_priority(fd: OwnedFd) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: as in `watch_readable`.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::PRIORITY) }.ok()
}

/// Block until `fd` has a priority event (a cgroup's `cgroup.events` changed) or `timeout` has passed.
pub(crate) fn wait_priority(fd: BorrowedFd<'_>, timeout: std::time::Duration) {
    let mut polled = [PollFd::new(fd, PollFlags::POLLPRI)];
    let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
    let _ = poll(&mut polled, ms);
}

/// Reap child `pid` if it has exited (its status as the standard library reports it), without waiting.
pub(crate) fn try_reap(pid: i32) -> io::Result<Option<ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into the integer it is given.
        match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
            0 => return Ok(None),
            r if r == pid => return Ok(Some(ExitStatus::from_raw(status))),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The signal that stopped child `pid`, if it is stopped now (left to be reported again: nothing is reaped).
pub(crate) fn stopped_by(pid: i32) -> Option<nix::sys::signal::Signal> {
    // SAFETY: waitid writes into the siginfo it is given, which is zeroed first (si_pid stays 0 if nothing is to
    // report); the accessors read fields the kernel filled in for a CLD_STOPPED report.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT;
        if libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) != 0 || info.si_pid() != pid {
            return None;
        }
        (info.si_code == libc::CLD_STOPPED).then(|| nix::sys::signal::Signal::try_from(info.si_status()).ok())?
    }
}

/// Wait for child `pid`, which has exited or is about to, and forget its status.
pub(crate) fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

/// A pipe, close-on-exec (the child's copy is made by `dup2`, which clears it), both ends blocking.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Make a descriptor non-blocking. (A new pipe has no other status flags to keep, so none are read first.)
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) {
    let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

/// Read what is there now into `buf`; `WouldBlock` when nothing is.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(fd, buf)?)
}

/// For each descriptor: whether it is at end-of-file with nothing left to read (the writer closed it), asked of
/// the kernel once for all of them, without waiting.
pub(crate) fn hung_up(fds: &[BorrowedFd<'_>]) -> Vec<bool> {
    let mut polled: Vec<PollFd> = fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
    if poll(&mut polled, PollTimeout::ZERO).is_err() {
        return vec![false; fds.len()];
    }
    polled
        .iter()
        .map(|p| p.revents().is_some_and(|r| !r.contains(PollFlags::POLLIN) && r.contains(PollFlags::POLLHUP)))
        .collect()
}

/// Inherited as ignored, SIGCHLD would make the kernel reap irun's children (and its tasks' children) itself:
/// waiting for them would fail. Its default is what every program expects.
pub(crate) fn default_sigchld() {
    // SAFETY: setting a disposition to SIG_DFL installs no handler, so no code runs in signal context.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGCHLD, nix::sys::signal::SigHandler::SigDfl) };
}

/// A new memfd of `len` bytes (close-on-exec).
pub(crate) fn memfd(name: &CStr, len: usize) -> Option<OwnedFd> {
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC).ok()?;
    nix::unistd::ftruncate(&fd, len as libc::off_t).ok()?;
    Some(fd)
}

/// `count` atomic integers shared through `fd` with another process, read-only unless `writable`, for the life of
/// this process.
pub(crate) fn map_shared(fd: BorrowedFd<'_>, count: usize, writable: bool) -> Option<&'static [AtomicI32]> {
    let len = count * std::mem::size_of::<AtomicI32>();
    let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
    // SAFETY: mmap on a descriptor we hold; the mapping is never unmapped, so a 'static slice over it stays valid,
    // and AtomicI32 has the size and alignment of the i32s the other process reads and writes.
    unsafe {
        let at = libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_fd().as_raw_fd(), 0);
        if at == libc::MAP_FAILED {
            return None;
        }
        Some(std::slice::from_raw_parts(at as *const AtomicI32, count))
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// glibc's `posix_spawn`: `program` with `argv` and `envp` (null-terminated arrays), stdin/stdout/stderr from
/// `stdio`, in `cwd`, as the leader of a new process group, with no signal blocked and SIGPIPE and SIGCHLD at their
/// defaults. Its pid.
pub(crate) fn posix_spawn(
    program: &CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdio: [RawFd; 3],
    cwd: Option<&CStr>,
) -> io::Result<i32> {
    // SAFETY: the attribute and file-action objects are initialised before use and destroyed on every path; every
    // pointer passed (program, argv, envp, cwd) points into values that outlive the call, and argv/envp are
    // null-terminated. posix_spawn keeps nothing it is given after it returns.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(e);
        }
        let result = (|| {
            for (target, fd) in stdio.into_iter().enumerate() {
                check(libc::posix_spawn_file_actions_adddup2(&mut actions, fd, target as libc::c_int))?;
            }
            if let Some(dir) = cwd {
                check(libc::posix_spawn_file_actions_addchdir_np(&mut actions, dir.as_ptr()))?;
            }
            // Its own process group (0: its pid); no blocked signals; SIGPIPE back to its default (Rust ignores it),
            // and SIGCHLD too.
            let flags = libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            check(libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short))?;
            check(libc::posix_spawnattr_setpgroup(&mut attr, 0))?;
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::posix_spawnattr_setsigmask(&mut attr, &set))?;
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            check(libc::posix_spawnattr_setsigdefault(&mut attr, &set))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                program.as_ptr(),
                &actions,
                &attr,
                argv as *const *mut libc::c_char,
                envp as *const *mut libc::c_char,
            ))?;
            Ok(pid)
        })();
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_whose_writer_closed_is_hung_up_and_an_open_one_is_not() {
        let (closed_r, closed_w) = pipe().unwrap();
        let (open_r, _open_w) = pipe().unwrap();
        drop(closed_w);
        assert_eq!(hung_up(&[closed_r.as_fd(), open_r.as_fd()]), [true, false]);
    }

    #[test]
    fn a_nonblocking_read_of_an_empty_pipe_would_block() {
        let (r, _w) = pipe().unwrap();
        set_nonblocking(r.as_fd());
        let err = read(r.as_fd(), &mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_shared_mapping_is_seen_through_a_second_mapping() {
        let fd = memfd(c"irun-test", 4 * 16).unwrap();
        let writer = map_shared(fd.as_fd(), 16, true).unwrap();
        let reader = map_shared(fd.as_fd(), 16, false).unwrap();
        writer[3].store(42, std::sync::atomic::Ordering::Release);
        assert_eq!(reader[3].load(std::sync::atomic::Ordering::Acquire), 42);
    }
}
