//! Which task gets a free job slot first.
//!
//! 1. Tasks that depend on a service: they start the moment the service is ready (the service is up for them, and
//!    the sooner they run the sooner it can stop).
//! 2. Then the tasks with the longest remaining path to the end of the graph, weighing each task by how long it
//!    took last time (a service by how long it took to become ready), as ninja and Bazel do. A task never timed
//!    weighs the median of those that were (or 1 ms if none was), so an unknown graph favours long chains.
//! 3. Then plan order.

use std::time::Duration;

use crate::config::{PerTask, TaskId, TaskKind};
use crate::plan::Plan;

/// The rank of every task (lower goes first); unselected tasks rank last.
pub(crate) fn ranks(plan: &Plan, weights: &PerTask<Option<Duration>>) -> PerTask<usize> {
    let n = plan.len();
    let mut known: Vec<Duration> =
        plan.order.iter().filter(|&&i| plan[i].kind != TaskKind::Group).filter_map(|&i| weights[i]).collect();
    known.sort_unstable();
    let default = known.get(known.len() / 2).copied().unwrap_or(Duration::from_millis(1));
    let weight = |i: TaskId| match plan[i].kind {
        TaskKind::Group => Duration::ZERO,
        _ => weights[i].unwrap_or(default),
    };
    // Remaining path from each task to the end, dependents first (reverse topological order).
    let mut remaining = PerTask::filled(n, Duration::ZERO);
    for &i in plan.order.iter().rev() {
        let after = plan[i].dependents.iter().map(|&d| remaining[d]).max().unwrap_or_default();
        remaining[i] = weight(i) + after;
    }
    let needs = needs_a_service(plan);
    let serves = |i: TaskId| needs[i];
    let mut order: Vec<(bool, std::cmp::Reverse<Duration>, usize, TaskId)> =
        plan.order.iter().enumerate().map(|(pos, &i)| (!serves(i), std::cmp::Reverse(remaining[i]), pos, i)).collect();
    order.sort_unstable();
    let mut rank = PerTask::filled(n, usize::MAX);
    for (r, &(_, _, _, i)) in order.iter().enumerate() {
        rank[i] = r;
    }
    rank
}

/// Whether each task depends on a service, directly or through groups: for a group, whether it gathers one. Deps
/// come first in plan order, so each task looks at its own deps only (many tasks over a long chain of groups cost
/// the chain once).
fn needs_a_service(plan: &Plan) -> PerTask<bool> {
    let mut needs = PerTask::filled(plan.len(), false);
    for &i in &plan.order {
        needs[i] = plan[i].deps.iter().any(|&d| match plan[d].kind {
            TaskKind::Service => true,
            TaskKind::Group => needs[d],
            TaskKind::Task => false,
        });
    }
    for &i in &plan.order {
        if plan[i].kind == TaskKind::Group {
            needs[i] = false;
        }
    }
    needs
}
