//! `--json` / `--events FILE`: every event as one JSON object per line, for machines.
//!
//! The schema is versioned (`"version": 1`) and documented in README.md. Every object has `version`, `time`
//! (RFC 3339, UTC, microseconds) and `event`; the other fields depend on the event.

use std::io::Write;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::events::{Event, GuardNews, Outcome, RunOutcome, RunReason, Stream, TaskName, WatchProblem};
use crate::outcome::FileChange;
use crate::report::text;
use crate::report::{Reporter, Trouble};
use crate::testcases::{Problem, TestReports};

pub(crate) const VERSION: u32 = 1;

pub(crate) struct Json<W: Write + Send> {
    out: W,
    /// Where it goes: "stdout" or the file's path (for messages).
    dest: String,
    /// A write failed: nothing more is written.
    failed: bool,
    trouble: Option<Trouble>,
    /// `--partition`: every object says which shard (`K/N`) it comes from.
    shard: Option<String>,
}

impl<W: Write + Send> Json<W> {
    pub(crate) fn new(out: W, dest: &str) -> Self {
        Json { out, dest: dest.to_string(), failed: false, trouble: None, shard: None }
    }

    pub(crate) fn with_shard(mut self, shard: Option<String>) -> Self {
        self.shard = shard;
        self
    }

    fn check(&mut self, written: std::io::Result<()>) {
        if let Err(e) = written
            && !std::mem::replace(&mut self.failed, true)
        {
            self.trouble = Some(Trouble::of(&e, "event stream", &self.dest));
        }
    }
}

fn status(o: &Outcome) -> Value {
    let name = match o {
        Outcome::Ok => "ok",
        Outcome::Failed(_) => "failed",
        Outcome::TimedOut(_) => "timed_out",
        Outcome::Cancelled => "cancelled",
        Outcome::Blocked(_) | Outcome::NotNeeded => "skipped",
        Outcome::UpToDate => "up_to_date",
        Outcome::Cached(hit) => {
            return json!({ "status": "cached", "reason": text::detail(o), "key": hit.key, "source": hit.source });
        }
        Outcome::Restarted => "restarted",
    };
    match text::detail(o) {
        Some(reason) => json!({ "status": name, "reason": reason }),
        None => json!({ "status": name }),
    }
}

fn outcome(o: RunOutcome) -> Value {
    match o {
        RunOutcome::Passed => json!({ "outcome": "passed" }),
        RunOutcome::Failed => json!({ "outcome": "failed" }),
        RunOutcome::Interrupted(sig) => json!({ "outcome": "interrupted", "signal": sig.as_str() }),
    }
}

fn planned(tasks: &[crate::events::PlannedTask]) -> Value {
    tasks
        .iter()
        .map(|t| {
            json!({
                "name": &*t.name,
                "kind": t.kind.as_str(),
                "deps": t.deps.iter().map(|d| &**d).collect::<Vec<_>>(),
                "output": if t.quiet { "on-failure" } else { "live" },
            })
        })
        .collect()
}

/// The object written for an event (output aside, which [`Json`] writes line by line): `version`, `time`, `event`,
/// `shard` with `--partition`, and the event's own fields.
pub(crate) fn object(at: SystemTime, event: &Event, shard: Option<&str>) -> Value {
    let (name, v) = fields(event);
    named(at, name, v, shard)
}

/// Every object written for an event but output: one, or for a task's test reports the counts and a notice per
/// problem.
pub(crate) fn objects(at: SystemTime, event: &Event, shard: Option<&str>) -> Vec<Value> {
    match event {
        Event::TestReports { task, reports } => {
            test_reports(task, reports).into_iter().map(|(name, v)| named(at, name, v, shard)).collect()
        }
        _ => vec![object(at, event, shard)],
    }
}

/// An object of the stream: `event` called `name`, with `v`'s fields.
fn named(at: SystemTime, name: &str, mut v: Value, shard: Option<&str>) -> Value {
    let mut line = serde_json::Map::new();
    line.insert("version".into(), json!(VERSION));
    line.insert("time".into(), json!(humantime::format_rfc3339_micros(at).to_string()));
    line.insert("event".into(), json!(name));
    if let Some(shard) = shard {
        line.insert("shard".into(), json!(shard));
    }
    if let Value::Object(rest) = v.take() {
        line.extend(rest);
    }
    Value::Object(line)
}

