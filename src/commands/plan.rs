//! `irun plan --json [--partition P | --shards N] [TARGET]...`: the plan as one JSON document, for a CI system to
//! build its job matrix from: the tasks, waves and units (leaf tasks), the plan's hash, and each shard's units,
//! tasks and the exact `irun` arguments that run it.

use serde_json::{Value, json};

use crate::config::{Config, TaskId};
use crate::exit::Failure;
use crate::partition::{self, Partition, Scheme};
use crate::request::{self, Request};

/// Which shards to describe.
pub(super) struct Describe {
    pub(super) partition: Option<Partition>,
    pub(super) shards: Option<u32>,
    pub(super) scheme: Scheme,
    /// `-f` as given, repeated in each shard's arguments.
    pub(super) file: Option<String>,
}

/// The targets as given (empty: `default`) and the arguments after `--` are repeated in each shard's arguments.
pub(super) fn json(config: Config, request: &Request, req: &Describe) -> Result<String, Failure> {
    let plan = &request::plan(config, request)?.plan;
    let scheme = req.scheme;
    let names = |tasks: &[TaskId]| tasks.iter().map(|&i| json!(&*plan[i].name)).collect::<Vec<Value>>();
    let hash = partition::plan_hash(plan);
    let units = partition::leaves(plan);
    // The leaves are dealt once, for every shard (clap keeps `--shards` within MAX_SHARDS).
    let shards: Vec<(Partition, Vec<TaskId>)> = match (req.partition, req.shards) {
        (Some(p), _) => vec![(p, partition::units_of(plan, p))],
        (None, Some(n)) => {
            (1..=n).map(|index| Partition { scheme, index, count: n }).zip(partition::deal(plan, scheme, n)).collect()
        }
        (None, None) => Vec::new(),
    };
    let shards: Vec<Value> = shards
        .into_iter()
        .map(|(p, mine)| {
            let tasks = if mine.is_empty() { Vec::new() } else { plan.closure(&mine) };
            let mut args: Vec<String> = Vec::new();
            if let Some(f) = &req.file {
                args.extend(["-f".to_string(), f.clone()]);
            }
            args.extend(["--partition".to_string(), p.to_string(), "--expect-plan".to_string(), hash.clone()]);
            args.extend(request.targets.iter().cloned());
            if !request.args.is_empty() {
                args.push("--".to_string());
                args.extend(request.args.iter().cloned());
            }
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
        .map(|&i| json!({ "name": &*plan[i].name, "kind": plan[i].kind.as_str(), "deps": names(&plan[i].deps) }))
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
    Ok(format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default()))
}
