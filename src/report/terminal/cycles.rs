//! Watch mode on the terminal: a header per cycle, and what each cycle counts.

use std::io::Write;
use std::time::Duration;

use anstyle::Style;

use super::summary::{Results, format_duration};
use super::{PALETTE, Terminal};
use crate::events::{Outcome, PlannedTask, RunOutcome, TaskKind, TaskName};
use crate::report::critical::{Timing, Timings};
use crate::report::progress::Progress;

impl<W: Write + Send> Terminal<W> {
    /// The header of a watch cycle: what changed, what reruns.
    fn cycle_header(&mut self, cycle: u32, changed: &[String], rescan: bool, tasks: &[TaskName], restarted: bool) {
        const SHOWN: usize = 5;
        let mut what = if rescan {
            "events were lost; every task's sources were checked, these changed".to_string()
        } else {
            changed.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ")
        };
        if !rescan && changed.len() > SHOWN {
            what.push_str(&format!(" (+{} more)", changed.len() - SHOWN));
        }
        let tasks: Vec<&str> = tasks.iter().map(|t| &**t).collect();
        let during = if restarted { " during the run; restarting affected tasks" } else { "" };
        let text = format!("irun: ── change {cycle}{during}: {what}; running {}", tasks.join(", "));
        let line = format!("{}\n", self.paint(Style::new().bold(), &text));
        self.write(line.as_bytes());
    }

    /// Tasks as the run (or a reloaded Irun.toml) declares them.
    pub(super) fn plan(&mut self, tasks: &[PlannedTask]) {
        self.width = self.width.max(tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(0));
        self.prefixes.clear();
        let mut list = Vec::with_capacity(tasks.len());
        for t in tasks {
            if t.quiet {
                self.quiet.insert(t.name.clone());
            } else if self.quiet.remove(&t.name) {
                // `output` became live (a reload): what was held back is dropped, what comes next is shown.
                self.held.remove(&t.name);
            }
            // A task keeps its colour (and its result) across reloads; each new one takes the next colour.
            let (colour, row) = match self.timings.get(&t.name) {
                Some(known) => (known.colour, known.row),
                None => {
                    self.seen += 1;
                    (((self.seen - 1) % PALETTE.len()) as u8, None)
                }
            };
            let timing = Timing { kind: t.kind, deps: t.deps.clone(), started: None, available: None, colour, row };
            list.push((t.name.clone(), timing));
        }
        // Tasks a reload removed keep theirs, for what they still say.
        let planned = Timings::new(list);
        let mut list = self.timings.take();
        list.retain(|(name, _)| planned.get(name).is_none());
        list.extend(planned.into_list());
        self.timings = Timings::new(list);
    }

    /// Forget what `task` did so far in this cycle: it runs again.
    fn forget(&mut self, task: &TaskName) {
        self.ready.retain(|(t, _)| t != task);
        if let Some(t) = self.timings.get_mut(task) {
            t.started = None;
            t.available = None;
            if let Some(row) = t.row.take() {
                self.results.remove(row);
            }
        }
    }

    /// Tasks counted as done in the status area and the summary: every result (groups excluded), and in watch
    /// mode services that became ready.
    fn done_count(&self) -> usize {
        self.results.len() + self.ready.len()
    }

    pub(super) fn cycle_started(
        &mut self,
        cycle: u32,
        changed: &[String],
        rescan: bool,
        tasks: &[TaskName],
        restarted: bool,
    ) {
        if cycle > 0 {
            self.cycle_header(cycle, changed, rescan, tasks, restarted);
        }
        if restarted {
            for task in tasks {
                self.forget(task);
            }
        } else {
            // A fresh cycle: its summary, tails and critical path are its own.
            self.results = Results::with_room(tasks.len());
            self.ready.clear();
            self.tails.clear();
            self.restarts.clear();
            for t in self.timings.values_mut() {
                t.started = None;
                t.available = None;
                t.row = None;
            }
        }
        if self.opts.progress {
            let total = tasks.iter().filter(|t| self.kind(t) != Some(TaskKind::Group)).count();
            let done = self.done_count();
            match self.progress.as_mut() {
                Some(p) if restarted => p.recount(done, total),
                _ => {
                    if let Some(mut old) = self.progress.take() {
                        old.clear();
                    }
                    self.progress = Some(Progress::new(total, self.width, self.opts.color));
                }
            }
        }
    }

    /// Every task of the cycle finished: what services said meanwhile (grouped output), the cycle's summary.
    pub(super) fn cycle_finished(&mut self, outcome: RunOutcome, elapsed: Duration) {
        if self.opts.grouped {
            // Services keep running between cycles: show what they said during this one.
            // (Those with `output = "on-failure"` have not failed: they stay quiet.)
            let mut running: Vec<TaskName> = self
                .buffered
                .iter()
                .filter(|(t, b)| !b.is_empty() && !self.quiet.contains(*t))
                .map(|(t, _)| t.clone())
                .collect();
            running.sort();
            for task in running {
                self.block(&task, &Outcome::Ok, "still running");
            }
        }
        self.summary(outcome, elapsed);
        self.progress = None;
        if !matches!(outcome, RunOutcome::Interrupted(_)) {
            self.irun("waiting for changes (Ctrl-C to stop)");
        }
    }

    /// Watch mode ends.
    pub(super) fn stopped_watching(&mut self, outcome: RunOutcome, elapsed: Duration) {
        if let Some(p) = self.progress.as_mut() {
            p.clear();
        }
        let how = match outcome {
            RunOutcome::Interrupted(sig) => format!("interrupted by {}", sig.as_str()),
            RunOutcome::Passed | RunOutcome::Failed => "done".to_string(),
        };
        self.irun(&format!("stopped watching ({how}) after {}", format_duration(elapsed)));
    }
}
