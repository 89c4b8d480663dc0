//! Fault injection: things broken on purpose. Each case checks that irun says what happened, exits with the
//! documented code, and leaves no process of its run behind (found by the IRUN_OWNER marker every process it
//! starts inherits).
//!
//! Cases covered elsewhere, with the same checks: SIGKILL to irun while services and tasks run
//! (`teardown::sigkill_to_irun_leaves_no_child`, `teardown::an_escaped_process_dies_with_irun_even_on_sigkill`),
//! a service that ignores SIGTERM (`teardown::a_service_that_ignores_sigterm_is_killed_after_its_stop_timeout`),
//! a service that double-forks and calls setsid (`teardown::a_process_that_escapes_a_services_group_is_still_stopped`).

use nix::sys::signal::Signal;

use crate::harness::{Output, Project, Running, free_port, processes_of_run, wait_all_dead};

/// Run to the end and return the output with the pid irun had.
fn run(p: &Project, args: &[&str]) -> (Output, i32) {
    let mut r = p.irun().args(args).spawn();
    let pid = r.pid();
    (r.wait(), pid)
}

fn nothing_left(irun_pid: i32) {
    let left = processes_of_run(irun_pid);
    // Processes killed a moment ago may still be on their way out.
    wait_all_dead(&left);
}

#[test]
fn sigint_twice_kills_a_service_that_would_take_an_hour_to_stop() {
    let p = Project::new(
        "[tasks.svc]\ncmd = \"trap '' TERM INT; echo up; while true; do sleep 0.05; done\"\ndaemon = true\nready = { log = \"up\" }\nstop_timeout = \"1h\"\n[tasks.client]\ncmd = \"echo client up; exec sleep 1000\"\ndeps = [\"svc\"]\n",
    );
    let mut r: Running = p.irun().args(["client"]).spawn();
    let pid = r.pid();
    r.wait_for_line("| client up");
    r.signal(Signal::SIGINT);
    r.wait_for_line("stopping (interrupted)");
    r.signal(Signal::SIGINT);
    let out = r.wait();
    assert_eq!(out.code, 130, "{out:?}");
    assert!(out.stdout.contains("received SIGINT again; killing everything now"), "{out:?}");
    nothing_left(pid);
}

#[test]
fn a_service_whose_port_never_opens_fails_with_the_probe_named() {
    let port = free_port();
    let p = Project::new(&format!(
        "[tasks.svc]\ncmd = \"exec sleep 1000\"\ndaemon = true\nready = {{ tcp = {port}, timeout = \"400ms\" }}\n[tasks.client]\ncmd = \"touch ran\"\ndeps = [\"svc\"]\n"
    ));
    let (out, pid) = run(&p, &["client"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "not ready after 400ms: never saw port {port} on 127.0.0.1 or ::1 accepting connections"
        )),
        "{out:?}"
    );
    assert!(!p.exists("ran"));
    nothing_left(pid);
}

#[test]
fn a_task_that_closes_its_output_and_keeps_running_is_waited_for() {
    let p = Project::new(
        "[tasks.quiet]\ncmd = \"echo before; exec >&- 2>&-; sleep 0.3; touch finished\"\n[tasks.after]\ncmd = \"test -e finished\"\ndeps = [\"quiet\"]\n",
    );
    let (out, pid) = run(&p, &["after"]);
    assert_eq!(out.code, 0, "the task counts as running until its process exits: {out:?}");
    assert!(out.stdout.contains("quiet | before"), "{out:?}");
    nothing_left(pid);
}

#[test]
fn a_task_that_closes_its_output_and_hangs_is_stopped_by_its_timeout() {
    let p = Project::new("[tasks.hang]\ncmd = \"exec >&- 2>&-; exec sleep 1000\"\ntimeout = \"300ms\"\n");
    let (out, pid) = run(&p, &["hang"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("hang * TIMED OUT: stopped after 300ms"), "{out:?}");
    nothing_left(pid);
}

#[test]
fn a_line_of_8_mb_without_a_newline_passes_through_in_pieces() {
    let p = Project::new(
        "[tasks.big]\ncmd = [\"python3\", \"-c\", \"import sys; sys.stdout.write('x' * (8 << 20)); sys.stdout.flush()\"]\n",
    );
    let (out, pid) = run(&p, &["big"]);
    assert_eq!(out.code, 0, "{out:?}");
    let pieces: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("big | x")).collect();
    let total: usize = pieces.iter().map(|l| l.len() - "big | ".len()).sum();
    assert_eq!(total, 8 << 20, "every byte arrives");
    assert!(pieces.len() >= 128, "in pieces of at most 64 KiB, not one 8 MB line: {} pieces", pieces.len());
    nothing_left(pid);
}

#[test]
fn two_thousand_tasks_at_jobs_64() {
    let mut toml = String::from("[tasks.all]\ndeps = [");
    toml.push_str(&(0..2000).map(|i| format!("\"t{i}\"")).collect::<Vec<_>>().join(", "));
    toml.push_str("]\n");
    for i in 0..2000 {
        // Each task depends on one of the previous hundred, so the graph has depth as well as width.
        let dep = if i >= 100 { format!("deps = [\"t{}\"]\n", i - 100 + (i % 7)) } else { String::new() };
        toml.push_str(&format!("[tasks.t{i}]\ncmd = [\"true\"]\n{dep}"));
    }
    let p = Project::new(&toml);
    let (out, pid) = run(&p, &["-j", "64", "all"]);
    assert_eq!(out.code, 0, "{}", &out.stdout[out.stdout.len().saturating_sub(2000)..]);
    assert!(out.stdout.contains("irun: passed: 2000 ok in"), "{}", &out.stdout[out.stdout.len().saturating_sub(500)..]);
    nothing_left(pid);
}
