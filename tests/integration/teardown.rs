//! No process irun started outlives it, and irun signals nothing it did not start.

use nix::sys::signal::Signal;

use crate::harness::{Project, alive, assert_all_dead, free_port, python, server_and_client, wait_all_dead};

/// A service whose shell starts two grandchildren, recording every pid (its own first).
const FAMILY: &str = "echo $$ > family.pids; sleep 1000 & echo $! >> family.pids; sh -c 'sleep 1000' & echo $! >> family.pids; echo family ready; wait";

fn family_project(extra_service_keys: &str) -> Project {
    Project::new(&format!(
        "[tasks.service]\ncmd = \"{FAMILY}\"\ndaemon = true\nready = {{ log = \"family ready\" }}\n{extra_service_keys}\n[tasks.client]\ncmd = \"touch client-ran\"\ndeps = [\"service\"]\n[tasks.long]\ncmd = \"echo $$ > long.pid; echo long started; exec sleep 1000\"\n"
    ))
}

#[test]
fn a_service_and_its_grandchildren_are_gone_after_the_run() {
    let p = family_project("");
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let pids = p.pids("family.pids");
    assert_eq!(pids.len(), 3);
    assert_all_dead(&pids);
}

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let p = server_and_client(
        "trap '' TERM; echo $$ > stubborn.pid; echo up; while true; do sleep 0.05; done",
        "ready = { log = \"up\" }\nstop_timeout = \"200ms\"",
    );
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("did not exit within 200ms of SIGTERM; killed it with SIGKILL"), "{out:?}");
    assert_all_dead(&p.pids("stubborn.pid"));
}

#[test]
fn stop_signal_is_sent_to_the_whole_group() {
    let p = server_and_client(
        "trap 'echo got INT > got-int; exit 0' INT; echo up; while true; do sleep 0.05; done",
        "ready = { log = \"up\" }\nstop_signal = \"SIGINT\"",
    );
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(p.read("got-int"), "got INT\n");
}

fn interrupted(sig: Signal, code: i32) {
    let p = family_project("");
    let mut run = p.irun().args(["-j4", "service", "long"]).spawn();
    run.wait_for_line("service * ready");
    run.wait_for_line("| long started");
    let mut pids = p.pids("family.pids");
    pids.extend(p.pids("long.pid"));
    run.signal(sig);
    let out = run.wait();
    assert_eq!(out.code, code, "{out:?}");
    assert!(out.stdout.contains(&format!("received {}", sig.as_str())), "{out:?}");
    assert_all_dead(&pids);
}

#[test]
fn sigint_stops_every_child_and_exits_130() {
    interrupted(Signal::SIGINT, 130);
}

#[test]
fn sigterm_stops_every_child_and_exits_143() {
    interrupted(Signal::SIGTERM, 143);
}

#[test]
fn a_second_sigint_kills_at_once() {
    let p = Project::new(
        "[tasks.stubborn]\ncmd = \"trap '' TERM INT; echo $$ > stubborn.pid; echo up; while true; do sleep 0.05; done\"\nstop_timeout = \"1h\"\n",
    );
    let mut run = p.irun().args(["stubborn"]).spawn();
    run.wait_for_line("stubborn | up");
    run.signal(Signal::SIGINT);
    run.wait_for_line("stopping (interrupted)");
    run.signal(Signal::SIGINT);
    let out = run.wait();
    assert_eq!(out.code, 130, "{out:?}");
    assert!(out.stdout.contains("killing everything now"), "{out:?}");
    assert_all_dead(&p.pids("stubborn.pid"));
}

#[test]
fn sigkill_to_irun_leaves_no_child() {
    let p = family_project("");
    let mut run = p.irun().args(["-j4", "service", "long"]).spawn();
    run.wait_for_line("service * ready");
    run.wait_for_line("| long started");
    let mut pids = p.pids("family.pids");
    pids.extend(p.pids("long.pid"));
    assert!(pids.iter().all(|&p| alive(p)));
    run.signal(Signal::SIGKILL);
    let out = run.wait();
    assert_eq!(out.code, 128 + 9);
    // Nothing of irun's is left to wait for; the kernel and irun's guard act asynchronously.
    wait_all_dead(&pids);
}

