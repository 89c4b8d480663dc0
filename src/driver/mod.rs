//! The async loop around the engine: it turns runner reports, signals, watcher batches and timers into
//! [`Input`]s, and performs the [`Effect`]s the engine returns (spawn and stop runners, check freshness, record
//! and save the state, send events). It decides nothing the engine could decide.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::{Check, Config};
use crate::engine::{self, Change, Changed, Control, Effect, End, Engine, Input};
use crate::events::{Event, EventSender, RunOutcome};
use crate::fresh::{Checker, Snapshot};
use crate::outcome::Outcome;
use crate::plan::Plan;
use crate::runner::{self, Happened, Job, Report};

mod reload;
use crate::signals::Signals;
use crate::watch::Batch;
use reload::Reload;

/// Watch mode's inputs and how to reload Irun.toml.
pub struct Watching {
    pub changes: mpsc::UnboundedReceiver<Batch>,
    pub watcher: crate::watch::Watcher,
    /// The command line's targets (empty: `default`), for a reloaded Irun.toml.
    pub targets: Vec<String>,
    /// Arguments after `--`, for the one target that is a task.
    pub args: Vec<String>,
    /// `-j` from the command line, which wins over a reloaded `jobs`.
    pub cli_jobs: Option<usize>,
}

pub struct Setup {
    pub config: Arc<Config>,
    pub plan: Arc<Plan>,
    pub options: engine::Options,
    pub checker: Checker,
    pub events: EventSender,
    pub watching: Option<Watching>,
    pub notices: Vec<String>,
    /// Fires when irun's stdout is closed (its reader went away): the run stops as if interrupted by SIGPIPE.
    pub output_closed: mpsc::UnboundedReceiver<()>,
}

struct Driver {
    config: Arc<Config>,
    engine: Engine,
    checker: Checker,
    events: EventSender,
    reports: mpsc::UnboundedSender<Report>,
    /// Per task: what it looked like when it was decided that it runs (recorded if it then ends).
    snapshots: Vec<Option<Snapshot>>,
    /// Per task: its live runner's control channel.
    controls: Vec<Option<watch::Sender<Option<Control>>>>,
    /// Live runner instances and their task.
    instances: HashMap<u64, usize>,
    next_instance: u64,
    state_dirty: bool,
    state_saved: Instant,
    state_save_took: Duration,
    /// A save put off to keep saves rare; it happens at this time at the latest.
    save_due: Option<Instant>,
    /// A save failed and the user was told.
    state_warned: bool,
    /// The text of Irun.toml last seen (valid or not), so an unchanged file is not parsed again.
    config_text: String,
    reload: Option<Reload>,
    /// The ports chosen for the services with `ready = { tcp = "auto" }` that were started, by task name.
    ports: HashMap<String, u16>,
}

