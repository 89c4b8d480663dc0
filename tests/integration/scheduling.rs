//! Order and parallelism: what runs when, with how many at a time, and what happens after a failure.

use crate::harness::{Project, alive, assert_all_dead};

/// A task that records when it started and ended. With `partner`, it also waits (bounded) until that task has
/// started: both can only finish if irun runs them at the same time.
fn stamped(name: &str, deps: &[&str], partner: Option<&str>) -> String {
    let wait = partner
        .map(|p| format!("i=0; while [ ! -e {p}.start ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; [ -e {p}.start ] || exit 7; "))
        .unwrap_or_default();
    let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "[tasks.{name}]\ncmd = \"date +%s%N > {name}.start.tmp && mv {name}.start.tmp {name}.start; {wait}sleep 0.05; date +%s%N > {name}.end\"\ndeps = [{}]\n",
        deps.join(", ")
    )
}

#[test]
fn independent_tasks_overlap() {
    let p = Project::new(&format!("{}{}", stamped("a", &[], Some("b")), stamped("b", &[], Some("a"))));
    let out = p.irun().args(["-j", "2", "a", "b"]).run();
    assert_eq!(out.code, 0, "each task waits for the other to start, so they must run together: {out:?}");
    let (a0, a1, b0, b1) = (p.stamp("a.start"), p.stamp("a.end"), p.stamp("b.start"), p.stamp("b.end"));
    assert!(a0 < b1 && b0 < a1, "intervals overlap: a {a0}..{a1}, b {b0}..{b1}");
}

#[test]
fn jobs_1_serialises_independent_tasks() {
    let p = Project::new(&format!("{}{}{}", stamped("a", &[], None), stamped("b", &[], None), stamped("c", &[], None)));
    let out = p.irun().args(["-j1", "a", "b", "c"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let mut spans: Vec<(u128, u128)> =
        ["a", "b", "c"].iter().map(|t| (p.stamp(&format!("{t}.start")), p.stamp(&format!("{t}.end")))).collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "tasks overlapped under -j1: {spans:?}");
    }
}

#[test]
fn jobs_in_irun_toml_is_used_and_j_overrides_it() {
    let both = format!("jobs = 1\n{}{}", stamped("a", &[], Some("b")), stamped("b", &[], Some("a")));
    let p = Project::new(&both.replace("3000", "20"));
    // Under jobs = 1 the partner never starts in time, so the first task fails.
    let out = p.irun().args(["a", "b"]).run();
    assert_eq!(out.code, 1, "jobs = 1 in Irun.toml must serialise: {out:?}");
    let p = Project::new(&both);
    let out = p.irun().args(["-j2", "a", "b"]).run();
    assert_eq!(out.code, 0, "-j2 overrides jobs = 1: {out:?}");
}

