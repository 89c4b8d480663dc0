//! Processes: how a command becomes a process ([`command_line`], [`spawn`], with the cheap clone in `vfork`), one
//! task instance ([`runner`]), process groups ([`supervisor`]), what escapes them (`escapees`) and the cgroups nothing
//! escapes (`cgroup`, where irun may make them), the guard that
//! cleans up if irun is killed ([`guard`]), readiness probes ([`probe`]), output pipes ([`output`]), what /proc
//! says ([`procfs`]) and the raw system calls (`sys`). What the run knows of its processes is one value, `Table`;
//! the driver reaches all of it through the [`Launcher`] seam.

use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

use crate::engine::{End, Happened};
use crate::events::Event;
use table::Table;

mod cgroup;
pub(crate) mod command_line;
mod escapees;
pub(crate) mod guard;
pub(crate) mod output;
pub(crate) mod probe;
pub(crate) mod procfs;
pub(crate) mod runner;
pub(crate) mod spawn;
pub(crate) mod supervisor;
mod sys;
mod table;
pub(crate) mod terminal;
mod vfork;

/// How the driver starts task instances and looks after what escapes them: the real process layer
/// ([`Processes`]), or a fake in the driver's tests, as ninja's `CommandRunner` fake does.
pub(crate) trait Launcher {
    /// Start one instance of a task: it reports on `job.reports` (started, ready, exited) until it has ended.
    fn launch(&mut self, job: runner::Job);
    /// A task's process ended: what it left may just have been re-parented to irun, so look soon.
    fn task_ended(&mut self);
    /// Resolves once the process layer has something to tell the user (processes adopted, the guard restarted).
    /// Cancel-safe: dropped unfinished, nothing is lost.
    fn news(&mut self) -> impl Future<Output = Vec<Event>>;
    /// The run is over: stop every process that escaped its task's group and outlived it; how many there were.
    fn stop_escaped(&mut self) -> impl Future<Output = usize>;
}

/// Orphans are looked for this often, and soon after a task's process ends (but never more often than the gap).
const ADOPTION_SCAN_EVERY: Duration = Duration::from_secs(1);
const ADOPTION_SCAN_GAP: Duration = Duration::from_millis(50);

/// The process layer, set up: the run's [`table::Table`], and when to look for orphans and at the guard.
pub(crate) struct Processes {
    table: Arc<Table>,
    next_scan: Instant,
    last_scan: Instant,
    /// Readable once the guard has exited (none: no guard, or no pidfds).
    guard_exit: Option<AsyncFd<OwnedFd>>,
    /// `guard_exit` was set up (it needs the runtime, so not before the first look).
    guard_watched: bool,
    /// irun colours its output for a human: tasks get `FORCE_COLOR` and `CLICOLOR_FORCE` (see [`runner::color_env`]).
    color: bool,
    /// Fires at `next_scan`: one timer, moved when `next_scan` moves, not one registered afresh at every wait.
    scan_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Set up the process layer (see [`Table::new`]).
pub(crate) fn start() -> std::io::Result<Processes> {
    let now = Instant::now();
    Ok(Processes {
        table: Arc::new(Table::new()?),
        next_scan: now + ADOPTION_SCAN_EVERY,
        last_scan: now,
        guard_exit: None,
        guard_watched: false,
        color: false,
        scan_timer: None,
    })
}

impl Processes {
    /// Whether irun colours its own output (its stdout a terminal, or `--color always`): tasks are told to as well.
    pub(crate) fn with_color(self, color: bool) -> Processes {
        Processes { color, ..self }
    }

    /// How the run holds its tasks' processes, for the user.
    pub(crate) fn isolation(&self) -> Event {
        Event::Isolation { cgroup: self.table.cgroups.as_ref().map(|c| c.dir().to_path_buf()) }
    }

    /// Every task is gone and irun cleaned up after itself: tell the guard, and wait for it to exit.
    pub(crate) fn finish(self) {
        drop(self.guard_exit);
        self.table.finish();
    }

