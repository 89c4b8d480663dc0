//! The engine's rules, one test each, driven the way the driver drives it (freshness verdicts answered at once).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::config;
use crate::diagnostic::Source;
use crate::outcome::StopReason;
use crate::outcome::{ChildExit, RunReason};

/// An engine on an Irun.toml text, fed like the driver feeds it.
pub(super) struct Sim {
    pub(crate) engine: Engine,
    pub(crate) names: HashMap<String, TaskId>,
    /// Verdicts given to freshness checks (default: run).
    pub(crate) fresh: HashMap<TaskId, Verdict>,
    /// Tasks whose inputs a change leaves the same by content (a touch): the others' did change.
    pub(crate) same: BTreeSet<TaskId>,
    pub(crate) t0: Instant,
    /// Every effect so far.
    pub(crate) log: Vec<Effect>,
    /// Tasks whose freshness checks are not answered at once (the remote cache is being asked): the test answers.
    pub(crate) held: BTreeSet<TaskId>,
}

pub(super) fn plan_of(toml: &str, targets: &[&str]) -> (Arc<Plan>, PerTask<config::Globs>) {
    let config = config::parse(Source::new(Path::new("Irun.toml"), toml), PathBuf::from("/project"))
        .unwrap_or_else(|d| panic!("{}", d.render(false)));
    let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let request = crate::request::Request { targets, ..Default::default() };
    let prepared = crate::request::plan(config, &request).unwrap_or_else(|d| panic!("{}", d.render(false)));
    let sources = prepared.config.tasks.iter().map(|t| config::Globs::new(t.sources())).collect();
    (Arc::new(prepared.plan), sources)
}

impl Sim {
    pub(crate) fn new(toml: &str, targets: &[&str], jobs: usize, watch: Option<OnBusy>) -> Sim {
        Sim::with(toml, targets, Options { jobs, keep_going: false, explain: false, watch }, &[])
    }

    pub(crate) fn with(toml: &str, targets: &[&str], opts: Options, weights: &[(&str, u64)]) -> Sim {
        let (plan, sources) = plan_of(toml, targets);
        let names: HashMap<String, TaskId> = plan.tasks().enumerate().map(|(i, t)| (t.name.to_string(), i)).collect();
        let mut w = PerTask::filled(plan.len(), None);
        for (name, ms) in weights {
            w[names[*name]] = Some(Duration::from_millis(*ms));
        }
        let t0 = Instant::now();
        let engine = Engine::new(plan, sources, &w, opts, t0);
        Sim { engine, names, fresh: HashMap::new(), same: BTreeSet::new(), t0, log: Vec::new(), held: BTreeSet::new() }
    }

    pub(crate) fn i(&self, name: &str) -> TaskId {
        self.names[name]
    }

    pub(crate) fn up_to_date(&mut self, names: &[&str]) {
        for n in names {
            self.fresh.insert(self.i(n), Verdict::UpToDate);
        }
    }

    fn answer(&mut self, mut effects: Vec<Effect>) -> Vec<Effect> {
        let mut all = Vec::new();
        while !effects.is_empty() {
            let mut next = Vec::new();
            for e in effects {
                if let Effect::CheckFreshness { task, .. } = &e
                    && !self.held.contains(task)
                {
                    let verdict = self.fresh.get(task).cloned().unwrap_or(Verdict::Run(RunReason::NeverRan));
                    next.extend(self.engine.handle(Input::Freshness { task: *task, verdict }));
                }
                if let Effect::CheckInputs { tasks } = &e {
                    let changed = tasks.iter().copied().filter(|t| !self.same.contains(t)).collect();
                    next.extend(self.engine.handle(Input::InputsChecked { changed }));
                }
                all.push(e);
            }
            effects = next;
        }
        self.log.extend(all.iter().cloned());
        all
    }

    pub(crate) fn start(&mut self) -> Vec<Effect> {
        let effects = self.engine.start(Vec::new());
        self.answer(effects)
    }

    pub(crate) fn feed(&mut self, input: Input) -> Vec<Effect> {
        let effects = self.engine.handle(input);
        self.answer(effects)
    }

    pub(crate) fn at(&mut self, ms: u64) {
        self.feed(Input::Tick(self.t0 + Duration::from_millis(ms)));
    }

    pub(crate) fn started(&mut self, name: &str) -> Vec<Effect> {
        let task = self.i(name);
        self.feed(Input::Task { task, what: Happened::Started { pid: 1000 + task.index() as u32, port: None } })
    }

    pub(crate) fn ready(&mut self, name: &str) -> Vec<Effect> {
        let task = self.i(name);
        self.feed(Input::Task {
            task,
            what: Happened::Ready { after: Duration::from_millis(5), probe: None, reused: false },
        })
    }

    pub(crate) fn exit(&mut self, name: &str, code: i32) -> Vec<Effect> {
        let task = self.i(name);
        let end = End::Exited(ChildExit::Code(code));
        self.feed(Input::Task { task, what: Happened::Exited { end, duration: Duration::from_millis(1) } })
    }

    pub(crate) fn stopped(&mut self, name: &str) -> Vec<Effect> {
        let task = self.i(name);
        self.feed(Input::Task {
            task,
            what: Happened::Exited { end: End::Stopped, duration: Duration::from_millis(1) },
        })
    }

    /// Start a task the engine spawned and let it exit 0.
    pub(crate) fn run_ok(&mut self, name: &str) -> Vec<Effect> {
        self.started(name);
        self.exit(name, 0)
    }

    pub(crate) fn change(&mut self, paths: &[&str]) -> Vec<Effect> {
        let change = Change { paths: paths.iter().map(PathBuf::from).collect(), ..Change::default() };
        self.feed(Input::Changed(change))
    }

    pub(crate) fn name(&self, i: TaskId) -> String {
        self.engine.plan[i].name.to_string()
    }

    pub(crate) fn outcome(&self, name: &str) -> Option<Outcome> {
        self.engine.life(self.i(name)).outcome().cloned()
    }
}

pub(super) fn spawned(sim: &Sim, effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { task, .. } => Some(sim.name(*task)),
            _ => None,
        })
        .collect()
}

pub(super) fn stops(sim: &Sim, effects: &[Effect]) -> Vec<(String, Control)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Stop { task, control } => Some((sim.name(*task), *control)),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<&Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(ev) => Some(&**ev),
            _ => None,
        })
        .collect()
}

fn finished(effects: &[Effect]) -> Vec<(String, Outcome)> {
    events(effects)
        .into_iter()
        .filter_map(|e| match e {
            Event::TaskFinished { task, outcome, .. } => Some((task.to_string(), outcome.clone())),
            _ => None,
        })
        .collect()
}

const STOP_RESTART: Control = Control::Stop(StopReason::Restart);

/// setup (sources) -> svc (service, sources) -> client (sources); other depends on setup.
const SCRATCH: &str = r#"
default = ["client", "other"]
[tasks.setup]
cmd = "setup"
sources = ["setup.txt"]
[tasks.svc]
cmd = "serve"
daemon = true
ready = { tcp = 1 }
sources = ["svc.txt"]
deps = ["setup"]
[tasks.client]
cmd = "client"
sources = ["client.txt"]
deps = ["svc"]
[tasks.other]
cmd = "other"
sources = ["other.txt"]
deps = ["setup"]
"#;

/// The scratch project in watch mode after its first run: setup and other up to date, svc ready, client ran.
fn scratch_watching() -> Sim {
    let mut sim = Sim::new(SCRATCH, &[], 4, Some(OnBusy::Restart));
    sim.up_to_date(&["setup", "other"]);
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["svc"], "only the service starts: setup and other are up to date");
    sim.started("svc");
    let effects = sim.ready("svc");
    assert_eq!(spawned(&sim, &effects), ["client"]);
    let effects = sim.run_ok("client");
    assert!(events(&effects).iter().any(|e| matches!(e, Event::CycleFinished { cycle: 0, .. })));
    sim.fresh.clear();
    sim
}

