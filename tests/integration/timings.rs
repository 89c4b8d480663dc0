//! `--timings`, `--trace` and `irun timings`: the page rendered in a real headless Chromium, the trace read by a
//! parser other than irun's, and a page made from an events file that is the page of the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::{Output, Project};

/// A service (ready once it says so), a client after it and a setup task, parallel tasks, a failure and what it
/// blocks, and a group: every kind of bar.
const MIXED: &str = r#"
[tasks.svc]
cmd = "echo booting; sleep 0.3; echo up; exec sleep 100"
daemon = true
ready = { log = "up" }
[tasks.setup]
cmd = "sleep 0.1"
[tasks.a]
cmd = "sleep 0.2"
deps = ["setup"]
[tasks.b]
cmd = "sleep 0.3"
deps = ["setup"]
[tasks.c]
cmd = "sleep 0.1"
deps = ["setup"]
[tasks.client]
cmd = "sleep 0.1; echo done"
deps = ["svc", "setup"]
[tasks.bad]
cmd = "echo oops >&2; exit 3"
deps = ["a"]
[tasks.after]
cmd = "true"
deps = ["bad"]
[tasks.all]
deps = ["client", "after", "b", "c"]
"#;

fn run_mixed(p: &Project, extra: &[&str]) -> Output {
    let out = p.irun().args(["-k", "-j2"]).args(extra).args(["all"]).run();
    assert_eq!(out.code, 1, "`bad` fails: {out:?}");
    out
}

