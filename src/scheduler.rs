//! The run: which task starts when. Owns the ready queue, job slots, fail-fast / keep-going, service lifetimes and
//! signals to irun; talks to task runners through control channels and to reporters through events.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::events::{Event, EventSender, RunOutcome, Status, TaskKind};
use crate::plan::Plan;
use crate::runner::{self, Control, Job, Report, StopReason};

pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Not started: waiting for deps or a job slot.
    Waiting,
    /// A task running, or a service started but not ready yet.
    Running,
    /// A service that passed its readiness probe.
    Ready,
    Done(Status),
}

struct Node {
    state: State,
    control: Option<watch::Sender<Control>>,
    holds_slot: bool,
    stop_requested: bool,
}

struct Scheduler<'a> {
    config: Arc<Config>,
    plan: &'a Plan,
    options: &'a Options,
    events: EventSender,
    reports: mpsc::UnboundedSender<Report>,
    nodes: Vec<Node>,
    free_slots: usize,
    aborting: bool,
    interrupted: Option<Signal>,
    failed: bool,
}

/// Run the plan to the end and say how it went. Every process started is gone when this returns.
pub async fn run(config: Arc<Config>, plan: &Plan, options: &Options, events: EventSender) -> RunOutcome {
    let started = Instant::now();
    // Installed before anything is spawned: from here on SIGINT/SIGTERM/SIGHUP only set irun's own teardown going.
    let (mut sigint, mut sigterm, mut sighup) =
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            _ => {
                let message = "cannot install signal handlers; nothing was started".to_string();
                events.send(Event::Notice { task: None, message });
                return RunOutcome::Failed;
            }
        };
    let (reports, mut inbox) = mpsc::unbounded_channel();
    let nodes = (0..config.tasks.len())
        .map(|_| Node { state: State::Waiting, control: None, holds_slot: false, stop_requested: false })
        .collect();
    let mut s = Scheduler {
        config,
        plan,
        options,
        events,
        reports,
        nodes,
        free_slots: options.jobs.max(1),
        aborting: false,
        interrupted: None,
        failed: false,
    };
    s.emit(Event::RunStarted { tasks: plan.planned_tasks(), jobs: options.jobs });

    loop {
        s.start_what_can_start();
        s.stop_unneeded_services();
        if s.all_done() {
            break;
        }
        if !s.anything_running() {
            // Nothing runs and nothing could start: what is left waits for deps that will never be met.
            s.give_up_on_waiting();
            continue;
        }
        tokio::select! {
            Some(report) = inbox.recv() => s.on_report(report),
            _ = sigint.recv() => s.on_signal(Signal::SIGINT),
            _ = sigterm.recv() => s.on_signal(Signal::SIGTERM),
            _ = sighup.recv() => s.on_signal(Signal::SIGHUP),
        }
    }

    // Every task is done; anything of this run still alive escaped its group after its task ended.
    let escaped = crate::supervisor::stop_all_escaped(Signal::SIGTERM, crate::config::DEFAULT_STOP_TIMEOUT).await;
    if escaped > 0 {
        let message = format!(
            "stopped {escaped} process{} that had left {} task's process group and outlived it",
            if escaped == 1 { "" } else { "es" },
            if escaped == 1 { "its" } else { "their" }
        );
        s.emit(Event::Notice { task: None, message });
    }

    let outcome = match (s.interrupted, s.failed) {
        (Some(sig), _) => RunOutcome::Interrupted(sig),
        (None, true) => RunOutcome::Failed,
        (None, false) => RunOutcome::Passed,
    };
    s.emit(Event::RunFinished { outcome, elapsed: started.elapsed() });
    outcome
}

