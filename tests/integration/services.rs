//! Services: started, probed, needed, stopped.

use crate::harness::{Project, SERVE_PY, alive, free_port, server_and_client, squatter};

fn service_project(port: u16, delay: &str, extra: &str) -> Project {
    let p = Project::new(&format!(
        r#"
[tasks.server]
cmd = "exec python3 serve.py {port} {delay}"
daemon = true
ready = {{ tcp = {port}, timeout = "1m" }}

[tasks.client]
cmd = "date +%s%N > client.start; python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:{port}/\").read().decode())'"
deps = ["server"]
{extra}
"#
    ));
    p.file("serve.py", SERVE_PY);
    p
}

#[test]
fn dependent_starts_after_the_port_opens() {
    let port = free_port();
    let p = service_project(port, "0.5", "");
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.stamp("listening") <= p.stamp("client.start"), "client started before the port opened");
    assert!(out.stdout.contains("client | ok"), "client reached the server: {out:?}");
    assert!(
        out.stdout.contains("ready after")
            && out.stdout.contains(&format!("port {port} on 127.0.0.1 or ::1 accepting connections")),
        "{out:?}"
    );
    assert!(!alive(p.pids("server.pid")[0]), "server left running");
}

#[test]
fn jobs_1_cannot_deadlock_on_a_service_and_its_client() {
    let port = free_port();
    let p = service_project(port, "0", "");
    let out = p.irun().args(["-j1", "client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_service_stops_as_soon_as_nothing_needs_it() {
    let port = free_port();
    // `watcher` runs beside the client and only succeeds if the server is gone before the run ends.
    let p = service_project(
        port,
        "0",
        r#"
[tasks.watcher]
cmd = "while [ ! -e server.pid ]; do sleep 0.01; done; pid=$(cat server.pid); i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; ! kill -0 $pid 2>/dev/null"
"#,
    );
    let out = p.irun().args(["-j3", "client", "watcher"]).run();
    assert_eq!(out.code, 0, "server was not stopped while the run went on: {out:?}");
    assert!(out.stdout.contains("stopping (no longer needed)"), "{out:?}");
}

#[test]
fn a_taken_port_fails_the_service_and_leaves_the_other_process_alone() {
    let port = free_port();
    let squat = squatter(port);
    let p = service_project(port, "0", "");
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "port {port} is already in use by another process; stop it, change `ready.tcp` in Irun.toml, or set \
             `reuse = true` on the service to use the server already running"
        )),
        "{out:?}"
    );
    assert!(!p.exists("server.pid"), "the service must not be started");
    assert!(!p.exists("client.start"), "the client must not start");
    assert!(alive(squat.pid()), "the squatter was killed");
}

#[test]
fn a_service_that_dies_before_ready_fails_fast_with_its_output() {
    let port = free_port();
    let p = Project::new(&format!(
        r#"
[tasks.server]
cmd = "echo starting; echo 'fatal: config file missing' >&2; exit 3"
daemon = true
ready = {{ tcp = {port}, timeout = "1h" }}

[tasks.client]
cmd = "touch client-ran"
deps = ["server"]
"#
    ));
    // The probe would wait an hour; the harness gives up long before: only the exit can end this run.
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("exited with exit code 3 before it was ready"), "{out:?}");
    let summary = out.stdout.split("irun: summary").nth(1).expect("a summary");
    assert!(summary.contains("last 2 lines of server's output:"), "{out:?}");
    assert!(summary.contains("fatal: config file missing"), "{out:?}");
    assert!(!p.exists("client-ran"));
}

#[test]
fn a_probe_that_times_out_fails_the_service() {
    let port = free_port();
    let p = server_and_client(
        "echo $$ > server.pid; exec sleep 1000",
        &format!("ready = {{ tcp = {port}, timeout = \"300ms\" }}"),
    );
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "not ready after 300ms: never saw port {port} on 127.0.0.1 or ::1 accepting connections"
        )),
        "{out:?}"
    );
    assert!(!alive(p.pids("server.pid")[0]));
    assert!(!p.exists("client.start"));
}

