//! The async loop around the engine: it turns runner reports, signals, watcher batches and timers into
//! [`Input`]s, and performs the [`Effect`]s the engine returns (spawn and stop runners, check freshness, record
//! and save the state, send events). It decides nothing the engine could decide.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::engine::{self, Change, Changed, Control, Effect, End, Engine, Input};
use crate::events::{Event, EventSender, RunOutcome, TaskKind};
use crate::fresh::{Checker, Snapshot};
use crate::outcome::Outcome;
use crate::plan::Plan;
use crate::runner::{self, Happened, Job, Report};
use crate::signals::Signals;
use crate::watch::Batch;

/// Watch mode's inputs and how to reload Irun.toml.
pub struct Watching {
    pub changes: mpsc::UnboundedReceiver<Batch>,
    pub watcher: crate::watch::Watcher,
    /// The command line's targets (empty: `default`), for a reloaded Irun.toml.
    pub targets: Vec<String>,
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
}

/// A valid new Irun.toml waiting to be applied once the engine is quiet.
struct Reload {
    config: Arc<Config>,
    plan: Arc<Plan>,
    jobs: usize,
    /// Per task of the new plan: the old task it continues (same name, same definition).
    map: Vec<Option<usize>>,
    retired: bool,
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
    /// The text of Irun.toml last seen (valid or not), so an unchanged file is not parsed again.
    config_text: String,
    reload: Option<Reload>,
}