/// Headless Chromium (Debian's `chromium`): installed with apt-get when the tests run as root, else the test says
/// how to get it.
fn chromium() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let which = || ["chromium", "chromium-browser"].iter().find_map(|name| which(name));
        if let Some(path) = which() {
            return Ok(path);
        }
        // SAFETY: geteuid only reads the process's effective user id.
        if unsafe { nix::libc::geteuid() } != 0 {
            return Err("this test renders the timings page in headless Chromium, which is not installed: install \
                        Debian's `chromium` (`sudo apt-get install chromium`), or run the tests as root and they \
                        install it"
                .into());
        }
        let apt = |args: &[&str]| Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status();
        if !apt(&["install", "-y", "-qq", "chromium"]).is_ok_and(|s| s.success()) {
            let _ = apt(&["update", "-qq"]);
            let installed = apt(&["install", "-y", "-qq", "chromium"]);
            assert!(installed.is_ok_and(|s| s.success()), "apt-get install chromium failed");
        }
        which().ok_or_else(|| "chromium is still not on PATH after apt-get install chromium".to_string())
    });
    found.clone().unwrap_or_else(|e| panic!("{e}"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Chromium on a page of the project, headless, with nothing reaching for the network and a profile of its own.
fn chromium_on(p: &Project, page: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", p.path("chromium-profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs")
}

/// Every element of a class in the DOM, as its attributes.
fn elements(dom: &str, class_start: &str) -> Vec<HashMap<String, String>> {
    let attr = regex::Regex::new(r#"([a-z-]+)="([^"]*)""#).unwrap();
    dom.split('<')
        .filter(|tag| tag.contains(&format!("class=\"{class_start}")))
        .map(|tag| {
            let tag = tag.split('>').next().unwrap_or("");
            attr.captures_iter(tag).map(|c| (c[1].to_string(), html_unescape(&c[2]))).collect()
        })
        .collect()
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Each task's process, from the events file: (start, finish) in microseconds, and whether it is a service.
fn spans(events: &str) -> HashMap<String, (u64, u64, bool)> {
    let mut started: HashMap<String, u64> = HashMap::new();
    let mut ready: HashMap<String, u64> = HashMap::new();
    let mut kinds: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let micros = |v: &serde_json::Value| {
            let t = humantime::parse_rfc3339(v["time"].as_str().unwrap()).unwrap();
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
        };
        let task = v["task"].as_str().unwrap_or("").to_string();
        match v["event"].as_str().unwrap() {
            "run_started" => {
                for t in v["tasks"].as_array().unwrap() {
                    kinds.insert(t["name"].as_str().unwrap().into(), t["kind"].as_str().unwrap().into());
                }
            }
            "task_started" => drop(started.insert(task, micros(&v))),
            "task_ready" => drop(ready.insert(task, micros(&v))),
            "task_finished" => {
                if let Some(s) = started.get(&task) {
                    let service = kinds[&task] == "service";
                    // A service holds a job slot only until it is ready.
                    let end = if service { ready.get(&task).copied().unwrap_or(micros(&v)) } else { micros(&v) };
                    out.insert(task, (*s, end, service));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_timings_page_renders_in_headless_chromium_with_one_bar_per_task_on_its_lane() {
    let p = Project::new(MIXED);
    run_mixed(&p, &["--timings=page.html", "--events", "events.jsonl"]);
    let page = p.path("page.html");
    let html = p.read("page.html");
    assert!(!html.contains("http://") && !html.contains("https://"), "self-contained: nothing from the network");
    assert!(!html.contains("<link") && !html.contains("src="), "no external style or script");

    let shown = chromium_on(&p, &page, &["--enable-logging=stderr", "--v=0", "--dump-dom"]);
    assert!(shown.status.success(), "{shown:?}");
    let dom = String::from_utf8_lossy(&shown.stdout);
    let log = String::from_utf8_lossy(&shown.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the page wrote to the console: {console:#?}");
    assert!(dom.contains("data-ready=\"1\""), "its script ran to the end: {dom}");
    assert!(!dom.contains("data-errors="), "its script hit errors: {dom}");

    let bars = elements(&dom, "bar ");
    let lane_of = |task: &str| -> String {
        let mine: Vec<_> = bars.iter().filter(|b| b["data-task"] == task).collect();
        assert_eq!(mine.len(), 1, "one bar for {task}: {bars:#?}");
        mine[0]["data-lane"].clone()
    };
    for task in ["svc", "setup", "a", "b", "c", "client", "bad", "after"] {
        lane_of(task);
    }
    assert!(bars.iter().all(|b| b["data-task"] != "all"), "a group is not a bar");
    assert_eq!(bars.len(), 8);
    assert_eq!(lane_of("svc"), "service:svc", "a service has a lane of its own");
    assert_eq!(lane_of("after"), "none", "a skipped task ran no process");
    let status = |task: &str| bars.iter().find(|b| b["data-task"] == task).unwrap()["data-status"].clone();
    assert_eq!((status("bad").as_str(), status("after").as_str(), status("a").as_str()), ("failed", "skipped", "ok"));
    // The right lane: the slots the run had (-j2), and never two processes on one at the same time, by the
    // events' own clock.
    let spans = spans(&p.read("events.jsonl"));
    let mut by_lane: HashMap<String, Vec<(u64, u64, String)>> = HashMap::new();
    let holds = elements(&dom, "hold");
    for (task, &(from, to, service)) in &spans {
        // A service holds its slot until ready: drawn there as a hold.
        let lane = match service {
            true => holds.iter().find(|h| h["data-task"] == *task).expect("the service's hold")["data-lane"].clone(),
            false => lane_of(task),
        };
        assert!(["slot-1", "slot-2"].contains(&lane.as_str()), "{task} on {lane}");
        by_lane.entry(lane).or_default().push((from, to, task.clone()));
    }
    for (lane, mut on) in by_lane {
        on.sort();
        for pair in on.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "{} and {} overlap on {lane}: {on:?}", pair[0].2, pair[1].2);
        }
    }
    // The critical path is marked, and the tasks' table can be sorted.
    assert!(dom.contains("class=\"bar st-ok k-task crit"), "{dom}");
    assert!(elements(&dom, "tasks").len() == 1 && dom.matches("<tr data-task=").count() == 8);

    // A task's details, as hovering shows them: opened from the page's address (`#task=NAME`).
    let linked = PathBuf::from(format!("{}#task=bad", page.display()));
    let shown = chromium_on(&p, &linked, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&shown.stdout);
    let tip = dom.split("id=\"tip\"").nth(1).unwrap_or("").split("</div>").next().unwrap_or("");
    assert!(!tip.starts_with(" role=\"tooltip\" hidden"), "the details are shown: {tip}");
    for detail in ["failed (exit code 3)", "echo oops &gt;&amp;2; exit 3", "why it ran", "duration", "slot"] {
        assert!(tip.contains(detail), "{detail:?} in the details: {tip}");
    }

    // A picture for a person to look at.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("timings");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("timings-page.png");
    let _ = std::fs::remove_file(&shot);
    let taken = chromium_on(&p, &page, &[&format!("--screenshot={}", shot.display()), "--window-size=1400,900"]);
    assert!(taken.status.success(), "{taken:?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot of the page: {}", shot.display());
}

#[test]
fn a_page_made_from_the_events_file_is_the_page_of_the_run() {
    let p = Project::new(MIXED);
    run_mixed(&p, &["--timings=live.html", "--trace", "live.json", "--events", "events.jsonl"]);
    let out = p.run_ok(&["timings", "events.jsonl", "--html", "later.html", "--trace", "later.json"]);
    assert_eq!(out.stdout, "later.html\nlater.json\n");
    assert_eq!(p.read("later.html"), p.read("live.html"));
    assert_eq!(p.read("later.json"), p.read("live.json"));
    // Without a FILE, the page goes beside the events.
    p.run_ok(&["timings", "events.jsonl"]);
    assert_eq!(p.read("events.html"), p.read("live.html"));
}

#[test]
fn timings_go_to_the_projects_irun_folder_and_the_path_is_said_at_the_end() {
    let p = Project::new("[tasks.a]\ncmd = \"true\"\n");
    std::fs::create_dir(p.path("sub")).unwrap();
    // `--timings` takes no FILE unless it is given with `=`: `a` is a target here.
    let out = p.irun().current_dir(&p.path("sub")).args(["--timings", "a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let page = p.path(".irun/timings.html");
    assert!(p.read(".irun/timings.html").contains("data-task=\"a\""));
    assert!(out.stderr.trim_end().ends_with(&format!("irun: timings: {}", page.display())), "{out:?}");
}

#[test]
fn the_trace_is_valid_trace_event_json_as_another_parser_reads_it() {
    let p = Project::new(MIXED);
    run_mixed(&p, &["--trace", "trace.json"]);
    // Python's own JSON parser, and the trace-event format's rules checked in Python, not by irun's code.
    let check = r#"
import json, sys, collections
doc = json.load(open(sys.argv[1]))
events = doc["traceEvents"]
assert isinstance(events, list) and events, "traceEvents is a non-empty list"
for e in events:
    for key in ("ph", "ts", "pid", "tid"):
        assert key in e, f"{key} missing in {e}"
    assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
    assert e["ph"] in "XBEisfM", e
    if e["ph"] == "X":
        assert isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0, e
    if e["ph"] == "i":
        assert e.get("s", "t") in ("g", "p", "t"), e
open_ = collections.Counter()
for e in events:
    if e["ph"] == "B": open_[(e["pid"], e["tid"])] += 1
    if e["ph"] == "E": open_[(e["pid"], e["tid"])] -= 1
assert all(v == 0 for v in open_.values()), "B and E balanced"
flows = collections.defaultdict(list)
for e in events:
    if e["ph"] in "sf": flows[e["id"]].append(e["ph"])
assert flows and all(sorted(v) == ["f", "s"] for v in flows.values()), flows
# Complete events on one thread nest: none starts inside another and ends after it.
lanes = collections.defaultdict(list)
for e in events:
    if e["ph"] == "X": lanes[(e["pid"], e["tid"])].append((e["ts"], -e["dur"], e["name"]))
for lane, slices in lanes.items():
    stack = []
    for ts, neg, name in sorted(slices):
        end = ts - neg
        while stack and stack[-1][0] <= ts: stack.pop()
        assert not stack or end <= stack[-1][0], f"{name} overlaps {stack[-1][1]} on {lane}"
        stack.append((end, name))
names = {e["name"] for e in events if e["ph"] == "X"}
assert {"svc", "setup", "a", "b", "c", "client", "bad"} <= names, names
assert any(e["ph"] == "i" and e["name"] == "svc ready" for e in events), "readiness is an instant event"
threads = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
assert {"service svc", "slot 1", "slot 2"} <= threads, threads
print("valid")
"#;
    let out = Command::new("python3").arg("-c").arg(check).arg(p.path("trace.json")).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), p.read("trace.json"));
}

#[test]
fn irun_timings_says_which_line_of_an_events_file_it_cannot_use() {
    let p = Project::new("[tasks.a]\ncmd = \"true\"\n");
    p.file("garbage.jsonl", "{\"version\":1,\"time\":\"2026-12-06T10:00:00Z\",\"event\":\"run_started\",\"jobs\":1,\"watch\":false,\"tasks\":[]}\nnot json\n");
    let out = p.irun().args(["timings", "garbage.jsonl"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("garbage.jsonl:2: this line is not JSON"), "{out:?}");
    p.file("future.jsonl", "{\"version\":2,\"time\":\"2026-12-06T10:00:00Z\",\"event\":\"run_started\"}\n");
    let out = p.irun().args(["timings", "future.jsonl"]).run();
    assert!(out.code == 2 && out.stderr.contains("future.jsonl:1: this event is of schema version 2"), "{out:?}");
    p.file("empty.jsonl", "\n");
    let out = p.irun().args(["timings", "empty.jsonl"]).run();
    assert!(out.code == 2 && out.stderr.contains("empty.jsonl holds no run's events"), "{out:?}");
    let out = p.irun().args(["timings", "missing.jsonl"]).run();
    assert!(out.code == 2 && out.stderr.contains("cannot read the events file missing.jsonl"), "{out:?}");
    assert!(!p.exists("garbage.html") && !p.exists("future.html"), "nothing written from a file irun cannot use");
}

#[test]
fn report_files_are_files_of_their_own() {
    let p = Project::new("[tasks.a]\ncmd = \"touch ran\"\n");
    let out = p.irun().args(["--timings=same", "--trace", "same", "a"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--timings same and --trace same name the same file"), "{out:?}");
    let out = p.irun().args(["--timings=x/y.html", "a"]).run();
    assert!(out.code == 2 && out.stderr.contains("cannot write the timings page to x/y.html"), "{out:?}");
    assert!(!p.exists("ran"), "nothing was started");
}

#[test]
fn shards_read_together_are_sections_of_one_page() {
    let p = Project::new("[tasks.a]\ncmd = \"true\"\n[tasks.b]\ncmd = \"true\"\n[tasks.all]\ndeps = [\"a\", \"b\"]\n");
    p.run_ok(&["--partition", "slice:1/2", "--events", "one.jsonl", "all"]);
    p.run_ok(&["--partition", "slice:2/2", "--events", "two.jsonl", "all"]);
    p.run_ok(&["timings", "one.jsonl", "two.jsonl", "--html", "both.html"]);
    let html = p.read("both.html");
    assert!(html.contains("data-title=\"shard 1/2: run\"") && html.contains("data-title=\"shard 2/2: run\""), "{html}");
}

#[test]
fn watch_mode_writes_the_page_after_each_cycle_with_a_section_per_cycle() {
    // Its sources take in everything, the reports too: writing them must not start a cycle.
    let p = Project::new("[tasks.t]\ncmd = \"cat src.txt\"\nsources = [\"**\"]\n");
    p.file("src.txt", "one\n");
    let reports = ["--timings=page.html", "--trace", "trace.json", "--events", "events.jsonl", "--junit", "j.xml"];
    let mut run = crate::watch::watching(&p, &[&reports[..], &["t"]].concat());
    let titles = |html: &str| html.matches("data-title=").count();
    assert_eq!(titles(&p.read("page.html")), 1, "{}", p.read("page.html"));
    p.file("src.txt", "two\n");
    run.wait_for_count("irun: waiting for changes", 2);
    let html = p.read("page.html");
    assert!(html.contains("data-title=\"cycle 0\"") && html.contains("data-title=\"cycle 1\""), "{html}");
    assert_eq!(titles(&html), 2, "a section per cycle: {html}");
    assert!(html.contains("<td>watch: src.txt changed</td>"), "why it ran again: {html}");
    let printed = run.printed();
    assert!(printed.contains("change 1: src.txt; running t\n") && !printed.contains("change 2"), "{printed}");
    crate::watch::stop(run);
}

#[test]
fn a_tasks_own_test_counts_are_on_the_page() {
    let p = Project::new(
        "[tasks.t]\ncmd = \"mkdir -p r && printf '<testsuite><testcase name=\\\"x\\\"/><testcase name=\\\"y\\\"><failure message=\\\"m\\\"/></testcase></testsuite>' > r/j.xml\"\njunit = [\"r/*.xml\"]\n",
    );
    p.run_ok(&["--timings=page.html", "--events", "events.jsonl", "t"]);
    assert!(p.read("page.html").contains("<td>2 test cases, 1 failed</td>"), "{}", p.read("page.html"));
    p.run_ok(&["timings", "events.jsonl", "--html", "later.html"]);
    assert_eq!(p.read("later.html"), p.read("page.html"));
}

#[test]
fn an_events_file_cut_short_by_a_killed_run_gives_the_run_as_far_as_it_went() {
    let p = Project::new("[tasks.a]\ncmd = \"true\"\n[tasks.b]\ncmd = \"true\"\ndeps = [\"a\"]\n");
    p.run_ok(&["--events", "events.jsonl", "b"]);
    let whole = p.read("events.jsonl");
    let cut = &whole[..whole.len() - 12];
    p.file("cut.jsonl", cut);
    let out = p.irun().args(["timings", "cut.jsonl"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let last = cut.lines().count();
    assert!(out.stderr.contains(&format!("cut.jsonl:{last}: the last line is cut short")), "{out:?}");
    assert!(p.read("cut.html").contains("data-task=\"b\""));
    // A damaged line anywhere else is still an error.
    p.file("bad.jsonl", &format!("{}\n", cut));
    let out = p.irun().args(["timings", "bad.jsonl"]).run();
    assert!(out.code == 2 && out.stderr.contains(&format!("bad.jsonl:{last}: this line is not JSON")), "{out:?}");
}