#[test]
fn a_service_that_exits_while_needed_fails_the_run() {
    let p = Project::new(
        "[tasks.server]\ncmd = \"while [ ! -e client.started ]; do sleep 0.01; done; exit 0\"\ndaemon = true\n[tasks.client]\ncmd = \"touch client.started; exec sleep 1000\"\ndeps = [\"server\"]\n",
    );
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("exited unexpectedly (exit code 0) while tasks still needed it"), "{out:?}");
}

#[test]
fn a_service_named_as_target_stays_in_the_foreground_until_it_exits() {
    let p = Project::new(
        "[tasks.server]\ncmd = \"echo up; while [ ! -e stop-now ]; do sleep 0.01; done; echo bye\"\ndaemon = true\n",
    );
    let mut run = p.irun().args(["server"]).spawn();
    run.wait_for_line("server | up");
    assert!(run.child.try_wait().unwrap().is_none(), "irun must keep a target service running");
    std::fs::write(p.path("stop-now"), "").unwrap();
    let out = run.wait();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("server | bye"), "{out:?}");
}

#[test]
fn a_group_of_services_only_is_kept_in_the_foreground() {
    let p = Project::new(
        "[tasks.db]\ncmd = \"echo db up; exec sleep 1000\"\ndaemon = true\n[tasks.api]\ncmd = \"echo api up; while [ ! -e stop-now ]; do sleep 0.01; done\"\ndaemon = true\ndeps = [\"db\"]\n[tasks.backend]\ndeps = [\"db\", \"api\"]\n",
    );
    let mut run = p.irun().args(["backend"]).spawn();
    run.wait_for_line("| api up");
    assert!(run.child.try_wait().unwrap().is_none(), "services of a target group must stay up");
    std::fs::write(p.path("stop-now"), "").unwrap();
    let out = run.wait();
    assert_eq!(out.code, 0, "{out:?}");
}

/// `client` also waits for `gate`, which only opens once the service has exited: the service is gone before the
/// client could start.
const SERVICE_GONE_BEFORE_CLIENT: &str = r#"
[tasks.svc]
cmd = "echo $$ > svc.pid; exit 0"
daemon = true

[tasks.gate]
cmd = "while [ ! -e svc.pid ] || kill -0 $(cat svc.pid) 2>/dev/null; do sleep 0.01; done"

[tasks.client]
cmd = "touch client-ran"
deps = ["svc", "gate"]
"#;

#[test]
fn a_target_service_that_exits_while_a_dependent_waits_fails_instead_of_hanging() {
    let p = Project::new(SERVICE_GONE_BEFORE_CLIENT);
    let out = p.irun().args(["-j4", "svc", "client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("exited (exit code 0) while client still needed it"), "{out:?}");
    assert!(!p.exists("client-ran"));
}

#[test]
fn keep_going_skips_dependents_of_a_service_that_is_gone() {
    let p = Project::new(SERVICE_GONE_BEFORE_CLIENT);
    let out = p.irun().args(["-k", "-j4", "svc", "client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("skipped: dep `svc` failed"), "{out:?}");
}

#[test]
fn absurdly_long_durations_do_not_crash() {
    let port = free_port();
    let forever = "\"500000000000y\"";
    let p = server_and_client(
        "exit 3",
        &format!("ready = {{ tcp = {port}, timeout = {forever} }}\nstop_timeout = {forever}\ntimeout = {forever}"),
    );
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("exited with exit code 3 before it was ready"), "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

#[test]
fn a_group_target_with_a_service_completes_after_the_service_is_no_longer_needed() {
    // `check` is the only task that needs `svc`; the group also waits for `slow`, which ends later.
    let p = Project::new(
        r#"
[tasks.svc]
cmd = "echo up; exec sleep 1000"
daemon = true
ready = { log = "up" }

[tasks.check]
cmd = "true"
deps = ["svc"]

[tasks.slow]
cmd = "while [ ! -e go ]; do sleep 0.01; done"

[tasks.gate]
cmd = "touch go"
deps = ["check"]

[tasks.all]
deps = ["svc", "check", "slow", "gate"]
"#,
    );
    let out = p.irun().args(["-j4", "all"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("all   * ok"), "the group completes: {out:?}");
    assert!(!out.stdout.contains("skipped"), "{out:?}");
}
