//! `--junit FILE`: a JUnit XML report, one test case per task in the suite `irun`, written when the run ends. A task
//! with `junit` that ran has a suite of its own instead: the test cases its reports gave, and its own case too if it
//! failed (a crash after its tests passed still shows) or if they gave none.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::events::{Event, Outcome, TaskKind, TaskName, TestReports};
use crate::report::text;
use crate::report::{Reporter, Trouble};
use crate::testcases::{Case, Detail, Status};

/// Output kept per task for the report: the end of it, if it is longer (up to twice this while the task runs).
const KEEP_BYTES: usize = 1 << 20;

pub(crate) struct Junit {
    path: PathBuf,
    file: Option<std::fs::File>,
    kinds: HashMap<TaskName, TaskKind>,
    output: HashMap<TaskName, Vec<u8>>,
    /// How many times each service was restarted (`restart`).
    restarts: HashMap<TaskName, u32>,
    cases: Vec<TestCase>,
    /// The reports of a task with `junit` that ended, until its result comes.
    reports: HashMap<TaskName, std::sync::Arc<TestReports>>,
    /// The suites of tasks with `junit`, in the order they finished.
    suites: Vec<TestSuite>,
    started: Option<SystemTime>,
    trouble: Option<Trouble>,
    /// `--partition`: the shard (`K/N`), in the suite's name, a property and each case's class.
    shard: Option<String>,
}

impl Junit {
    /// `file` is `path`, already created (so a bad path is reported before anything runs).
    pub(crate) fn new(path: PathBuf, file: std::fs::File) -> Self {
        Junit {
            path,
            file: Some(file),
            kinds: HashMap::new(),
            output: HashMap::new(),
            restarts: HashMap::new(),
            cases: Vec::new(),
            reports: HashMap::new(),
            suites: Vec::new(),
            started: None,
            trouble: None,
            shard: None,
        }
    }

    pub(crate) fn with_shard(mut self, shard: Option<String>) -> Self {
        self.shard = shard;
        self
    }

    fn case(&mut self, task: &TaskName, outcome: &Outcome, duration: Duration) -> TestCase {
        let mut tc_status = match outcome {
            Outcome::Ok | Outcome::Cached(_) => TestCaseStatus::success(),
            Outcome::Failed(_) | Outcome::TimedOut(_) => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Outcome::Cancelled | Outcome::Blocked(_) | Outcome::NotNeeded | Outcome::UpToDate | Outcome::Restarted => {
                TestCaseStatus::skipped()
            }
        };
        let message = match outcome {
            Outcome::Cancelled | Outcome::UpToDate => Some(text::label(outcome).to_string()),
            other => text::detail(other),
        };
        let restarts = self.restarts.get(task).copied().unwrap_or(0);
        let message = match (message, restarts) {
            (m, 0) => m,
            (Some(m), n) => Some(format!("{m} (restarted {n}x)")),
            (None, n) => Some(format!("restarted {n}x")),
        };
        if let Some(m) = message {
            tc_status.set_message(xml_text(&m));
        }
        if outcome.is_failure() {
            tc_status.set_type(text::label(outcome));
        }
        let mut case = TestCase::new(xml_text(task), tc_status);
        let kind = match self.kinds.get(task) {
            Some(TaskKind::Service) => "service",
            _ => "task",
        };
        match &self.shard {
            // Shards run shared deps each: the class keeps their cases apart when reports are merged.
            Some(shard) => case.set_classname(format!("irun.shard-{}.{kind}", shard.replace('/', "-of-"))),
            None => case.set_classname(format!("irun.{kind}")),
        };
        case.set_time(duration);
        if let Some(mut out) = self.output.remove(task) {
            // Cases wait for the end of the run: each keeps its last MiB, from the start of a line.
            if out.len() > KEEP_BYTES {
                let cut = out.len() - KEEP_BYTES;
                let start = memchr::memchr(b'\n', &out[cut..]).map_or(cut, |i| cut + i + 1);
                out.drain(..start);
            }
            // Without colour codes: XML cannot carry ESC, and a CI page would show the rest of each (`[31m`).
            case.set_system_out(xml_text(&console::strip_ansi_codes(&String::from_utf8_lossy(&out))));
        }
        case
    }
}

