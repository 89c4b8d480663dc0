//! Property tests: random DAGs of tasks, services and groups, random job limits and policies, and random orders of
//! inputs (processes starting, becoming ready, exiting in any way; signals; changed files; freshness verdicts).
//! A model built only from the engine's effects checks the rules a run must keep whatever happens:
//! - a task is spawned only when each of its deps is satisfied (done well, or a ready service);
//! - never more than `jobs` tasks hold a job slot (services until they are ready);
//! - every spawned instance ends exactly once, and every run ends with nothing alive;
//! - stop requests to an instance only ever escalate (no stop after a kill);
//! - a watch change leaves every task outside its cycle alone, and never reruns a task that was up to date or ok
//!   unless it is downstream of a changed source.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use proptest::prelude::*;

use super::tests::plan_of;
use super::*;
use crate::outcome::{ChildExit, RunReason};

fn id(i: usize) -> TaskId {
    TaskId::new(i)
}

#[derive(Debug, Clone)]
struct Spec {
    /// Per task: kind (0..=5: task, 6..=7: service (7 restarted once on failure), 8..=9: group), dep bits (on earlier tasks), has sources.
    tasks: Vec<(u8, u16, bool)>,
    jobs: usize,
    keep_going: bool,
    watch: u8,
    choices: Vec<u32>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (2usize..10)
        .prop_flat_map(|n| {
            (
                prop::collection::vec((0u8..10, any::<u16>(), any::<bool>()), n),
                1usize..4,
                any::<bool>(),
                0u8..3,
                prop::collection::vec(any::<u32>(), 0..160),
            )
        })
        .prop_map(|(tasks, jobs, keep_going, watch, choices)| Spec { tasks, jobs, keep_going, watch, choices })
}

/// Graphs with high fan-in: the last third of the tasks (groups, tasks, services) each depend on most of the tasks
/// before them, so that one dependent sees many deps finish, fail, restart and run again in any order. Deps are
/// tested through cursors ([`super::fanin`]); every look is checked against the full rule as it is made.
fn fan_in_spec() -> impl Strategy<Value = Spec> {
    (10usize..24)
        .prop_flat_map(|n| {
            (
                prop::collection::vec((0u8..10, any::<u16>(), any::<bool>()), n),
                any::<u16>(),
                1usize..4,
                any::<bool>(),
                0u8..3,
                prop::collection::vec(any::<u32>(), 0..300),
            )
        })
        .prop_map(|(mut tasks, extra, jobs, keep_going, watch, choices)| {
            let n = tasks.len();
            for (k, t) in tasks.iter_mut().enumerate().skip(n - n / 3) {
                // Each bit set with odds of three in four (a bit j stands for every earlier task j + 16m).
                t.1 |= t.1.rotate_left(k as u32 + 1) ^ extra;
            }
            Spec { tasks, jobs, keep_going, watch, choices }
        })
}

