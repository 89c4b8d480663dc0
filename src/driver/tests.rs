//! The driver without processes: a fake launcher answers for each task instance (as ninja's `CommandRunner` fake
//! does), so what the driver does with the engine's effects (runners started and stopped, ports given, the state
//! recorded and saved, events sent) is tested on its own, on a temporary project.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::diagnostic::Source;
use crate::engine::{End, Options};
use crate::events::{EventReceiver, Outcome, TaskName};
use crate::exec::runner::Job;
use crate::outcome::ChildExit;
use crate::request::{self, Request};

/// What a fake task instance does once started.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Exits with this code.
    Exit(i32),
    /// A service: becomes ready, then runs until asked to stop.
    Serve,
}

/// What the fake launcher was asked to start, in order.
#[derive(Debug, Clone)]
struct Launched {
    name: TaskName,
    port: Option<u16>,
    after_exit: Option<Duration>,
}

#[derive(Default)]
struct Fake {
    /// Per task: what each of its instances does, in turn (the last one repeats); tasks not named exit 0.
    script: HashMap<String, Vec<Act>>,
    launched: Arc<Mutex<Vec<Launched>>>,
    /// The stop requests services got.
    stops: Arc<Mutex<Vec<(TaskName, Control)>>>,
}

impl Launcher for Fake {
    fn launch(&mut self, job: Job) {
        let acts = self.script.get(&*job.name).cloned().unwrap_or_else(|| vec![Act::Exit(0)]);
        let mut launched = self.launched.lock().unwrap();
        let earlier = launched.iter().filter(|l| l.name == job.name).count();
        let act = acts[earlier.min(acts.len() - 1)];
        launched.push(Launched { name: job.name.clone(), port: job.port, after_exit: job.after_exit });
        let stops = self.stops.clone();
        tokio::spawn(async move {
            let Job { reports, instance, mut control, port, name, .. } = job;
            let report = |what| {
                let _ = reports.send(Report { instance, what });
            };
            report(Happened::Started { pid: 4242, port });
            let end = match act {
                Act::Exit(code) => End::Exited(ChildExit::Code(code)),
                Act::Serve => {
                    report(Happened::Ready { after: Duration::ZERO, probe: None, reused: false });
                    if let Ok(asked) = control.wait_for(Option::is_some).await {
                        stops.lock().unwrap().push((name, asked.expect("waited for one")));
                    }
                    End::Stopped
                }
            };
            report(Happened::Exited { end, duration: Duration::from_millis(1) });
        });
    }

    fn task_ended(&mut self) {}

    async fn news(&mut self) -> Vec<Event> {
        std::future::pending().await
    }

    async fn stop_escaped(&mut self) -> usize {
        0
    }
}

/// A run of `targets` in `dir`, with the fake launcher; how it ended and every event it sent.
fn run_with(dir: &Path, toml: &str, targets: &[&str], fake: &mut Fake) -> (RunOutcome, Vec<Event>) {
    let config = crate::config::parse(Source::new(&dir.join("Irun.toml"), toml), dir.to_path_buf())
        .unwrap_or_else(|d| panic!("{}", d.render(false)));
    let request = Request { targets: targets.iter().map(|t| t.to_string()).collect(), ..Request::default() };
    let prepared = request::plan(config, &request).unwrap_or_else(|d| panic!("{}", d.render(false)));
    let (checker, _) = Checker::new(dir, false);
    let options = Options { jobs: 2, keep_going: false, explain: true, watch: None };
    let setup = Setup {
        describe: true,
        config: Arc::new(prepared.config),
        plan: Arc::new(prepared.plan),
        options,
        checker,
        watching: None,
        notices: Vec::new(),
        cache: crate::cache::local::LocalStore::new(dir, crate::cache::local::DEFAULT_MAX),
        remote: None,
    };
    let (tx, rx) = crate::events::channel();
    let (_closed, output_closed) = mpsc::unbounded_channel();
    let inputs = Inputs { signals: Signals::none(), output_closed };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let outcome = runtime.block_on(run(setup, tx, inputs, fake));
    drop(runtime);
    (outcome, drain(rx))
}

fn drain(mut rx: EventReceiver) -> Vec<Event> {
    std::iter::from_fn(|| rx.blocking_recv().map(|stamped| stamped.event)).collect()
}

fn outcomes(events: &[Event]) -> Vec<(String, Outcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskFinished { task, outcome, .. } => Some((task.to_string(), outcome.clone())),
            _ => None,
        })
        .collect()
}

fn names(fake: &Fake) -> Vec<String> {
    fake.launched.lock().unwrap().iter().map(|l| l.name.to_string()).collect()
}

