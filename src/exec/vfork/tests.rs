//! The cheap clone: what the child does before irun has looked at it, and what it reads.

use std::os::fd::AsRawFd;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, getpgid};

use super::*;
use crate::exec::cgroup::Frozen;

#[test]
fn a_spawn_blocks_every_signal_but_sigchld_unless_sigchld_is_caught() {
    let (chld, int) = (bit(libc::SIGCHLD), bit(libc::SIGINT));
    assert_eq!(spawn_mask(int), !chld);
    assert_eq!(spawn_mask(int | chld), !0);
}

/// Where a child irun does not wait for can be held before it runs at all: irun's own cgroups, one of them frozen.
/// None elsewhere (where irun waits for the exec, a frozen child would hold it for good).
fn frozen() -> Option<Frozen> {
    if !LATER {
        return None;
    }
    let frozen = Frozen::new();
    if frozen.is_none() {
        eprintln!("not run: irun cannot make cgroups here");
    }
    frozen
}

/// `/bin/true`'s argument array, which ends in the empty environment: static strings only.
struct True(Box<[*const libc::c_char; 2]>);

// SAFETY: the pointers point to a static string (or are null).
unsafe impl Send for True {}

/// Start `/bin/true` in `frozen`'s cgroup without waiting for its exec: the child runs nothing until thawed. With
/// `no_clone3`, as where `clone3` is refused: it is started outside and joins its cgroup itself.
fn start_frozen(frozen: &Frozen, no_clone3: bool) -> Started {
    let vfork = Vfork::default();
    vfork.no_clone3.store(no_clone3, Ordering::Relaxed);
    let argv = True(Box::new([c"/bin/true".as_ptr(), std::ptr::null()]));
    let (program, envp, cwd, shell) = (argv.0[0], argv.0[1..].as_ptr(), std::ptr::null(), std::ptr::null());
    let target = Target { program, argv: argv.0.as_ptr(), envp, cwd, shell };
    let null = std::fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    let task = &frozen.task;
    let cgroup = Cgroup { handle: task.handle().as_raw_fd(), procs: task.procs().as_raw_fd() };
    let mut kept = Some(Keep::new(argv));
    spawn(&vfork, target, [fd; 3], Some(cgroup), &mut kept).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Signal `started`'s process group as a stop does, let it run, and how it ended.
fn stopped_at_once(frozen: &Frozen, started: &Started) -> WaitStatus {
    kill(Pid::from_raw(-started.pid), Signal::SIGTERM).expect("the child's process group exists");
    frozen.thaw();
    waitpid(Pid::from_raw(started.pid), None).unwrap()
}

#[test]
fn a_child_irun_does_not_wait_for_leads_its_group_before_it_runs_so_a_stop_sent_at_once_reaches_it() {
    let Some(frozen) = frozen() else { return };
    let started = start_frozen(&frozen, false);
    let pid = Pid::from_raw(started.pid);
    assert_eq!(getpgid(Some(pid)), Ok(pid), "irun made the child its group's leader: it has not run");
    assert_eq!(stopped_at_once(&frozen, &started), WaitStatus::Signaled(pid, Signal::SIGTERM, false));
}

#[test]
fn where_clone3_is_refused_irun_moves_the_child_into_its_cgroup_and_group_so_a_stop_sent_at_once_reaches_it() {
    let Some(frozen) = frozen() else { return };
    let started = start_frozen(&frozen, true);
    let pid = Pid::from_raw(started.pid);
    // Either it joined by itself (and froze there, before it could make itself its group's leader), or it has not
    // run: irun saw to both.
    assert!(frozen.task.members().contains(&started.pid), "the child is in its cgroup");
    assert_eq!(getpgid(Some(pid)), Ok(pid), "the child leads its group");
    assert_eq!(stopped_at_once(&frozen, &started), WaitStatus::Signaled(pid, Signal::SIGTERM, false));
}

#[test]
fn a_child_not_yet_past_its_exec_maps_what_irun_maps_so_the_guard_can_tell_it_is_irun_s() {
    let Some(frozen) = frozen() else { return };
    let memfd = crate::exec::sys::memfd(c"irun-test-shared", 4096).unwrap();
    crate::exec::sys::map_shared(std::os::fd::AsFd::as_fd(&memfd), 1, false).unwrap();
    let inode =
        std::os::unix::fs::MetadataExt::ino(&std::fs::File::from(memfd.try_clone().unwrap()).metadata().unwrap());
    let started = start_frozen(&frozen, false);
    let pid = Pid::from_raw(started.pid);
    let maps = |pid: i32, inode| crate::exec::procfs::maps_file(pid, "/memfd:irun-test-shared", inode);
    assert!(maps(started.pid, inode), "a child before its exec shares this process's memory");
    assert!(!maps(started.pid, inode + 1), "another file of that name is not this one");
    // A program exec'ed has memory of its own.
    let mut other = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let other_maps = maps(other.id() as i32, inode);
    let _ = other.kill();
    let _ = other.wait();
    assert!(!other_maps);
    assert_eq!(stopped_at_once(&frozen, &started), WaitStatus::Signaled(pid, Signal::SIGTERM, false));
}

extern "C" fn ignore_usr2(_: libc::c_int) {}

#[test]
fn a_child_started_in_its_cgroup_has_none_of_irun_s_handlers_before_it_runs_and_irun_blocked_nothing_for_it() {
    let Some(frozen) = frozen() else { return };
    // A handler of irun's (this test's: SIGUSR2 is no one else's here).
    let handler = nix::sys::signal::SigHandler::Handler(ignore_usr2);
    let action = nix::sys::signal::SigAction::new(
        handler,
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler does nothing.
    unsafe { nix::sys::signal::sigaction(Signal::SIGUSR2, &action) }.unwrap();
    let status_field = |pid: &str, name: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let value = status.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap();
        u64::from_str_radix(value.trim(), 16).unwrap()
    };
    assert_ne!(status_field("self", "SigCgt") & bit(libc::SIGUSR2), 0, "this process has a handler");
    let started = start_frozen(&frozen, false);
    let pid = Pid::from_raw(started.pid);
    // Frozen before it ran a single instruction: what it has, the kernel gave it at the clone.
    let child = started.pid.to_string();
    assert_eq!(status_field(&child, "SigCgt"), 0, "the kernel reset every handler (CLONE_CLEAR_SIGHAND)");
    assert_eq!(status_field(&child, "SigBlk"), 0, "irun blocked nothing around the clone");
    assert_eq!(stopped_at_once(&frozen, &started), WaitStatus::Signaled(pid, Signal::SIGTERM, false));
}
