//! The remote cache against the real `turborepo-remote-cache` server: results shared between checkouts and shards,
//! and every way the server can fail is a warning, never a failed or stuck run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cache_server::CacheServer;
use crate::harness::{Irun, Output, Project};

/// A task with a binary, executable output and some output of its own.
const BUILD: &str = r#"
[tasks.build]
cmd = "echo run >> build.log; mkdir -p out; cp src.bin out/a.bin; chmod 755 out/a.bin; echo built it"
sources = ["src.bin"]
outputs = ["out/*"]
"#;

/// Every byte value, and more than one read's worth.
fn binary() -> Vec<u8> {
    (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect()
}

/// A checkout of the BUILD project.
fn checkout() -> Project {
    let p = Project::new(BUILD);
    std::fs::write(p.path("src.bin"), binary()).unwrap();
    p
}

/// `p`'s irun pointed at `url` with the test server's token and a team.
fn remote(p: &Project, url: &str, token: &str) -> Irun {
    p.irun()
        .env("IRUN_REMOTE_CACHE_URL", url)
        .env("IRUN_REMOTE_CACHE_TOKEN", token)
        .env("IRUN_REMOTE_CACHE_TEAM", "irun-tests")
}

fn with(server: &CacheServer, p: &Project) -> Irun {
    remote(p, &server.url(), &server.token)
}

/// The files the server stores.
fn stored(server: &CacheServer) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, out) } else { out.push(path) }
        }
    }
    let mut out = Vec::new();
    walk(server.storage.path(), &mut out);
    out
}

fn ok(out: Output) -> Output {
    assert_eq!(out.code, 0, "{out:?}");
    out
}

fn warnings(out: &Output) -> Vec<&str> {
    out.stdout.lines().chain(out.stderr.lines()).filter(|l| l.contains("warning: the cache")).collect()
}

