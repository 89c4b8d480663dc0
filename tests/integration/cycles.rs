//! Watch cycles against the real binary: exactly what a change affects reruns, state written during watch is
//! trusted by the next plain run, each cycle reports its own facts, Irun.toml is reloaded when edited, and a task
//! that writes its own sources is named.

use nix::sys::signal::Signal;

use crate::harness::{Project, Running, alive, assert_all_dead, free_port, processes_of_run};

const CYCLE_DONE: &str = "irun: waiting for changes";

fn stop(mut run: Running) -> crate::harness::Output {
    let pid = run.pid();
    run.signal(Signal::SIGINT);
    let out = run.wait();
    assert_eq!(out.code, 130, "{out:?}");
    assert!(processes_of_run(pid).is_empty(), "nothing of the run is left: {:?}", processes_of_run(pid));
    out
}

/// setup (sources, outputs) -> svc (service, tcp probe, sources) -> client (sources); other depends on setup.
fn scratch() -> Project {
    let port = free_port();
    let p = Project::new(&format!(
        r#"
default = ["client", "other"]

[tasks.setup]
cmd = "echo run >> setup.log; cp setup.txt setup.out"
sources = ["setup.txt"]
outputs = ["setup.out"]

[tasks.svc]
cmd = "echo $$ >> svc.pids; exec python3 serve.py {port} 0"
daemon = true
ready = {{ tcp = {port} }}
sources = ["svc.txt"]
deps = ["setup"]

[tasks.client]
cmd = "echo run >> client.log"
sources = ["client.txt"]
deps = ["svc"]

[tasks.other]
cmd = "echo run >> other.log"
sources = ["other.txt"]
deps = ["setup"]
"#
    ));
    p.file(".gitignore", "*.log\n*.pids\nserver.pid\nlistening\nlistening.tmp\n");
    p.file("serve.py", crate::harness::SERVE_PY);
    for f in ["setup.txt", "svc.txt", "client.txt", "other.txt"] {
        p.file(f, "1\n");
    }
    p
}

#[test]
fn watch_reruns_exactly_what_a_change_affects_and_leaves_a_state_the_next_run_trusts() {
    let p = scratch();
    let first = p.irun().run();
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!((p.count_lines("setup.log"), p.count_lines("other.log")), (1, 1));

    let mut run = p.irun().args(["--watch"]).spawn();
    run.wait_for_count(CYCLE_DONE, 1);
    let printed = run.printed();
    assert!(printed.contains("setup  * up to date") && printed.contains("other  * up to date"), "{printed}");
    assert_eq!((p.count_lines("setup.log"), p.count_lines("other.log")), (1, 1), "nothing up to date ran: {printed}");
    assert_eq!(p.pids("svc.pids").len(), 2, "the service started");
    assert!(
        printed.contains("client * up to date"),
        "the service did not change, so neither did its client: {printed}"
    );
    assert_eq!(p.count_lines("client.log"), 1);

    // The client's source: only the client reruns; the service keeps its pid.
    p.file("client.txt", "2\n");
    run.wait_for_count(CYCLE_DONE, 2);
    assert!(run.printed().contains("irun: ── change 1: client.txt; running client\n"), "{}", run.printed());
    assert_eq!(p.count_lines("client.log"), 2);
    let svc = p.pids("svc.pids");
    assert_eq!(svc.len(), 2, "the service was not restarted");
    assert!(alive(svc[1]));
    assert_eq!((p.count_lines("setup.log"), p.count_lines("other.log")), (1, 1));

    // The service's source: it restarts and its client reruns; nothing else.
    p.file("svc.txt", "2\n");
    run.wait_for_count(CYCLE_DONE, 3);
    assert!(run.printed().contains("irun: ── change 2: svc.txt; running svc, client\n"), "{}", run.printed());
    let svc = p.pids("svc.pids");
    assert_eq!(svc.len(), 3, "the service restarted");
    assert!(!alive(svc[1]) && alive(svc[2]));
    assert_eq!(p.count_lines("client.log"), 3);
    assert_eq!((p.count_lines("setup.log"), p.count_lines("other.log")), (1, 1));

    // setup's source: setup reruns, the service restarts, client and other run again.
    p.file("setup.txt", "2\n");
    run.wait_for_count(CYCLE_DONE, 4);
    let svc = p.pids("svc.pids");
    assert_eq!((p.count_lines("setup.log"), p.count_lines("other.log")), (2, 2), "{}", run.printed());
    assert_eq!(svc.len(), 4, "a service whose dep reran is restarted: {}", run.printed());
    assert!(!alive(svc[2]) && alive(svc[3]));
    assert_eq!(p.count_lines("client.log"), 4, "and its client runs against the new instance");

    stop(run);
    assert_all_dead(&p.pids("svc.pids"));

    // What watch mode recorded lets a plain run skip what is up to date.
    let after = p.irun().run();
    assert_eq!(after.code, 0, "{after:?}");
    assert!(after.stdout.contains("setup  * up to date"), "{after:?}");
    assert!(after.stdout.contains("other  * up to date"), "{after:?}");
    assert_eq!((p.count_lines("setup.log"), p.count_lines("other.log")), (2, 2));
}

