//! The live status area on a terminal: running tasks with their elapsed time, services waiting for readiness, and
//! how many tasks are done. Task output scrolls above it.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use crate::events::TaskName;

pub(crate) struct Progress {
    area: MultiProgress,
    total: ProgressBar,
    tasks: HashMap<TaskName, ProgressBar>,
    width: usize,
}

const TICK: Duration = Duration::from_millis(120);

/// Columns left free at the end of the status area's lines. indicatif pads each line to the terminal's width, which
/// leaves the cursor at the very edge; the `^C` a terminal echoes when Ctrl-C is pressed then wraps onto a line of
/// its own, every cursor movement after it lands one line off, and the top of the area is never erased. With room
/// for the echo, it stays on the area's last line.
const ECHO_ROOM: u16 = 3;

/// stdout as indicatif's terminal, a few columns narrower than it is.
#[derive(Debug)]
struct Margin(console::Term);

impl TermLike for Margin {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(ECHO_ROOM).max(1)
    }

    fn height(&self) -> u16 {
        self.0.size().0
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }

    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Progress {
    /// A status area on stdout (drawn only if stdout is a terminal).
    pub(crate) fn new(total: usize, width: usize, color: bool) -> Progress {
        let target = if cfg!(test) {
            // Unit tests count; they draw nothing.
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(Margin(console::Term::buffered_stdout())), 10)
        };
        let area = MultiProgress::with_draw_target(target);
        let spinner = if color { "{spinner:.bold}" } else { "{spinner}" };
        let bar = ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template(&format!("{spinner} irun: {{pos}}/{{len}} done, {{msg}} [{{elapsed}}]"))
                .expect("a valid template"),
        );
        let total = area.add(bar);
        total.set_message("starting");
        total.enable_steady_tick(TICK);
        Progress { area, total, tasks: HashMap::new(), width }
    }

    fn update_message(&self) {
        let running = self.tasks.len();
        self.total.set_message(format!("{running} running"));
    }

    pub(crate) fn started(&mut self, task: &TaskName, service: bool) {
        let what = if service { "service, waiting until it is ready" } else { "running" };
        let template = format!("  {{prefix:{}}} {{elapsed:>4}} {{msg}}", self.width);
        let bar = ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template(&template).expect("a valid template"))
            .with_prefix(task.to_string())
            .with_message(what);
        let bar = self.area.add(bar);
        bar.enable_steady_tick(TICK);
        self.tasks.insert(task.clone(), bar);
        self.update_message();
    }

    /// A service became ready, or a task ended: it leaves the area.
    pub(crate) fn gone(&mut self, task: &TaskName) {
        if let Some(bar) = self.tasks.remove(task) {
            bar.finish_and_clear();
            self.area.remove(&bar);
        }
        self.update_message();
    }

    /// A task reached its end for this run or cycle (finished; in watch mode, a service became ready): it leaves
    /// the area and counts as done.
    pub(crate) fn finished(&mut self, task: &TaskName) {
        self.gone(task);
        self.total.inc(1);
    }

    /// Watch mode: a change during a cycle changed what the cycle runs.
    pub(crate) fn recount(&mut self, done: usize, total: usize) {
        self.total.set_length(total as u64);
        self.total.set_position(done as u64);
    }

    /// How many tasks are done, of how many.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.total.position(), self.total.length().unwrap_or(0))
    }

    /// Write above the status area.
    pub(crate) fn print(&self, out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
        self.area.suspend(|| out.write_all(bytes).and_then(|()| out.flush()))
    }

    /// Remove the area for good (before the summary).
    pub(crate) fn clear(&mut self) {
        for (_, bar) in self.tasks.drain() {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
        let _ = self.area.clear();
    }
}