#[test]
fn a_second_checkout_gets_remote_hits_and_restores_outputs_byte_for_byte() {
    let server = CacheServer::start();
    let (a, b) = (checkout(), checkout());
    ok(with(&server, &a).args(["build"]).run());
    assert_eq!(stored(&server).len(), 1, "the result was uploaded before irun exited");
    let status = ok(with(&server, &a).env("IRUN_REMOTE_CACHE_SIGNATURE_KEY", "k").args(["cache", "status"]).run());
    let says = format!("remote: {} (read and write, team irun-tests, artifacts signed)", server.url());
    assert!(status.stdout.contains(&says) && !status.stdout.contains(&server.token), "{status:?}");
    // Looking first: `-n` and `explain` say it, and restore nothing.
    let dry = ok(with(&server, &b).args(["-n", "build"]).run());
    assert!(dry.stdout.contains("build (will be restored from the cache, key "), "{dry:?}");
    let explain = ok(with(&server, &b).args(["explain", "build"]).run());
    assert!(explain.stdout.contains("will be restored from the remote cache"), "{explain:?}");
    assert!(!b.exists("out/a.bin"));
    let out = ok(with(&server, &b).args(["--json", "build"]).run());
    assert!(out.stdout.contains(r#""status":"cached""#) && out.stdout.contains(r#""source":"remote""#), "{out:?}");
    assert!(out.stdout.contains("built it"), "its output is replayed: {out:?}");
    assert!(!b.exists("build.log"), "the second checkout never ran it");
    assert!(std::fs::read(b.path("out/a.bin")).unwrap() == binary(), "restored byte for byte");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(b.path("out/a.bin")).unwrap().permissions().mode() & 0o777, 0o755);
    // Kept locally too: with the server gone, the result is still there.
    drop(server);
    std::fs::remove_file(b.path("out/a.bin")).unwrap();
    let out = ok(b.irun().args(["--json", "build"]).run());
    assert!(out.stdout.contains(r#""source":"local""#), "{out:?}");
}

#[test]
fn shard_2_of_2_hits_what_shard_1_uploaded() {
    let toml = r#"
[tasks.gen]
cmd = "echo run >> gen.log; mkdir -p gen; cat spec > gen/code"
sources = ["spec"]
outputs = ["gen/*"]
[tasks.t1]
cmd = "echo run >> t1.log; cat gen/code"
deps = ["gen"]
sources = ["t1.txt"]
[tasks.t2]
cmd = "echo run >> t2.log; cat gen/code"
deps = ["gen"]
sources = ["t2.txt"]
"#;
    let server = CacheServer::start();
    let shard = |k: u32| {
        let p = Project::new(toml);
        p.file("spec", "generated\n").file("t1.txt", "1").file("t2.txt", "2");
        let out = ok(with(&server, &p).args(["--json", "--partition", &format!("slice:{k}/2"), "t1", "t2"]).run());
        (p, out)
    };
    let (one, _) = shard(1);
    assert_eq!(one.count_lines("gen.log"), 1, "shard 1 ran the shared dep");
    let (two, out) = shard(2);
    assert!(!two.exists("gen.log"), "shard 2 did not run it again: {out:?}");
    assert_eq!(two.read("gen/code"), "generated\n");
    let hit = out.stdout.lines().find(|l| l.contains(r#""task":"gen""#) && l.contains(r#""status":"cached""#));
    assert!(hit.is_some_and(|l| l.contains(r#""source":"remote""#)), "{out:?}");
    assert_eq!(one.count_lines("t1.log") + one.count_lines("t2.log"), 1, "each shard runs its own leaf");
    assert_eq!(two.count_lines("t1.log") + two.count_lines("t2.log"), 1);
}

/// Two cacheable tasks, for the failure tests: each must run, and the problem be said once.
const TWO: &str = r#"
[tasks.a]
cmd = "echo run >> a.log; mkdir -p out; cat s > out/a"
sources = ["s"]
outputs = ["out/a*"]
[tasks.b]
cmd = "echo run >> b.log; mkdir -p out; cat s > out/b"
sources = ["s"]
outputs = ["out/b*"]
"#;

fn both_ran_with_one_warning(p: &Project, out: &Output, says: &str) {
    assert_eq!(out.code, 0, "the cache never fails a run: {out:?}");
    assert_eq!((p.count_lines("a.log"), p.count_lines("b.log")), (1, 1), "both ran: {out:?}");
    let warned = warnings(out);
    assert_eq!(warned.len(), 1, "one warning: {out:?}");
    assert!(warned[0].contains(says), "{out:?}");
}

#[test]
fn a_server_that_is_down_warns_once_and_tasks_run() {
    let p = Project::new(TWO);
    p.file("s", "1");
    // A port held (bound, never listening) for the test: refused, and no other test's server can take it.
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    held.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let port = held.local_addr().unwrap().as_socket().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let out = remote(&p, &url, "t").args(["a", "b"]).run();
    both_ran_with_one_warning(&p, &out, &format!("the remote cache at {url} refused the connection"));
}

/// One request a fake server got: its method (the path and body are in its log and not needed here).
pub struct Request {
    pub method: String,
}

/// A fake server's URL, the requests it got (`METHOD path`, as they came), and how many connections it accepted.
type Fake = (String, Arc<Mutex<Vec<String>>>, Arc<Mutex<usize>>);

/// A fake server's answer: status, headers, body. `None`: never answer (hold the connection open).
type Answer = Option<(u16, Vec<(&'static str, String)>, Vec<u8>)>;

/// A server on a free port answering each request as `answer` says, until the test ends.
fn fake_server(answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Fake {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (log, connections) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(0)));
    let (seen, accepted) = (log.clone(), connections.clone());
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            *accepted.lock().unwrap() += 1;
            let (seen, answer) = (seen.clone(), answer.clone());
            std::thread::spawn(move || serve(stream, &seen, &*answer));
        }
    });
    (url, log, connections)
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<String>>, answer: &dyn Fn(&Request) -> Answer) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or("").to_string());
        let length: usize = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
            .map_or(0, |(_, v)| v.trim().parse().unwrap());
        while raw.len() < end + 4 + length {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        raw.drain(..end + 4 + length);
        seen.lock().unwrap().push(format!("{method} {path}"));
        let request = Request { method };
        let Some((status, headers, body)) = answer(&request) else {
            // Never answered: the connection stays open until the test ends.
            std::thread::park();
            return;
        };
        let mut reply = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in headers {
            reply += &format!("{name}: {value}\r\n");
        }
        reply += "\r\n";
        if stream.write_all(reply.as_bytes()).and_then(|()| stream.write_all(&body)).is_err() {
            return;
        }
    }
}

fn status(code: u16) -> Answer {
    Some((code, Vec::new(), Vec::new()))
}

fn failing_server() -> String {
    fake_server(|_| status(500)).0
}

#[test]
fn a_server_answering_500_warns_once_and_tasks_run() {
    let p = Project::new(TWO);
    p.file("s", "1");
    let url = failing_server();
    let out = remote(&p, &url, "t").args(["a", "b"]).run();
    both_ran_with_one_warning(&p, &out, &format!("the remote cache at {url} answered 500"));
}

#[test]
fn a_wrong_token_says_what_to_check() {
    let server = CacheServer::start();
    let p = Project::new(TWO);
    p.file("s", "1");
    let out = remote(&p, &server.url(), "wrong").args(["a", "b"]).run();
    both_ran_with_one_warning(&p, &out, "answered 401: check IRUN_REMOTE_CACHE_TOKEN");
}

#[test]
fn a_corrupt_artifact_warns_and_the_task_runs_and_uploads_it_again() {
    let server = CacheServer::start();
    let (a, b) = (checkout(), checkout());
    ok(with(&server, &a).args(["build"]).run());
    let files = stored(&server);
    assert_eq!(files.len(), 1);
    std::fs::write(&files[0], b"not an artifact at all").unwrap();
    let out = ok(with(&server, &b).args(["build"]).run());
    assert_eq!(b.count_lines("build.log"), 1, "it ran: {out:?}");
    let warned = warnings(&out);
    assert!(warned.len() == 1 && warned[0].contains("the remote entry for build is unusable"), "{out:?}");
    assert!(std::fs::read(&files[0]).unwrap() != b"not an artifact at all", "a good result replaced it");
}

#[test]
fn a_wrong_or_missing_signature_is_refused_and_the_right_one_verifies() {
    let server = CacheServer::start_keeping_signatures();
    let signed = |p: &Project, key: &str| with(&server, p).env("IRUN_REMOTE_CACHE_SIGNATURE_KEY", key);
    let a = checkout();
    ok(signed(&a, "key-one").args(["build"]).run());
    // The same key verifies.
    let b = checkout();
    let out = ok(signed(&b, "key-one").args(["--json", "build"]).run());
    assert!(out.stdout.contains(r#""source":"remote""#) && !b.exists("build.log"), "{out:?}");
    // Another does not: the artifact may have been forged.
    let c = checkout();
    let out = ok(signed(&c, "key-two").args(["build"]).run());
    assert_eq!(c.count_lines("build.log"), 1, "not restored from an artifact that does not verify: {out:?}");
    assert!(warnings(&out).iter().any(|w| w.contains("its signature does not verify")), "{out:?}");
    // An unsigned artifact (from a server that does not keep signatures) is refused by a run that expects them.
    let server2 = CacheServer::start();
    let d = checkout();
    ok(with(&server2, &d).args(["build"]).run());
    let e = checkout();
    let out = ok(with(&server2, &e).env("IRUN_REMOTE_CACHE_SIGNATURE_KEY", "key-one").args(["build"]).run());
    assert!(warnings(&out).iter().any(|w| w.contains("it is not signed")) && e.exists("build.log"), "{out:?}");
}

#[test]
fn read_only_mode_never_uploads_but_reads() {
    let server = CacheServer::start();
    let a = checkout();
    ok(with(&server, &a).env("IRUN_REMOTE_CACHE", "read").args(["build"]).run());
    assert!(stored(&server).is_empty(), "read-only uploads nothing");
    ok(with(&server, &checkout()).args(["build"]).run());
    let b = checkout();
    let out = ok(with(&server, &b).env("IRUN_REMOTE_CACHE", "read").args(["--json", "build"]).run());
    assert!(out.stdout.contains(r#""source":"remote""#), "read-only reads: {out:?}");
}

#[test]
fn a_failing_task_is_never_uploaded() {
    let server = CacheServer::start();
    let p = Project::new(
        "[tasks.t]\ncmd = \"mkdir -p out; touch out/x; exit 1\"\nsources = [\"s\"]\noutputs = [\"out/*\"]\n",
    );
    p.file("s", "1");
    assert_eq!(with(&server, &p).args(["t"]).run().code, 1);
    assert!(stored(&server).is_empty());
}

/// A TCP proxy to `port` that keeps every byte the client sends; its URL and those bytes.
fn recording_proxy(port: u16) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (mut from_client, mut to_client) = (client.try_clone().unwrap(), client);
            let (mut to_server, mut from_server) = (server.try_clone().unwrap(), server);
            let record = record.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = from_client.read(&mut buf) {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to_server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (url, sent)
}

#[test]
fn a_dotenv_secret_is_in_no_byte_sent_to_the_server_nor_any_report() {
    let secret = "s3cr3t-token-7f9a2c";
    let server = CacheServer::start();
    let (url, sent) = recording_proxy(server.port);
    let p = Project::new(
        "dotenv = [\".env\"]\n[tasks.t]\ncmd = \"test ${API_TOKEN} = s3cr3t-token-7f9a2c && mkdir -p out && cat s > out/r && echo done\"\nsources = [\"s\"]\noutputs = [\"out/*\"]\n",
    );
    p.file(".env", &format!("API_TOKEN={secret}\n")).file("s", "1");
    let junit = p.path("junit.xml");
    let out = ok(remote(&p, &url, &server.token).args(["--json", "--junit", junit.to_str().unwrap(), "t"]).run());
    assert_eq!(stored(&server).len(), 1, "the result was uploaded: {out:?}");
    let sent = sent.lock().unwrap().clone();
    assert!(sent.windows(4).any(|w| w == b"PUT "), "the upload went through the proxy");
    assert!(!sent.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret was sent");
    let list = ok(p.irun().args(["list", "--json"]).run());
    for (what, text) in
        [("--json", out.all()), ("list --json", list.all()), ("JUnit", std::fs::read_to_string(&junit).unwrap())]
    {
        assert!(!text.contains(secret), "{what} shows the secret: {text}");
    }
}

#[test]
fn a_server_that_never_answers_is_given_up_on_once_and_tasks_run() {
    let p = Project::new(TWO);
    p.file("s", "1");
    let (url, _, _) = fake_server(|_| None);
    let out = remote(&p, &url, "t").args(["a", "b"]).run();
    both_ran_with_one_warning(&p, &out, &format!("the remote cache at {url} did not answer in time"));
}

#[test]
fn many_lookups_against_a_server_that_never_answers_wait_for_one_round_of_requests_only() {
    // Twenty tasks to look up, and a server that never answers: the requests under way when the first one times out
    // are the last sent (one per lookup thread); the rest are not sent, and nothing is uploaded.
    let mut toml = String::new();
    for i in 0..20 {
        toml += &format!(
            "[tasks.t{i}]\ncmd = \"mkdir -p out; cat s > out/{i}\"\nsources = [\"s\"]\noutputs = [\"out/{i}*\"]\n"
        );
    }
    let p = Project::new(&toml);
    p.file("s", "1");
    let (url, requests, connections) = fake_server(|_| None);
    let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let out = ok(remote(&p, &url, "t").args(&names).run());
    assert_eq!(warnings(&out).len(), 1, "{out:?}");
    let (sent, accepted) = (requests.lock().unwrap().len(), *connections.lock().unwrap());
    assert!(accepted <= 8 && sent <= 8, "{accepted} connections, {sent} requests: at most one round of lookups");
    assert!((0..20).all(|i| p.exists(&format!("out/{i}"))), "every task ran");
}

#[test]
fn a_redirect_is_not_followed_and_says_where_it_points() {
    let p = Project::new(TWO);
    p.file("s", "1");
    let (url, requests, _) =
        fake_server(|_| Some((302, vec![("Location", "https://cache.example/".into())], Vec::new())));
    let out = remote(&p, &url, "t").args(["a", "b"]).run();
    both_ran_with_one_warning(
        &p,
        &out,
        "answered 302 (a redirect to https://cache.example/): set IRUN_REMOTE_CACHE_URL",
    );
    assert!(requests.lock().unwrap().iter().all(|r| r.starts_with("GET ")), "no upload after that");
}

#[test]
fn an_upload_refused_as_too_large_is_said_for_its_task_and_the_others_still_upload() {
    let p = Project::new(TWO);
    p.file("s", "1");
    let (url, requests, _) = fake_server(|r| status(if r.method == "PUT" { 413 } else { 404 }));
    let out = ok(remote(&p, &url, "t").args(["a", "b"]).run());
    let puts = requests.lock().unwrap().iter().filter(|r| r.starts_with("PUT ")).count();
    assert_eq!(puts, 2, "the remote cache stayed on after the first refusal: {out:?}");
    let warned = warnings(&out);
    assert_eq!(warned.len(), 2, "{out:?}");
    assert!(warned.iter().any(|w| w.contains("the result of a was not uploaded: the server refused it as too large")));
}

#[test]
fn a_file_changed_while_the_remote_cache_is_asked_is_checked_again() {
    // The first lookup is held until the file has changed: the task is then checked again (a lookup of the new key)
    // and runs on what the file holds now.
    let p = Project::new(BUILD);
    std::fs::write(p.path("src.bin"), "first").unwrap();
    let (arrived, release) = (Mutex::new(Some(std::sync::mpsc::channel::<()>())), std::sync::mpsc::channel::<()>());
    let (got_first, first_got) = arrived.lock().unwrap().take().unwrap();
    let (release_tx, release_rx) = release;
    let release_rx = Mutex::new(Some(release_rx));
    let (url, requests, _) = fake_server(move |r| {
        if r.method == "GET" {
            if let Some(rx) = release_rx.lock().unwrap().take() {
                let _ = got_first.send(());
                rx.recv().unwrap();
            }
            return status(404);
        }
        status(200)
    });
    let mut run = remote(&p, &url, "t").args(["--watch", "build"]).spawn();
    first_got.recv_timeout(crate::harness::PATIENCE).expect("the first lookup");
    std::fs::write(p.path("src.bin"), "second").unwrap();
    run.wait_for_line("during the run; restarting affected tasks: src.bin");
    release_tx.send(()).unwrap();
    run.wait_for_line("waiting for changes");
    run.signal(nix::sys::signal::Signal::SIGINT);
    let out = run.wait();
    assert_eq!(p.read("out/a.bin"), "second");
    // Had it run on the new file with the old one's record, the change would have made it run a second time.
    assert_eq!(p.count_lines("build.log"), 1, "{out:?}");
    let gets: Vec<String> = requests.lock().unwrap().iter().filter(|r| r.starts_with("GET ")).cloned().collect();
    assert!(gets.len() >= 2 && gets[0] != gets[1], "looked up again under the new key: {gets:?}");
}