impl Junit {
    /// The suite of a task with `junit`: the cases of its reports (each in its own class, or the task's), then the
    /// task's own case if it failed or they gave none.
    fn suite(&mut self, task: &TaskName, outcome: &Outcome, duration: Duration, reports: &TestReports) -> TestSuite {
        let mut suite = match &self.shard {
            Some(shard) => TestSuite::new(xml_text(&format!("{task} (shard {shard})"))),
            None => TestSuite::new(xml_text(task)),
        };
        suite.add_test_cases(reports.cases().map(|c| test_case(task, c)));
        let own = self.case(task, outcome, duration);
        if outcome.is_failure() || reports.cases().next().is_none() {
            suite.add_test_case(own);
        }
        let joined = |texts: Vec<&str>| (!texts.is_empty()).then(|| xml_text(&texts.join("\n")));
        if let Some(out) = joined(reports.suites.iter().filter_map(|s| s.system_out.as_deref()).collect()) {
            suite.set_system_out(out);
        }
        if let Some(err) = joined(reports.suites.iter().filter_map(|s| s.system_err.as_deref()).collect()) {
            suite.set_system_err(err);
        }
        if reports.dropped > 0 {
            suite.add_property(quick_junit::Property::new("irun.cases_not_kept", reports.dropped.to_string()));
        }
        suite.set_time(duration);
        suite
    }
}

/// A case of a task's report as irun's report has it; `task` is its class when it had none.
fn test_case(task: &str, c: &Case) -> TestCase {
    let detailed = |mut status: TestCaseStatus, d: &Detail| {
        if let Some(m) = &d.message {
            status.set_message(xml_text(m));
        }
        if let Some(k) = &d.kind {
            status.set_type(xml_text(k));
        }
        if !d.text.is_empty() {
            status.set_description(xml_text(&d.text));
        }
        status
    };
    let status = match &c.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Failed(d) => detailed(TestCaseStatus::non_success(NonSuccessKind::Failure), d),
        Status::Error(d) => detailed(TestCaseStatus::non_success(NonSuccessKind::Error), d),
        Status::Skipped(d) => detailed(TestCaseStatus::skipped(), d),
    };
    let mut case = TestCase::new(xml_text(&c.name), status);
    case.set_classname(xml_text(c.classname.as_deref().unwrap_or(task)));
    if let Some(time) = c.time {
        case.set_time(time);
    }
    if let Some(out) = &c.system_out {
        case.set_system_out(xml_text(out));
    }
    if let Some(err) = &c.system_err {
        case.set_system_err(xml_text(err));
    }
    case
}

