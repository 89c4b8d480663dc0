//! The closing summary (of the run, or of a watch cycle): a row per task, the failures' last lines, the critical
//! path, and the verdict.

use std::io::Write;
use std::time::Duration;

use anstyle::{AnsiColor, Style};

use super::Terminal;
use crate::events::{Outcome, RunOutcome, TaskKind, TaskName};
use crate::report::critical::critical_path;
use crate::report::text;

/// A summary row: style, label, task, how long it took, detail.
type Row = (Style, &'static str, TaskName, String, String);

impl<W: Write + Send> Terminal<W> {
    pub(super) fn summary(&mut self, outcome: RunOutcome, elapsed: Duration) {
        if let Some(p) = self.progress.as_mut() {
            p.clear();
        }
        let failed = std::mem::take(&mut self.failed_blocks);
        self.put_spool(failed);
        self.irun("summary");
        let results = std::mem::take(&mut self.results).into_vec();
        // Those rows are gone: a result that comes after the summary (watch mode, between cycles) starts anew.
        self.timings.values_mut().for_each(|t| t.row = None);
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        // Written as each is made: a graph of 10,000 tasks has as many rows.
        for (task, after) in std::mem::take(&mut self.ready) {
            let still = "service, still running".to_string();
            self.put_row(&mut counts, (AnsiColor::Green.on_default(), "ready", task, format_duration(after), still));
        }
        for (task, outcome, duration) in &results {
            let row = self.row(task, outcome, *duration);
            self.put_row(&mut counts, row);
        }
        self.failure_tails(&results);
        self.critical_path();
        let counts: Vec<String> = counts.iter().map(|(label, n)| format!("{n} {label}")).collect();
        let verdict = match outcome {
            RunOutcome::Passed => self.paint(AnsiColor::Green.on_default().bold(), "passed"),
            RunOutcome::Failed => self.paint(AnsiColor::Red.on_default().bold(), "failed"),
            RunOutcome::Interrupted(sig) => {
                self.paint(AnsiColor::Yellow.on_default().bold(), &format!("interrupted by {}", sig.as_str()))
            }
        };
        let counts = if counts.is_empty() { "nothing ran".to_string() } else { counts.join(", ") };
        let text = format!("{verdict}: {counts} in {}", format_duration(elapsed));
        self.irun(&text);
    }

    fn put_row(&mut self, counts: &mut Vec<(&'static str, usize)>, (style, label, task, took, detail): Row) {
        match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        }
        let line = format!(
            "  {} {:<width$} {:>8}  {detail}",
            self.paint(style, &format!("{label:<10}")),
            task,
            took,
            width = self.width
        );
        self.write(format!("{}\n", line.trim_end()).as_bytes());
    }

    /// A result's row.
    fn row(&self, task: &TaskName, outcome: &Outcome, duration: Duration) -> Row {
        let mut detail = text::detail(outcome).unwrap_or_default();
        if self.kind(task) == Some(TaskKind::Service) {
            let restarts = match self.restarts.get(task) {
                Some(1) => ", restarted once".to_string(),
                Some(n) => format!(", restarted {n} times"),
                None => String::new(),
            };
            detail =
                if detail.is_empty() { format!("service{restarts}") } else { format!("service{restarts}: {detail}") };
        }
        let took = match outcome {
            Outcome::Cancelled | Outcome::Blocked(_) | Outcome::NotNeeded | Outcome::UpToDate | Outcome::Cached(_) => {
                "-".to_string()
            }
            _ => format_duration(duration),
        };
        (status_style(outcome), text::label(outcome), task.clone(), took, detail)
    }

    /// The last lines of each failed task's output.
    fn failure_tails(&mut self, results: &[(TaskName, Outcome, Duration)]) {
        for (task, outcome, _) in results {
            if !outcome.is_failure() {
                continue;
            }
            let Some(tail) = self.tails.get(task).filter(|t| !t.is_empty()) else { continue };
            let n = tail.len();
            let head = format!("last {n} line{} of {task}'s output:", if n == 1 { "" } else { "s" });
            let mut buf = format!("{}\n", self.paint(Style::new().bold(), &head)).into_bytes();
            for l in tail.lines() {
                buf.extend_from_slice(b"  ");
                buf.extend_from_slice(l.unwrap_or(b"..."));
                buf.push(b'\n');
            }
            self.write(&buf);
        }
    }

    /// The chain of tasks that made the run as long as it was (when there is one worth naming).
    fn critical_path(&mut self) {
        let path = critical_path(&self.timings);
        if !(path.len() > 1 || path.iter().any(|t| self.kind(t) == Some(TaskKind::Service))) {
            return;
        }
        let steps: Vec<String> = path
            .iter()
            .map(|t| {
                let Some(timing) = self.timings.get(t) else { return format!("{t}") };
                let took = match (timing.started, timing.available) {
                    (Some(s), Some(a)) => format_duration(a.duration_since(s).unwrap_or_default()),
                    _ => "-".into(),
                };
                match timing.kind {
                    TaskKind::Service => format!("{t} (ready after {took})"),
                    _ => format!("{t} ({took})"),
                }
            })
            .collect();
        self.irun(&format!("critical path: {}", steps.join(" -> ")));
    }
}

/// Results in the order they came, the latest per task; replacing one costs no search (a graph may have 10,000
/// tasks): where each task's is, the terminal keeps with its timing.
#[derive(Default)]
pub(super) struct Results {
    rows: Vec<Option<(TaskName, Outcome, Duration)>>,
    /// How many rows are there (not removed).
    there: usize,
}

impl Results {
    /// `task`'s result, in place of its `previous` one if it has one: where it is kept.
    pub(super) fn set(&mut self, previous: Option<u32>, task: &TaskName, outcome: Outcome, duration: Duration) -> u32 {
        if let Some(row) = previous {
            self.remove(row);
        }
        self.rows.push(Some((task.clone(), outcome, duration)));
        self.there += 1;
        (self.rows.len() - 1) as u32
    }

    /// Results with room for `n` (a cycle's tasks): rows grown one by one would take room for up to twice as many.
    pub(super) fn with_room(n: usize) -> Results {
        Results { rows: Vec::with_capacity(n), there: 0 }
    }

    pub(super) fn remove(&mut self, row: u32) {
        if let Some(slot) = self.rows.get_mut(row as usize)
            && slot.take().is_some()
        {
            self.there -= 1;
        }
    }

    pub(super) fn len(&self) -> usize {
        self.there
    }

    /// How many rows it has room for.
    #[cfg(test)]
    pub(super) fn room(&self) -> usize {
        self.rows.capacity()
    }

    pub(super) fn into_vec(mut self) -> Vec<(TaskName, Outcome, Duration)> {
        // Kept in place: a row takes as much room as its `Option` (a name is never null), so the rows are moved
        // within the same allocation instead of into a second one.
        self.rows.retain(Option::is_some);
        self.rows.into_iter().map(|row| row.expect("kept only rows that are there")).collect()
    }
}

pub(super) fn status_style(outcome: &Outcome) -> Style {
    match outcome {
        Outcome::Ok | Outcome::UpToDate | Outcome::Cached(_) => AnsiColor::Green.on_default(),
        Outcome::Failed(_) | Outcome::TimedOut(_) => AnsiColor::Red.on_default().bold(),
        Outcome::Cancelled | Outcome::Blocked(_) | Outcome::NotNeeded | Outcome::Restarted => {
            AnsiColor::Yellow.on_default()
        }
    }
}

/// Durations as the summary shows them: "0.31s", "12.0s", "2m05s".
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
