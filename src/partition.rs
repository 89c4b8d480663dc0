//! Splitting a run across machines (`--partition slice:K/N` or `hash:K/N`): the units are the plan's leaf tasks
//! (non-group tasks that no other selected non-group task depends on, looking through groups); a shard runs its
//! units and everything they depend on. Pure: a plan in, the shard's targets out.

use std::fmt;

use crate::config::{PerTask, TaskId, TaskKind};
use crate::plan::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scheme {
    // Leaves dealt in plan order: the K-th, the K+N-th, ... (a plain comment: clap would show a doc comment)
    Slice,
    // By a stable hash of the task's name: adding a task moves no other.
    Hash,
}

/// The most shards `irun plan --json --shards N` describes: each is an entry of the document, and no CI system's
/// job matrix comes near (GitHub Actions allows 256 jobs, GitLab 200).
pub(crate) const MAX_SHARDS: u32 = 10_000;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partition {
    pub(crate) scheme: Scheme,
    pub(crate) index: u32,
    pub(crate) count: u32,
}

impl fmt::Display for Partition {
    /// As given on the command line: `slice:2/3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Slice => "slice",
            Scheme::Hash => "hash",
        };
        write!(f, "{scheme}:{}/{}", self.index, self.count)
    }
}

impl Partition {
    /// `K/N`, as reports show the shard.
    pub(crate) fn shard(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

/// Parse `slice:K/N` or `hash:K/N` (for clap).
pub(crate) fn parse(s: &str) -> Result<Partition, String> {
    let help = "write `slice:K/N` or `hash:K/N`, with 1 <= K <= N (e.g. `slice:2/3`)";
    let (scheme, shard) = s.split_once(':').ok_or_else(|| format!("no scheme in {s:?}; {help}"))?;
    let scheme = match scheme {
        "slice" => Scheme::Slice,
        "hash" => Scheme::Hash,
        other => return Err(format!("unknown scheme {other:?}; {help}")),
    };
    let (k, n) = shard.split_once('/').ok_or_else(|| format!("no `/` in {shard:?}; {help}"))?;
    let index: u32 = k.trim().parse().map_err(|_| format!("K is not a number in {shard:?}; {help}"))?;
    let count: u32 = n.trim().parse().map_err(|_| format!("N is not a number in {shard:?}; {help}"))?;
    if count == 0 {
        return Err(format!("N must be at least 1 in {shard:?}; {help}"));
    }
    if index == 0 || index > count {
        return Err(format!("K must be from 1 to {count} in {shard:?}; {help}"));
    }
    Ok(Partition { scheme, index, count })
}

/// The plan's leaf tasks, in plan order: selected non-group tasks that no selected non-group task depends on
/// (directly, or through groups).
pub(crate) fn leaves(plan: &Plan) -> Vec<TaskId> {
    // One walk from every non-group task's deps, each group entered once (many tasks over one long chain of groups
    // cost the chain once).
    let mut needed = PerTask::filled(plan.len(), false);
    let mut stack: Vec<TaskId> =
        plan.order.iter().filter(|&&i| plan[i].kind != TaskKind::Group).flat_map(|&i| plan[i].deps.clone()).collect();
    while let Some(d) = stack.pop() {
        if !std::mem::replace(&mut needed[d], true) && plan[d].kind == TaskKind::Group {
            stack.extend(&plan[d].deps);
        }
    }
    plan.order.iter().copied().filter(|&i| plan[i].kind != TaskKind::Group && !needed[i]).collect()
}

/// The stable hash a task's name is placed by (`hash:K/N`): xxh3, the same on every machine and release.
pub(crate) fn name_hash(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// Which shard (1-based) of `count` each unit goes to, in the order given.
pub(crate) fn assign(plan: &Plan, units: &[TaskId], scheme: Scheme, count: u32) -> Vec<u32> {
    units
        .iter()
        .enumerate()
        .map(|(pos, &i)| match scheme {
            Scheme::Slice => (pos as u32 % count) + 1,
            Scheme::Hash => (name_hash(&plan[i].name) % u64::from(count)) as u32 + 1,
        })
        .collect()
}

/// The units (leaf tasks) shard `p` runs, in plan order.
pub(crate) fn units_of(plan: &Plan, p: Partition) -> Vec<TaskId> {
    let units = leaves(plan);
    let shards = assign(plan, &units, p.scheme, p.count);
    units.into_iter().zip(shards).filter(|&(_, s)| s == p.index).map(|(u, _)| u).collect()
}

/// The units of each of `count` shards (1 to `count`, in that order), each in plan order: one pass over the leaves,
/// whatever the count.
pub(crate) fn deal(plan: &Plan, scheme: Scheme, count: u32) -> Vec<Vec<TaskId>> {
    let units = leaves(plan);
    let shards = assign(plan, &units, scheme, count);
    let mut out = vec![Vec::new(); count as usize];
    for (unit, shard) in units.into_iter().zip(shards) {
        out[shard as usize - 1].push(unit);
    }
    out
}

/// A hash of the plan's shape: its targets and its tasks with their kinds and deps, in plan order. Shards built
/// from plans with the same hash split the same work.
pub(crate) fn plan_hash(plan: &Plan) -> String {
    let mut text = String::new();
    for &t in &plan.targets {
        text.push_str(&format!("target {}\n", plan[t].name));
    }
    for &i in &plan.order {
        let deps: Vec<&str> = plan[i].deps.iter().map(|&d| &*plan[d].name).collect();
        text.push_str(&format!("{} {:?} <- {:?}\n", plan[i].kind.as_str(), &*plan[i].name, deps));
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(toml: &str, targets: &[&str]) -> Plan {
        let config = crate::config::parse(
            crate::diagnostic::Source::new(std::path::Path::new("Irun.toml"), toml),
            std::path::PathBuf::from("/p"),
        )
        .unwrap();
        let graph = crate::graph::TaskGraph::new(&config).unwrap();
        let targets: Vec<TaskId> = targets.iter().map(|t| config.id(t).unwrap()).collect();
        Plan::new(&config, &graph, &targets)
    }

    fn names(plan: &Plan, tasks: &[TaskId]) -> Vec<String> {
        tasks.iter().map(|&i| plan[i].name.to_string()).collect()
    }

    const SUITE: &str = "[tasks.setup]\ncmd = \"s\"\n[tasks.db]\ncmd = \"d\"\ndaemon = true\ndeps = [\"setup\"]\n\
        [tasks.backend]\ndeps = [\"db\"]\n\
        [tasks.a]\ncmd = \"a\"\ndeps = [\"backend\"]\n[tasks.b]\ncmd = \"b\"\ndeps = [\"db\"]\n\
        [tasks.c]\ncmd = \"c\"\ndeps = [\"setup\"]\n[tasks.all]\ndeps = [\"a\", \"b\", \"c\"]\n";

    #[test]
    fn leaves_are_the_tasks_nothing_else_needs_groups_looked_through() {
        let p = plan(SUITE, &["all"]);
        // In plan order: c (after setup) comes before b (after db) and a (after the group over db).
        assert_eq!(names(&p, &leaves(&p)), ["c", "b", "a"]);
        // A service nobody needs is a unit of its own.
        let p = plan(SUITE, &["db"]);
        assert_eq!(names(&p, &leaves(&p)), ["db"]);
    }

    #[test]
    fn slices_deal_the_leaves_in_plan_order_and_hashes_follow_names() {
        let p = plan(SUITE, &["all"]);
        let slice = |k| names(&p, &units_of(&p, Partition { scheme: Scheme::Slice, index: k, count: 2 }));
        assert_eq!(slice(1), ["c", "a"]);
        assert_eq!(slice(2), ["b"]);
        for unit in leaves(&p) {
            let shard = (name_hash(&p[unit].name) % 3) as u32 + 1;
            let mine = units_of(&p, Partition { scheme: Scheme::Hash, index: shard, count: 3 });
            assert!(mine.contains(&unit));
        }
    }

    #[test]
    fn dealing_every_shard_at_once_gives_each_its_units() {
        let p = plan(SUITE, &["all"]);
        for scheme in [Scheme::Slice, Scheme::Hash] {
            let dealt = deal(&p, scheme, 5);
            assert_eq!(dealt.len(), 5);
            for (k, mine) in dealt.iter().enumerate() {
                assert_eq!(*mine, units_of(&p, Partition { scheme, index: k as u32 + 1, count: 5 }));
            }
        }
    }

    #[test]
    fn partitions_parse_and_bad_ones_say_why() {
        assert_eq!(parse("slice:2/3"), Ok(Partition { scheme: Scheme::Slice, index: 2, count: 3 }));
        assert_eq!(parse("hash:1/1").map(|p| p.to_string()), Ok("hash:1/1".to_string()));
        for bad in ["slice:0/3", "slice:4/3", "slice:1/0", "count:1/2", "slice:1", "slice:x/2", "2/3"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_plan_hash_follows_the_shape_not_the_machine() {
        let a = plan(SUITE, &["all"]);
        let again = plan(&SUITE.replace("cmd = \"a\"", "cmd = \"a --verbose\""), &["all"]);
        assert_eq!(plan_hash(&a), plan_hash(&again), "a changed command is the same plan");
        let more = plan(&format!("{SUITE}[tasks.d]\ncmd = \"d\"\n"), &["all", "d"]);
        assert_ne!(plan_hash(&a), plan_hash(&more));
        assert_eq!(plan_hash(&a).len(), 16);
    }
}
