//! `--trace FILE`: the timings in Chrome's trace-event format (JSON), which Perfetto and chrome://tracing open.
//! Each section is a process, each lane a thread: a complete event (`X`) per task on its job slot's lane, a service's
//! life on its own lane with its start (until ready) nested inside, readiness and restarts as instant events, tasks
//! that ran no process as instant events, and a flow from each dep to the task that waited for it.

use serde_json::{Value, json};

use super::model::{Bar, Lane, Section};
use crate::events::TaskKind;

/// Thread ids: services' lanes, then the slots', then the lane of tasks that ran no process.
const SLOT_TID: u64 = 1001;
const NO_PROCESS_TID: u64 = 9999;

pub(crate) fn trace(sections: &[Section]) -> String {
    let origin = sections.iter().map(|s| s.start).min().unwrap_or(0);
    let mut events = Vec::new();
    let mut flow = 0u64;
    for (i, s) in sections.iter().enumerate() {
        let pid = i as u64 + 1;
        let meta = |name: &str, tid: u64, args: Value| json!({ "ph": "M", "name": name, "pid": pid, "tid": tid, "ts": 0, "args": args });
        events.push(meta("process_name", 0, json!({ "name": s.title })));
        events.push(meta("process_sort_index", 0, json!({ "sort_index": i })));
        for (n, name) in s.services.iter().enumerate() {
            events.push(meta("thread_name", tid(Lane::Service(n)), json!({ "name": format!("service {name}") })));
        }
        for slot in 0..s.slots {
            events.push(meta("thread_name", tid(Lane::Slot(slot)), json!({ "name": format!("slot {}", slot + 1) })));
        }
        if s.bars.iter().any(|b| b.lane == Lane::NoProcess) {
            events.push(meta("thread_name", NO_PROCESS_TID, json!({ "name": "no process" })));
        }
        for bar in &s.bars {
            bar_events(&mut events, s, bar, pid, origin);
        }
        flows(&mut events, s, pid, origin, &mut flow);
    }
    let doc = json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": { "generator": concat!("irun ", env!("CARGO_PKG_VERSION")) },
    });
    let mut text = doc.to_string();
    text.push('\n');
    text
}

fn tid(lane: Lane) -> u64 {
    match lane {
        Lane::Service(n) => 1 + n as u64,
        Lane::Slot(n) => SLOT_TID + n as u64,
        Lane::NoProcess => NO_PROCESS_TID,
    }
}

/// Where a bar is drawn: from its start (or the section's, if it began before) to its end (or the section's).
fn span(s: &Section, bar: &Bar) -> (u64, u64) {
    let from = bar.started.unwrap_or(bar.finished.unwrap_or(s.end)).max(s.start);
    (from, bar.finished.unwrap_or(s.end).max(from))
}

fn args(s: &Section, bar: &Bar) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut a = json!({ "status": bar.status, "kind": bar.kind.as_str(), "critical": bar.critical });
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            a[key] = v;
        }
    };
    put("detail", bar.detail.clone().map(Value::from));
    put("command", bar.command.clone().map(Value::from));
    put("why", bar.why.clone().map(Value::from));
    put("probe", bar.probe.clone().map(Value::from));
    put("waited_for_service_ms", bar.queued.zip(bar.satisfied).map(|(q, r)| json!(ms(r.saturating_sub(q)))));
    put("waited_for_slot_ms", bar.satisfied.zip(bar.started).map(|(r, t)| json!(ms(t.saturating_sub(r)))));
    if bar.carried {
        a["started_before"] = json!(s.title);
    }
    a
}

fn bar_events(events: &mut Vec<Value>, s: &Section, bar: &Bar, pid: u64, origin: u64) {
    let (from, to) = span(s, bar);
    let lane = tid(bar.lane);
    let ts = |t: u64| t.saturating_sub(origin);
    if bar.lane == Lane::NoProcess {
        let name = format!("{} ({})", bar.name, bar.status.replace('_', " "));
        events.push(json!({ "ph": "i", "s": "t", "name": name, "cat": bar.kind.as_str(), "ts": ts(to), "pid": pid, "tid": lane, "args": args(s, bar) }));
        return;
    }
    events.push(json!({
        "ph": "X", "name": bar.name, "cat": bar.kind.as_str(), "ts": ts(from), "dur": to - from,
        "pid": pid, "tid": lane, "args": args(s, bar),
    }));
    if bar.kind != TaskKind::Service {
        return;
    }
    if let Some(ready) = bar.ready.filter(|&r| r >= from && r <= to && !bar.carried) {
        events.push(json!({ "ph": "X", "name": "starting", "cat": "service", "ts": ts(from), "dur": ready - from, "pid": pid, "tid": lane, "args": { "probe": bar.probe } }));
        events.push(json!({ "ph": "i", "s": "t", "name": format!("{} ready", bar.name), "cat": "readiness", "ts": ts(ready), "pid": pid, "tid": lane }));
    }
    for &r in bar.restarts.iter().filter(|&&r| r >= from && r <= to) {
        events.push(json!({ "ph": "i", "s": "t", "name": format!("{} restarting", bar.name), "cat": "service", "ts": ts(r), "pid": pid, "tid": lane }));
    }
    if let (Some(slot), false) = (bar.slot, bar.carried) {
        let until = bar.ready.or(bar.finished).unwrap_or(s.end).clamp(from, to);
        events.push(json!({
            "ph": "X", "name": format!("{} (starting)", bar.name), "cat": "service", "ts": ts(from), "dur": until - from,
            "pid": pid, "tid": tid(Lane::Slot(slot)),
        }));
    }
}

/// A flow from each dep, where it became available, to the start of the task that waited for it.
fn flows(events: &mut Vec<Value>, s: &Section, pid: u64, origin: u64, id: &mut u64) {
    let by_name: std::collections::HashMap<&str, &Bar> = s.bars.iter().map(|b| (b.name.as_str(), b)).collect();
    for bar in s.bars.iter().filter(|b| b.lane != Lane::NoProcess && !b.carried) {
        let Some(started) = bar.started else { continue };
        for dep in deps_of(s, bar) {
            let Some(d) = by_name.get(dep.as_str()).filter(|d| d.lane != Lane::NoProcess && !d.carried) else {
                continue;
            };
            let (from, to) = span(s, d);
            let available = if d.kind == TaskKind::Service { d.ready } else { d.finished };
            let Some(at) = available.filter(|&a| a <= started) else { continue };
            // Inside the dep's slice (a flow binds to the slice around it), and the task's own start.
            let at = at.saturating_sub(1).clamp(from, to);
            *id += 1;
            let common = json!({ "name": "dep", "cat": "dependency", "id": *id, "pid": pid });
            let mut start = common.clone();
            start["ph"] = json!("s");
            start["ts"] = json!(at.saturating_sub(origin));
            start["tid"] = json!(tid(d.lane));
            let mut end = common;
            end["ph"] = json!("f");
            end["bp"] = json!("e");
            end["ts"] = json!(started.saturating_sub(origin));
            end["tid"] = json!(tid(bar.lane));
            events.push(start);
            events.push(end);
        }
    }
}

/// The deps a bar's task waited for, as the section knows them (the bars of its deps, seen through nothing else:
/// groups have no bar).
fn deps_of<'a>(s: &'a Section, bar: &'a Bar) -> impl Iterator<Item = &'a String> + 'a {
    s.deps.get(&bar.name).into_iter().flatten()
}
