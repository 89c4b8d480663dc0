//! Human-readable output: each task's lines prefixed with its name, status lines, and a closing summary.
//!
//! Each line is written whole, so lines of parallel tasks never interleave mid-line. Task output is passed through
//! byte for byte (no UTF-8 conversion).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::Duration;

use anstyle::{AnsiColor, Style};

use crate::events::{Event, RunOutcome, Status, TaskKind, TaskName};
use crate::report::Reporter;

/// Lines of a failed task's output repeated in the summary.
const TAIL_LINES: usize = 10;

const PALETTE: [AnsiColor; 6] =
    [AnsiColor::Cyan, AnsiColor::Magenta, AnsiColor::Blue, AnsiColor::Yellow, AnsiColor::Green, AnsiColor::BrightBlue];

pub struct Terminal<W: Write + Send> {
    out: W,
    color: bool,
    width: usize,
    styles: HashMap<TaskName, Style>,
    kinds: HashMap<TaskName, TaskKind>,
    tails: HashMap<TaskName, VecDeque<Vec<u8>>>,
    results: Vec<(TaskName, Status, Duration)>,
    /// Watch mode: summaries come per cycle; services that became ready in the cycle are listed too.
    watch: bool,
    cycle_open: bool,
    ready: Vec<(TaskName, Duration)>,
}

impl<W: Write + Send> Terminal<W> {
    pub fn new(out: W, color: bool) -> Self {
        Terminal {
            out,
            color,
            width: 0,
            styles: HashMap::new(),
            kinds: HashMap::new(),
            tails: HashMap::new(),
            results: Vec::new(),
            watch: false,
            cycle_open: false,
            ready: Vec::new(),
        }
    }

    /// The header of a watch cycle: what changed, what reruns.
    fn cycle_header(&mut self, cycle: u32, changed: &[String], rescan: bool, tasks: &[TaskName]) {
        const SHOWN: usize = 5;
        let mut what = if rescan {
            "events were lost (kernel queue overflow), so anything may have changed".to_string()
        } else {
            changed.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ")
        };
        if !rescan && changed.len() > SHOWN {
            what.push_str(&format!(" (+{} more)", changed.len() - SHOWN));
        }
        let tasks: Vec<&str> = tasks.iter().map(|t| &**t).collect();
        let during = if self.cycle_open { " during the run; restarting affected tasks" } else { "" };
        let text = format!("change {cycle}{during}: {what}; running {}", tasks.join(", "));
        let line = format!(
            "{}
",
            self.paint(Style::new().bold(), &format!("irun: ── {text}"))
        );
        let _ = self.out.write_all(line.as_bytes());
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color { format!("{}{text}{}", style.render(), style.render_reset()) } else { text.to_string() }
    }

    fn name(&self, task: &TaskName) -> String {
        let style = self.styles.get(task).copied().unwrap_or_default();
        self.paint(style, &format!("{:<width$}", task, width = self.width))
    }

    /// A status line about a task: `name  * text`.
    fn status(&mut self, task: &TaskName, text: &str) {
        let marker = self.paint(Style::new().bold(), "*");
        let line = format!("{} {marker} {text}\n", self.name(task));
        let _ = self.out.write_all(line.as_bytes());
    }

    /// A line about the run itself.
    fn irun(&mut self, text: &str) {
        let line = format!("{} {text}\n", self.paint(Style::new().bold(), "irun:"));
        let _ = self.out.write_all(line.as_bytes());
    }

