//! A task's settings as its record holds them: hashes of its command, env, globs and probe, and its cwd, in each
//! of the ways irun has written them, so a record is compared the way it was written.
//!
//! Since [`HASHING`] 3 nothing in them depends on where the project is: the cwd is relative to the project's root
//! (`../shared` as written, like `cd ../shared` in a command; one written absolute outside it stays absolute), and
//! the root's path where it appears in a command, an `env` value or a probe (`${PWD}/.venv`) is hashed as a
//! placeholder. A copied or moved checkout keeps its tasks up to date.

use std::borrow::Cow;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use crate::config::{Check, Cmd, Task};
use crate::state::{Digest, HASHING, HASHING_ABSOLUTE, HASHING_LEGACY};

/// The hashes (and the cwd) a record compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) command: Digest,
    pub(crate) env: Digest,
    pub(crate) cwd: String,
    pub(crate) globs: Digest,
    /// A service's readiness probe (and `port = "auto"`); empty for a task.
    pub(crate) probe: Digest,
}

/// Where the project is, as its path may be written: every path irun knows that names the project's folder.
pub(crate) struct Root {
    /// Longest first, so a path that holds another (`/p/self` with `self -> .`) is replaced as a whole.
    paths: Vec<String>,
}

impl Root {
    /// `root` as irun was given it (through `-f`, perhaps by a link), with links resolved, and as irun's `PWD` names
    /// it: a shell started in `/home/me/proj` (a link to `/data/proj`) gives `${PWD}` that path, not the real one.
    pub(crate) fn new(root: &Path) -> Root {
        Root::named(root, std::env::var_os("PWD").as_deref().map(Path::new))
    }

    fn named(root: &Path, pwd: Option<&Path>) -> Root {
        let mut paths = vec![clean(root)];
        paths.extend(root.canonicalize().ok().map(|real| clean(&real)));
        if let Some(logical) = pwd.and_then(|pwd| logical(root, pwd, &paths)) {
            paths.push(logical);
        }
        Root::of(paths)
    }

    fn of(mut paths: Vec<String>) -> Root {
        paths.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        paths.dedup();
        Root { paths }
    }

    /// `text` with every whole occurrence of the root's paths replaced by a placeholder (`/p` in `/p/x` and `/p`,
    /// not in `/pq` nor `/x/p`). A root of `/` is left alone: it is in every path.
    fn portable<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for root in &self.paths {
            if root.len() > 1 && out.contains(root.as_str()) {
                out = Cow::Owned(replace_path(&out, root));
            }
        }
        out
    }

    /// A cwd as the record holds it: relative to the root (`.` for the root itself) when it is under one of its
    /// paths, as written (`../shared` stays so; nothing is resolved).
    pub(crate) fn relative(&self, path: &Path) -> String {
        match self.paths.iter().find_map(|root| path.strip_prefix(root).ok()) {
            Some(rel) if rel.as_os_str().is_empty() => ".".into(),
            Some(rel) => rel.display().to_string(),
            None => path.display().to_string(),
        }
    }
}

/// `path` as text, without `.` components, doubled or trailing slashes: as the same path appears in other text.
fn clean(path: &Path) -> String {
    path.components().collect::<PathBuf>().display().to_string()
}

