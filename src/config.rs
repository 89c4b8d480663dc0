//! Irun.toml: finding it, its schema, and validation into a model the rest of irun can trust.
//!
//! Parsing keeps byte spans so every error points at the offending line. Anything that would only fail later
//! (a bad duration, port, regex, signal) is rejected here, before a single process starts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::{Diagnostic, Source, suggestion};
use crate::interpolate::{self, Layers};

pub const FILE_NAME: &str = "Irun.toml";

/// The JSON Schema of Irun.toml (`irun schema`), kept in step with the validation below.
pub const JSON_SCHEMA: &str = include_str!("irun.schema.json");

/// Readiness probe defaults, documented in README.md.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TCP_INTERVAL: Duration = Duration::from_millis(2);
/// For `tcp = "HOST:PORT"` with a host other than a loopback address or `localhost`.
pub const DEFAULT_REMOTE_TCP_INTERVAL: Duration = Duration::from_millis(10);

/// `localhost`, or an address of this machine's loopback interface.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
pub const DEFAULT_HTTP_INTERVAL: Duration = Duration::from_millis(25);
pub const DEFAULT_EXEC_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A validated Irun.toml.
#[derive(Debug)]
pub struct Config {
    pub source: Source,
    /// The directory holding Irun.toml: commands run here unless a task sets `cwd`.
    pub root: PathBuf,
    pub default: Option<Vec<Named>>,
    pub jobs: Option<usize>,
    pub tasks: Vec<Task>,
    by_name: HashMap<String, usize>,
}

impl Config {
    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.by_name.get(name).map(|&i| &self.tasks[i])
    }

    /// The task called `name`, to change before the run is planned (arguments from the command line).
    pub fn task_mut(&mut self, name: &str) -> Option<&mut Task> {
        self.by_name.get(name).map(|&i| &mut self.tasks[i])
    }

    /// The tasks `task` depends on, looking through groups to what they gather (each once, groups left out).
    pub fn deps_through_groups(&self, task: &Task) -> Vec<&Task> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = task.deps.iter().rev().map(|d| d.name.as_str()).collect();
        while let Some(name) = stack.pop() {
            let Some(dep) = self.task(name) else { continue };
            if !seen.insert(name) {
                continue;
            }
            if dep.is_group() {
                stack.extend(dep.deps.iter().rev().map(|d| d.name.as_str()));
            } else {
                out.push(dep);
            }
        }
        out
    }
}

/// A task name as written somewhere in Irun.toml, with its position for error messages.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub span: Range<usize>,
}

#[derive(Debug)]
pub struct Task {
    pub name: String,
    pub span: Range<usize>,
    pub description: Option<String>,
    /// `None` makes the task a group: it only gathers its deps.
    pub cmd: Option<Cmd>,
    pub deps: Vec<Named>,
    /// The environment the task adds to irun's own: `[env]` overlaid by the task's `env`.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub timeout: Option<Duration>,
    pub sources: Vec<String>,
    pub outputs: Vec<String>,
    pub service: Option<Service>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// Run even when up to date (its `sources` still drive watch mode).
    pub always_run: bool,
    /// A service whose probe already passes before irun starts it is used as it is: not started, not stopped.
    pub reuse: bool,
    pub output: OutputPolicy,
    /// A service whose process exits is started again (after a backoff), at most `max_restarts` times.
    pub restart: Restart,
    pub max_restarts: u32,
}

/// When a service whose process exited is started again (`restart` in Irun.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    #[default]
    No,
    /// After an exit with a non-zero code or by a signal.
    OnFailure,
    /// After any exit.
    Always,
}

impl Restart {
    /// Whether a process that exited so is started again.
    pub fn after(self, exit: crate::outcome::ChildExit) -> bool {
        match self {
            Restart::No => false,
            Restart::OnFailure => !exit.success(),
            Restart::Always => true,
        }
    }
}

pub const DEFAULT_MAX_RESTARTS: u32 = 3;

/// When a task's output is shown (`output` in Irun.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputPolicy {
    /// As it comes (or, with `--output grouped`, when the task ends).
    #[default]
    Live,
    /// Held back, and shown only if the task fails (a service: fails or never becomes ready).
    OnFailure,
}

impl Task {
    pub fn is_group(&self) -> bool {
        self.cmd.is_none()
    }

    pub fn is_service(&self) -> bool {
        self.service.is_some()
    }

    /// Whether `other` does exactly what this task does (same command, deps, environment, directory, globs,
    /// limits and readiness probe); its description and place in the file do not count.
    pub fn same_definition(&self, other: &Task) -> bool {
        let deps = |t: &Task| t.deps.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        self.name == other.name
            && self.cmd == other.cmd
            && deps(self) == deps(other)
            && self.env == other.env
            && self.cwd == other.cwd
            && self.timeout == other.timeout
            && self.sources == other.sources
            && self.outputs == other.outputs
            && self.service == other.service
            && self.stop_signal == other.stop_signal
            && self.stop_timeout == other.stop_timeout
            && self.always_run == other.always_run
            && self.reuse == other.reuse
            && self.output == other.output
            && self.restart == other.restart
            && self.max_restarts == other.max_restarts
    }

