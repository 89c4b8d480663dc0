//! Processes that left their task's process group (`setsid`, daemonising): irun is their subreaper, so once their
//! parent dies they become irun's children, and the `IRUN_OWNER` marker in their environment says which task they
//! came from. They are told to the guard as they are found, and stopped with their task or at the run's end. A
//! process re-parented to irun that is still in its task's group (or, with cgroups, in its task's cgroup, which
//! nothing leaves) has not escaped: it goes with its task.
//!
//! While its parent lives, an escapee is found by descent instead: a task's processes outside its group when it is
//! stopped ([`outside`]), which the guard looks for too.

use std::collections::HashSet;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::{Instant, sleep};

use super::guard::OWNER_VAR;
use super::table::{Children, Table};
use super::{cgroup, procfs, sys};
use crate::events::TaskName;

/// Last resort when a process ignores even SIGKILL (stuck in the kernel): give up waiting after this.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(10);

/// `now + d`, saturating instead of panicking on absurdly long durations.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30))
}

/// A process that left its task's group, as irun tells of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Orphan {
    pub(crate) pid: i32,
    /// Its name (`comm`) and its command line.
    pub(crate) program: String,
    pub(crate) command: String,
    /// Its task, from its `IRUN_OWNER` marker (none: it cleared its environment).
    pub(crate) task: Option<TaskName>,
}

/// Note a task's process group, and the marker and task of its leader (none: a probe's command).
pub(crate) fn track(children: &mut Children, pgid: i32, owner: usize, task: Option<&TaskName>) {
    children.groups.insert(pgid, task.cloned());
    if let Some(task) = task {
        children.own(owner, task.clone());
    }
}

/// The group is empty: a process in a group of that id is no longer one of a task's.
pub(crate) fn untrack(children: &mut Children, pgid: i32) {
    children.groups.remove(&pgid);
}

/// Processes that left their task's group and have just been re-parented to irun: the guard is told about them (so
/// they die with irun even if it is killed), and they are returned so irun can say so. The run's end stops them.
/// One still in its task's group, or in the run's cgroup, has left nothing: it goes with its task, unsaid.
pub(crate) fn adopt_orphans(table: &Table) -> Vec<Orphan> {
    let mut new = Vec::new();
    for (pid, stat) in adopted(table) {
        {
            let children = table.children();
            if children.adopted.contains(&pid) || children.groups.contains_key(&stat.pgrp) {
                continue;
            }
        }
        if table.cgroups.as_ref().is_some_and(|c| cgroup::in_run(pid, c.dir())) {
            continue;
        }
        let task = procfs::environ_value(pid, OWNER_VAR).and_then(|o| table.owner(&o));
        table.children().adopted.insert(pid);
        if let Some(g) = table.guard().as_mut() {
            g.adopt(pid, stat.starttime);
        }
        let program = procfs::comm(pid).unwrap_or_default();
        let command = procfs::cmdline(pid).filter(|c| !c.is_empty()).unwrap_or_else(|| program.clone());
        new.push(Orphan { pid, program, command, task });
    }
    new
}

/// irun's live children that it did not spawn itself, that are not its guard and that it did not inherit, with
/// what /proc says of them. Zombies among them are reaped.
fn adopted(table: &Table) -> Vec<(i32, procfs::Stat)> {
    let me = std::process::id() as i32;
    let guard_pid = table.guard().as_ref().map(|g| g.pid());
    let mut found = Vec::new();
    for (pid, stat) in procfs::children(me) {
        let (own, dropped) = {
            let children = table.children();
            let own = children.spawned.contains(&pid) || children.inherited.contains(&(pid, stat.starttime));
            (own, children.dropped.contains(&pid))
        };
        if own || Some(pid) == guard_pid {
            continue;
        }
        if dropped {
            if stat.is_zombie() && matches!(sys::try_reap(pid), Ok(Some(_))) {
                table.children().dropped.remove(&pid);
            }
            continue;
        }
        if stat.is_zombie() {
            table.reap_adopted(pid);
        } else {
            found.push((pid, stat));
        }
    }
    found
}

/// Live processes re-parented to irun: with `Some(owner)`, those that carry that task's marker; with `None`, all
/// of them, marker or not (a process that cleared its environment is still a descendant of a task: nothing else
/// can be re-parented to irun, which is their subreaper). Adopted zombies are reaped on the way.
pub(crate) fn escapees(table: &Table, owner: Option<&str>) -> Vec<i32> {
    adopted(table)
        .into_iter()
        .filter(|(pid, _)| owner.is_none_or(|o| procfs::environ_is(*pid, OWNER_VAR, o)))
        .map(|(pid, _)| pid)
        .collect()
}

/// At the end of a run: stop everything of this run that escaped its group and is still around, whichever task
/// it came from (`sig`, `grace`, then SIGKILL). Returns how many processes were found.
pub(crate) async fn stop_all_escaped(table: &Table, sig: Signal, grace: Duration) -> usize {
    let mut signalled = HashSet::new();
    let all = Found { owner: None, outside: &[] };
    if !stop_escaped(table, all, sig, deadline_after(grace), &mut signalled).await {
        stop_escaped(table, all, Signal::SIGKILL, deadline_after(KILL_WAIT), &mut HashSet::new()).await;
    }
    signalled.len()
}

/// Which escapees to stop: those re-parented to irun (of the task whose marker is `owner`, or all), and those
/// found by descent before the task was signalled (pid and start time: a reused pid is left alone).
#[derive(Clone, Copy)]
pub(crate) struct Found<'a> {
    pub(crate) owner: Option<&'a str>,
    pub(crate) outside: &'a [(i32, u64)],
}

impl Found<'_> {
    fn now(&self, table: &Table) -> Vec<i32> {
        let mut pids = escapees(table, self.owner);
        for &(pid, start) in self.outside {
            if !pids.contains(&pid) && procfs::stat(pid).is_some_and(|s| s.starttime == start && !s.is_zombie()) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// Signal every escapee `found` names once with `sig`, and wait (until `deadline`) for all to be gone.
pub(crate) async fn stop_escaped(
    table: &Table,
    found: Found<'_>,
    sig: Signal,
    deadline: Instant,
    signalled: &mut HashSet<i32>,
) -> bool {
    let mut pause = Duration::from_millis(1);
    loop {
        let found = found.now(table);
        if found.is_empty() {
            return true;
        }
        for pid in found {
            if signalled.insert(pid) || sig == Signal::SIGKILL {
                let _ = kill(Pid::from_raw(pid), sig);
                // An escapee usually leads a group of its own (setsid): its members are its descendants.
                if procfs::stat(pid).is_some_and(|s| s.pgrp == pid) {
                    let _ = kill(Pid::from_raw(-pid), sig);
                }
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether any live (non-zombie) process is in group `pgid`. Adopted zombies in it are reaped on the way; the
/// leader (reaped by its [`super::supervisor::Process`]) is left alone.
pub(crate) fn group_alive(table: &Table, pgid: i32) -> bool {
    if let Err(Errno::ESRCH) = kill(Pid::from_raw(-pgid), None) {
        return false;
    }
    // Members exist, but they may all be zombies waiting for a parent to reap them.
    let me = std::process::id() as i32;
    let mut alive = false;
    for pid in procfs::pids() {
        let Some(stat) = procfs::stat(pid) else { continue };
        if stat.pgrp != pgid {
            continue;
        }
        if stat.is_zombie() {
            if stat.ppid == me && pgid != pid {
                table.reap_adopted(pid);
            }
        } else {
            alive = true;
        }
    }
    alive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate() {
        assert!(deadline_after(Duration::MAX) > Instant::now());
    }
}
