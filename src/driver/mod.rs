//! The async loop around the engine: it turns runner reports, signals, watcher batches and timers into
//! [`Input`]s, and performs the [`Effect`]s the engine returns ([`effects`]: start and stop runners through a
//! [`Launcher`], check freshness, record and [`saving`] the state, send events). It decides nothing the engine
//! could decide.

mod caching;
mod effects;
mod junit;
mod reload;
mod saving;
mod sharing;
pub(crate) mod signals;
#[cfg(test)]
mod tests;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::{Config, PerTask};
use crate::diagnostic::Source;
use crate::engine::{self, Change, Control, Engine, Happened, Input};
use crate::events::{Event, EventSender, RunOutcome, TaskName};
use crate::exec::Launcher;
use crate::exec::runner::Report;
use crate::fresh::{Checker, Snapshot};
use crate::plan::Plan;
use crate::request::Request;
use crate::watch::Batch;
use reload::Reload;
use saving::Saving;
use signals::Signals;

/// Watch mode's inputs and how to reload Irun.toml.
pub(crate) struct Watching {
    pub(crate) changes: mpsc::UnboundedReceiver<Batch>,
    pub(crate) watcher: crate::watch::Watcher,
    /// What the command line asked to run, planned again against a reloaded Irun.toml.
    pub(crate) request: Request,
}

pub(crate) struct Setup {
    pub(crate) config: Arc<Config>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) options: engine::Options,
    pub(crate) checker: Checker,
    pub(crate) watching: Option<Watching>,
    /// What the run says first: the state could not be used, which shard this is, which folders are watched.
    pub(crate) notices: Vec<Event>,
    /// Where results are stored and restored from.
    pub(crate) cache: crate::cache::local::LocalStore,
    /// The remote cache, if the environment names one.
    pub(crate) remote: Option<crate::cache::remote::Remote>,
    /// A report shows each task's command (`--json`, `--events`, timings): `TaskStarted` carries it.
    pub(crate) describe: bool,
}

/// Where the driver's inputs come from, besides its runners.
pub(crate) struct Inputs {
    pub(crate) signals: Signals,
    /// Fires when irun's stdout is closed (its reader went away): the run stops as if interrupted by SIGPIPE.
    pub(crate) output_closed: mpsc::UnboundedReceiver<()>,
}

struct Driver<'l, L: Launcher> {
    config: Arc<Config>,
    engine: Engine,
    checker: Checker,
    events: EventSender,
    launcher: &'l mut L,
    reports: mpsc::UnboundedSender<Report>,
    /// Per task: what it looked like when it was decided that it runs (recorded if it then ends).
    snapshots: PerTask<Option<Box<Snapshot>>>,
    /// Live runners by task name (names, not positions, survive a reload): their control channel.
    controls: HashMap<TaskName, watch::Sender<Option<Control>>>,
    /// Live runner instances and their task.
    instances: HashMap<u64, TaskName>,
    next_instance: u64,
    saving: Saving,
    /// Irun.toml as last seen (valid or not), so an unchanged file is not parsed again.
    config_source: Source,
    reload: Option<Reload>,
    /// The ports chosen for the services with `ready = { tcp = "auto" }` that were started, by task name.
    ports: HashMap<String, u16>,
    caching: caching::Caching,
    /// See [`Setup::describe`].
    describe: bool,
    /// Live instances of tasks with `junit`: the files their globs matched as they started.
    junit: HashMap<u64, junit::Before>,
}

/// Run the plan to the end and say how it went. Every process started is gone when this returns.
///
/// In watch mode the plan runs once, then again for each batch of changes (only the affected tasks), until irun
/// is interrupted.
pub(crate) async fn run<L: Launcher>(
    setup: Setup,
    events: EventSender,
    inputs: Inputs,
    launcher: &mut L,
) -> RunOutcome {
    let started = Instant::now();
    let Setup { config, plan, options, checker, mut watching, notices, cache, remote, describe } = setup;
    let Inputs { mut signals, mut output_closed } = inputs;
    let (reports, mut inbox) = mpsc::unbounded_channel();
    let (remote_done, mut remote_inbox) = mpsc::unbounded_channel();
    let sources = sources(&config, options.watch.is_some());
    let engine = Engine::new(plan, sources, &weights(&config, &checker), options, started.into_std());
    let caching = caching::Caching::new(cache, remote, remote_done);
    let mut d = Driver::new(config, engine, checker, events, launcher, reports, caching);
    d.describe = describe;
    let effects = d.engine.start(notices);
    d.perform(effects);
    // One timer for the next save, moved as the save moves (a new one at every turn would be registered each time).
    let save_timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(save_timer);
    let outcome = loop {
        if let Some(outcome) = d.engine.finished() {
            break outcome;
        }
        d.apply_reload(watching.as_ref());
        let save_due = d.saving.due;
        if let Some(at) = save_due.filter(|&at| at != save_timer.deadline()) {
            save_timer.as_mut().reset(at);
        }
        tokio::select! {
            Some(report) = inbox.recv() => {
                d.tick();
                d.on_report(report);
                // Reports come in bursts on big graphs: take what is already there before looking elsewhere.
                while let Ok(report) = inbox.try_recv() {
                    d.on_report(report);
                }
            }
            news = d.launcher.news() => news.into_iter().for_each(|event| d.events.send(event)),
            received = signals.recv() => {
                d.tick();
                for sig in received {
                    d.input(Input::Signal(sig));
                }
            }
            Some(batch) = next_batch(&mut watching) => d.on_batch(batch, watching.as_ref()),
            Some(done) = remote_inbox.recv() => {
                d.tick();
                d.on_remote(done);
            }
            () = &mut save_timer, if save_due.is_some() => d.save_state(true),
            Some(()) = output_closed.recv() => {
                d.tick();
                d.input(Input::Signal(nix::sys::signal::Signal::SIGPIPE));
            }
        }
    };
    let interrupted = matches!(outcome, RunOutcome::Interrupted(_));
    d.wait_for_uploads(&mut remote_inbox, interrupted, &mut signals).await;
    d.finish(outcome, started, &mut signals).await
}

