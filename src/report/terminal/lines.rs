//! A task's output and status lines: prefixed with its name as they come, grouped into a block when it ends, or
//! held back until it fails (`output = "on-failure"`).

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, SystemTime};

use super::Terminal;
use super::github::{gh_error, gh_escape};
use super::summary::{format_duration, status_style};
use crate::events::{Outcome, TaskKind, TaskName};
use crate::report::text;

/// The most output held back for a task with `output = "on-failure"`; older lines go first.
const HELD_BYTES: usize = 4 << 20;

/// The output of a task with `output = "on-failure"`, held back until it ends.
#[derive(Default)]
pub(super) struct Held {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Lines let go to stay within [`HELD_BYTES`].
    dropped: usize,
}

impl<W: Write + Send> Terminal<W> {
    pub(super) fn finished(&mut self, at: SystemTime, task: &TaskName, outcome: &Outcome, duration: Duration) {
        let kind = self.kind(task);
        self.timed(at, task, kind, outcome);
        let group = kind == Some(TaskKind::Group);
        if let Some(p) = self.progress.as_mut() {
            match outcome {
                _ if group => {}
                Outcome::Restarted => p.gone(task),
                // Already counted when it became ready.
                _ if self.watch && self.ready.iter().any(|(t, _)| t == task) => p.gone(task),
                _ => p.finished(task),
            }
        }
        let text = match (outcome, group) {
            (Outcome::Ok, true) => "ok".to_string(),
            (Outcome::Ok, false) => format!("ok in {}", format_duration(duration)),
            (Outcome::Failed(f), _) => format!("FAILED after {}: {}", format_duration(duration), text::failure(f)),
            (o @ Outcome::TimedOut(_), _) => format!("TIMED OUT: {}", text::detail(o).unwrap_or_default()),
            (o @ (Outcome::Blocked(_) | Outcome::NotNeeded), _) => {
                format!("skipped: {}", text::detail(o).unwrap_or_default())
            }
            (o, _) => text::label(o).to_string(),
        };
        let text = match self.release_held(task, outcome) {
            Some(hidden) if hidden > 0 && !group => {
                format!("{text} (output hidden: {hidden} line{})", if hidden == 1 { "" } else { "s" })
            }
            _ => text,
        };
        let has_output = self.buffered.get(task).is_some_and(|b| !b.is_empty());
        let ran = !matches!(outcome, Outcome::Cancelled | Outcome::Blocked(_) | Outcome::NotNeeded | Outcome::UpToDate);
        if self.opts.grouped && (ran || has_output) && !group {
            self.block(task, outcome, &text);
        } else {
            let text = self.paint(status_style(outcome), &text);
            self.status(task, &text);
            if self.opts.github && outcome.is_failure() {
                self.write(gh_error(task, outcome).as_bytes());
            }
        }
        if *outcome != Outcome::Restarted && !group {
            self.ready.retain(|(t, _)| t != task);
            let previous = self.timings.get(task).and_then(|t| t.row);
            let row = self.results.set(previous, task, outcome.clone(), duration);
            if let Some(t) = self.timings.get_mut(task) {
                t.row = Some(row);
            }
        }
    }

    /// When the task's instance ended: for the critical path.
    fn timed(&mut self, at: SystemTime, task: &TaskName, kind: Option<TaskKind>, outcome: &Outcome) {
        let Some(t) = self.timings.get_mut(task) else { return };
        match (kind, outcome) {
            (_, Outcome::Restarted) => {
                t.started = None;
                t.available = None;
            }
            // A group is available when its deps are.
            (Some(TaskKind::Group), Outcome::Ok) => {
                t.started = Some(at);
                t.available = Some(at);
            }
            // A service's dependents went when it was ready (set then), not when it stopped.
            (Some(TaskKind::Service), _) => {}
            // Only tasks that ran to their own end make the wall time; a cancelled one did not.
            (_, o) if o.is_recorded() => t.available = Some(at),
            _ => t.available = None,
        }
    }