#[test]
fn a_change_does_not_pull_in_deps_that_are_up_to_date() {
    let mut sim = scratch_watching();
    let effects = sim.change(&["client.txt"]);
    assert_eq!(spawned(&sim, &effects), ["client"], "setup is up to date and svc ready: neither is pulled in");
    assert!(stops(&sim, &effects).is_empty(), "the service keeps running");
    let started = events(&effects).into_iter().find_map(|e| match e {
        Event::CycleStarted { tasks, .. } => Some(tasks.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(started.unwrap(), ["client"]);
}

#[test]
fn a_change_to_a_services_source_restarts_it_and_reruns_its_dependents_only() {
    let mut sim = scratch_watching();
    let effects = sim.change(&["svc.txt"]);
    assert_eq!(stops(&sim, &effects), [("svc".to_string(), STOP_RESTART)]);
    assert!(spawned(&sim, &effects).is_empty(), "nothing starts before the old instance is gone");
    let effects = sim.stopped("svc");
    assert_eq!(finished(&effects), [("svc".to_string(), Outcome::Restarted)]);
    assert_eq!(spawned(&sim, &effects), ["svc"]);
    sim.started("svc");
    let effects = sim.ready("svc");
    assert_eq!(spawned(&sim, &effects), ["client"]);
    sim.run_ok("client");
    assert_eq!(sim.outcome("setup"), Some(Outcome::UpToDate), "setup was left alone");
    assert_eq!(sim.outcome("other"), Some(Outcome::UpToDate), "other was left alone");
}

#[test]
fn a_service_whose_dep_reruns_is_restarted_and_its_dependents_run_again() {
    let mut sim = scratch_watching();
    let effects = sim.change(&["setup.txt"]);
    assert_eq!(stops(&sim, &effects), [("svc".to_string(), STOP_RESTART)], "the service's dep reruns");
    assert_eq!(spawned(&sim, &effects), ["setup"]);
    sim.stopped("svc");
    let effects = sim.run_ok("setup");
    let mut next = spawned(&sim, &effects);
    next.sort();
    assert_eq!(next, ["other", "svc"]);
    sim.started("svc");
    let effects = sim.ready("svc");
    assert_eq!(spawned(&sim, &effects), ["client"], "the client runs again, against the new instance");
}

#[test]
fn a_change_pulls_in_a_dep_that_failed() {
    let mut sim = Sim::new(SCRATCH, &[], 4, Some(OnBusy::Restart));
    sim.start();
    let effects = sim.exit("setup", 1);
    assert!(finished(&effects).contains(&("svc".to_string(), Outcome::Cancelled)));
    let effects = sim.change(&["client.txt"]);
    assert_eq!(spawned(&sim, &effects), ["setup"], "client cannot run without setup, which failed last time");
    let effects = sim.exit("setup", 0);
    let mut next = spawned(&sim, &effects);
    next.sort();
    assert_eq!(next, ["other", "svc"], "svc is needed by client; other was cancelled and owes its run");
}

#[test]
fn on_busy_restart_measures_the_cycle_from_its_first_change() {
    let mut sim = Sim::new("[tasks.slow]\ncmd = \"x\"\nsources = [\"in/*\"]\n", &["slow"], 2, Some(OnBusy::Restart));
    sim.start();
    sim.run_ok("slow");
    sim.at(1000);
    let first = sim.t0 + Duration::from_millis(1000);
    let change = Change {
        paths: BTreeSet::from([PathBuf::from("in/one")]),
        first: Some(first),
        last: Some(first),
        ..Change::default()
    };
    sim.feed(Input::Changed(change));
    sim.started("slow");
    sim.at(3000);
    let effects = sim.change(&["in/two"]);
    assert_eq!(stops(&sim, &effects), [("slow".to_string(), STOP_RESTART)]);
    let restarted = events(&effects)
        .into_iter()
        .any(|e| matches!(e, Event::CycleStarted { restarted: true, changed, .. } if changed == &["in/one", "in/two"]));
    assert!(restarted, "the new cycle covers both changes: {effects:?}");
    sim.stopped("slow");
    sim.started("slow");
    sim.at(4000);
    let effects = sim.exit("slow", 0);
    let elapsed = events(&effects).into_iter().find_map(|e| match e {
        Event::CycleFinished { elapsed, .. } => Some(*elapsed),
        _ => None,
    });
    assert_eq!(elapsed, Some(Duration::from_millis(3000)), "from the first change, not from the restart");
}

#[test]
fn two_signals_kill_at_once_however_close_together() {
    let mut sim = Sim::new("[tasks.svc]\ncmd = \"x\"\ndaemon = true\nstop_timeout = \"60s\"\n", &["svc"], 2, None);
    sim.start();
    sim.started("svc");
    sim.ready("svc");
    let first = sim.feed(Input::Signal(Signal::SIGINT));
    assert_eq!(stops(&sim, &first), [("svc".to_string(), Control::Stop(StopReason::Interrupted))]);
    let second = sim.feed(Input::Signal(Signal::SIGINT));
    assert_eq!(stops(&sim, &second), [("svc".to_string(), Control::Kill)]);
    let effects = sim.stopped("svc");
    assert_eq!(finished(&effects), [("svc".to_string(), Outcome::Cancelled)], "a service stopped by Ctrl-C is not ok");
    assert_eq!(sim.engine.finished(), Some(RunOutcome::Interrupted(Signal::SIGINT)));
}

#[test]
fn a_kill_is_never_followed_by_a_gentler_stop() {
    let mut sim = Sim::new(
        "[tasks.svc]\ncmd = \"x\"\ndaemon = true\n[tasks.a]\ncmd = \"a\"\ndeps = [\"svc\"]\n[tasks.b]\ncmd = \"b\"\n",
        &["a", "b"],
        4,
        None,
    );
    sim.start();
    sim.started("svc");
    sim.ready("svc");
    sim.started("a");
    sim.started("b");
    sim.feed(Input::Signal(Signal::SIGTERM));
    sim.feed(Input::Signal(Signal::SIGTERM));
    // a fails while being killed: fail-fast would stop everything, but everything is already being killed.
    let effects = sim.exit("a", 1);
    assert!(stops(&sim, &effects).is_empty(), "no stop after a kill: {effects:?}");
    let effects = sim.exit("b", 0);
    assert!(stops(&sim, &effects).is_empty(), "the service is not told to stop gracefully now: {effects:?}");
}

#[test]
fn the_first_signal_with_nothing_running_says_so() {
    let mut sim = Sim::new("[tasks.a]\ncmd = \"a\"\nsources = [\"a\"]\n", &["a"], 1, Some(OnBusy::Restart));
    sim.start();
    sim.run_ok("a");
    let effects = sim.feed(Input::Signal(Signal::SIGINT));
    let interrupted = events(&effects).into_iter().find(|e| matches!(e, Event::Interrupted { .. })).unwrap();
    assert!(matches!(interrupted, Event::Interrupted { running: 0, count: 1, .. }));
    assert_eq!(sim.engine.finished(), Some(RunOutcome::Interrupted(Signal::SIGINT)));
}

#[test]
fn a_freed_slot_goes_first_to_a_dependent_of_a_ready_service() {
    let toml = "[tasks.svc]\ncmd = \"s\"\ndaemon = true\n[tasks.client]\ncmd = \"c\"\ndeps = [\"svc\"]\n\
                [tasks.init]\ncmd = \"i\"\n[tasks.more]\ncmd = \"m\"\n";
    let opts = Options { jobs: 1, keep_going: false, explain: false, watch: None };
    // init and more took long last time: by the longest path alone they would go first.
    let mut sim =
        Sim::with(toml, &["client", "init", "more"], opts, &[("init", 900), ("more", 800), ("client", 10), ("svc", 1)]);
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["init"], "longest remaining path first");
    let effects = sim.run_ok("init");
    assert_eq!(spawned(&sim, &effects), ["more"]);
    let effects = sim.run_ok("more");
    assert_eq!(spawned(&sim, &effects), ["svc"]);
    sim.started("svc");
    let effects = sim.ready("svc");
    assert_eq!(spawned(&sim, &effects), ["client"]);

    // With the service first in line, its client beats a long task to the slot it frees.
    let mut sim =
        Sim::with(toml, &["client", "init"], Options { jobs: 1, ..sim.engine.opts.clone() }, &[("svc", 1000)]);
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["svc"]);
    sim.started("svc");
    let effects = sim.ready("svc");
    assert_eq!(spawned(&sim, &effects), ["client"], "not init, although it is older in plan order");
}

#[test]
fn the_longest_remaining_path_goes_first() {
    let toml = "[tasks.a]\ncmd = \"a\"\n[tasks.b]\ncmd = \"b\"\ndeps = [\"a\"]\n[tasks.c]\ncmd = \"c\"\ndeps = [\"b\"]\n\
                [tasks.side]\ncmd = \"s\"\n";
    let opts = Options { jobs: 1, keep_going: false, explain: false, watch: None };
    let mut sim = Sim::with(toml, &["side", "c"], opts, &[]);
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["a"], "a starts a chain of three; side stands alone");
}