impl<'a, L: Launcher> Driver<'a, L> {
    fn new(
        config: Arc<Config>,
        engine: Engine,
        checker: Checker,
        events: EventSender,
        launcher: &'a mut L,
        reports: mpsc::UnboundedSender<Report>,
        caching: caching::Caching,
    ) -> Self {
        let n = config.tasks.len();
        Driver {
            config_source: config.source.without_text(),
            config,
            engine,
            checker,
            events,
            launcher,
            reports,
            snapshots: PerTask::filled(n, None),
            controls: HashMap::new(),
            instances: HashMap::new(),
            next_instance: 0,
            saving: Saving::new(),
            reload: None,
            ports: HashMap::new(),
            caching,
            describe: false,
            junit: HashMap::new(),
        }
    }
}

async fn next_batch(watching: &mut Option<Watching>) -> Option<Batch> {
    match watching {
        Some(w) => w.changes.recv().await,
        None => std::future::pending().await,
    }
}

fn change_of(batch: Batch) -> Change {
    Change {
        paths: batch.paths,
        removed_dirs: batch.removed_dirs,
        rescan: batch.rescan,
        notices: batch.notices,
        first: batch.first_seen,
        last: batch.last_seen,
    }
}

/// Each task's `sources`, as the engine matches changed paths against them: in watch mode (without, no change
/// comes, and 10,000 tasks' globs took 6 MB).
fn sources(config: &Config, watching: bool) -> PerTask<crate::config::Globs> {
    let globs = |t: &crate::config::Task| crate::config::Globs::new(if watching { t.sources() } else { &[] });
    config.tasks.iter().map(globs).collect()
}

/// How long each task took last time (for scheduling priority).
fn weights(config: &Config, checker: &Checker) -> PerTask<Option<std::time::Duration>> {
    config.tasks.iter().map(|t| checker.state.duration(&t.name).map(std::time::Duration::from_millis)).collect()
}

impl<L: Launcher> Driver<'_, L> {
    fn tick(&mut self) {
        self.input(Input::Tick(std::time::Instant::now()));
    }

    fn input(&mut self, input: Input) {
        let effects = self.engine.handle(input);
        self.perform(effects);
    }

    fn on_report(&mut self, report: Report) {
        let Some(name) = self.instances.get(&report.instance) else { return };
        let Some(task) = self.config.id(name) else { return };
        // Its JUnit reports first, if it wrote some: this report comes back once they are read.
        let report = match self.junit.is_empty() {
            true => report,
            false => match self.after_tests(&name.clone(), report) {
                Some(report) => report,
                None => return,
            },
        };
        if let Happened::Exited { .. } = &report.what {
            // A task has one live instance at most: its runner is gone.
            let name = self.instances.remove(&report.instance).expect("looked up above");
            self.controls.remove(&name);
            // A task's process ended: anything it left that escaped its group is re-parented to irun now.
            self.launcher.task_ended();
        }
        self.input(Input::Task { task, what: report.what });
    }

    fn on_batch(&mut self, batch: Batch, watching: Option<&Watching>) {
        self.tick();
        self.caching.files_changed();
        if self.engine.interrupted() {
            return;
        }
        let had_reload = self.reload.is_some();
        if let Some(w) = watching {
            self.check_config(&batch, w);
        }
        match self.reload.as_mut() {
            // A reload waits for the current cycle: changes seen meanwhile go to the new configuration (the old one
            // could start again a task that is being retired).
            Some(reload) if had_reload => reload.held.push(change_of(batch)),
            _ => self.input(Input::Changed(change_of(batch))),
        }
    }

    /// The run is over: save the state, stop what escaped, and say how it went: as the engine decided, or
    /// interrupted if a signal came while the save waited for another run's lock.
    async fn finish(&mut self, outcome: RunOutcome, started: Instant, signals: &mut Signals) -> RunOutcome {
        let outcome = match self.save_last(signals).await {
            Some(sig) => RunOutcome::Interrupted(sig),
            None => outcome,
        };
        // Every task is done; anything of this run still alive escaped its group after its task ended.
        let count = self.launcher.stop_escaped().await;
        if count > 0 {
            self.events.send(Event::EscapeesStopped { count });
        }
        self.events.send(Event::RunFinished { outcome, elapsed: started.elapsed() });
        self.events.flush();
        outcome
    }
}