const SUITE: &str = "[tasks.setup]\ncmd = \"setup\"\nsources = [\"setup.txt\"]\n\
    [tasks.db]\ncmd = \"db\"\ndaemon = true\ndeps = [\"setup\"]\n\
    [tasks.test]\ncmd = \"test\"\ndeps = [\"db\"]\n";

#[test]
fn a_plan_runs_to_its_end_and_a_service_nothing_needs_any_more_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("setup.txt"), "v1").unwrap();
    let mut fake = Fake { script: HashMap::from([("db".to_string(), vec![Act::Serve])]), ..Fake::default() };
    let (outcome, events) = run_with(dir.path(), SUITE, &["test"], &mut fake);
    assert_eq!(outcome, RunOutcome::Passed);
    assert_eq!(names(&fake), ["setup", "db", "test"]);
    let stop = Control::Stop(crate::outcome::StopReason::NotNeeded);
    assert_eq!(*fake.stops.lock().unwrap(), [("db".into(), stop)], "once test is done, db is stopped");
    assert_eq!(
        outcomes(&events),
        [("setup".to_string(), Outcome::Ok), ("test".to_string(), Outcome::Ok), ("db".to_string(), Outcome::Ok)]
    );
    assert!(matches!(events.last(), Some(Event::RunFinished { outcome: RunOutcome::Passed, .. })));
}

#[test]
fn what_ran_is_recorded_so_the_next_run_finds_it_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("setup.txt"), "v1").unwrap();
    let toml = "[tasks.setup]\ncmd = \"setup\"\nsources = [\"setup.txt\"]\n";
    let (_, first) = run_with(dir.path(), toml, &["setup"], &mut Fake::default());
    assert_eq!(outcomes(&first), [("setup".to_string(), Outcome::Ok)]);
    assert!(dir.path().join(".irun/state.bin").is_file(), "the driver saved the state");
    let mut fake = Fake::default();
    let (outcome, again) = run_with(dir.path(), toml, &["setup"], &mut fake);
    assert_eq!((outcome, names(&fake)), (RunOutcome::Passed, Vec::<String>::new()));
    assert_eq!(outcomes(&again), [("setup".to_string(), Outcome::UpToDate)]);
    // Changed sources: it runs again, and `--explain`'s reason says why.
    std::fs::write(dir.path().join("setup.txt"), "v2").unwrap();
    let (_, changed) = run_with(dir.path(), toml, &["setup"], &mut Fake::default());
    let why = changed.iter().find_map(|e| match e {
        Event::TaskWillRun { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(why, Some(crate::outcome::RunReason::Source(crate::outcome::FileChange::Changed("setup.txt".into()))));
}

#[test]
fn a_failure_fails_the_run_and_what_depends_on_it_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("setup.txt"), "v1").unwrap();
    let mut fake = Fake { script: HashMap::from([("setup".to_string(), vec![Act::Exit(3)])]), ..Fake::default() };
    let (outcome, events) = run_with(dir.path(), SUITE, &["test"], &mut fake);
    assert_eq!(outcome, RunOutcome::Failed);
    assert_eq!(names(&fake), ["setup"]);
    let failed = outcomes(&events).into_iter().find(|(t, _)| t == "setup").map(|(_, o)| o);
    assert!(matches!(failed, Some(Outcome::Failed(_))), "{failed:?}");
}

#[test]
fn a_crashed_service_is_started_again_after_a_pause_on_the_port_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[tasks.web]\ncmd = \"web\"\ndaemon = true\nready = { tcp = \"auto\" }\nrestart = \"on-failure\"\n\
                [tasks.client]\ncmd = \"client\"\ndeps = [\"web\"]\n";
    // Its first instance exits before it is ready; the second serves.
    let script = HashMap::from([("web".to_string(), vec![Act::Exit(1), Act::Serve])]);
    let mut fake = Fake { script, ..Fake::default() };
    let (outcome, events) = run_with(dir.path(), toml, &["client"], &mut fake);
    let launched = fake.launched.lock().unwrap().clone();
    let web: Vec<&Launched> = launched.iter().filter(|l| &*l.name == "web").collect();
    assert_eq!(web.len(), 2, "{launched:?}");
    assert!(web[0].port.is_some() && web[1].port == web[0].port, "the same port both times: {web:?}");
    assert_eq!((web[0].after_exit, web[1].after_exit), (None, Some(Duration::from_millis(100))));
    assert!(events.iter().any(|e| matches!(e, Event::TaskRestarting { attempt: 1, .. })), "{events:?}");
    assert_eq!(outcome, RunOutcome::Passed, "{events:?}");
}
