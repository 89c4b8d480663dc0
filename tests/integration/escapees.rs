//! Nothing a task starts escapes it: not by `setsid`, not by clearing its environment, not by outliving irun. Each
//! test runs twice: with a cgroup per task (where the machine lets irun make them; elsewhere the run falls back to
//! process groups, and the test still holds) and with process groups alone (`IRUN_CGROUP=off`).

use std::path::PathBuf;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::harness::{Irun, PATIENCE, Project, alive, assert_all_dead, free_port, wait_all_dead};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Cgroups,
    ProcessGroups,
}

fn irun(p: &Project, mode: Mode) -> Irun {
    let irun = p.irun();
    match mode {
        Mode::Cgroups => irun,
        Mode::ProcessGroups => irun.env("IRUN_CGROUP", "off"),
    }
}

/// Whether irun can make cgroups here: cgroup v2 mounted, and a directory can be made in the test's own cgroup
/// (irun's, as its child).
fn cgroups_writable() -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let Some(mount) = info.lines().find(|l| l.contains(" - cgroup2 ")).and_then(|l| l.split(' ').nth(4)) else {
        return false;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(own) = own.lines().find_map(|l| l.strip_prefix("0::")) else { return false };
    let probe =
        PathBuf::from(mount).join(own.trim_start_matches('/')).join(format!("irun-test-{}", std::process::id()));
    let made = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    made
}

