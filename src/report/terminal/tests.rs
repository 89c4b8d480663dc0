//! The terminal reporter, fed events by hand.

use std::time::{Duration, SystemTime};

use super::github::gh_escape;
use super::*;
use crate::events::{Outcome, PlannedTask, RunOutcome};
use crate::outcome::{ChildExit, Failure};

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn planned(name: &str, kind: TaskKind, deps: &[&str]) -> PlannedTask {
    PlannedTask { name: name.into(), kind, deps: deps.iter().map(|d| TaskName::from(*d)).collect(), quiet: false }
}

fn names(list: &[&str]) -> Vec<TaskName> {
    list.iter().map(|n| TaskName::from(*n)).collect()
}

#[test]
fn a_quiet_service_stays_quiet_at_the_end_of_a_grouped_watch_cycle() {
    let opts = Options { color: false, grouped: true, github: false, progress: false, tail: 10, explain: true };
    let mut t = Terminal::new(Vec::new(), opts);
    let quiet = PlannedTask { quiet: true, ..planned("svc", TaskKind::Service, &[]) };
    t.event(
        at(1),
        &Event::RunStarted { tasks: vec![quiet, planned("loud", TaskKind::Service, &[])], jobs: 2, watch: true },
    );
    for (i, task) in ["svc", "loud"].into_iter().enumerate() {
        t.event(at(2), &Event::TaskStarted { task: task.into(), pid: i as u32, port: None, command: None });
        let text = format!("{task} chatter").into_bytes();
        t.event(at(3), &Event::Output { task: task.into(), stream: crate::events::Stream::Stdout, text });
    }
    t.event(at(4), &Event::CycleFinished { cycle: 0, outcome: RunOutcome::Passed, elapsed: Duration::ZERO });
    t.flush();
    let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
    assert!(text.contains("loud chatter") && !text.contains("svc chatter"), "{text}");
}

/// The counts the status area shows, and the ones the summary line gives, for a watch cycle.
#[test]
fn the_status_area_and_the_summary_count_the_same_tasks() {
    let opts = Options { color: false, grouped: false, github: false, progress: true, tail: 10, explain: true };
    let mut t = Terminal::new(Vec::new(), opts);
    let mut clock = 0;
    let mut send = |t: &mut Terminal<Vec<u8>>, e: Event| {
        clock += 10;
        t.event(at(clock), &e);
    };
    let tasks = vec![
        planned("svc", TaskKind::Service, &[]),
        planned("a", TaskKind::Task, &["svc"]),
        planned("b", TaskKind::Task, &[]),
        planned("all", TaskKind::Group, &["a", "b"]),
    ];
    send(&mut t, Event::RunStarted { tasks, jobs: 2, watch: true });
    let cycle0 = names(&["svc", "b", "a", "all"]);
    send(&mut t, Event::CycleStarted { cycle: 0, changed: vec![], rescan: false, tasks: cycle0, restarted: false });
    for task in ["svc", "b"] {
        send(&mut t, Event::TaskStarted { task: task.into(), pid: 1, port: None, command: None });
    }
    send(&mut t, Event::TaskReady { task: "svc".into(), after: Duration::from_millis(5), probe: None, reused: false });
    send(&mut t, Event::TaskStarted { task: "a".into(), pid: 2, port: None, command: None });
    send(&mut t, Event::TaskFinished { task: "a".into(), outcome: Outcome::Ok, duration: Duration::ZERO });
    let failed = Outcome::Failed(Box::new(Failure::Exit(ChildExit::Code(1))));
    send(&mut t, Event::TaskFinished { task: "b".into(), outcome: failed, duration: Duration::ZERO });
    send(&mut t, Event::TaskFinished { task: "all".into(), outcome: Outcome::Ok, duration: Duration::ZERO });
    assert_eq!(t.progress.as_ref().unwrap().counts(), (3, 3), "svc (ready), a and b; not the group");

    // A change restarts the cycle: a runs again, and the count follows.
    let cycle1 = names(&["a", "all"]);
    send(&mut t, Event::CycleFinished { cycle: 0, outcome: RunOutcome::Failed, elapsed: Duration::ZERO });
    t.flush();
    let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
    assert!(text.contains("irun: failed: 1 ready, 1 ok, 1 failed in"), "{text}");
    send(
        &mut t,
        Event::CycleStarted { cycle: 1, changed: vec!["x".into()], rescan: false, tasks: cycle1, restarted: false },
    );
    send(&mut t, Event::TaskStarted { task: "a".into(), pid: 3, port: None, command: None });
    send(&mut t, Event::TaskFinished { task: "a".into(), outcome: Outcome::Ok, duration: Duration::ZERO });
    assert_eq!(t.progress.as_ref().unwrap().counts(), (1, 1));
    let cycle2 = names(&["a", "b", "all"]);
    send(
        &mut t,
        Event::CycleStarted {
            cycle: 2,
            changed: vec!["x".into(), "y".into()],
            rescan: false,
            tasks: cycle2,
            restarted: true,
        },
    );
    assert_eq!(t.progress.as_ref().unwrap().counts(), (0, 2), "a runs again, and b joins");
    for task in ["a", "b"] {
        send(&mut t, Event::TaskStarted { task: task.into(), pid: 4, port: None, command: None });
        send(&mut t, Event::TaskFinished { task: task.into(), outcome: Outcome::Ok, duration: Duration::ZERO });
    }
    assert_eq!(t.progress.as_ref().unwrap().counts(), (2, 2));
    send(&mut t, Event::CycleFinished { cycle: 2, outcome: RunOutcome::Passed, elapsed: Duration::ZERO });
    t.flush();
    let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
    assert!(text.contains("irun: passed: 2 ok in"), "{text}");
}