    pub fn kind(&self) -> &'static str {
        if self.is_group() {
            "group"
        } else if self.is_service() {
            "service"
        } else {
            "task"
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// Run with `sh -c`.
    Shell(String),
    /// Executed directly, no shell.
    Argv(Vec<String>),
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Shell(s) => f.write_str(s),
            Cmd::Argv(argv) => f.write_str(&argv.join(" ")),
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Service {
    /// `None`: ready as soon as it is spawned.
    pub ready: Option<Probe>,
}

#[derive(Debug, PartialEq)]
pub struct Probe {
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug)]
pub enum Check {
    /// `host: None` (a bare port): 127.0.0.1 or ::1, whichever the server listens on.
    Tcp {
        host: Option<String>,
        port: u16,
    },
    Http {
        url: HttpUrl,
        status: Option<u16>,
    },
    Exec(Cmd),
    Log(regex::Regex),
    /// `tcp = "auto"`: a free port chosen as the service starts (given to it as `IRUN_PORT`), then as `Tcp`.
    AutoTcp,
}

impl PartialEq for Check {
    fn eq(&self, other: &Check) -> bool {
        match (self, other) {
            (Check::Tcp { host: h1, port: p1 }, Check::Tcp { host: h2, port: p2 }) => h1 == h2 && p1 == p2,
            (Check::Http { url: u1, status: s1 }, Check::Http { url: u2, status: s2 }) => u1.raw == u2.raw && s1 == s2,
            (Check::Exec(a), Check::Exec(b)) => a == b,
            (Check::Log(a), Check::Log(b)) => a.as_str() == b.as_str(),
            (Check::AutoTcp, Check::AutoTcp) => true,
            _ => false,
        }
    }
}

impl Check {
    /// The address a probe connects to, which must be free before the service starts (`None` as the host: both
    /// loopback addresses).
    pub fn address(&self) -> Option<(Option<&str>, u16)> {
        match self {
            Check::Tcp { host, port } => Some((host.as_deref(), *port)),
            Check::Http { url, .. } => Some((Some(&url.host), url.port)),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Check::Tcp { host: Some(host), port } => format!("{} accepting connections", host_port(host, *port)),
            Check::Tcp { host: None, port } => format!("port {port} on 127.0.0.1 or ::1 accepting connections"),
            Check::Http { url, status } => match status {
                Some(s) => format!("{} answering {s}", url.raw),
                None => format!("{} answering 2xx or 3xx", url.raw),
            },
            Check::Exec(cmd) => format!("`{cmd}` exiting 0"),
            Check::Log(re) => format!("a line of output matching `{}`", re.as_str()),
            Check::AutoTcp => "a port chosen as it starts (IRUN_PORT) accepting connections".to_string(),
        }
    }

    /// The key in `ready` that configures this check, for error messages.
    pub fn key(&self) -> &'static str {
        match self {
            Check::Tcp { .. } | Check::AutoTcp => "tcp",
            Check::Http { .. } => "http",
            Check::Exec(_) => "exec",
            Check::Log(_) => "log",
        }
    }
}

/// The variable that holds the port chosen for service `name` (`ready = { tcp = "auto" }`): `IRUN_PORT_` and the
/// name in upper case, every character other than a letter or digit made `_` (`redis-main` → `IRUN_PORT_REDIS_MAIN`).
pub fn port_variable(name: &str) -> String {
    let tail: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("IRUN_PORT_{tail}")
}

/// `host:port`, with brackets around IPv6 addresses.
///
/// ```
/// assert_eq!(irun::config::host_port("127.0.0.1", 8001), "127.0.0.1:8001");
/// assert_eq!(irun::config::host_port("::1", 8001), "[::1]:8001");
/// ```
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[derive(Debug)]
pub struct HttpUrl {
    pub raw: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// The matcher for a list of `sources` or `outputs` globs, relative to the project root. `*` stays within one
/// folder; `**` crosses folders. The globs were checked when Irun.toml was loaded.
pub fn glob_set(globs: &[String]) -> globset::GlobSet {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        if let Ok(glob) = glob(g) {
            b.add(glob);
        }
        // `dir/**` stands for the folder too, so removing or replacing `dir` itself is covered.
        if let Some(dir) = g.strip_suffix("/**") {
            if let Ok(glob) = glob(dir) {
                b.add(glob);
            }
        }
    }
    b.build().unwrap_or_else(|_| globset::GlobSet::empty())
}

pub fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern.trim_start_matches("./")).literal_separator(true).build()
}

// ---------------------------------------------------------------------------------------------------------------
// Finding and loading

/// The Irun.toml to use: `start` itself or the nearest parent holding one, like Cargo does.
pub fn find(start: &Path) -> Result<PathBuf, Diagnostic> {
    for dir in start.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Diagnostic::new(format!("no {FILE_NAME} found in {} or any parent directory", start.display()))
        .with_help(format!("create {FILE_NAME} there, or pass its path with `-f PATH`")))
}

pub fn load(path: &Path) -> Result<Config, Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(format!("cannot read {}: {e}", path.display()))
            .with_help("check the path given to `-f`, or run irun from a directory holding Irun.toml")
    })?;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let root = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    parse(Source::new(&path, &text), root)
}

/// Parse and validate the text of an Irun.toml whose commands run in `root`.
pub fn parse(source: Source, root: PathBuf) -> Result<Config, Diagnostic> {
    let raw: RawConfig = toml::from_str(&source.text).map_err(|e| toml_error(&source, &e))?;
    let shell: HashMap<String, String> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    Validator { source: &source, root: &root, shell: &shell }.config(raw).map(|(default, jobs, tasks)| Config {
        source: source.clone(),
        root: root.clone(),
        default,
        jobs,
        by_name: tasks.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect(),
        tasks,
    })
}

fn toml_error(source: &Source, e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim().to_string();
    let span = e.span().unwrap_or(0..0);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde says "unknown field `x`, expected one of `a`, `b`": turn it into a suggestion.
        let unknown = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let hint = suggestion(unknown, expected.iter().copied());
        let d = Diagnostic::at(source, span, format!("unknown key `{unknown}`{hint}"));
        return if expected.is_empty() { d } else { d.with_help(format!("valid keys here: {}", expected.join(", "))) };
    }
    Diagnostic::at(source, span, message)
}

