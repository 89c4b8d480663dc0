//! A task's settings as its record holds them: hashes of its command, env, globs and probe, and its cwd, in each
//! of the ways irun has written them, so a record is compared the way it was written.
//!
//! Since [`HASHING`] 3 nothing in them depends on where the project is: the cwd is relative to the project's root
//! (`../shared` as written, like `cd ../shared` in a command; one written absolute outside it stays absolute), and
//! the root's path where it appears in a command, an `env` value or a probe (`${PWD}/.venv`) is hashed as a
//! placeholder. A copied or moved checkout keeps its tasks up to date.

use std::borrow::Cow;
use std::path::Path;

use serde_json::{Value, json};

use crate::config::{Check, Cmd, Task};
use crate::state::{HASHING, HASHING_ABSOLUTE, HASHING_LEGACY};

/// The hashes (and the cwd) a record compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) command: String,
    pub(crate) env: String,
    pub(crate) cwd: String,
    pub(crate) globs: String,
    /// A service's readiness probe (and `port = "auto"`); empty for a task.
    pub(crate) probe: String,
}

/// Where the project is, as its path may be written: as irun was given it, and with links resolved.
pub(crate) struct Root {
    given: String,
    real: Option<String>,
}

impl Root {
    pub(crate) fn new(root: &Path) -> Root {
        let given = root.display().to_string();
        let real = root.canonicalize().ok().map(|r| r.display().to_string()).filter(|r| *r != given);
        Root { given, real }
    }

    /// `text` with every whole occurrence of the root's path replaced by a placeholder (`/p` in `/p/x` and `/p`,
    /// not in `/pq` nor `/x/p`). A root of `/` is left alone: it is in every path.
    fn portable<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for root in std::iter::once(&self.given).chain(&self.real) {
            if root.len() > 1 && out.contains(root.as_str()) {
                out = Cow::Owned(replace_path(&out, root));
            }
        }
        out
    }

    /// A cwd as the record holds it: relative to the root (`.` for the root itself) when it is under it.
    pub(crate) fn relative(&self, path: &Path) -> String {
        match path.strip_prefix(&self.given) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }
}

/// Stands for the project's root in hashed text: a NUL cannot appear in a command, an `env` value or a probe.
const PLACEHOLDER: &str = "\0root\0";

fn replace_path(text: &str, root: &str) -> String {
    let part_of_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(root) {
        let before = rest[..i].chars().next_back().or_else(|| out.chars().next_back());
        let after = rest[i + root.len()..].chars().next();
        let whole = before.is_none_or(|c| !part_of_name(c)) && after.is_none_or(|c| c == '/' || !part_of_name(c));
        out.push_str(&rest[..i]);
        out.push_str(if whole { PLACEHOLDER } else { root });
        rest = &rest[i + root.len()..];
    }
    out.push_str(rest);
    out
}

impl Settings {
    /// `task`'s settings now, hashed as a record written with `hashing` holds them.
    pub(crate) fn of(task: &Task, root: &Root, hashing: u8) -> Settings {
        let process = task.process();
        let absolute = || process.map_or(String::new(), |p| p.cwd.display().to_string());
        match hashing {
            HASHING_LEGACY => {
                let (command, env, globs) = legacy(task);
                Settings { command, env, cwd: absolute(), globs, probe: String::new() }
            }
            HASHING_ABSOLUTE => {
                let (command, env, globs) = canonical(task, &|s| s.to_string());
                Settings { command, env, cwd: absolute(), globs, probe: String::new() }
            }
            _ => {
                let portable = |s: &str| root.portable(s).into_owned();
                let (command, env, globs) = canonical(task, &portable);
                let cwd = process.map_or(String::new(), |p| root.relative(&p.cwd));
                Settings { command, env, cwd, globs, probe: probe(task, &portable) }
            }
        }
    }

    /// As records are written now.
    pub(crate) fn now(task: &Task, root: &Root) -> Settings {
        Settings::of(task, root, HASHING)
    }
}

/// How a text is made independent of where the project is (or left as it is, for older records).
type Portable<'f> = &'f dyn Fn(&str) -> String;

fn cmd_json(cmd: &Cmd, portable: Portable<'_>) -> Value {
    match cmd {
        Cmd::Shell(s) => json!({ "shell": portable(s) }),
        Cmd::Argv(argv) => json!({ "argv": argv.iter().map(|a| portable(a)).collect::<Vec<_>>() }),
    }
}

