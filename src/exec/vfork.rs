//! Starting a child the way `posix_spawn` does, with less work per child: a `clone` that shares irun's memory
//! (CLONE_VM), on a stack kept for the purpose (glibc maps and unmaps one per call), and, in the child, only the
//! signal dispositions that need it reset (glibc queries all 64). A child that has a cgroup starts in it (`clone3`
//! with CLONE_INTO_CGROUP, on x86-64). Falls back to `posix_spawn` (see the caller) where `clone` fails.
//!
//! irun either waits until the child has exec'ed, as `vfork` and `posix_spawn` do (the exec's error is then the
//! spawn's), or goes on at once (where [`LATER`]): the child then runs beside irun, on a stack of its own, and what
//! it reads until its exec is kept with that stack in an [`Exec`], which says how the exec went once
//! the kernel has cleared the child's word (CLONE_CHILD_CLEARTID: it does so when the child's exec has replaced its
//! memory, or when it exits). Waiting is what `posix_spawn` does, and costs most when CPUs are scarce: irun can do
//! nothing, not even start the next task when another ends, until the new child has been scheduled and exec'ed.
//! Not waiting, irun does itself what it relies on the child to have done before anything can be asked of it: it
//! makes it its group's leader (and, where the child joins its cgroup by itself, moves it in), see [`settle`]. A
//! program the kernel cannot execute (ENOEXEC) is run with `/bin/sh` by the child itself, waited for or not.
//!
//! The child shares irun's memory until it execs: it runs only [`child`], which makes plain system calls (no
//! allocation, no locks, nothing that can panic, and no glibc wrapper, which would set the `errno` it shares with
//! irun's thread), on its own stack, and no handler of irun's may run in it (it would act on irun's memory): `clone3`
//! starts it with every handler reset by the kernel; the older `clone` needs every signal irun catches blocked
//! until the child has reset their dispositions to the defaults.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::libc;

/// What the child needs, in memory it shares with irun (kept until the child has exec'ed or failed).
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
    /// `sh PROGRAM ARGS...` (null-terminated), exec'ed as `/bin/sh` if the kernel cannot execute the program itself
    /// (ENOEXEC: no `#!`, a `#!` interpreter that is itself such a file, a foreign binary), as `execvp` and a shell
    /// do. Null: no such fallback.
    shell: *const *const libc::c_char,
    /// The error that stopped the child before or at exec (0: it exec'ed).
    error: AtomicI32,
}

/// A stack for children: used by one child at a time, until it has exec'ed; kept for the next one (never unmapped).
struct Stack(*mut u8);

// SAFETY: the pointer is to a mapping owned by the program for its whole life; one child at a time uses it.
unsafe impl Send for Stack {}

const STACK_SIZE: usize = 256 * 1024;

/// Stacks no child is using.
type Stacks = Arc<Mutex<Vec<Stack>>>;

/// What the cheap clone keeps between spawns: the children's stacks, and which signals irun catches.
#[derive(Default)]
pub(crate) struct Vfork {
    stacks: Stacks,
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

/// What the child executes: `program` with `argv` and `envp` (null-terminated arrays), in `cwd` (null: irun's
/// directory); `/bin/sh` with `shell` (`sh PROGRAM ARGS...`, null: none) if the kernel cannot execute `program`
/// itself. Pointers into memory the caller keeps until the child is past its exec.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    pub(crate) program: *const libc::c_char,
    pub(crate) argv: *const *const libc::c_char,
    pub(crate) envp: *const *const libc::c_char,
    pub(crate) cwd: *const libc::c_char,
    pub(crate) shell: *const *const libc::c_char,
}

/// The shell the child falls back to (see [`Target`]), in static memory.
const SHELL: &std::ffi::CStr = c"/bin/sh";

/// Whether irun can go on at once once a child is started, before its exec, here (where the child can make its system
/// calls without glibc); elsewhere it waits for the exec.
pub(crate) const LATER: bool = cfg!(target_arch = "x86_64");

