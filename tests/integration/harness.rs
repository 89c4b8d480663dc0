//! A small builder over the real binary: write an Irun.toml and scripts into a temp dir, run irun, inspect results.
//!
//! Synchronisation is by events, never by sleeping: tests wait for a line irun prints, for a file a task writes, or
//! for a process to disappear, each with a generous deadline that only matters when something is broken.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// Upper bound for anything a test waits for; reaching it means the behaviour under test is broken.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Project {
    dir: tempfile::TempDir,
    /// Runs with `IRUN_CACHE=off` (see [`Project::uncached`]).
    uncached: bool,
}

impl Project {
    pub fn new(irun_toml: &str) -> Project {
        let dir = tempfile::Builder::new().prefix("irun-test-").tempdir().expect("temp dir");
        let p = Project { dir, uncached: false };
        p.file("Irun.toml", irun_toml);
        p
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        self
    }

    /// An executable script.
    pub fn script(&self, rel: &str, content: &str) -> &Self {
        self.file(rel, content);
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// How many lines `rel` has (none if it is not there): a task that appends a line each time it runs.
    pub fn count_lines(&self, rel: &str) -> usize {
        std::fs::read_to_string(self.path(rel)).map_or(0, |s| s.lines().count())
    }

    /// Run irun with `args` and expect it to pass.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.irun().args(args).run();
        assert_eq!(out.code, 0, "{out:?}");
        out
    }