#[test]
fn deps_finish_before_dependents_start() {
    // A diamond: top needs left and right, both need base.
    let toml = [
        stamped("base", &[], None),
        stamped("left", &["base"], None),
        stamped("right", &["base"], None),
        stamped("top", &["left", "right"], None),
    ]
    .concat();
    let p = Project::new(&toml);
    let out = p.irun().args(["-j4", "top"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    for (dep, task) in [("base", "left"), ("base", "right"), ("left", "top"), ("right", "top")] {
        assert!(
            p.stamp(&format!("{dep}.end")) <= p.stamp(&format!("{task}.start")),
            "{task} started before {dep} finished"
        );
    }
}

#[test]
fn each_task_runs_once_per_invocation() {
    let p = Project::new(
        "[tasks.base]\ncmd = \"echo x >> count\"\n[tasks.a]\ncmd = \"true\"\ndeps = [\"base\"]\n[tasks.b]\ncmd = \"true\"\ndeps = [\"base\"]\n",
    );
    let out = p.irun().args(["a", "b", "base", "a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(p.read("count"), "x\n");
}

#[test]
fn default_targets_run_when_none_are_named() {
    let p = Project::new("default = [\"a\"]\n[tasks.a]\ncmd = \"touch a\"\n[tasks.b]\ncmd = \"touch b\"\n");
    let out = p.irun().run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.exists("a") && !p.exists("b"));
}

const FAILING: &str = r#"
[tasks.bad]
cmd = "echo about to fail; exit 3"

[tasks.after-bad]
cmd = "touch after-bad-ran"
deps = ["bad"]

[tasks.independent]
cmd = "touch independent-ran"
deps = ["bad-first"]

[tasks.bad-first]
cmd = "true"
"#;

#[test]
fn fail_fast_cancels_what_has_not_started_and_exits_1() {
    let p = Project::new(FAILING);
    // One job slot and `bad` listed first: `independent` cannot have started when `bad` fails.
    let out = p.irun().args(["-j1", "bad", "after-bad", "independent"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!p.exists("after-bad-ran") && !p.exists("independent-ran"), "{out:?}");
    assert!(
        out.stdout.contains("bad") && out.stdout.contains("FAILED") && out.stdout.contains("exit code 3"),
        "{out:?}"
    );
    assert!(out.stdout.contains("cancelled"), "{out:?}");
}

#[test]
fn fail_fast_stops_running_tasks() {
    let p = Project::new(
        "[tasks.slow]\ncmd = \"echo $$ > slow.pid; exec sleep 1000\"\n[tasks.bad]\ncmd = \"while [ ! -s slow.pid ]; do sleep 0.01; done; exit 1\"\n",
    );
    let out = p.irun().args(["-j2", "slow", "bad"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let pid = p.pids("slow.pid")[0];
    assert!(!alive(pid), "the running task was not stopped");
    assert!(out.stdout.lines().any(|l| l.starts_with("slow") && l.contains("* cancelled")), "{out:?}");
}

#[test]
fn keep_going_runs_everything_not_depending_on_the_failure() {
    let p = Project::new(FAILING);
    let out = p.irun().args(["-j1", "-k", "bad", "after-bad", "independent"]).run();
    assert_eq!(out.code, 1, "a failure still fails the run: {out:?}");
    assert!(p.exists("independent-ran"), "{out:?}");
    assert!(!p.exists("after-bad-ran"), "{out:?}");
    assert!(out.stdout.contains("skipped: dep `bad` failed"), "{out:?}");
}

#[test]
fn keep_going_skips_transitive_dependents() {
    let p = Project::new(
        "[tasks.bad]\ncmd = \"exit 1\"\n[tasks.mid]\ncmd = \"touch mid\"\ndeps = [\"bad\"]\n[tasks.top]\ncmd = \"touch top\"\ndeps = [\"mid\"]\n",
    );
    let out = p.irun().args(["-k", "top"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!p.exists("mid") && !p.exists("top"));
    assert!(out.stdout.contains("skipped: dep `mid` did not run"), "{out:?}");
}

#[test]
fn timeout_stops_the_task_and_fails_it() {
    let p = Project::new(
        "[tasks.slow]\ncmd = \"echo $$ > slow.pid; sleep 1000 & echo $! >> slow.pid; wait\"\ntimeout = \"300ms\"\n",
    );
    let out = p.irun().args(["slow"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("TIMED OUT"), "{out:?}");
    assert!(out.stdout.contains("timed out"), "summary says timed out: {out:?}");
    assert_all_dead(&p.pids("slow.pid"));
}

#[test]
fn env_cwd_and_argv_commands() {
    let p = Project::new(
        r#"
[env]
SHARED = "global"
OVERRIDDEN = "global"
NUMBER = 7

[tasks.shell]
cmd = "echo $SHARED $OVERRIDDEN $NUMBER $EXTRA > env.txt; pwd > cwd.txt"
env = { OVERRIDDEN = "task", EXTRA = "1" }
cwd = "sub"

[tasks.argv]
cmd = ["sh", "-c", "echo \"$0\" > argv.txt", "$HOME"]

[tasks.relative]
cmd = ["./tool.sh", "arg"]
cwd = "sub"
"#,
    );
    p.script("sub/tool.sh", "#!/bin/sh\necho \"tool $1\" > tool.txt\n");
    let out = p.irun().args(["shell", "argv", "relative"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(p.read("sub/env.txt"), "global task 7 1\n");
    let sub = std::fs::canonicalize(p.path("sub")).unwrap();
    assert_eq!(p.read("sub/cwd.txt").trim(), sub.to_str().unwrap());
    assert_eq!(p.read("argv.txt"), "$HOME\n", "array commands get no shell expansion");
    assert_eq!(p.read("sub/tool.txt"), "tool arg\n");
}

#[test]
fn a_missing_program_fails_the_task_clearly() {
    let p = Project::new("[tasks.a]\ncmd = [\"no-such-program-irun\"]\n");
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("cannot start `no-such-program-irun`: no such program"), "{out:?}");
}

#[test]
fn a_missing_cwd_fails_the_task_clearly() {
    let p = Project::new("[tasks.a]\ncmd = \"true\"\ncwd = \"nowhere\"\n");
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("nowhere does not exist"), "{out:?}");
}

#[test]
fn leftover_background_processes_of_a_finished_task_are_stopped() {
    let p = Project::new("[tasks.a]\ncmd = \"sleep 1000 & echo $! > bg.pid\"\n");
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_all_dead(&p.pids("bg.pid"));
}

#[test]
fn a_freed_slot_goes_to_the_client_of_a_service_that_just_became_ready() {
    // Two slots: `hold` and `svc` take them (`hold` keeps its slot until the client has started). When `svc`
    // becomes ready its slot goes to `client`, although `other` comes first in the file.
    let p = Project::new(
        r#"
[tasks.hold]
cmd = "while [ ! -e client.started ]; do sleep 0.01; done"

[tasks.other]
cmd = "echo other >> order.log"

[tasks.svc]
cmd = "echo up; exec sleep 1000"
daemon = true
ready = { log = "up" }

[tasks.client]
cmd = "echo client >> order.log; touch client.started"
deps = ["svc"]
"#,
    );
    let out = p.irun().args(["-j2", "hold", "other", "client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(p.read("order.log"), "client\nother\n", "{out:?}");
}

#[test]
fn a_chain_of_50_000_groups_is_walked_once() {
    // g1 -> g2 -> ... -> g50000 -> (a, db): each group's services were gathered by walking the whole chain below it
    // (5,000 groups took 5 s, 50,000 minutes; the harness gives up after one); gathered once each, it takes
    // seconds at most.
    let n = 50_000;
    let mut toml = String::from(
        "[tasks.a]\ncmd = \"echo a\"\n[tasks.b]\ncmd = \"echo b\"\n[tasks.db]\ncmd = \"exec sleep 600\"\ndaemon = true\n",
    );
    for i in 1..=n {
        let deps = if i < n { format!("\"g{}\"", i + 1) } else { "\"a\", \"db\"".to_string() };
        toml += &format!("[tasks.g{i}]\ndeps = [{deps}]\n");
    }
    toml += "[tasks.top]\ncmd = \"echo top\"\ndeps = [\"g1\", \"b\"]\n";
    let p = Project::new(&toml);
    let out = p.irun().args(["--progress", "never", "top"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    // db, gathered at the bottom of the chain, is up for top and stopped after it.
    let at = |line: &str| out.stdout.find(line).unwrap_or_else(|| panic!("no {line:?}: {out:?}"));
    assert!(at("db     * ready") < at("top    | top") && at("top    | top") < at("db     * stopping"), "{out:?}");
}
