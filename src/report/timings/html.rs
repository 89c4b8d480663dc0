//! The timings page: one self-contained HTML file (its style and script inline, no network, no fonts) with a
//! timeline per section, a bar per task on its lane, and a sortable table below. The bars are in the HTML itself; the
//! script adds the details shown on hover and sorts the tables.

use std::fmt::Write;

use serde_json::json;

use super::model::{Bar, Lane, Section};
use crate::events::TaskKind;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// The page for these sections.
pub(crate) fn page(sections: &[Section]) -> String {
    let mut out = String::with_capacity(16 * 1024 + sections.iter().map(|s| s.bars.len() * 700).sum::<usize>());
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>irun timings</title>\n<style>\n");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<header>\n<h1>irun timings</h1>\n");
    out.push_str(LEGEND);
    out.push_str("</header>\n");
    if sections.is_empty() {
        out.push_str("<p class=\"empty\">The events hold no run.</p>\n");
    }
    for (i, section) in sections.iter().enumerate() {
        write_section(&mut out, i, section);
    }
    out.push_str("<div id=\"tip\" role=\"tooltip\" hidden></div>\n");
    let _ = writeln!(out, "<script type=\"application/json\" id=\"irun-data\">{}</script>", data(sections));
    out.push_str("<script>\n");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

const LEGEND: &str = "<div class=\"legend\">\
<span class=\"key st-ok\">ok</span>\
<span class=\"key st-failed\">failed</span>\
<span class=\"key st-timed_out\">timed out</span>\
<span class=\"key st-cancelled\">cancelled</span>\
<span class=\"key st-skipped\">skipped</span>\
<span class=\"key st-up_to_date\">up to date</span>\
<span class=\"key st-cached\">cached</span>\
<span class=\"key st-running\">running</span>\
<span class=\"key seg-starting\">service starting (waiting for readiness)</span>\
<span class=\"key seg-serving\">service ready</span>\
<span class=\"key wait-readiness\">waiting for a service</span>\
<span class=\"key wait-slot\">waiting for a job slot</span>\
<span class=\"key crit\">critical path</span>\
</div>\n";

fn write_section(out: &mut String, i: usize, s: &Section) {
    let span = s.end.saturating_sub(s.start).max(1);
    let ran = s.bars.iter().filter(|b| b.lane != Lane::NoProcess).count();
    let outcome = s.outcome.as_deref().unwrap_or("not finished");
    let _ = writeln!(
        out,
        "<section class=\"run\" id=\"s{i}\" data-title=\"{}\">\n<h2>{} <small>{} in {} · {} tasks, {} ran a process · \
         -j{}</small></h2>",
        esc(&s.title),
        esc(&s.title),
        esc(outcome),
        secs(span),
        s.bars.len(),
        ran,
        s.jobs
    );
    if !s.critical.is_empty() {
        let chain: Vec<String> = s.critical.iter().map(|c| format!("<b>{}</b>", esc(c))).collect();
        let _ = writeln!(out, "<p class=\"critical\">Critical path: {}</p>", chain.join(" → "));
    }
    let lanes = s.services.len() + s.slots + usize::from(s.bars.iter().any(|b| b.lane == Lane::NoProcess));
    let _ = writeln!(out, "<div class=\"chart\" style=\"--lanes:{lanes}\">");
    axis(out, span);
    for (n, name) in s.services.iter().enumerate() {
        lane(out, s, i, (&format!("service:{name}"), name), Lane::Service(n), span);
    }
    for slot in 0..s.slots {
        lane(out, s, i, (&format!("slot-{}", slot + 1), &format!("slot {}", slot + 1)), Lane::Slot(slot), span);
    }
    if s.bars.iter().any(|b| b.lane == Lane::NoProcess) {
        lane(out, s, i, ("none", "no process"), Lane::NoProcess, span);
    }
    out.push_str("</div>\n");
    table(out, i, s);
    out.push_str("</section>\n");
}

/// Ticks at a round step, about eight across.
fn axis(out: &mut String, span: u64) {
    let step = [1u64, 2, 5]
        .iter()
        .flat_map(|m| (0..12).map(move |e| m * 10u64.pow(e)))
        .filter(|&s| span / s <= 8)
        .min()
        .unwrap_or(span);
    out.push_str("<div class=\"axis\"><div class=\"label\"></div><div class=\"track\">");
    let mut t = 0;
    while t <= span {
        let _ = write!(out, "<span class=\"tick\" style=\"left:{}%\">{}</span>", pct(t, span), secs(t));
        t += step;
    }
    out.push_str("</div></div>\n");
}