/// (command, env, `sources` and `outputs` globs), hashed from a canonical serialisation.
fn canonical(task: &Task, portable: Portable<'_>) -> (String, String, String) {
    let process = task.process();
    let cmd = process.map_or(Value::Null, |p| cmd_json(&p.cmd, portable));
    let mut env: Vec<(&str, String)> =
        process.map(|p| p.env.iter().map(|(k, v)| (k.as_str(), portable(v))).collect()).unwrap_or_default();
    env.sort();
    let globs = json!({ "sources": task.sources(), "outputs": task.outputs() });
    (hash_str(&cmd.to_string()), hash_str(&json!(env).to_string()), hash_str(&globs.to_string()))
}

/// The same, hashed as irun's first state format did (from `Debug` text): records it wrote are compared this way
/// until they are written again, so an upgrade does not rerun every task.
fn legacy(task: &Task) -> (String, String, String) {
    let process = task.process();
    let mut env: Vec<&(String, String)> = process.map(|p| p.env.iter().collect()).unwrap_or_default();
    env.sort();
    (
        hash_str(&format!("{:?}", process.map(|p| &p.cmd))),
        hash_str(&format!("{env:?}")),
        hash_str(&format!("{:?} {:?}", task.sources(), task.outputs())),
    )
}

/// What a service's readiness probe checks (not how often nor how long it waits: that changes no server), and
/// whether its port is chosen as it starts. Empty for a task.
fn probe(task: &Task, portable: Portable<'_>) -> String {
    let Some(service) = task.service() else { return String::new() };
    let check = service.ready.as_ref().map_or(Value::Null, |p| match &p.check {
        Check::Tcp { host, port } => json!({ "tcp": { "host": host, "port": port } }),
        Check::Http { url, status } => json!({ "http": portable(&url.raw), "status": status }),
        Check::Exec(cmd) => json!({ "exec": cmd_json(cmd, portable) }),
        Check::Log(pattern) => json!({ "log": pattern.0.as_str() }),
        Check::AutoTcp => json!({ "tcp": "auto" }),
        Check::Later { key, text, status } => json!({ *key: portable(text), "status": status }),
    });
    hash_str(&json!({ "ready": check, "auto_port": service.auto_port }).to_string())
}

pub(crate) fn hash_str(s: &str) -> String {
    use std::hash::Hasher;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.write(s.as_bytes());
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_occurrences_of_the_root_are_replaced() {
        let root = Root { given: "/tmp/p".into(), real: None };
        assert_eq!(root.portable("cd /tmp/p && /tmp/p/bin/x"), "cd \0root\0 && \0root\0/bin/x");
        assert_eq!(root.portable("/tmp/pq /x/tmp/p a/tmp/p"), "/tmp/pq /x/tmp/p a/tmp/p");
        assert_eq!(root.portable("PATH=/tmp/p/.venv/bin:/usr/bin"), "PATH=\0root\0/.venv/bin:/usr/bin");
        assert_eq!(Root { given: "/".into(), real: None }.portable("/usr/bin"), "/usr/bin");
    }

    #[test]
    fn a_cwd_under_the_root_is_relative_and_one_outside_stays_absolute() {
        let root = Root { given: "/tmp/p".into(), real: None };
        assert_eq!(root.relative(Path::new("/tmp/p")), ".");
        assert_eq!(root.relative(Path::new("/tmp/p/web/app")), "web/app");
        assert_eq!(root.relative(Path::new("/srv/other")), "/srv/other");
    }

    #[test]
    fn a_cwd_written_relative_to_the_root_is_recorded_as_written_even_outside_it() {
        // `cwd = "../shared"` (a folder next to the project's): what moves with the checkout is the relation, as
        // with `cd ../shared` in a command; nothing is resolved, so a link on the way resolves where it runs.
        let root = Root { given: "/tmp/p".into(), real: None };
        assert_eq!(root.relative(&Path::new("/tmp/p").join("../shared")), "../shared");
        assert_eq!(root.relative(&Path::new("/tmp/p").join("web/../../shared")), "web/../../shared");
        assert_eq!(root.relative(&Path::new("/tmp/p").join("./web")), "web");
    }
}
