//! Starting a child the way `posix_spawn` does, with less work per child: a `clone` that shares irun's memory and
//! suspends irun until the child has exec'ed (CLONE_VM | CLONE_VFORK), on a stack kept for the purpose (glibc maps
//! and unmaps one per call), and, in the child, only the signal dispositions that need it reset (glibc queries all
//! 64). A child that has a cgroup starts in it (`clone3` with CLONE_INTO_CGROUP, on x86-64). Falls back to
//! `posix_spawn` (see the caller) where `clone` fails.
//!
//! The child shares irun's memory until it execs: it runs only [`child`], which makes plain system calls (no
//! allocation, no locks, nothing that can panic), on its own stack, with every signal irun catches blocked until
//! their dispositions have been reset to the defaults (a handler must never run in the child: it would act on irun's
//! memory).

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

/// What the child needs, in memory it shares with irun (which waits until the child has exec'ed or failed).
#[repr(C)]
struct Plan {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdio: [RawFd; 3],
    /// Null: stay in irun's directory.
    cwd: *const libc::c_char,
    /// A cgroup's `cgroup.procs`, open for writing, for the child to join before anything else (-1: none).
    cgroup: RawFd,
    /// Signals (bit `n - 1` for signal `n`) to set back to their default disposition before anything is unblocked.
    reset: u64,
    /// The error that stopped the child before or at exec (0: it exec'ed).
    error: AtomicI32,
}

/// The child's stack: one, reused, since irun is suspended while a child uses it (and the lock keeps other threads
/// out). Never freed.
struct Stack(*mut u8);

// SAFETY: the pointer is to a mapping owned by the program for its whole life; access is serialised by the mutex.
unsafe impl Send for Stack {}

const STACK_SIZE: usize = 256 * 1024;

/// What the cheap clone keeps between spawns: the child's stack, and which signals irun catches.
#[derive(Default)]
pub(crate) struct Vfork {
    stack: Mutex<Option<Stack>>,
    /// The signals irun catches, and when that was read.
    caught: Mutex<Option<(u64, std::time::Instant)>>,
    /// `clone3` with CLONE_INTO_CGROUP was refused here once: the child joins its cgroup itself.
    no_clone3: std::sync::atomic::AtomicBool,
}

/// The cgroup a child starts in: its folder (O_PATH), and its `cgroup.procs` open for writing.
#[derive(Clone, Copy)]
pub(crate) struct Cgroup {
    pub(crate) handle: RawFd,
    pub(crate) procs: RawFd,
}

/// Start `program` with `argv` and `envp` (null-terminated arrays), stdin/stdout/stderr from `stdio`, in `cwd`, as
/// the leader of a new process group, in `cgroup` (if any). Returns the child's pid and a pidfd for it (kernels
/// since 5.2 make one with the child), or why it could not be started (the exec's error included). `Err(None)` means this way of starting is
/// not available here: use `posix_spawn`.
pub(crate) fn spawn(
    vfork: &Vfork,
    program: &CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdio: [RawFd; 3],
    cwd: Option<&CStr>,
    cgroup: Option<Cgroup>,
) -> Result<(i32, Option<OwnedFd>), Option<io::Error>> {
    let caught = caught_signals(&vfork.caught).ok_or(None)?;
    let reset = caught | bit(libc::SIGPIPE) | bit(libc::SIGCHLD);
    let plan = Plan {
        program: program.as_ptr(),
        argv,
        envp,
        stdio,
        cwd: cwd.map_or(std::ptr::null(), CStr::as_ptr),
        cgroup: cgroup.map_or(-1, |c| c.procs),
        reset,
        error: AtomicI32::new(0),
    };
    let mut stack = vfork.stack.lock().unwrap_or_else(|e| e.into_inner());
    if stack.is_none() {
        *stack = Some(map_stack().ok_or(None)?);
    }
    let base = stack.as_ref().map(|s| s.0).ok_or(None)?;
    let mut pidfd: libc::c_int = -1;
    let mut plan = plan;
    // SAFETY: every signal that has a handler is blocked around the clone (restored right after), so no handler
    // runs in the child before it has reset the dispositions; `plan` and the stack outlive the child's use of them,
    // because with CLONE_VFORK this thread is suspended until the child has exec'ed or exited.
    let pid = unsafe {
        let blocked = spawn_mask(caught);
        let mut old: u64 = 0;
        set_mask(&blocked, &mut old);
        let pid = clone_child(vfork, &mut plan, base, cgroup, &mut pidfd);
        let clone_error = io::Error::last_os_error();
        set_mask(&old, std::ptr::null_mut());
        if pid < 0 {
            // A kernel without these flags (or without clone here): posix_spawn will do.
            let unsupported = matches!(clone_error.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL | libc::EPERM));
            return Err(Some(clone_error).filter(|_| !unsupported));
        }
        pid
    };
    drop(stack);
    // SAFETY: with CLONE_PIDFD the kernel wrote a new descriptor (close-on-exec) that this process now owns.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    match plan.error.load(Ordering::Acquire) {
        0 => Ok((pid, pidfd)),
        errno => {
            // It exited (127) without exec'ing: reap it, so no zombie is left.
            super::sys::reap(pid);
            Err(Some(io::Error::from_raw_os_error(errno)))
        }
    }
}