/// The Irun.toml text of a spec: t0..tN, every task but the services selected through `default`.
fn toml(spec: &Spec) -> String {
    let mut out = String::new();
    let names: Vec<String> = (0..spec.tasks.len()).map(|i| format!("t{i}")).collect();
    // Services are targets only when nothing else is (a target service is kept in the foreground).
    let mut targets: Vec<&String> =
        names.iter().zip(&spec.tasks).filter(|(_, t)| !(6..8).contains(&t.0)).map(|(n, _)| n).collect();
    if targets.is_empty() {
        targets = names.iter().collect();
    }
    out.push_str(&format!(
        "default = [{}]\n",
        targets.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
    ));
    for (i, &(kind, bits, sources)) in spec.tasks.iter().enumerate() {
        let deps: Vec<String> = (0..i).filter(|j| bits & (1 << (j % 16)) != 0).map(|j| format!("\"t{j}\"")).collect();
        out.push_str(&format!("[tasks.t{i}]\n"));
        let group = kind >= 8 && !deps.is_empty();
        if !group {
            out.push_str(&format!("cmd = \"c{i}\"\n"));
        }
        if !deps.is_empty() {
            out.push_str(&format!("deps = [{}]\n", deps.join(", ")));
        }
        if (6..8).contains(&kind) {
            out.push_str("daemon = true\n");
        }
        if kind == 7 {
            out.push_str("restart = \"on-failure\"\nmax_restarts = 1\n");
        }
        if sources && !group {
            out.push_str(&format!("sources = [\"f{i}\"]\n"));
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Waiting,
    Starting,
    Running,
    Ready,
    Stopping,
    Done(Outcome),
}

/// What the effects have said so far, and the checks on them.
struct Model {
    plan: Arc<Plan>,
    jobs: usize,
    seen: Vec<Seen>,
    /// Per task: its live instance holds a job slot.
    slot: Vec<bool>,
    holders: usize,
    /// Per task: the control last sent to its live instance.
    control: Vec<Option<Control>>,
    /// Per task: a live instance exists (spawned, not yet finished).
    alive: Vec<bool>,
    /// Per task: it was spawned at least once.
    started: Vec<bool>,
    spawns: usize,
    ends: usize,
    /// Watch checks for the cycle in progress: tasks that must not change, and the cycle's own members.
    protected: BTreeSet<usize>,
    members: Option<BTreeSet<usize>>,
    checking_cycle: bool,
    /// A change came with no cycle running: the tasks whose sources it reaches, which the engine must ask about
    /// ([`Effect::CheckInputs`]); those the answer names changed are what the change affects.
    awaiting_check: Option<Vec<usize>>,
}

/// What must hold once the run is over.
fn check_end(plan: &Plan, model: &Model, signals: usize, watch: bool) {
    assert!(model.alive.iter().all(|a| !a), "the run ended with live instances: {:?}", model.alive);
    assert_eq!(model.spawns, model.ends, "every spawned instance ends exactly once");
    assert_eq!(model.holders, 0);
    let unfinished: Vec<TaskId> =
        plan.order.iter().copied().filter(|&i| !matches!(model.seen[i.index()], Seen::Done(_))).collect();
    assert!(unfinished.is_empty(), "tasks never finished: {unfinished:?}");
    // Nothing failed and nothing was interrupted: nothing is blocked either (the engine never gives up on a task it
    // could have run).
    let failed = model.seen.iter().any(|s| matches!(s, Seen::Done(o) if o.is_failure() || *o == Outcome::Cancelled));
    if signals == 0 && !failed {
        let blocked: Vec<usize> =
            (0..plan.len()).filter(|&t| matches!(model.seen[t], Seen::Done(Outcome::Blocked(_)))).collect();
        assert!(blocked.is_empty(), "blocked though nothing failed: {blocked:?}");
    }
    if !watch {
        // A service runs only for a task that runs: if every task that needs it was up to date (through the
        // services that need it, too), it was never started.
        fn idle(plan: &Plan, model: &Model, s: TaskId) -> bool {
            !plan[s].foreground
                && plan[s].needers.iter().all(|&n| match plan[n].kind {
                    TaskKind::Service => idle(plan, model, n),
                    _ => model.seen[n.index()] == Seen::Done(Outcome::UpToDate),
                })
        }
        for &s in plan.order.iter().filter(|&&s| plan[s].kind == TaskKind::Service) {
            assert!(
                !(idle(plan, model, s) && model.started[s.index()]),
                "{s:?} started though nothing that needs it ran"
            );
        }
    }
}

impl Model {
    fn satisfied(&self, dep: usize, dependent: usize) -> bool {
        let service = self.plan[id(dep)].kind == TaskKind::Service;
        match &self.seen[dep] {
            Seen::Ready => true,
            Seen::Done(o) if !service => o.is_success(),
            Seen::Done(Outcome::Ok | Outcome::NotNeeded) => self.plan[id(dependent)].kind == TaskKind::Group,
            _ => false,
        }
    }

    fn apply(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Spawn { task, after_exit: Some(_), .. } => self.restarted(task.index()),
                Effect::Spawn { task, .. } => self.spawned(task.index()),
                Effect::Stop { task, control } => self.stopped(task.index(), *control),
                Effect::Emit(event) => match &**event {
                    Event::TaskStarted { task, .. } => {
                        let t = self.index(task);
                        if self.seen[t] == Seen::Starting {
                            self.seen[t] = Seen::Running;
                        }
                    }
                    Event::TaskReady { task, .. } => {
                        let t = self.index(task);
                        if std::mem::take(&mut self.slot[t]) {
                            self.holders -= 1;
                        }
                        if self.seen[t] != Seen::Stopping {
                            self.seen[t] = Seen::Ready;
                        }
                    }
                    Event::TaskFinished { task, outcome, .. } => self.finished(self.index(task), outcome),
                    Event::CycleStarted { tasks, restarted, .. } => {
                        let members: BTreeSet<usize> = tasks.iter().map(|t| self.index(t)).collect();
                        if *restarted {
                            self.checking_cycle = false;
                        } else if self.checking_cycle {
                            for m in &members {
                                assert!(!self.protected.contains(m), "t{m} was not affected, yet the cycle takes it");
                            }
                            self.members = Some(members);
                        }
                    }
                    Event::CycleFinished { .. } => {
                        self.checking_cycle = false;
                        self.members = None;
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    /// A service's process exited and it is started again (`restart`): the old instance ended (without an end of
    /// the task) and a new one takes its place, holding what it held.
    fn restarted(&mut self, t: usize) {
        assert!(self.alive[t], "t{t} restarted without a live instance");
        assert_eq!(self.plan[id(t)].kind, TaskKind::Service, "t{t} restarted but is not a service");
        self.spawns += 1;
        self.ends += 1;
        if self.seen[t] != Seen::Stopping {
            self.seen[t] = Seen::Starting;
        }
    }

    fn spawned(&mut self, t: usize) {
        for &d in &self.plan[id(t)].deps {
            let d = d.index();
            assert!(self.satisfied(d, t), "t{t} spawned while dep t{d} is {:?}", self.seen[d]);
        }
        assert!(!self.alive[t], "t{t} spawned while an instance is alive");
        if self.checking_cycle {
            assert!(!self.protected.contains(&t), "t{t} was up to date and not affected, yet it ran");
            if let Some(m) = &self.members {
                assert!(m.contains(&t), "t{t} is not in the cycle, yet it runs");
            }
        }
        self.alive[t] = true;
        self.started[t] = true;
        self.spawns += 1;
        self.slot[t] = true;
        self.holders += 1;
        assert!(self.holders <= self.jobs, "{} tasks hold slots, jobs = {}", self.holders, self.jobs);
        self.control[t] = None;
        self.seen[t] = Seen::Starting;
    }

    fn stopped(&mut self, t: usize, control: Control) {
        assert!(self.alive[t], "stop sent to t{t}, which is not alive");
        if let Some(prev) = self.control[t] {
            assert!(prev.weaker_than(control), "t{t}: {control:?} sent after {prev:?}");
        }
        if let (true, Some(m)) = (self.checking_cycle, &self.members) {
            assert!(m.contains(&t), "t{t} is not in the cycle, yet it is stopped");
        }
        self.control[t] = Some(control);
        self.seen[t] = Seen::Stopping;
    }

    fn finished(&mut self, t: usize, outcome: &Outcome) {
        // (A process may end by itself any time; only ends the engine decides are checked.)
        if self.checking_cycle && !self.alive[t] {
            assert!(!self.protected.contains(&t), "t{t} was not affected, yet it ended: {outcome:?}");
            if let Some(m) = &self.members {
                assert!(m.contains(&t), "t{t} is not in the cycle, yet it ended: {outcome:?}");
            }
        }
        if self.alive[t] {
            self.alive[t] = false;
            self.ends += 1;
            if std::mem::take(&mut self.slot[t]) {
                self.holders -= 1;
            }
        } else {
            assert!(!matches!(outcome, Outcome::Restarted), "t{t} restarted without a live instance");
        }
        self.seen[t] = if *outcome == Outcome::Restarted { Seen::Waiting } else { Seen::Done(outcome.clone()) };
    }

    fn index(&self, name: &str) -> usize {
        name[1..].parse().unwrap()
    }

    /// The engine asked whether `tasks`' inputs changed, and `changed` is the answer: for a change that came with
    /// no cycle running, only those (and what the watch rules add) may run.
    fn checked(&mut self, tasks: &[TaskId], changed: &[TaskId]) {
        let Some(reached) = self.awaiting_check.take() else { return };
        for t in &reached {
            assert!(tasks.contains(&id(*t)), "the change reaches t{t}'s sources, yet its inputs are not checked");
        }
        self.protect(&changed.iter().map(|t| t.index()).collect::<Vec<_>>());
    }

    /// Before a change (with no cycle running): the tasks it must leave alone. Done-well tasks (not services) that
    /// are not downstream of a task whose sources changed, nor of one that did not end well (which a cycle may
    /// have to run again).
    fn protect(&mut self, direct: &[usize]) {
        let mut downstream = vec![false; self.seen.len()];
        let broken = (0..self.seen.len()).filter(|&i| match &self.seen[i] {
            Seen::Done(o) => !o.is_success() || self.plan[id(i)].kind == TaskKind::Service,
            _ => false,
        });
        let mut stack: Vec<usize> = direct.iter().copied().chain(broken).collect();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut downstream[i], true) {
                stack.extend(self.plan[id(i)].dependents.iter().map(|d| d.index()));
            }
        }
        self.protected = (0..self.seen.len())
            .filter(|&i| {
                self.plan[id(i)].selected
                    && !downstream[i]
                    && self.plan[id(i)].kind == TaskKind::Task
                    && matches!(&self.seen[i], Seen::Done(o) if o.is_success())
            })
            .collect();
        self.members = None;
        self.checking_cycle = true;
    }
}

fn run(spec: Spec) {
    let text = toml(&spec);
    let (plan, sources) = plan_of(&text, &[]);
    let n = plan.len();
    let watch = match spec.watch {
        0 => None,
        1 => Some(OnBusy::Restart),
        _ => Some(OnBusy::Queue),
    };
    let opts = Options { jobs: spec.jobs, keep_going: spec.keep_going, explain: true, watch };
    let t0 = Instant::now();
    let mut engine = Engine::new(plan.clone(), sources.clone(), &PerTask::filled(n, None), opts, t0);
    let mut model = Model::new(plan.clone(), spec.jobs);
    let mut choices = spec.choices.iter().copied().chain(std::iter::repeat(0)).enumerate();
    let mut next =
        move || choices.next().map(|(k, c)| c.wrapping_add((k as u32).wrapping_mul(2654435761))).unwrap_or(0);
    let effects = engine.start(Vec::new());
    feed(&mut engine, &mut model, effects, &mut next);

    let mut signals = 0;
    let mut step = 0;
    let mut now = 0u64;
    // The script, then an ending: two signals and every process exiting, until the engine says the run is over.
    while engine.finished().is_none() {
        step += 1;
        assert!(step < 5000, "the run never ended");
        now += 1;
        let effects = engine_tick(&mut engine, t0, now);
        feed(&mut engine, &mut model, effects, &mut next);
        let scripted = step <= spec.choices.len();
        let mut actions: Vec<Input> = (0..n).flat_map(|t| model.reports(t, scripted)).collect();
        if watch.is_some() && scripted {
            let changed: BTreeSet<PathBuf> =
                (0..n).filter(|_| next() % 3 == 0).map(|i| PathBuf::from(format!("f{i}"))).collect();
            let removed_dirs: BTreeSet<PathBuf> =
                (0..n).filter(|_| next() % 11 == 0).map(|i| PathBuf::from(format!("f{i}"))).collect();
            let (rescan, at) = (next() % 17 == 0, t0 + Duration::from_millis(now));
            let change =
                Change { paths: changed, removed_dirs, rescan, notices: Vec::new(), first: Some(at), last: Some(at) };
            actions.push(Input::Changed(change));
        }
        if signals < 2 && (!scripted || next() % 23 == 0) {
            actions.push(Input::Signal(if next() % 2 == 0 { Signal::SIGINT } else { Signal::SIGTERM }));
        }
        if actions.is_empty() {
            // Nothing alive and nothing to script: only a signal ends watch mode.
            actions.push(Input::Signal(Signal::SIGINT));
        }
        let input = actions.swap_remove(next() as usize % actions.len());
        signals += usize::from(matches!(input, Input::Signal(_)));
        model.before(&input, &engine, &sources);
        if trace() {
            eprintln!("INPUT {input:?}");
        }
        let effects = engine.handle(input);
        feed(&mut engine, &mut model, effects, &mut next);
    }
    check_end(&plan, &model, signals, watch.is_some());
}

impl Model {
    fn new(plan: Arc<Plan>, jobs: usize) -> Model {
        let n = plan.len();
        Model {
            plan,
            jobs,
            seen: vec![Seen::Waiting; n],
            slot: vec![false; n],
            holders: 0,
            control: vec![None; n],
            alive: vec![false; n],
            started: vec![false; n],
            spawns: 0,
            ends: 0,
            protected: BTreeSet::new(),
            members: None,
            checking_cycle: false,
            awaiting_check: None,
        }
    }

    /// What task `t`'s runner could report next (more choices while the script runs).
    fn reports(&self, t: usize, scripted: bool) -> Vec<Input> {
        if !self.alive[t] {
            return Vec::new();
        }
        let task = |what| Input::Task { task: id(t), what };
        let exited = |end| task(Happened::Exited { end, duration: Duration::from_millis(1) });
        let mut out = Vec::new();
        match self.seen[t] {
            Seen::Starting => {
                out.push(task(Happened::Started { pid: t as u32 + 100, port: None }));
                if scripted {
                    out.push(exited(End::NotStarted(crate::outcome::Failure::Internal("x".into()))));
                }
            }
            Seen::Running if self.plan[id(t)].kind == TaskKind::Service => {
                out.push(task(Happened::Ready { after: Duration::from_millis(1), probe: None, reused: false }));
                if scripted {
                    out.push(exited(End::Exited(ChildExit::Code(1))));
                }
            }
            Seen::Running => {
                out.push(exited(End::Exited(ChildExit::Code(0))));
                if scripted {
                    out.push(exited(End::Exited(ChildExit::Code(2))));
                    out.push(exited(End::TimedOut(Duration::from_secs(1))));
                }
            }
            Seen::Ready if scripted => out.push(exited(End::Exited(ChildExit::Code(0)))),
            Seen::Stopping => {
                out.push(exited(End::Stopped));
                if scripted {
                    out.push(exited(End::Exited(ChildExit::Code(0))));
                }
            }
            _ => {}
        }
        out
    }

    /// Before the engine sees `input`: what the watch checks expect of it.
    fn before(&mut self, input: &Input, engine: &Engine, sources: &PerTask<crate::config::Globs>) {
        self.awaiting_check = None;
        match input {
            Input::Signal(_) => self.checking_cycle = false,
            Input::Changed(change) if engine.quiet() && !engine.interrupted() => {
                let direct: Vec<usize> = (0..self.seen.len())
                    .filter(|&i| {
                        self.plan[id(i)].selected
                            && !sources[id(i)].is_empty()
                            && (change.rescan
                                || change.paths.iter().any(|p| sources[id(i)].is_match(p))
                                || change.removed_dirs.iter().any(|d| sources[id(i)].may_match_under(d)))
                    })
                    .collect();
                // Until the check answers, nothing is affected (no task's sources reached: nothing ever is).
                self.protect(&[]);
                self.awaiting_check = Some(direct);
            }
            // During a cycle a change merges into it (or is queued): its members are the engine's to decide.
            Input::Changed(_) => self.checking_cycle = false,
            _ => {}
        }
    }
}

/// Let the model see the effects, answering freshness checks at once (with random verdicts), as the driver does.
fn feed(engine: &mut Engine, model: &mut Model, effects: Vec<Effect>, next: &mut impl FnMut() -> u32) {
    let mut effects = effects;
    while !effects.is_empty() {
        if trace() {
            for e in &effects {
                eprintln!("  {e:?}");
            }
        }
        model.apply(&effects);
        let mut more = Vec::new();
        for e in &effects {
            if let Effect::CheckFreshness { task, .. } = e {
                let verdict =
                    if next().is_multiple_of(3) { Verdict::UpToDate } else { Verdict::Run(RunReason::NeverRan) };
                more.extend(engine.handle(Input::Freshness { task: *task, verdict }));
            }
            if let Effect::CheckInputs { tasks } = e {
                // Some of them changed by content, some were only touched.
                let changed: Vec<TaskId> = tasks.iter().copied().filter(|_| !next().is_multiple_of(4)).collect();
                model.checked(tasks, &changed);
                more.extend(engine.handle(Input::InputsChecked { changed }));
            }
        }
        effects = more;
    }
}

/// `IRUN_PROP_TRACE=1`: print every input and effect (to read a failing case).
fn trace() -> bool {
    std::env::var_os("IRUN_PROP_TRACE").is_some()
}

fn engine_tick(engine: &mut Engine, t0: Instant, ms: u64) -> Vec<Effect> {
    engine.handle(Input::Tick(t0 + Duration::from_millis(ms)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, max_shrink_iters: 4000, ..ProptestConfig::default() })]

    #[test]
    fn the_run_keeps_its_rules_whatever_happens(spec in spec()) {
        run(spec);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 4000, ..ProptestConfig::default() })]

    /// Many deps to one dependent: a cursor left stale by a dep that stopped passing (a service restarting, a dep
    /// run again in a watch cycle after the dependent finished, a failure) would show as a look that disagrees with
    /// the full rule, or as a broken rule of the run.
    #[test]
    fn high_fan_in_keeps_the_rules_and_every_look_at_the_deps_agrees_with_the_full_rule(spec in fan_in_spec()) {
        run(spec);
    }
}