// ---------------------------------------------------------------------------------------------------------------
// The schema as written

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    default: Option<Vec<Spanned<String>>>,
    jobs: Option<Spanned<i64>>,
    dotenv: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<toml::Value>>,
    /// Boxed: the map moves its values as it grows, and a task's settings are large.
    #[serde(default)]
    tasks: BTreeMap<Spanned<String>, Box<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    description: Option<String>,
    cmd: Option<Spanned<toml::Value>>,
    #[serde(default)]
    deps: Vec<Spanned<String>>,
    env: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    dotenv: Option<Spanned<Vec<Spanned<String>>>>,
    cwd: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    sources: Option<Spanned<Vec<Spanned<String>>>>,
    outputs: Option<Spanned<Vec<Spanned<String>>>>,
    daemon: Option<Spanned<bool>>,
    ready: Option<Spanned<RawReady>>,
    stop_signal: Option<Spanned<String>>,
    stop_timeout: Option<Spanned<String>>,
    always_run: Option<Spanned<bool>>,
    reuse: Option<Spanned<bool>>,
    output: Option<Spanned<String>>,
    restart: Option<Spanned<String>>,
    max_restarts: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    tcp: Option<Spanned<toml::Value>>,
    http: Option<Spanned<String>>,
    status: Option<Spanned<i64>>,
    exec: Option<Spanned<toml::Value>>,
    log: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

type Validated = (Option<Vec<Named>>, Option<usize>, Vec<Task>);

struct Validator<'a> {
    source: &'a Source,
    root: &'a Path,
    /// irun's environment, the first place `${NAME}` is looked up.
    shell: &'a HashMap<String, String>,
}

