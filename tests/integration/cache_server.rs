//! The real remote cache server the remote-cache tests run against: `turborepo-remote-cache` (npm) under Node, with
//! local storage in a temporary directory, on a free port, killed on drop. Installed from npm into
//! `target/test-tools-npm` on first use (once, under a lock, however many tests and test binaries ask at once).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::harness::{PATIENCE, free_port};

/// The server's npm package and version (issue 23).
pub const PACKAGE: &str = "turborepo-remote-cache@2.12.0";

/// The installed server's program, installing it first when it is missing.
fn server_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let prefix = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-tools-npm");
        let program = prefix.join("node_modules/.bin/turborepo-remote-cache");
        let stamp = prefix.join("installed");
        std::fs::create_dir_all(&prefix).unwrap();
        // Another test binary may be installing it right now: one installs, the others wait and find it done.
        let file = std::fs::File::create(prefix.join(".lock")).unwrap();
        let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(PACKAGE) || !program.exists() {
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
                .arg(&prefix)
                .arg(PACKAGE)
                .output()
                .expect("npm runs (install Node.js and npm: apt-get install nodejs npm)");
            assert!(out.status.success(), "npm install {PACKAGE} failed: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::write(&stamp, PACKAGE).unwrap();
        }
        program
    })
}

/// A running server: `PORT`, `TURBO_TOKEN`, local storage in its own temporary directory.
pub struct CacheServer {
    child: Child,
    pub port: u16,
    pub token: String,
    pub storage: tempfile::TempDir,
}

impl CacheServer {
    /// Start a server and wait until it says it listens (its own log line, read from its stdout).
    pub fn start() -> CacheServer {
        CacheServer::start_with(&[])
    }

    /// A server that keeps the signatures (`x-artifact-tag`) sent with artifacts and serves them back.
    #[allow(dead_code)]
    pub fn start_keeping_signatures() -> CacheServer {
        // The server only needs to know signatures are in use: checking them is the client's business.
        CacheServer::start_with(&[("TURBO_REMOTE_CACHE_SIGNATURE_KEY", "kept-by-the-server")])
    }

    fn start_with(env: &[(&str, &str)]) -> CacheServer {
        let storage = tempfile::tempdir().unwrap();
        let port = free_port();
        let token = format!("irun-test-token-{port}");
        let mut child = Command::new(server_program())
            .envs(env.iter().copied())
            .env("STORAGE_PROVIDER", "local")
            .env("STORAGE_PATH", storage.path())
            // Otherwise the path is taken as relative to the system temporary directory.
            .env("STORAGE_PATH_USE_TMP_FOLDER", "false")
            .env("TURBO_TOKEN", &token)
            .env("PORT", port.to_string())
            .env("NODE_ENV", "production")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the cache server starts");
        let stdout = child.stdout.take().unwrap();
        let mut server = CacheServer { child, port, token, storage };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut said = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Its log is read to the end, so that it never blocks on a full pipe.
                if !said && line.contains("Server listening at") {
                    said = true;
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(PATIENCE).is_err() {
            let status = server.child.try_wait().ok().flatten();
            panic!("the cache server on port {port} never said it listens (exit status: {status:?})");
        }
        server
    }

    /// `http://127.0.0.1:PORT`, for `IRUN_REMOTE_CACHE_URL`.
    #[allow(dead_code)]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for CacheServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One request on its own connection (`Connection: close`), read to the end: enough for the artifact API.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head += &format!("Authorization: Bearer {token}\r\n");
    }
    if method == "PUT" {
        head += &format!("Content-Type: application/octet-stream\r\nContent-Length: {}\r\n", body.len());
    }
    head += "\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let mut body = raw[split + 4..].to_vec();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
    };
    if method == "HEAD" {
        body.clear();
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = unchunk(&body);
    }
    Response { status, body }
}

/// A chunked body's bytes.
fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = std::str::from_utf8(&raw[..line_end]).unwrap().split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size, 16).expect("a hexadecimal chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

#[test]
fn the_remote_cache_server_stores_and_serves_artifacts_byte_for_byte() {
    let server = CacheServer::start();
    let port = server.port;
    let token = Some(server.token.as_str());
    // Every byte value, and more than one read's worth.
    let artifact: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let path = |hash: &str| format!("/v8/artifacts/{hash}?slug=irun-tests");
    let put = http(port, "PUT", &path("0123abcd"), token, &artifact);
    assert!((200..300).contains(&put.status), "PUT: {put:?}");
    let head = http(port, "HEAD", &path("0123abcd"), token, b"");
    assert_eq!(head.status, 200, "HEAD after PUT");
    let get = http(port, "GET", &path("0123abcd"), token, b"");
    assert_eq!(get.status, 200);
    assert!(get.body == artifact, "GET returns the artifact byte for byte ({} bytes back)", get.body.len());
    assert_eq!(http(port, "GET", &path("0123abcd"), Some("wrong"), b"").status, 401, "with another token");
    assert_eq!(http(port, "HEAD", &path("0123abcd"), Some("wrong"), b"").status, 401, "HEAD with another token");
    // Without an Authorization header at all, the server rejects the request before authenticating it.
    let none = http(port, "GET", &path("0123abcd"), None, b"");
    assert!(matches!(none.status, 400 | 401) && none.body != artifact, "without a token: {}", none.status);
    assert_eq!(http(port, "HEAD", &path("ffff0000"), token, b"").status, 404, "HEAD of an unknown hash");
    assert_eq!(http(port, "GET", &path("ffff0000"), token, b"").status, 404, "GET of an unknown hash");
    assert!(std::fs::read_dir(server.storage.path()).unwrap().next().is_some(), "stored in the test's own directory");
}
