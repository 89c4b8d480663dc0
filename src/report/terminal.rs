//! Human-readable output: task output (prefixed with the task's name, or grouped per task), status lines, a live
//! status area on terminals, GitHub Actions groups and annotations, and a closing summary.
//!
//! Each line is written whole, so lines of parallel tasks never interleave mid-line. Task output is passed through
//! byte for byte (no UTF-8 conversion).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::{Duration, SystemTime};

use anstyle::{AnsiColor, Style};

use crate::events::{Event, RunOutcome, Status, TaskKind, TaskName};
use crate::report::Reporter;
use crate::report::critical::{Timing, critical_path};
use crate::report::progress::Progress;

/// Lines of a failed task's output repeated in the summary.
const TAIL_LINES: usize = 10;

const PALETTE: [AnsiColor; 6] =
    [AnsiColor::Cyan, AnsiColor::Magenta, AnsiColor::Blue, AnsiColor::Yellow, AnsiColor::Green, AnsiColor::BrightBlue];

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub color: bool,
    /// Each task's output together when it finishes, failures last (else: lines as they come, prefixed).
    pub grouped: bool,
    /// GitHub Actions workflow commands: output in `::group::`, failures as `::error::`.
    pub github: bool,
    /// The live status area (only where stdout is a terminal).
    pub progress: bool,
}

pub struct Terminal<W: Write + Send> {
    out: W,
    opts: Options,
    width: usize,
    styles: HashMap<TaskName, Style>,
    timings: HashMap<TaskName, Timing>,
    tails: HashMap<TaskName, VecDeque<Vec<u8>>>,
    /// Each task's `name | ` prefix, coloured as needed.
    prefixes: HashMap<TaskName, Vec<u8>>,
    results: Vec<(TaskName, Status, Duration)>,
    /// Grouped output: each running task's lines so far.
    buffered: HashMap<TaskName, Vec<u8>>,
    /// Grouped output: blocks of failed tasks, shown last.
    failed_blocks: Vec<u8>,
    /// Written at the next flush.
    pending: Vec<u8>,
    progress: Option<Progress>,
    /// Watch mode: summaries come per cycle; services that became ready in the cycle are listed too.
    watch: bool,
    cycle_open: bool,
    ready: Vec<(TaskName, Duration)>,
    run_started: Option<SystemTime>,
}

