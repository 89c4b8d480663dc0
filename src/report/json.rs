//! `--json` / `--events FILE`: every event as one JSON object per line, for machines.
//!
//! The schema is versioned (`"version": 1`) and documented in README.md. Every object has `version`, `time`
//! (RFC 3339, UTC, microseconds) and `event`; the other fields depend on the event.

use std::io::Write;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::events::{Event, Outcome, RunOutcome, Stream, TaskKind};
use crate::report::text;
use crate::report::{Reporter, Trouble};

pub const VERSION: u32 = 1;

pub struct Json<W: Write + Send> {
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
    pub fn new(out: W, dest: &str) -> Self {
        Json { out, dest: dest.to_string(), failed: false, trouble: None, shard: None }
    }

    pub fn with_shard(mut self, shard: Option<String>) -> Self {
        self.shard = shard;
        self
    }

    fn check(&mut self, written: std::io::Result<()>) {
        if let Err(e) = written {
            if !std::mem::replace(&mut self.failed, true) {
                self.trouble = Some(Trouble::of(&e, "event stream", &self.dest));
            }
        }
    }
}

fn kind(k: TaskKind) -> &'static str {
    match k {
        TaskKind::Task => "task",
        TaskKind::Service => "service",
        TaskKind::Group => "group",
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
                "kind": kind(t.kind),
                "deps": t.deps.iter().map(|d| &**d).collect::<Vec<_>>(),
                "output": if t.quiet { "on-failure" } else { "live" },
            })
        })
        .collect()
}

/// The event's own fields.
pub fn fields(event: &Event) -> (&'static str, Value) {
    match event {
        Event::RunStarted { tasks, jobs, watch } => {
            ("run_started", json!({ "jobs": jobs, "watch": watch, "tasks": planned(tasks) }))
        }
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
        Event::TaskStarted { task, pid, port: None } => ("task_started", json!({ "task": &**task, "pid": pid })),
        Event::TaskStarted { task, pid, port: Some(port) } => {
            ("task_started", json!({ "task": &**task, "pid": pid, "port": port }))
        }
        Event::TaskReady { task, after, probe } => {
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
        Event::TaskStopping { task, reason } => {
            ("task_stopping", json!({ "task": &**task, "reason": text::stop_reason(*reason) }))
        }
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
        Event::Notice { task, message } => ("notice", json!({ "task": task.as_deref(), "message": message })),
        // A notice, as before this event had a type of its own.
        Event::Interrupted { .. } => {
            ("notice", json!({ "task": null, "message": text::interrupted(event).unwrap_or_default() }))
        }
        Event::RunFinished { outcome: o, elapsed } => {
            let mut v = outcome(*o);
            v["duration_s"] = json!(elapsed.as_secs_f64());
            ("run_finished", v)
        }
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

    fn write(&mut self, at: SystemTime, event: &Event) {
        let (name, mut v) = fields(event);
        let mut line = serde_json::Map::new();
        line.insert("version".into(), json!(VERSION));
        line.insert("time".into(), json!(humantime::format_rfc3339_micros(at).to_string()));
        line.insert("event".into(), json!(name));
        if let Some(shard) = &self.shard {
            line.insert("shard".into(), json!(shard));
        }
        if let Value::Object(rest) = v.take() {
            line.extend(rest);
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        if !self.failed {
            let written = self.out.write_all(text.as_bytes());
            self.check(written);
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
