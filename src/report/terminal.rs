//! Human-readable output: task output (prefixed with the task's name, or grouped per task), status lines, a live
//! status area on terminals, GitHub Actions groups and annotations, and a closing summary.
//!
//! Each line is written whole, so lines of parallel tasks never interleave mid-line. Task output is passed through
//! byte for byte (no UTF-8 conversion).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::{Duration, SystemTime};

use anstyle::{AnsiColor, Style};

use crate::events::{Event, Outcome, PlannedTask, RunOutcome, TaskKind, TaskName};
use crate::report::critical::{Timing, critical_path};
use crate::report::progress::Progress;
use crate::report::text;
use crate::report::{Reporter, Trouble};

/// Lines of a failed task's output repeated in the summary.
/// The most output held back for a task with `output = "on-failure"`; older lines go first.
const HELD_BYTES: usize = 4 << 20;

const PALETTE: [AnsiColor; 6] =
    [AnsiColor::Cyan, AnsiColor::Magenta, AnsiColor::Blue, AnsiColor::Yellow, AnsiColor::Green, AnsiColor::BrightBlue];

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    pub(crate) color: bool,
    /// Each task's output together when it finishes, failures last (else: lines as they come, prefixed).
    pub(crate) grouped: bool,
    /// GitHub Actions workflow commands: output in `::group::`, failures as `::error::`.
    pub(crate) github: bool,
    /// The live status area (only where stdout is a terminal).
    pub(crate) progress: bool,
    /// How many of a failed task's last lines the summary shows (`--tail`).
    pub(crate) tail: usize,
}

/// The output of a task with `output = "on-failure"`, held back until it ends.
#[derive(Default)]
struct Held {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Lines let go to stay within [`HELD_BYTES`].
    dropped: usize,
}

pub(crate) struct Terminal<W: Write + Send> {
    out: W,
    opts: Options,
    width: usize,
    styles: HashMap<TaskName, Style>,
    timings: HashMap<TaskName, Timing>,
    tails: HashMap<TaskName, super::tail::Tail>,
    /// Tasks with `output = "on-failure"`, and what they said so far (prefixed output).
    quiet: std::collections::HashSet<TaskName>,
    held: HashMap<TaskName, Held>,
    /// How many times each service was restarted (`restart`) in this run or cycle.
    restarts: HashMap<TaskName, u32>,
    /// Each task's `name | ` prefix, coloured as needed.
    prefixes: HashMap<TaskName, Vec<u8>>,
    /// This run's (or watch cycle's) results, one per task (groups excluded), in the order they came.
    results: Results,
    /// Grouped output: each running task's lines so far.
    buffered: HashMap<TaskName, Vec<u8>>,
    /// Grouped output: blocks of failed tasks, shown last.
    failed_blocks: Vec<u8>,
    /// Written at the next flush.
    pending: Vec<u8>,
    progress: Option<Progress>,
    /// Watch mode: summaries come per cycle; services that became ready in the cycle are listed too.
    watch: bool,
    ready: Vec<(TaskName, Duration)>,
    /// Writing to stdout failed: nothing more is written.
    trouble_seen: bool,
    trouble: Option<Trouble>,
}

