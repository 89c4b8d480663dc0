//! `--junit FILE`: a JUnit XML report, one test case per task, written when the run ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::events::{Event, Outcome, TaskKind, TaskName};
use crate::report::text;
use crate::report::{Reporter, Trouble};

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
            Event::TaskFinished { outcome: Outcome::Restarted, .. } => {}
            Event::TaskFinished { task, outcome, duration } if self.kinds.get(task) != Some(&TaskKind::Group) => {
                let case = self.case(task, outcome, *duration);
                self.cases.push(case);
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
