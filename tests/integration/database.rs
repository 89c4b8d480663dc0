//! A database project as a user writes it: a server that accepts TCP before it answers queries (like PostgreSQL),
//! probed with `exec` on a chosen port (`port = "auto"`), a data folder made once (`outputs`, no `sources`), a
//! database created against the running server, and tests that reach it through `env`.

use crate::harness::Project;

/// The server: accepts connections at once but answers `starting` for `warmup` seconds; keeps its databases in
/// `data/` like PostgreSQL (or, with `memory`, in memory: a new instance has none, like a server on a tmpfs).
/// Logs each start to db.log and its pid to db.pid.
const FAKEDB_PY: &str = r#"
import os, socket, sys, time
port, warmup, memory = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:] == ["memory"]
with open("db.log", "a") as f: f.write("start\n")
with open("db.pid.tmp", "w") as f: f.write(f"{os.getpid()}\n")
os.rename("db.pid.tmp", "db.pid")
dbs, t0 = set(), time.time()
if not memory: dbs = set(os.listdir("data")) - {"PG_VERSION"}
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
while True:
    c, _ = s.accept()
    line = c.makefile().readline().strip()
    if time.time() - t0 < warmup: reply = "starting"
    elif line == "ping": reply = "ok"
    elif line.startswith("create "):
        dbs.add(line[7:]); reply = "ok"
        if not memory: open(os.path.join("data", line[7:]), "w").close()
    elif line.startswith("use "): reply = "ok" if line[4:] in dbs else "no such database " + line[4:]
    else: reply = "?"
    c.sendall((reply + "\n").encode()); c.close()
"#;

/// `query.py ADDRESS QUERY`: ADDRESS is a port or a DSN `fake://host:port/db`; exits 0 if the server says ok.
const QUERY_PY: &str = r#"
import socket, sys
address, query = sys.argv[1], sys.argv[2]
port = int(address.rsplit(":", 1)[1].split("/")[0]) if ":" in address else int(address)
c = socket.create_connection(("127.0.0.1", port), timeout=5)
c.sendall((query + "\n").encode())
reply = c.makefile().readline().strip()
print(reply)
sys.exit(0 if reply == "ok" else 1)
"#;

fn database_project(storage: &str, extra_db_keys: &str, extra: &str) -> Project {
    let p = Project::new(&format!(
        r#"
[tasks.initdb]
cmd = "mkdir -p data && echo 15 > data/PG_VERSION && echo run >> initdb.log"
outputs = ["data/PG_VERSION"]

[tasks.db]
cmd = "exec python3 fakedb.py ${{IRUN_PORT}} 0.3 {storage}"
daemon = true
port = "auto"
deps = ["initdb"]
sources = ["fakedb.py"]
ready = {{ exec = "python3 query.py ${{IRUN_PORT}} ping", interval = "20ms" }}
{extra_db_keys}

[tasks.createdb]
cmd = "python3 query.py $IRUN_PORT_DB 'create app' && echo run >> createdb.log"
deps = ["db"]
outputs = ["createdb.log"]

[tasks.tests]
cmd = "python3 query.py \"$DSN\" 'use app' && echo run >> tests.log"
deps = ["db", "createdb"]
sources = ["tests.cfg"]
env = {{ DSN = "fake://127.0.0.1:${{IRUN_PORT_DB}}/app" }}
{extra}
"#
    ));
    p.file("fakedb.py", FAKEDB_PY).file("query.py", QUERY_PY).file("tests.cfg", "");
    p
}

#[test]
fn a_database_project_runs_once_then_starts_no_server_while_everything_is_up_to_date() {
    let p = database_project("", "", "");
    // The exec probe waits until the server answers queries (a tcp probe would let createdb in too early).
    p.run_ok(&["tests"]);
    let counts = |p: &Project| ["initdb.log", "db.log", "createdb.log", "tests.log"].map(|f| p.count_lines(f));
    assert_eq!(counts(&p), [1, 1, 1, 1]);
    // Nothing changed: no server process is started at all, and `-n` and `explain` say so beforehand.
    let plan = p.run_ok(&["-n", "tests"]);
    assert!(plan.stdout.contains("db (service, not started: every task that needs it is up to date)"), "{plan:?}");
    let explain = p.run_ok(&["explain", "tests"]);
    assert!(explain.stdout.contains("not started: every task that needs it is up to date"), "{explain:?}");
    let out = p.run_ok(&["tests"]);
    assert_eq!(counts(&p), [1, 1, 1, 1], "{out:?}");
    assert!(out.stdout.contains("skipped: nothing that needs it is left to run"), "{out:?}");
    // The tests changed: the server starts for them (on a new port), and only they run.
    p.file("tests.cfg", "changed\n");
    p.run_ok(&["tests"]);
    assert_eq!(counts(&p), [1, 2, 1, 2]);
}

#[test]
fn a_setup_task_runs_again_when_its_service_comes_back_before_the_tasks_after_it() {
    // `crash` kills the server once the database exists and waits for the new instance to have started: the
    // new one (keeping its data in memory) has no database, so `tests` passes only if createdb ran again against
    // it first. (`crash` does not use the server: it does not run again itself.)
    let p = database_project(
        "memory",
        "restart = \"on-failure\"",
        r#"
[tasks.crash]
cmd = "old=$(cat db.pid); kill -9 $old; while [ \"$(cat db.pid)\" = \"$old\" ]; do sleep 0.01; done"
deps = ["createdb"]
"#,
    );
    let irun_toml = p
        .read("Irun.toml")
        .replace("deps = [\"db\", \"createdb\"]\nsources", "deps = [\"db\", \"createdb\", \"crash\"]\nsources");
    p.file("Irun.toml", &irun_toml);
    let out = p.run_ok(&["--explain", "tests"]);
    assert_eq!(
        (p.count_lines("db.log"), p.count_lines("createdb.log"), p.count_lines("tests.log")),
        (2, 2, 1),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("createdb * will run: service `db` was started again since it ran against it"),
        "{out:?}"
    );
}

