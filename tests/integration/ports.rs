//! `ready = { tcp = "auto" }`: a free port chosen as the service starts, given to it and to its dependents.

use crate::harness::Project;

/// A service serving HTTP on the port irun chose, and a client (behind a group) that fetches from it, then, once it
/// has, writes `<name>.fetched` into `meeting` and waits for `<other>.fetched` there: both runs' servers are up at
/// the same moment.
fn suite(name: &str, other: &str, meeting: &std::path::Path) -> Project {
    let client = format!(
        "import os, time, urllib.request\n\
         port = os.environ['IRUN_PORT_WEB_SERVER']\n\
         assert urllib.request.urlopen('http://127.0.0.1:' + port + '/').status == 200\n\
         print('{name} fetched from port', port, flush=True)\n\
         open(os.path.join('{m}', '{name}.fetched'), 'w').close()\n\
         while not os.path.exists(os.path.join('{m}', '{other}.fetched')): time.sleep(0.01)\n",
        m = meeting.display()
    );
    let p = Project::new(
        "[tasks.web-server]\ncmd = [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"${IRUN_PORT}\"]\n\
         daemon = true\nready = { tcp = \"auto\" }\n\
         [tasks.backend]\ndeps = [\"web-server\"]\n\
         [tasks.client]\ncmd = [\"python3\", \"client.py\"]\ndeps = [\"backend\"]\n",
    );
    p.file("client.py", &client);
    p
}

#[test]
fn two_runs_with_automatic_ports_at_once_do_not_collide() {
    let meeting = tempfile::tempdir().unwrap();
    let a = suite("a", "b", meeting.path());
    let b = suite("b", "a", meeting.path());
    let run_a = a.irun().args(["--progress", "never", "--json", "client"]).spawn();
    let run_b = b.irun().args(["--progress", "never", "--json", "client"]).spawn();
    let (mut run_a, mut run_b) = (run_a, run_b);
    let (out_a, out_b) = (run_a.wait(), run_b.wait());
    assert_eq!(out_a.code, 0, "{out_a:?}");
    assert_eq!(out_b.code, 0, "{out_b:?}");
    let port = |out: &crate::harness::Output| -> u16 {
        let started = out.stdout.lines().find(|l| l.contains("\"task_started\"") && l.contains("web-server")).unwrap();
        let event: serde_json::Value = serde_json::from_str(started).unwrap();
        event["port"].as_u64().expect("the JSON event carries the chosen port") as u16
    };
    let (pa, pb) = (port(&out_a), port(&out_b));
    assert_ne!(pa, pb, "each run chose its own port");
    assert!(out_a.stdout.contains(&format!("a fetched from port {pa}")), "{out_a:?}");
    assert!(out_b.stdout.contains(&format!("b fetched from port {pb}")), "{out_b:?}");
}

#[test]
fn the_chosen_port_is_shown_when_the_service_starts() {
    let meeting = tempfile::tempdir().unwrap();
    let p = suite("a", "a", meeting.path());
    let out = p.irun().args(["--progress", "never", "client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.lines().find(|l| l.contains("web-server * started (pid ")).unwrap();
    let port = line.rsplit("port ").next().unwrap().trim_end_matches(')');
    assert!(out.stdout.contains(&format!("a fetched from port {port}")), "{out:?}");
    let listing = p.irun().args(["list"]).run();
    assert!(
        listing.stdout.contains(
            "ready once irun sees the free port chosen for it as it starts (IRUN_PORT) accepting connections"
        ),
        "{listing:?}"
    );
}

#[test]
fn a_server_already_running_is_reused_and_left_running() {
    let port = crate::harness::free_port();
    let server = crate::harness::squatter(port);
    let p = Project::new(&format!(
        "[tasks.web]\ncmd = \"touch web-was-started; exec sleep 600\"\ndaemon = true\nreuse = true\nready = {{ tcp = {port} }}\n\
         [tasks.client]\ncmd = \"echo client ran\"\ndeps = [\"web\"]\n"
    ));
    let out = p.irun().args(["--progress", "never", "client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("web    * reusing the server already running"), "{out:?}");
    assert!(out.stdout.contains("client | client ran"), "{out:?}");
    assert!(!p.exists("web-was-started"), "irun did not start the service: {out:?}");
    assert!(crate::harness::alive(server.pid()), "irun left the server it did not start running");
    // Without `reuse`, the port in use is an error that mentions it.
    p.file("Irun.toml", &p.read("Irun.toml").replace("reuse = true\n", ""));
    let out = p.irun().args(["--progress", "never", "client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(&format!("port {port} is already in use by another process")), "{out:?}");
    assert!(out.stdout.contains("set `reuse = true`"), "{out:?}");
    assert!(crate::harness::alive(server.pid()));
}

#[test]
fn with_reuse_a_port_held_by_a_server_the_probe_rejects_says_so_instead_of_suggesting_reuse() {
    // Something answers on the port, but not what the probe waits for (HTTP 200, not 204): not the server to reuse.
    let port = crate::harness::free_port();
    let p = Project::new(&format!(
        "[tasks.web]\ncmd = \"touch web-was-started; exec sleep 600\"\ndaemon = true\nreuse = true\n\
         ready = {{ http = \"http://127.0.0.1:{port}/\", status = 204 }}\n"
    ));
    p.file("serve.py", crate::harness::SERVE_PY);
    let other = crate::harness::Bystander(
        std::process::Command::new("python3")
            .args(["serve.py", &port.to_string(), "0"])
            .current_dir(p.root())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    p.wait_for_file("listening");
    let out = p.irun().args(["--progress", "never", "web"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(&format!("port {port} is already in use by another process")), "{out:?}");
    assert!(!out.stdout.contains("set `reuse = true`"), "reuse = true is already set: {out:?}");
    assert!(
        out.stdout.contains("does not pass the service's `ready.http` probe, so `reuse = true` cannot use it"),
        "{out:?}"
    );
    assert!(!p.exists("web-was-started"));
    assert!(crate::harness::alive(other.pid()));
}

#[test]
fn with_reuse_and_nothing_running_irun_starts_and_stops_the_service_as_usual() {
    let port = crate::harness::free_port();
    let p = Project::new(&format!(
        "[tasks.web]\ncmd = [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"{port}\"]\n\
         daemon = true\nreuse = true\nready = {{ tcp = {port} }}\n\
         [tasks.client]\ncmd = \"echo client ran\"\ndeps = [\"web\"]\n"
    ));
    let out = p.irun().args(["--progress", "never", "client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("web    * started (pid "), "{out:?}");
    assert!(out.stdout.contains("web    * stopping"), "{out:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the server irun started is gone");
}

#[test]
fn reuse_needs_a_service_with_a_probe_that_can_see_another_server() {
    for (case, why) in [
        ("[tasks.t]\ncmd = \"x\"\nreuse = true\n", "only a service"),
        ("[tasks.t]\ncmd = \"x\"\ndaemon = true\nreuse = true\n", "it has none"),
        ("[tasks.t]\ncmd = \"x\"\ndaemon = true\nreuse = true\nready = { log = \"up\" }\n", "a `log` probe"),
        (
            "[tasks.t]\ncmd = \"x\"\ndaemon = true\nreuse = true\nready = { tcp = \"auto\" }\n",
            "cannot already be in use",
        ),
    ] {
        let p = Project::new(case);
        let out = p.irun().args(["t"]).run();
        assert_eq!(out.code, 2, "{case}: {out:?}");
        assert!(out.stderr.contains(why) && out.stderr.contains("Irun.toml:"), "{case}: {out:?}");
    }
}