    /// `output = "on-failure"`: what the task said is shown now if it failed, else dropped. How many lines were
    /// hidden (none for a task whose output is live).
    fn release_held(&mut self, task: &TaskName, outcome: &Outcome) -> Option<usize> {
        if !self.quiet.contains(task) {
            return None;
        }
        let held = self.held.remove(task).unwrap_or_default();
        if *outcome == Outcome::Restarted {
            return None;
        }
        let grouped_lines = if self.opts.grouped && !outcome.is_failure() {
            self.buffered.remove(task).map_or(0, |b| b.newlines() as usize)
        } else {
            0
        };
        if outcome.is_failure() && !held.lines.is_empty() {
            let note = if held.dropped > 0 {
                format!("output held back until it failed ({} earlier lines dropped):", held.dropped)
            } else {
                "output held back until it failed:".to_string()
            };
            self.status(task, &note);
            for line in &held.lines {
                self.prefixed_line(task, line);
            }
            return Some(0);
        }
        Some(if outcome.is_failure() { 0 } else { held.lines.len() + held.dropped + grouped_lines })
    }

    /// Grouped output: a finished task's block (header, then its lines), in GitHub's `::group::` when asked.
    /// The task's lines stream out of their spool (memory, then file): a block costs no more memory than its spool.
    pub(super) fn block(&mut self, task: &TaskName, status: &Outcome, headline: &str) {
        let lines = self.buffered.remove(task).unwrap_or_default();
        let head = if self.opts.github {
            format!("::group::{}\n", gh_escape(&format!("{task}: {headline}"), false))
        } else {
            let head = format!("── {task}: {headline}");
            format!("{}\n", self.paint(status_style(status).bold(), &head))
        };
        let mut foot = String::new();
        if self.opts.github {
            foot.push_str("::endgroup::\n");
            if status.is_failure() {
                foot.push_str(&gh_error(task, status));
            }
        }
        if status.is_failure() {
            // Failures are shown last, so they are the last thing on screen.
            let mut failed = std::mem::take(&mut self.failed_blocks);
            let kept = failed.push(head.as_bytes()).and(failed.append(lines)).and(failed.push(foot.as_bytes()));
            self.failed_blocks = failed;
            self.spooled(kept);
        } else {
            self.write(head.as_bytes());
            self.put_spool(lines);
            self.write(foot.as_bytes());
        }
    }

    /// Make `task`'s `name | ` prefix once.
    fn note_prefix(&mut self, task: &TaskName) {
        if !self.prefixes.contains_key(task) {
            let prefix = format!("{} | ", self.name(task)).into_bytes();
            self.prefixes.insert(task.clone(), prefix);
        }
    }

    /// One line of a task's output, prefixed with its name.
    pub(super) fn prefixed_line(&mut self, task: &TaskName, line: &[u8]) {
        self.note_prefix(task);
        self.pending.extend_from_slice(&self.prefixes[task]);
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
    }

    /// One output event: its lines, `\n`-separated (the last without its newline). Task-level lookups happen once
    /// per event, not once per line, and only the lines that can end up in the failure tail are kept for it.
    pub(super) fn output(&mut self, task: &TaskName, text: &[u8]) {
        if !self.opts.grouped && self.quiet.contains(task) {
            let held = self.held.entry(task.clone()).or_default();
            // A line costs its bytes and its own allocation (so a flood of empty lines is bounded too).
            let cost = |line: &[u8]| line.len() + std::mem::size_of::<Vec<u8>>();
            for line in text.split(|&b| b == b'\n') {
                held.bytes += cost(line);
                held.lines.push_back(line.to_vec());
            }
            while held.bytes > HELD_BYTES {
                let Some(old) = held.lines.pop_front() else { break };
                held.bytes -= cost(&old);
                held.dropped += 1;
            }
        } else if self.opts.grouped {
            let spool = self.buffered.entry(task.clone()).or_default();
            let kept = spool.push(text).and(spool.push(b"\n"));
            self.spooled(kept);
        } else {
            self.note_prefix(task);
            let prefix = &self.prefixes[task];
            // Each line costs one copy: from the event into the batch written to stdout.
            self.pending.reserve(text.len() + (prefix.len() + 1) * 8);
            for line in text.split(|&b| b == b'\n') {
                self.pending.extend_from_slice(prefix);
                self.pending.extend_from_slice(line);
                self.pending.push(b'\n');
            }
        }
        let limit = self.opts.tail;
        self.tails.entry(task.clone()).or_insert_with(|| crate::report::tail::Tail::new(limit)).push(text);
    }
}