/// Memory the child reads until its exec, kept for it.
pub(crate) struct Keep {
    _memory: Box<dyn std::any::Any + Send>,
}

impl Keep {
    pub(crate) fn new(memory: impl std::any::Any + Send) -> Keep {
        Keep { _memory: Box::new(memory) }
    }
}

/// One child on its way to its exec: its plan, the word the kernel clears once it is past the exec or gone, its
/// stack, and what its plan points into. Boxed: the child has its address.
struct Slot {
    plan: Plan,
    running: AtomicU32,
    stack: Stack,
    keep: Option<Keep>,
}

/// A child irun did not wait for, until its exec: what it reads is kept here, and how the exec went can be
/// asked ([`Exec::outcome`]). Dropped before the exec is over, it waits for it (a moment: the child is making its
/// few system calls), or, if the child never gets there (stopped), leaves the memory to it for good.
pub(crate) struct Exec {
    slot: Option<Box<Slot>>,
    stacks: Stacks,
}

// SAFETY: the slot's pointers point into its own `Keep` and stack, which move with it; irun only reads its atomics.
unsafe impl Send for Exec {}
// SAFETY: as above; `&Exec` gives access to atomics only.
unsafe impl Sync for Exec {}

/// How long a dropped [`Exec`] waits for its child to get past its exec.
const DROP_PATIENCE: Duration = Duration::from_secs(1);

impl Exec {
    /// How the child's exec went: `None` while the child is not past it (after waiting up to `patience` for it).
    pub(crate) fn outcome(&self, patience: Duration) -> Option<io::Result<()>> {
        let slot = self.slot.as_ref()?;
        if !cleared(&slot.running, patience) {
            return None;
        }
        match slot.plan.error.load(Ordering::Acquire) {
            0 => Some(Ok(())),
            errno => Some(Err(io::Error::from_raw_os_error(errno))),
        }
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        if !cleared(&slot.running, DROP_PATIENCE) {
            // Still before its exec: it may yet read what the slot holds, so that is never freed.
            std::mem::forget(slot);
            return;
        }
        let Slot { stack, .. } = *slot;
        self.stacks.lock().unwrap_or_else(|e| e.into_inner()).push(stack);
    }
}

/// Whether the kernel has cleared `word` (CLONE_CHILD_CLEARTID), waiting up to `patience` for it.
fn cleared(word: &AtomicU32, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        let value = word.load(Ordering::Acquire);
        if value == 0 {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        // Woken when the kernel clears the word; looked at again every millisecond all the same.
        let left = left.min(Duration::from_millis(1));
        let timeout = libc::timespec { tv_sec: 0, tv_nsec: left.subsec_nanos() as _ };
        // SAFETY: a futex wait on a word of this process, with a timeout; it returns at once if the word no longer
        // holds `value`. Not FUTEX_PRIVATE: the kernel's wake when it clears the word is a shared one.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, value, &timeout) };
    }
}

/// A started child: its pid, a pidfd for it (kernels since 5.2 make one with the child), and, if irun went on
/// without waiting for its exec, its way to it.
pub(crate) struct Started {
    pub(crate) pid: i32,
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) exec: Option<Exec>,
}

impl Vfork {
    fn take_stack(&self) -> Option<Stack> {
        let spare = self.stacks.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.or_else(map_stack)
    }

    fn give_back(&self, stack: Stack) {
        self.stacks.lock().unwrap_or_else(|e| e.into_inner()).push(stack);
    }
}

