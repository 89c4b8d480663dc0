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
                let _ = events
                    .send(Event::Notice {
                        task: None,
                        message: "cannot install signal handlers; nothing was started".into(),
                    })
                    .await;
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
    s.emit(Event::RunStarted { tasks: plan.planned_tasks(), jobs: options.jobs }).await;

    loop {
        s.start_what_can_start().await;
        s.stop_unneeded_services();
        if s.all_done() {
            break;
        }
        tokio::select! {
            Some(report) = inbox.recv() => s.on_report(report).await,
            _ = sigint.recv() => s.on_signal(Signal::SIGINT).await,
            _ = sigterm.recv() => s.on_signal(Signal::SIGTERM).await,
            _ = sighup.recv() => s.on_signal(Signal::SIGHUP).await,
        }
    }

    let outcome = match (s.interrupted, s.failed) {
        (Some(sig), _) => RunOutcome::Interrupted(sig),
        (None, true) => RunOutcome::Failed,
        (None, false) => RunOutcome::Passed,
    };
    s.emit(Event::RunFinished { outcome, elapsed: started.elapsed() }).await;
    outcome
}

impl Scheduler<'_> {
    async fn emit(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    fn all_done(&self) -> bool {
        self.plan.order.iter().all(|&i| matches!(self.nodes[i].state, State::Done(_)))
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

    /// Record the end of task `i`, whatever it was.
    async fn record(&mut self, i: usize, status: Status, duration: Duration) {
        if std::mem::take(&mut self.nodes[i].holds_slot) {
            self.free_slots += 1;
        }
        self.nodes[i].state = State::Done(status.clone());
        self.nodes[i].control = None;
        self.emit(Event::TaskFinished { task: self.plan.names[i].clone(), status, duration }).await;
    }

    /// Record the end of task `i` and react to a failure.
    async fn finish(&mut self, i: usize, status: Status, duration: Duration) {
        let failure = status.is_failure();
        self.record(i, status, duration).await;
        if failure {
            self.failed = true;
            if self.options.keep_going {
                self.skip_dependents(i).await;
            } else {
                self.abort(StopReason::Cancelled).await;
            }
        }
    }

    /// Start every task whose deps are satisfied, while job slots last. Groups finish as soon as their deps do.
    async fn start_what_can_start(&mut self) {
        if self.aborting {
            return;
        }
        let mut progress = true;
        while progress {
            progress = false;
            for &i in &self.plan.order {
                if self.nodes[i].state != State::Waiting || !self.plan.deps[i].iter().all(|&d| self.satisfied(d)) {
                    continue;
                }
                match self.plan.kinds[i] {
                    TaskKind::Group => {
                        self.finish(i, Status::Ok, Duration::ZERO).await;
                        progress = true;
                    }
                    TaskKind::Service
                        if !self.plan.foreground[i] && self.plan.needers[i].iter().all(|&n| self.is_done(n)) =>
                    {
                        let why = "nothing that needs it is left to run".to_string();
                        self.finish(i, Status::Skipped(why), Duration::ZERO).await;
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
        tokio::spawn(runner::run(job));
    }

    /// Services are stopped as soon as every task that needs them has finished.
    fn stop_unneeded_services(&mut self) {
        for &i in &self.plan.order {
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

    async fn on_report(&mut self, report: Report) {
        match report {
            Report::Started { task, pid } => {
                self.emit(Event::TaskStarted { task: self.plan.names[task].clone(), pid }).await;
            }
            Report::Ready { task, after, probe } => {
                if self.nodes[task].state == State::Running {
                    self.nodes[task].state = State::Ready;
                }
                // A ready service no longer occupies a job slot, so `-j1` cannot deadlock on a service and its client.
                if std::mem::take(&mut self.nodes[task].holds_slot) {
                    self.free_slots += 1;
                }
                self.emit(Event::TaskReady { task: self.plan.names[task].clone(), after, probe }).await;
            }
            Report::Finished { task, status, duration } => self.finish(task, status, duration).await,
        }
    }

    /// Fail-fast or interrupt: nothing new starts, everything running is stopped.
    async fn abort(&mut self, reason: StopReason) {
        self.aborting = true;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].state {
                State::Waiting => self.record(i, Status::Cancelled, Duration::ZERO).await,
                State::Running | State::Ready => self.request(i, Control::Stop(reason)),
                State::Done(_) => {}
            }
        }
    }

    /// Keep-going: tasks that (transitively) depend on a failed one cannot run.
    async fn skip_dependents(&mut self, failed: usize) {
        let name = self.plan.names[failed].clone();
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.nodes[i].state != State::Waiting {
                continue;
            }
            let blocked = self.plan.deps[i].iter().find(|&&d| match &self.nodes[d].state {
                State::Done(Status::Ok) => self.plan.kinds[d] == TaskKind::Service,
                State::Done(_) => true,
                _ => false,
            });
            if let Some(&d) = blocked {
                let why = if d == failed {
                    format!("dep `{name}` failed")
                } else {
                    format!("dep `{}` did not run", self.plan.names[d])
                };
                // Order is topological, so skipping propagates down the chain in one pass.
                self.record(i, Status::Skipped(why), Duration::ZERO).await;
            }
        }
    }

    async fn on_signal(&mut self, sig: Signal) {
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
            })
            .await;
            self.abort(StopReason::Interrupted).await;
        } else {
            self.emit(Event::Notice {
                task: None,
                message: format!("received {} again; killing everything now", sig.as_str()),
            })
            .await;
            for i in 0..self.nodes.len() {
                self.request(i, Control::Kill);
            }
        }
    }
}