#[test]
fn found_by_proptest_a_change_during_a_cycle_merges_into_it() {
    run(Spec {
        tasks: vec![(6, 0, true), (6, 34307, true), (0, 13544, false), (0, 18948, false), (0, 39658, false)],
        jobs: 2,
        keep_going: true,
        watch: 1,
        choices: vec![
            7414234, 0, 0, 0, 0, 0, 0, 73993778, 3147882760, 0, 0, 0, 180345, 2795692987, 2810082575, 3850152006,
            356464074, 2726734046, 1882881488, 1081383708, 157995780, 2866262748, 1151858339, 2886662775, 3313566921,
            3293899200, 2762024518, 3316643369, 2455026924, 3640847732, 2941916804, 215902804, 3425150459, 4128031973,
            2183418966, 2991530004, 1661512367, 1098849112, 3908775863, 1984546547, 1239890000, 1115243104, 1592426256,
            4044431072, 192236381, 845585887, 3491487191, 1359111864, 12028239, 1185328009, 4138484214, 4021144663,
            3320194683, 3295193609, 3157813599, 1812325853, 1884322284, 2255313020, 2194087150, 1721396383, 441584372,
            235266093, 4223454594, 1101913213, 2085610559, 1537527468, 2775889720, 3925593482, 3981851152, 1526999959,
            1835576549, 3710960385, 1410371719, 848304674, 422959403, 3040277073, 3842491269, 2883121984, 885783870,
            886061009, 2154158296, 797917011, 3976589070, 3810248175,
        ],
    });
}

