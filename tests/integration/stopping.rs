//! Stopping like a terminal: Ctrl-C reaches tasks as SIGINT, every other stop is the task's `stop_signal`, and the
//! guard stops what irun leaves behind the same way (stop signal, grace period, SIGKILL).

use nix::sys::signal::Signal;

use crate::harness::{Project, alive, wait_all_dead};

/// A task that writes which of SIGINT, SIGTERM and SIGHUP it got to `got`, and exits.
const TRAPS: &str = "trap 'echo INT > got; exit 0' INT; trap 'echo TERM > got; exit 0' TERM; trap 'echo HUP > got; exit 0' HUP; touch up; echo up; while true; do sleep 0.05; done";

fn stopped_by_signal_to_irun(sig: Signal) -> String {
    let p = Project::new(&format!("[tasks.trap]\ncmd = \"{TRAPS}\"\nstop_signal = \"SIGHUP\"\n"));
    let mut run = p.irun().args(["trap"]).spawn();
    run.wait_for_line("trap | up");
    run.signal(sig);
    let out = run.wait();
    assert_eq!(out.code, 128 + sig as i32, "{out:?}");
    p.wait_for_file("got")
}

#[test]
fn ctrl_c_stops_a_task_with_sigint() {
    assert_eq!(stopped_by_signal_to_irun(Signal::SIGINT), "INT\n");
}

#[test]
fn sigterm_to_irun_stops_a_task_with_its_stop_signal() {
    assert_eq!(stopped_by_signal_to_irun(Signal::SIGTERM), "HUP\n");
}

#[test]
fn a_failure_elsewhere_stops_a_task_with_its_stop_signal() {
    let p = Project::new(&format!(
        "[tasks.trap]\ncmd = \"{TRAPS}\"\nstop_signal = \"SIGHUP\"\n[tasks.fail]\ncmd = \"while [ ! -f up ]; do sleep 0.01; done; exit 1\"\n"
    ));
    let out = p.irun().args(["-j2", "--json", "trap", "fail"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(p.read("got"), "HUP\n");
    assert!(
        out.stdout.lines().any(|l| l.contains("\"task_stopping\"") && l.contains("\"signal\":\"SIGHUP\"")),
        "{out:?}"
    );
}

#[test]
fn after_irun_is_killed_the_guard_sends_the_stop_signal_and_sigkill_only_after_the_grace_period() {
    let p = Project::new(
        "[tasks.polite]\ncmd = \"trap 'echo TERM > polite.got; exit 0' TERM; echo $$ > polite.pid; echo polite up; exec >> polite.log 2>&1; while true; do sleep 0.05; done\"\n\
         [tasks.stubborn]\ncmd = \"trap 'echo TERM >> stubborn.log' TERM; echo $$ > stubborn.pid; echo stubborn up; exec >> stubborn.out 2>&1; while true; do sleep 0.05; [ -f stubborn.log ] && echo alive >> stubborn.log; done\"\nstop_timeout = \"1s\"\n",
    );
    // Once irun is gone nobody reads the tasks' pipes: they write elsewhere, or the shell would die of SIGPIPE.
    let mut run = p.irun().args(["-j2", "polite", "stubborn"]).spawn();
    run.wait_for_line("| polite up");
    run.wait_for_line("| stubborn up");
    let (polite, stubborn) = (p.pids("polite.pid")[0], p.pids("stubborn.pid")[0]);
    run.signal(Signal::SIGKILL);
    assert_eq!(run.wait().code, 128 + 9);
    // The polite task was asked, and left on its own.
    assert_eq!(p.wait_for_file("polite.got"), "TERM\n");
    wait_all_dead(&[polite]);
    // The stubborn one got the signal and lived on after it (it is not killed at once) ...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !p.exists("stubborn.log") || !p.read("stubborn.log").contains("alive") {
        assert!(std::time::Instant::now() < deadline && alive(stubborn), "the stubborn task never outlived SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(p.read("stubborn.log").starts_with("TERM\n"), "{}", p.read("stubborn.log"));
    // ... until its grace period was over.
    wait_all_dead(&[stubborn]);
}
