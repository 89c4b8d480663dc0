//! The critical path: the chain of tasks that determined a run's wall time.
//!
//! Starting from the task that became available last (finished, or for a service, became ready), follow the dep
//! that became available last, back to a task that waited for nothing. Groups are transparent.

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
    /// Where the reporter keeps its result in this run or cycle, if it has one.
    pub(crate) row: Option<u32>,
}

/// What a reporter saw of each task, by name: a list sorted by name, made whole from a plan (a hash map of 10,000
/// tasks takes room for 16,384 of them).
#[derive(Debug, Default)]
pub(crate) struct Timings(Vec<(TaskName, Timing)>);

impl Timings {
    /// From a list of distinct names in any order. (Sorted in place: a stable sort would take room for half as
    /// many again.)
    pub(crate) fn new(mut list: Vec<(TaskName, Timing)>) -> Timings {
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Timings(list)
    }

    fn at(&self, name: &str) -> Option<usize> {
        self.0.binary_search_by(|(n, _)| (**n).cmp(name)).ok()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Timing> {
        self.at(name).map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Timing> {
        self.at(name).map(|i| &mut self.0[i].1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TaskName, &Timing)> {
        self.0.iter().map(|(n, t)| (n, t))
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Timing> {
        self.0.iter_mut().map(|(_, t)| t)
    }

    /// Every entry, in order of name.
    pub(crate) fn into_list(self) -> Vec<(TaskName, Timing)> {
        self.0
    }

    /// Every entry, taken out.
    pub(crate) fn take(&mut self) -> Vec<(TaskName, Timing)> {
        std::mem::take(&mut self.0)
    }
}

/// The chain, first task first; empty when nothing ran.
pub(crate) fn critical_path(timings: &Timings) -> Vec<TaskName> {
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
    // The dep each task waited for longest, seen through groups.
    while let Some(timing) = timings.get(&current) {
        let mut frontier: Vec<TaskName> = timing.deps.to_vec();
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
            row: None,
        }
    }

    #[test]
    fn follows_the_latest_dep_through_groups() {
        let http = Timing {
            kind: TaskKind::Group,
            deps: ["daemon".into(), "client".into()].into(),
            started: None,
            available: at(1300),
            colour: 0,
            row: None,
        };
        let m = vec![
            ("setup".into(), t(TaskKind::Task, &[], 0, 800)),
            ("thread".into(), t(TaskKind::Task, &["setup"], 800, 1000)),
            ("daemon".into(), t(TaskKind::Service, &["setup"], 800, 900)),
            ("client".into(), t(TaskKind::Task, &["daemon"], 900, 1300)),
            ("http".into(), http),
            ("report".into(), t(TaskKind::Task, &["http", "thread"], 1300, 1400)),
        ];
        let names: Vec<String> = critical_path(&Timings::new(m)).iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["setup", "daemon", "client", "report"]);
    }

    #[test]
    fn timings_are_found_by_name() {
        let list = ["b", "a", "c"].iter().enumerate().map(|(i, n)| ((*n).into(), t(TaskKind::Task, &[], 0, i as u64)));
        let timings = Timings::new(list.collect());
        assert_eq!(timings.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(timings.get("a").unwrap().available, at(1));
        assert!(timings.get("d").is_none());
    }

    #[test]
    fn nothing_ran() {
        let timing =
            Timing { kind: TaskKind::Task, deps: [].into(), started: None, available: None, colour: 0, row: None };
        assert!(critical_path(&Timings::new(vec![("a".into(), timing)])).is_empty());
    }
}
