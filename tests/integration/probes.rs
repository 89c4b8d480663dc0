//! Each kind of readiness probe lets dependents start only once it passes.

use crate::harness::{Project, free_port, server_and_client};

fn run_with_ready(ready: &str, server_cmd: &str) -> (Project, crate::harness::Output) {
    let p = server_and_client(server_cmd, &format!("ready = {ready}"));
    let out = p.irun().args(["client"]).run();
    (p, out)
}

#[test]
fn http_probe_waits_for_a_good_status() {
    let port = free_port();
    let (p, out) = run_with_ready(
        &format!("{{ http = \"http://127.0.0.1:{port}/health\", status = 200 }}"),
        &format!("exec python3 serve.py {port} 0.3"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.stamp("listening") <= p.stamp("client.start"));
    assert!(out.stdout.contains(&format!("http://127.0.0.1:{port}/health answering 200")), "{out:?}");
}

#[test]
fn http_probe_with_an_unexpected_status_never_passes() {
    let port = free_port();
    let (p, out) = run_with_ready(
        &format!("{{ http = \"http://127.0.0.1:{port}/\", status = 204, timeout = \"500ms\" }}"),
        &format!("exec python3 serve.py {port} 0"),
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("not ready after 500ms"), "{out:?}");
    assert!(!p.exists("client.start"));
}

#[test]
fn exec_probe_waits_for_exit_0() {
    let (p, out) = run_with_ready(
        "{ exec = \"test -e marker\", interval = \"10ms\" }",
        "sleep 0.3; date +%s%N > marker.tmp; mv marker.tmp marker; exec sleep 1000",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.stamp("marker") <= p.stamp("client.start"));
}

#[test]
fn log_probe_waits_for_a_matching_line() {
    let (p, out) = run_with_ready(
        "{ log = \"listening on port \\\\d+\" }",
        "echo booting; sleep 0.3; date +%s%N > marker; echo listening on port 99 >&2; exec sleep 1000",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.stamp("marker") <= p.stamp("client.start"));
}

#[test]
fn a_service_without_ready_is_ready_once_started() {
    let p = server_and_client("exec sleep 1000", "");
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("server * ready after"), "{out:?}");
}

#[test]
fn log_probe_times_out_when_the_service_closes_its_output() {
    let (p, out) = run_with_ready(
        "{ log = \"never printed\", timeout = \"300ms\" }",
        "echo $$ > server.pid; exec >/dev/null 2>&1; exec sleep 1000",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("not ready after 300ms: never saw a line of output matching `never printed`"),
        "{out:?}"
    );
    assert!(!p.exists("client.start"));
    crate::harness::assert_all_dead(&p.pids("server.pid"));
}

#[test]
fn an_exec_probe_may_take_longer_than_a_second() {
    let (p, out) = run_with_ready("{ exec = \"sleep 1.1\", timeout = \"30s\" }", "exec sleep 1000");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.exists("client.start"));
}

/// Python that listens on [::1]:PORT only, serving nothing, after writing `listening`.
const SERVE_V6: &str = "import socket, time\ns = socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('::1', PORT))\ns.listen()\nopen('listening', 'w').write('yes\\n')\ntime.sleep(1000)\n";

fn free_v6_port() -> u16 {
    let port = std::net::TcpListener::bind("[::1]:0").unwrap().local_addr().unwrap().port();
    // Also free on 127.0.0.1, so only the ::1 server can make the probe pass.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} is taken on 127.0.0.1");
    port
}

#[test]
fn a_bare_tcp_port_sees_a_server_that_listens_only_on_ipv6_loopback() {
    let port = free_v6_port();
    let p = server_and_client("exec python3 serve6.py", &format!("ready = {{ tcp = {port}, timeout = \"20s\" }}"));
    p.file("serve6.py", &SERVE_V6.replace("PORT", &port.to_string()));
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("server * ready after"), "{out:?}");
    assert!(p.exists("client.start"));
}

#[test]
fn a_squatter_on_ipv6_loopback_is_seen_before_the_service_starts() {
    let port = free_v6_port();
    let squatter = crate::harness::python(&[
        "-c",
        &SERVE_V6.replace("PORT", &port.to_string()).replace("open('listening', 'w').write('yes\\n')\n", ""),
    ]);
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    while std::net::TcpStream::connect(("::1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the squatter never listened");
        std::thread::yield_now();
    }
    let p = server_and_client("touch started; exec sleep 1000", &format!("ready = {{ tcp = {port} }}"));
    let out = p.irun().args(["client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(&format!("port {port} is already in use by another process")), "{out:?}");
    assert!(!p.exists("started"), "the service was not started");
    drop(squatter);
}
