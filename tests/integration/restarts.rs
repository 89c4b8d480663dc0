//! `restart = "on-failure" | "always"` with `max_restarts`: a service whose process exits is started again after a
//! growing pause, tasks that need it wait meanwhile (none is cancelled), and every restart is reported.

use std::path::PathBuf;

use crate::harness::Project;

/// `svc` counts its starts in `count` and exits 1 once `crash-<n>` appears (n: its start); `a` makes the first
/// instance crash and waits, still running, until the second one is up; `b` needs `a` and `svc`.
const CRASH_ONCE: &str = r#"
[tasks.svc]
cmd = "n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count; echo svc up $n; while [ ! -e crash-$n ]; do sleep 0.02; done; echo svc crashing; exit 1"
daemon = true
restart = "on-failure"
ready = { log = "svc up" }

[tasks.a]
cmd = "touch crash-1; while [ \"$(cat count)\" != 2 ]; do sleep 0.02; done; echo a saw the restart"
deps = ["svc"]

[tasks.b]
cmd = "echo b runs against start $(cat count)"
deps = ["a", "svc"]
"#;

#[test]
fn a_service_that_crashes_once_is_restarted_and_its_dependents_pass() {
    let p = Project::new(CRASH_ONCE);
    let out = p.irun().args(["--progress", "never", "--junit", "junit.xml", "b"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("svc * exited (exit code 1); restarting in 0.10s (restart 1 of 3)"), "{out:?}");
    assert!(out.stdout.contains("a   | a saw the restart"), "the running dependent was not cancelled: {out:?}");
    assert!(out.stdout.contains("b   | b runs against start 2"), "{out:?}");
    assert!(out.stdout.contains("service, restarted once"), "the summary counts it: {out:?}");
    let xml = p.read("junit.xml");
    assert!(xml.contains("[irun] exited (exit code 1); restarting in 100ms (restart 1 of 3)"), "{xml}");
    assert!(xml.contains("<property name=\"irun.restarts\" value=\"1\"/>"), "{xml}");
    let xsd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit-10.xsd");
    let check = crate::reporting::python(
        "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2]); print('valid')",
        &[xsd.to_str().unwrap(), p.path("junit.xml").to_str().unwrap()],
    );
    assert_eq!(check.code, 0, "{check:?}\n{xml}");
}

#[test]
fn each_restart_is_an_event() {
    let p = Project::new(CRASH_ONCE);
    let out = p.irun().args(["--json", "b"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let restart = out.stdout.lines().find(|l| l.contains("\"task_restarting\"")).expect("a restart event");
    let event: serde_json::Value = serde_json::from_str(restart).unwrap();
    assert_eq!(event["task"], "svc");
    assert_eq!(event["attempt"], 1);
    assert_eq!(event["max_restarts"], 3);
    assert_eq!(event["exit"], "exit code 1");
    assert_eq!(event["delay_s"], 0.1);
}

#[test]
fn a_service_that_keeps_crashing_fails_once_its_restarts_are_used_up() {
    let p = Project::new(
        "[tasks.svc]\ncmd = \"echo start >> starts; exit 2\"\ndaemon = true\nrestart = \"always\"\nmax_restarts = 2\n\
         ready = { tcp = \"auto\" }\n[tasks.client]\ncmd = \"true\"\ndeps = [\"svc\"]\n",
    );
    let out = p.irun().args(["--progress", "never", "client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(p.read("starts").lines().count(), 3, "started once, then restarted twice: {out:?}");
    assert!(out.stdout.contains("restarting in 0.10s (restart 1 of 2)"), "{out:?}");
    assert!(out.stdout.contains("restarting in 0.20s (restart 2 of 2)"), "the pause doubles: {out:?}");
    assert!(out.stdout.contains("svc    * FAILED"), "{out:?}");
    assert!(out.stdout.contains("cancelled  client") || out.stdout.contains("skipped"), "{out:?}");
}

#[test]
fn without_a_restart_policy_a_crash_fails_the_run_as_before() {
    let p = Project::new(&CRASH_ONCE.replace("restart = \"on-failure\"\n", ""));
    let out = p.irun().args(["--progress", "never", "b"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!out.stdout.contains("restarting"), "{out:?}");
}

#[test]
fn restart_keys_are_only_for_services() {
    let p = Project::new("[tasks.t]\ncmd = \"x\"\nrestart = \"always\"\n");
    let out = p.irun().args(["t"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("`restart` is only for services"), "{out:?}");
    let p = Project::new("[tasks.t]\ncmd = \"x\"\ndaemon = true\nrestart = \"sometimes\"\n");
    let out = p.irun().args(["t"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown `restart` \"sometimes\""), "{out:?}");
}

#[test]
fn a_stop_requested_while_a_crashed_service_is_cleaned_up_is_not_lost_to_a_restart() {
    // The service exits leaving a process that ignores SIGTERM, so cleaning its group up takes the stop timeout;
    // its dependent finishes meanwhile, and the engine asks the service to stop. It must not be started again.
    let p = Project::new(
        "[tasks.svc]\ncmd = \"(trap '' TERM; exec sleep 300) & echo $$ >> starts; touch exited; exit 1\"\n\
         daemon = true\nrestart = \"on-failure\"\nstop_timeout = \"1s\"\ntimeout = \"30s\"\n\
         [tasks.dep]\ncmd = \"while [ ! -e exited ]; do sleep 0.02; done\"\ndeps = [\"svc\"]\n",
    );
    let out = p.irun().args(["--progress", "never", "dep"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(p.read("starts").lines().count(), 1, "started once: {out:?}");
    assert!(!out.stdout.contains("TIMED OUT"), "{out:?}");
}