/// The event's own fields.
pub(crate) fn fields(event: &Event) -> (&'static str, Value) {
    match event {
        Event::RunStarted { tasks, jobs, watch } => {
            ("run_started", json!({ "jobs": jobs, "watch": watch, "tasks": planned(tasks) }))
        }
        Event::Isolation { cgroup } => (
            "processes",
            json!({
                "isolation": if cgroup.is_some() { "cgroup" } else { "process_group" },
                "cgroup": cgroup.as_deref().map(lossy),
            }),
        ),
        Event::PlanChanged { tasks, jobs } => ("plan_changed", json!({ "jobs": jobs, "tasks": planned(tasks) })),
        Event::CycleStarted { cycle, changed, rescan, tasks, restarted } => (
            "cycle_started",
            json!({
                "cycle": cycle,
                "changed": changed,
                "rescan": rescan,
                "tasks": tasks.iter().map(|t| &**t).collect::<Vec<_>>(),
                "restarted": restarted,
            }),
        ),
        Event::CycleFinished { cycle, outcome: o, elapsed } => {
            let mut v = outcome(*o);
            v["cycle"] = json!(cycle);
            v["duration_s"] = json!(elapsed.as_secs_f64());
            ("cycle_finished", v)
        }
        Event::TaskStarted { task, pid, port, command } => {
            let mut v = json!({ "task": &**task, "pid": pid });
            if let Some(port) = port {
                v["port"] = json!(port);
            }
            if let Some(command) = command {
                v["command"] = json!(command);
            }
            ("task_started", v)
        }
        Event::TaskReady { task, after, probe, reused } => {
            let probe = text::ready_probe(probe.as_ref(), *reused);
            ("task_ready", json!({ "task": &**task, "after_s": after.as_secs_f64(), "probe": probe }))
        }
        Event::TaskRestarting { task, attempt, max, exit, delay } => (
            "task_restarting",
            json!({
                "task": &**task,
                "attempt": attempt,
                "max_restarts": max,
                "exit": text::exit(*exit),
                "delay_s": delay.as_secs_f64(),
            }),
        ),
        Event::TaskStopping { task, reason, signal } => (
            "task_stopping",
            json!({ "task": &**task, "reason": text::stop_reason(*reason), "signal": signal.as_str() }),
        ),
        Event::Output { task, stream, text } => (
            "output",
            json!({
                "task": &**task,
                "stream": if *stream == Stream::Stdout { "stdout" } else { "stderr" },
                "line": String::from_utf8_lossy(text),
            }),
        ),
        Event::TaskFinished { task, outcome, duration } => {
            let mut v = status(outcome);
            v["task"] = json!(&**task);
            v["duration_s"] = json!(duration.as_secs_f64());
            ("task_finished", v)
        }
        Event::RunFinished { outcome: o, elapsed } => {
            let mut v = outcome(*o);
            v["duration_s"] = json!(elapsed.as_secs_f64());
            ("run_finished", v)
        }
        _ => notice(event),
    }
}

/// A notice: its task (or null), its words (`message`), its `kind` and its own fields.
fn notice(event: &Event) -> (&'static str, Value) {
    let paths = |p: &[String]| json!(p);
    let names = |n: &[TaskName]| json!(n.iter().map(|t| &**t).collect::<Vec<_>>());
    let (kind, mut v) = match event {
        Event::TaskKilled { grace, signal, .. } => {
            ("killed", json!({ "grace_s": grace.as_secs_f64(), "signal": signal.as_str() }))
        }
        Event::TerminalHandedOver { .. } => ("terminal_handed_over", json!({})),
        Event::WaitingForTerminal { signal, .. } => ("waiting_for_terminal", json!({ "signal": signal.as_str() })),
        Event::TaskWillRun { reason, .. } => ("will_run", run_reason(reason)),
        Event::ServiceReused { probe, .. } => ("reused", json!({ "probe": text::check(probe) })),
        Event::Interrupted { signal, count, running } => {
            ("interrupted", json!({ "signal": signal.as_str(), "count": count, "running": running }))
        }
        Event::StateIgnored { problem } => ("state_ignored", json!({ "problem": problem })),
        Event::CacheWarning { problem } => ("cache_warning", json!({ "problem": problem })),
        Event::StateLockWait { lock } => ("state_lock_wait", json!({ "lock": lossy(lock) })),
        Event::StateNotSaved { path, error } => ("state_not_saved", json!({ "path": lossy(path), "error": error })),
        Event::ShardSelected { shard, partition, leaves, units } => {
            ("shard", json!({ "shard": shard, "partition": partition, "leaves": leaves, "units": names(units) }))
        }
        Event::Watching { folders, root } => ("watching", json!({ "folders": folders, "root": lossy(root) })),
        Event::WatchTrouble { problem } => ("watch_trouble", watch_problem(problem)),
        Event::ChangeQueued { paths: p, rescan } => ("change_queued", json!({ "paths": paths(p), "rescan": rescan })),
        Event::FeedbackLoop { cycles, paths: p, tasks } => {
            ("feedback_loop", json!({ "cycles": cycles, "paths": paths(p), "tasks": names(tasks) }))
        }
        Event::ConfigUnreadable { path, error } => {
            ("config_unreadable", json!({ "path": lossy(path), "error": error }))
        }
        Event::ReloadRejected { file, diagnostic } => ("reload_rejected", json!({ "file": file, "error": diagnostic })),
        Event::ReloadApplied { file, diff, .. } => (
            "reload_applied",
            json!({
                "file": file,
                "added": names(&diff.added),
                "changed": names(&diff.changed),
                "removed": names(&diff.removed),
            }),
        ),
        Event::OrphanAdopted { pid, program, command, .. } => {
            ("orphan_adopted", json!({ "pid": pid, "program": program, "command": command }))
        }
        Event::EscapeesStopped { count } => ("escapees_stopped", json!({ "count": count })),
        Event::GuardEnded { exit, news } => ("guard_ended", guard(*exit, news)),
        _ => ("other", json!({})),
    };
    let (task, message) = text::notice(event).unwrap_or((None, String::new()));
    v["kind"] = json!(kind);
    v["task"] = json!(task.map(|t| &**t));
    v["message"] = json!(message);
    ("notice", v)
}