#[test]
fn a_decoy_with_the_same_command_line_survives() {
    let port = free_port();
    let p = server_and_client(&format!("exec python3 serve.py {port} 0"), &format!("ready = {{ tcp = {port} }}"));
    // Same program and arguments as the service, as `pkill -f` would see them.
    let decoy = python(&["-c", "import time; time.sleep(600)", "python3", "serve.py", &port.to_string(), "0"]);
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!alive(p.pids("server.pid")[0]), "the service is stopped");
    assert!(alive(decoy.pid()), "the decoy was killed");
}

#[test]
fn a_failing_client_still_tears_the_service_down() {
    let p = family_project("");
    std::fs::write(p.path("Irun.toml"), p.read("Irun.toml").replace("touch client-ran", "exit 1")).unwrap();
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert_all_dead(&p.pids("family.pids"));
}

/// Starts `sleep 1000` in a new session (escaping the task's process group) and records its pid.
const ESCAPE: &str = "python3 -c 'import os,sys\nif os.fork() == 0:\n    os.setsid()\n    open(\"escaped.pid\",\"w\").write(str(os.getpid())+chr(10))\n    os.execvp(\"sleep\", [\"sleep\", \"1000\"])\n'";

#[test]
fn a_process_that_escapes_a_services_group_is_still_stopped() {
    let p = server_and_client(
        &format!("{ESCAPE}; while [ ! -e escaped.pid ]; do sleep 0.01; done; echo up; exec sleep 1000"),
        "ready = { log = \"up\" }",
    );
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let pid = p.pids("escaped.pid")[0];
    assert!(!alive(pid), "the escaped process outlived irun: {out:?}");
}

