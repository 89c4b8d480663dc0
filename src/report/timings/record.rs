//! What the timings keep of a run: the events that place tasks in time, read from the JSON objects of `--events`.
//! A live run's events go through the same objects ([`crate::report::json::object`]), so a page made during a run
//! and one made later from its events file are the same page.

use serde_json::Value;

use crate::events::TaskKind;

/// One event that matters to the timings, at a time in microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) at: u64,
    /// `--partition`: the shard (`K/N`) the event came from.
    pub(crate) shard: Option<String>,
    pub(crate) what: What,
}

/// A task of the plan, as `run_started` names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planned {
    pub(crate) name: String,
    pub(crate) kind: TaskKind,
    pub(crate) deps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum What {
    RunStarted {
        jobs: usize,
        watch: bool,
        tasks: Vec<Planned>,
    },
    PlanChanged {
        jobs: usize,
        tasks: Vec<Planned>,
    },
    /// `restarted`: it replaces the cycle before, which ends unfinished.
    CycleStarted {
        cycle: u64,
        restarted: bool,
    },
    CycleFinished {
        cycle: u64,
        outcome: String,
    },
    Started {
        task: String,
        command: Option<String>,
    },
    Ready {
        task: String,
        probe: Option<String>,
    },
    Restarting {
        task: String,
        exit: String,
    },
    Stopping {
        task: String,
        reason: String,
    },
    Finished {
        task: String,
        status: String,
        reason: Option<String>,
        duration_us: u64,
    },
    /// Why a task runs (`will_run`), in words.
    WillRun {
        task: String,
        why: String,
    },
    /// What the JUnit reports a task wrote (`junit`) counted, in words.
    Tests {
        task: String,
        counts: String,
    },
    RunFinished {
        outcome: String,
    },
}

/// Why a line of an events file was not used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Unusable {
    /// Not a JSON object with `event` and `time`: not an events file, or a damaged line.
    Malformed(String),
    /// A version of the schema this irun does not know.
    Version(u64),
}

/// The record an event's JSON object makes; `Ok(None)` for events the timings do not use (output, most notices).
pub(crate) fn parse(object: &Value) -> Result<Option<Record>, Unusable> {
    let event = object.get("event").and_then(Value::as_str).ok_or_else(|| malformed("it has no `event`"))?;
    match object.get("version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(crate::report::json::VERSION) => {}
        Some(v) => return Err(Unusable::Version(v)),
        None => return Err(malformed("it has no `version`")),
    }
    let time = object.get("time").and_then(Value::as_str).ok_or_else(|| malformed("it has no `time`"))?;
    let at = humantime::parse_rfc3339(time).map_err(|e| malformed(&format!("its `time` is not RFC 3339: {e}")))?;
    let at = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let Some(what) = what(event, object)? else { return Ok(None) };
    let shard = object.get("shard").and_then(Value::as_str).map(str::to_string);
    Ok(Some(Record { at, shard, what }))
}

fn malformed(why: &str) -> Unusable {
    Unusable::Malformed(why.to_string())
}

fn what(event: &str, o: &Value) -> Result<Option<What>, Unusable> {
    let task = || text(o, "task").ok_or_else(|| malformed(&format!("its `{event}` has no `task`")));
    Ok(Some(match event {
        "run_started" => {
            What::RunStarted { jobs: jobs(o), watch: o["watch"].as_bool() == Some(true), tasks: tasks(o)? }
        }
        "plan_changed" => What::PlanChanged { jobs: jobs(o), tasks: tasks(o)? },
        "cycle_started" => What::CycleStarted {
            cycle: o["cycle"].as_u64().unwrap_or(0),
            restarted: o["restarted"].as_bool() == Some(true),
        },
        "cycle_finished" => What::CycleFinished {
            cycle: o["cycle"].as_u64().unwrap_or(0),
            outcome: text(o, "outcome").unwrap_or_default(),
        },
        "task_started" => What::Started { task: task()?, command: text(o, "command") },
        "task_ready" => What::Ready { task: task()?, probe: text(o, "probe") },
        "task_restarting" => What::Restarting { task: task()?, exit: text(o, "exit").unwrap_or_default() },
        "task_stopping" => What::Stopping { task: task()?, reason: text(o, "reason").unwrap_or_default() },
        "task_finished" => What::Finished {
            task: task()?,
            status: text(o, "status").unwrap_or_default(),
            reason: text(o, "reason"),
            duration_us: (o["duration_s"].as_f64().unwrap_or(0.0).max(0.0) * 1e6).round() as u64,
        },
        "notice" if o["kind"] == "will_run" => {
            let message = text(o, "message").unwrap_or_default();
            let why = message.strip_prefix("will run: ").unwrap_or(&message).to_string();
            What::WillRun { task: task()?, why }
        }
        "tests" => What::Tests { task: task()?, counts: test_counts(o) },
        "run_finished" => What::RunFinished { outcome: text(o, "outcome").unwrap_or_default() },
        _ => return Ok(None),
    }))
}