/// The `processes` event of a `--json` run: how it held its processes (`cgroup` or `process_group`) and its cgroup.
fn isolation(json: &str) -> (String, Option<PathBuf>) {
    let line = json.lines().find(|l| l.contains(r#""event":"processes""#)).expect("a processes event");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    (v["isolation"].as_str().unwrap().to_string(), v["cgroup"].as_str().map(PathBuf::from))
}

fn wait_until_gone(dir: &std::path::Path) {
    let deadline = Instant::now() + PATIENCE;
    while dir.exists() {
        assert!(Instant::now() < deadline, "{} is still there", dir.display());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_run_says_whether_it_holds_its_processes_in_cgroups() {
    let p = Project::new("[tasks.t]\ncmd = \"true\"\n");
    let out = irun(&p, Mode::ProcessGroups).args(["--json", "t"]).run();
    assert_eq!(isolation(&out.stdout), ("process_group".to_string(), None), "{out:?}");
    let out = irun(&p, Mode::Cgroups).args(["--json", "t"]).run();
    let (how, dir) = isolation(&out.stdout);
    assert_eq!(how, if cgroups_writable() { "cgroup" } else { "process_group" }, "{out:?}");
    if let Some(dir) = dir {
        assert!(!dir.exists(), "the run's cgroup is removed when the run ends: {}", dir.display());
    }
}

/// A service that starts `sleep 300` in a session of its own with an empty environment (no `IRUN_OWNER`), still
/// holding the service's output pipes, and records its pid once it is `sleep`.
const SETSID_SERVICE: &str = r#"
[tasks.svc]
cmd = '''setsid env -i sleep 300 & echo $! > esc.pid; until [ "$(cat /proc/$!/comm)" = sleep ]; do sleep 0.01; done; echo up; exec sleep 1000'''
daemon = true
ready = { log = "up" }

[tasks.client]
cmd = "true"
deps = ["svc"]
"#;

fn a_services_escapee_ends_with_the_run(mode: Mode) {
    let p = Project::new(SETSID_SERVICE);
    let out = irun(&p, mode).args(["--json", "client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_all_dead(&p.pids("esc.pid"));
    if let (_, Some(dir)) = isolation(&out.stdout) {
        assert!(!dir.exists(), "the run's cgroup is removed: {}", dir.display());
    }
}

#[test]
fn a_services_escapee_without_its_marker_ends_with_the_run_with_cgroups() {
    a_services_escapee_ends_with_the_run(Mode::Cgroups);
}

#[test]
fn a_services_escapee_without_its_marker_ends_with_the_run_with_process_groups() {
    a_services_escapee_ends_with_the_run(Mode::ProcessGroups);
}

fn a_services_escapee_dies_with_a_killed_irun(mode: Mode) {
    let p = Project::new(SETSID_SERVICE.replace("cmd = \"true\"", "cmd = \"exec sleep 1000\"").as_str());
    let mut run = irun(&p, mode).args(["--json", "client"]).spawn();
    run.wait_for_line(r#""event":"task_ready""#);
    let esc = p.pids("esc.pid");
    assert!(alive(esc[0]));
    run.signal(Signal::SIGKILL);
    let out = run.wait();
    // The guard cleans up once irun is gone.
    wait_all_dead(&esc);
    if let (_, Some(dir)) = isolation(&out.stdout) {
        wait_until_gone(&dir);
    }
}

#[test]
fn a_services_escapee_without_its_marker_dies_with_a_killed_irun_with_cgroups() {
    a_services_escapee_dies_with_a_killed_irun(Mode::Cgroups);
}

#[test]
fn a_services_escapee_without_its_marker_dies_with_a_killed_irun_with_process_groups() {
    a_services_escapee_dies_with_a_killed_irun(Mode::ProcessGroups);
}

fn a_restarted_services_escapee_frees_its_port(mode: Mode) {
    let port = free_port();
    let p = Project::new(&format!(
        r#"
[tasks.web]
cmd = '''setsid env -i python3 serve.py {port} 0 & echo $! >> esc.pids; exec sleep 1000'''
daemon = true
ready = {{ tcp = {port} }}
sources = ["web.cfg"]

[tasks.client]
cmd = "true"
deps = ["web"]
"#
    ));
    p.file("serve.py", crate::harness::SERVE_PY);
    p.file("web.cfg", "1\n");
    let mut run = irun(&p, mode).args(["--watch", "client"]).spawn();
    run.wait_for_line("irun: watching ");
    run.wait_for_count("irun: waiting for changes", 1);
    p.file("web.cfg", "2\n");
    run.wait_for_count("irun: waiting for changes", 2);
    let esc = p.pids("esc.pids");
    assert_eq!(esc.len(), 2, "web restarted: {}", run.printed());
    assert!(!alive(esc[0]), "the first instance's escapee is gone: {}", run.printed());
    assert!(alive(esc[1]), "the new instance's escapee serves the port: {}", run.printed());
    assert!(!run.printed().contains("already in use"), "{}", run.printed());
    run.signal(Signal::SIGINT);
    let out = run.wait();
    assert_eq!(out.code, 130, "{out:?}");
    assert_all_dead(&esc);
}

#[test]
fn a_restarted_services_escapee_frees_its_port_for_the_new_instance_with_cgroups() {
    a_restarted_services_escapee_frees_its_port(Mode::Cgroups);
}

#[test]
fn a_restarted_services_escapee_frees_its_port_for_the_new_instance_with_process_groups() {
    a_restarted_services_escapee_frees_its_port(Mode::ProcessGroups);
}

/// The cgroup.procs of the test's own cgroup (irun's, as its child): writing a pid there takes a process out of the
/// run's cgroups, as only root (or a delegated user) can.
fn own_cgroup_procs() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount =
        info.lines().find(|l| l.contains(" - cgroup2 ")).and_then(|l| l.split(' ').nth(4)).unwrap_or("/nowhere");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/").to_string();
    PathBuf::from(mount).join(own.trim_start_matches('/')).join("cgroup.procs")
}

fn a_stray_pipe_holder_does_not_hold_its_task_back(mode: Mode) {
    // `quick` starts a process that leaves its group (and its cgroup, where it can) but keeps quick's stdout and
    // stderr, and waits on a FIFO only the test writes to; `hold` keeps the run going meanwhile.
    let procs = own_cgroup_procs();
    let p = Project::new(&format!(
        r#"
[tasks.quick]
cmd = '''setsid sh -c 'echo $$ > {procs} 2>/dev/null; echo $$ > esc.tmp; mv esc.tmp esc.pid; read x < hold.fifo; echo late; echo late >&2' & until [ -e esc.pid ]; do sleep 0.01; done'''

[tasks.hold]
cmd = "until [ -e release ]; do sleep 0.01; done"
"#,
        procs = procs.display()
    ));
    nix::unistd::mkfifo(&p.path("hold.fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut run = irun(&p, mode).args(["--json", "-j2", "quick", "hold"]).spawn();
    run.wait_for_line(r#""event":"task_finished","status":"ok","task":"quick""#);
    // quick has ended, and the process holding its pipes still waits for the test: it has not closed them.
    let esc = p.pids("esc.pid");
    assert!(alive(esc[0]), "{}", run.printed());
    use std::io::Write;
    std::fs::OpenOptions::new().write(true).open(p.path("hold.fifo")).unwrap().write_all(b"go\n").unwrap();
    p.file("release", "");
    let out = run.wait();
    assert_eq!(out.code, 0, "{out:?}");
    wait_all_dead(&esc);
}

#[test]
fn a_stray_pipe_holder_does_not_hold_its_task_back_with_cgroups() {
    a_stray_pipe_holder_does_not_hold_its_task_back(Mode::Cgroups);
}

#[test]
fn a_stray_pipe_holder_does_not_hold_its_task_back_with_process_groups() {
    a_stray_pipe_holder_does_not_hold_its_task_back(Mode::ProcessGroups);
}

/// A service whose shell starts `sleep 300` through a shell that exits at once (re-parented to irun, but still in
/// the service's group), then `sleep 301` the same way in a session of its own; a client waits for `release`.
const ORPHANS: &str = r#"
[tasks.svc]
cmd = '''sh -c 'sleep 300 & echo $! > stay.pid'; sh -c 'setsid sleep 301 & echo $! > left.pid'; echo up; exec sleep 1000'''
daemon = true
ready = { log = "up" }

[tasks.client]
cmd = "until [ -e release ]; do sleep 0.01; done"
deps = ["svc"]
"#;

const LEFT: &str = "left its task's process group";

#[test]
fn only_a_process_that_left_its_group_is_said_to_have_left_it_naming_its_program_and_task() {
    let p = Project::new(ORPHANS);
    let mut run = irun(&p, Mode::ProcessGroups).args(["--events", "events.jsonl", "client"]).spawn();
    // Both orphans exist before irun's look that finds the second: that look saw the first too.
    let line = run.wait_for_line(LEFT);
    p.file("release", "");
    let out = run.wait();
    assert_eq!(out.code, 0, "{out:?}");
    let (stay, left) = (p.pids("stay.pid")[0], p.pids("left.pid")[0]);
    assert_eq!(out.stdout.matches(LEFT).count(), 1, "{out:?}");
    assert!(line.starts_with("svc ") && line.contains(&format!("process {left} (sleep 301) {LEFT}")), "{line}");
    let notices: Vec<serde_json::Value> = p
        .read("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "orphan_adopted")
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = &notices[0];
    assert_eq!(
        (&n["pid"], &n["task"], &n["program"], &n["command"]),
        (&left.into(), &"svc".into(), &"sleep".into(), &"sleep 301".into())
    );
    assert_all_dead(&[stay, left]);
}

#[test]
fn with_cgroups_nothing_leaves_its_task_and_nothing_is_said_to() {
    let p = Project::new(ORPHANS);
    let mut run = irun(&p, Mode::Cgroups).args(["--json", "client"]).spawn();
    run.wait_for_line(r#""event":"task_ready""#);
    let cgroup = isolation(&run.printed()).1;
    let (stay, left) = (p.pids("stay.pid")[0], p.pids("left.pid")[0]);
    p.file("release", "");
    let out = run.wait();
    assert_eq!(out.code, 0, "{out:?}");
    assert_all_dead(&[stay, left]);
    if cgroup.is_some() {
        assert!(!out.stdout.contains("orphan_adopted"), "{out:?}");
    }
}

/// A service whose first instance leaves a server running in a session of its own (with an empty environment where
/// `clear` is `env -i`) and exits 1 once it listens; the restarted instance starts its own on the same port, and is
/// ready once it listens (it fails, and so does the run, if the first one still holds the port).
fn crash_after_escaping(port: u16, clear: &str) -> Project {
    let p = Project::new(&format!(
        r#"
[tasks.web]
cmd = '''PY=$(command -v python3); if [ -e once ]; then rm -f listening; fi; setsid {clear} sh -c "$PY serve.py {port} 0 || touch failed" & echo $! >> esc.pids; until [ -e listening ] || [ -e failed ]; do sleep 0.01; done; [ -e listening ] || exit 7; if [ -e once ]; then echo second; exec sleep 1000; fi; touch once; exit 1'''
daemon = true
restart = "on-failure"
max_restarts = 1
ready = {{ log = "second" }}

[tasks.client]
cmd = "true"
deps = ["web"]
"#
    ));
    p.file("serve.py", crate::harness::SERVE_PY);
    p
}

fn a_service_restarted_after_a_crash_gets_its_port_back(mode: Mode, clear: &str) {
    let port = free_port();
    let p = crash_after_escaping(port, clear);
    let out = irun(&p, mode).args(["--json", "client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(r#""event":"task_restarting""#), "{out:?}");
    assert!(!out.stdout.contains("already in use"), "{out:?}");
    let esc = p.pids("esc.pids");
    assert_eq!(esc.len(), 2, "{out:?}");
    assert_all_dead(&esc);
}

#[test]
fn a_service_restarted_after_a_crash_gets_its_port_back_from_an_escapee_without_its_marker_with_cgroups() {
    if !cgroups_writable() {
        // Process groups cannot tell whose it is once its parent is gone (see the test below).
        return;
    }
    a_service_restarted_after_a_crash_gets_its_port_back(Mode::Cgroups, "env -i");
}

#[test]
fn a_service_restarted_after_a_crash_gets_its_port_back_from_an_escapee_with_its_marker_with_process_groups() {
    a_service_restarted_after_a_crash_gets_its_port_back(Mode::ProcessGroups, "");
}

#[test]
fn a_task_is_in_its_own_cgroup_from_its_first_instruction() {
    if !cgroups_writable() {
        eprintln!("cgroup v2 is not writable here: nothing to check");
        return;
    }
    // The task's program is `cat` itself, executed directly: what it prints is where it was at exec.
    let p = Project::new(
        "[tasks.a]\ncmd = [\"cat\", \"/proc/self/cgroup\"]\n[tasks.b]\ncmd = [\"cat\", \"/proc/self/cgroup\"]\n",
    );
    let out = irun(&p, Mode::Cgroups).args(["--json", "a", "b"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let (mode, run) = isolation(&out.stdout);
    assert_eq!(mode, "cgroup", "{out:?}");
    let run = run.unwrap();
    let run_name = run.file_name().unwrap().to_string_lossy().to_string();
    let places: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| l.contains(r#""event":"output""#) && l.contains("0::"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(places.len(), 2, "{out:?}");
    for place in &places {
        // Its own cgroup, below the run's (`0::/…/irun-…/t3`).
        assert!(place.contains(&format!("/{run_name}/t")), "{place} is not under the run's cgroup {run_name}");
    }
}
