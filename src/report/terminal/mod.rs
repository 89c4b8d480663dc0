//! Human-readable output: task output (prefixed with the task's name, or grouped per task), status lines, a live
//! status area on terminals, GitHub Actions groups and annotations, and a closing summary.
//!
//! Each line is written whole, so lines of parallel tasks never interleave mid-line. Task output is passed through
//! byte for byte (no UTF-8 conversion). Task output and status lines are in [`lines`], watch cycles in [`cycles`],
//! the closing summary in [`summary`], GitHub Actions' workflow commands in [`github`].

mod cycles;
mod github;
mod lines;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use anstyle::{AnsiColor, Style};

use crate::events::{Event, TaskKind, TaskName};
use crate::report::critical::Timings;
use crate::report::progress::Progress;
use crate::report::spool::{SpillFailed, Spool};
use crate::report::text;
use crate::report::{Reporter, Trouble};

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
    /// `--explain`: say why each task runs (other reports may ask the engine to tell it, this one says it only then).
    pub(crate) explain: bool,
}

pub(crate) struct Terminal<W: Write + Send> {
    out: W,
    opts: Options,
    width: usize,
    /// How many tasks it has seen (their colours are given in turn).
    seen: usize,
    timings: Timings,
    tails: HashMap<TaskName, crate::report::tail::Tail>,
    /// Tasks with `output = "on-failure"`, and what they said so far (prefixed output).
    quiet: std::collections::HashSet<TaskName>,
    held: HashMap<TaskName, lines::Held>,
    /// How many times each service was restarted (`restart`) in this run or cycle.
    restarts: HashMap<TaskName, u32>,
    /// Each task's `name | ` prefix, coloured as needed.
    prefixes: HashMap<TaskName, Vec<u8>>,
    /// This run's (or watch cycle's) results, one per task (groups excluded), in the order they came.
    results: summary::Results,
    /// Grouped output: each running task's lines so far (a few MiB in memory, the rest in a file).
    buffered: HashMap<TaskName, Spool>,
    /// Grouped output: blocks of failed tasks, shown last.
    failed_blocks: Spool,
    /// A spool file could not be made or written (said once).
    spill_failed: bool,
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

pub(crate) use summary::format_duration;

/// What is written out at once, at most, when a batch of events says more.
const PENDING_MAX: usize = 64 * 1024;

impl<W: Write + Send> Terminal<W> {
    pub(crate) fn new(out: W, opts: Options) -> Self {
        Terminal {
            out,
            opts,
            width: 0,
            seen: 0,
            timings: Timings::default(),
            tails: HashMap::new(),
            quiet: Default::default(),
            held: HashMap::new(),
            restarts: HashMap::new(),
            prefixes: HashMap::new(),
            results: summary::Results::default(),
            buffered: HashMap::new(),
            failed_blocks: Spool::default(),
            spill_failed: false,
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
        let style = self.timings.get(task).map(|t| PALETTE[usize::from(t.colour)].on_default()).unwrap_or_default();
        self.paint(style, &format!("{:<width$}", task, width = self.width))
    }

    fn kind(&self, task: &TaskName) -> Option<TaskKind> {
        self.timings.get(task).map(|t| t.kind)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        // A batch of 10,000 "up to date" lines would otherwise be held whole (a megabyte) until it ends.
        if self.pending.len() >= PENDING_MAX {
            Reporter::flush(self);
        }
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
}

impl<W: Write + Send> Reporter for Terminal<W> {
    fn event(&mut self, at: SystemTime, event: &Event) {
        match event {
            Event::RunStarted { tasks, watch, .. } => {
                self.watch = *watch;
                // A run that is not watch mode has no cycle to reserve its results' room at.
                self.results = summary::Results::with_room(tasks.len());
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
            Event::CycleFinished { outcome, elapsed, .. } => self.cycle_finished(*outcome, *elapsed),
            Event::TaskStarted { task, pid, port, .. } => self.started(at, task, *pid, *port),
            Event::TaskReady { task, after, probe, reused } => {
                let how = text::ready_probe(probe.as_ref(), *reused);
                self.ready(at, task, *after, how);
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
            Event::TaskStopping { task, reason, signal } => {
                self.status(task, &format!("stopping ({}) with {}", text::stop_reason(*reason), signal.as_str()));
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
            Event::TerminalHandedOver { task } => {
                // The task draws on the terminal itself: a status area drawn over it would garble both.
                if let Some(mut p) = self.progress.take() {
                    p.clear();
                }
                self.opts.progress = false;
                self.status(task, text::terminal_handed_over());
            }
            Event::TaskWillRun { .. } if !self.opts.explain => {}
            Event::TestReports { task, reports } => {
                for problem in &reports.problems {
                    self.irun(&text::test_report_problem(task, problem));
                }
                if let Some(line) = text::test_counts(reports) {
                    self.status(task, &line);
                }
            }
            Event::RunFinished { outcome, elapsed } if !self.watch => self.summary(*outcome, *elapsed),
            Event::RunFinished { outcome, elapsed } => self.stopped_watching(*outcome, *elapsed),
            other => match text::notice(other) {
                Some((Some(task), message)) => self.status(task, &message),
                Some((None, message)) => self.irun(&message),
                None => {}
            },
        }
    }

    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.put(&pending);
        // Cleared, not dropped: the next batch reuses the buffer.
        self.pending = pending;
        self.pending.clear();
    }

    fn trouble(&mut self) -> Option<Trouble> {
        self.trouble.take()
    }
}

impl<W: Write + Send> Terminal<W> {
    /// Write bytes to stdout now, above the status area if there is one.
    fn put(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.trouble_seen {
            return;
        }
        let written = match &self.progress {
            Some(p) => p.print(&mut self.out, bytes),
            None => self.out.write_all(bytes).and_then(|()| self.out.flush()),
        };
        if let Err(e) = written {
            // Nothing more is written: the status area goes too.
            self.trouble_seen = true;
            self.trouble = Some(Trouble::of(&e, "output", crate::report::STDOUT));
            if let Some(mut p) = self.progress.take() {
                p.clear();
            }
        }
    }

    /// Write what is pending, then a spool's bytes as they are read back: its file streams out a chunk at a time.
    fn put_spool(&mut self, spool: Spool) {
        Reporter::flush(self);
        if let Err(e) = spool.drain(|chunk| self.put(chunk)) {
            let line = text::spool_lost(&e);
            self.irun(&line);
        }
    }

    /// How keeping grouped output for later went: a spool file that could not be made or written is said once, on
    /// stderr (the output stays in memory, nothing is lost).
    fn spooled(&mut self, result: Result<(), SpillFailed>) {
        if let Err(SpillFailed(e)) = result
            && !std::mem::replace(&mut self.spill_failed, true)
        {
            eprintln!("irun: warning: {}", text::spill_failed(&e));
        }
    }

    /// A service passed its readiness probe (`how`: what it saw).
    fn ready(&mut self, at: SystemTime, task: &TaskName, after: Duration, how: Option<String>) {
        if let Some(t) = self.timings.get_mut(task) {
            t.available = Some(at);
        }
        let counted = self.watch && self.kind(task) == Some(TaskKind::Service);
        if let Some(p) = self.progress.as_mut() {
            if counted { p.finished(task) } else { p.gone(task) }
        }
        let how = how.map(|p| format!(": {p}")).unwrap_or_default();
        self.status(task, &format!("ready after {}{how}", format_duration(after)));
        if counted {
            self.ready.retain(|(t, _)| t != task);
            self.ready.push((task.clone(), after));
        }
    }
}