#[test]
fn a_service_is_stopped_once_its_last_needer_is_done_and_not_started_if_none_is_left() {
    let toml = "[tasks.svc]\ncmd = \"s\"\ndaemon = true\n[tasks.bad]\ncmd = \"x\"\n[tasks.client]\ncmd = \"c\"\ndeps = [\"svc\", \"bad\"]\n";
    let opts = Options { jobs: 2, keep_going: true, explain: false, watch: None };
    let mut sim = Sim::with(toml, &["client"], opts, &[]);
    let effects = sim.start();
    let mut first = spawned(&sim, &effects);
    first.sort();
    assert_eq!(first, ["bad", "svc"]);
    sim.started("svc");
    sim.ready("svc");
    let effects = sim.exit("bad", 1);
    assert!(finished(&effects).contains(&("client".to_string(), Outcome::Blocked(Blocked::DepFailed("bad".into())))));
    assert_eq!(stops(&sim, &effects), [("svc".to_string(), Control::Stop(StopReason::NotNeeded))]);
    let effects = sim.stopped("svc");
    assert_eq!(finished(&effects), [("svc".to_string(), Outcome::Ok)], "a service stopped when not needed did its job");
    assert_eq!(sim.engine.finished(), Some(RunOutcome::Failed));
}

#[test]
fn a_cancelled_task_never_reaches_the_state_as_a_run() {
    let mut sim = Sim::new("[tasks.a]\ncmd = \"a\"\n[tasks.b]\ncmd = \"b\"\n", &["a", "b"], 2, None);
    sim.start();
    sim.started("a");
    sim.started("b");
    let effects = sim.exit("a", 3);
    assert_eq!(stops(&sim, &effects), [("b".to_string(), Control::Stop(StopReason::Cancelled))]);
    let effects = sim.stopped("b");
    let record = effects.iter().find_map(|e| match e {
        Effect::Record { outcome, took, .. } => Some((outcome.clone(), *took)),
        _ => None,
    });
    assert_eq!(record, Some((Outcome::Cancelled, None)));
}

#[test]
fn a_task_writing_its_own_sources_is_named_once() {
    let mut sim = Sim::new("[tasks.gen]\ncmd = \"g\"\nsources = [\"gen.txt\"]\n", &["gen"], 1, Some(OnBusy::Restart));
    sim.start();
    let mut said = 0;
    let mut now = 0;
    for _ in 0..6 {
        // The cycle runs from `now` to `now + 10`; the task's write is seen during it, the batch comes after.
        sim.at(now);
        sim.started("gen");
        let write = sim.t0 + Duration::from_millis(now + 5);
        sim.at(now + 10);
        sim.exit("gen", 0);
        now += 100;
        sim.at(now);
        let change = Change {
            paths: BTreeSet::from([PathBuf::from("gen.txt")]),
            first: Some(write),
            last: Some(write),
            ..Change::default()
        };
        let effects = sim.feed(Input::Changed(change));
        said += events(&effects)
            .into_iter()
            .filter(|e| matches!(e, Event::FeedbackLoop { tasks, .. } if tasks.len() == 1 && &*tasks[0] == "gen"))
            .count();
        if sim.engine.cycles_begun == 1 + cycle::LOOP_CYCLES {
            assert_eq!(said, 1, "said as soon as the streak is long enough");
        }
    }
    assert_eq!(said, 1, "said once, not at every cycle");
}

#[test]
fn a_change_made_between_cycles_is_not_a_loop() {
    let mut loops = cycle::Loops::default();
    let paths = BTreeSet::from(["a".to_string()]);
    for _ in 0..10 {
        assert!(!loops.observe(false, &paths));
    }
    assert!(!loops.observe(true, &paths));
    assert!(!loops.observe(true, &paths));
    assert!(!loops.observe(false, &paths), "an outside change breaks the streak");
    assert!(!loops.observe(true, &paths));
    assert!(!loops.observe(true, &paths));
    assert!(loops.observe(true, &paths));
}