/// A run's JUnit reports: a `tests` object with the counts, then a notice for each problem, as the terminal warns.
fn test_reports(task: &TaskName, reports: &TestReports) -> Vec<(&'static str, Value)> {
    let c = reports.counts;
    let tests = json!({
        "task": &**task,
        "files": reports.files,
        "tests": c.tests,
        "failures": c.failures,
        "errors": c.errors,
        "skipped": c.skipped,
    });
    let problems = reports.problems.iter().map(|p| {
        let mut v = match p {
            Problem::Unreadable { path, error } => json!({ "kind": "junit_unreadable", "path": path, "error": error }),
            Problem::Missing { patterns } => json!({ "kind": "junit_missing", "patterns": patterns }),
        };
        v["task"] = json!(&**task);
        v["message"] = json!(text::test_report_problem(task, p));
        ("notice", v)
    });
    std::iter::once(("tests", tests)).chain(problems).collect()
}

/// Why a task runs, as `reason` (a word) and what it is about.
fn run_reason(r: &RunReason) -> Value {
    let (reason, about) = match r {
        RunReason::Service => ("service", None),
        RunReason::NoSources => ("no_sources", None),
        RunReason::Forced => ("forced", None),
        RunReason::Rerun => ("rerun", None),
        RunReason::AlwaysRun => ("always_run", None),
        RunReason::NeverRan => ("never_ran", None),
        RunReason::LastUnfinished => ("last_unfinished", None),
        RunReason::LastFailed => ("last_failed", None),
        RunReason::Setting(_) => ("setting_changed", None),
        RunReason::Source(change) => ("source_changed", Some(("path", json!(file(change))))),
        RunReason::Output(change) => ("output_changed", Some(("path", json!(file(change))))),
        RunReason::DepRan(d) | RunReason::DepWillRun(d) => ("dep_ran", Some(("dep", json!(&**d)))),
        RunReason::ServiceChanged(d) => ("service_changed", Some(("dep", json!(&**d)))),
        RunReason::ServiceRestarted(d) => ("service_restarted", Some(("dep", json!(&**d)))),
        RunReason::DepRanSince(d) => ("dep_ran_since", Some(("dep", json!(&**d)))),
        RunReason::WatchChanged(p) => ("watch_changed", Some(("paths", json!(p)))),
        RunReason::WatchOwed => ("watch_owed", None),
        RunReason::WatchNeededBy(m) => ("watch_needed_by", Some(("dep", json!(&**m)))),
        RunReason::WatchDepChanged => ("watch_dep_changed", None),
    };
    let mut v = json!({ "reason": reason });
    if let Some((key, value)) = about {
        v[key] = value;
    }
    v
}

