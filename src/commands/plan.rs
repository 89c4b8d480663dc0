//! `irun plan --json [--partition P | --shards N] [TARGET]...`: the plan as one JSON document, for a CI system to
//! build its job matrix from: the tasks, waves and units (leaf tasks), the plan's hash, and each shard's units,
//! tasks and the exact `irun` arguments that run it.

use serde_json::{Value, json};

use crate::events::TaskKind;
use crate::graph::TaskGraph;
use crate::partition::{self, Partition, Scheme};
use crate::plan::Plan;

pub struct Request<'a> {
    pub partition: Option<Partition>,
    pub shards: Option<u32>,
    pub scheme: Scheme,
    /// The targets as given (empty: `default`), repeated in each shard's arguments.
    pub targets: &'a [String],
    /// `-f` as given, repeated in each shard's arguments.
    pub file: Option<&'a str>,
}

pub fn json(graph: &TaskGraph<'_>, plan: &Plan, req: &Request<'_>) -> String {
    let names = |tasks: &[usize]| tasks.iter().map(|&i| json!(&*plan.names[i])).collect::<Vec<Value>>();
    let hash = partition::plan_hash(plan);
    let units = partition::leaves(plan);
    let shards: Vec<Partition> = match (req.partition, req.shards) {
        (Some(p), _) => vec![p],
        (None, Some(n)) => (1..=n).map(|index| Partition { scheme: req.scheme, index, count: n }).collect(),
        (None, None) => Vec::new(),
    };
    let shards: Vec<Value> = shards
        .iter()
        .map(|&p| {
            let mine = partition::units_of(plan, p);
            let tasks = if mine.is_empty() { Vec::new() } else { graph.select(&mine) };
            let mut args: Vec<String> = Vec::new();
            if let Some(f) = req.file {
                args.extend(["-f".to_string(), f.to_string()]);
            }
            args.extend(["--partition".to_string(), p.to_string(), "--expect-plan".to_string(), hash.clone()]);
            args.extend(req.targets.iter().cloned());
            json!({
                "shard": p.shard(),
                "partition": p.to_string(),
                "units": names(&mine),
                "tasks": names(&tasks),
                "args": args,
            })
        })
        .collect();
    let tasks: Vec<Value> = plan
        .order
        .iter()
        .map(|&i| {
            let kind = match plan.kinds[i] {
                TaskKind::Task => "task",
                TaskKind::Service => "service",
                TaskKind::Group => "group",
            };
            json!({ "name": &*plan.names[i], "kind": kind, "deps": names(&plan.deps[i]) })
        })
        .collect();
    let doc = json!({
        "version": 1,
        "plan": hash,
        "targets": names(&plan.targets),
        "tasks": tasks,
        "waves": plan.waves.iter().map(|w| names(w)).collect::<Vec<_>>(),
        "units": names(&units),
        "shards": shards,
    });
    format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
}