#[test]
fn progress_of_a_watch_cycle_counts_what_its_summary_counts() {
    // Reporters count what the engine reports: every member of the cycle finishes once (or, a service, becomes
    // ready), and CycleStarted names exactly them.
    let mut sim = scratch_watching();
    let effects = sim.change(&["setup.txt"]);
    let members: BTreeSet<String> = events(&effects)
        .into_iter()
        .find_map(|e| match e {
            Event::CycleStarted { tasks, .. } => Some(tasks.iter().map(|t| t.to_string()).collect()),
            _ => None,
        })
        .unwrap();
    let mut all = effects;
    all.extend(sim.stopped("svc"));
    all.extend(sim.run_ok("setup"));
    all.extend(sim.run_ok("other"));
    sim.started("svc");
    all.extend(sim.ready("svc"));
    all.extend(sim.run_ok("client"));
    let ended: BTreeSet<String> = events(&all)
        .into_iter()
        .filter_map(|e| match e {
            Event::TaskFinished { task, outcome, .. } if *outcome != Outcome::Restarted => Some(task.to_string()),
            Event::TaskReady { task, .. } => Some(task.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ended, members);
}

#[test]
fn keep_going_watch_blocks_a_restarting_service_whose_dep_failed_and_ends_the_cycle() {
    let toml = "[tasks.db]\ncmd = \"d\"\ndaemon = true\n[tasks.build]\ncmd = \"b\"\nsources = [\"b.txt\"]\n\
                [tasks.server]\ncmd = \"s\"\ndaemon = true\ndeps = [\"build\"]\n";
    let opts = Options { jobs: 4, keep_going: true, explain: false, watch: Some(OnBusy::Restart) };
    let mut sim = Sim::with(toml, &["db", "server"], opts, &[]);
    sim.start();
    sim.started("db");
    sim.ready("db");
    sim.run_ok("build");
    sim.started("server");
    sim.ready("server");
    let effects = sim.change(&["b.txt"]);
    assert_eq!(stops(&sim, &effects), [("server".to_string(), STOP_RESTART)]);
    sim.started("build");
    sim.exit("build", 1);
    let effects = sim.stopped("server");
    assert!(
        finished(&effects).contains(&("server".to_string(), Outcome::Blocked(Blocked::DepFailed("build".into())))),
        "{effects:?}"
    );
    assert!(
        events(&effects).iter().any(|e| matches!(e, Event::CycleFinished { cycle: 1, .. })),
        "the cycle ends although db is still ready: {effects:?}"
    );
}

#[test]
fn a_finished_group_no_longer_lends_a_service_that_crashed() {
    let toml = "[tasks.s]\ncmd = \"s\"\ndaemon = true\n[tasks.y]\ncmd = \"y\"\n[tasks.g]\ndeps = [\"s\", \"y\"]\n\
                [tasks.z]\ncmd = \"z\"\n[tasks.x]\ncmd = \"x\"\ndeps = [\"g\", \"z\"]\n";
    let opts = Options { jobs: 4, keep_going: true, explain: false, watch: None };
    let mut sim = Sim::with(toml, &["x"], opts, &[]);
    sim.start();
    sim.started("s");
    sim.ready("s");
    sim.run_ok("y");
    assert_eq!(sim.outcome("g"), Some(Outcome::Ok));
    sim.started("z");
    let effects = sim.exit("s", 1);
    assert!(finished(&effects).iter().any(|(t, o)| t == "x" && matches!(o, Outcome::Blocked(_))), "{effects:?}");
    let effects = sim.exit("z", 0);
    assert!(spawned(&sim, &effects).is_empty(), "x must not start against a dead service: {effects:?}");
}

#[test]
fn a_group_whose_service_crashed_is_pulled_back_into_a_cycle() {
    let toml = "[tasks.s]\ncmd = \"s\"\ndaemon = true\n[tasks.g]\ndeps = [\"s\"]\n\
                [tasks.x]\ncmd = \"x\"\ndeps = [\"g\"]\nsources = [\"x.txt\"]\n";
    let opts = Options { jobs: 4, keep_going: false, explain: false, watch: Some(OnBusy::Restart) };
    let mut sim = Sim::with(toml, &["x"], opts, &[]);
    sim.start();
    sim.started("s");
    sim.ready("s");
    sim.run_ok("x");
    sim.exit("s", 1);
    let effects = sim.change(&["x.txt"]);
    assert_eq!(spawned(&sim, &effects), ["s"], "x needs s, through g: {effects:?}");
}

#[test]
fn the_engine_stays_pure() {
    // Decisions only: no async runtime, no processes, no files, no clock of its own.
    let sources = [
        ("mod.rs", include_str!("mod.rs")),
        ("ending.rs", include_str!("ending.rs")),
        ("cycle.rs", include_str!("cycle.rs")),
        ("node.rs", include_str!("node.rs")),
        ("control.rs", include_str!("control.rs")),
        ("priority.rs", include_str!("priority.rs")),
    ];
    let forbidden = ["tokio", "Instant::now", "SystemTime::now", "std::fs", "std::process", "std::thread", "std::io"];
    for (file, text) in sources {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in forbidden {
                assert!(!code.contains(word), "src/engine/{file}:{}: `{word}` in the engine: {line}", n + 1);
            }
        }
    }
}

#[test]
fn tasks_that_need_a_restarting_service_wait_for_it_and_those_that_ran_against_the_old_instance_run_first() {
    let mut sim = Sim::new(
        "[tasks.svc]\ncmd = \"s\"\ndaemon = true\nrestart = \"on-failure\"\nready = { tcp = 1 }\n\
         [tasks.a]\ncmd = \"a\"\ndeps = [\"svc\"]\n[tasks.b]\ncmd = \"b\"\ndeps = [\"a\", \"svc\"]\n",
        &["b"],
        4,
        None,
    );
    let e = sim.start();
    assert_eq!(spawned(&sim, &e), ["svc"]);
    sim.started("svc");
    let e = sim.ready("svc");
    assert_eq!(spawned(&sim, &e), ["a"]);
    sim.started("a");
    // svc's process exits while `a` runs: the engine starts it again, after a pause, on the same port.
    let effects = sim.exit("svc", 1);
    assert!(!effects.iter().any(|e| matches!(e, Effect::Stop { .. })), "nothing is stopped: {effects:?}");
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Emit(ev) if matches!(**ev, Event::TaskRestarting { attempt: 1, .. })))
    );
    let again = effects.iter().find_map(|e| match e {
        Effect::Spawn { task, restarting, after_exit, .. } if sim.name(*task) == "svc" => {
            Some((*restarting, *after_exit))
        }
        _ => None,
    });
    assert_eq!(again, Some((true, Some(Duration::from_millis(100)))), "{effects:?}");
    // `a` ends while svc is not ready again: `b` waits.
    let e = sim.exit("a", 0);
    assert!(spawned(&sim, &e).is_empty(), "b waits for svc to be ready again");
    sim.started("svc");
    // `a` ran against the instance that exited: it runs again against the new one, before `b`.
    let e = sim.ready("svc");
    assert_eq!(spawned(&sim, &e), ["a"]);
    let e = sim.run_ok("a");
    assert_eq!(spawned(&sim, &e), ["b"]);
    sim.run_ok("b");
    assert_eq!(sim.outcome("a"), Some(Outcome::Ok));
    assert_eq!(sim.outcome("b"), Some(Outcome::Ok));
}

#[test]
fn a_service_is_restarted_at_most_max_restarts_times_with_a_growing_pause() {
    let toml = "[tasks.svc]\ncmd = \"s\"\ndaemon = true\nrestart = \"always\"\nmax_restarts = 2\n\
                [tasks.a]\ncmd = \"a\"\ndeps = [\"svc\"]\n";
    let mut sim = Sim::new(toml, &["a"], 2, None);
    sim.start();
    sim.started("svc");
    sim.ready("svc");
    sim.started("a");
    let mut pauses = Vec::new();
    for _ in 0..2 {
        let effects = sim.exit("svc", 0);
        pauses.extend(effects.iter().filter_map(|e| match e {
            Effect::Spawn { after_exit: Some(pause), .. } => Some(*pause),
            _ => None,
        }));
        sim.started("svc");
        sim.ready("svc");
    }
    assert_eq!(pauses, [Duration::from_millis(100), Duration::from_millis(200)]);
    // The third exit is one too many: the service fails, and `a`, which needed it, is stopped.
    let effects = sim.exit("svc", 0);
    assert!(spawned(&sim, &effects).is_empty(), "{effects:?}");
    assert!(matches!(sim.outcome("svc"), Some(Outcome::Failed(_))), "{:?}", sim.outcome("svc"));
    assert_eq!(stops(&sim, &effects), [("a".to_string(), Control::Stop(StopReason::Cancelled))]);
}

#[test]
fn a_service_asked_to_stop_is_not_restarted_whatever_its_policy() {
    let toml =
        "[tasks.svc]\ncmd = \"s\"\ndaemon = true\nrestart = \"always\"\n[tasks.a]\ncmd = \"a\"\ndeps = [\"svc\"]\n";
    let mut sim = Sim::new(toml, &["a"], 2, None);
    sim.start();
    sim.started("svc");
    sim.ready("svc");
    sim.run_ok("a");
    // Nothing needs svc any more: it is asked to stop, and its exit (with any code) ends it.
    assert_eq!(stops(&sim, &sim.log.clone()), [("svc".to_string(), Control::Stop(StopReason::NotNeeded))]);
    let effects = sim.exit("svc", 0);
    assert!(spawned(&sim, &effects).is_empty(), "{effects:?}");
    assert_eq!(sim.outcome("svc"), Some(Outcome::Ok));
}