    /// The guard's exit, as something the loop can wait for (none: no guard, or no pidfd on this kernel).
    fn watch_guard(&mut self) {
        self.guard_exit = self.table.guard_pidfd().and_then(sys::watch_readable);
    }

    /// Tell the guard about orphans, and start it again if it died (also where no pidfd says it did).
    fn scan(&mut self) -> Vec<Event> {
        self.last_scan = Instant::now();
        self.next_scan = self.last_scan + ADOPTION_SCAN_EVERY;
        let mut news: Vec<Event> = escapees::adopt_orphans(&self.table)
            .into_iter()
            .map(|o| Event::OrphanAdopted { pid: o.pid, program: o.program, command: o.command, task: o.task })
            .collect();
        let revived = guard::revive(&mut self.table.guard());
        if let Some((exit, guard_news)) = revived {
            news.push(Event::GuardEnded { exit, news: guard_news });
            self.watch_guard();
        }
        news
    }
}

impl Launcher for Processes {
    fn launch(&mut self, mut job: runner::Job) {
        if self.color {
            let task = &job.config.tasks[job.task];
            job.extra_env.extend(runner::color_env(task, |name| std::env::var_os(name).is_some()));
        }
        let (reports, instance, table) = (job.reports.clone(), job.instance, self.table.clone());
        // A runner that panics still reports an end (its process group is killed as it unwinds), so the run cannot
        // wait for it forever.
        let broken = move |panic: Box<dyn std::any::Any + Send>| {
            let what = Happened::Exited { end: End::Broken(panicked(panic.as_ref())), duration: Duration::ZERO };
            let _ = reports.send(runner::Report { instance, what });
        };
        // Started now, in the driver's turn: a free job slot gets its process before anything else is done.
        let begun = match std::panic::catch_unwind(AssertUnwindSafe(|| runner::begin(job, &table))) {
            Ok(begun) => begun,
            Err(panic) => return broken(panic),
        };
        tokio::spawn(async move {
            if let Err(panic) = (CatchPanic { future: begun.run(table) }).await {
                broken(panic);
            }
        });
    }

    fn task_ended(&mut self) {
        self.next_scan = self.next_scan.min(self.last_scan + ADOPTION_SCAN_GAP);
    }

    async fn news(&mut self) -> Vec<Event> {
        if !self.guard_watched {
            self.guard_watched = true;
            self.watch_guard();
        }
        let next_scan = tokio::time::Instant::from_std(self.next_scan);
        let timer = self.scan_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next_scan)));
        if timer.deadline() != next_scan {
            timer.as_mut().reset(next_scan);
        }
        let exited = async {
            match &self.guard_exit {
                Some(fd) => drop(fd.readable().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = timer.as_mut() => {}
            () = exited => {}
        }
        self.scan()
    }

    async fn stop_escaped(&mut self) -> usize {
        self.guard_exit = None;
        let (sig, grace) = (nix::sys::signal::Signal::SIGTERM, crate::config::DEFAULT_STOP_TIMEOUT);
        escapees::stop_all_escaped(&self.table, sig, grace).await
    }
}

/// A future that resolves to `Err` with the panic's payload if polling `future` panics (it is then dropped as it
/// stands, which kills what its process group holds).
struct CatchPanic<F> {
    future: F,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        // SAFETY: `future` is pinned with `self` and never moved out of it (structural pinning).
        let future = unsafe { self.map_unchecked_mut(|s| &mut s.future) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// What a panic said, for the task it broke.
fn panicked(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str));
    format!("irun's runner for this task panicked: {}", message.unwrap_or("(no message)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_that_panics_ends_with_what_the_panic_said_and_one_that_does_not_with_its_result() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let panics = async {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            5u8
        };
        let panic = runtime.block_on(CatchPanic { future: panics }).unwrap_err();
        assert_eq!(panicked(panic.as_ref()), "irun's runner for this task panicked: boom");
        assert_eq!(runtime.block_on(CatchPanic { future: async { 5u8 } }).unwrap(), 5);
    }
}