/// Run the plan to the end and say how it went. Every process started is gone when this returns.
///
/// In watch mode the plan runs once, then again for each batch of changes (only the affected tasks), until irun
/// is interrupted.
pub async fn run(setup: Setup) -> RunOutcome {
    let started = Instant::now();
    let Setup { config, plan, options, checker, events, mut watching, notices } = setup;
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
    let sources = config.tasks.iter().map(|t| crate::config::glob_set(&t.sources)).collect();
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
        reload: None,
    };
    let effects = d.engine.start(notices);
    d.perform(effects);

    let outcome = loop {
        if let Some(outcome) = d.engine.finished() {
            break outcome;
        }
        d.apply_reload(watching.as_ref());
        let save_due = d.save_due;
        tokio::select! {
            Some(report) = inbox.recv() => {
                d.tick();
                d.on_report(report);
                // Reports come in bursts on big graphs: take what is already there before looking elsewhere.
                while let Ok(report) = inbox.try_recv() {
                    d.on_report(report);
                }
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
                    if let Some(w) = watching.as_ref() {
                        d.check_config(&batch, w);
                    }
                    d.input(Input::Changed(change_of(batch)));
                }
            }
            () = sleep_until(save_due) => d.save_state(true),
        }
    };

    d.save_state(true);
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
    outcome
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
                    let plan = self.engine.plan();
                    let deps = plan.dep_names_through_groups(task);
                    let deps: Vec<&str> = deps.iter().map(|d| &**d).collect();
                    let dep_ran = dep_ran.map(|d| plan.names[d].clone());
                    let (verdict, snapshot) =
                        self.checker.verdict(&self.config.tasks[task], &deps, dep_ran.as_deref(), "ran");
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
        let (tx, rx) = watch::channel(None);
        self.controls[task] = Some(tx);
        let instance = self.next_instance;
        self.next_instance += 1;
        self.instances.insert(instance, task);
        let job = Job {
            config: self.config.clone(),
            index: task,
            instance,
            name: self.engine.plan().names[task].clone(),
            restarting,
            extra_env: changed.map(|c| changed_paths_env(&c.paths, c.unknown)).unwrap_or_default(),
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

    fn on_report(&mut self, report: Report) {
        let Some(&task) = self.instances.get(&report.instance) else { return };
        let input = match report.what {
            Happened::Started { pid } => Input::Started { task, pid },
            Happened::Ready { after, probe } => Input::Ready { task, after, probe },
            Happened::Finished { end, duration } => {
                self.instances.remove(&report.instance);
                self.controls[task] = None;
                Input::Exited { task, end, duration }
            }
        };
        self.input(input);
    }

    fn record(&mut self, task: usize, outcome: Outcome, took: Option<Duration>) {
        let snapshot = self.snapshots[task].take();
        let def = &self.config.tasks[task];
        if let Some(took) = took {
            self.checker.state.durations.insert(def.name.clone(), took.as_millis() as u64);
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
    fn save_state(&mut self, urgent: bool) {
        if !self.state_dirty {
            self.save_due = None;
            return;
        }
        let pause = Duration::from_secs(1).max(self.state_save_took * 20);
        if !urgent && self.state_saved.elapsed() < pause {
            self.save_due.get_or_insert(self.state_saved + pause);
            return;
        }
        self.state_dirty = false;
        self.save_due = None;
        let started = Instant::now();
        let saved = self.checker.state.save();
        self.state_save_took = started.elapsed();
        self.state_saved = Instant::now();
        if let Err(e) = saved {
            let message = format!("cannot save irun's state in {}: {e}", crate::state::DIR);
            self.events.send(Event::Notice { task: None, message });
        }
    }

    // -- Irun.toml edited during watch mode ----------------------------------------------------------------------

    /// If this batch touched Irun.toml (or events were lost), read it again: a valid new version is applied once
    /// the current cycle is over; an invalid one is reported, and the old one stays in force.
    fn check_config(&mut self, batch: &Batch, w: &Watching) {
        let path = self.config.source.path.clone();
        let rel = path.strip_prefix(&self.config.root).unwrap_or(&path).to_path_buf();
        if !(batch.rescan || batch.paths.contains(&rel)) {
            return;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                let message = format!("cannot read {}: {e}; still using the version irun started with", path.display());
                self.events.send(Event::Notice { task: None, message });
                return;
            }
        };
        if text == self.config_text {
            return;
        }
        self.config_text = text.clone();
        match load(&path, &text, &self.config.root, &w.targets) {
            Err(d) => {
                let message = format!(
                    "{} changed but cannot be used; still running the previous version:\n{}",
                    rel.display(),
                    d.render(false).trim_end()
                );
                self.events.send(Event::Notice { task: None, message });
                self.reload = None;
            }
            Ok((config, plan)) => {
                let map = continuity(&self.config, &self.engine.plan(), &config, &plan);
                let jobs = w.cli_jobs.or(config.jobs).unwrap_or_else(default_jobs);
                self.reload =
                    Some(Reload { config: Arc::new(config), plan: Arc::new(plan), jobs, map, retired: false });
            }
        }
    }

    /// Apply a pending reload once nothing runs: stop what is gone or changed, then carry on with a new engine.
    fn apply_reload(&mut self, watching: Option<&Watching>) {
        let (Some(w), true) = (watching, self.engine.quiet()) else { return };
        if self.engine.interrupted() {
            self.reload = None;
            return;
        }
        let Some(reload) = self.reload.as_mut() else { return };
        let old_plan = self.engine.plan();
        let kept: BTreeSet<usize> = reload.map.iter().flatten().copied().collect();
        if !reload.retired {
            reload.retired = true;
            let retire: Vec<usize> =
                old_plan.order.iter().copied().filter(|i| !kept.contains(i) && self.engine.life(*i).alive()).collect();
            if !retire.is_empty() {
                let effects = self.engine.retire(&retire);
                self.perform(effects);
                return;
            }
        }
        let reload = self.reload.take().expect("checked above");
        let old_plan = self.engine.plan();
        let describe = |names: Vec<&str>| if names.is_empty() { None } else { Some(names.join(", ")) };
        let added = describe(
            reload
                .plan
                .order
                .iter()
                .filter(|&&j| reload.map[j].is_none() && !old_plan.names.iter().any(|n| *n == reload.plan.names[j]))
                .map(|&j| &*reload.plan.names[j])
                .collect(),
        );
        let changed = describe(
            reload
                .plan
                .order
                .iter()
                .filter(|&&j| reload.map[j].is_none() && old_plan.names.iter().any(|n| *n == reload.plan.names[j]))
                .map(|&j| &*reload.plan.names[j])
                .collect(),
        );
        let removed = describe(
            old_plan
                .order
                .iter()
                .filter(|&&i| !reload.plan.order.iter().any(|&j| reload.plan.names[j] == old_plan.names[i]))
                .map(|&i| &*old_plan.names[i])
                .collect(),
        );
        let what: Vec<String> = [("added", added), ("changed", changed), ("removed", removed)]
            .into_iter()
            .filter_map(|(verb, names)| names.map(|n| format!("{verb} {n}")))
            .collect();
        let file =
            reload.config.source.path.file_name().map_or("Irun.toml".into(), |f| f.to_string_lossy().into_owned());
        let message = if what.is_empty() {
            format!("{file} changed; no task changed")
        } else {
            format!("{file} changed: {}", what.join("; "))
        };
        self.events.send(Event::Notice { task: None, message });

        // Runners and their channels follow their tasks to their new positions.
        let n = reload.config.tasks.len();
        let mut back = vec![None; self.controls.len()];
        for (j, &old) in reload.map.iter().enumerate() {
            if let Some(old) = old {
                back[old] = Some(j);
            }
        }
        let mut controls = vec![None; n];
        for (old, tx) in std::mem::take(&mut self.controls).into_iter().enumerate() {
            if let (Some(j), Some(tx)) = (back[old], tx) {
                controls[j] = Some(tx);
            }
        }
        self.controls = controls;
        self.instances.retain(|_, task| match back[*task] {
            Some(j) => {
                *task = j;
                true
            }
            None => false,
        });
        self.snapshots = vec![None; n];
        let outputs: Vec<String> =
            reload.plan.order.iter().flat_map(|&j| reload.config.tasks[j].outputs.iter().cloned()).collect();
        w.watcher.set_outputs(&outputs);
        let sources = reload.config.tasks.iter().map(|t| crate::config::glob_set(&t.sources)).collect();
        let weights = weights(&reload.config, &self.checker);
        let mut options = self.engine.options().clone();
        options.jobs = reload.jobs;
        let engine = Engine::new(reload.plan, sources, &weights, options, std::time::Instant::now());
        let old = std::mem::replace(&mut self.engine, engine);
        self.config = reload.config;
        let rel = self.config.source.path.strip_prefix(&self.config.root).unwrap_or(&self.config.source.path);
        let effects = self.engine.reconfigured(&old, &reload.map, rel.to_string_lossy().into_owned());
        self.perform(effects);
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Parse, check and plan a new Irun.toml text.
fn load(path: &Path, text: &str, root: &Path, targets: &[String]) -> Result<(Config, Plan), Diagnostic> {
    let config = crate::config::parse(crate::diagnostic::Source::new(path, text), root.to_path_buf())?;
    let plan = {
        let graph = crate::graph::TaskGraph::new(&config)?;
        let targets = crate::plan::targets(&config, &graph, targets)?;
        Plan::new(&graph, &targets)
    };
    Ok((config, plan))
}

/// For each task of the new plan: the task of the old plan it continues, if it has the same name and the same
/// definition (a changed task is a new one).
fn continuity(old: &Config, old_plan: &Plan, new: &Config, new_plan: &Plan) -> Vec<Option<usize>> {
    let by_name: HashMap<&str, usize> = old_plan.order.iter().map(|&i| (old.tasks[i].name.as_str(), i)).collect();
    (0..new.tasks.len())
        .map(|j| {
            if !new_plan.selected[j] {
                return None;
            }
            let i = *by_name.get(new.tasks[j].name.as_str())?;
            let same = old.tasks[i].same_definition(&new.tasks[j]) && old_plan.kinds[i] == new_plan.kinds[j];
            // A service that was a target (foreground) and is now needed by others, or the reverse, runs
            // differently: start it afresh.
            let same =
                same && (new_plan.kinds[j] != TaskKind::Service || old_plan.foreground[i] == new_plan.foreground[j]);
            same.then_some(i)
        })
        .collect()
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