impl<W: Write + Send> Terminal<W> {
    pub(crate) fn new(out: W, opts: Options) -> Self {
        Terminal {
            out,
            opts,
            width: 0,
            styles: HashMap::new(),
            timings: HashMap::new(),
            tails: HashMap::new(),
            quiet: Default::default(),
            held: HashMap::new(),
            restarts: HashMap::new(),
            prefixes: HashMap::new(),
            results: Results::default(),
            buffered: HashMap::new(),
            failed_blocks: Vec::new(),
            pending: Vec::new(),
            progress: None,
            watch: false,
            ready: Vec::new(),
            trouble_seen: false,
            trouble: None,
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.opts.color { format!("{}{text}{}", style.render(), style.render_reset()) } else { text.to_string() }
    }

    fn name(&self, task: &TaskName) -> String {
        let style = self.styles.get(task).copied().unwrap_or_default();
        self.paint(style, &format!("{:<width$}", task, width = self.width))
    }

    fn kind(&self, task: &TaskName) -> Option<TaskKind> {
        self.timings.get(task).map(|t| t.kind)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// A status line about a task: `name  * text`.
    fn status(&mut self, task: &TaskName, text: &str) {
        let marker = self.paint(Style::new().bold(), "*");
        let line = format!("{} {marker} {text}\n", self.name(task));
        self.write(line.as_bytes());
    }

    /// A line about the run itself.
    fn irun(&mut self, text: &str) {
        let line = format!("{} {text}\n", self.paint(Style::new().bold(), "irun:"));
        self.write(line.as_bytes());
    }

    /// The header of a watch cycle: what changed, what reruns.
    fn cycle_header(&mut self, cycle: u32, changed: &[String], rescan: bool, tasks: &[TaskName], restarted: bool) {
        const SHOWN: usize = 5;
        let mut what = if rescan {
            "anything may have changed (events were lost, or a folder was removed or moved)".to_string()
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

    /// Grouped output: a finished task's block (header, then its lines), in GitHub's `::group::` when asked.
    fn block(&mut self, task: &TaskName, status: &Outcome, headline: &str) {
        let lines = self.buffered.remove(task).unwrap_or_default();
        let mut block = Vec::new();
        if self.opts.github {
            block.extend_from_slice(
                format!("::group::{}\n", gh_escape(&format!("{task}: {headline}"), false)).as_bytes(),
            );
        } else {
            let head = format!("── {task}: {headline}");
            block.extend_from_slice(format!("{}\n", self.paint(status_style(status).bold(), &head)).as_bytes());
        }
        block.extend_from_slice(&lines);
        if self.opts.github {
            block.extend_from_slice(b"::endgroup::\n");
        }
        if status.is_failure() {
            if self.opts.github {
                block.extend_from_slice(gh_error(task, status).as_bytes());
            }
            // Failures are shown last, so they are the last thing on screen.
            self.failed_blocks.extend_from_slice(&block);
        } else {
            self.write(&block);
        }
    }

    fn summary(&mut self, outcome: RunOutcome, elapsed: Duration) {
        if let Some(p) = self.progress.as_mut() {
            p.clear();
        }
        let failed = std::mem::take(&mut self.failed_blocks);
        self.write(&failed);
        self.irun("summary");
        let results = std::mem::take(&mut self.results).into_vec();
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        let mut count = |label: &'static str| match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        };
        let mut rows = Vec::new();
        for (task, after) in std::mem::take(&mut self.ready) {
            count("ready");
            rows.push((
                AnsiColor::Green.on_default(),
                "ready",
                task,
                format_duration(after),
                "service, still running".to_string(),
            ));
        }
        for (task, outcome, duration) in &results {
            count(text::label(outcome));
            let mut detail = text::detail(outcome).unwrap_or_default();
            if self.kind(task) == Some(TaskKind::Service) {
                let restarts = match self.restarts.get(task) {
                    Some(1) => ", restarted once".to_string(),
                    Some(n) => format!(", restarted {n} times"),
                    None => String::new(),
                };
                detail = if detail.is_empty() {
                    format!("service{restarts}")
                } else {
                    format!("service{restarts}: {detail}")
                };
            }
            let took = match outcome {
                Outcome::Cancelled | Outcome::Blocked(_) | Outcome::NotNeeded | Outcome::UpToDate => "-".to_string(),
                _ => format_duration(*duration),
            };
            rows.push((status_style(outcome), text::label(outcome), task.clone(), took, detail));
        }
        for (style, label, task, took, detail) in rows {
            let line = format!(
                "  {} {:<width$} {:>8}  {detail}",
                self.paint(style, &format!("{label:<10}")),
                task,
                took,
                width = self.width
            );
            self.write(format!("{}\n", line.trim_end()).as_bytes());
        }
        for (task, outcome, _) in &results {
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
        let path = critical_path(&self.timings);
        if path.len() > 1 || path.iter().any(|t| self.kind(t) == Some(TaskKind::Service)) {
            let steps: Vec<String> = path
                .iter()
                .map(|t| {
                    let timing = &self.timings[t];
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

    /// Tasks as the run (or a reloaded Irun.toml) declares them.
    fn plan(&mut self, tasks: &[PlannedTask]) {
        self.width = self.width.max(tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(0));
        self.prefixes.clear();
        for t in tasks {
            if t.quiet {
                self.quiet.insert(t.name.clone());
            } else {
                self.quiet.remove(&t.name);
            }
            if !self.styles.contains_key(&t.name) {
                let colour = PALETTE[self.styles.len() % PALETTE.len()];
                self.styles.insert(t.name.clone(), colour.on_default());
            }
            self.timings
                .insert(t.name.clone(), Timing { kind: t.kind, deps: t.deps.clone(), started: None, available: None });
        }
    }

    /// Forget what `task` did so far in this cycle: it runs again.
    fn forget(&mut self, task: &TaskName) {
        self.results.remove(task);
        self.ready.retain(|(t, _)| t != task);
        if let Some(t) = self.timings.get_mut(task) {
            t.started = None;
            t.available = None;
        }
    }

    /// Tasks counted as done in the status area and the summary: every result (groups excluded), and in watch
    /// mode services that became ready.
    fn done_count(&self) -> usize {
        self.results.len() + self.ready.len()
    }

    fn cycle_started(&mut self, cycle: u32, changed: &[String], rescan: bool, tasks: &[TaskName], restarted: bool) {
        if cycle > 0 {
            self.cycle_header(cycle, changed, rescan, tasks, restarted);
        }
        if restarted {
            for task in tasks {
                self.forget(task);
            }
        } else {
            // A fresh cycle: its summary, tails and critical path are its own.
            self.results = Results::default();
            self.ready.clear();
            self.tails.clear();
            self.restarts.clear();
            for t in self.timings.values_mut() {
                t.started = None;
                t.available = None;
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

    fn started(&mut self, at: SystemTime, task: &TaskName, pid: u32, port: Option<u16>) {
        if let Some(t) = self.timings.get_mut(task) {
            t.started = Some(at);
            t.available = None;
        }
        // A new instance: the failure tail shows what it says, not what an earlier one said.
        if let Some(tail) = self.tails.get_mut(task) {
            tail.clear();
        }
        let service = self.kind(task) == Some(TaskKind::Service);
        if let Some(p) = self.progress.as_mut() {
            p.started(task, service);
        }
        if !self.opts.grouped {
            match port {
                Some(port) => self.status(task, &format!("started (pid {pid}, port {port})")),
                None => self.status(task, &format!("started (pid {pid})")),
            }
        }
    }

    fn finished(&mut self, at: SystemTime, task: &TaskName, outcome: &Outcome, duration: Duration) {
        let kind = self.kind(task);
        if let Some(t) = self.timings.get_mut(task) {
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
        let quiet = self.quiet.contains(task);
        // `output = "on-failure"`: what it said is shown now if it failed, else dropped (and counted).
        let mut text = text;
        if quiet && *outcome != Outcome::Restarted {
            let held = self.held.remove(task).unwrap_or_default();
            let grouped_lines = if self.opts.grouped && !outcome.is_failure() {
                self.buffered.remove(task).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
            } else {
                0
            };
            let hidden = held.lines.len() + held.dropped + grouped_lines;
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
            } else if !outcome.is_failure() && hidden > 0 && !group {
                text = format!("{text} (output hidden: {hidden} line{})", if hidden == 1 { "" } else { "s" });
            }
        } else if quiet {
            self.held.remove(task);
        }
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
            self.results.set(task, outcome.clone(), duration);
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
    fn prefixed_line(&mut self, task: &TaskName, line: &[u8]) {
        self.note_prefix(task);
        self.pending.extend_from_slice(&self.prefixes[task]);
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
    }

    /// One output event: its lines, `\n`-separated (the last without its newline). Task-level lookups happen once
    /// per event, not once per line, and only the lines that can end up in the failure tail are kept for it.
    fn output(&mut self, task: &TaskName, text: &[u8]) {
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
            let buf = self.buffered.entry(task.clone()).or_default();
            buf.extend_from_slice(text);
            buf.push(b'\n');
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
        self.tails.entry(task.clone()).or_insert_with(|| super::tail::Tail::new(limit)).push(text);
    }
}

impl<W: Write + Send> Reporter for Terminal<W> {
    fn event(&mut self, at: SystemTime, event: &Event) {
        match event {
            Event::RunStarted { tasks, watch, .. } => {
                self.watch = *watch;
                self.plan(tasks);
                if self.opts.progress && !self.watch {
                    let runnable = tasks.iter().filter(|t| t.kind != TaskKind::Group).count();
                    self.progress = Some(Progress::new(runnable, self.width, self.opts.color));
                }
            }
            Event::PlanChanged { tasks, .. } => self.plan(tasks),
            Event::CycleStarted { cycle, changed, rescan, tasks, restarted } => {
                self.cycle_started(*cycle, changed, *rescan, tasks, *restarted);
            }
            Event::CycleFinished { outcome, elapsed, .. } => {
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
                self.summary(*outcome, *elapsed);
                self.progress = None;
                if !matches!(outcome, RunOutcome::Interrupted(_)) {
                    self.irun("waiting for changes (Ctrl-C to stop)");
                }
            }
            Event::TaskStarted { task, pid, port } => self.started(at, task, *pid, *port),
            Event::TaskReady { task, after, probe, reused } => {
                if let Some(t) = self.timings.get_mut(task) {
                    t.available = Some(at);
                }
                let counted = self.watch && self.kind(task) == Some(TaskKind::Service);
                if let Some(p) = self.progress.as_mut() {
                    if counted { p.finished(task) } else { p.gone(task) }
                }
                let how = text::ready_probe(probe.as_ref(), *reused).map(|p| format!(": {p}")).unwrap_or_default();
                self.status(task, &format!("ready after {}{how}", format_duration(*after)));
                if counted {
                    self.ready.retain(|(t, _)| t != task);
                    self.ready.push((task.clone(), *after));
                }
            }
            Event::TaskRestarting { task, attempt, max, exit, delay } => {
                *self.restarts.entry(task.clone()).or_default() += 1;
                let message = format!(
                    "exited ({}); restarting in {} (restart {attempt} of {max})",
                    text::exit(*exit),
                    format_duration(*delay)
                );
                let message = self.paint(AnsiColor::Yellow.on_default(), &message);
                self.status(task, &message);
            }
            Event::TaskStopping { task, reason } => {
                self.status(task, &format!("stopping ({})", text::stop_reason(*reason)));
            }
            Event::Output { task, text, .. } => self.output(task, text),
            Event::TaskFinished { task, outcome, duration } => self.finished(at, task, outcome, *duration),
            Event::Interrupted { .. } => {
                // The terminal echoed ^C into the status area: drawing on would leave a stale line behind. Plain
                // lines from here on.
                if let Some(mut p) = self.progress.take() {
                    p.clear();
                }
                self.opts.progress = false;
                let message = text::interrupted(event).unwrap_or_default();
                self.irun(&message);
            }
            Event::RunFinished { outcome, elapsed } if !self.watch => self.summary(*outcome, *elapsed),
            Event::RunFinished { outcome, elapsed } => {
                if let Some(p) = self.progress.as_mut() {
                    p.clear();
                }
                let how = match outcome {
                    RunOutcome::Interrupted(sig) => format!("interrupted by {}", sig.as_str()),
                    RunOutcome::Passed | RunOutcome::Failed => "done".to_string(),
                };
                self.irun(&format!("stopped watching ({how}) after {}", format_duration(*elapsed)));
            }
            other => match text::notice(other) {
                Some((Some(task), message)) => self.status(task, &message),
                Some((None, message)) => self.irun(&message),
                None => {}
            },
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() || self.trouble_seen {
            self.pending.clear();
            return;
        }
        let written = match &self.progress {
            Some(p) => p.print(&mut self.out, &self.pending),
            None => self.out.write_all(&self.pending).and_then(|()| self.out.flush()),
        };
        // Cleared, not dropped: the next batch reuses the buffer.
        self.pending.clear();
        if let Err(e) = written {
            // Nothing more is written: the status area goes too.
            self.trouble_seen = true;
            self.trouble = Some(Trouble::of(&e, "output", crate::report::STDOUT));
            if let Some(mut p) = self.progress.take() {
                p.clear();
            }
        }
    }

    fn trouble(&mut self) -> Option<Trouble> {
        self.trouble.take()
    }
}

/// Results in the order they came, the latest per task; replacing one costs no search (a graph may have 10,000
/// tasks).
#[derive(Default)]
struct Results {
    rows: Vec<Option<(TaskName, Outcome, Duration)>>,
    at: HashMap<TaskName, usize>,
}

impl Results {
    fn set(&mut self, task: &TaskName, outcome: Outcome, duration: Duration) {
        self.remove(task);
        self.at.insert(task.clone(), self.rows.len());
        self.rows.push(Some((task.clone(), outcome, duration)));
    }

    fn remove(&mut self, task: &TaskName) {
        if let Some(i) = self.at.remove(task) {
            self.rows[i] = None;
        }
    }

    fn len(&self) -> usize {
        self.at.len()
    }

    fn into_vec(self) -> Vec<(TaskName, Outcome, Duration)> {
        self.rows.into_iter().flatten().collect()
    }
}

fn status_style(outcome: &Outcome) -> Style {
    match outcome {
        Outcome::Ok | Outcome::UpToDate => AnsiColor::Green.on_default(),
        Outcome::Failed(_) | Outcome::TimedOut(_) => AnsiColor::Red.on_default().bold(),
        Outcome::Cancelled | Outcome::Blocked(_) | Outcome::NotNeeded | Outcome::Restarted => {
            AnsiColor::Yellow.on_default()
        }
    }
}

/// A GitHub Actions error annotation for a failed task.
fn gh_error(task: &TaskName, outcome: &Outcome) -> String {
    let title = gh_escape(&format!("irun: task {task} failed"), true);
    let message = gh_escape(&text::detail(outcome).unwrap_or_else(|| text::label(outcome).to_string()), false);
    format!("::error title={title}::{message}\n")
}

/// Escape text for a GitHub Actions workflow command (a property value if `property`).
fn gh_escape(s: &str, property: bool) -> String {
    let s = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    if property { s.replace(':', "%3A").replace(',', "%2C") } else { s }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{ChildExit, Failure};

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn planned(name: &str, kind: TaskKind, deps: &[&str]) -> PlannedTask {
        PlannedTask { name: name.into(), kind, deps: deps.iter().map(|d| TaskName::from(*d)).collect(), quiet: false }
    }

    fn names(list: &[&str]) -> Vec<TaskName> {
        list.iter().map(|n| TaskName::from(*n)).collect()
    }

    #[test]
    fn a_quiet_service_stays_quiet_at_the_end_of_a_grouped_watch_cycle() {
        let opts = Options { color: false, grouped: true, github: false, progress: false, tail: 10 };
        let mut t = Terminal::new(Vec::new(), opts);
        let quiet = PlannedTask { quiet: true, ..planned("svc", TaskKind::Service, &[]) };
        t.event(
            at(1),
            &Event::RunStarted { tasks: vec![quiet, planned("loud", TaskKind::Service, &[])], jobs: 2, watch: true },
        );
        for (i, task) in ["svc", "loud"].into_iter().enumerate() {
            t.event(at(2), &Event::TaskStarted { task: task.into(), pid: i as u32, port: None });
            let text = format!("{task} chatter").into_bytes();
            t.event(at(3), &Event::Output { task: task.into(), stream: crate::events::Stream::Stdout, text });
        }
        t.event(at(4), &Event::CycleFinished { cycle: 0, outcome: RunOutcome::Passed, elapsed: Duration::ZERO });
        t.flush();
        let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
        assert!(text.contains("loud chatter") && !text.contains("svc chatter"), "{text}");
    }

    /// The counts the status area shows, and the ones the summary line gives, for a watch cycle.
    #[test]
    fn the_status_area_and_the_summary_count_the_same_tasks() {
        let opts = Options { color: false, grouped: false, github: false, progress: true, tail: 10 };
        let mut t = Terminal::new(Vec::new(), opts);
        let mut clock = 0;
        let mut send = |t: &mut Terminal<Vec<u8>>, e: Event| {
            clock += 10;
            t.event(at(clock), &e);
        };
        let tasks = vec![
            planned("svc", TaskKind::Service, &[]),
            planned("a", TaskKind::Task, &["svc"]),
            planned("b", TaskKind::Task, &[]),
            planned("all", TaskKind::Group, &["a", "b"]),
        ];
        send(&mut t, Event::RunStarted { tasks, jobs: 2, watch: true });
        let cycle0 = names(&["svc", "b", "a", "all"]);
        send(&mut t, Event::CycleStarted { cycle: 0, changed: vec![], rescan: false, tasks: cycle0, restarted: false });
        for task in ["svc", "b"] {
            send(&mut t, Event::TaskStarted { task: task.into(), pid: 1, port: None });
        }
        send(
            &mut t,
            Event::TaskReady { task: "svc".into(), after: Duration::from_millis(5), probe: None, reused: false },
        );
        send(&mut t, Event::TaskStarted { task: "a".into(), pid: 2, port: None });
        send(&mut t, Event::TaskFinished { task: "a".into(), outcome: Outcome::Ok, duration: Duration::ZERO });
        let failed = Outcome::Failed(Failure::Exit(ChildExit::Code(1)));
        send(&mut t, Event::TaskFinished { task: "b".into(), outcome: failed, duration: Duration::ZERO });
        send(&mut t, Event::TaskFinished { task: "all".into(), outcome: Outcome::Ok, duration: Duration::ZERO });
        assert_eq!(t.progress.as_ref().unwrap().counts(), (3, 3), "svc (ready), a and b; not the group");

        // A change restarts the cycle: a runs again, and the count follows.
        let cycle1 = names(&["a", "all"]);
        send(&mut t, Event::CycleFinished { cycle: 0, outcome: RunOutcome::Failed, elapsed: Duration::ZERO });
        t.flush();
        let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
        assert!(text.contains("irun: failed: 1 ready, 1 ok, 1 failed in"), "{text}");
        send(
            &mut t,
            Event::CycleStarted { cycle: 1, changed: vec!["x".into()], rescan: false, tasks: cycle1, restarted: false },
        );
        send(&mut t, Event::TaskStarted { task: "a".into(), pid: 3, port: None });
        send(&mut t, Event::TaskFinished { task: "a".into(), outcome: Outcome::Ok, duration: Duration::ZERO });
        assert_eq!(t.progress.as_ref().unwrap().counts(), (1, 1));
        let cycle2 = names(&["a", "b", "all"]);
        send(
            &mut t,
            Event::CycleStarted {
                cycle: 2,
                changed: vec!["x".into(), "y".into()],
                rescan: false,
                tasks: cycle2,
                restarted: true,
            },
        );
        assert_eq!(t.progress.as_ref().unwrap().counts(), (0, 2), "a runs again, and b joins");
        for task in ["a", "b"] {
            send(&mut t, Event::TaskStarted { task: task.into(), pid: 4, port: None });
            send(&mut t, Event::TaskFinished { task: task.into(), outcome: Outcome::Ok, duration: Duration::ZERO });
        }
        assert_eq!(t.progress.as_ref().unwrap().counts(), (2, 2));
        send(&mut t, Event::CycleFinished { cycle: 2, outcome: RunOutcome::Passed, elapsed: Duration::ZERO });
        t.flush();
        let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
        assert!(text.contains("irun: passed: 2 ok in"), "{text}");
    }

    #[test]
    fn durations_have_three_significant_figures_then_minutes() {
        assert_eq!(format_duration(Duration::from_millis(310)), "0.31s");
        assert_eq!(format_duration(Duration::from_millis(12_040)), "12.0s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn github_escaping() {
        assert_eq!(gh_escape("a%b\nc", false), "a%25b%0Ac");
        assert_eq!(gh_escape("x: y, z", true), "x%3A y%2C z");
    }
}