/// What the top level of Irun.toml gives every task.
struct Shared {
    /// From the top-level `dotenv` files, later files winning.
    dotenv: Vec<(String, String)>,
    /// `[env]`, expanded.
    env: Vec<(String, String)>,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.source, span, message)
    }

    fn config(&self, raw: RawConfig) -> Result<Validated, Diagnostic> {
        let jobs = match raw.jobs {
            None => None,
            Some(j) if *j.get_ref() >= 1 => Some(*j.get_ref() as usize),
            Some(j) => {
                return Err(self
                    .err(j.span(), format!("`jobs` must be at least 1, not {}", j.get_ref()))
                    .with_help("remove `jobs` to use one job per CPU"));
            }
        };
        let dotenv = self.dotenv(raw.dotenv.as_ref())?;
        let env = self.env(&raw.env, &Layers::new(&[], self.shell, &[dotenv.as_slice()]))?;
        let shared = Shared { dotenv, env };

        // Declaration order, not alphabetical: `irun list` and ties in scheduling follow the file. (References
        // are sorted: moving the tasks themselves costs more than the sort.)
        let mut tasks: Vec<(&Spanned<String>, &RawTask)> = raw.tasks.iter().map(|(n, t)| (n, &**t)).collect();
        tasks.sort_unstable_by_key(|(name, _)| name.span().start);
        let names: HashSet<&str> = tasks.iter().map(|(n, _)| n.get_ref().as_str()).collect();

        let default = match raw.default {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for t in list {
                    if !names.contains(t.get_ref().as_str()) {
                        return Err(self.unknown_task(&t, "`default` names unknown task", &names));
                    }
                    out.push(named(t));
                }
                Some(out)
            }
        };

        let mut out = Vec::with_capacity(tasks.len());
        for (name, task) in &tasks {
            out.push(self.task(name, task, &shared, &names)?);
        }
        Ok((default, jobs, out))
    }

    fn unknown_task(&self, name: &Spanned<String>, what: &str, names: &HashSet<&str>) -> Diagnostic {
        let hint = suggestion(name.get_ref(), names.iter().copied());
        let mut known: Vec<&str> = names.iter().copied().collect();
        known.sort_unstable();
        self.err(name.span(), format!("{what} `{}`{hint}", name.get_ref()))
            .with_help(format!("tasks defined in Irun.toml: {}", known.join(", ")))
    }

    fn task(
        &self,
        name: &Spanned<String>,
        raw: &RawTask,
        shared: &Shared,
        names: &HashSet<&str>,
    ) -> Result<Task, Diagnostic> {
        let task_name = name.get_ref().clone();
        if task_name.trim().is_empty() {
            return Err(self.err(name.span(), "a task name cannot be empty"));
        }
        // `${NAME}` is the value the task will see as $NAME: its `env`, else `[env]`, else irun's environment, else
        // the dotenv files (the task's, then the top level's). A value in `env` sees the layers below it.
        let dotenv = self.dotenv(raw.dotenv.as_ref())?;
        let below: [&[(String, String)]; 2] = [&dotenv, &shared.dotenv];
        let task_env = match &raw.env {
            Some(e) => self.env(e.get_ref(), &Layers::new(&[&shared.env], self.shell, &below))?,
            None => Vec::new(),
        };
        let vars = Layers::new(&[&task_env, &shared.env], self.shell, &below);
        let cmd = match &raw.cmd {
            None => None,
            Some(c) => Some(self.cmd(c, "cmd", &vars)?),
        };
        let daemon = raw.daemon.as_ref().is_some_and(|d| *d.get_ref());

        if cmd.is_none() {
            // A group only gathers deps; settings that shape a process make no sense on it.
            if let Some(ready) = &raw.ready {
                return Err(self
                    .err(
                        ready.span(),
                        format!("task `{task_name}` is a group (it has no `cmd`) and cannot have `ready`"),
                    )
                    .with_help("give it a `cmd` and `daemon = true` to make it a service, or remove `ready`"));
            }
            let process_keys: [(&str, Option<Range<usize>>); 13] = [
                ("restart", raw.restart.as_ref().map(Spanned::span)),
                ("max_restarts", raw.max_restarts.as_ref().map(Spanned::span)),
                ("output", raw.output.as_ref().map(Spanned::span)),
                ("reuse", raw.reuse.as_ref().map(Spanned::span)),
                ("dotenv", raw.dotenv.as_ref().map(Spanned::span)),
                ("always_run", raw.always_run.as_ref().map(Spanned::span)),
                ("daemon", raw.daemon.as_ref().map(Spanned::span)),
                ("env", raw.env.as_ref().map(Spanned::span)),
                ("cwd", raw.cwd.as_ref().map(Spanned::span)),
                ("timeout", raw.timeout.as_ref().map(Spanned::span)),
                ("stop_signal", raw.stop_signal.as_ref().map(Spanned::span)),
                ("stop_timeout", raw.stop_timeout.as_ref().map(Spanned::span)),
                ("outputs", raw.outputs.as_ref().map(Spanned::span)),
            ];
            if let Some((key, Some(span))) = process_keys.into_iter().find(|(_, s)| s.is_some()) {
                return Err(self
                    .err(span, format!("task `{task_name}` is a group (it has no `cmd`), so `{key}` has no effect"))
                    .with_help(format!("add a `cmd` to task `{task_name}`, or remove `{key}`")));
            }
            if raw.deps.is_empty() {
                return Err(self
                    .err(name.span(), format!("task `{task_name}` has neither `cmd` nor `deps`"))
                    .with_help("give it a `cmd` to run, or `deps` to make it a group"));
            }
        }

        let mut deps: Vec<Named> = Vec::new();
        // A dep listed twice counts once (a set, so 50,000 deps cost no more than they must).
        let mut listed: HashSet<&str> = HashSet::with_capacity(raw.deps.len());
        for d in &raw.deps {
            if !names.contains(d.get_ref().as_str()) {
                return Err(self.unknown_task(d, &format!("task `{task_name}` depends on unknown task"), names));
            }
            if listed.insert(d.get_ref().as_str()) {
                deps.push(named(d.clone()));
            }
        }

        // The task's environment: irun's, then what the dotenv files add to it (a variable irun already has keeps
        // its value), overridden by `[env]`, overridden by the task's `env`.
        let mut env: Vec<(String, String)> = Vec::new();
        let added = shared.dotenv.iter().chain(&dotenv).filter(|(k, _)| !self.shell.contains_key(k));
        for (k, v) in added.chain(&shared.env).chain(&task_env) {
            env.retain(|(existing, _)| existing != k);
            env.push((k.clone(), v.clone()));
        }

        let cwd = match &raw.cwd {
            None => self.root.to_path_buf(),
            Some(c) if c.get_ref().trim().is_empty() => {
                return Err(self
                    .err(c.span(), "`cwd` is empty")
                    .with_help("remove `cwd` to run in the directory holding Irun.toml"));
            }
            Some(c) => self.root.join(self.expand(c.get_ref(), c.span(), "cwd", &vars)?),
        };

        let timeout = raw.timeout.as_ref().map(|t| self.duration(t, "timeout")).transpose()?;
        let stop_timeout = match &raw.stop_timeout {
            Some(t) => self.duration(t, "stop_timeout")?,
            None => DEFAULT_STOP_TIMEOUT,
        };
        let stop_signal = match &raw.stop_signal {
            Some(s) => self.signal(s)?,
            None => Signal::SIGTERM,
        };

        let service = match (&raw.ready, daemon) {
            (Some(ready), false) => {
                return Err(self
                    .err(ready.span(), format!("`ready` is only for services, and task `{task_name}` is not one"))
                    .with_help(format!("add `daemon = true` to task `{task_name}`, or remove `ready`")));
            }
            (Some(ready), true) => Some(Service { ready: Some(self.probe(ready, &vars)?) }),
            (None, true) => Some(Service { ready: None }),
            (None, false) => None,
        };
        let restart = match &raw.restart {
            None => Restart::No,
            Some(r) => match r.get_ref().as_str() {
                "no" => Restart::No,
                "on-failure" => Restart::OnFailure,
                "always" => Restart::Always,
                other => {
                    let hint = suggestion(other, ["no", "on-failure", "always"]);
                    return Err(self
                        .err(r.span(), format!("unknown `restart` {other:?}{hint}"))
                        .with_help("write `restart = \"no\"` (the default), `\"on-failure\"` or `\"always\"`"));
                }
            },
        };
        let max_restarts = match &raw.max_restarts {
            None => DEFAULT_MAX_RESTARTS,
            Some(m) => u32::try_from(*m.get_ref()).map_err(|_| {
                self.err(m.span(), format!("`max_restarts` must be 0 or more, not {}", m.get_ref()))
                    .with_help(format!("remove it for the default of {DEFAULT_MAX_RESTARTS}"))
            })?,
        };
        for (key, span) in [
            ("restart", raw.restart.as_ref().map(Spanned::span)),
            ("max_restarts", raw.max_restarts.as_ref().map(Spanned::span)),
        ] {
            if let (Some(span), None) = (span, &service) {
                return Err(self
                    .err(span, format!("`{key}` is only for services, and task `{task_name}` is not one"))
                    .with_help(format!("add `daemon = true` to task `{task_name}`, or remove `{key}`")));
            }
        }
        let reuse = raw.reuse.as_ref().is_some_and(|r| *r.get_ref());
        if let Some(r) = raw.reuse.as_ref().filter(|_| reuse) {
            let why = match service.as_ref().map(|s| s.ready.as_ref().map(|p| &p.check)) {
                None => Some("only a service (`daemon = true`) can be reused"),
                Some(None) => Some("a service is reused when its `ready` probe already passes, and it has none"),
                Some(Some(Check::Log(_))) => Some("a `log` probe cannot tell that a server irun did not start is up"),
                Some(Some(Check::AutoTcp)) => Some("a port chosen as the service starts cannot already be in use"),
                Some(Some(_)) => None,
            };
            if let Some(why) = why {
                return Err(self
                    .err(r.span(), format!("`reuse = true` on task `{task_name}`: {why}"))
                    .with_help("reuse needs a service with a `tcp`, `http` or `exec` probe, or remove `reuse`"));
            }
        }

        Ok(Task {
            name: task_name,
            span: name.span(),
            description: raw.description.clone(),
            cmd,
            deps,
            env,
            cwd,
            timeout,
            sources: self.globs(raw.sources.as_ref(), "sources")?,
            outputs: self.globs(raw.outputs.as_ref(), "outputs")?,
            service,
            stop_signal,
            stop_timeout,
            always_run: raw.always_run.as_ref().is_some_and(|a| *a.get_ref()),
            reuse,
            restart,
            max_restarts,
            output: match &raw.output {
                None => OutputPolicy::Live,
                Some(o) => match o.get_ref().as_str() {
                    "live" => OutputPolicy::Live,
                    "on-failure" => OutputPolicy::OnFailure,
                    other => {
                        let hint = suggestion(other, ["live", "on-failure"]);
                        return Err(self
                            .err(o.span(), format!("unknown `output` {other:?}{hint}"))
                            .with_help("write `output = \"live\"` (the default) or `output = \"on-failure\"`"));
                    }
                },
            },
        })
    }

    /// `text` (the value at `span`) with its `${NAME}`s resolved from `vars`.
    fn expand(&self, text: &str, span: Range<usize>, key: &str, vars: &Layers) -> Result<String, Diagnostic> {
        interpolate::expand(text, &|name| vars.get(name)).map_err(|problem| {
            // Point at the reference itself when it is written as is in the file (no escapes before it).
            let written = self.source.text.get(span.clone()).unwrap_or_default();
            let at = |needle: &str| {
                written.find(needle).map(|i| span.start + i..span.start + i + needle.len()).unwrap_or(span.clone())
            };
            match problem {
                interpolate::Problem::Unknown { name, .. } => self
                    .err(at(&format!("${{{name}")), format!("unknown variable `{name}` in `{key}`"))
                    .with_help(format!(
                        "set {name} in the environment, a `dotenv` file or `env`, give a default with \
                         `${{{name}:-default}}`, or write `$${{{name}}}` for a literal `${{{name}}}`"
                    )),
                interpolate::Problem::Malformed { at: offset } => {
                    let rest = &text[offset..];
                    let shown: String = rest.chars().take(rest.find('}').map_or(12, |i| i + 1).min(40)).collect();
                    self.err(at(&shown), format!("`{shown}` in `{key}` is not a variable reference"))
                        .with_help("write `${NAME}` or `${NAME:-default}` (NAME: letters, digits and `_`), or `$${` for a literal `${`")
                }
            }
        })
    }

    /// A string, or an array of strings, with each string's `${NAME}`s resolved.
    fn expand_value(
        &self,
        value: &Spanned<toml::Value>,
        key: &str,
        vars: &Layers,
    ) -> Result<Spanned<toml::Value>, Diagnostic> {
        let span = value.span();
        let expanded = match value.get_ref() {
            toml::Value::String(s) => toml::Value::String(self.expand(s, span.clone(), key, vars)?),
            toml::Value::Array(items) => toml::Value::Array(
                items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => Ok(toml::Value::String(self.expand(s, span.clone(), key, vars)?)),
                        other => Ok(other.clone()),
                    })
                    .collect::<Result<_, Diagnostic>>()?,
            ),
            other => other.clone(),
        };
        Ok(Spanned::new(span, expanded))
    }

    fn cmd(&self, value: &Spanned<toml::Value>, key: &str, vars: &Layers) -> Result<Cmd, Diagnostic> {
        let value = &self.expand_value(value, key, vars)?;
        let span = value.span();
        match value.get_ref() {
            toml::Value::String(s) if s.trim().is_empty() => {
                Err(self.err(span, format!("`{key}` is empty")).with_help(format!("give `{key}` a command to run")))
            }
            toml::Value::String(s) if s.contains('\0') => Err(self.err(span, format!("`{key}` contains a NUL byte"))),
            toml::Value::String(s) => Ok(Cmd::Shell(s.clone())),
            toml::Value::Array(items) => {
                let mut argv = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) if s.contains('\0') => {
                            return Err(self.err(span.clone(), format!("`{key}` contains a NUL byte")));
                        }
                        toml::Value::String(s) => argv.push(s.clone()),
                        other => {
                            return Err(self.err(
                                span.clone(),
                                format!("`{key}` must be an array of strings, but it holds a {}", other.type_str()),
                            ));
                        }
                    }
                }
                match argv.first() {
                    None => Err(self
                        .err(span, format!("`{key}` is an empty array"))
                        .with_help("the first element is the program to run, the rest its arguments")),
                    Some(p) if p.trim().is_empty() => Err(self
                        .err(span, format!("`{key}` has an empty program name"))
                        .with_help("the first element is the program to run")),
                    Some(_) => Ok(Cmd::Argv(argv)),
                }
            }
            other => Err(self
                .err(span, format!("`{key}` must be a string or an array of strings, not a {}", other.type_str()))
                .with_help("a string runs with `sh -c`; an array is executed directly")),
        }
    }

    fn globs(&self, list: Option<&Spanned<Vec<Spanned<String>>>>, key: &str) -> Result<Vec<String>, Diagnostic> {
        let mut out = Vec::new();
        for g in list.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
            if let Err(e) = glob(g.get_ref()) {
                return Err(self
                    .err(g.span(), format!("invalid glob {:?} in `{key}`: {}", g.get_ref(), e.kind()))
                    .with_help("globs are relative to the directory holding Irun.toml, like \"src/**/*.rs\""));
            }
            if std::path::Path::new(g.get_ref()).is_absolute() || escapes_root(g.get_ref()) {
                return Err(self
                    .err(g.span(), format!("glob {:?} in `{key}` points outside the project", g.get_ref()))
                    .with_help("globs are relative to the directory holding Irun.toml"));
            }
            out.push(g.get_ref().clone());
        }
        Ok(out)
    }

    /// The variables of the listed dotenv files, in order (a later file's value wins); `?` before a path makes the
    /// file optional.
    fn dotenv(&self, list: Option<&Spanned<Vec<Spanned<String>>>>) -> Result<Vec<(String, String)>, Diagnostic> {
        let mut out: Vec<(String, String)> = Vec::new();
        for file in list.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
            let (written, optional) = match file.get_ref().strip_prefix('?') {
                Some(rest) => (rest, true),
                None => (file.get_ref().as_str(), false),
            };
            let path = self.root.join(written);
            match crate::dotenv::read(&path) {
                Ok(vars) => {
                    for (k, v) in vars {
                        out.retain(|(existing, _)| *existing != k);
                        out.push((k, v));
                    }
                }
                Err(crate::dotenv::Error::Missing) if optional => {}
                Err(crate::dotenv::Error::Missing) => {
                    return Err(self
                        .err(file.span(), format!("dotenv file {written:?} does not exist ({})", path.display()))
                        .with_help(format!("create it, or write \"?{written}\" to use it only when it exists")));
                }
                Err(crate::dotenv::Error::Unreadable(why)) => {
                    return Err(self
                        .err(file.span(), format!("cannot use dotenv file {written:?}: {why}"))
                        .with_help("fix the file (lines are `NAME=value`, `export NAME=value` or `# comments`)"));
                }
            }
        }
        Ok(out)
    }

    fn env(
        &self,
        table: &BTreeMap<String, Spanned<toml::Value>>,
        vars: &Layers,
    ) -> Result<Vec<(String, String)>, Diagnostic> {
        let mut out = Vec::with_capacity(table.len());
        for (k, v) in table {
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(self
                    .err(v.span(), format!("invalid environment variable name {k:?}"))
                    .with_help("a name must be non-empty and cannot contain `=` or NUL"));
            }
            let value = match v.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(self
                        .err(
                            v.span(),
                            format!("environment variable `{k}` must be a string, not a {}", other.type_str()),
                        )
                        .with_help(format!("write it as `{k} = \"...\"`")));
                }
            };
            if value.contains('\0') {
                return Err(self.err(v.span(), format!("environment variable `{k}` contains a NUL byte")));
            }
            let value = self.expand(&value, v.span(), &format!("env.{k}"), vars)?;
            out.push((k.clone(), value));
        }
        Ok(out)
    }

    fn duration(&self, value: &Spanned<String>, key: &str) -> Result<Duration, Diagnostic> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => Err(self
                .err(value.span(), format!("`{key}` must be longer than zero"))
                .with_help(format!("remove `{key}`, or give it a positive duration such as \"5s\""))),
            Ok(d) => Ok(d),
            Err(e) => Err(self
                .err(value.span(), format!("invalid duration {:?} for `{key}`: {e}", value.get_ref()))
                .with_help("write durations like \"500ms\", \"5s\", \"2m\" or \"1h 30m\"")),
        }
    }

    fn signal(&self, value: &Spanned<String>) -> Result<Signal, Diagnostic> {
        let upper = value.get_ref().trim().to_ascii_uppercase();
        let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        let help = "use a signal name such as \"SIGTERM\", \"SIGINT\", \"SIGQUIT\", \"SIGHUP\" or \"SIGKILL\"";
        let signal = Signal::from_str(&name).map_err(|_| {
            self.err(value.span(), format!("unknown signal {:?} for `stop_signal`", value.get_ref())).with_help(help)
        })?;
        // Signals whose default action is to ignore, stop or continue a process would never stop a task.
        use Signal::*;
        if matches!(signal, SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU | SIGCONT | SIGCHLD | SIGURG | SIGWINCH) {
            return Err(self
                .err(value.span(), format!("`stop_signal = {:?}` does not end a process", value.get_ref()))
                .with_help(help));
        }
        Ok(signal)
    }

    fn port(&self, n: i64, span: Range<usize>) -> Result<u16, Diagnostic> {
        u16::try_from(n)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| self.err(span, format!("invalid port {n}")).with_help("a port is a number from 1 to 65535"))
    }

    fn probe(&self, ready: &Spanned<RawReady>, vars: &Layers) -> Result<Probe, Diagnostic> {
        let raw = ready.get_ref();
        let text = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<Spanned<String>>, Diagnostic> {
            v.as_ref().map(|v| Ok(Spanned::new(v.span(), self.expand(v.get_ref(), v.span(), key, vars)?))).transpose()
        };
        let (http, log) = (text(&raw.http, "ready.http")?, text(&raw.log, "ready.log")?);
        let tcp = raw.tcp.as_ref().map(|t| self.expand_value(t, "ready.tcp", vars)).transpose()?;
        let (http, log, tcp) = (&http, &log, &tcp);
        let given: Vec<&str> = [
            ("tcp", raw.tcp.is_some()),
            ("http", raw.http.is_some()),
            ("exec", raw.exec.is_some()),
            ("log", raw.log.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        let help = "a service has exactly one probe: `tcp = PORT`, `http = \"URL\"`, `exec = \"command\"` or `log = \"regex\"`";
        if given.is_empty() {
            return Err(self.err(ready.span(), "`ready` has no probe").with_help(help));
        }
        if given.len() > 1 {
            return Err(self
                .err(ready.span(), format!("`ready` has more than one probe: {}", given.join(", ")))
                .with_help(help));
        }
        if let (Some(status), None) = (&raw.status, &raw.http) {
            return Err(self
                .err(status.span(), "`status` only applies to an `http` probe")
                .with_help("remove `status`, or probe with `http = \"URL\"`"));
        }

        let (check, default_interval) = if let Some(tcp) = tcp {
            let check = self.tcp(tcp)?;
            // Refused connections on this machine cost microseconds; a named or remote host is asked less often.
            let local = matches!(&check, Check::Tcp { host: None, .. } | Check::AutoTcp)
                || matches!(&check, Check::Tcp { host: Some(h), .. } if is_loopback(h));
            (check, if local { DEFAULT_TCP_INTERVAL } else { DEFAULT_REMOTE_TCP_INTERVAL })
        } else if let Some(http) = http {
            let status = match &raw.status {
                None => None,
                Some(s) if (100..=599).contains(s.get_ref()) => Some(*s.get_ref() as u16),
                Some(s) => {
                    return Err(self
                        .err(s.span(), format!("invalid HTTP status {}", s.get_ref()))
                        .with_help("an HTTP status is a number from 100 to 599"));
                }
            };
            (Check::Http { url: self.http_url(http)?, status }, DEFAULT_HTTP_INTERVAL)
        } else if let Some(exec) = &raw.exec {
            (Check::Exec(self.cmd(exec, "ready.exec", vars)?), DEFAULT_EXEC_INTERVAL)
        } else {
            let log = log.as_ref().expect("one probe kind is set");
            if let Some(interval) = &raw.interval {
                return Err(self
                    .err(
                        interval.span(),
                        "`interval` has no effect on a `log` probe: every line is checked as it arrives",
                    )
                    .with_help("remove `interval`"));
            }
            let re = regex::Regex::new(log.get_ref())
                .map_err(|e| self.err(log.span(), format!("invalid regular expression in `ready.log`: {e}")))?;
            (Check::Log(re), Duration::ZERO)
        };

        let interval = match &raw.interval {
            Some(i) => self.duration(i, "ready.interval")?,
            None => default_interval,
        };
        let timeout = match &raw.timeout {
            Some(t) => self.duration(t, "ready.timeout")?,
            None => DEFAULT_PROBE_TIMEOUT,
        };
        Ok(Probe { check, interval, timeout })
    }

    fn tcp(&self, value: &Spanned<toml::Value>) -> Result<Check, Diagnostic> {
        let span = value.span();
        match value.get_ref() {
            toml::Value::Integer(n) => Ok(Check::Tcp { host: None, port: self.port(*n, span)? }),
            toml::Value::String(s) if s == "auto" => Ok(Check::AutoTcp),
            // A port written as a string, as `${PORT}` expands.
            toml::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                let port = s.parse().unwrap_or(i64::MAX);
                Ok(Check::Tcp { host: None, port: self.port(port, span)? })
            }
            toml::Value::String(s) => {
                let (host, port) = s.rsplit_once(':').ok_or_else(|| {
                    self.err(span.clone(), format!("invalid address {s:?} for `ready.tcp`"))
                        .with_help("write `tcp = 8001` or `tcp = \"HOST:PORT\"`")
                })?;
                let port: i64 = port.parse().map_err(|_| {
                    self.err(span.clone(), format!("invalid port {port:?} in `ready.tcp`"))
                        .with_help("a port is a number from 1 to 65535")
                })?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(self
                        .err(span, format!("address {s:?} for `ready.tcp` has no host"))
                        .with_help("write `tcp = 8001` for 127.0.0.1 or ::1, or `tcp = \"HOST:PORT\"`"));
                }
                Ok(Check::Tcp { host: Some(host.to_string()), port: self.port(port, span)? })
            }
            other => Err(self
                .err(span, format!("`ready.tcp` must be a port number or \"HOST:PORT\", not a {}", other.type_str()))
                .with_help("write `tcp = 8001` or `tcp = \"HOST:PORT\"`")),
        }
    }

    fn http_url(&self, value: &Spanned<String>) -> Result<HttpUrl, Diagnostic> {
        let raw = value.get_ref();
        let bad = |why: &str| {
            self.err(value.span(), format!("invalid URL {raw:?} for `ready.http`: {why}"))
                .with_help("write a plain-http URL such as \"http://127.0.0.1:8001/health\"")
        };
        let Some(rest) = raw.strip_prefix("http://") else {
            return Err(bad("only http:// URLs can be probed"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[` in the host"))?;
            let port = after.strip_prefix(':').unwrap_or("80");
            (host, if after.is_empty() { "80" } else { port })
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, "80"),
            }
        };
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        let port: i64 = port.parse().map_err(|_| bad("the port is not a number"))?;
        Ok(HttpUrl {
            raw: raw.clone(),
            host: host.to_string(),
            port: self.port(port, value.span())?,
            path: path.to_string(),
        })
    }
}

/// Whether a relative path climbs above where it starts (`../x`, `a/../../x`).
fn escapes_root(path: &str) -> bool {
    let mut depth: i32 = 0;
    for part in path.split('/') {
        match part {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

fn named(s: Spanned<String>) -> Named {
    Named { span: s.span(), name: s.into_inner() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys serde accepts at one level of Irun.toml, from its "unknown field" message.
    fn accepted_keys(toml_text: &str) -> std::collections::BTreeSet<String> {
        let message = match toml::from_str::<RawConfig>(toml_text) {
            Ok(_) => panic!("`zzz` is not a key"),
            Err(e) => e.message().to_string(),
        };
        let expected = message.split("expected one of").nth(1).unwrap_or_else(|| panic!("{message}"));
        expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
    }

    #[test]
    fn the_json_schema_lists_every_key_irun_accepts_and_no_other() {
        let schema: serde_json::Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        let keys = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
            v.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(keys(&schema["properties"]), accepted_keys("zzz = 1\n"));
        assert_eq!(keys(&schema["$defs"]["task"]["properties"]), accepted_keys("[tasks.a]\nzzz = 1\n"));
        assert_eq!(
            keys(&schema["$defs"]["ready"]["properties"]),
            accepted_keys("[tasks.a]\ncmd = \"x\"\nready = { zzz = 1 }\n")
        );
    }

    fn parse_str(text: &str) -> Result<Config, Diagnostic> {
        parse(Source::new(Path::new("Irun.toml"), text), PathBuf::from("/project"))
    }

    fn probe_of(ready: &str) -> Result<Check, Diagnostic> {
        let cfg = parse_str(&format!("[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = {ready}\n"))?;
        Ok(cfg.tasks.into_iter().next().unwrap().service.unwrap().ready.unwrap().check)
    }

    #[test]
    fn tasks_keep_declaration_order() {
        let cfg = parse_str("[tasks.zeta]\ncmd = \"x\"\n[tasks.alpha]\ncmd = \"y\"\n").unwrap();
        let names: Vec<&str> = cfg.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
    }

    #[test]
    fn task_env_overrides_global_env() {
        let cfg = parse_str("[env]\nA = \"1\"\nB = \"1\"\n[tasks.t]\ncmd = \"x\"\nenv = { B = \"2\" }\n").unwrap();
        let env = &cfg.tasks[0].env;
        assert!(env.contains(&("A".into(), "1".into())) && env.contains(&("B".into(), "2".into())));
        assert!(!env.contains(&("B".into(), "1".into())));
    }

    #[test]
    fn tcp_probes_of_this_machine_are_tried_more_often_than_remote_ones() {
        let interval = |probe: &str| {
            let cfg = parse_str(&format!("[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = {probe}\n")).unwrap();
            cfg.tasks.into_iter().next().unwrap().service.unwrap().ready.unwrap().interval
        };
        assert_eq!(interval("{ tcp = 8001 }"), DEFAULT_TCP_INTERVAL);
        assert_eq!(interval("{ tcp = \"localhost:80\" }"), DEFAULT_TCP_INTERVAL);
        assert_eq!(interval("{ tcp = \"[::1]:80\" }"), DEFAULT_TCP_INTERVAL);
        assert_eq!(interval("{ tcp = \"127.0.0.2:80\" }"), DEFAULT_TCP_INTERVAL);
        assert_eq!(interval("{ tcp = \"db.internal:5432\" }"), DEFAULT_REMOTE_TCP_INTERVAL);
        assert_eq!(interval("{ tcp = 8001, interval = \"1s\" }"), Duration::from_secs(1));
    }

    #[test]
    fn tcp_addresses() {
        assert!(matches!(probe_of("{ tcp = 8001 }").unwrap(), Check::Tcp { host: None, port: 8001 }));
        assert!(
            matches!(probe_of("{ tcp = \"localhost:80\" }").unwrap(), Check::Tcp { host: Some(host), port: 80 } if host == "localhost")
        );
        assert!(
            matches!(probe_of("{ tcp = \"[::1]:9\" }").unwrap(), Check::Tcp { host: Some(host), port: 9 } if host == "::1")
        );
        // A port as a string, as `tcp = "${PORT}"` expands.
        assert!(matches!(probe_of("{ tcp = \"8001\" }").unwrap(), Check::Tcp { host: None, port: 8001 }));
        assert!(probe_of("{ tcp = \"0\" }").is_err());
        assert!(probe_of("{ tcp = \":8001\" }").is_err());
    }

    #[test]
    fn http_urls() {
        let Check::Http { url, status } =
            probe_of("{ http = \"http://127.0.0.1:8001/health?x=1\", status = 204 }").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str(), status),
            ("127.0.0.1", 8001, "/health?x=1", Some(204))
        );
        let Check::Http { url, .. } = probe_of("{ http = \"http://example\" }").unwrap() else { panic!() };
        assert_eq!((url.port, url.path.as_str()), (80, "/"));
        let Check::Http { url, .. } = probe_of("{ http = \"http://[::1]:81/x\" }").unwrap() else { panic!() };
        assert_eq!((url.host.as_str(), url.port), ("::1", 81));
        assert!(probe_of("{ http = \"https://127.0.0.1/\" }").unwrap_err().message.contains("only http://"));
        assert!(probe_of("{ tcp = 1, status = 200 }").unwrap_err().message.contains("`status` only applies"));
    }

    #[test]
    fn env_names_and_nul_bytes_are_checked() {
        assert!(
            parse_str("[env]\n\"A=B\" = \"1\"\n").unwrap_err().message.contains("invalid environment variable name")
        );
        assert!(parse_str("[env]\n\"\" = \"1\"\n").unwrap_err().message.contains("invalid environment variable name"));
        assert!(parse_str("[env]\nA = \"x\\u0000y\"\n").unwrap_err().message.contains("NUL"));
        assert!(parse_str("[tasks.t]\ncmd = \"a\\u0000b\"\n").unwrap_err().message.contains("NUL"));
        assert!(parse_str("[tasks.t]\ncmd = [\"a\\u0000b\"]\n").unwrap_err().message.contains("NUL"));
    }

    #[test]
    fn stop_signals_must_end_a_process() {
        let err = parse_str("[tasks.t]\ncmd = \"x\"\nstop_signal = \"SIGCHLD\"\n").unwrap_err();
        assert!(err.message.contains("does not end a process"), "{err}");
        assert!(parse_str("[tasks.t]\ncmd = \"x\"\nstop_signal = \"SIGKILL\"\n").is_ok());
    }

    #[test]
    fn signals_accept_short_names() {
        let cfg = parse_str("[tasks.t]\ncmd = \"x\"\nstop_signal = \"int\"\n").unwrap();
        assert_eq!(cfg.tasks[0].stop_signal, Signal::SIGINT);
    }

    #[test]
    fn group_keys_that_need_a_command_are_rejected() {
        let err = parse_str("[tasks.a]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"a\"]\ntimeout = \"1s\"\n").unwrap_err();
        assert!(err.message.contains("task `g` is a group (it has no `cmd`), so `timeout` has no effect"), "{err}");
        let err = parse_str("[tasks.g]\ndescription = \"nothing\"\n").unwrap_err();
        assert!(err.message.contains("neither `cmd` nor `deps`"), "{err}");
    }

    #[test]
    fn cwd_is_relative_to_the_project_root() {
        let cfg = parse_str("[tasks.t]\ncmd = \"x\"\ncwd = \"sub\"\n[tasks.u]\ncmd = \"x\"\n").unwrap();
        assert_eq!(cfg.tasks[0].cwd, PathBuf::from("/project/sub"));
        assert_eq!(cfg.tasks[1].cwd, PathBuf::from("/project"));
    }
}