/// The clone itself: into the child's cgroup with `clone3` where it can, else with `clone` (the child then joins its
/// cgroup by itself). The child's pid, or -1 with errno set.
///
/// # Safety
/// As for `clone` with CLONE_VM | CLONE_VFORK: the signals of [`spawn_mask`] blocked; `plan` and the stack at `base`
/// valid until the child has exec'ed or exited.
unsafe fn clone_child(
    vfork: &Vfork,
    plan: &mut Plan,
    base: *mut u8,
    cgroup: Option<Cgroup>,
    pidfd: &mut libc::c_int,
) -> libc::c_int {
    if let Some(c) = cgroup.filter(|_| !vfork.no_clone3.load(Ordering::Relaxed)) {
        // Started in its cgroup (no move afterwards: moving a process costs the kernel an RCU grace period,
        // milliseconds, when nothing else moved lately). The child then need not join it itself.
        plan.cgroup = -1;
        // SAFETY: as for this function.
        let pid = unsafe { clone3_into(plan, base, c.handle, pidfd) };
        if pid >= 0 {
            return pid;
        }
        // Not here (an older kernel, another architecture): the child joins its cgroup itself, from now on. (Any
        // other error, such as a cgroup's process limit, is for this child alone: it joins by itself this time.)
        let refused = io::Error::last_os_error().raw_os_error();
        if matches!(refused, Some(libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EINVAL)) {
            vfork.no_clone3.store(true, Ordering::Relaxed);
        }
        plan.cgroup = c.procs;
    }
    // The stack grows down from its (16-byte aligned) top.
    // SAFETY: as for this function; the top is the end of the mapping.
    unsafe {
        libc::clone(
            child,
            base.add(STACK_SIZE).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            (plan as *const Plan).cast_mut().cast(),
            pidfd as *mut libc::c_int,
        )
    }
}

/// A new stack for the children (never unmapped), or none if no memory could be mapped.
fn map_stack() -> Option<Stack> {
    // SAFETY: an anonymous private mapping, checked below.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    (at != libc::MAP_FAILED).then(|| Stack(at.cast()))
}

/// `clone3(2)`'s arguments (the kernel's `struct clone_args`, as of 5.7).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// As the `clone` above, but with `clone3` and CLONE_INTO_CGROUP: the child starts in the cgroup whose folder is open
/// as `cgroup`. glibc has no `clone3` that runs a function on a new stack, so this is the few instructions its
/// `__clone3` has: in the child (on the stack at `base`, nothing of the parent's frame), call [`child`] with `plan`
/// and exit with what it returns. The child's pid, or -1 with errno set.
///
/// # Safety
/// As for `clone` with CLONE_VM | CLONE_VFORK: `plan` and the stack stay valid until the child has exec'ed or exited
/// (this thread is suspended until then), and the signals of [`spawn_mask`] are blocked.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_into(plan: &Plan, base: *mut u8, cgroup: RawFd, pidfd: &mut libc::c_int) -> libc::c_int {
    let args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64 | CLONE_INTO_CGROUP,
        pidfd: pidfd as *mut libc::c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: STACK_SIZE as u64,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup as u64,
    };
    let ret: i64;
    let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = child;
    // SAFETY: see above. In the parent, only rax, rcx and r11 change (the syscall's clobbers); the child never comes
    // back here: it runs `child` on its own stack (the kernel points rsp at its 16-byte aligned top) and exits.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") (plan as *const Plan).cast_mut().cast::<libc::c_void>(),
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    if ret < 0 {
        // SAFETY: this thread's errno.
        unsafe { *libc::__errno_location() = -ret as libc::c_int };
        return -1;
    }
    ret as libc::c_int
}

