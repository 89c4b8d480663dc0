//! The project's own integration suite (integration/ and the root Irun.toml), driven through irun.
//!
//! These tests need Python 3; the packages in integration/requirements.txt are installed (from PyPI, the first
//! time) by the suite's own `setup` script into a virtual environment of the tests' own, `target/suite-venv`.
//! Each test runs the root Irun.toml in a temporary project of its own (the same text, with a free port instead
//! of the repository's, `integration/` and `.venv` linked in): no test touches the repository's port, `.venv` or
//! `.irun/`, so `cargo test` passes while someone runs the suite with `irun` in the same checkout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::{Output, Project, alive, free_port, squatter};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tests' own virtual environment for the suite, made once per test binary by the suite's `setup` script.
fn suite_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = repo().join("target/suite-venv");
        let out = Command::new(repo().join("integration/setup")).env("INTEGRATION_VENV", &venv).output().unwrap();
        assert!(out.status.success(), "integration/setup failed: {out:?}");
        venv
    })
}

/// The root Irun.toml in a temporary project: the suite's server on a free port, `integration/` and `.venv`
/// linked to the repository's scripts and the tests' own venv. Returns the project and its port.
fn suite_project() -> (Project, u16) {
    let port = free_port();
    let text = std::fs::read_to_string(repo().join("Irun.toml")).unwrap();
    // The repository's own port, as its server's probe names it.
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let repo_port = doc["tasks"]["http-daemon"]["ready"]["tcp"].as_integer().unwrap().to_string();
    assert!(text.matches(&repo_port).count() >= 3, "the server's port, its probe and the client's argument");
    let p = Project::new(&text.replace(&repo_port, &port.to_string()));
    std::os::unix::fs::symlink(repo().join("integration"), p.path("integration")).unwrap();
    std::os::unix::fs::symlink(suite_venv(), p.path(".venv")).unwrap();
    (p, port)
}

/// Run one of the integration scripts directly, under the tests' venv.
fn script(name: &str, args: &[&str]) -> Output {
    let out = Command::new(repo().join("integration").join(name))
        .args(args)
        .env("INTEGRATION_VENV", suite_venv())
        .current_dir(repo())
        .output()
        .unwrap();
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
    let (p, _) = suite_project();
    let mut run = p.irun().args(["thread", "http", "typestubs", "init"]).spawn();
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
    let out =
        crate::harness::Irun::new().args(["-f", repo().join("Irun.toml").to_str().unwrap(), "graph", "--dot"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    graphviz_rust::parse(&out.stdout).unwrap_or_else(|e| panic!("invalid DOT: {e}\n{}", out.stdout));
    for edge in ["\"setup\" -> \"thread\"", "\"http-daemon\" -> \"http-client\"", "\"http-client\" -> \"http\""] {
        assert!(out.stdout.contains(edge), "{edge}: {}", out.stdout);
    }
}

#[test]
fn the_legacy_run_script_passes_its_names_to_irun() {
    let (p, _) = suite_project();
    let run = |args: &[&str]| {
        // Through the project's link, so it finds the project's Irun.toml (and state), not the repository's.
        let out = Command::new(p.path("integration/run"))
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
    let port = free_port();
    let root = repo().display();
    let venv = suite_venv().display();
    let p = Project::new(&format!(
        r#"
[tasks.server]
cmd = ["{venv}/bin/python", "{root}/integration/http", "--port", "{port}"]
daemon = true
ready = {{ tcp = {port}, timeout = "60s" }}
env = {{ INTEGRATION_WSGI_FAULT = "{fault}", INTEGRATION_VENV = "{venv}" }}

[tasks.client]
cmd = ["{venv}/bin/python", "{root}/integration/client", "{port}", "--duration", "0.5"]
deps = ["server"]
env = {{ INTEGRATION_VENV = "{venv}" }}
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
fn the_servers_port_held_by_another_process_is_reported_and_that_process_left_alone() {
    let (p, port) = suite_project();
    let squat = squatter(port);
    let out = p.irun().args(["http"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(&format!("port {port} is already in use by another process")), "{out:?}");
    assert!(!out.stdout.contains("http-client * started"), "{out:?}");
    assert!(alive(squat.pid()), "the process holding the port was killed");
}

#[test]
fn a_second_run_skips_setup_as_up_to_date() {
    let (p, _) = suite_project();
    let first = p.irun().args(["setup"]).run();
    assert_eq!(first.code, 0, "{first:?}");
    let out = p.irun().args(["explain", "setup"]).run();
    assert_eq!(out.stdout.lines().next(), Some("setup  up to date"), "{out:?}");
}