/// Start `target` with stdin/stdout/stderr from `stdio`, as the leader of a new process group, in `cgroup` (if any).
/// With something `kept` (what the target's pointers point into) and where [`LATER`], irun goes on at once and the
/// returned [`Exec`] takes it until the child is past its exec; otherwise irun waits for the exec, and its error is
/// the spawn's. `Err(None)` means this way of starting is not available here (what is `kept` is left to the caller):
/// use `posix_spawn`.
pub(crate) fn spawn(
    vfork: &Vfork,
    target: Target,
    stdio: [RawFd; 3],
    cgroup: Option<Cgroup>,
    kept: &mut Option<Keep>,
) -> Result<Started, Option<io::Error>> {
    let caught = caught_signals(&vfork.caught).ok_or(None)?;
    let reset = caught | bit(libc::SIGPIPE) | bit(libc::SIGCHLD);
    let plan = Plan {
        program: target.program,
        argv: target.argv,
        envp: target.envp,
        stdio,
        cwd: target.cwd,
        cgroup: cgroup.map_or(-1, |c| c.procs),
        reset,
        shell: target.shell,
        error: AtomicI32::new(0),
    };
    let later = LATER && kept.is_some();
    let stack = vfork.take_stack().ok_or(None)?;
    let keep = if later { kept.take() } else { None };
    let mut slot = Box::new(Slot { plan, running: AtomicU32::new(1), stack, keep });
    let mut pidfd: libc::c_int = -1;
    // SAFETY: no handler runs in the child before it has reset the dispositions (see `clone_child`). The plan, the
    // stack and what the plan points into outlive the child's use of them: with CLONE_VFORK this thread is suspended
    // until the child has exec'ed or exited (and the caller keeps them until then); without, the slot keeps them
    // until the kernel has cleared the slot's word, which it does only then (see `Exec`).
    let pid = unsafe {
        let pid = clone_child(vfork, &mut slot, cgroup, &mut pidfd, later, caught);
        if pid < 0 {
            let clone_error = io::Error::last_os_error();
            // No child: what it would have read goes back to the caller.
            *kept = slot.keep.take();
            vfork.give_back(slot.stack);
            // A kernel without these flags (or without clone here): posix_spawn will do.
            let unsupported = matches!(clone_error.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL | libc::EPERM));
            return Err(Some(clone_error).filter(|_| !unsupported));
        }
        pid
    };
    // SAFETY: with CLONE_PIDFD the kernel wrote a new descriptor (close-on-exec) that this process now owns.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    if later {
        // The child may not have run yet: what it would do first for irun to rely on, irun does too.
        settle(pid, (slot.plan.cgroup >= 0).then_some(slot.plan.cgroup));
        let exec = Exec { slot: Some(slot), stacks: vfork.stacks.clone() };
        return Ok(Started { pid, pidfd, exec: Some(exec) });
    }
    let Slot { plan, stack, .. } = *slot;
    vfork.give_back(stack);
    match plan.error.load(Ordering::Acquire) {
        0 => Ok(Started { pid, pidfd, exec: None }),
        errno => {
            // It exited (127) without exec'ing: reap it, so no zombie is left.
            super::sys::reap(pid);
            Err(Some(io::Error::from_raw_os_error(errno)))
        }
    }
}

/// For a child irun did not wait for, which may not have run yet: put it in its cgroup (`procs`, where it joins by
/// itself) and make it the leader of its process group, as it does itself before it execs (a shell does both for
/// its jobs, in the parent and in the child, for the same reason). Until then a signal to the group, or to the
/// cgroup's members, would miss it: a stop sent as the task starts would be lost. Whichever of irun and the child
/// comes first does it, the other's call changes nothing; errors are left to the child to find (or it is past its
/// exec, or gone, already).
fn settle(pid: i32, procs: Option<RawFd>) {
    if let Some(procs) = procs {
        // (Moving a process may keep irun waiting for the kernel a moment: see `clone_child`. Only where clone3 was
        // refused.)
        let pid = pid.to_string();
        // SAFETY: a write of bytes from this string to a descriptor the caller keeps open.
        unsafe { libc::write(procs, pid.as_ptr().cast(), pid.len()) };
    }
    // SAFETY: setpgid takes plain integers.
    unsafe { libc::setpgid(pid, pid) };
}

