//! `irun graph`: the task graph as Graphviz DOT or a Mermaid flowchart, optionally coloured by each task's last
//! run. Tasks are boxes (Mermaid: rectangles), services filled ellipses (stadiums), groups dashed boxes
//! (subroutine shapes); an edge `a -> b` means a runs before b.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::config::{Config, PerTask, TaskId, TaskKind};
use crate::diagnostic::Diagnostic;
use crate::graph::TaskGraph;
use crate::request;
use crate::state::{LastRun, State};

/// The graph of `targets` and what they depend on (every task when none are named).
pub(super) fn text(config: &Config, targets: &[String], mermaid: bool, status: bool) -> Result<String, Diagnostic> {
    let graph = TaskGraph::new(config)?;
    let selected = if targets.is_empty() {
        PerTask::filled(config.tasks.len(), true)
    } else {
        graph.closure(&request::resolve(config, targets)?)
    };
    let last_runs = status.then(|| {
        let (state, warning) = State::load(&config.root);
        if let Some(w) = warning {
            eprintln!("irun: warning: {w}; showing every task as never run");
        }
        last_runs(config, &state)
    });
    let edges = graph.edges(&selected);
    Ok(if mermaid {
        to_mermaid(config, &selected, &edges, last_runs.as_ref())
    } else {
        to_dot(config, &selected, &edges, last_runs.as_ref())
    })
}

fn colour_and_words(run: LastRun) -> (&'static str, &'static str) {
    match run {
        LastRun::Ok => ("#c8e6c9", "last run: ok"),
        LastRun::Failed => ("#ffcdd2", "last run: failed"),
        LastRun::Unfinished => ("#fff3c4", "last run: did not finish"),
    }
}

/// With `last_runs` (task name → its last run), nodes are coloured by it: green ok, red failed, yellow unfinished,
/// grey never ran (or not recorded).
fn to_dot(
    config: &Config,
    selected: &PerTask<bool>,
    edges: &[(TaskId, TaskId)],
    last_runs: Option<&HashMap<String, LastRun>>,
) -> String {
    let mut out = String::from("digraph irun {\n    rankdir=LR;\n    node [shape=box, fontname=\"Helvetica\"];\n");
    out.push_str("    // edges point from a dependency to the task that depends on it\n");
    for (_, task) in config.tasks.enumerate().filter(|(i, _)| selected[*i]) {
        let kind = task.tag();
        let mut attrs = Vec::new();
        let label = match kind {
            TaskKind::Task => dot_escape(&task.name),
            kind => format!("{}\\n({})", dot_escape(&task.name), kind.as_str()),
        };
        attrs.push(format!("label=\"{label}\""));
        let fill = match last_runs.map(|runs| runs.get(&task.name)) {
            None => (kind == TaskKind::Service).then_some("#cfe2ff"),
            Some(Some(run)) => Some(colour_and_words(*run).0),
            Some(None) => Some("#e0e0e0"),
        };
        if kind == TaskKind::Service {
            attrs.push("shape=ellipse".into());
        }
        match (kind == TaskKind::Group, fill) {
            (true, Some(f)) => attrs.push(format!("style=\"dashed,filled\", fillcolor=\"{f}\"")),
            (true, None) => attrs.push("style=dashed".into()),
            (false, Some(f)) => attrs.push(format!("style=filled, fillcolor=\"{f}\"")),
            (false, None) => {}
        }
        if let Some(runs) = last_runs {
            let state = runs.get(&task.name).map_or("never ran", |r| colour_and_words(*r).1);
            attrs.push(format!("tooltip=\"{state}\""));
        }
        let _ = writeln!(out, "    \"{}\" [{}];", dot_escape(&task.name), attrs.join(", "));
    }
    for &(from, to) in edges {
        let (from, to) = (&config.tasks[from].name, &config.tasks[to].name);
        let _ = writeln!(out, "    \"{}\" -> \"{}\";", dot_escape(from), dot_escape(to));
    }
    out.push_str("}\n");
    out
}

/// With `last_runs`, nodes get classes `ok`, `failed`, `unfinished` or `never`.
fn to_mermaid(
    config: &Config,
    selected: &PerTask<bool>,
    edges: &[(TaskId, TaskId)],
    last_runs: Option<&HashMap<String, LastRun>>,
) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, task) in config.tasks.enumerate().filter(|(i, _)| selected[*i]) {
        let (label, n) = (mermaid_escape(&task.name), i.index());
        let node = match task.tag() {
            TaskKind::Service => format!("t{n}([\"{label} (service)\"])"),
            TaskKind::Group => format!("t{n}[[\"{label} (group)\"]]"),
            TaskKind::Task => format!("t{n}[\"{label}\"]"),
        };
        let class = last_runs.map(|runs| match runs.get(&task.name) {
            Some(LastRun::Ok) => ":::ok",
            Some(LastRun::Failed) => ":::failed",
            Some(LastRun::Unfinished) => ":::unfinished",
            None => ":::never",
        });
        let _ = writeln!(out, "    {node}{}", class.unwrap_or_default());
    }
    for &(from, to) in edges {
        let _ = writeln!(out, "    t{} --> t{}", from.index(), to.index());
    }
    if last_runs.is_some() {
        out.push_str("    classDef ok fill:#c8e6c9,stroke:#2e7d32\n");
        out.push_str("    classDef failed fill:#ffcdd2,stroke:#c62828\n");
        out.push_str("    classDef unfinished fill:#fff3c4,stroke:#f9a825\n");
        out.push_str("    classDef never fill:#e0e0e0,stroke:#757575\n");
    }
    out
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Each task's last run, from the state. A group has no run of its own: it shows how the tasks it gathers last
/// went (failed if one failed, unfinished if one did not finish, ok if all passed, never if one never ran).
fn last_runs(config: &Config, state: &State) -> HashMap<String, LastRun> {
    let mut runs: HashMap<String, LastRun> = HashMap::new();
    for (name, entry) in state.entries() {
        let Some(record) = &entry.record else { continue };
        // Tasks with sources that stayed up to date since the state had a `last` table: their record says.
        if entry.last.is_none() && !record.command.is_empty() {
            let last = match (record.unfinished, record.ok) {
                (true, _) => LastRun::Unfinished,
                (false, true) => LastRun::Ok,
                (false, false) => LastRun::Failed,
            };
            runs.insert(name.clone(), last);
        }
    }
    runs.extend(state.entries().iter().filter_map(|(name, e)| Some((name.clone(), e.last?))));
    // Groups, deps first: Irun.toml has no cycles, so a pass per nesting level settles them.
    let mut memo: HashMap<TaskId, Option<LastRun>> = HashMap::new();
    for (i, task) in config.tasks.enumerate() {
        if task.tag() == TaskKind::Group
            && let Some(last) = group_run(config, &runs, &mut memo, i)
        {
            runs.insert(task.name.clone(), last);
        }
    }
    runs
}

fn group_run(
    config: &Config,
    runs: &HashMap<String, LastRun>,
    memo: &mut HashMap<TaskId, Option<LastRun>>,
    group: TaskId,
) -> Option<LastRun> {
    if let Some(known) = memo.get(&group) {
        return *known;
    }
    let mut all: Vec<Option<LastRun>> = Vec::new();
    for dep in &config.tasks[group].deps {
        let d = dep.id;
        let last = if config.tasks[d].tag() == TaskKind::Group {
            group_run(config, runs, memo, d)
        } else {
            runs.get(&config.tasks[d].name).copied()
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