/// A service that restarts on failure, needed by a client, in watch mode: started, ready, its client ran.
fn watched_restarting_service() -> Sim {
    let toml = "[tasks.svc]\ncmd = \"s\"\ndaemon = true\nrestart = \"on-failure\"\nmax_restarts = 1\n\
                sources = [\"svc.txt\"]\n[tasks.client]\ncmd = \"c\"\ndeps = [\"svc\"]\n";
    let mut sim = Sim::new(toml, &["client"], 2, Some(OnBusy::Restart));
    sim.start();
    sim.started("svc");
    sim.ready("svc");
    sim.run_ok("client");
    sim
}

#[test]
fn an_instance_started_again_is_told_what_its_first_instance_was_told_and_its_end_counts_them_all() {
    let mut sim = watched_restarting_service();
    // A change restarts svc for cycle 1; the cycle ends once svc is ready and the client has run.
    let effects = sim.change(&["svc.txt"]);
    sim.stopped("svc");
    let told = |effects: &[Effect]| {
        effects.iter().find_map(|e| match e {
            Effect::Spawn { changed, .. } => Some(changed.clone()),
            _ => None,
        })
    };
    assert!(stops(&sim, &effects).iter().any(|(t, _)| t == "svc"));
    let first = sim.log.iter().rev().find_map(|e| match e {
        Effect::Spawn { changed: Some(c), .. } => Some(c.clone()),
        _ => None,
    });
    assert!(first.as_ref().is_some_and(|c| c.paths.contains("svc.txt")), "{first:?}");
    sim.started("svc");
    sim.ready("svc");
    sim.run_ok("client");
    // Later, with no cycle running, svc's process exits: it is started again, told the same as before.
    let effects = sim.feed(Input::Task {
        task: sim.i("svc"),
        what: Happened::Exited { end: End::Exited(ChildExit::Code(1)), duration: Duration::from_millis(700) },
    });
    assert_eq!(told(&effects), Some(first), "{effects:?}");
    // It exits again, one restart too many: its end counts both instances' time.
    sim.started("svc");
    let effects = sim.feed(Input::Task {
        task: sim.i("svc"),
        what: Happened::Exited { end: End::Exited(ChildExit::Code(1)), duration: Duration::from_millis(300) },
    });
    let took = events(&effects).into_iter().find_map(|e| match e {
        Event::TaskFinished { task, duration, .. } if &**task == "svc" => Some(*duration),
        _ => None,
    });
    assert_eq!(took, Some(Duration::from_millis(1000)));
}

#[test]
fn a_reload_keeps_what_a_service_has_used_of_its_restarts() {
    let mut sim = watched_restarting_service();
    // svc's process exits and is started again: its one restart is used.
    sim.exit("svc", 1);
    sim.started("svc");
    sim.ready("svc");
    // Irun.toml changes, the service's definition does not: a new engine takes over and keeps it as it is.
    let (plan, sources) = plan_of(
        "[tasks.svc]\ncmd = \"s\"\ndaemon = true\nrestart = \"on-failure\"\nmax_restarts = 1\n\
         sources = [\"svc.txt\"]\n[tasks.client]\ncmd = \"c --verbose\"\ndeps = [\"svc\"]\n",
        &["client"],
    );
    let opts = sim.engine.options().clone();
    let map = PerTask::from_fn(plan.len(), Some);
    let mut engine = Engine::new(plan, sources, &PerTask::filled(2, None), opts, sim.t0);
    engine.reconfigured(&sim.engine, &map, "Irun.toml".into());
    sim.engine = engine;
    // Its next exit fails it: no restart is left.
    let effects = sim.exit("svc", 1);
    assert!(spawned(&sim, &effects).is_empty(), "{effects:?}");
    assert!(matches!(sim.outcome("svc"), Some(Outcome::Failed(_))), "{:?}", sim.outcome("svc"));
}

// -- services start only when something that needs them will run -------------------------------------------------

const NEEDED: &str = "[tasks.build]\ncmd = \"b\"\n[tasks.svc]\ncmd = \"s\"\ndaemon = true\nready = { tcp = 1 }\n\
                      [tasks.client]\ncmd = \"c\"\ndeps = [\"svc\", \"build\"]\n";

#[test]
fn a_service_whose_needers_are_all_up_to_date_is_never_started() {
    let mut sim = Sim::new(NEEDED, &["client"], 4, None);
    sim.up_to_date(&["build", "client"]);
    let effects = sim.start();
    assert!(spawned(&sim, &effects).is_empty(), "{effects:?}");
    assert_eq!(sim.outcome("svc"), Some(Outcome::NotNeeded));
    assert_eq!(sim.outcome("client"), Some(Outcome::UpToDate));
    assert_eq!(sim.engine.finished(), Some(RunOutcome::Passed));
}

#[test]
fn a_service_starts_alongside_a_dep_that_will_run_and_its_needer_waits_for_it() {
    let mut sim = Sim::new(NEEDED, &["client"], 4, None);
    let effects = sim.start();
    let mut first = spawned(&sim, &effects);
    first.sort();
    assert_eq!(first, ["build", "svc"], "client will run after build, so svc is wanted at once");
    let effects = sim.run_ok("build");
    assert!(spawned(&sim, &effects).is_empty(), "client waits for svc to be ready");
    sim.started("svc");
    let effects = sim.ready("svc");
    assert_eq!(spawned(&sim, &effects), ["client"]);
}

#[test]
fn a_service_starts_once_its_needer_is_found_to_run() {
    let mut sim = Sim::new(NEEDED, &["client"], 4, None);
    sim.up_to_date(&["build"]);
    // build is up to date, so only client's own check can want svc: it is checked before svc starts.
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["svc"]);
    let checked =
        effects.iter().position(|e| matches!(e, Effect::CheckFreshness { task, .. } if sim.name(*task) == "client"));
    let spawn = effects.iter().position(|e| matches!(e, Effect::Spawn { .. }));
    assert!(checked < spawn, "{effects:?}");
}

#[test]
fn a_service_named_as_a_target_starts_even_if_its_needers_are_up_to_date() {
    let mut sim = Sim::new(NEEDED, &["svc", "client"], 4, None);
    sim.up_to_date(&["build", "client"]);
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["svc"]);
}

#[test]
fn a_service_behind_a_group_or_another_service_starts_only_when_wanted() {
    let toml = "[tasks.db]\ncmd = \"d\"\ndaemon = true\nready = { tcp = 1 }\n\
                [tasks.api]\ncmd = \"a\"\ndaemon = true\nready = { tcp = 2 }\ndeps = [\"db\"]\n\
                [tasks.stack]\ndeps = [\"api\"]\n[tasks.test]\ncmd = \"t\"\ndeps = [\"stack\"]\n";
    let mut sim = Sim::new(toml, &["test"], 4, None);
    sim.up_to_date(&["test"]);
    let effects = sim.start();
    assert!(spawned(&sim, &effects).is_empty(), "{effects:?}");
    assert_eq!(sim.outcome("db"), Some(Outcome::NotNeeded));
    assert_eq!(sim.outcome("api"), Some(Outcome::NotNeeded));

    let mut sim = Sim::new(toml, &["test"], 4, None);
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["db"], "test runs: api is wanted, so db is");
    sim.started("db");
    let effects = sim.ready("db");
    assert_eq!(spawned(&sim, &effects), ["api"]);
    sim.started("api");
    let effects = sim.ready("api");
    assert_eq!(spawned(&sim, &effects), ["test"], "test waits for the service its group gathers");
}

/// db restarts on failure; createdb (setup against it) and tests after it.
const CREATEDB: &str = "[tasks.db]\ncmd = \"d\"\ndaemon = true\nrestart = \"on-failure\"\nready = { tcp = 1 }\n\
                        [tasks.createdb]\ncmd = \"c\"\ndeps = [\"db\"]\n\
                        [tasks.tests]\ncmd = \"t\"\ndeps = [\"db\", \"createdb\", \"slow\"]\n[tasks.slow]\ncmd = \"s\"\n";