#[test]
fn durations_have_three_significant_figures_then_minutes() {
    assert_eq!(format_duration(Duration::from_millis(310)), "0.31s");
    assert_eq!(format_duration(Duration::from_millis(12_040)), "12.0s");
    assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
}

#[test]
fn github_escaping() {
    assert_eq!(gh_escape("a%b\nc", false), "a%25b%0Ac");
    assert_eq!(gh_escape("x: y, z", true), "x%3A y%2C z");
}

/// A writer that keeps how much each write held.
#[derive(Default)]
struct Writes(Vec<usize>, Vec<u8>);

impl std::io::Write for Writes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(buf.len());
        self.1.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A terminal writing to `out` that was told of a run of `n` tasks, all up to date, in one batch.
fn all_up_to_date<W: std::io::Write + Send>(out: W, n: usize) -> Terminal<W> {
    let opts = Options { color: false, grouped: false, github: false, progress: false, tail: 10, explain: true };
    let mut t = Terminal::new(out, opts);
    let tasks = (0..n).map(|i| planned(&format!("task{i}"), TaskKind::Task, &[])).collect();
    t.event(at(1), &Event::RunStarted { tasks, jobs: 2, watch: false });
    for i in 0..n {
        let task = TaskName::from(format!("task{i}").as_str());
        t.event(at(2), &Event::TaskFinished { task, outcome: Outcome::UpToDate, duration: Duration::ZERO });
    }
    t
}

#[test]
fn a_long_batch_of_lines_is_written_out_in_bounded_pieces_and_whole() {
    let n = 10_000;
    let mut t = all_up_to_date(Writes::default(), n);
    t.flush();
    let (sizes, text) = (&t.out.0, String::from_utf8(t.out.1.clone()).unwrap());
    assert!(sizes.len() > 1 && sizes.iter().all(|&s| s < PENDING_MAX + 100), "held whole: {sizes:?}");
    assert_eq!(text.lines().filter(|l| l.contains("up to date")).count(), n, "every line, once");
}

#[test]
fn a_run_reserves_room_for_its_tasks_results_at_once() {
    // Grown one by one, 1,000 rows would take room for 1,024 (10,000: 16,384).
    let n = 1000;
    let t = all_up_to_date(Vec::new(), n);
    assert_eq!((t.results.len(), t.results.room()), (n, n));
}