/// Run the plan to the end and say how it went. Every process started is gone when this returns.
///
/// In watch mode the plan runs once, then again for each batch of changes (only the affected tasks), until irun
/// is interrupted.
pub async fn run(setup: Setup) -> RunOutcome {
    let started = Instant::now();
    let Setup { config, plan, options, checker, events, mut watching, notices, mut output_closed } = setup;
    // Installed before anything is spawned: from here on SIGINT/SIGTERM/SIGHUP only set irun's own teardown going.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            let message = format!("cannot install signal handlers ({e}); nothing was started");
            events.send(Event::Notice { task: None, message });
            return RunOutcome::Failed;
        }
    };
    let (reports, mut inbox) = mpsc::unbounded_channel();
    let n = config.tasks.len();
    let weights = weights(&config, &checker);
    let sources = config.tasks.iter().map(|t| crate::config::glob_set(t.sources())).collect();
    let engine = Engine::new(plan, sources, &weights, options, started.into_std());
    let mut d = Driver {
        config_text: config.source.text.to_string(),
        config,
        engine,
        checker,
        events,
        reports,
        snapshots: vec![None; n],
        controls: vec![None; n],
        instances: HashMap::new(),
        next_instance: 0,
        state_dirty: false,
        state_saved: Instant::now(),
        state_save_took: Duration::ZERO,
        save_due: None,
        state_warned: false,
        reload: None,
        ports: HashMap::new(),
    };
    let effects = d.engine.start(notices);
    d.perform(effects);

    let mut guard_exit = guard_watch();
    let mut adoption_scan = Instant::now() + ADOPTION_SCAN_EVERY;
    let mut last_adoption_scan = Instant::now();
    let outcome = loop {
        if let Some(outcome) = d.engine.finished() {
            break outcome;
        }
        d.apply_reload(watching.as_ref());
        let save_due = d.save_due;
        tokio::select! {
            Some(report) = inbox.recv() => {
                d.tick();
                let mut ended = report_ends(&report);
                d.on_report(report);
                // Reports come in bursts on big graphs: take what is already there before looking elsewhere.
                while let Ok(report) = inbox.try_recv() {
                    ended |= report_ends(&report);
                    d.on_report(report);
                }
                if ended {
                    // A task's process ended: anything it left that escaped its group is re-parented to irun now.
                    adoption_scan = adoption_scan.min(last_adoption_scan + ADOPTION_SCAN_GAP);
                }
            }
            () = tokio::time::sleep_until(adoption_scan) => {
                last_adoption_scan = Instant::now();
                adoption_scan = last_adoption_scan + ADOPTION_SCAN_EVERY;
                d.adopt_orphans();
                // Also where no pidfd tells of the guard's end (old kernels, seccomp): at least once a second.
                if let Some(message) = crate::guard::revive() {
                    d.events.send(Event::Notice { task: None, message });
                    guard_exit = guard_watch();
                }
            }
            () = guard_exited(&guard_exit) => {
                if let Some(message) = crate::guard::revive() {
                    d.events.send(Event::Notice { task: None, message });
                }
                guard_exit = guard_watch();
            }
            received = signals.recv() => {
                d.tick();
                for sig in received {
                    d.input(Input::Signal(sig));
                }
            }
            Some(batch) = next_batch(&mut watching) => {
                d.tick();
                if !d.engine.interrupted() {
                    let had_reload = d.reload.is_some();
                    if let Some(w) = watching.as_ref() {
                        d.check_config(&batch, w);
                    }
                    match d.reload.as_mut() {
                        // A reload waits for the current cycle: changes seen meanwhile go to the new configuration
                        // (the old one could start again a task that is being retired).
                        Some(reload) if had_reload => reload.held.push(change_of(batch)),
                        _ => d.input(Input::Changed(change_of(batch))),
                    }
                }
            }
            () = sleep_until(save_due) => d.save_state(true),
            Some(()) = output_closed.recv() => {
                d.tick();
                d.input(Input::Signal(nix::sys::signal::Signal::SIGPIPE));
            }
        }
    };

    d.save(true, true);
    // Every task is done; anything of this run still alive escaped its group after its task ended.
    let escaped =
        crate::supervisor::stop_all_escaped(nix::sys::signal::Signal::SIGTERM, crate::config::DEFAULT_STOP_TIMEOUT)
            .await;
    if escaped > 0 {
        let message = format!(
            "stopped {escaped} process{} that had left {} task's process group and outlived it",
            if escaped == 1 { "" } else { "es" },
            if escaped == 1 { "its" } else { "their" }
        );
        d.events.send(Event::Notice { task: None, message });
    }
    d.events.send(Event::RunFinished { outcome, elapsed: started.elapsed() });
    d.events.flush();
    outcome
}

/// Orphans are looked for this often, and soon after a task's process ends (but never more often than the gap).
const ADOPTION_SCAN_EVERY: Duration = Duration::from_secs(1);
const ADOPTION_SCAN_GAP: Duration = Duration::from_millis(50);

fn report_ends(report: &Report) -> bool {
    matches!(report.what, Happened::Finished { .. })
}

/// The guard's exit, as something the loop can wait for (none: no guard, or no pidfd on this kernel).
fn guard_watch() -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    let fd = crate::guard::pidfd()?;
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the same descriptor) until the AsyncFd is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