#[test]
fn each_cycle_reports_only_its_own_failure_output_and_critical_path() {
    let p = Project::new(
        r#"
[tasks.prep]
cmd = "echo prepared"
sources = ["prep.txt"]

[tasks.check]
cmd = "echo \"output-of-run-$(cat n)\"; exit 1"
sources = ["n"]
deps = ["prep"]
"#,
    );
    p.file("prep.txt", "1\n");
    p.file("n", "1\n");
    let mut run = p.irun().args(["--watch", "check"]).spawn();
    run.wait_for_count(CYCLE_DONE, 1);
    p.file("n", "2\n");
    run.wait_for_count(CYCLE_DONE, 2);
    let printed = run.printed();
    let cycle = printed.rsplit("irun: ── change 1").next().unwrap();
    let summary = cycle.split("irun: summary").nth(1).expect("the cycle's summary");
    assert!(summary.contains("output-of-run-2"), "{printed}");
    assert!(!summary.contains("output-of-run-1"), "the tail of an earlier cycle leaked in: {printed}");
    assert!(!summary.contains("prep"), "prep did not run in this cycle: {printed}");
    assert!(summary.contains("irun: failed: 1 failed in"), "{printed}");
    stop(run);
}

#[test]
fn an_edited_irun_toml_is_used_by_the_next_cycle_and_a_broken_one_is_reported() {
    let port = free_port();
    let original = format!(
        r#"default = ["b", "svc"]

[tasks.a]
cmd = "echo run >> a.log"
sources = ["a.txt"]

[tasks.b]
cmd = "echo v1 >> b.log"
deps = ["a"]

[tasks.svc]
cmd = "echo $$ >> svc.pids; exec python3 serve.py {port} 0"
daemon = true
ready = {{ tcp = {port} }}
"#
    );
    let p = Project::new(&original);
    p.file(".gitignore", "*.log\n*.pids\nserver.pid\nlistening\nlistening.tmp\n");
    p.file("serve.py", crate::harness::SERVE_PY);
    p.file("a.txt", "1\n");
    let mut run = p.irun().args(["--watch"]).spawn();
    run.wait_for_count(CYCLE_DONE, 1);
    let svc = p.pids("svc.pids");

    // A broken edit: reported with its place, and the old configuration stays in force.
    p.file("Irun.toml", &original.replace("cmd = \"echo v1 >> b.log\"", "cmd = \"echo v1 >> b.log\"\ncmdd = 1"));
    let error = run.wait_for_line("changed but cannot be used; still running the previous version");
    run.wait_for_line("Irun.toml:9:1: unknown key `cmdd`");
    assert!(error.starts_with("irun: Irun.toml changed"), "{error}");
    p.file("a.txt", "2\n");
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(
        (p.count_lines("a.log"), p.count_lines("b.log")),
        (2, 2),
        "the old configuration still runs: {}",
        run.printed()
    );

    // A valid edit: b changed, c added, svc removed.
    let edited = original
        .replace("default = [\"b\", \"svc\"]", "default = [\"b\", \"c\"]")
        .replace("echo v1 >> b.log", "echo v2 >> b.log")
        .replace("[tasks.svc]", "[tasks.c]\ncmd = \"echo run >> c.log\"\ndeps = [\"a\"]\n\n[tasks.svc]");
    p.file("Irun.toml", &edited);
    run.wait_for_line("irun: Irun.toml changed: added c; changed b; removed svc");
    run.wait_for_count(CYCLE_DONE, 3);
    let printed = run.printed();
    assert_eq!(std::fs::read_to_string(p.path("b.log")).unwrap().lines().last(), Some("v2"), "{printed}");
    assert_eq!(p.count_lines("c.log"), 1, "the new task ran: {printed}");
    assert_eq!(p.count_lines("a.log"), 2, "a was unchanged and up to date: {printed}");
    crate::harness::wait_all_dead(&svc);

    // And the new configuration is the one that reacts to changes.
    p.file("a.txt", "3\n");
    run.wait_for_count(CYCLE_DONE, 4);
    assert_eq!((p.count_lines("a.log"), p.count_lines("c.log")), (3, 2), "{}", run.printed());
    stop(run);
}

