//! `--watch` and what really changed (issue 22): a removed folder affects only the tasks whose sources could match
//! in it, content (not a touch) decides, lost events rerun only what changed, and a task that removes and makes
//! again its own results folder runs once per edit. Cycles are followed in `--json` events; "nothing more
//! happened" is shown by a later, unrelated change whose cycle is the next one seen.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{Project, Running, alive};
use crate::watch::{lines, stop, while_events_are_lost};

/// Start `irun --json --watch ARGS` and wait until the first run's cycle is over.
fn watching_json(p: &Project, args: &[&str]) -> Running {
    let mut run = p.irun().args(["--json", "--watch"]).args(args).spawn();
    run.wait_for_count("\"event\":\"cycle_finished\"", 1);
    run
}

/// The `cycle_started` events printed so far: (tasks, changed, rescan).
fn cycles(run: &Running) -> Vec<(Vec<String>, Vec<String>, bool)> {
    let strings = |v: &Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    run.printed()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "cycle_started")
        .map(|v| (strings(&v["tasks"]), strings(&v["changed"]), v["rescan"].as_bool().unwrap()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Change the sentinel and wait for its cycle, the `n`th: the one before it was the last, so nothing started in
/// between (events arrive in order).
fn next_cycle_is_the_sentinels(p: &Project, run: &mut Running, n: usize, content: &str) {
    p.file("sentinel", content);
    run.wait_for_count("\"event\":\"cycle_finished\"", n + 1);
    let all = cycles(run);
    assert_eq!(all.len(), n + 1, "{}", run.printed());
    assert_eq!(all[n].0, names(&["sentinel"]), "the next cycle is the sentinel's: {}", run.printed());
}

/// Playwright's way: `e2e` deletes its `test-results` folder and makes it again at every start, beside a service it
/// needs (on a port chosen at start), with `sources = ["src/**"]`.
const PLAYWRIGHT: &str = r#"
[tasks.server]
cmd = "echo $$ >> server.pids; exec python3 serve.py $IRUN_PORT 0"
daemon = true
ready = { tcp = "auto" }

[tasks.e2e]
cmd = "echo run >> e2e.log; rm -rf test-results; mkdir test-results; echo x > test-results/out.txt; python3 -c 'import os, urllib.request; urllib.request.urlopen(\"http://127.0.0.1:\" + os.environ[\"IRUN_PORT_SERVER\"] + \"/\")'"
deps = ["server"]
sources = ["src/**"]

[tasks.sentinel]
cmd = "true"
sources = ["sentinel"]
"#;

fn playwright() -> Project {
    let p = Project::new(PLAYWRIGHT);
    p.file("serve.py", crate::harness::SERVE_PY);
    p.file(".gitignore", "*.log\n*.pids\nserver.pid\nlistening\n");
    p.file("src/a.txt", "1\n");
    p.file("junk/old.txt", "nobody's source\n");
    p
}

#[test]
fn a_task_that_deletes_and_recreates_its_results_folder_runs_once_per_source_edit() {
    let p = playwright();
    let mut run = watching_json(&p, &["e2e", "sentinel"]);
    for (n, content) in [(1, "2\n"), (2, "3\n")] {
        p.file("src/a.txt", content);
        run.wait_for_count("\"event\":\"cycle_finished\"", n + 1);
        let all = cycles(&run);
        assert_eq!(all[n], (names(&["e2e"]), names(&["src/a.txt"]), false), "{}", run.printed());
    }
    // The third cycle seen is the sentinel's: e2e's removal of test-results started none.
    next_cycle_is_the_sentinels(&p, &mut run, 3, "a\n");
    assert_eq!(lines(&p, "e2e.log").len(), 3, "the first run and one per edit");
    let server = p.pids("server.pids");
    assert_eq!(server.len(), 1, "the service was never restarted");
    assert!(alive(server[0]));
    run.signal(Signal::SIGINT);
    run.wait();
}

#[test]
fn removing_a_folder_no_source_glob_matches_starts_no_cycle_and_restarts_no_service() {
    let p = playwright();
    let mut run = watching_json(&p, &["e2e", "sentinel"]);
    std::fs::remove_dir_all(p.path("junk")).unwrap();
    next_cycle_is_the_sentinels(&p, &mut run, 1, "a\n");
    assert_eq!(lines(&p, "e2e.log").len(), 1);
    assert_eq!(p.pids("server.pids").len(), 1, "the service was not restarted");
    run.signal(Signal::SIGINT);
    run.wait();
}

/// Set a file's modification time to now (its content stays).
fn touch(p: &Project, rel: &str) {
    let file = std::fs::OpenOptions::new().append(true).open(p.path(rel)).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(2)).unwrap();
}

/// A service with sources and a task with sources after it.
const WEB: &str = r#"
[tasks.web]
cmd = "echo $$ >> web.pids; exec python3 serve.py $IRUN_PORT 0"
daemon = true
ready = { tcp = "auto" }
sources = ["web.cfg"]

[tasks.client]
cmd = "echo run >> client.log"
deps = ["web"]
sources = ["client.cfg"]

[tasks.sentinel]
cmd = "true"
sources = ["sentinel"]
"#;

fn web() -> Project {
    let p = Project::new(WEB);
    p.file("serve.py", crate::harness::SERVE_PY);
    p.file(".gitignore", "*.log\n*.pids\nserver.pid\nlistening\n");
    p.file("web.cfg", "1\n");
    p.file("client.cfg", "1\n");
    p
}

#[test]
fn a_touch_without_a_content_change_reruns_nothing_and_restarts_no_service() {
    let p = web();
    let mut run = watching_json(&p, &["client", "sentinel"]);
    touch(&p, "web.cfg");
    touch(&p, "client.cfg");
    // Removed and written again the same: no change either.
    std::fs::remove_file(p.path("client.cfg")).unwrap();
    p.file("client.cfg", "1\n");
    next_cycle_is_the_sentinels(&p, &mut run, 1, "a\n");
    assert_eq!(lines(&p, "client.log").len(), 1, "{}", run.printed());
    assert_eq!(p.pids("web.pids").len(), 1, "web was not restarted");
    // A real change still reruns.
    p.file("client.cfg", "2\n");
    run.wait_for_count("\"event\":\"cycle_finished\"", 3);
    assert_eq!(cycles(&run)[2].0, names(&["client"]), "{}", run.printed());
    assert_eq!(lines(&p, "client.log").len(), 2);
    run.signal(Signal::SIGINT);
    run.wait();
}

#[test]
fn lost_events_rerun_only_what_changed_by_content_and_leave_the_service_running() {
    let p = web();
    let mut run = watching_json(&p, &["client", "sentinel"]);
    while_events_are_lost(&p, &run, |p| {
        touch(p, "web.cfg");
        p.file("client.cfg", "changed while events were lost\n");
    });
    run.wait_for_count("\"event\":\"cycle_finished\"", 2);
    let all = cycles(&run);
    assert_eq!(all[1], (names(&["client"]), Vec::new(), true), "{}", run.printed());
    assert_eq!(lines(&p, "client.log").len(), 2);
    let web = p.pids("web.pids");
    assert_eq!(web.len(), 1, "web's inputs did not change: it keeps running");
    assert!(alive(web[0]));
    run.signal(Signal::SIGINT);
    run.wait();
}

#[test]
fn a_task_that_removes_a_folder_its_own_sources_match_is_named_as_a_feedback_loop() {
    // One process removes src/gen and writes it again with new content: a loop irun cannot end by itself. It then
    // runs until irun stops it, which it does once it has seen the change (`--on-busy restart`) and runs it again:
    // every change is seen while a cycle runs, however late the watcher notes it on a loaded machine.
    let p = Project::new(
        r#"
[tasks.gen]
cmd = "python3 -c 'import os, shutil, time; shutil.rmtree(\"src/gen\", ignore_errors=True); os.mkdir(\"src/gen\"); open(\"src/gen/stamp\", \"w\").write(str(time.time_ns())); time.sleep(600)'"
sources = ["src/**"]
"#,
    );
    p.file("src/main.txt", "1\n");
    // (No cycle ever ends: each is restarted by the change its task made.)
    let mut run = p.irun().args(["--watch", "gen"]).spawn();
    let said = run.wait_for_line("seems to write its own sources");
    // (Sorted, the removed folder comes first.)
    let folder_named = said.contains("changes to src/gen,") || said.contains("changes to src/gen made");
    assert!(folder_named && said.contains("`gen`"), "the removed folder is among the paths named: {said}");
    stop(run);
}

#[test]
fn a_task_that_writes_its_own_sources_with_the_same_content_does_not_trigger_itself() {
    let p = Project::new(
        "[tasks.gen]\ncmd = \"echo run >> gen.log; echo same > src/gen.txt\"\nsources = [\"src/**\"]\n\
         [tasks.sentinel]\ncmd = \"true\"\nsources = [\"sentinel\"]\n",
    );
    p.file(".gitignore", "*.log\n");
    p.file("src/gen.txt", "same\n");
    let mut run = watching_json(&p, &["gen", "sentinel"]);
    next_cycle_is_the_sentinels(&p, &mut run, 1, "a\n");
    assert_eq!(lines(&p, "gen.log").len(), 1, "{}", run.printed());
    run.signal(Signal::SIGINT);
    run.wait();
}

#[test]
fn a_touch_reruns_a_task_whose_last_run_failed() {
    let p = Project::new(
        "[tasks.check]\ncmd = \"echo run >> runs.log; grep -q good input.txt\"\nsources = [\"input.txt\"]\n",
    );
    p.file(".gitignore", "*.log\n");
    p.file("input.txt", "bad\n");
    let mut run = watching_json(&p, &["check"]);
    touch(&p, "input.txt");
    run.wait_for_count("\"event\":\"cycle_finished\"", 2);
    assert_eq!(cycles(&run)[1].0, names(&["check"]), "its record is not a good run: {}", run.printed());
    assert_eq!(lines(&p, "runs.log").len(), 2);
    run.signal(Signal::SIGINT);
    run.wait();
}

/// A group with sources between a task and what runs after it (issue 22 review: groups have no record of their
/// own to compare with).
const DOCS: &str = r#"
[tasks.build]
cmd = "echo run >> build.log"

[tasks.docs]
deps = ["build"]
sources = ["docs/**"]

[tasks.publish]
cmd = "echo run >> publish.log"
deps = ["docs"]

[tasks.sentinel]
cmd = "true"
sources = ["sentinel"]
"#;

#[test]
fn a_group_whose_sources_keep_their_content_starts_no_cycle_on_a_touch_or_lost_events() {
    let p = Project::new(DOCS);
    p.file(".gitignore", "*.log\n");
    p.file("docs/x.md", "1\n");
    let mut run = watching_json(&p, &["publish", "sentinel"]);
    touch(&p, "docs/x.md");
    next_cycle_is_the_sentinels(&p, &mut run, 1, "a\n");
    // Lost events with nothing changed: nothing at all.
    while_events_are_lost(&p, &run, |_| {});
    next_cycle_is_the_sentinels(&p, &mut run, 2, "b\n");
    assert_eq!(lines(&p, "publish.log").len(), 1, "{}", run.printed());
    // A real change reruns what depends on the group, and is the new baseline: a touch after it is no change.
    p.file("docs/x.md", "2\n");
    run.wait_for_count("\"event\":\"cycle_finished\"", 4);
    assert_eq!(cycles(&run)[3].0, names(&["docs", "publish"]), "{}", run.printed());
    touch(&p, "docs/x.md");
    next_cycle_is_the_sentinels(&p, &mut run, 4, "c\n");
    assert_eq!(lines(&p, "publish.log").len(), 2, "{}", run.printed());
    assert_eq!(lines(&p, "build.log").len(), 1, "build is no source of the group's: it never reran");
    run.signal(Signal::SIGINT);
    run.wait();
}

#[test]
fn lost_events_rerun_a_task_whose_outputs_were_removed_meanwhile() {
    // A `git checkout` that overflows the queue and wipes dist/: outputs are not watched, so no later event brings
    // build back; only comparing its outputs with what its last run left does.
    // The cache would restore the removed outputs: this test is about lost events being noticed, so build runs.
    let p = Project::new(
        "[tasks.build]\ncmd = \"echo run >> build.log; mkdir -p dist; echo made > dist/out.txt\"\n\
         sources = [\"src/**\"]\noutputs = [\"dist/**\"]\n",
    )
    .uncached();
    p.file(".gitignore", "*.log\n");
    p.file("src/a.txt", "1\n");
    let mut run = watching_json(&p, &["build"]);
    while_events_are_lost(&p, &run, |p| std::fs::remove_dir_all(p.path("dist")).unwrap());
    run.wait_for_count("\"event\":\"cycle_finished\"", 2);
    assert_eq!(cycles(&run)[1], (names(&["build"]), Vec::new(), true), "{}", run.printed());
    assert_eq!(lines(&p, "build.log").len(), 2);
    assert!(p.path("dist/out.txt").is_file(), "made again");
    run.signal(Signal::SIGINT);
    run.wait();
}