/// The path `pwd` names the root by, if it names it differently from `known`: `pwd` itself or the folder above it
/// that is the root (the same device and inode; irun may have been started in a subfolder). A `PWD` that is not
/// absolute or holds `.` or `..` is not a shell's and is not used.
fn logical(root: &Path, pwd: &Path, known: &[String]) -> Option<String> {
    let plain = pwd.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !pwd.is_absolute() || !plain || known.iter().any(|k| pwd.starts_with(k)) {
        return None;
    }
    let id = |dir: &Path| std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()));
    let root_id = id(root)?;
    pwd.ancestors().find(|dir| id(dir) == Some(root_id)).map(clean)
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
                Settings { command, env, cwd: absolute(), globs, probe: Digest::default() }
            }
            HASHING_ABSOLUTE => {
                let (command, env, globs) = canonical(task, &|s| s.to_string());
                Settings { command, env, cwd: absolute(), globs, probe: Digest::default() }
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

/// A task's command (canonical JSON) and environment (sorted), the root's path replaced: as cache keys hold them.
pub(crate) fn portable_definition(task: &Task, root: &Root) -> (String, Vec<(String, String)>) {
    let portable = |s: &str| root.portable(s).into_owned();
    let process = task.process();
    let cmd = process.map_or(Value::Null, |p| cmd_json(&p.cmd, &portable));
    let mut env: Vec<(String, String)> =
        process.map(|p| p.env.iter().map(|(k, v)| (k.clone(), portable(v))).collect()).unwrap_or_default();
    env.sort();
    (cmd.to_string(), env)
}

/// (command, env, `sources` and `outputs` globs), hashed from a canonical serialisation.
/// Written straight from the task (no `serde_json::Value` on the way: this runs for every task of every run), the
/// same text as `json!` gives: an object's keys sorted, no spaces.
fn canonical(task: &Task, portable: Portable<'_>) -> (Digest, Digest, Digest) {
    #[derive(serde::Serialize)]
    enum CmdJson {
        #[serde(rename = "shell")]
        Shell(String),
        #[serde(rename = "argv")]
        Argv(Vec<String>),
    }
    #[derive(serde::Serialize)]
    struct GlobsJson<'a> {
        outputs: &'a [String],
        sources: &'a [String],
    }
    let process = task.process();
    let cmd = process.map(|p| match &p.cmd {
        Cmd::Shell(s) => CmdJson::Shell(portable(s)),
        Cmd::Argv(argv) => CmdJson::Argv(argv.iter().map(|a| portable(a)).collect()),
    });
    let mut env: Vec<(&str, String)> =
        process.map(|p| p.env.iter().map(|(k, v)| (k.as_str(), portable(v))).collect()).unwrap_or_default();
    env.sort();
    let globs = GlobsJson { outputs: task.outputs(), sources: task.sources() };
    let hash = |value: &dyn erased::Json| hash_bytes(&value.json());
    (hash(&cmd), hash(&env), hash(&globs))
}