/// A path as JSON text (bytes that are not UTF-8 replaced by U+FFFD, as in output lines).
fn lossy(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

fn file(change: &FileChange) -> &str {
    match change {
        FileChange::Added(p) | FileChange::Removed(p) | FileChange::Changed(p) => p,
    }
}

fn watch_problem(problem: &WatchProblem) -> Value {
    match problem {
        WatchProblem::TooManyWatches { path, limit } => {
            json!({ "path": lossy(path), "problem": "max_user_watches", "limit": limit })
        }
        WatchProblem::TooManyInstances { path, limit } => {
            json!({ "path": lossy(path), "problem": "max_user_instances", "limit": limit })
        }
        WatchProblem::Other { path, error } => json!({ "path": lossy(path), "problem": "other", "error": error }),
        WatchProblem::NoThread { error } => json!({ "problem": "no_thread", "error": error }),
    }
}

fn guard(exit: Option<crate::events::ChildExit>, news: &GuardNews) -> Value {
    let how = exit.map(text::exit);
    match news {
        GuardNews::Replaced => json!({ "exit": how, "replaced": true }),
        GuardNews::GivenUp { times, within } => {
            json!({ "exit": how, "replaced": false, "times": times, "within_s": within.as_secs_f64() })
        }
        GuardNews::NotReplaced { error } => json!({ "exit": how, "replaced": false, "error": error }),
    }
}

impl<W: Write + Send> Json<W> {
    /// Output, the bulk of most streams, written directly: the same object [`Json::write`] would make for each line
    /// (keys in the same order), with what the lines share (task, stream, time) encoded once per event.
    fn output(&mut self, at: SystemTime, task: &str, stream: Stream, text: &[u8]) {
        if self.failed {
            return;
        }
        let stream = if stream == Stream::Stdout { "stdout" } else { "stderr" };
        let time = humantime::format_rfc3339_micros(at);
        let mut tail = Vec::with_capacity(task.len() + 80);
        if let Some(shard) = &self.shard {
            tail.extend_from_slice(b",\"shard\":");
            let _ = serde_json::to_writer(&mut tail, shard);
        }
        tail.extend_from_slice(format!(",\"stream\":\"{stream}\",\"task\":").as_bytes());
        let _ = serde_json::to_writer(&mut tail, task);
        tail.extend_from_slice(format!(",\"time\":\"{time}\",\"version\":{VERSION}}}\n").as_bytes());
        let mut buf = Vec::with_capacity(text.len() + (tail.len() + 32) * 4);
        for line in text.split(|&b| b == b'\n') {
            buf.extend_from_slice(b"{\"event\":\"output\",\"line\":");
            let _ = serde_json::to_writer(&mut buf, &String::from_utf8_lossy(line));
            buf.extend_from_slice(&tail);
        }
        let written = self.out.write_all(&buf);
        self.check(written);
    }

    /// Every object of a (non-output) event, one per line: the objects the timings read too ([`objects`]).
    fn write(&mut self, at: SystemTime, event: &Event) {
        for object in objects(at, event, self.shard.as_deref()) {
            let mut text = object.to_string();
            text.push('\n');
            if !self.failed {
                let written = self.out.write_all(text.as_bytes());
                self.check(written);
            }
        }
    }
}

impl<W: Write + Send> Reporter for Json<W> {
    fn event(&mut self, at: SystemTime, event: &Event) {
        match event {
            // One object per line of output, as the schema says.
            Event::Output { task, stream, text } => self.output(at, task, *stream, text),
            _ => self.write(at, event),
        }
    }

    fn flush(&mut self) {
        if !self.failed {
            let flushed = self.out.flush();
            self.check(flushed);
        }
    }

    fn trouble(&mut self) -> Option<Trouble> {
        self.trouble.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_keeps_its_words_and_gains_a_kind_and_fields_of_its_own() {
        let diff = crate::events::PlanDiff { added: vec!["a".into()], changed: vec![], removed: vec!["b".into()] };
        let (name, v) = fields(&Event::ReloadApplied { file: "Irun.toml".into(), diff, secrets: Default::default() });
        assert_eq!(name, "notice");
        assert_eq!(v["message"], "Irun.toml changed: added a; removed b");
        assert_eq!((&v["kind"], &v["task"]), (&json!("reload_applied"), &Value::Null));
        assert_eq!((&v["added"], &v["changed"], &v["removed"]), (&json!(["a"]), &json!([]), &json!(["b"])));

        let reason = RunReason::DepRan("setup".into());
        let (name, v) = fields(&Event::TaskWillRun { task: "test".into(), reason });
        assert_eq!(name, "notice");
        assert_eq!((&v["task"], &v["message"]), (&json!("test"), &json!("will run: dep `setup` ran")));
        assert_eq!((&v["kind"], &v["reason"], &v["dep"]), (&json!("will_run"), &json!("dep_ran"), &json!("setup")));

        let orphan = |task: Option<&str>| Event::OrphanAdopted {
            pid: 42,
            program: "sleep".into(),
            command: "sleep 300".into(),
            task: task.map(TaskName::from),
        };
        let (_, v) = fields(&orphan(Some("web")));
        assert_eq!((&v["kind"], &v["pid"], &v["task"]), (&json!("orphan_adopted"), &json!(42), &json!("web")));
        assert_eq!((&v["program"], &v["command"]), (&json!("sleep"), &json!("sleep 300")));
        assert!(v["message"].as_str().unwrap().starts_with("process 42 (sleep 300) left its task's process group"));
        let (_, v) = fields(&orphan(None));
        assert!(v["task"].is_null() && v["message"].as_str().unwrap().contains("is not known"), "{v}");
    }

    #[test]
    fn test_reports_give_their_counts_and_a_notice_per_problem() {
        let mut reports = TestReports::default();
        let xml = "<testsuite><testcase name=\"a\"/><testcase name=\"b\"><failure/></testcase>\
                   <testcase name=\"c\"><error/></testcase><testcase name=\"d\"><skipped/></testcase></testsuite>";
        reports.read("reports/junit.xml", xml.as_bytes()).unwrap();
        reports
            .problems
            .push(Problem::Unreadable { path: "reports/x.xml".into(), error: "bad at line 1 column 2".into() });
        reports.problems.push(Problem::Missing { patterns: vec!["reports/*.xml".into()] });
        let mut out = Json::new(Vec::new(), "test");
        out.event(SystemTime::UNIX_EPOCH, &Event::TestReports { task: "test".into(), reports: reports.into() });
        let lines: Vec<Value> =
            String::from_utf8(out.out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!((&lines[0]["event"], &lines[0]["task"]), (&json!("tests"), &json!("test")));
        assert_eq!(lines[0]["files"], json!(["reports/junit.xml"]));
        let counts = ["tests", "failures", "errors", "skipped"].map(|k| lines[0][k].as_u64().unwrap());
        assert_eq!(counts, [4, 1, 1, 1]);
        assert_eq!((&lines[1]["event"], &lines[1]["kind"]), (&json!("notice"), &json!("junit_unreadable")));
        assert_eq!(
            (&lines[1]["path"], &lines[1]["error"]),
            (&json!("reports/x.xml"), &json!("bad at line 1 column 2"))
        );
        assert_eq!(
            lines[1]["message"],
            "warning: cannot read the JUnit report reports/x.xml of task `test`: bad at line 1 column 2"
        );
        assert_eq!((&lines[2]["kind"], &lines[2]["task"]), (&json!("junit_missing"), &json!("test")));
        assert_eq!(lines[2]["patterns"], json!(["reports/*.xml"]));
        assert!(lines.iter().all(|l| l["version"] == 1 && l["time"].is_string()), "{lines:?}");
    }

    #[test]
    fn the_run_says_how_it_holds_its_processes() {
        let (name, v) = fields(&Event::Isolation { cgroup: Some("/sys/fs/cgroup/irun-1-2".into()) });
        assert_eq!(
            (name, &v["isolation"], &v["cgroup"]),
            ("processes", &json!("cgroup"), &json!("/sys/fs/cgroup/irun-1-2"))
        );
        let (_, v) = fields(&Event::Isolation { cgroup: None });
        assert_eq!((&v["isolation"], &v["cgroup"]), (&json!("process_group"), &Value::Null));
    }

    #[test]
    fn a_path_that_is_not_utf_8_is_written_with_replacement_characters() {
        use std::os::unix::ffi::OsStrExt;
        let root = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/nu\xff"));
        let (_, v) = fields(&Event::Watching { folders: 1, root });
        assert_eq!(v["root"], "/tmp/nu\u{fffd}");
    }

    #[test]
    fn output_lines_are_written_exactly_as_the_general_path_writes_them() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_764_500_000_123_456);
        let task: crate::events::TaskName = "web \"1\"".into();
        let text = b"plain\n\"quoted\" \\ \t tab\n\xff not utf-8\n".to_vec();
        for shard in [None, Some("2/3".to_string())] {
            let mut fast = Json::new(Vec::new(), "test").with_shard(shard.clone());
            fast.event(at, &Event::Output { task: task.clone(), stream: Stream::Stderr, text: text.clone() });
            let mut general = Json::new(Vec::new(), "test").with_shard(shard.clone());
            for line in text.split(|&b| b == b'\n') {
                general.write(at, &Event::Output { task: task.clone(), stream: Stream::Stderr, text: line.to_vec() });
            }
            assert_eq!(String::from_utf8_lossy(&fast.out), String::from_utf8_lossy(&general.out));
            assert_eq!(fast.out.iter().filter(|&&b| b == b'\n').count(), 4);
            assert_eq!(String::from_utf8_lossy(&fast.out).contains("\"shard\":\"2/3\""), shard.is_some());
        }
    }
}