#[test]
fn a_setup_task_that_was_up_to_date_runs_again_when_its_service_comes_back() {
    let mut sim = Sim::new(CREATEDB, &["tests"], 4, None);
    sim.up_to_date(&["createdb"]);
    sim.start();
    sim.started("db");
    sim.ready("db");
    assert_eq!(sim.outcome("createdb"), Some(Outcome::UpToDate));
    sim.started("slow");
    // db crashes and comes back (a new instance, maybe without the database): createdb must run before tests.
    sim.exit("db", 1);
    sim.started("db");
    let effects = sim.ready("db");
    assert_eq!(spawned(&sim, &effects), ["createdb"]);
    assert!(effects.iter().any(|e| matches!(e, Effect::CheckFreshness { task, .. } if sim.name(*task) == "createdb")));
    let effects = sim.exit("slow", 0);
    assert!(spawned(&sim, &effects).is_empty(), "tests waits for createdb to run again");
    let effects = sim.run_ok("createdb");
    assert_eq!(spawned(&sim, &effects), ["tests"]);
}

#[test]
fn in_watch_mode_a_service_that_came_back_reruns_what_ran_against_it_in_a_new_cycle() {
    let mut sim = Sim::new(CREATEDB, &["tests"], 4, Some(OnBusy::Restart));
    sim.start();
    sim.started("db");
    sim.ready("db");
    sim.run_ok("slow");
    sim.run_ok("createdb");
    sim.run_ok("tests");
    sim.exit("db", 1);
    sim.started("db");
    let effects = sim.ready("db");
    let cycle = events(&effects).into_iter().find_map(|e| match e {
        Event::CycleStarted { tasks, .. } => Some(tasks.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(cycle, Some(vec!["createdb".to_string(), "tests".to_string()]));
    assert_eq!(spawned(&sim, &effects), ["createdb"]);
    let effects = sim.run_ok("createdb");
    assert_eq!(spawned(&sim, &effects), ["tests"]);
}

#[test]
fn groups_gather_the_services_below_them_through_nested_groups() {
    let (plan, _) = plan_of(
        "[tasks.db]\ncmd = \"d\"\ndaemon = true\n[tasks.cache]\ncmd = \"c\"\ndaemon = true\n[tasks.t]\ncmd = \"t\"\n\
         [tasks.inner]\ndeps = [\"db\", \"t\"]\n[tasks.other]\ndeps = [\"cache\", \"inner\"]\n\
         [tasks.outer]\ndeps = [\"inner\", \"other\"]\n[tasks.none]\ndeps = [\"t\"]\n\
         [tasks.top]\ncmd = \"x\"\ndeps = [\"outer\", \"none\"]\n",
        &["top"],
    );
    let gathered = gathered_services(&plan);
    let names = |g: &str| -> Vec<String> {
        let i = plan.order.iter().copied().find(|&i| &*plan[i].name == g).unwrap();
        gathered[i].iter().map(|&s| plan[s].name.to_string()).collect()
    };
    assert_eq!(names("inner"), ["db"]);
    assert_eq!(names("other"), ["db", "cache"], "sorted by task id, each once");
    assert_eq!(names("outer"), ["db", "cache"]);
    assert!(names("none").is_empty() && names("top").is_empty() && names("db").is_empty());
}

#[test]
fn one_interactive_task_at_a_time_while_others_run_beside_it() {
    let toml = "[tasks.ask1]\ncmd = \"x\"\ninteractive = true\n[tasks.ask2]\ncmd = \"x\"\ninteractive = true\n[tasks.plain]\ncmd = \"x\"\n";
    let mut sim = Sim::new(toml, &["ask1", "ask2", "plain"], 3, None);
    let effects = sim.start();
    let first = spawned(&sim, &effects);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.contains(&"plain".to_string()), "{first:?}");
    let asking = first.iter().find(|n| n.starts_with("ask")).unwrap().clone();
    let other = if asking == "ask1" { "ask2" } else { "ask1" };
    sim.started(&asking);
    let effects = sim.run_ok("plain");
    assert!(spawned(&sim, &effects).is_empty(), "the other interactive task waits for the terminal");
    let effects = sim.exit(&asking, 0);
    assert_eq!(spawned(&sim, &effects), [other]);
}

#[test]
fn an_interactive_task_ended_by_ctrl_c_interrupts_the_run_as_ctrl_c_to_irun_would() {
    let toml = "[tasks.ask]\ncmd = \"x\"\ninteractive = true\n[tasks.other]\ncmd = \"x\"\n";
    let mut sim = Sim::new(toml, &["ask", "other"], 2, None);
    sim.start();
    sim.started("ask");
    sim.started("other");
    let task = sim.i("ask");
    let end = End::Exited(ChildExit::Signal(Signal::SIGINT as i32));
    let effects = sim.feed(Input::Task { task, what: Happened::Exited { end, duration: Duration::from_millis(1) } });
    assert_eq!(stops(&sim, &effects), [("other".to_string(), Control::Stop(StopReason::Interrupted))]);
    assert!(
        events(&effects).iter().any(|e| matches!(e, Event::Interrupted { signal: Signal::SIGINT, running: 1, .. })),
        "{effects:?}"
    );
    assert!(matches!(sim.outcome("ask"), Some(Outcome::Failed(_))));
}

#[test]
fn a_service_able_to_start_behind_a_service_lets_its_needers_decide() {
    // `s` needs `s0` (not started: nothing wants it yet) and `x` (being checked). Once `x` is up to date, `s` can
    // start as soon as something wants it: `t` must get to decide, and it runs.
    let toml = "[tasks.x]\ncmd = \"x\"\n[tasks.s0]\ncmd = \"a\"\ndaemon = true\n\
                [tasks.s]\ncmd = \"b\"\ndaemon = true\ndeps = [\"s0\", \"x\"]\n[tasks.t]\ncmd = \"t\"\ndeps = [\"s\"]\n";
    let mut sim = Sim::new(toml, &["t"], 4, None);
    sim.up_to_date(&["x"]);
    let effects = sim.start();
    assert_eq!(spawned(&sim, &effects), ["s0"], "t will run, so s is wanted, so s0 is");
    sim.started("s0");
    let effects = sim.ready("s0");
    assert_eq!(spawned(&sim, &effects), ["s"]);
    sim.started("s");
    let effects = sim.ready("s");
    assert_eq!(spawned(&sim, &effects), ["t"]);
    sim.run_ok("t");
    assert_eq!(sim.outcome("t"), Some(Outcome::Ok));
}

#[test]
fn a_setup_task_is_not_run_again_under_a_task_already_running_against_the_old_instance() {
    // `tests` already runs when db comes back: createdb running again now would not be before it.
    let mut sim = Sim::new(CREATEDB, &["tests"], 4, None);
    sim.start();
    sim.started("db");
    sim.ready("db");
    sim.run_ok("slow");
    sim.run_ok("createdb");
    sim.started("tests");
    sim.exit("db", 1);
    sim.started("db");
    let effects = sim.ready("db");
    assert!(spawned(&sim, &effects).is_empty(), "{effects:?}");
    assert_eq!(sim.outcome("createdb"), Some(Outcome::Ok));
}

fn cycle_tasks(effects: &[Effect]) -> Option<Vec<String>> {
    events(effects).into_iter().find_map(|e| match e {
        Event::CycleStarted { tasks, .. } => Some(tasks.iter().map(|t| t.to_string()).collect()),
        _ => None,
    })
}

fn inputs_checked(sim: &Sim, effects: &[Effect]) -> Vec<Vec<String>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CheckInputs { tasks } => Some(tasks.iter().map(|&t| sim.name(t)).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_touch_that_leaves_content_the_same_starts_no_cycle_and_restarts_no_service() {
    let mut sim = scratch_watching();
    sim.same = ["svc", "client", "setup"].iter().map(|n| sim.i(n)).collect();
    let effects = sim.change(&["svc.txt", "client.txt", "setup.txt"]);
    assert_eq!(inputs_checked(&sim, &effects), [["setup", "svc", "client"]], "the content decides, not the event");
    assert!(stops(&sim, &effects).is_empty(), "the service keeps running");
    assert!(spawned(&sim, &effects).is_empty());
    assert_eq!(cycle_tasks(&effects), None, "no cycle at all");
    // The same change with svc's content changed: only it (and what runs against it) runs.
    sim.same.remove(&sim.i("svc"));
    let effects = sim.change(&["svc.txt", "client.txt", "setup.txt"]);
    assert_eq!(cycle_tasks(&effects).unwrap(), ["svc", "client"]);
    assert_eq!(stops(&sim, &effects), [("svc".to_string(), STOP_RESTART)]);
}

#[test]
fn lost_events_rerun_only_what_changed_by_content_and_keep_other_services_up() {
    let mut sim = scratch_watching();
    sim.same = ["setup", "svc", "other"].iter().map(|n| sim.i(n)).collect();
    let lost = Change { rescan: true, ..Change::default() };
    let effects = sim.feed(Input::Changed(lost.clone()));
    assert_eq!(inputs_checked(&sim, &effects), [["setup", "svc", "other", "client"]], "every task with sources");
    assert_eq!(cycle_tasks(&effects).unwrap(), ["client"], "only the task whose inputs changed");
    assert!(stops(&sim, &effects).is_empty(), "the service, unchanged, is not restarted");
    assert_eq!(spawned(&sim, &effects), ["client"]);
    sim.run_ok("client");
    // Nothing changed at all: no cycle.
    sim.same.insert(sim.i("client"));
    let effects = sim.feed(Input::Changed(lost.clone()));
    assert_eq!(cycle_tasks(&effects), None);
    // setup's content changed: the service after it is restarted, and what runs against it.
    sim.same.remove(&sim.i("setup"));
    let effects = sim.feed(Input::Changed(lost));
    assert_eq!(cycle_tasks(&effects).unwrap(), ["setup", "svc", "other", "client"]);
    assert_eq!(stops(&sim, &effects), [("svc".to_string(), STOP_RESTART)], "its dep reruns");
}

const FOLDERS: &str = r#"
[tasks.src]
cmd = "a"
sources = ["src/**"]
[tasks.txt]
cmd = "b"
sources = ["src/*.txt"]
[tasks.py]
cmd = "c"
sources = ["**/*.py"]
[tasks.gen]
cmd = "d"
sources = ["src/**", "!src/gen/**"]
"#;

#[test]
fn a_removed_folder_affects_only_tasks_whose_sources_could_match_in_it() {
    let mut sim = Sim::new(FOLDERS, &["src", "txt", "py", "gen"], 4, Some(OnBusy::Restart));
    sim.start();
    for t in ["src", "txt", "py", "gen"] {
        sim.run_ok(t);
    }
    let removed = |dir: &str| Change { removed_dirs: BTreeSet::from([PathBuf::from(dir)]), ..Change::default() };
    let effects = sim.feed(Input::Changed(removed("src/sub")));
    assert_eq!(inputs_checked(&sim, &effects), [["src", "py", "gen"]], "src/*.txt cannot match in src/sub");
    let Some(Event::CycleStarted { changed, rescan, .. }) =
        events(&effects).into_iter().find(|e| matches!(e, Event::CycleStarted { .. }))
    else {
        panic!("a cycle starts: {effects:?}")
    };
    assert_eq!(changed, &["src/sub"], "the folder is what changed");
    assert!(!rescan, "a removed folder is no lost event");
    for t in ["src", "py", "gen"] {
        sim.run_ok(t);
    }
    let effects = sim.feed(Input::Changed(removed("src/gen")));
    assert_eq!(inputs_checked(&sim, &effects), [["src", "py"]], "gen's sources exclude src/gen");
    for t in ["src", "py"] {
        sim.run_ok(t);
    }
    let effects = sim.feed(Input::Changed(removed("src")));
    assert_eq!(inputs_checked(&sim, &effects), [["src", "txt", "py", "gen"]]);
    for t in ["src", "txt", "py", "gen"] {
        sim.run_ok(t);
    }
    let mut junk = removed("junk");
    junk.paths.insert(PathBuf::from("junk/out.txt"));
    let effects = sim.feed(Input::Changed(junk));
    assert_eq!(inputs_checked(&sim, &effects), [["py"]], "only `**/*.py` could have had a file in junk");
    sim.same.insert(sim.i("py"));
    let effects = sim.feed(Input::Changed(removed("junk")));
    assert_eq!(cycle_tasks(&effects), None, "and it had none: nothing runs");
}

#[test]
fn a_task_that_removes_a_folder_its_sources_match_is_named_as_a_loop_with_that_folder() {
    let mut sim = Sim::new("[tasks.gen]\ncmd = \"g\"\nsources = [\"src/**\"]\n", &["gen"], 1, Some(OnBusy::Restart));
    sim.start();
    let mut loops = Vec::new();
    let mut now = 0;
    for _ in 0..4 {
        // The cycle runs from `now` to `now + 10`; the task removes src/gen and writes src/gen/x during it.
        sim.at(now);
        sim.started("gen");
        let write = sim.t0 + Duration::from_millis(now + 5);
        sim.at(now + 10);
        sim.exit("gen", 0);
        now += 100;
        sim.at(now);
        let change = Change {
            paths: BTreeSet::from([PathBuf::from("src/gen/x")]),
            removed_dirs: BTreeSet::from([PathBuf::from("src/gen")]),
            first: Some(write),
            last: Some(write),
            ..Change::default()
        };
        let effects = sim.feed(Input::Changed(change));
        loops.extend(events(&effects).into_iter().filter_map(|e| match e {
            Event::FeedbackLoop { paths, tasks, .. } => Some((paths.clone(), tasks.clone())),
            _ => None,
        }));
    }
    assert_eq!(loops.len(), 1, "{loops:?}");
    assert_eq!(loops[0].0, ["src/gen", "src/gen/x"], "the removed folder is among the paths named");
    assert_eq!(loops[0].1.iter().map(|t| t.to_string()).collect::<Vec<_>>(), ["gen"]);
}

#[test]
fn a_change_queued_during_a_cycle_is_checked_again_alone_as_the_cycle_ends() {
    let toml = "[tasks.a]\ncmd = \"a\"\nsources = [\"a.txt\"]\n[tasks.b]\ncmd = \"b\"\nsources = [\"b.txt\"]\n";
    let mut sim = Sim::new(toml, &["a", "b"], 4, Some(OnBusy::Queue));
    sim.start();
    sim.run_ok("a");
    sim.run_ok("b");
    sim.change(&["a.txt"]);
    sim.started("a");
    let effects = sim.change(&["b.txt"]);
    assert_eq!(inputs_checked(&sim, &effects), [["b"]]);
    assert!(events(&effects).iter().any(|e| matches!(e, Event::ChangeQueued { .. })), "{effects:?}");
    assert!(spawned(&sim, &effects).is_empty(), "the cycle finishes undisturbed");
    // The cycle ends: the queued change asks again (its content may have gone back meanwhile), in that step, once.
    let effects = sim.exit("a", 0);
    assert_eq!(inputs_checked(&sim, &effects), [["b"]]);
    assert_eq!(cycle_tasks(&effects).unwrap(), ["b"]);
    sim.run_ok("b");
    // Queued again, and by the end of the cycle b.txt holds what b last ran on: no cycle follows.
    sim.change(&["a.txt"]);
    sim.started("a");
    sim.change(&["b.txt"]);
    sim.same.insert(sim.i("b"));
    let effects = sim.exit("a", 0);
    assert_eq!(inputs_checked(&sim, &effects), [["b"]]);
    assert_eq!(cycle_tasks(&effects), None, "{effects:?}");
}

#[test]
fn a_freshness_answer_may_come_late_and_nothing_starts_until_it_comes() {
    let toml = "[tasks.a]\ncmd = \"x\"\n[tasks.b]\ncmd = \"x\"\n";
    let mut sim = Sim::new(toml, &["a", "b"], 2, None);
    let b = sim.i("b");
    sim.held.insert(b);
    let effects = sim.start();
    assert!(effects.iter().any(|e| matches!(e, Effect::CheckFreshness { task, .. } if *task == b)));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Spawn { .. })), "a waits for b's answer: {effects:?}");
    // A tick meanwhile changes nothing.
    sim.at(5);
    let effects = sim.feed(Input::Freshness { task: b, verdict: Verdict::Run(RunReason::NeverRan) });
    let spawned: Vec<TaskId> =
        effects.iter().filter_map(|e| if let Effect::Spawn { task, .. } = e { Some(*task) } else { None }).collect();
    assert_eq!(spawned.len(), 2, "both start once every answer is in: {effects:?}");
}