    fn summary(&mut self, outcome: RunOutcome, elapsed: Duration) {
        self.irun("summary");
        let results = std::mem::take(&mut self.results);
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for (task, after) in std::mem::take(&mut self.ready) {
            let line = format!(
                "  {} {:<width$} {:>8}  service, still running\n",
                self.paint(AnsiColor::Green.on_default(), &format!("{:<10}", "ready")),
                task,
                format_duration(after),
                width = self.width
            );
            let _ = self.out.write_all(line.as_bytes());
            match counts.iter_mut().find(|(l, _)| *l == "ready") {
                Some((_, n)) => *n += 1,
                None => counts.push(("ready", 1)),
            }
        }
        for (task, status, duration) in &results {
            let label = status.label();
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
            let style = status_style(status);
            let mut detail = status.detail().unwrap_or_default();
            if self.kinds.get(task) == Some(&TaskKind::Service) {
                detail = if detail.is_empty() { "service".into() } else { format!("service: {detail}") };
            }
            let took = match status {
                Status::Cancelled | Status::Skipped(_) | Status::UpToDate => "-".to_string(),
                _ if self.kinds.get(task) == Some(&TaskKind::Group) => "-".to_string(),
                _ => format_duration(*duration),
            };
            let line = format!(
                "  {} {:<width$} {:>8}  {detail}\n",
                self.paint(style, &format!("{:<10}", status.label())),
                task,
                took,
                width = self.width
            );
            let _ = self.out.write_all(line.trim_end().as_bytes());
            let _ = self.out.write_all(b"\n");
        }
        for (task, status, _) in &results {
            if !status.is_failure() {
                continue;
            }
            let Some(tail) = self.tails.get(task).filter(|t| !t.is_empty()) else { continue };
            let head =
                format!("last {} line{} of {task}'s output:", tail.len(), if tail.len() == 1 { "" } else { "s" });
            let line = format!("{}\n", self.paint(Style::new().bold(), &head));
            let _ = self.out.write_all(line.as_bytes());
            for l in tail.clone() {
                let mut buf = b"  ".to_vec();
                buf.extend_from_slice(&l);
                buf.push(b'\n');
                let _ = self.out.write_all(&buf);
            }
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
}

impl<W: Write + Send> Reporter for Terminal<W> {
    fn event(&mut self, event: &Event) {
        match event {
            Event::CycleStarted { cycle, changed, rescan, tasks } => {
                if *cycle > 0 {
                    self.cycle_header(*cycle, changed, *rescan, tasks);
                }
                if !self.cycle_open {
                    self.results.clear();
                    self.ready.clear();
                }
                self.cycle_open = true;
            }
            Event::CycleFinished { outcome, elapsed, .. } => {
                self.cycle_open = false;
                self.summary(*outcome, *elapsed);
                self.irun("waiting for changes (Ctrl-C to stop)");
            }
            Event::RunStarted { tasks, watch, .. } => {
                self.watch = *watch;
                self.width = tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
                for (i, t) in tasks.iter().enumerate() {
                    self.styles.insert(t.name.clone(), PALETTE[i % PALETTE.len()].on_default());
                    self.kinds.insert(t.name.clone(), t.kind);
                }
            }
            Event::TaskStarted { task, pid } => self.status(task, &format!("started (pid {pid})")),
            Event::TaskReady { task, after, probe } => {
                let how = probe.as_ref().map(|p| format!(": {p}")).unwrap_or_default();
                self.status(task, &format!("ready after {}{how}", format_duration(*after)));
                if self.watch {
                    self.ready.push((task.clone(), *after));
                }
            }
            Event::TaskStopping { task, reason } => self.status(task, &format!("stopping ({reason})")),
            Event::Output { task, line, .. } => {
                let mut buf = format!("{} | ", self.name(task)).into_bytes();
                buf.extend_from_slice(line);
                buf.push(b'\n');
                let _ = self.out.write_all(&buf);
                let tail = self.tails.entry(task.clone()).or_default();
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            Event::TaskFinished { task, status, duration } => {
                let is_group = self.kinds.get(task) == Some(&TaskKind::Group);
                let text = match (status, is_group) {
                    (Status::Ok, true) => "ok".to_string(),
                    (Status::Ok, false) => format!("ok in {}", format_duration(*duration)),
                    (Status::Failed(why), _) => format!("FAILED after {}: {why}", format_duration(*duration)),
                    (s @ Status::TimedOut(_), _) => format!("TIMED OUT: {}", s.detail().unwrap_or_default()),
                    (Status::Cancelled, _) => "cancelled".to_string(),
                    (Status::Skipped(why), _) => format!("skipped: {why}"),
                    (Status::UpToDate, _) => "up to date".to_string(),
                };
                let text = self.paint(status_style(status), &text);
                self.status(task, &text);
                self.results.push((task.clone(), status.clone(), *duration));
            }
            Event::Notice { task: Some(task), message } => self.status(task, message),
            Event::Notice { task: None, message } => self.irun(message),
            Event::RunFinished { outcome, elapsed } if !self.watch => self.summary(*outcome, *elapsed),
            Event::RunFinished { outcome, elapsed } => {
                let how = match outcome {
                    RunOutcome::Interrupted(sig) => format!("interrupted by {}", sig.as_str()),
                    RunOutcome::Passed | RunOutcome::Failed => "done".to_string(),
                };
                self.irun(&format!("stopped watching ({how}) after {}", format_duration(*elapsed)));
            }
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

fn status_style(status: &Status) -> Style {
    match status {
        Status::Ok | Status::UpToDate => AnsiColor::Green.on_default(),
        Status::Failed(_) | Status::TimedOut(_) => AnsiColor::Red.on_default().bold(),
        Status::Cancelled | Status::Skipped(_) => AnsiColor::Yellow.on_default(),
    }
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
