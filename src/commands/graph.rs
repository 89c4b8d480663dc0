//! `irun graph`: the task graph as DOT or Mermaid, optionally coloured by each task's last run.

use std::collections::HashMap;

use crate::config::Config;
use crate::graph::{LastRun, TaskGraph};
use crate::state::{self, State};

pub fn text(config: &Config, graph: &TaskGraph<'_>, selected: Option<&[usize]>, mermaid: bool, status: bool) -> String {
    let last_runs = status.then(|| {
        let (state, warning) = State::load(&config.root);
        if let Some(w) = warning {
            eprintln!("irun: warning: {w}; showing every task as never run");
        }
        last_runs(config, &state)
    });
    if mermaid { graph.to_mermaid(selected, last_runs.as_ref()) } else { graph.to_dot(selected, last_runs.as_ref()) }
}

/// Each task's last run, from the state. A group has no run of its own: it shows how the tasks it gathers last
/// went (failed if one failed, unfinished if one did not finish, ok if all passed, never if one never ran).
fn last_runs(config: &Config, state: &State) -> HashMap<String, LastRun> {
    let mut runs: HashMap<String, LastRun> = HashMap::new();
    for (name, record) in &state.tasks {
        // Tasks with sources that stayed up to date since the state had a `last` table: their record says.
        if !state.last.contains_key(name) && !record.command.is_empty() {
            let last = match (record.unfinished, record.ok) {
                (true, _) => LastRun::Unfinished,
                (false, true) => LastRun::Ok,
                (false, false) => LastRun::Failed,
            };
            runs.insert(name.clone(), last);
        }
    }
    for (name, last) in &state.last {
        let last = match last {
            state::LastRun::Ok => LastRun::Ok,
            state::LastRun::Failed => LastRun::Failed,
            state::LastRun::Unfinished => LastRun::Unfinished,
        };
        runs.insert(name.clone(), last);
    }
    // Groups, deps first: Irun.toml has no cycles, so a pass per nesting level settles them.
    let index: HashMap<&str, usize> = config.tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    let mut memo: HashMap<usize, Option<LastRun>> = HashMap::new();
    for (i, task) in config.tasks.iter().enumerate() {
        if task.is_group() {
            if let Some(last) = group_run(config, &index, &runs, &mut memo, i) {
                runs.insert(task.name.clone(), last);
            }
        }
    }
    runs
}

fn group_run(
    config: &Config,
    index: &HashMap<&str, usize>,
    runs: &HashMap<String, LastRun>,
    memo: &mut HashMap<usize, Option<LastRun>>,
    group: usize,
) -> Option<LastRun> {
    if let Some(known) = memo.get(&group) {
        return *known;
    }
    let mut all: Vec<Option<LastRun>> = Vec::new();
    for dep in &config.tasks[group].deps {
        let d = index[dep.name.as_str()];
        let last = if config.tasks[d].is_group() {
            group_run(config, index, runs, memo, d)
        } else {
            runs.get(&dep.name).copied()
        };
        all.push(last);
    }
    let result = if all.contains(&Some(LastRun::Failed)) {
        Some(LastRun::Failed)
    } else if all.contains(&Some(LastRun::Unfinished)) {
        Some(LastRun::Unfinished)
    } else if all.iter().all(|l| *l == Some(LastRun::Ok)) {
        Some(LastRun::Ok)
    } else {
        None
    };
    memo.insert(group, result);
    result
}