#[test]
fn a_signal_while_a_freshness_answer_is_awaited_cancels_the_task_and_the_late_answer_changes_nothing() {
    let mut sim = Sim::new("[tasks.a]\ncmd = \"x\"\n", &["a"], 2, None);
    let a = sim.i("a");
    sim.held.insert(a);
    sim.start();
    sim.feed(Input::Signal(Signal::SIGINT));
    assert!(sim.engine.finished().is_some(), "nothing runs: the run is over");
    let effects = sim.feed(Input::Freshness { task: a, verdict: Verdict::Run(RunReason::NeverRan) });
    assert!(!effects.iter().any(|e| matches!(e, Effect::Spawn { .. })), "{effects:?}");
}

/// `n` tasks `t0..` under one target `top` (a group, or a task when `task`), each with `sources`.
fn fan_in(n: usize, task: bool) -> String {
    let deps: Vec<String> = (0..n).map(|i| format!("\"t{i}\"")).collect();
    let mut toml = format!("[tasks.top]\ndeps = [{}]\n", deps.join(", "));
    if task {
        toml.push_str("cmd = \"link\"\n");
    }
    for i in 0..n {
        toml.push_str(&format!("[tasks.t{i}]\ncmd = \"cp\"\nsources = [\"s{i}\"]\n"));
    }
    toml
}