    /// What irun remembers of the project (`irun state --json`).
    pub fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.run_ok(&["state", "--json"]).stdout).unwrap()
    }

    /// Replace irun's state with `state`, as the JSON file of an irun before the binary form.
    pub fn set_state(&self, state: &serde_json::Value) {
        let _ = std::fs::remove_file(self.path(".irun/state.bin"));
        self.file(".irun/state.json", &state.to_string());
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// Wait until a task has written `rel` (its content complete: writers rename into place or append a newline).
    pub fn wait_for_file(&self, rel: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(s) = std::fs::read_to_string(self.path(rel))
                && s.ends_with('\n')
            {
                return s;
            }
            assert!(Instant::now() < deadline, "{rel} was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Pids a task wrote to `rel`, one per line.
    pub fn pids(&self, rel: &str) -> Vec<i32> {
        self.read(rel).split_whitespace().map(|p| p.parse().unwrap()).collect()
    }

    /// A nanosecond timestamp a task wrote with `date +%s%N`.
    pub fn stamp(&self, rel: &str) -> u128 {
        self.read(rel).trim().parse().unwrap_or_else(|e| panic!("{rel} is not a timestamp: {e}"))
    }

    pub fn irun(&self) -> Irun {
        let irun = Irun::new().current_dir(self.root());
        if self.uncached { irun.env("IRUN_CACHE", "off") } else { irun }
    }

    /// Every irun this project runs has `IRUN_CACHE=off`: for tests of what runs again by the fingerprint alone,
    /// where inputs go back to an earlier state (or the state is lost) and the cache would restore the result.
    pub fn uncached(mut self) -> Project {
        self.uncached = true;
        self
    }
}

pub struct Irun {
    cmd: Command,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
}

impl Output {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Irun {
    /// The binary under test, with a predictable environment.
    pub fn new() -> Irun {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_irun"));
        cmd.env_remove("NO_COLOR").env_remove("FORCE_COLOR").env_remove("CLICOLOR_FORCE").env("TERM", "dumb");
        // The cache as a user gets it, whatever the environment of `cargo test` says.
        cmd.env_remove("IRUN_CACHE").env_remove("IRUN_CACHE_MAX");
        for name in ["", "_URL", "_TOKEN", "_TEAM", "_SIGNATURE_KEY"] {
            cmd.env_remove(format!("IRUN_REMOTE_CACHE{name}"));
        }
        Irun { cmd }
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Run to completion (killing irun if it outlives PATIENCE) and collect its output.
    pub fn run(self) -> Output {
        let mut running = self.spawn();
        running.wait()
    }

    pub fn spawn(mut self) -> Running {
        self.cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("irun starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let out_thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut all = Vec::new();
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).map(|n| n > 0).unwrap_or(false) {
                all.extend_from_slice(&line);
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                line.clear();
            }
            all
        });
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        Running { child, lines, seen: Vec::new(), out_thread: Some(out_thread), err_thread: Some(err_thread) }
    }
}

pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    out_thread: Option<std::thread::JoinHandle<Vec<u8>>>,
    err_thread: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Block until irun prints a line containing `needle`.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("irun never printed {needle:?}; it printed:\n{}", self.seen.concat()),
            }
        }
    }

    /// Block until irun has printed `n` lines containing `needle` in all (counting those already seen).
    pub fn wait_for_count(&mut self, needle: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.seen.iter().filter(|l| l.contains(needle)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("irun printed {needle:?} fewer than {n} times; it printed:\n{}", self.seen.concat()),
            }
        }
    }

    /// Every line printed so far (as far as it has been read).
    pub fn printed(&self) -> String {
        self.seen.concat()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    pub fn wait(&mut self) -> Output {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("irun did not finish within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stdout_bytes = self.out_thread.take().unwrap().join().unwrap();
        let stderr = self.err_thread.take().unwrap().join().unwrap();
        use std::os::unix::process::ExitStatusExt;
        Output {
            code: status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
            stdout_bytes,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether `pid` is a live process (a zombie is dead: it only waits to be reaped).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
    }
}

/// Wait until none of `pids` is alive (processes killed by a signal take a moment to be torn down).
pub fn wait_all_dead(pids: &[i32]) {
    let deadline = Instant::now() + PATIENCE;
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "processes still alive: {:?}",
            pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that none of `pids` is alive right now.
pub fn assert_all_dead(pids: &[i32]) {
    let live: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(live.is_empty(), "processes left running: {live:?}");
}

/// A process the test owns, killed when dropped.
pub struct Bystander(pub Child);

impl Bystander {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python one-liner as a process of the test's own.
pub fn python(args: &[&str]) -> Bystander {
    Bystander(Command::new("python3").args(args).stdin(Stdio::null()).spawn().expect("python3 starts"))
}

/// A process listening on `port` (not started by irun), ready when this returns.
pub fn squatter(port: u16) -> Bystander {
    let p = python(&[
        "-c",
        &format!(
            "import socket,sys,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',{port}))\ns.listen()\nprint('up',flush=True)\ntime.sleep(600)"
        ),
    ]);
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "squatter never listened");
        std::thread::sleep(Duration::from_millis(5));
    }
    p
}

/// Python that listens on PORT after DELAY seconds, writes its pid and the time it started listening, and serves a
/// trivial HTTP 200 forever. Usage: `python3 serve.py PORT DELAY`.
pub const SERVE_PY: &str = r#"
import http.server, os, socketserver, sys, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
with open("server.pid", "w") as f: f.write(f"{os.getpid()}\n")
time.sleep(delay)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
socketserver.TCPServer.allow_reuse_address = True
srv = socketserver.TCPServer(("127.0.0.1", port), H)
with open("listening.tmp", "w") as f: f.write(f"{time.time_ns()}\n")
os.rename("listening.tmp", "listening")
print("listening", flush=True)
srv.serve_forever()
"#;

/// A project with a service `server` (running `server_cmd`, with extra keys such as `ready = ...`) and a task
/// `client` that depends on it and records when it started in `client.start`. `serve.py` ([`SERVE_PY`]) is there.
pub fn server_and_client(server_cmd: &str, server_keys: &str) -> Project {
    let p = Project::new(&format!(
        "[tasks.server]\ncmd = '''{server_cmd}'''\ndaemon = true\n{server_keys}\n\n[tasks.client]\ncmd = \"date +%s%N > client.start\"\ndeps = [\"server\"]\n"
    ));
    p.file("serve.py", SERVE_PY);
    p
}

/// Live processes carrying the marker irun gives everything the run with this irun pid started (and their
/// descendants): after the run, there must be none.
pub fn processes_of_run(irun_pid: i32) -> Vec<i32> {
    let marker = format!("IRUN_OWNER={irun_pid}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v.starts_with(marker.as_bytes())))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// The path of `name` (bash, zsh, fish), installed from Debian's packages first if it is missing (as root, with
/// apt-get; `.ci/run` does the same up front).
pub fn shell(name: &str) -> String {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let find = || ["/usr/bin", "/bin", "/usr/local/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.exists());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = find() {
        return p.display().to_string();
    }
    let installed = Command::new("sh")
        .args(["-c", &format!("apt-get install -y -qq {name} >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq {name}) >/dev/null 2>&1")])
        .status();
    match (installed, find()) {
        (Ok(_), Some(p)) => p.display().to_string(),
        _ => panic!("this test needs {name}; install it (`apt-get install {name}`) and run the tests again"),
    }
}

/// A Python venv with the tools in tests/requirements.txt, made once per test binary.
pub fn tools_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let venv = root.join("target/test-tools-venv");
            let python = venv.join("bin/python");
            let requirements = root.join("tests/requirements.txt");
            let stamp = venv.join("installed-requirements.txt");
            let current = std::fs::read(&stamp).ok() == std::fs::read(&requirements).ok();
            if !(python.exists() && current) {
                let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
                assert!(ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)), "python3 -m venv failed");
                let mut pip = Command::new(&python);
                pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"]).arg(&requirements);
                assert!(ok(&mut pip), "installing tests/requirements.txt failed");
                std::fs::copy(&requirements, &stamp).unwrap();
            }
            python
        })
        .clone()
}