impl Scheduler<'_> {
    fn emit(&self, event: Event) {
        self.events.send(event);
    }

    fn all_done(&self) -> bool {
        self.plan.order.iter().all(|&i| self.is_done(i))
    }

    fn anything_running(&self) -> bool {
        self.plan.order.iter().any(|&i| matches!(self.nodes[i].state, State::Running | State::Ready))
    }

    fn is_done(&self, i: usize) -> bool {
        matches!(self.nodes[i].state, State::Done(_))
    }

    /// A dep lets its dependents start once it finished successfully, or, for a service, once it is ready.
    fn satisfied(&self, dep: usize) -> bool {
        match &self.nodes[dep].state {
            State::Ready => true,
            State::Done(Status::Ok) => self.plan.kinds[dep] != TaskKind::Service,
            _ => false,
        }
    }

    /// Why `dep` can never let its dependents start, if it cannot.
    fn unmeetable(&self, dep: usize) -> Option<String> {
        let name = &self.plan.names[dep];
        match &self.nodes[dep].state {
            State::Done(s) if s.is_failure() => Some(format!("dep `{name}` failed")),
            State::Done(Status::Ok) if self.plan.kinds[dep] == TaskKind::Service => {
                Some(format!("service `{name}` is no longer running"))
            }
            State::Done(Status::Ok) => None,
            State::Done(_) => Some(format!("dep `{name}` did not run")),
            _ => None,
        }
    }

    /// Record the end of task `i`, whatever it was.
    fn record(&mut self, i: usize, status: Status, duration: Duration) {
        if std::mem::take(&mut self.nodes[i].holds_slot) {
            self.free_slots += 1;
        }
        self.nodes[i].state = State::Done(status.clone());
        self.nodes[i].control = None;
        self.emit(Event::TaskFinished { task: self.plan.names[i].clone(), status, duration });
    }

    /// Record the end of task `i` and react to a failure.
    fn finish(&mut self, i: usize, mut status: Status, duration: Duration) {
        if self.plan.kinds[i] == TaskKind::Service && status == Status::Ok && !self.nodes[i].stop_requested {
            // A foreground service may end on its own, but not while tasks still count on it.
            let waiting: Vec<&str> =
                self.plan.needers[i].iter().filter(|&&n| !self.is_done(n)).map(|&n| &*self.plan.names[n]).collect();
            if !waiting.is_empty() {
                status = Status::Failed(format!("exited (exit code 0) while {} still needed it", waiting.join(", ")));
            }
        }
        let failure = status.is_failure();
        self.record(i, status, duration);
        if failure {
            self.failed = true;
            if self.options.keep_going {
                self.skip_blocked();
            } else {
                self.abort(StopReason::Cancelled);
            }
        }
    }

    /// Start every task whose deps are satisfied, while job slots last. Groups finish as soon as their deps do.
    fn start_what_can_start(&mut self) {
        if self.aborting {
            return;
        }
        let mut progress = true;
        while progress {
            progress = false;
            for idx in 0..self.plan.order.len() {
                let i = self.plan.order[idx];
                if self.nodes[i].state != State::Waiting || !self.plan.deps[i].iter().all(|&d| self.satisfied(d)) {
                    continue;
                }
                match self.plan.kinds[i] {
                    TaskKind::Group => {
                        self.finish(i, Status::Ok, Duration::ZERO);
                        progress = true;
                    }
                    TaskKind::Service
                        if !self.plan.foreground[i] && self.plan.needers[i].iter().all(|&n| self.is_done(n)) =>
                    {
                        let why = "nothing that needs it is left to run".to_string();
                        self.finish(i, Status::Skipped(why), Duration::ZERO);
                        progress = true;
                    }
                    _ if self.free_slots > 0 => {
                        self.start(i);
                        progress = true;
                    }
                    _ => {}
                }
                if self.aborting {
                    return;
                }
            }
        }
    }

    fn start(&mut self, i: usize) {
        let (tx, rx) = watch::channel(Control::Run);
        self.free_slots -= 1;
        let node = &mut self.nodes[i];
        node.state = State::Running;
        node.holds_slot = true;
        node.control = Some(tx);
        let job = Job {
            config: self.config.clone(),
            index: i,
            name: self.plan.names[i].clone(),
            foreground: self.plan.foreground[i],
            events: self.events.clone(),
            reports: self.reports.clone(),
            control: rx,
        };
        let reports = self.reports.clone();
        tokio::spawn(async move {
            // A runner that panics still reports an end (its process group is killed as it unwinds), so the run
            // cannot wait for it forever.
            if let Err(e) = tokio::spawn(runner::run(job)).await {
                let status = Status::Failed(format!("internal error in irun: {e}"));
                let _ = reports.send(Report::Finished { task: i, status, duration: Duration::ZERO });
            }
        });
    }

    /// Services are stopped as soon as every task that needs them has finished.
    fn stop_unneeded_services(&mut self) {
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.plan.kinds[i] != TaskKind::Service || self.plan.foreground[i] || self.nodes[i].stop_requested {
                continue;
            }
            if matches!(self.nodes[i].state, State::Running | State::Ready)
                && self.plan.needers[i].iter().all(|&n| self.is_done(n))
            {
                self.request(i, Control::Stop(StopReason::NotNeeded));
            }
        }
    }

    fn request(&mut self, i: usize, control: Control) {
        let node = &mut self.nodes[i];
        if let Some(tx) = &node.control {
            node.stop_requested = true;
            let _ = tx.send(control);
        }
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Started { task, pid } => {
                self.emit(Event::TaskStarted { task: self.plan.names[task].clone(), pid });
            }
            Report::Ready { task, after, probe } => {
                if self.nodes[task].state == State::Running {
                    self.nodes[task].state = State::Ready;
                }
                // A ready service no longer occupies a job slot, so `-j1` cannot deadlock on a service and its client.
                if std::mem::take(&mut self.nodes[task].holds_slot) {
                    self.free_slots += 1;
                }
                self.emit(Event::TaskReady { task: self.plan.names[task].clone(), after, probe });
            }
            Report::Finished { task, status, duration } => {
                if !self.is_done(task) {
                    self.finish(task, status, duration);
                }
            }
        }
    }

    /// Fail-fast or interrupt: nothing new starts, everything running is stopped.
    fn abort(&mut self, reason: StopReason) {
        self.aborting = true;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].state {
                State::Waiting => self.record(i, Status::Cancelled, Duration::ZERO),
                State::Running | State::Ready => self.request(i, Control::Stop(reason)),
                State::Done(_) => {}
            }
        }
    }

    /// Keep-going: tasks waiting on a dep that failed, did not run or is gone are skipped, transitively.
    fn skip_blocked(&mut self) {
        // The order is topological, so one pass carries skips down a chain.
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.nodes[i].state != State::Waiting {
                continue;
            }
            if let Some(why) = self.plan.deps[i].iter().find_map(|&d| self.unmeetable(d)) {
                self.record(i, Status::Skipped(why), Duration::ZERO);
            }
        }
    }

    /// Nothing is running, yet tasks wait: their deps can never be met. Skip them rather than wait forever.
    fn give_up_on_waiting(&mut self) {
        self.skip_blocked();
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.nodes[i].state == State::Waiting {
                let why = "its deps can no longer be met".to_string();
                self.record(i, Status::Skipped(why), Duration::ZERO);
            }
        }
    }

    fn on_signal(&mut self, sig: Signal) {
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            let running = self.nodes.iter().filter(|n| n.control.is_some()).count();
            self.emit(Event::Notice {
                task: None,
                message: format!(
                    "received {}; stopping {running} running task{} (send it again to kill them at once)",
                    sig.as_str(),
                    if running == 1 { "" } else { "s" }
                ),
            });
            self.abort(StopReason::Interrupted);
        } else {
            let message = format!("received {} again; killing everything now", sig.as_str());
            self.emit(Event::Notice { task: None, message });
            for i in 0..self.nodes.len() {
                self.request(i, Control::Kill);
            }
        }
    }
}