#[test]
fn found_by_proptest_a_task_queued_behind_a_crashing_service() {
    run(Spec {
        tasks: vec![
            (6, 0, false),
            (0, 0, false),
            (0, 725, false),
            (0, 355, false),
            (0, 0, false),
            (0, 6259, true),
            (0, 13904, false),
            (0, 3656, true),
        ],
        jobs: 1,
        keep_going: true,
        watch: 2,
        choices: vec![
            2339917, 4559061, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 96869352, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 292, 878933988, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2878, 108740587,
            1185846002, 0,
        ],
    });
}

#[test]
fn found_by_proptest_a_stale_ok_task_downstream_of_a_failure_may_run_again() {
    run(Spec {
        tasks: vec![
            (0, 0, false),
            (0, 12066, false),
            (0, 4076, true),
            (8, 28916, false),
            (0, 4632, false),
            (6, 62276, true),
            (0, 10483, false),
        ],
        jobs: 3,
        keep_going: false,
        watch: 1,
        choices: vec![
            104426080, 2000777136, 209978982, 0, 0, 0, 0, 0, 0, 0, 0, 6024, 2806672340, 0, 0, 0, 0, 0, 0, 0, 0, 29,
            1325257750, 0, 0, 0, 0, 0, 0, 0, 0, 0, 95929098, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2627994044, 0, 0, 0, 0, 0, 0,
            0, 0, 5677, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1195109, 0, 0, 0, 0, 0, 0,
        ],
    });
}