/// `97 test cases, 2 failed, 1 skipped`.
fn test_counts(o: &Value) -> String {
    let n = |key: &str| o[key].as_u64().unwrap_or(0);
    let mut words = format!("{} test {}", n("tests"), if n("tests") == 1 { "case" } else { "cases" });
    for (key, what) in [("failures", "failed"), ("errors", "errors"), ("skipped", "skipped")] {
        if n(key) > 0 {
            words.push_str(&format!(", {} {what}", n(key)));
        }
    }
    words
}

fn text(o: &Value, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_string)
}

fn jobs(o: &Value) -> usize {
    o["jobs"].as_u64().map_or(1, |j| j.clamp(1, 1 << 16) as usize)
}

fn tasks(o: &Value) -> Result<Vec<Planned>, Unusable> {
    let list = o["tasks"].as_array().ok_or_else(|| malformed("its `tasks` is not a list"))?;
    list.iter()
        .map(|t| {
            let name = text(t, "name").ok_or_else(|| malformed("a task of its `tasks` has no `name`"))?;
            let kind = match t["kind"].as_str() {
                Some("service") => TaskKind::Service,
                Some("group") => TaskKind::Group,
                _ => TaskKind::Task,
            };
            let deps = t["deps"]
                .as_array()
                .map_or_else(Vec::new, |d| d.iter().filter_map(Value::as_str).map(str::to_string).collect());
            Ok(Planned { name, kind, deps })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(event: &str, rest: Value) -> Value {
        let mut v = json!({ "version": 1, "time": "2026-12-06T10:00:01.000250Z", "event": event });
        if let (Some(o), Value::Object(rest)) = (v.as_object_mut(), rest) {
            o.extend(rest);
        }
        v
    }

    #[test]
    fn a_started_task_keeps_its_command_and_its_time_in_microseconds() {
        let r = parse(&line("task_started", json!({ "task": "t", "pid": 7, "command": "make all" }))).unwrap().unwrap();
        assert_eq!(r.at % 1_000_000, 250);
        assert_eq!(r.what, What::Started { task: "t".into(), command: Some("make all".into()) });
    }

    #[test]
    fn a_reason_to_run_is_kept_in_words() {
        let v = line(
            "notice",
            json!({ "kind": "will_run", "task": "t", "message": "will run: never ran", "reason": "never_ran" }),
        );
        assert_eq!(parse(&v).unwrap().unwrap().what, What::WillRun { task: "t".into(), why: "never ran".into() });
    }

    #[test]
    fn a_tasks_test_counts_are_kept_in_words() {
        let v = line(
            "tests",
            json!({ "task": "t", "files": ["r.xml"], "tests": 97, "failures": 2, "errors": 0, "skipped": 1 }),
        );
        let what = parse(&v).unwrap().unwrap().what;
        assert_eq!(what, What::Tests { task: "t".into(), counts: "97 test cases, 2 failed, 1 skipped".into() });
    }

    #[test]
    fn output_and_other_notices_are_passed_over() {
        assert_eq!(parse(&line("output", json!({ "task": "t", "line": "x" }))).unwrap(), None);
        assert_eq!(parse(&line("notice", json!({ "kind": "killed", "task": "t" }))).unwrap(), None);
    }

    #[test]
    fn what_is_not_an_event_says_why() {
        assert!(matches!(parse(&json!({ "a": 1 })), Err(Unusable::Malformed(_))));
        let mut v = line("run_finished", json!({ "outcome": "passed" }));
        v["version"] = json!(2);
        assert_eq!(parse(&v), Err(Unusable::Version(2)));
        v["version"] = json!(1);
        v["time"] = json!("yesterday");
        assert!(matches!(parse(&v), Err(Unusable::Malformed(m)) if m.contains("RFC 3339")));
        assert!(matches!(parse(&line("task_started", json!({}))), Err(Unusable::Malformed(m)) if m.contains("`task`")));
    }

    #[test]
    fn the_plan_gives_kinds_and_deps() {
        let v = line(
            "run_started",
            json!({ "jobs": 3, "watch": false, "tasks": [
                { "name": "svc", "kind": "service", "deps": [] },
                { "name": "t", "kind": "task", "deps": ["svc"] },
            ] }),
        );
        let What::RunStarted { jobs, tasks, .. } = parse(&v).unwrap().unwrap().what else { panic!() };
        assert_eq!(jobs, 3);
        assert_eq!(tasks[0].kind, TaskKind::Service);
        assert_eq!(tasks[1].deps, ["svc"]);
    }
}