impl Reporter for Junit {
    fn event(&mut self, at: SystemTime, event: &Event) {
        match event {
            Event::RunStarted { tasks, .. } => {
                self.started = Some(at);
                self.kinds = tasks.iter().map(|t| (t.name.clone(), t.kind)).collect();
            }
            Event::Output { task, text, .. } => {
                let out = self.output.entry(task.clone()).or_default();
                out.extend_from_slice(text);
                out.push(b'\n');
                if out.len() > 2 * KEEP_BYTES {
                    out.drain(..out.len() - KEEP_BYTES);
                }
            }
            Event::TaskRestarting { task, attempt, max, exit, delay } => {
                *self.restarts.entry(task.clone()).or_default() += 1;
                let note = format!(
                    "[irun] exited ({}); restarting in {} (restart {attempt} of {max})\n",
                    text::exit(*exit),
                    humantime::format_duration(*delay)
                );
                self.output.entry(task.clone()).or_default().extend_from_slice(note.as_bytes());
            }
            Event::PlanChanged { tasks, .. } => {
                self.kinds.extend(tasks.iter().map(|t| (t.name.clone(), t.kind)));
            }
            Event::TestReports { task, reports } => {
                self.reports.insert(task.clone(), reports.clone());
            }
            Event::TaskFinished { task, outcome: Outcome::Restarted, .. } => {
                self.reports.remove(task);
            }
            Event::TaskFinished { task, outcome, duration } if self.kinds.get(task) != Some(&TaskKind::Group) => {
                match self.reports.remove(task) {
                    Some(reports) => {
                        let suite = self.suite(task, outcome, *duration, &reports);
                        self.suites.push(suite);
                    }
                    None => {
                        let case = self.case(task, outcome, *duration);
                        self.cases.push(case);
                    }
                }
            }
            Event::RunFinished { elapsed, .. } => {
                let mut suite = match &self.shard {
                    Some(shard) => TestSuite::new(format!("irun (shard {shard})")),
                    None => TestSuite::new("irun"),
                };
                if let Some(shard) = &self.shard {
                    suite.add_property(quick_junit::Property::new("irun.shard", shard.clone()));
                }
                let restarts: u32 = self.restarts.values().sum();
                if restarts > 0 {
                    suite.add_property(quick_junit::Property::new("irun.restarts", restarts.to_string()));
                }
                suite.add_test_cases(std::mem::take(&mut self.cases));
                suite.set_time(*elapsed);
                let mut report = Report::new("irun");
                report.set_time(*elapsed);
                report.add_test_suite(suite);
                report.add_test_suites(std::mem::take(&mut self.suites));
                let Some(mut file) = self.file.take() else { return };
                let written = report.to_string().map_err(std::io::Error::other).and_then(|xml| {
                    std::io::Write::write_all(&mut file, jenkins_compatible(&xml).as_bytes())?;
                    file.sync_all()
                        .or_else(|e| if e.kind() == std::io::ErrorKind::InvalidInput { Ok(()) } else { Err(e) })
                });
                if let Err(e) = written {
                    self.trouble = Some(Trouble::of(&e, "JUnit report", &self.path.display().to_string()));
                }
            }
            _ => {}
        }
    }

    fn trouble(&mut self) -> Option<Trouble> {
        self.trouble.take()
    }
}

/// Text with every character XML 1.0 cannot carry (control characters, U+FFFE, U+FFFF, lone surrogates cannot
/// occur in a `str`) replaced by U+FFFD.
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => c,
        })
        .collect()
}

