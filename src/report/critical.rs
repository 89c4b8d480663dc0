//! The critical path: the chain of tasks that determined a run's wall time.
//!
//! Starting from the task that became available last (finished, or for a service, became ready), follow the dep
//! that became available last, back to a task that waited for nothing. Groups are transparent.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::events::{TaskKind, TaskName};

/// What a reporter saw of one task.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    pub(crate) kind: TaskKind,
    pub(crate) deps: std::sync::Arc<[TaskName]>,
    pub(crate) started: Option<SystemTime>,
    /// When dependents could go: finished (tasks, groups) or ready (services).
    pub(crate) available: Option<SystemTime>,
    /// The colour the reporter shows its lines in: an index into its palette.
    pub(crate) colour: u8,
}

/// The chain, first task first; empty when nothing ran.
pub(crate) fn critical_path(timings: &HashMap<TaskName, Timing>) -> Vec<TaskName> {
    let ran = |t: &Timing| t.started.is_some() && t.available.is_some();
    let Some(last) = timings
        .iter()
        .filter(|(_, t)| t.kind != TaskKind::Group && ran(t))
        .max_by_key(|(name, t)| (t.available, std::cmp::Reverse((*name).clone())))
        .map(|(name, _)| name.clone())
    else {
        return Vec::new();
    };
    let mut chain = vec![last.clone()];
    let mut current = last;
    loop {
        // The dep this task waited for longest, seen through groups.
        let mut frontier: Vec<TaskName> = timings[&current].deps.to_vec();
        let mut best: Option<(SystemTime, TaskName)> = None;
        while let Some(d) = frontier.pop() {
            let Some(t) = timings.get(&d) else { continue };
            if t.kind == TaskKind::Group {
                frontier.extend(t.deps.iter().cloned());
            } else if let (true, Some(at)) = (ran(t), t.available)
                && best.as_ref().is_none_or(|(b, _)| at > *b)
            {
                best = Some((at, d));
            }
        }
        match best {
            Some((_, d)) if !chain.contains(&d) => {
                chain.push(d.clone());
                current = d;
            }
            _ => break,
        }
    }
    chain.reverse();
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    fn t(kind: TaskKind, deps: &[&str], start: u64, end: u64) -> Timing {
        Timing {
            kind,
            deps: deps.iter().map(|d| TaskName::from(*d)).collect(),
            started: at(start),
            available: at(end),
            colour: 0,
        }
    }

    #[test]
    fn follows_the_latest_dep_through_groups() {
        let mut m = HashMap::new();
        m.insert("setup".into(), t(TaskKind::Task, &[], 0, 800));
        m.insert("thread".into(), t(TaskKind::Task, &["setup"], 800, 1000));
        m.insert("daemon".into(), t(TaskKind::Service, &["setup"], 800, 900));
        m.insert("client".into(), t(TaskKind::Task, &["daemon"], 900, 1300));
        m.insert(
            "http".into(),
            Timing {
                kind: TaskKind::Group,
                deps: ["daemon".into(), "client".into()].into(),
                started: None,
                available: at(1300),
                colour: 0,
            },
        );
        m.insert("report".into(), t(TaskKind::Task, &["http", "thread"], 1300, 1400));
        let names: Vec<String> = critical_path(&m).iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["setup", "daemon", "client", "report"]);
    }

    #[test]
    fn nothing_ran() {
        let mut m = HashMap::new();
        m.insert(
            "a".into(),
            Timing { kind: TaskKind::Task, deps: [].into(), started: None, available: None, colour: 0 },
        );
        assert!(critical_path(&m).is_empty());
    }
}