#[test]
fn a_process_that_escapes_a_finished_task_is_stopped_by_the_end_of_the_run() {
    let p = Project::new(&format!(
        "[tasks.leaky]\ncmd = \"\"\"{ESCAPE}; while [ ! -e escaped.pid ]; do sleep 0.01; done\"\"\"\n"
    ));
    // Process groups: with a cgroup per task, the escapee is stopped with its task instead (see escapees.rs).
    let out = p.irun().env("IRUN_CGROUP", "off").args(["leaky"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!alive(p.pids("escaped.pid")[0]), "the escaped process outlived irun: {out:?}");
    assert!(out.stdout.contains("stopped 1 process that had left its task's process group"), "{out:?}");
}

#[test]
fn an_escaped_process_dies_with_irun_even_on_sigkill() {
    let p = Project::new(&format!(
        "[tasks.leaky]\ncmd = \"\"\"{ESCAPE}; while [ ! -e escaped.pid ]; do sleep 0.01; done; echo escaped; exec sleep 1000\"\"\"\n"
    ));
    let mut run = p.irun().args(["leaky"]).spawn();
    run.wait_for_line("| escaped");
    let pid = p.pids("escaped.pid")[0];
    assert!(alive(pid));
    run.signal(Signal::SIGKILL);
    run.wait();
    wait_all_dead(&[pid]);
}

#[test]
fn a_blocked_stdout_does_not_stop_irun_from_enforcing_timeouts() {
    let p = Project::new(
        "[tasks.chatty]\ncmd = \"echo $$ > chatty.pid; exec yes 'a line of chatter'\"\ntimeout = \"300ms\"\n",
    );
    // Nobody reads irun's stdout: it blocks as soon as the pipe is full.
    let irun = crate::harness::Bystander(
        std::process::Command::new(env!("CARGO_BIN_EXE_irun"))
            .current_dir(p.root())
            .arg("chatty")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    p.wait_for_file("chatty.pid");
    wait_all_dead(&p.pids("chatty.pid"));
    drop(irun);
}

/// Bytes irun has read so far (`rchar` in /proc/PID/io).
fn bytes_read(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Whether `sig` is waiting to be delivered to the process (not yet handled).
fn pending(pid: i32, sig: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = |field: &str| {
        status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    let bit = 1u64 << (sig as i32 - 1);
    [mask("ShdPnd:"), mask("SigPnd:")].into_iter().flatten().any(|m| m & bit != 0)
}

#[test]
fn two_sigints_back_to_back_kill_at_once() {
    // The service ignores SIGTERM and may take ten minutes to stop: only a kill ends it soon. The client's source
    // is a big file, so irun's loop is busy hashing it when both signals arrive: it sees them together.
    let p = Project::new(
        r#"
[tasks.svc]
cmd = "trap '' TERM; echo $$ > svc.pid; echo up; while true; do sleep 0.05; done"
daemon = true
ready = { log = "up" }
stop_timeout = "10m"

# `client` is checked (big.bin hashed) once `late` is done, which is after svc is ready.
[tasks.late]
cmd = "true"
deps = ["svc"]

[tasks.client]
cmd = "true"
deps = ["svc", "late"]
sources = ["big.bin"]
"#,
    );
    std::fs::File::create(p.path("big.bin")).unwrap().set_len(64 << 20).unwrap();
    let mut run = p.irun().args(["client"]).spawn();
    run.wait_for_line("svc    * ready");
    let pid = run.pid();
    let before = bytes_read(pid);
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    while bytes_read(pid) < before + (4 << 20) {
        assert!(std::time::Instant::now() < deadline, "irun never started hashing big.bin");
        std::thread::yield_now();
    }
    run.signal(Signal::SIGINT);
    // The second goes as soon as the first has been delivered (two pending SIGINTs would be one to the kernel).
    while pending(pid, Signal::SIGINT) {
        std::thread::yield_now();
    }
    run.signal(Signal::SIGINT);
    let out = run.wait();
    assert_eq!(out.code, 130, "{out:?}");
    assert!(out.stdout.contains("received SIGINT again; killing everything now"), "{out:?}");
    assert_all_dead(&p.pids("svc.pid"));
}

/// A task that starts a process that leaves its group (setsid) and clears its environment (no IRUN_OWNER marker),
/// then ends once it has: it runs `sleep` (the last exec of the chain) with an empty environment (an environment
/// read while the process execs can look empty too, before it has left the group). `hold` keeps the run going.
const ESCAPEE: &str = r#"
[tasks.spawner]
cmd = '''nohup setsid env -i /bin/sleep 300 >/dev/null 2>&1 & echo $! > esc.pid; until [ "$(cat /proc/$!/comm)" = sleep ] && [ -z "$(tr -d '\000' < /proc/$!/environ)" ]; do sleep 0.01; done'''

[tasks.hold]
cmd = "echo $$ > hold.pid; echo holding; exec sleep 1000"
"#;

#[test]
fn an_escapee_that_clears_its_environment_is_stopped_when_the_run_ends() {
    let p = Project::new(ESCAPEE);
    let out = p.irun().env("IRUN_CGROUP", "off").args(["spawner"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let esc = p.pids("esc.pid");
    assert_all_dead(&esc);
    assert!(out.stdout.contains("stopped 1 process that had left its task's process group"), "{out:?}");
}

/// The pid of irun's guard process.
fn guard_of(irun: i32) -> i32 {
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (ppid == irun && comm.trim() == "irun-guard").then_some(pid)
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "irun {irun} has no guard process");
        std::thread::yield_now();
    }
}

fn sigkill_leaves_nothing(kill_guard_first: bool) {
    let p = Project::new(ESCAPEE);
    // Process groups: irun says when it adopts an escapee, which a cgroup would have kept (see escapees.rs).
    let mut run = p.irun().env("IRUN_CGROUP", "off").args(["-j2", "spawner", "hold"]).spawn();
    run.wait_for_line("| holding");
    // irun has seen the escapee re-parented to it, and told its guard.
    run.wait_for_line("left its task's process group and outlived its parent");
    let mut pids = p.pids("esc.pid");
    pids.extend(p.pids("hold.pid"));
    if kill_guard_first {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(guard_of(run.pid())), Signal::SIGKILL).unwrap();
        run.wait_for_line("irun's guard process ended (killed by SIGKILL); started a new one");
    }
    run.signal(Signal::SIGKILL);
    run.wait();
    wait_all_dead(&pids);
}

#[test]
fn sigkill_of_irun_leaves_no_escapee_even_without_its_marker() {
    sigkill_leaves_nothing(false);
}

#[test]
fn sigkill_of_irun_after_its_guard_was_killed_leaves_nothing_behind() {
    sigkill_leaves_nothing(true);
}

#[test]
fn a_child_irun_inherited_from_the_process_it_replaced_is_left_alone() {
    // `sidecar & exec irun`: the sidecar is irun's child from the start, but not a process irun started.
    let p = Project::new("[tasks.t]\ncmd = \"true\"\n");
    let script = format!("sleep 300 >/dev/null 2>&1 & echo $! > sidecar.pid; exec {} t", env!("CARGO_BIN_EXE_irun"));
    let out = std::process::Command::new("sh").args(["-c", &script]).current_dir(p.root()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let sidecar = p.pids("sidecar.pid");
    let still_there = alive(sidecar[0]);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(sidecar[0]), Signal::SIGKILL);
    assert!(still_there, "irun stopped a process it did not start: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn sigkill_of_irun_stops_a_task_that_cleared_its_environment_through_the_guards_list_of_groups() {
    // The task's process has no IRUN_OWNER marker left and never leaves its group: only the guard's list of process
    // groups (shared with irun) can find it once irun is gone.
    let p = Project::new(
        "[tasks.hold]\ncmd = \"echo $$ > hold.pid; exec env -i /bin/sh -c 'echo cleared; exec /bin/sleep 1000'\"\n",
    );
    let mut run = p.irun().args(["hold"]).spawn();
    run.wait_for_line("hold | cleared");
    let pids = p.pids("hold.pid");
    run.signal(Signal::SIGKILL);
    run.wait();
    wait_all_dead(&pids);
}

/// A run that ends while another irun holds the state's lock waits for it, says so, and a signal during that wait
/// ends irun at once with the signal's exit code, the state not saved.
fn interrupted_waiting_for_the_state_lock(sig: Signal, code: i32) {
    let p = Project::new("[tasks.a]\ncmd = \"echo a ran\"\nsources = [\"Irun.toml\"]\n");
    std::fs::create_dir(p.path(".irun")).unwrap();
    let file = std::fs::File::create(p.path(".irun/state.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
    let mut run = p.irun().args(["--progress", "never", "a"]).spawn();
    run.wait_for_line("a ran");
    let waiting = run.wait_for_line("irun: waiting for another irun to release ");
    assert!(waiting.contains("/.irun/state.lock before saving this run's state (Ctrl-C: stop without saving)"));
    run.signal(sig);
    let out = run.wait();
    assert_eq!(out.code, code, "{out:?}");
    let signal = sig.as_str();
    assert!(
        out.stdout.contains("warning: cannot save irun's state to ")
            && out.stdout.contains(&format!(": interrupted by {signal} while waiting for another irun")),
        "{out:?}"
    );
    assert!(!p.exists(".irun/state.bin"), "nothing was saved: {out:?}");
    drop(held);
}

#[test]
fn sigint_while_waiting_for_the_state_lock_exits_130() {
    interrupted_waiting_for_the_state_lock(Signal::SIGINT, 130);
}

#[test]
fn sigterm_while_waiting_for_the_state_lock_exits_143() {
    interrupted_waiting_for_the_state_lock(Signal::SIGTERM, 143);
}