#[test]
fn a_misspelt_port_name_is_refused_before_anything_starts() {
    let p = database_project("", "", "");
    let irun_toml = p.read("Irun.toml").replace("${IRUN_PORT_DB}/app", "${IRUN_PORT_DBB}/app");
    p.file("Irun.toml", &irun_toml);
    let out = p.irun().args(["tests"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("`IRUN_PORT_DBB` is not a port task `tests` gets; did you mean `IRUN_PORT_DB`?"),
        "{out:?}"
    );
    assert!(out.stderr.contains("Irun.toml:"), "{out:?}");
    assert!(!p.exists("initdb.log") && !p.exists("db.log"), "nothing ran");
}

#[test]
fn an_http_probe_and_env_values_use_the_chosen_port() {
    let p = Project::new(
        r#"
[tasks.web]
cmd = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "${IRUN_PORT}"]
daemon = true
port = "auto"
ready = { http = "http://127.0.0.1:${IRUN_PORT}/", interval = "20ms" }

[tasks.e2e]
cmd = "python3 -c 'import os, urllib.request; print(urllib.request.urlopen(os.environ[\"BASE_URL\"]).status, os.environ[\"BASE_URL\"])'"
deps = ["web"]
env = { BASE_URL = "http://127.0.0.1:${IRUN_PORT_WEB}/" }
"#,
    );
    let out = p.run_ok(&["--progress", "never", "e2e"]);
    let line = out.stdout.lines().find(|l| l.contains("web * started (pid ")).unwrap();
    let port = line.rsplit("port ").next().unwrap().trim_end_matches(')');
    assert!(out.stdout.contains(&format!("e2e | 200 http://127.0.0.1:{port}/")), "{out:?}");
    assert!(out.stdout.contains(&format!("http://127.0.0.1:{port}/ answering 2xx or 3xx")), "{out:?}");
    let listing = p.run_ok(&["list", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&listing.stdout).unwrap();
    let web = &doc["tasks"][0];
    assert_eq!(
        (web["port"].as_str(), web["ready"]["url"].as_str()),
        (Some("auto"), Some("http://127.0.0.1:${IRUN_PORT}/"))
    );
    assert!(doc["tasks"][1]["port"].is_null(), "a task has no port: {listing:?}");
}

#[test]
fn in_watch_mode_a_server_that_crashed_and_came_back_gets_its_database_again_before_the_tests() {
    // The server keeps its databases in memory: the instance `restart` brings back has none.
    let p = database_project("memory", "restart = \"on-failure\"", "");
    let mut run = p.irun().args(["--watch", "--explain", "--progress", "never", "tests"]).spawn();
    run.wait_for_line("irun: waiting for changes");
    assert_eq!((p.count_lines("createdb.log"), p.count_lines("tests.log")), (1, 1));
    let old = p.read("db.pid").trim().parse::<i32>().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::Signal::SIGKILL).unwrap();
    // createdb runs again against the new instance, then the tests, which pass only if the database is there.
    run.wait_for_count("irun: waiting for changes", 2);
    let printed = run.printed();
    assert!(
        printed.contains("createdb * will run: service `db` was started again since it ran against it"),
        "{printed}"
    );
    assert_eq!(
        (p.count_lines("db.log"), p.count_lines("createdb.log"), p.count_lines("tests.log")),
        (2, 2, 2),
        "{printed}"
    );
    assert!(!printed.contains("tests    * FAILED"), "{printed}");
    run.signal(nix::sys::signal::Signal::SIGINT);
    run.wait();
}

#[test]
fn an_up_to_date_task_run_again_because_its_service_came_back_is_remembered_when_it_fails() {
    // createdb is up to date when checked; `crash` (once per invocation) then kills the server, and createdb, run
    // again against the new instance, fails: the next invocation must know its last run failed.
    let p = database_project(
        "",
        "restart = \"on-failure\"",
        r#"
[tasks.crash]
cmd = "[ -f crashed ] && exit 0; touch crashed; old=$(cat db.pid); kill -9 $old; while [ \"$(cat db.pid)\" = \"$old\" ]; do sleep 0.01; done"
deps = ["createdb", "db"]
"#,
    );
    let irun_toml = p
        .read("Irun.toml")
        .replace("deps = [\"db\", \"createdb\"]\nsources", "deps = [\"db\", \"createdb\", \"crash\"]\nsources")
        .replace("&& echo run >> createdb.log", "&& echo run >> createdb.log && test ! -f fail");
    p.file("Irun.toml", &irun_toml);
    p.run_ok(&["tests"]);
    assert_eq!(p.count_lines("createdb.log"), 2, "run, then run again after the crash");
    std::fs::remove_file(p.path("crashed")).unwrap();
    p.file("tests.cfg", "changed\n").file("fail", "");
    let out = p.irun().args(["--explain", "tests"]).run();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("createdb * up to date"), "up to date when checked: {out:?}");
    assert_eq!(p.count_lines("createdb.log"), 3, "run again against the new server, and failed: {out:?}");
    let explain = p.run_ok(&["explain", "createdb"]);
    assert!(explain.stdout.contains("createdb  will run: last run failed"), "{explain:?}");
}
