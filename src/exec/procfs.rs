//! The few facts irun reads from /proc (Linux): process state, parent and group, a process's environment, its name
//! and command line; and what descends from a set of process groups without being in them.

use std::collections::{HashMap, HashSet};

/// Every pid in /proc.
pub(crate) fn pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
    /// When the process started (clock ticks since boot): with the pid, it names one process for good.
    pub(crate) starttime: u64,
}

impl Stat {
    pub(crate) fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

pub(crate) fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // "pid (comm) S ppid pgrp ...": the command name may itself contain spaces or parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Field 22 of the line; 5 (pgrp) was the third after the command name.
    let starttime = fields.nth(16)?.parse().ok()?;
    Some(Stat { state, ppid, pgrp, starttime })
}

/// Whether one of `pid`'s environment entries starts with `prefix` (false if unreadable, e.g. a zombie).
pub(crate) fn environ_has(pid: i32, prefix: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    env.split(|&b| b == 0).any(|entry| entry.starts_with(prefix.as_bytes()))
}

/// Whether process `pid` maps the file `path` (as `/proc/PID/maps` names it) whose inode is `inode` (false if
/// unreadable).
pub(crate) fn maps_file(pid: i32, path: &str, inode: u64) -> bool {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else { return false };
    // "start-end perms offset dev inode path", the path maybe followed by " (deleted)".
    maps.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(4);
        fields.next().and_then(|i| i.parse().ok()) == Some(inode) && fields.next() == Some(path)
    })
}

/// The children of process `parent`: from the kernel's `children` files of its threads where the kernel has them
/// (cheap), else by a scan of /proc.
pub(crate) fn children(parent: i32) -> Vec<(i32, Stat)> {
    if let Some(pids) = children_from_task_files(parent) {
        return pids.into_iter().filter_map(|pid| stat(pid).filter(|s| s.ppid == parent).map(|s| (pid, s))).collect();
    }
    pids().into_iter().filter_map(|pid| stat(pid).filter(|s| s.ppid == parent).map(|s| (pid, s))).collect()
}

fn children_from_task_files(parent: i32) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{parent}/task")).ok()?.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    Some(out)
}

/// The value of the environment entry `name`, if `pid` has one (and it can be read).
pub(crate) fn environ_value(pid: i32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = [name.as_bytes(), b"="].concat();
    let entry = env.split(|&b| b == 0).find(|entry| entry.starts_with(&prefix))?;
    Some(String::from_utf8_lossy(&entry[prefix.len()..]).into_owned())
}

/// A process's name (`comm`: its program's, at most 15 bytes).
pub(crate) fn comm(pid: i32) -> Option<String> {
    let text = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    Some(String::from_utf8_lossy(&text).trim_end().to_string())
}

/// A command line longer than this is cut (and ends with `…`).
const CMDLINE_MAX: usize = 200;

/// A process's command line, its arguments joined by spaces (empty for a kernel thread or a zombie).
pub(crate) fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> =
        raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let line = args.join(" ");
    Some(match line.char_indices().nth(CMDLINE_MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    })
}

/// Whether the environment entry `name=value` is exactly present.
pub(crate) fn environ_is(pid: i32, name: &str, value: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let want = [name.as_bytes(), b"=", value.as_bytes()].concat();
    env.split(|&b| b == 0).any(|entry| entry == want.as_slice())
}

/// The live processes descended from members of the groups `pgids` (through parents that are alive) that are in
/// none of those groups, with their start times: what left the groups while its ancestors stayed.
pub(crate) fn outside(pgids: &[i32]) -> Vec<(i32, u64)> {
    // Never 0 (a free slot of the guard's list; also the group of init and kernel threads in some containers: the
    // whole machine descends from them) nor 1.
    let pgids: Vec<i32> = pgids.iter().copied().filter(|&g| g > 1).collect();
    if pgids.is_empty() {
        return Vec::new();
    }
    let all: Vec<(i32, Stat)> = pids().into_iter().filter_map(|pid| Some((pid, stat(pid)?))).collect();
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, (_, s)) in all.iter().enumerate() {
        children.entry(s.ppid).or_default().push(i);
    }
    let mut todo: Vec<i32> =
        all.iter().filter(|(_, s)| pgids.contains(&s.pgrp) && !s.is_zombie()).map(|(pid, _)| *pid).collect();
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    while let Some(parent) = todo.pop() {
        for &i in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
            let (pid, s) = &all[i];
            if s.is_zombie() || !seen.insert(*pid) {
                continue;
            }
            if !pgids.contains(&s.pgrp) && *pid > 1 {
                found.push((*pid, s.starttime));
            }
            todo.push(*pid);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn nothing_descends_from_group_0_or_1() {
        // Free slots of the guard's list are 0, and init and kernel threads are in group 0 in some containers.
        assert!(super::outside(&[0, 1, -1]).is_empty());
    }

    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let s = parse_stat("42 (a) b (c)) S 7 42 42 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 1 0 987654 5 6").unwrap();
        assert_eq!((s.state, s.ppid, s.pgrp, s.starttime), ('S', 7, 42, 987654));
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert_eq!(s.ppid, nix::unistd::getppid().as_raw());
        assert!(!s.is_zombie());
        assert!(environ_has(me, "PATH="));
        assert!(!environ_is(me, "PATH", "surely-not-this"));
        assert_eq!(environ_value(me, "PATH"), std::env::var("PATH").ok());
        assert!(comm(me).is_some_and(|c| !c.is_empty()));
        assert!(cmdline(me).is_some_and(|c| !c.is_empty()));
    }
}
