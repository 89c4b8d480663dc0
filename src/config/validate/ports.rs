//! `${IRUN_PORT…}` references, checked once every task is known: each must name a port the task gets. A service
//! with `port = "auto"` (or `tcp = "auto"`) gets `IRUN_PORT`; it and every task that needs it (depends on it
//! directly or through groups, so that it is up while the task runs) get `IRUN_PORT_<NAME>`. A misspelt name would
//! otherwise reach the task as written.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;

use super::Validator;
use crate::config::env::port_refs;
use crate::config::model::{Task, port_variable};
use crate::config::raw::{At, RawTask};
use crate::diagnostic::Diagnostic;

impl Validator<'_> {
    /// Every `${IRUN_PORT…}` in a task's command, `env`, `cwd` and probe names a port it gets.
    pub(super) fn port_references(&self, raw: &[(&At<String>, &RawTask)], tasks: &[Task]) -> Result<(), Diagnostic> {
        // Every reference is written in the file: one without any has nothing to check.
        if memchr::memmem::find(self.source.text.as_bytes(), b"IRUN_PORT").is_none() {
            return Ok(());
        }
        for (k, (_, task)) in raw.iter().enumerate() {
            let mut found = Vec::new();
            for span in value_spans(task) {
                let text = self.source.text.get(span.clone()).unwrap_or_default();
                found.extend(
                    port_refs(text).into_iter().map(|(at, name)| (span.start + at..span.start + at + name.len(), name)),
                );
            }
            if found.is_empty() {
                continue;
            }
            let gets = ports_of(k, tasks);
            if let Some((span, name)) = found.into_iter().find(|(_, name)| !gets.contains(*name)) {
                return Err(self.unknown_port(&tasks[k], span, name, &gets));
            }
        }
        Ok(())
    }

    fn unknown_port(&self, task: &Task, span: Range<usize>, name: &str, gets: &BTreeSet<String>) -> Diagnostic {
        let hint = crate::diagnostic::suggestion(name, gets.iter().map(String::as_str));
        let help = if gets.is_empty() {
            format!(
                "task `{}` gets no chosen port: give a service it depends on (or itself, if it is a service) \
                 `port = \"auto\"`",
                task.name
            )
        } else {
            let list: Vec<&str> = gets.iter().map(String::as_str).collect();
            format!("task `{}` gets {}", task.name, list.join(", "))
        };
        let help = format!("{help} (a task gets the ports of the services it depends on, directly or through groups)");
        self.err(span, format!("`{name}` is not a port task `{}` gets{hint}", task.name)).with_help(help)
    }
}

/// Where a task's values are written that reach its process or probe: command, `env` values, `cwd`, `ready`.
fn value_spans(task: &RawTask) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = task.env.iter().flat_map(|env| env.get().values().map(At::span)).collect();
    spans.extend(task.cmd.as_ref().map(At::span));
    spans.extend(task.cwd.as_ref().map(At::span));
    spans.extend(task.ready.as_ref().map(At::span));
    spans
}

/// The port variables task `k` gets: its own (a service with a chosen port) and those of the services with a
/// chosen port it needs (its deps, looking through groups). What it costs is what it visits, not the number of
/// tasks: it is asked for every task whose values name a port.
fn ports_of(k: usize, tasks: &[Task]) -> BTreeSet<String> {
    let mut gets = BTreeSet::new();
    if tasks[k].service().is_some_and(|s| s.auto_port) {
        gets.insert("IRUN_PORT".to_string());
    }
    let mut seen = HashSet::new();
    let mut stack = vec![k];
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        if tasks[i].service().is_some_and(|s| s.auto_port) {
            gets.insert(port_variable(&tasks[i].name));
        }
        if i == k || tasks[i].is_group() {
            stack.extend(tasks[i].deps.iter().map(|d| d.id.index()));
        }
    }
    gets
}