#[test]
fn a_long_chain_blocked_by_a_failure_does_not_recurse() {
    // Keep-going walks a blocked chain iteratively: 20,000 dependents of a failing task must not overflow.
    let mut text = String::from("[tasks.t0]\ncmd = \"x\"\n");
    for i in 1..20_000 {
        text.push_str(&format!("[tasks.t{i}]\ncmd = \"x\"\ndeps = [\"t{}\"]\n", i - 1));
    }
    let (plan, sources) = plan_of(&text, &["t19999"]);
    let n = plan.len();
    let opts = Options { jobs: 2, keep_going: true, explain: false, watch: None };
    let mut engine = Engine::new(plan, sources, &PerTask::filled(n, None), opts, Instant::now());
    let mut effects = engine.start(Vec::new());
    while let Some(Effect::CheckFreshness { task, .. }) =
        effects.iter().find(|e| matches!(e, Effect::CheckFreshness { .. })).cloned()
    {
        effects = engine.handle(Input::Freshness { task, verdict: Verdict::Run(RunReason::NeverRan) });
    }
    let exited = Happened::Exited { end: End::Exited(ChildExit::Code(1)), duration: Duration::ZERO };
    engine.handle(Input::Task { task: id(0), what: exited });
    assert_eq!(engine.finished(), Some(RunOutcome::Failed));
}

#[test]
fn found_by_proptest_a_service_wanted_only_by_a_service_that_ends_not_needed() {
    run(Spec {
        tasks: vec![
            (0, 0, false),
            (6, 26204, false),
            (6, 39642, false),
            (0, 16237, false),
            (0, 15224, false),
            (0, 33096, false),
            (6, 0, false),
        ],
        jobs: 2,
        keep_going: true,
        watch: 0,
        choices: vec![68670757, 0, 3739074442],
    });
}

#[test]
fn found_by_proptest_a_service_wanted_through_another_service() {
    run(Spec {
        tasks: vec![
            (0, 0, false),
            (6, 3086, false),
            (6, 11493, false),
            (0, 25000, false),
            (0, 49006, false),
            (6, 0, false),
            (0, 6612, false),
        ],
        jobs: 2,
        keep_going: false,
        watch: 0,
        choices: vec![46582558, 1540241387, 0, 1469130737, 0, 1799514158, 3913261300],
    });
}