/// One lane, `(id, label)`: its bars, the waits before them and, on a slot's lane, the services that held it.
fn lane(out: &mut String, s: &Section, section: usize, (id, label): (&str, &str), which: Lane, span: u64) {
    let class = if matches!(which, Lane::Service(_)) { "lane service" } else { "lane" };
    let _ = write!(
        out,
        "<div class=\"{class}\" data-lane=\"{}\"><div class=\"label\" title=\"{}\">{}</div><div class=\"track\">",
        esc(id),
        esc(label),
        esc(label)
    );
    if let Lane::Slot(slot) = which {
        holds(out, s, slot, span);
    }
    for (n, bar) in s.bars.iter().enumerate().filter(|(_, b)| b.lane == which) {
        waits(out, s, bar, span);
        write_bar(out, s, section, n, id, bar, span);
    }
    out.push_str("</div></div>\n");
}

/// The slot a service held while it started, on that slot's lane.
fn holds(out: &mut String, s: &Section, slot: usize, span: u64) {
    for bar in s.bars.iter().filter(|b| b.slot == Some(slot) && !b.carried) {
        let (Some(from), to) = (bar.started, bar.ready.or(bar.finished).unwrap_or(s.end)) else { continue };
        let _ = write!(
            out,
            "<div class=\"hold\" data-task=\"{}\" data-lane=\"slot-{}\" style=\"left:{}%;width:{}%\"></div>",
            esc(&bar.name),
            slot + 1,
            pct(from.saturating_sub(s.start), span),
            pct(to.saturating_sub(from), span)
        );
    }
}

fn waits(out: &mut String, s: &Section, bar: &Bar, span: u64) {
    let (Some(queued), Some(satisfied), Some(started)) = (bar.queued, bar.satisfied, bar.started) else { return };
    for (class, from, to) in [("readiness", queued, satisfied), ("slot", satisfied, started)] {
        if to > from {
            let _ = write!(
                out,
                "<div class=\"wait {class}\" data-task=\"{}\" style=\"left:{}%;width:{}%\"></div>",
                esc(&bar.name),
                pct(from.saturating_sub(s.start), span),
                pct(to - from, span)
            );
        }
    }
}

fn write_bar(out: &mut String, s: &Section, section: usize, n: usize, lane: &str, bar: &Bar, span: u64) {
    let from = bar.started.unwrap_or(bar.finished.unwrap_or(s.end)).max(s.start);
    let to = bar.finished.unwrap_or(s.end).max(from);
    let mut class = format!("bar st-{} k-{}", css_word(&bar.status), bar.kind.as_str());
    if bar.critical {
        class.push_str(" crit");
    }
    if bar.carried {
        class.push_str(" carried");
    }
    let _ = write!(
        out,
        "<div class=\"{class}\" data-task=\"{}\" data-lane=\"{}\" data-status=\"{}\" data-i=\"{section}.{n}\" \
         tabindex=\"0\" aria-label=\"{}: {}\" style=\"left:{}%;width:{}%\">",
        esc(&bar.name),
        esc(lane),
        esc(&bar.status),
        esc(&bar.name),
        esc(&bar.status),
        pct(from - s.start, span),
        pct(to - from, span)
    );
    if bar.kind == TaskKind::Service && to > from {
        segments(out, bar, from, to);
    }
    let _ = write!(out, "<span>{}</span></div>", esc(&bar.name));
}

/// A service's life inside its bar: starting (until ready), ready, stopping; restarts marked.
fn segments(out: &mut String, bar: &Bar, from: u64, to: u64) {
    let len = to - from;
    let at = |t: u64| t.clamp(from, to) - from;
    let ready = bar.ready.map_or(to, at_abs(from, to));
    let stopping = bar.stopping.map_or(to, at_abs(from, to));
    for (class, a, b) in [("starting", from, ready), ("serving", ready, stopping), ("stopping", stopping, to)] {
        if b > a {
            let _ = write!(
                out,
                "<i class=\"seg {class}\" style=\"left:{}%;width:{}%\"></i>",
                pct(at(a), len),
                pct(b - a, len)
            );
        }
    }
    for &r in bar.restarts.iter().chain(bar.ready.iter()) {
        let class = if Some(r) == bar.ready { "mark ready" } else { "mark restart" };
        if (from..=to).contains(&r) {
            let _ = write!(out, "<i class=\"{class}\" style=\"left:{}%\"></i>", pct(at(r), len));
        }
    }
}

fn at_abs(from: u64, to: u64) -> impl Fn(u64) -> u64 {
    move |t| t.clamp(from, to)
}