/// The Jenkins JUnit schema (junit-10.xsd, which most CI parsers follow) has no `skipped` count on the root
/// `<testsuites>` element; each `<testsuite>` still carries it.
fn jenkins_compatible(xml: &str) -> String {
    let Some(start) = xml.find("<testsuites") else { return xml.to_string() };
    let end = start + xml[start..].find('>').unwrap_or(0);
    let root = &xml[start..end];
    let trimmed = regex::Regex::new(r#"\sskipped="\d+""#).expect("a valid regex").replace(root, "");
    format!("{}{}{}", &xml[..start], trimmed, &xml[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::PlannedTask;
    use crate::outcome::{ChildExit, Failure};

    /// The report written for `events` (after a run of `test`, with `junit`, and `lint`, without).
    fn report(shard: Option<&str>, events: Vec<Event>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut junit =
            Junit::new(path.clone(), std::fs::File::create(&path).unwrap()).with_shard(shard.map(Into::into));
        let planned =
            |name: &str| PlannedTask { name: name.into(), kind: TaskKind::Task, deps: [].into(), quiet: false };
        let at = SystemTime::UNIX_EPOCH;
        junit.event(at, &Event::RunStarted { tasks: vec![planned("test"), planned("lint")], jobs: 1, watch: false });
        for e in events {
            junit.event(at, &e);
        }
        let done = Event::RunFinished { outcome: crate::events::RunOutcome::Failed, elapsed: Duration::from_secs(1) };
        junit.event(at, &done);
        std::fs::read_to_string(&path).unwrap()
    }

    fn reports(xml: &str) -> Event {
        let mut reports = TestReports::default();
        reports.read("reports/junit.xml", xml.as_bytes()).unwrap();
        Event::TestReports { task: "test".into(), reports: reports.into() }
    }

    fn finished(task: &str, outcome: Outcome) -> Event {
        Event::TaskFinished { task: task.into(), outcome, duration: Duration::from_millis(1500) }
    }

    fn failed() -> Outcome {
        Outcome::Failed(Box::new(Failure::Exit(ChildExit::Code(1))))
    }

    const PYTEST: &str = "<testsuites><testsuite name=\"pytest\"><testcase classname=\"test_x\" name=\"test_ok\" \
        time=\"0.001\"/><testcase classname=\"test_x\" name=\"test_bad\" time=\"0.002\"><failure message=\"assert \
        1 == 2\">E   assert 1 == 2</failure><system-out>printed</system-out></testcase><testcase name=\"test_skip\">\
        <skipped message=\"later\"/></testcase></testsuite></testsuites>";

    #[test]
    fn a_task_with_reports_has_a_suite_of_its_cases_and_its_own_failed_case() {
        let output =
            Event::Output { task: "test".into(), stream: crate::events::Stream::Stdout, text: b"1 failed".into() };
        let xml =
            report(None, vec![output, reports(PYTEST), finished("test", failed()), finished("lint", Outcome::Ok)]);
        let irun = xml.split("<testsuite name=\"test\"").next().unwrap();
        assert!(irun.contains("<testsuite name=\"irun\" tests=\"1\"") && irun.contains("name=\"lint\""), "{xml}");
        let header = "<testsuite name=\"test\" tests=\"4\" skipped=\"1\" errors=\"0\" failures=\"2\" time=\"1.500\">";
        let (_, suite) = xml.split_once(header).unwrap_or_else(|| panic!("{xml}"));
        assert!(suite.contains("<testcase name=\"test_ok\" classname=\"test_x\" time=\"0.001\"/>"), "{xml}");
        assert!(suite.contains("<testcase name=\"test_bad\" classname=\"test_x\" time=\"0.002\">\n"), "{xml}");
        assert!(suite.contains("<failure message=\"assert 1 == 2\">E   assert 1 == 2</failure>"), "{xml}");
        assert!(suite.contains("<system-out>printed</system-out>"), "{xml}");
        assert!(suite.contains("<testcase name=\"test_skip\" classname=\"test\">"), "no class: the task's: {xml}");
        assert!(suite.contains("<skipped message=\"later\"/>"), "{xml}");
        assert!(suite.contains("<testcase name=\"test\" classname=\"irun.task\" time=\"1.500\">"), "{xml}");
        assert!(suite.contains("<failure message=\"exit code 1\" type=\"failed\"/>"), "{xml}");
        assert!(suite.contains("<system-out>1 failed\n</system-out>"), "{xml}");
    }

    #[test]
    fn a_passing_task_is_its_cases_alone_and_one_without_any_is_its_own_case() {
        let xml = report(None, vec![reports(PYTEST), finished("test", Outcome::Ok)]);
        assert!(!xml.contains("classname=\"irun.task\""), "{xml}");
        let empty = Event::TestReports { task: "test".into(), reports: TestReports::default().into() };
        let xml = report(None, vec![empty, finished("test", failed())]);
        let suite = xml.split_once("<testsuite name=\"test\" tests=\"1\"").unwrap_or_else(|| panic!("{xml}")).1;
        assert!(suite.contains("<testcase name=\"test\" classname=\"irun.task\""), "{xml}");
    }

    #[test]
    fn a_shards_suite_names_it() {
        let xml = report(Some("2/3"), vec![reports(PYTEST), finished("test", failed())]);
        assert!(xml.contains("<testsuite name=\"test (shard 2/3)\""), "{xml}");
        assert!(xml.contains("classname=\"irun.shard-2-of-3.task\""), "{xml}");
    }

    #[test]
    fn a_task_up_to_date_or_without_reports_stays_a_case_of_the_irun_suite() {
        let xml = report(None, vec![finished("test", Outcome::UpToDate)]);
        assert!(!xml.contains("<testsuite name=\"test\""), "{xml}");
        assert!(xml.contains("<testcase name=\"test\" classname=\"irun.task\""), "{xml}");
    }

    #[test]
    fn only_the_root_loses_its_skipped_count() {
        let xml =
            "<?xml?>\n<testsuites name=\"irun\" tests=\"2\" skipped=\"1\">\n<testsuite name=\"irun\" skipped=\"1\">";
        assert_eq!(
            super::jenkins_compatible(xml),
            "<?xml?>\n<testsuites name=\"irun\" tests=\"2\">\n<testsuite name=\"irun\" skipped=\"1\">"
        );
    }
}
