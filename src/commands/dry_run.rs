//! `irun -n`: the plan in words, wave by wave, without running anything.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::config::PerTask;
use crate::config::{Config, TaskKind};
use crate::fresh::Verdict;
use crate::plan::Plan;
use crate::report::text;

/// `hits`: the tasks that would be restored from the cache instead of running, with their keys.
pub(super) fn text(
    config: &Config,
    plan: &Plan,
    jobs: usize,
    verdicts: &PerTask<Option<Verdict>>,
    hits: &HashMap<String, String>,
) -> String {
    let idle = crate::fresh::not_started(plan, verdicts);
    let mut out = String::new();
    // Groups run nothing: they are counted apart.
    let groups = plan.order.iter().filter(|&&i| plan[i].kind == TaskKind::Group).count();
    let tasks = plan.order.len() - groups;
    let grouped = match groups {
        0 => String::new(),
        n => format!(" and {n} group{}", plural(n)),
    };
    let _ = writeln!(
        out,
        "plan: {tasks} task{}{grouped} in {} wave{}, up to {jobs} at a time (dry run: nothing is started)",
        plural(tasks),
        plan.waves.len(),
        plural(plan.waves.len())
    );
    for (w, wave) in plan.waves.iter().enumerate() {
        let items: Vec<String> = wave
            .iter()
            .map(|&i| {
                let task = &config.tasks[i];
                match (plan[i].kind, task.service()) {
                    (TaskKind::Group, _) => format!("{} (group)", task.name),
                    (TaskKind::Service, Some(_)) if idle[i] => {
                        format!("{} (service, not started: every task that needs it is up to date)", task.name)
                    }
                    (TaskKind::Service, Some(svc)) => {
                        let until = if plan[i].foreground { ", kept in the foreground" } else { "" };
                        match &svc.ready {
                            Some(p) => format!(
                                "{} (service, ready once irun sees {}{until})",
                                task.name,
                                text::check(&p.check.hidden(&config.secrets))
                            ),
                            None => format!("{} (service, ready once started{until})", task.name),
                        }
                    }
                    _ if verdicts[i] == Some(Verdict::UpToDate) => format!("{} (up to date)", task.name),
                    _ if hits.contains_key(&task.name) => format!(
                        "{} (will be restored from the cache, key {})",
                        task.name,
                        text::short_key(&hits[&task.name])
                    ),
                    _ => task.name.clone(),
                }
            })
            .collect();
        let _ = writeln!(out, "  wave {}: {}", w + 1, items.join(", "));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