async fn guard_exited(watch: &Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>) {
    match watch {
        Some(fd) => {
            let _ = fd.readable().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_batch(watching: &mut Option<Watching>) -> Option<Batch> {
    match watching {
        Some(w) => w.changes.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn change_of(batch: Batch) -> Change {
    Change {
        paths: batch.paths,
        rescan: batch.rescan,
        notices: batch.notices,
        first: batch.first_seen,
        last: batch.last_seen,
    }
}

/// How long each task took last time (for scheduling priority).
fn weights(config: &Config, checker: &Checker) -> Vec<Option<Duration>> {
    config.tasks.iter().map(|t| checker.state.durations.get(&t.name).map(|&ms| Duration::from_millis(ms))).collect()
}

impl Driver {
    fn tick(&mut self) {
        self.input(Input::Tick(std::time::Instant::now()));
    }

    fn input(&mut self, input: Input) {
        let effects = self.engine.handle(input);
        self.perform(effects);
    }

    /// Carry out effects in order. A freshness check is answered at once, before any other input.
    fn perform(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Emit(event) => self.events.send(event),
                Effect::Spawn { task, restarting, changed } => self.spawn(task, restarting, changed),
                Effect::Stop { task, control } => {
                    if let Some(tx) = &self.controls[task] {
                        tx.send_modify(|c| *c = Some(engine::control::merge(*c, control)));
                    }
                }
                Effect::CheckFreshness { task, dep_ran } => {
                    if !self.config.tasks[task].sources().is_empty() {
                        // Hashing sources can take a while: what happened before is shown first.
                        self.events.flush();
                    }
                    let dep_ran = dep_ran.map(|d| self.config.tasks[d].name.clone());
                    let (verdict, snapshot) =
                        self.checker.verdict(&self.config, &self.config.tasks[task], dep_ran.as_deref(), "ran");
                    self.snapshots[task] = snapshot;
                    queue.extend(self.engine.handle(Input::Freshness { task, verdict }));
                }
                Effect::Record { task, outcome, took } => self.record(task, outcome, took),
                Effect::SaveState { urgent } => self.save_state(urgent),
            }
        }
    }

    fn spawn(&mut self, task: usize, restarting: bool, changed: Option<Changed>) {
        if self.snapshots[task].is_some() {
            // Until it succeeds, its old record no longer vouches for anything.
            self.checker.started(&self.config.tasks[task]);
            self.state_dirty = true;
        }
        if self.config.tasks[task].is_service() {
            // Its dependents compare this fingerprint with the one they last ran against.
            self.checker.service_started(&self.config, &self.config.tasks[task]);
            self.state_dirty = true;
        }
        let (tx, rx) = watch::channel(None);
        self.controls[task] = Some(tx);
        let instance = self.next_instance;
        self.next_instance += 1;
        self.instances.insert(instance, task);
        let mut extra_env = changed.map(|c| changed_paths_env(&c.paths, c.unknown)).unwrap_or_default();
        let port = self.choose_port(task);
        extra_env.extend(self.port_env(task, port));
        let job = Job {
            config: self.config.clone(),
            index: task,
            instance,
            name: self.engine.plan().names[task].clone(),
            restarting,
            extra_env,
            port,
            events: self.events.clone(),
            reports: self.reports.clone(),
            control: rx,
        };
        let reports = self.reports.clone();
        tokio::spawn(async move {
            // A runner that panics still reports an end (its process group is killed as it unwinds), so the run
            // cannot wait for it forever.
            if let Err(e) = tokio::spawn(runner::run(job)).await {
                let what = Happened::Finished { end: End::Broken(e.to_string()), duration: Duration::ZERO };
                let _ = reports.send(Report { instance, what });
            }
        });
    }

    /// For a service with `ready = { tcp = "auto" }`: a port free on this machine now, remembered for the tasks
    /// that depend on it. `None` for any other task (or if no port could be had: its runner says so).
    fn choose_port(&mut self, task: usize) -> Option<u16> {
        let def = &self.config.tasks[task];
        let auto = def.probe().is_some_and(|p| p.check == Check::AutoTcp);
        if !auto {
            return None;
        }
        let port = std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).ok()?.port();
        self.ports.insert(def.name.clone(), port);
        Some(port)
    }

    /// `IRUN_PORT` for a service's own chosen port, and `IRUN_PORT_<NAME>` for it and for every service with a
    /// chosen port that the task depends on (directly, or through other tasks and groups).
    fn port_env(&self, task: usize, own: Option<u16>) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(port) = own {
            env.push(("IRUN_PORT".to_string(), port.to_string()));
        }
        if self.ports.is_empty() {
            return env;
        }
        let plan = self.engine.plan();
        let mut seen = vec![false; self.config.tasks.len()];
        let mut stack = vec![task];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let name = &self.config.tasks[i].name;
            if let Some(port) = self.ports.get(name) {
                env.push((crate::config::port_variable(name), port.to_string()));
            }
            stack.extend(plan.deps[i].iter().copied());
        }
        env
    }

    fn on_report(&mut self, report: Report) {
        let Some(&task) = self.instances.get(&report.instance) else { return };
        let input = match report.what {
            Happened::Started { pid, port } => Input::Started { task, pid, port },
            Happened::Ready { after, probe } => Input::Ready { task, after, probe },
            Happened::Restarting { attempt, max, exit, delay } => Input::Restarting { task, attempt, max, exit, delay },
            Happened::Finished { end, duration } => {
                self.instances.remove(&report.instance);
                self.controls[task] = None;
                Input::Exited { task, end, duration }
            }
        };
        self.input(input);
    }

    /// Tell the guard about processes that left their task's group and were re-parented to irun, and say so.
    fn adopt_orphans(&mut self) {
        for pid in crate::supervisor::adopt_orphans() {
            let message = format!(
                "process {pid} left its task's process group and outlived its parent; irun stops it when the run ends"
            );
            self.events.send(Event::Notice { task: None, message });
        }
    }

    fn record(&mut self, task: usize, outcome: Outcome, took: Option<Duration>) {
        let snapshot = self.snapshots[task].take();
        let def = &self.config.tasks[task];
        if let Some(took) = took {
            self.checker.state.set_duration(&def.name, took.as_millis() as u64);
        }
        if !outcome.is_recorded() {
            // Up to date: its record stands. Cancelled or blocked: a run that started stays marked unfinished.
            return;
        }
        let ok = outcome == Outcome::Ok;
        match snapshot {
            Some(snapshot) => self.checker.record(def, snapshot, ok),
            None => self.checker.record_status(def, ok),
        }
        self.state_dirty = true;
    }

    /// Save the state: now if `urgent`, else at most once a second, and at least twenty times as long apart as the
    /// last save took (a big state must not become a cost paid over and over); a save put off is done when due.
    /// While another run holds the state's lock, the save is tried again shortly (only the last one waits).
    fn save_state(&mut self, urgent: bool) {
        self.save(urgent, false);
    }

    fn save(&mut self, urgent: bool, last: bool) {
        self.state_dirty |= self.checker.state.unsaved();
        if !self.state_dirty {
            self.save_due = None;
            return;
        }
        let pause = Duration::from_secs(1).max(self.state_save_took * 20);
        if !urgent && self.state_saved.elapsed() < pause {
            self.save_due.get_or_insert(self.state_saved + pause);
            return;
        }
        let started = Instant::now();
        let saved = self.checker.state.save(last);
        self.state_save_took = started.elapsed();
        self.state_saved = Instant::now();
        match saved {
            Ok(true) => {
                self.state_dirty = false;
                self.save_due = None;
            }
            // Another run is saving: again in a moment.
            Ok(false) => self.save_due = Some(Instant::now() + Duration::from_millis(100)),
            Err(e) => {
                self.state_dirty = false;
                self.save_due = None;
                // Said once: the run's result stands, and the next save would fail the same way.
                if !std::mem::replace(&mut self.state_warned, true) {
                    let path = crate::state::State::path_for(&self.config.root);
                    let message = format!("warning: cannot save irun's state to {}: {e}", path.display());
                    self.events.send(Event::Notice { task: None, message });
                }
            }
        }
    }
}

/// Largest `IRUN_CHANGED_PATHS` passed on: the kernel refuses a single variable over 128 KiB.
const CHANGED_PATHS_MAX: usize = 64 * 1024;

/// `IRUN_CHANGED_PATHS` (`:`-separated, relative to the project), with `IRUN_CHANGED_PATHS_TRUNCATED=1` when the
/// list was cut short, or `IRUN_CHANGED_UNKNOWN=1` when events were lost and the paths are not known.
fn changed_paths_env(changed: &BTreeSet<String>, unknown: bool) -> Vec<(String, String)> {
    let mut value = String::new();
    let mut truncated = false;
    for path in changed {
        if value.len() + path.len() + 1 > CHANGED_PATHS_MAX {
            truncated = true;
            break;
        }
        if !value.is_empty() {
            value.push(':');
        }
        value.push_str(path);
    }
    let mut env = vec![("IRUN_CHANGED_PATHS".to_string(), value)];
    if truncated {
        env.push(("IRUN_CHANGED_PATHS_TRUNCATED".to_string(), "1".to_string()));
    }
    if unknown {
        env.push(("IRUN_CHANGED_UNKNOWN".to_string(), "1".to_string()));
    }
    env
}