/// A run's reports of `cases` (name and result: `p`assed, `f`ailed, `e`rror, `s`kipped) in `file`.
fn test_reports(file: &str, cases: &[(&str, char)]) -> crate::testcases::TestReports {
    let xml: String = cases
        .iter()
        .map(|(name, result)| match result {
            'f' => format!("<testcase name=\"{name}\"><failure message=\"m\">text</failure></testcase>"),
            'e' => format!("<testcase name=\"{name}\"><error>trace</error></testcase>"),
            's' => format!("<testcase name=\"{name}\"><skipped/></testcase>"),
            _ => format!("<testcase name=\"{name}\"/>"),
        })
        .collect();
    let mut reports = crate::testcases::TestReports::default();
    reports.read(file, format!("<testsuite>{xml}</testsuite>").as_bytes()).unwrap();
    reports
}

#[test]
fn a_run_with_test_reports_says_its_counts_and_first_failures_in_one_line_and_warns_of_what_it_could_not_read() {
    let opts = Options { color: false, grouped: false, github: false, progress: false, tail: 10, explain: true };
    let mut t = Terminal::new(Vec::new(), opts);
    t.event(at(1), &Event::RunStarted { tasks: vec![planned("test", TaskKind::Task, &[])], jobs: 1, watch: false });
    let cases = [("ok1", 'p'), ("bad1", 'f'), ("bad2", 'f'), ("err", 'e'), ("bad3", 'f'), ("skip", 's')];
    let mut reports = test_reports("reports/junit.xml", &cases);
    reports.problems.push(crate::testcases::Problem::Unreadable {
        path: "reports/other.xml".into(),
        error: "ill-formed document at line 3 column 1".into(),
    });
    t.event(at(2), &Event::TestReports { task: "test".into(), reports: reports.into() });
    let missing = crate::testcases::Problem::Missing { patterns: vec!["reports/*.xml".into()] };
    let mut nothing = crate::testcases::TestReports::default();
    nothing.problems.push(missing);
    t.event(at(3), &Event::TestReports { task: "test".into(), reports: nothing.into() });
    t.flush();
    let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "irun: warning: cannot read the JUnit report reports/other.xml of task `test`: ill-formed document at \
             line 3 column 1",
            "test * 6 test cases, 3 failed, 1 error, 1 skipped (reports/junit.xml): bad1, bad2, err (+1 more)",
            "irun: warning: task `test` succeeded without writing a JUnit report: no file matching `reports/*.xml` \
             was written in this run; check where its command writes its report (pytest: --junitxml=PATH), or its \
             `junit` in Irun.toml",
        ],
        "{text}"
    );
}

#[test]
fn test_case_names_from_a_report_cannot_drive_the_terminal() {
    let opts = Options { color: false, grouped: false, github: false, progress: false, tail: 10, explain: true };
    let mut t = Terminal::new(Vec::new(), opts);
    t.event(at(1), &Event::RunStarted { tasks: vec![planned("test", TaskKind::Task, &[])], jobs: 1, watch: false });
    let reports = test_reports("r&#x1b;[2J.xml", &[("x&#x1b;]0;pwned&#x7;&#10;y", 'f')]);
    t.event(at(2), &Event::TestReports { task: "test".into(), reports: reports.into() });
    t.flush();
    let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert_eq!(text.lines().count(), 1, "one line, whatever the name holds: {text:?}");
}

/// Reports that need reasons (the events file, timings) ask for them; the terminal says them only with --explain.
#[test]
fn reasons_reach_the_terminal_only_with_explain() {
    for explain in [false, true] {
        let opts = Options { color: false, grouped: false, github: false, progress: false, tail: 10, explain };
        let mut t = Terminal::new(Vec::new(), opts);
        t.event(at(1), &Event::RunStarted { tasks: vec![planned("a", TaskKind::Task, &[])], jobs: 1, watch: false });
        t.event(at(2), &Event::TaskWillRun { task: "a".into(), reason: crate::events::RunReason::NeverRan });
        t.flush();
        let text = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
        assert_eq!(text.contains("will run: never ran"), explain, "{text}");
    }
}