/// Elsewhere the child joins its cgroup itself (see [`child`]).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_into(_: &Plan, _: *mut u8, _: RawFd, _: &mut libc::c_int) -> libc::c_int {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    -1
}

/// Set this thread's signal mask, every signal included (glibc's own functions leave out the ones it uses
/// internally, which must be blocked here too).
///
/// # Safety
/// `old` is null or points to a writable u64.
unsafe fn set_mask(new: *const u64, old: *mut u64) {
    // SAFETY: the kernel's signal set is 64 bits; the pointers are valid (caller).
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, new, old, 8) };
}

/// The signals blocked while a child is started: all of them, but SIGCHLD when irun has no handler for it. Blocked,
/// an ignored SIGCHLD would be kept pending (another child may exit meanwhile: at -j2, about every other spawn) and
/// delivered, for nothing, once unblocked; unblocked and not caught, it is dropped as it is sent. (The child itself
/// gets none: it has no children before it execs.)
fn spawn_mask(caught: u64) -> u64 {
    if caught & bit(libc::SIGCHLD) == 0 { !bit(libc::SIGCHLD) } else { !0 }
}

const fn bit(sig: libc::c_int) -> u64 {
    1 << (sig - 1)
}

/// How long the set of caught signals is trusted. irun installs its handlers before it starts anything; the only
/// one it may add later (SIGCHLD, where there are no pidfds) is reset in every child anyway.
const CAUGHT_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The signals irun catches (has a handler for), from `SigCgt` in /proc/self/status, read at most once a second
/// (instead of asking for each of the 64 dispositions at every spawn, as glibc does).
fn caught_signals(cache: &Mutex<Option<(u64, std::time::Instant)>>) -> Option<u64> {
    let mut cached = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((mask, at)) = *cached {
        if at.elapsed() < CAUGHT_FOR {
            return Some(mask);
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
    let mask = u64::from_str_radix(hex.trim(), 16).ok()?;
    *cached = Some((mask, std::time::Instant::now()));
    Some(mask)
}

/// The child, between `clone` and `execve`. Plain system calls only: it shares irun's memory.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Plan` irun keeps alive while it is suspended; everything below is a system call on
    // values from it, and no handler can run (every signal that has one is blocked until its disposition is the
    // default).
    unsafe {
        let plan = &*(arg as *const Plan);
        let fail = |plan: &Plan| {
            let errno = *libc::__errno_location();
            plan.error.store(if errno == 0 { libc::EINVAL } else { errno }, Ordering::Release);
            127
        };
        // Into the task's cgroup first: irun is suspended until the exec, so nothing can start before it is in.
        if plan.cgroup >= 0 && libc::write(plan.cgroup, b"0".as_ptr().cast(), 1) != 1 {
            return fail(plan);
        }
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        let mut sig = 1;
        while sig <= 64 {
            if plan.reset & bit(sig) != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
            sig += 1;
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(plan);
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            let target = target as libc::c_int;
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let done = if fd == target { libc::fcntl(fd, libc::F_SETFD, 0) } else { libc::dup2(fd, target) };
            if done < 0 {
                return fail(plan);
            }
        }
        if !plan.cwd.is_null() && libc::chdir(plan.cwd) != 0 {
            return fail(plan);
        }
        set_mask(&0, std::ptr::null_mut());
        libc::execve(plan.program, plan.argv, plan.envp);
        fail(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawn_blocks_every_signal_but_sigchld_unless_sigchld_is_caught() {
        let (chld, int) = (bit(libc::SIGCHLD), bit(libc::SIGINT));
        assert_eq!(spawn_mask(int), !chld);
        assert_eq!(spawn_mask(int | chld), !0);
    }
}