/// Values written as JSON text, whatever their type.
mod erased {
    pub(super) trait Json {
        fn json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

/// The same, hashed as irun's first state format did (from `Debug` text): records it wrote are compared this way
/// until they are written again, so an upgrade does not rerun every task.
fn legacy(task: &Task) -> (Digest, Digest, Digest) {
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
fn probe(task: &Task, portable: Portable<'_>) -> Digest {
    let Some(service) = task.service() else { return Digest::default() };
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

pub(crate) fn hash_str(s: &str) -> Digest {
    hash_bytes(s.as_bytes())
}

fn hash_bytes(bytes: &[u8]) -> Digest {
    Digest::of(xxhash_rust::xxh3::xxh3_128(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How [`canonical`] was written first, through `serde_json::Value`: records hashed so must stay valid.
    fn canonical_by_value(task: &Task, portable: Portable<'_>) -> (Digest, Digest, Digest) {
        let process = task.process();
        let cmd = process.map_or(Value::Null, |p| cmd_json(&p.cmd, portable));
        let mut env: Vec<(&str, String)> =
            process.map(|p| p.env.iter().map(|(k, v)| (k.as_str(), portable(v))).collect()).unwrap_or_default();
        env.sort();
        let globs = json!({ "sources": task.sources(), "outputs": task.outputs() });
        (hash_str(&cmd.to_string()), hash_str(&json!(env).to_string()), hash_str(&globs.to_string()))
    }

    #[test]
    fn settings_hash_as_they_did_through_json_values() {
        let dir = tempfile::tempdir().unwrap();
        let toml = r#"
[tasks.shell]
cmd = "echo \"quoted\" \u00e9 && cd ${PWD}/x"
env = { B = "2", A = "tab\there", Z = "${PWD}/bin" }
sources = ["src/**", "!src/gen/**"]
outputs = ["out/a.txt"]
[tasks.argv]
cmd = ["cp", "a b", "c\\d"]
[tasks.group]
deps = ["shell", "argv"]
sources = ["docs/*.md"]
"#;
        let source = crate::diagnostic::Source::new(&dir.path().join("Irun.toml"), toml);
        let config =
            crate::config::parse(source, dir.path().to_path_buf()).unwrap_or_else(|d| panic!("{}", d.render(false)));
        let root = Root::new(dir.path());
        let portable = |s: &str| root.portable(s).into_owned();
        for task in config.tasks.iter() {
            assert_eq!(canonical(task, &portable), canonical_by_value(task, &portable), "{}", task.name);
        }
    }

    #[test]
    fn only_whole_occurrences_of_the_root_are_replaced() {
        let root = Root::of(vec!["/tmp/p".into()]);
        assert_eq!(root.portable("cd /tmp/p && /tmp/p/bin/x"), "cd \0root\0 && \0root\0/bin/x");
        assert_eq!(root.portable("/tmp/pq /x/tmp/p a/tmp/p"), "/tmp/pq /x/tmp/p a/tmp/p");
        assert_eq!(root.portable("PATH=/tmp/p/.venv/bin:/usr/bin"), "PATH=\0root\0/.venv/bin:/usr/bin");
        assert_eq!(Root::of(vec!["/".into()]).portable("/usr/bin"), "/usr/bin");
    }

    #[test]
    fn every_path_naming_the_root_is_replaced_the_longest_first() {
        let root = Root::of(vec!["/home/me/proj".into(), "/data/proj".into(), "/home/me/proj/self".into()]);
        assert_eq!(
            root.portable("/data/proj/.venv:/home/me/proj/bin:/home/me/proj/self/x:/home/me/projects"),
            "\0root\0/.venv:\0root\0/bin:\0root\0/x:/home/me/projects"
        );
        assert_eq!(root.relative(Path::new("/home/me/proj/self/web")), "web");
        assert_eq!(root.relative(Path::new("/home/me/proj/web")), "web");
        assert_eq!(root.relative(Path::new("/data/proj")), ".");
    }

    /// A temporary folder with `data/proj/sub` and the link `home/proj -> data/proj`; (the folder, real, link).
    fn linked() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().canonicalize().unwrap();
        let (real, link) = (top.join("data/proj"), top.join("home/proj"));
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::fs::create_dir_all(top.join("home")).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        (dir, real, link)
    }

    #[test]
    fn the_shells_pwd_through_a_link_names_the_root_too() {
        let (_dir, real, link) = linked();
        let text = format!("{0}/.venv {1}/.venv", link.display(), real.display());
        for pwd in [link.clone(), link.join("sub")] {
            let root = Root::named(&real, Some(&pwd));
            assert_eq!(root.portable(&text), "\0root\0/.venv \0root\0/.venv", "PWD={}", pwd.display());
            assert_eq!(root.relative(&link.join("web")), "web");
        }
        // A PWD naming another folder, or not as a shell sets it, adds nothing.
        let top = link.parent().unwrap().parent().unwrap();
        for pwd in [top.join("home"), PathBuf::from("home/proj"), link.join("sub/..")] {
            assert_eq!(Root::named(&real, Some(&pwd)).paths, [real.display().to_string()], "PWD={}", pwd.display());
        }
    }

    #[test]
    fn an_irun_toml_named_through_a_link_has_both_paths_replaced() {
        let (_dir, real, link) = linked();
        let root = Root::named(&link, None);
        let text = format!("{0}/.venv {1}/.venv", link.display(), real.display());
        assert_eq!(root.portable(&text), "\0root\0/.venv \0root\0/.venv");
    }

    #[test]
    fn a_project_at_the_filesystem_root_replaces_no_slash() {
        let root = Root::named(Path::new("/"), Some(Path::new("/")));
        assert_eq!(root.paths, ["/"]);
        assert_eq!(root.portable("/usr/bin:/x /"), "/usr/bin:/x /");
        assert_eq!(root.relative(Path::new("/")), ".");
        assert_eq!(root.relative(Path::new("/srv/app")), "srv/app");
        // Every `PWD` starts with `/`: nothing is added to it.
        assert_eq!(Root::named(Path::new("/"), Some(Path::new("/tmp"))).paths, ["/"]);
    }

    #[test]
    fn a_path_of_the_root_that_begins_another_of_its_paths_replaces_only_whole_ones() {
        // `/p -> /pq`: both name the root; `/pqr` is another folder.
        let root = Root::of(vec!["/p".into(), "/pq".into()]);
        assert_eq!(root.portable("/p/x /pq/y /pqr /p"), "\0root\0/x \0root\0/y /pqr \0root\0");
        assert_eq!(root.relative(Path::new("/pq/web")), "web");
        assert_eq!(root.relative(Path::new("/pqr/web")), "/pqr/web");
    }

    #[test]
    fn a_cwd_under_the_root_is_relative_and_one_outside_stays_absolute() {
        let root = Root::of(vec!["/tmp/p".into()]);
        assert_eq!(root.relative(Path::new("/tmp/p")), ".");
        assert_eq!(root.relative(Path::new("/tmp/p/web/app")), "web/app");
        assert_eq!(root.relative(Path::new("/srv/other")), "/srv/other");
    }

    #[test]
    fn a_cwd_written_relative_to_the_root_is_recorded_as_written_even_outside_it() {
        // `cwd = "../shared"` (a folder next to the project's): what moves with the checkout is the relation, as
        // with `cd ../shared` in a command; nothing is resolved, so a link on the way resolves where it runs.
        let root = Root::of(vec!["/tmp/p".into()]);
        assert_eq!(root.relative(&Path::new("/tmp/p").join("../shared")), "../shared");
        assert_eq!(root.relative(&Path::new("/tmp/p").join("web/../../shared")), "web/../../shared");
        assert_eq!(root.relative(&Path::new("/tmp/p").join("./web")), "web");
    }
}
