//! The project's own integration suite (integration/ and the root Irun.toml), driven through irun.
//!
//! These tests need Python 3; the packages in integration/requirements.txt are installed into .venv (from PyPI) by
//! the suite's own `setup` task the first time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::harness::{Output, Project, alive, free_port, squatter};

/// Tests that run the root Irun.toml's server use port 8001: one at a time.
static PORT_8001: Mutex<()> = Mutex::new(());

fn port_8001() -> MutexGuard<'static, ()> {
    PORT_8001.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn irun_at_root() -> crate::harness::Irun {
    crate::harness::Irun::new().current_dir(repo())
}

/// Run the suite's `setup` task once per test binary, through irun.
fn ensure_venv() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = irun_at_root().args(["setup"]).run();
        assert_eq!(out.code, 0, "`irun setup` failed: {out:?}");
    });
}

/// Run one of the integration scripts directly.
fn script(name: &str, args: &[&str]) -> Output {
    ensure_venv();
    let out = Command::new(repo().join("integration").join(name)).args(args).current_dir(repo()).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

/// Pids gunicorn reported in its log: the master ("Listening at: ... (PID)") and each worker.
fn gunicorn_pids(output: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for line in output.lines() {
        if let Some(rest) = line.split("Booting worker with pid: ").nth(1) {
            pids.push(rest.trim().parse().unwrap());
        } else if line.contains("Listening at: ") {
            let master = line.rsplit('(').next().unwrap().trim_end_matches(')');
            pids.push(master.parse().unwrap());
        }
    }
    pids
}

#[test]
fn the_whole_suite_passes_through_irun_and_leaves_nothing_running() {
    let _port = port_8001();
    ensure_venv();
    // --force: every script runs, even if an earlier run left typestubs up to date.
    let mut run = irun_at_root().args(["--force", "thread", "http", "typestubs", "init"]).spawn();
    let irun_pid = run.pid();
    let out = run.wait();
    assert_eq!(out.code, 0, "{out:?}");
    // Each script's own verdict, as a line of that task's output.
    for (task, verdict) in [
        ("thread", "thread: ok:"),
        ("http-client", "client: ok:"),
        ("typestubs", "typestubs: ok:"),
        ("init", "init: ok:"),
    ] {
        let found = out.stdout.lines().any(|l| l.starts_with(task) && l.contains(&format!("| {verdict}")));
        assert!(found, "{task} did not report `{verdict}`: {out:?}");
    }
    assert!(out.stdout.contains("http-daemon * ready after"), "{out:?}");
    let gunicorn = gunicorn_pids(&out.stdout);
    assert_eq!(gunicorn.len(), 3, "a master and 2 workers: {out:?}");
    assert!(gunicorn.iter().all(|&p| !alive(p)), "gunicorn left running");
    assert_eq!(crate::harness::processes_of_run(irun_pid), Vec::<i32>::new(), "processes of the run left behind");
}

#[test]
fn graph_dot_of_the_root_irun_toml_is_valid() {
    let out = irun_at_root().args(["graph", "--dot"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    graphviz_rust::parse(&out.stdout).unwrap_or_else(|e| panic!("invalid DOT: {e}\n{}", out.stdout));
    for edge in ["\"setup\" -> \"thread\"", "\"http-daemon\" -> \"http-client\"", "\"http-client\" -> \"http\""] {
        assert!(out.stdout.contains(edge), "{edge}: {}", out.stdout);
    }
}

#[test]
fn the_legacy_run_script_passes_its_names_to_irun() {
    let run = |args: &[&str]| {
        let out = Command::new(repo().join("integration/run"))
            .args(args)
            .env("IRUN", env!("CARGO_BIN_EXE_irun"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let default = run(&["-n"]);
    assert!(default.contains("wave 2: thread, http-daemon") && default.contains("init"), "{default}");
    assert!(!default.contains("typestubs"), "{default}");
    let named = run(&["-n", "typestubs"]);
    assert!(named.contains("2 tasks") && named.contains("typestubs"), "{named}");
}

#[test]
fn thread_fails_when_an_expected_value_is_wrong() {
    let out = script("thread", &["--corrupt-expected", "--rounds", "3"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("thread: FAILED:"), "{out:?}");
    assert!(out.stdout.contains("item document['title']: loads gave a different value"), "{out:?}");
    let names_thread = out.stdout.lines().any(|l| {
        l.trim_start().strip_prefix("thread ").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    assert!(names_thread, "names the failing thread: {out:?}");
}

#[test]
fn thread_passes_unharmed() {
    let out = script("thread", &["--rounds", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("thread: ok:"), "{out:?}");
}

/// The real server and client through irun, with the server misbehaving as `fault` says.
fn client_against_faulty_server(fault: &str) -> Output {
    ensure_venv();
    let port = free_port();
    let root = repo().display();
    let p = Project::new(&format!(
        r#"
[tasks.server]
cmd = ["{root}/.venv/bin/python", "{root}/integration/http", "--port", "{port}"]
daemon = true
ready = {{ tcp = {port}, timeout = "60s" }}
env = {{ INTEGRATION_WSGI_FAULT = "{fault}" }}

[tasks.client]
cmd = ["{root}/.venv/bin/python", "{root}/integration/client", "{port}", "--duration", "0.5"]
deps = ["server"]
"#
    ));
    p.irun().args(["client"]).run()
}

#[test]
fn client_fails_on_a_500() {
    let out = client_against_faulty_server("status-500");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("client: FAILED:") && out.stdout.contains("status 500"), "{out:?}");
}

#[test]
fn client_fails_on_a_wrong_body() {
    let out = client_against_faulty_server("wrong-body");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("body decodes to a different document"), "{out:?}");
}

#[test]
fn client_fails_on_a_wrong_content_type() {
    let out = client_against_faulty_server("wrong-content-type");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("content type 'text/plain"), "{out:?}");
}

#[test]
fn client_passes_against_the_real_server() {
    let out = client_against_faulty_server("");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("client: ok:") && out.stdout.contains("all responses correct"), "{out:?}");
}

#[test]
fn client_fails_when_nothing_answers() {
    let port = free_port().to_string();
    let out = script("client", &[&port, "--duration", "0.3"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("ConnectionError"), "{out:?}");
}

#[test]
fn typestubs_fails_on_a_type_error() {
    let fixture: PathBuf = repo().join("integration/fixtures/typestubs_type_error.py");
    let out = script("typestubs", &["--file", fixture.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("Incompatible types in assignment"), "{out:?}");
    assert!(out.stdout.contains("typestubs: FAILED: mypy --strict found errors"), "{out:?}");
}

#[test]
fn init_fails_when_an_interpreter_errors() {
    let out = script("init", &["--fault", "error", "--interpreters", "2"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("interpreter 0, thread 0: RuntimeError: injected failure"), "{out:?}");
}

#[test]
fn init_fails_when_interpreters_disagree() {
    let out = script("init", &["--fault", "disagree", "--interpreters", "2"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("results disagree"), "{out:?}");
}

#[test]
fn port_8001_held_by_another_process_is_reported_and_that_process_left_alone() {
    let _port = port_8001();
    ensure_venv();
    let squat = squatter(8001);
    let out = irun_at_root().args(["http"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("port 8001 is already in use by another process"), "{out:?}");
    assert!(!out.stdout.contains("http-client * started"), "{out:?}");
    assert!(alive(squat.pid()), "the process holding port 8001 was killed");
}

#[test]
fn a_second_run_skips_setup_as_up_to_date() {
    ensure_venv();
    let out = irun_at_root().args(["explain", "setup"]).run();
    assert_eq!(out.stdout.trim(), "setup  up to date", "{out:?}");
}