fn table(out: &mut String, section: usize, s: &Section) {
    let _ = writeln!(
        out,
        "<table class=\"tasks\" data-section=\"{section}\">\n<thead><tr><th data-sort=\"text\">task</th>\
         <th data-sort=\"text\">kind</th><th data-sort=\"text\">status</th><th data-sort=\"text\">lane</th>\
         <th data-sort=\"num\">start</th><th data-sort=\"num\">waited for a service</th>\
         <th data-sort=\"num\">waited for a slot</th><th data-sort=\"num\">duration</th>\
         <th data-sort=\"text\">why it ran</th><th data-sort=\"text\">tests</th><th data-sort=\"text\">command</th></tr></thead>\n<tbody>"
    );
    for bar in &s.bars {
        let d = Details::of(s, bar);
        let status = match &bar.detail {
            Some(detail) => format!("{} ({})", bar.status.replace('_', " "), detail),
            None => bar.status.replace('_', " "),
        };
        let _ = writeln!(
            out,
            "<tr data-task=\"{}\" class=\"st-{}{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}<td>{}</td>\
             <td>{}</td><td><code>{}</code></td></tr>",
            esc(&bar.name),
            css_word(&bar.status),
            if bar.critical { " crit" } else { "" },
            esc(&bar.name),
            bar.kind.as_str(),
            esc(&status),
            esc(&lane_label(s, bar)),
            num(d.start),
            num(d.wait_ready),
            num(d.wait_slot),
            num(d.duration),
            esc(bar.why.as_deref().unwrap_or("")),
            esc(bar.tests.as_deref().unwrap_or("")),
            esc(bar.command.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// A bar's numbers, in microseconds from the section's start.
struct Details {
    start: Option<u64>,
    wait_ready: Option<u64>,
    wait_slot: Option<u64>,
    duration: Option<u64>,
}

impl Details {
    fn of(s: &Section, bar: &Bar) -> Details {
        let end = bar.finished.unwrap_or(s.end);
        Details {
            start: bar.started.map(|t| t.saturating_sub(s.start)),
            wait_ready: bar.queued.zip(bar.satisfied).map(|(q, r)| r.saturating_sub(q)),
            wait_slot: bar.satisfied.zip(bar.started).map(|(r, t)| t.saturating_sub(r)),
            duration: bar.started.map(|t| end.saturating_sub(t.max(s.start))),
        }
    }
}

fn num(us: Option<u64>) -> String {
    match us {
        Some(us) => format!("<td data-v=\"{us}\">{}</td>", secs(us)),
        None => "<td data-v=\"-1\"></td>".to_string(),
    }
}

fn lane_label(s: &Section, bar: &Bar) -> String {
    match bar.lane {
        Lane::Slot(n) => format!("slot {}", n + 1),
        Lane::Service(n) => format!("service {}", s.services.get(n).map_or("", String::as_str)),
        Lane::NoProcess => "none".to_string(),
    }
}

/// What the script shows on hover, per section and bar (in the order of the bars' `data-i`).
fn data(sections: &[Section]) -> String {
    let v: Vec<_> = sections
        .iter()
        .map(|s| {
            s.bars
                .iter()
                .map(|b| {
                    let d = Details::of(s, b);
                    let s_of = |us: Option<u64>| us.map(|us| us as f64 / 1e6);
                    json!({
                        "name": b.name, "kind": b.kind.as_str(), "status": b.status, "detail": b.detail,
                        "lane": lane_label(s, b), "start_s": s_of(d.start), "duration_s": s_of(d.duration),
                        "waited_for_service_s": s_of(d.wait_ready), "waited_for_slot_s": s_of(d.wait_slot),
                        "ready_s": s_of(b.ready.map(|r| r.saturating_sub(s.start))), "probe": b.probe,
                        "command": b.command, "why": b.why, "tests": b.tests, "restarts": b.restarts.len(),
                        "stop_reason": b.stop_reason, "critical": b.critical, "carried": b.carried,
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    // Inside <script>: no `<` at all, so no `</script>` or `<!--` can end it early.
    serde_json::to_string(&v).unwrap_or_default().replace('<', "\\u003c")
}

/// A status as a class name: letters, digits and `_` only.
fn css_word(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn pct(part: u64, whole: u64) -> String {
    format!("{:.4}", part as f64 * 100.0 / whole.max(1) as f64)
}

/// `0.25 s`, `12.0 s`, `3 m 20 s`.
pub(crate) fn secs(us: u64) -> String {
    let s = us as f64 / 1e6;
    if s >= 120.0 {
        format!("{} m {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 0.1 || us == 0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", us as f64 / 1e3)
    }
}

/// Text safe in HTML content and in double- or single-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_run_cannot_break_out_of_the_page() {
        assert_eq!(esc("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        let bar = Bar { command: Some("echo '</script><script>alert(1)</script>'".into()), ..test_bar("t") };
        let s = Section {
            title: "run".into(),
            start: 0,
            end: 10,
            jobs: 1,
            outcome: None,
            slots: 1,
            services: vec![],
            bars: vec![bar],
            critical: vec![],
            deps: Default::default(),
        };
        let html = page(&[s]);
        assert_eq!(html.matches("</script>").count(), 2, "only the page's own two scripts end: {html}");
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(0), "0.00 s");
        assert_eq!(secs(1_500), "1.5 ms");
        assert_eq!(secs(250_000), "0.25 s");
        assert_eq!(secs(12_340_000), "12.3 s");
        assert_eq!(secs(200_000_000), "3 m 20 s");
    }

    fn test_bar(name: &str) -> Bar {
        let times = Bar {
            started: Some(1),
            finished: Some(5),
            queued: Some(0),
            satisfied: Some(0),
            ..Bar::new(name, TaskKind::Task)
        };
        Bar { lane: Lane::Slot(0), status: "ok".into(), ..times }
    }
}