impl<W: Write + Send> Terminal<W> {
    pub fn new(out: W, opts: Options) -> Self {
        Terminal {
            out,
            opts,
            width: 0,
            styles: HashMap::new(),
            timings: HashMap::new(),
            tails: HashMap::new(),
            prefixes: HashMap::new(),
            results: Vec::new(),
            buffered: HashMap::new(),
            failed_blocks: Vec::new(),
            pending: Vec::new(),
            progress: None,
            watch: false,
            cycle_open: false,
            ready: Vec::new(),
            run_started: None,
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
    fn cycle_header(&mut self, cycle: u32, changed: &[String], rescan: bool, tasks: &[TaskName]) {
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
        let during = if self.cycle_open { " during the run; restarting affected tasks" } else { "" };
        let text = format!("irun: ── change {cycle}{during}: {what}; running {}", tasks.join(", "));
        let line = format!("{}\n", self.paint(Style::new().bold(), &text));
        self.write(line.as_bytes());
    }

    /// Grouped output: a finished task's block (header, then its lines), in GitHub's `::group::` when asked.
    fn block(&mut self, task: &TaskName, status: &Status, headline: &str) {
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
        let results = std::mem::take(&mut self.results);
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
        for (task, status, duration) in &results {
            count(status.label());
            let mut detail = status.detail().unwrap_or_default();
            if self.kind(task) == Some(TaskKind::Service) {
                detail = if detail.is_empty() { "service".into() } else { format!("service: {detail}") };
            }
            let took = match status {
                Status::Cancelled | Status::Skipped(_) | Status::UpToDate => "-".to_string(),
                _ if self.kind(task) == Some(TaskKind::Group) => "-".to_string(),
                _ => format_duration(*duration),
            };
            rows.push((status_style(status), status.label(), task.clone(), took, detail));
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
        for (task, status, _) in &results {
            if !status.is_failure() {
                continue;
            }
            let Some(tail) = self.tails.get(task).filter(|t| !t.is_empty()).cloned() else { continue };
            let head =
                format!("last {} line{} of {task}'s output:", tail.len(), if tail.len() == 1 { "" } else { "s" });
            let line = format!("{}\n", self.paint(Style::new().bold(), &head));
            self.write(line.as_bytes());
            for l in tail {
                let mut buf = b"  ".to_vec();
                buf.extend_from_slice(&l);
                buf.push(b'\n');
                self.write(&buf);
            }
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
        let text = format!("{verdict}: {} in {}", counts.join(", "), format_duration(elapsed));
        self.irun(&text);
    }

    fn started(&mut self, at: SystemTime, task: &TaskName, pid: u32) {
        if let Some(t) = self.timings.get_mut(task) {
            t.started = Some(at);
            t.available = None;
        }
        let service = self.kind(task) == Some(TaskKind::Service);
        if let Some(p) = self.progress.as_mut() {
            p.started(task, service);
        }
        if !self.opts.grouped {
            self.status(task, &format!("started (pid {pid})"));
        }
    }

    fn finished(&mut self, at: SystemTime, task: &TaskName, status: &Status, duration: Duration) {
        let kind = self.kind(task);
        if let Some(t) = self.timings.get_mut(task) {
            // A service's dependents went when it was ready, not when it stopped.
            if kind != Some(TaskKind::Service) || t.available.is_none() {
                t.available = Some(at);
            }
            if kind == Some(TaskKind::Group) {
                t.started = Some(at);
            }
        }
        if let Some(p) = self.progress.as_mut() {
            match (kind, status) {
                (Some(TaskKind::Group), _) => {}
                (_, Status::Restarted) => p.gone(task),
                _ => p.finished(task),
            }
        }
        let text = match (status, kind == Some(TaskKind::Group)) {
            (Status::Ok, true) => "ok".to_string(),
            (Status::Ok, false) => format!("ok in {}", format_duration(duration)),
            (Status::Failed(why), _) => format!("FAILED after {}: {why}", format_duration(duration)),
            (s @ Status::TimedOut(_), _) => format!("TIMED OUT: {}", s.detail().unwrap_or_default()),
            (Status::Cancelled, _) => "cancelled".to_string(),
            (Status::Skipped(why), _) => format!("skipped: {why}"),
            (Status::UpToDate, _) => "up to date".to_string(),
            (Status::Restarted, _) => "restarted".to_string(),
        };
        let has_output = self.buffered.get(task).is_some_and(|b| !b.is_empty());
        let ran = !matches!(status, Status::Cancelled | Status::Skipped(_) | Status::UpToDate);
        if self.opts.grouped && (ran || has_output) && kind != Some(TaskKind::Group) {
            self.block(task, status, &text);
        } else {
            let text = self.paint(status_style(status), &text);
            self.status(task, &text);
            if self.opts.github && status.is_failure() {
                self.write(gh_error(task, status).as_bytes());
            }
        }
        if *status != Status::Restarted {
            self.results.push((task.clone(), status.clone(), duration));
        }
    }

    fn output(&mut self, task: &TaskName, line: &[u8]) {
        if self.opts.grouped {
            let buf = self.buffered.entry(task.clone()).or_default();
            buf.extend_from_slice(line);
            buf.push(b'\n');
        } else {
            if !self.prefixes.contains_key(task) {
                let prefix = format!("{} | ", self.name(task)).into_bytes();
                self.prefixes.insert(task.clone(), prefix);
            }
            self.pending.extend_from_slice(&self.prefixes[task]);
            self.pending.extend_from_slice(line);
            self.pending.push(b'\n');
        }
        let tail = self.tails.entry(task.clone()).or_default();
        // Reuse the oldest line's buffer: a chatty task costs no allocation per line here.
        let mut kept = if tail.len() == TAIL_LINES { tail.pop_front().unwrap_or_default() } else { Vec::new() };
        kept.clear();
        kept.extend_from_slice(line);
        tail.push_back(kept);
    }
}

impl<W: Write + Send> Reporter for Terminal<W> {
    fn event(&mut self, at: SystemTime, event: &Event) {
        match event {
            Event::RunStarted { tasks, watch, .. } => {
                self.watch = *watch;
                self.run_started = Some(at);
                self.width = tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
                for (i, t) in tasks.iter().enumerate() {
                    self.styles.insert(t.name.clone(), PALETTE[i % PALETTE.len()].on_default());
                    self.timings.insert(
                        t.name.clone(),
                        Timing { kind: t.kind, deps: t.deps.clone(), started: None, available: None },
                    );
                }
                if self.opts.progress {
                    let runnable = tasks.iter().filter(|t| t.kind != TaskKind::Group).count();
                    self.progress = Some(Progress::new(runnable, self.width, self.opts.color));
                }
            }
            Event::CycleStarted { cycle, changed, rescan, tasks } => {
                if *cycle > 0 {
                    self.cycle_header(*cycle, changed, *rescan, tasks);
                }
                if !self.cycle_open {
                    self.results.clear();
                    self.ready.clear();
                    if *cycle > 0 && self.opts.progress {
                        // A fresh count for the tasks this cycle runs.
                        let runnable = tasks.iter().filter(|t| self.kind(t) != Some(TaskKind::Group)).count();
                        self.progress = Some(Progress::new(runnable, self.width, self.opts.color));
                    }
                }
                self.cycle_open = true;
            }
            Event::CycleFinished { outcome, elapsed, .. } => {
                self.cycle_open = false;
                if self.opts.grouped {
                    // Services keep running between cycles: show what they said during this one.
                    let mut running: Vec<TaskName> =
                        self.buffered.iter().filter(|(_, b)| !b.is_empty()).map(|(t, _)| t.clone()).collect();
                    running.sort();
                    for task in running {
                        self.block(&task, &Status::Ok, "still running");
                    }
                }
                self.summary(*outcome, *elapsed);
                if !matches!(outcome, RunOutcome::Interrupted(_)) {
                    self.irun("waiting for changes (Ctrl-C to stop)");
                }
            }
            Event::TaskStarted { task, pid } => self.started(at, task, *pid),
            Event::TaskReady { task, after, probe } => {
                if let Some(t) = self.timings.get_mut(task) {
                    t.available = Some(at);
                }
                if let Some(p) = self.progress.as_mut() {
                    p.gone(task);
                }
                let how = probe.as_ref().map(|p| format!(": {p}")).unwrap_or_default();
                self.status(task, &format!("ready after {}{how}", format_duration(*after)));
                if self.watch {
                    self.ready.push((task.clone(), *after));
                }
            }
            Event::TaskStopping { task, reason } => self.status(task, &format!("stopping ({reason})")),
            Event::Output { task, .. } => {
                for line in event.lines() {
                    self.output(task, line);
                }
            }
            Event::TaskFinished { task, status, duration } => self.finished(at, task, status, *duration),
            Event::Notice { task: Some(task), message } => self.status(task, message),
            Event::Notice { task: None, message } => self.irun(message),
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
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        match &self.progress {
            Some(p) => p.print(&mut self.out, &pending),
            None => {
                let _ = self.out.write_all(&pending);
                let _ = self.out.flush();
            }
        }
    }
}

fn status_style(status: &Status) -> Style {
    match status {
        Status::Ok | Status::UpToDate => AnsiColor::Green.on_default(),
        Status::Failed(_) | Status::TimedOut(_) => AnsiColor::Red.on_default().bold(),
        Status::Cancelled | Status::Skipped(_) | Status::Restarted => AnsiColor::Yellow.on_default(),
    }
}

/// A GitHub Actions error annotation for a failed task.
fn gh_error(task: &TaskName, status: &Status) -> String {
    let title = gh_escape(&format!("irun: task {task} failed"), true);
    let message = gh_escape(&status.detail().unwrap_or_else(|| status.label().to_string()), false);
    format!("::error title={title}::{message}\n")
}

/// Escape text for a GitHub Actions workflow command (a property value if `property`).
fn gh_escape(s: &str, property: bool) -> String {
    let s = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    if property { s.replace(':', "%3A").replace(',', "%2C") } else { s }
}

/// Durations as the summary shows them.
///
/// ```
/// use std::time::Duration;
/// use irun::report::terminal::format_duration;
/// assert_eq!(format_duration(Duration::from_millis(310)), "0.31s");
/// assert_eq!(format_duration(Duration::from_millis(12_040)), "12.0s");
/// assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
/// ```
pub fn format_duration(d: Duration) -> String {
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

    #[test]
    fn github_escaping() {
        assert_eq!(gh_escape("a%b\nc", false), "a%25b%0Ac");
        assert_eq!(gh_escape("x: y, z", true), "x%3A y%2C z");
    }
}