/// Every `t` of a fan-in is up to date, and their answers come in `order` (by index), among the checks asked for
/// (at most [`CHECKS_AT_ONCE`] at a time): how many dep tests it took.
fn fan_in_dep_tests(n: usize, task: bool, order: impl Iterator<Item = usize>) -> u64 {
    let mut sim = Sim::new(&fan_in(n, task), &["top"], 2, None);
    let ts: Vec<TaskId> = (0..n).map(|i| sim.i(&format!("t{i}"))).collect();
    sim.held.extend(ts.iter().copied());
    sim.up_to_date(&["top"]);
    sim.start();
    let mut left: Vec<usize> = order.collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|&i| {
            if sim.engine.nodes[ts[i]].life != Life::Checking {
                return true;
            }
            sim.feed(Input::Freshness { task: ts[i], verdict: Verdict::UpToDate });
            false
        });
        assert!(left.len() < before, "none of the tasks left was being checked");
    }
    if task {
        assert_eq!(sim.outcome("top"), Some(Outcome::UpToDate));
    }
    assert_eq!(sim.engine.finished(), Some(RunOutcome::Passed));
    sim.engine.dep_tests.get()
}

#[test]
fn a_finished_dep_costs_its_dependent_a_bounded_number_of_dep_tests_whatever_the_fan_in_and_order() {
    let n = 2000;
    for task in [false, true] {
        let orders: [(&str, Vec<usize>); 3] = [
            ("in order", (0..n).collect()),
            ("in reverse", (0..n).rev().collect()),
            ("interleaved", (0..n).step_by(2).chain((1..n).step_by(2)).collect()),
        ];
        for (how, order) in orders {
            let tests = fan_in_dep_tests(n, task, order.into_iter());
            // Each finished dep: a look at the first unsettled dep, a step past it, and one last look at all.
            assert!(tests <= 4 * n as u64, "{n} deps answered {how} (task: {task}) took {tests} dep tests");
        }
    }
}

#[test]
fn a_dependent_waits_again_for_a_dep_a_watch_cycle_runs_again_though_it_had_passed_it() {
    for task in [false, true] {
        let mut sim = Sim::new(&fan_in(10, task), &["top"], 2, Some(OnBusy::Restart));
        let all: Vec<String> = (0..10).map(|i| format!("t{i}")).chain(["top".to_string()]).collect();
        sim.up_to_date(&all.iter().map(String::as_str).collect::<Vec<_>>());
        sim.start();
        assert!(sim.outcome("top").is_some_and(|o| o.is_success()), "the first cycle ends with top done");
        sim.fresh.clear();
        // t5 is run again: top, which had seen every dep pass, waits for it.
        let effects = sim.change(&["s5"]);
        assert_eq!(spawned(&sim, &effects), ["t5"], "task: {task}");
        assert_eq!(*sim.engine.life(sim.i("top")), Life::Waiting, "task: {task}");
        let effects = sim.run_ok("t5");
        if task {
            assert_eq!(spawned(&sim, &effects), ["top"]);
            sim.run_ok("top");
        }
        assert_eq!(sim.outcome("top"), Some(Outcome::Ok), "task: {task}");
    }
}

#[test]
fn at_most_a_bounded_number_of_checks_are_asked_at_a_time_and_the_rest_as_answers_come() {
    let n = CHECKS_AT_ONCE * 3;
    let mut sim = Sim::new(&fan_in(n, false), &["top"], 2, None);
    let ts: Vec<TaskId> = (0..n).map(|i| sim.i(&format!("t{i}"))).collect();
    sim.held.extend(ts.iter().copied());
    let asked = |effects: &[Effect]| effects.iter().filter(|e| matches!(e, Effect::CheckFreshness { .. })).count();
    let first = sim.start();
    assert_eq!(asked(&first), CHECKS_AT_ONCE);
    let checking = |sim: &Sim| ts.iter().filter(|&&t| sim.engine.nodes[t].life == Life::Checking).count();
    assert_eq!(checking(&sim), CHECKS_AT_ONCE);
    // Each answer lets one more be asked, until every task was.
    let mut answered = 0;
    while let Some(&t) = ts.iter().find(|&&t| sim.engine.nodes[t].life == Life::Checking) {
        let more = sim.feed(Input::Freshness { task: t, verdict: Verdict::UpToDate });
        answered += 1;
        assert_eq!(asked(&more), usize::from(answered + CHECKS_AT_ONCE <= n), "after {answered} answers");
        assert!(checking(&sim) <= CHECKS_AT_ONCE);
    }
    assert_eq!(answered, n);
    assert_eq!(sim.engine.finished(), Some(RunOutcome::Passed));
}

#[test]
fn a_node_is_small_it_is_held_for_every_task() {
    assert!(size_of::<super::node::Node>() <= 96, "{}", size_of::<super::node::Node>());
}