/// The clone itself: into the child's cgroup with `clone3` where it can, else with `clone` (the child then joins its
/// cgroup by itself); suspended until the child's exec unless `later`, with the slot's word cleared by the kernel at
/// the exec (or the child's exit) if `later`. The child's pid, or -1 with errno set.
///
/// No handler may run in the child, which shares irun's memory: `clone3` starts it with every handler reset
/// (CLONE_CLEAR_SIGHAND), so it has only SIGPIPE, which irun ignores, to set back; with `clone`, every signal irun
/// catches (`caught`) is blocked around the clone, and the child resets them all before it unblocks them.
///
/// # Safety
/// As for `clone` with CLONE_VM: the slot, its stack and what its plan points into valid until the child has
/// exec'ed or exited.
unsafe fn clone_child(
    vfork: &Vfork,
    slot: &mut Slot,
    cgroup: Option<Cgroup>,
    pidfd: &mut libc::c_int,
    later: bool,
    caught: u64,
) -> libc::c_int {
    let wait = if later { libc::CLONE_CHILD_CLEARTID } else { libc::CLONE_VFORK };
    let flags = libc::CLONE_VM | libc::CLONE_PIDFD | wait;
    let running = slot.running.as_ptr();
    let base = slot.stack.0;
    let plan = &mut slot.plan;
    if let Some(c) = cgroup.filter(|_| !vfork.no_clone3.load(Ordering::Relaxed)) {
        // Started in its cgroup (no move afterwards: moving a process costs the kernel an RCU grace period,
        // milliseconds, when nothing else moved lately). The child then need not join it itself.
        plan.cgroup = -1;
        let reset = std::mem::replace(&mut plan.reset, bit(libc::SIGPIPE));
        // SAFETY: as for this function.
        let pid = unsafe { clone3_into(plan, base, c.handle, pidfd, flags, running) };
        if pid >= 0 {
            return pid;
        }
        plan.reset = reset;
        // Not here (an older kernel, another architecture): the child joins its cgroup itself, from now on. (Any
        // other error, such as a cgroup's process limit, is for this child alone: it joins by itself this time.)
        let refused = io::Error::last_os_error().raw_os_error();
        if matches!(refused, Some(libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EINVAL)) {
            vfork.no_clone3.store(true, Ordering::Relaxed);
        }
        plan.cgroup = c.procs;
    }
    // The stack grows down from its (16-byte aligned) top.
    // SAFETY: as for this function; the top is the end of the mapping. glibc's clone takes the pidfd's address as
    // the parent's tid, then the tls (none) and the word to clear. The mask is restored right after (which leaves
    // errno as the clone set it).
    unsafe {
        let mut old: u64 = 0;
        set_mask(&spawn_mask(caught), &mut old);
        let pid = libc::clone(
            child,
            base.add(STACK_SIZE).cast(),
            flags | libc::SIGCHLD,
            (plan as *const Plan).cast_mut().cast(),
            pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_void>(),
            running,
        );
        set_mask(&old, std::ptr::null_mut());
        pid
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
/// The child starts with every signal irun handles back at its default disposition (Linux 5.5, before
/// CLONE_INTO_CGROUP).
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// As the `clone` above (with its `flags`, and `running` the word to clear), but with `clone3` and CLONE_INTO_CGROUP:
/// the child starts in the cgroup whose folder is open as `cgroup`. glibc has no `clone3` that runs a function on a
/// new stack, so this is the few instructions its `__clone3` has: in the child (on the stack at `base`, nothing of the
/// parent's frame), call [`child`] with `plan` and exit with what it returns. The child's pid, or -1 with errno set.
///
/// # Safety
/// As for [`clone_child`].
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_into(
    plan: &Plan,
    base: *mut u8,
    cgroup: RawFd,
    pidfd: &mut libc::c_int,
    flags: libc::c_int,
    running: *mut u32,
) -> libc::c_int {
    let args = CloneArgs {
        flags: flags as u64 | CLONE_INTO_CGROUP | CLONE_CLEAR_SIGHAND,
        pidfd: pidfd as *mut libc::c_int as u64,
        child_tid: running as u64,
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
unsafe fn clone3_into(_: &Plan, _: *mut u8, _: RawFd, _: &mut libc::c_int, _: libc::c_int, _: *mut u32) -> libc::c_int {
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
    if let Some((mask, at)) = *cached
        && at.elapsed() < CAUGHT_FOR
    {
        return Some(mask);
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
    let mask = u64::from_str_radix(hex.trim(), 16).ok()?;
    *cached = Some((mask, std::time::Instant::now()));
    Some(mask)
}

/// A system call that leaves `errno` alone: the child runs on irun's thread-local storage, and beside irun when irun
/// does not wait for its exec. Its result, or `-errno`.
///
/// # Safety
/// As for the system call `number` with these arguments.
#[cfg(target_arch = "x86_64")]
unsafe fn raw(number: libc::c_long, args: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the caller's; the syscall instruction changes rax (the result), rcx and r11 only.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Elsewhere through glibc (which sets `errno`: irun always waits for the exec there, suspended meanwhile).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw(number: libc::c_long, args: [usize; 4]) -> isize {
    // SAFETY: the caller's.
    let ret = unsafe { libc::syscall(number, args[0], args[1], args[2], args[3]) };
    // SAFETY: this thread's errno, read right after the call that set it.
    if ret < 0 { -(unsafe { *libc::__errno_location() } as isize) } else { ret as isize }
}

/// The child, between `clone` and `execve`: system calls only (see [`raw`]), as it shares irun's memory.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Plan` irun keeps alive until the child is past its exec; everything below is a system call
    // on values from it, and no handler can run (every signal that has one is blocked until its disposition is the
    // default).
    unsafe {
        let plan = &*(arg as *const Plan);
        let fail = |ret: isize| {
            plan.error.store(if ret < 0 { -ret as i32 } else { libc::EINVAL }, Ordering::Release);
            127
        };
        // Into the task's cgroup first: nothing can start before it is in.
        if plan.cgroup >= 0 {
            let ret = raw(libc::SYS_write, [plan.cgroup as usize, b"0".as_ptr() as usize, 1, 0]);
            if ret != 1 {
                return fail(ret);
            }
        }
        // The kernel's `struct sigaction`, all zeroes: SIG_DFL, no flags, no mask.
        let default = [0u64; 4];
        let mut sig = 1;
        while sig <= 64 {
            if plan.reset & bit(sig) != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
                raw(libc::SYS_rt_sigaction, [sig as usize, default.as_ptr() as usize, 0, 8]);
            }
            sig += 1;
        }
        let ret = raw(libc::SYS_setpgid, [0, 0, 0, 0]);
        if ret != 0 {
            return fail(ret);
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            // dup3 onto itself is refused, and would keep close-on-exec anyway: clear it instead.
            let ret = if fd as usize == target {
                raw(libc::SYS_fcntl, [fd as usize, libc::F_SETFD as usize, 0, 0])
            } else {
                raw(libc::SYS_dup3, [fd as usize, target, 0, 0])
            };
            if ret < 0 {
                return fail(ret);
            }
        }
        if !plan.cwd.is_null() {
            let ret = raw(libc::SYS_chdir, [plan.cwd as usize, 0, 0, 0]);
            if ret != 0 {
                return fail(ret);
            }
        }
        let none = 0u64;
        raw(libc::SYS_rt_sigprocmask, [libc::SIG_SETMASK as usize, &none as *const u64 as usize, 0, 8]);
        let ret = raw(libc::SYS_execve, [plan.program as usize, plan.argv as usize, plan.envp as usize, 0]);
        if ret == -(libc::ENOEXEC as isize) && !plan.shell.is_null() {
            // Not a program the kernel runs: the shell runs it (if it cannot, the program's own error is told).
            raw(libc::SYS_execve, [SHELL.as_ptr() as usize, plan.shell as usize, plan.envp as usize, 0]);
        }
        fail(ret)
    }
}

#[cfg(test)]
mod tests;