#[test]
fn a_display_only_edit_keeps_a_service_running_and_its_new_output_policy_applies() {
    let original = r#"default = ["client"]

[tasks.svc]
cmd = "echo $$ >> svc.pids; while [ ! -e ping ]; do sleep 0.05; done; echo pong; exit 1"
daemon = true
description = "v1"

[tasks.client]
cmd = "echo ok >> client.log"
deps = ["svc"]
"#;
    let p = Project::new(original);
    let mut run = p.irun().args(["--watch", "--progress", "never"]).spawn();
    run.wait_for_count(CYCLE_DONE, 1);
    p.file("Irun.toml", &original.replace("description = \"v1\"", "description = \"v2\"\noutput = \"on-failure\""));
    run.wait_for_line("irun: Irun.toml changed; no task changed");
    // The service that carried on follows its new `output`: what it says is held back until it fails.
    p.file("ping", "");
    run.wait_for_line("output held back until it failed");
    run.wait_for_line("| pong");
    assert_eq!(p.pids("svc.pids").len(), 1, "the service was not restarted: {}", run.printed());
    assert_eq!(p.count_lines("client.log"), 1, "{}", run.printed());
    stop(run);
}

#[test]
fn a_task_that_writes_its_own_sources_is_named_once() {
    let p = Project::new("[tasks.gen]\ncmd = \"echo x >> gen.txt\"\nsources = [\"gen.txt\"]\n");
    let mut run = p.irun().args(["--watch", "gen"]).spawn();
    let notice = run.wait_for_line("seems to write its own sources");
    assert!(notice.contains("changes to gen.txt") && notice.contains("`gen`"), "{notice}");
    assert!(notice.contains("list them in `outputs`"), "{notice}");
    let seen = run.printed().matches(CYCLE_DONE).count();
    run.wait_for_count(CYCLE_DONE, seen + 4);
    assert_eq!(run.printed().matches("seems to write its own sources").count(), 1, "said once: {}", run.printed());
    stop(run);
}

#[test]
fn a_change_while_a_reloaded_service_stops_goes_to_the_new_configuration() {
    let port = free_port();
    let original = format!(
        r#"
[tasks.svc]
cmd = "trap 'sleep 0.5; exit 0' TERM; echo v1 $$ >> svc.pids; python3 serve.py {port} 0 & wait"
daemon = true
ready = {{ tcp = {port} }}
sources = ["svc.cfg"]
"#
    );
    let p = Project::new(&original);
    p.file(".gitignore", "*.pids\nserver.pid\nlistening\nlistening.tmp\n");
    p.file("serve.py", crate::harness::SERVE_PY);
    p.file("svc.cfg", "1\n");
    let mut run = p.irun().args(["--watch", "svc"]).spawn();
    run.wait_for_count(CYCLE_DONE, 1);
    p.file("Irun.toml", &original.replace("echo v1", "echo v2"));
    // The old service takes half a second to stop; a change to its source meanwhile must not start it again.
    run.wait_for_line("svc * stopping (Irun.toml changed)");
    p.file("svc.cfg", "2\n");
    run.wait_for_line("svc * ready after");
    run.wait_for_count(CYCLE_DONE, 2);
    let versions: Vec<String> =
        p.read("svc.pids").lines().map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    assert_eq!(versions[0], "v1");
    assert!(versions[1..].iter().all(|v| v == "v2"), "the old definition never started again: {versions:?}");
    assert!(!run.printed().contains("already in use"), "{}", run.printed());
    stop(run);
}
