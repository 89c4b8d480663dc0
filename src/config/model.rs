//! Irun.toml as the rest of irun sees it: validated, defaults filled in, each task one of three kinds that carries
//! only its own settings (a group cannot hold a command, a task cannot hold a readiness probe).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::env::Secrets;
use super::ids::{ByName, HasName};
pub(crate) use super::ids::{PerTask, TaskId};
use crate::diagnostic::Source;

/// Readiness probe defaults, documented in README.md.
pub(crate) const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_TCP_INTERVAL: Duration = Duration::from_millis(2);
/// For `tcp = "HOST:PORT"` with a host other than a loopback address or `localhost`.
pub(crate) const DEFAULT_REMOTE_TCP_INTERVAL: Duration = Duration::from_millis(10);
pub(crate) const DEFAULT_HTTP_INTERVAL: Duration = Duration::from_millis(25);
pub(crate) const DEFAULT_EXEC_INTERVAL: Duration = Duration::from_millis(100);
pub(crate) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_MAX_RESTARTS: u32 = 3;

/// A validated Irun.toml.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) source: Source,
    /// The directory holding Irun.toml: commands run here unless a task sets `cwd`.
    pub(crate) root: PathBuf,
    pub(crate) default: Option<Vec<Named>>,
    pub(crate) jobs: Option<usize>,
    pub(crate) tasks: PerTask<Task>,
    /// Values from irun's environment and dotenv files, which irun shows as their `${NAME}` references.
    pub(crate) secrets: Secrets,
    by_name: ByName,
}

impl Config {
    pub(crate) fn new(
        source: Source,
        root: PathBuf,
        default: Option<Vec<Named>>,
        jobs: Option<usize>,
        tasks: Vec<Task>,
    ) -> Config {
        let tasks: PerTask<Task> = tasks.into_iter().collect();
        let by_name = ByName::new(&tasks);
        Config { source, root, default, jobs, tasks, secrets: Secrets::default(), by_name }
    }

    /// The tasks' names, in the order they are written.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.tasks.iter().map(|t| t.name.as_str()).collect()
    }

    /// The task called `name`.
    pub(crate) fn id(&self, name: &str) -> Option<TaskId> {
        self.by_name.get(&self.tasks, name)
    }

    /// The task called `name`.
    pub(crate) fn task(&self, name: &str) -> Option<&Task> {
        self.id(name).map(|i| &self.tasks[i])
    }

    /// The task called `name`, to change before the run is planned (arguments from the command line).
    pub(crate) fn task_mut(&mut self, name: &str) -> Option<&mut Task> {
        self.id(name).map(|i| &mut self.tasks[i])
    }

    /// The tasks `task` depends on, looking through groups to what they gather (each once, groups left out).
    /// Called for every task of a run: no lookup by name, and nothing allocated for a task without deps.
    pub(crate) fn deps_through_groups(&self, task: &Task) -> Vec<&Task> {
        let mut out = Vec::new();
        if task.deps.is_empty() {
            return out;
        }
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<TaskId> = task.deps.iter().rev().map(|d| d.id).collect();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let dep = &self.tasks[id];
            if dep.is_group() {
                stack.extend(dep.deps.iter().rev().map(|d| d.id));
            } else {
                out.push(dep);
            }
        }
        out
    }

    /// `text` (a command, an `env` value, a probe, a directory) as irun shows it: values from irun's environment
    /// and dotenv files replaced by their `${NAME}` references. The task itself gets the values.
    pub(crate) fn shown<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.secrets.hide(text)
    }

    /// Irun.toml's file name, as messages name it.
    pub(crate) fn file_name(&self) -> String {
        self.source.path.file_name().map_or("Irun.toml".into(), |f| f.to_string_lossy().into_owned())
    }
}

/// A task name as written somewhere in Irun.toml: the task it names (whose `name` it is), with its position for
/// error messages. Two of one configuration are equal when they name the same task: where they are written does not
/// count. An id means nothing in another configuration: across two, compare the names (see
/// [`Task::same_definition`]). (Without a copy of the name: a graph of 10,000 tasks with two deps each held 20,000.)
#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub(crate) span: Range<usize>,
    pub(crate) id: TaskId,
}

impl PartialEq for Named {
    fn eq(&self, other: &Named) -> bool {
        self.id == other.id
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) name: String,
    pub(crate) span: Range<usize>,
    /// Shown by `irun list`; not part of what the task does.
    pub(crate) description: Option<String>,
    pub(crate) deps: Vec<Named>,
    pub(crate) kind: Kind,
}

/// A task's `sources` or `outputs` as written. Most often one pattern, kept inline: a list of its own took one
/// allocation more per task (two for a task with both, 0.6 MB at 10,000 tasks).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Patterns {
    #[default]
    None,
    One([String; 1]),
    Many(Box<[String]>),
}

impl std::ops::Deref for Patterns {
    type Target = [String];

    fn deref(&self) -> &[String] {
        match self {
            Patterns::None => &[],
            Patterns::One(one) => one,
            Patterns::Many(many) => many,
        }
    }
}

impl From<Vec<String>> for Patterns {
    fn from(mut list: Vec<String>) -> Patterns {
        match list.len() {
            0 => Patterns::None,
            1 => Patterns::One([list.pop().expect("one")]),
            _ => Patterns::Many(list.into_boxed_slice()),
        }
    }
}

/// What a task is, with the settings that kind has.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A command run to its end; `interactive`: in the terminal's foreground, its stdio irun's own; `junit`: the
    /// globs of the JUnit XML files it writes, read after each run (not part of what it does: see
    /// [`Task::same_definition`]). Boxed: few tasks have any, and none takes no allocation.
    Task { process: Process, interactive: bool, junit: Box<[String]> },
    /// A command kept running while something needs it (`daemon = true`).
    Service(Box<Service>),
    /// No command: it gathers its deps. Its `sources`, in watch mode, rerun what depends on it.
    Group { sources: Vec<String> },
}

/// The kind of a task, without its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TaskKind {
    Task,
    Service,
    Group,
}

impl TaskKind {
    /// As `irun list`, JSON and DOT name it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskKind::Task => "task",
            TaskKind::Service => "service",
            TaskKind::Group => "group",
        }
    }
}

/// A command and how it runs: what tasks and services have in common.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Process {
    pub(crate) cmd: Cmd,
    /// How many of an array command's last items are arguments given after `--`: they reach the task exactly as
    /// given, without the expansion of `${IRUN_...}` the items from Irun.toml get as it starts.
    pub(crate) passed: usize,
    /// The environment the task adds to irun's own: dotenv files, `[env]` (what `inherit_env` lets through of the
    /// top-level ones), then the task's `env`.
    pub(crate) env: Vec<(String, String)>,
    /// Shared: most tasks run in the project's root.
    pub(crate) cwd: Arc<Path>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) sources: Patterns,
    pub(crate) outputs: Patterns,
    pub(crate) stop_signal: Signal,
    pub(crate) stop_timeout: Duration,
    /// Run even when up to date (its `sources` still drive watch mode).
    pub(crate) always_run: bool,
    /// What the cache does with it (`cache`, `cache_env`, `cache_output`); a service's is never used.
    pub(crate) cache: CacheSettings,
    pub(crate) output: OutputPolicy,
    /// Given `FORCE_COLOR=1` and `CLICOLOR_FORCE=1` when irun colours its output for a human (not `--json` unless
    /// `--color always`; `color = false`: never). Not part
    /// of what the task does: they are added as it starts, not to `env`.
    pub(crate) color: bool,
}

/// A task's cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheSettings {
    /// `cache = false`: never restored from the cache nor stored in it.
    pub(crate) enabled: bool,
    /// `cache = true` written out: cached even when its `outputs` look like markers (see [`crate::cache::marker`]).
    pub(crate) forced: bool,
    /// Variables of irun's environment that count in its key: the top-level `cache_env`, then the task's.
    pub(crate) env: Vec<String>,
    /// `cache_output = false`: its output is not stored; a hit replays none.
    pub(crate) output: bool,
}

impl Default for CacheSettings {
    fn default() -> CacheSettings {
        CacheSettings { enabled: true, forced: false, env: Vec::new(), output: true }
    }
}

/// Which variables of the top-level `[env]` and `dotenv` files a task receives (`inherit_env`); it is applied as
/// Irun.toml is read, so [`Process::env`] holds only those.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum InheritEnv {
    #[default]
    All,
    Nothing,
    Only(Vec<String>),
}

impl InheritEnv {
    /// Whether the task receives the top-level variable `name`.
    pub(crate) fn receives(&self, name: &str) -> bool {
        match self {
            InheritEnv::All => true,
            InheritEnv::Nothing => false,
            InheritEnv::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// A long-running process: its readiness probe and what happens when it exits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Service {
    pub(crate) process: Process,
    /// `None`: ready as soon as it is spawned.
    pub(crate) ready: Option<Probe>,
    /// A service whose probe already passes before irun starts it is used as it is: not started, not stopped.
    pub(crate) reuse: bool,
    /// Started again (after a backoff) when its process exits, at most `max_restarts` times.
    pub(crate) restart: Restart,
    pub(crate) max_restarts: u32,
    /// `port = "auto"` (or `tcp = "auto"`): a free port is chosen for it as it starts.
    pub(crate) auto_port: bool,
}

impl HasName for Task {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Task {
    pub(crate) fn tag(&self) -> TaskKind {
        match self.kind {
            Kind::Task { .. } => TaskKind::Task,
            Kind::Service(_) => TaskKind::Service,
            Kind::Group { .. } => TaskKind::Group,
        }
    }

    pub(crate) fn is_group(&self) -> bool {
        matches!(self.kind, Kind::Group { .. })
    }

    pub(crate) fn is_service(&self) -> bool {
        matches!(self.kind, Kind::Service(_))
    }

    /// The command and its settings (tasks and services).
    pub(crate) fn process(&self) -> Option<&Process> {
        match &self.kind {
            Kind::Task { process, .. } => Some(process),
            Kind::Service(s) => Some(&s.process),
            Kind::Group { .. } => None,
        }
    }

    /// A task that runs in the terminal's foreground (`interactive = true`).
    pub(crate) fn is_interactive(&self) -> bool {
        matches!(self.kind, Kind::Task { interactive: true, .. })
    }

    pub(crate) fn process_mut(&mut self) -> Option<&mut Process> {
        match &mut self.kind {
            Kind::Task { process, .. } => Some(process),
            Kind::Service(s) => Some(&mut s.process),
            Kind::Group { .. } => None,
        }
    }

    pub(crate) fn service(&self) -> Option<&Service> {
        match &self.kind {
            Kind::Service(s) => Some(s),
            _ => None,
        }
    }

    /// The service's readiness probe, if it is a service with one.
    pub(crate) fn probe(&self) -> Option<&Probe> {
        self.service().and_then(|s| s.ready.as_ref())
    }

    /// Its `sources` globs.
    pub(crate) fn sources(&self) -> &[String] {
        match &self.kind {
            Kind::Group { sources } => sources,
            _ => self.process().map_or(&[], |p| &p.sources),
        }
    }

    /// Its `outputs` globs (none for a group).
    pub(crate) fn outputs(&self) -> &[String] {
        self.process().map_or(&[], |p| &p.outputs)
    }

    /// Its `junit` globs: the JUnit XML files it writes (none for a service or a group).
    pub(crate) fn junit(&self) -> &[String] {
        match &self.kind {
            Kind::Task { junit, .. } => junit,
            _ => &[],
        }
    }

    /// Whether `other` (of configuration `theirs`; this task is of `mine`) does exactly what this task does: the
    /// same name, deps (by name), kind and settings. What only changes how it is shown (its description, `output`,
    /// the `junit` reports read after it) and its place in the file, or its deps' places, do not count.
    pub(crate) fn same_definition(&self, mine: &Config, other: &Task, theirs: &Config) -> bool {
        let deps_alike = self.deps.len() == other.deps.len()
            && self.deps.iter().zip(&other.deps).all(|(a, b)| mine.tasks[a.id].name == theirs.tasks[b.id].name);
        let shown_alike = |t: &Task| {
            let mut kind = t.kind.clone();
            if let Kind::Task { process, junit, .. } = &mut kind {
                process.output = OutputPolicy::default();
                *junit = Box::default();
            } else if let Kind::Service(s) = &mut kind {
                s.process.output = OutputPolicy::default();
            }
            kind
        };
        self.name == other.name && deps_alike && shown_alike(self) == shown_alike(other)
    }
}

/// When a service whose process exited is started again (`restart` in Irun.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Restart {
    #[default]
    No,
    /// After an exit with a non-zero code or by a signal.
    OnFailure,
    /// After any exit.
    Always,
}

/// When a task's output is shown (`output` in Irun.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OutputPolicy {
    /// As it comes (or, with `--output grouped`, when the task ends).
    #[default]
    Live,
    /// Held back, and shown only if the task fails (a service: fails or never becomes ready).
    OnFailure,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cmd {
    /// Run with `sh -c` (unless it needs no shell: see [`crate::exec::command_line`]).
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

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probe {
    pub(crate) check: Check,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Check {
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
    Log(Pattern),
    /// `tcp = "auto"`: a free port chosen as the service starts (given to it as `IRUN_PORT`), then as `Tcp`.
    AutoTcp,
    /// A `tcp`, `http` or `log` probe whose text names a port chosen as a service starts (`${IRUN_PORT}`,
    /// `${IRUN_PORT_<NAME>}`): checked at load with a stand-in port, read for real once the ports are known.
    Later {
        key: &'static str,
        text: String,
        status: Option<u16>,
    },
}

impl Check {
    /// The address a probe connects to, which must be free before the service starts (`None` as the host: both
    /// loopback addresses).
    pub(crate) fn address(&self) -> Option<(Option<&str>, u16)> {
        match self {
            Check::Tcp { host, port } => Some((host.as_deref(), *port)),
            Check::Http { url, .. } => Some((Some(&url.host), url.port)),
            _ => None,
        }
    }

    /// The key in `ready` that configures this check.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Check::Tcp { .. } | Check::AutoTcp => "tcp",
            Check::Http { .. } => "http",
            Check::Exec(_) => "exec",
            Check::Log(_) => "log",
            Check::Later { key, .. } => key,
        }
    }
}

/// A `log` probe's regular expression; two are equal when written alike.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(pub(crate) regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpUrl {
    pub(crate) raw: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) path: String,
}

impl Check {
    /// The probe as irun shows it (see [`Config::shown`]): values from irun's environment and dotenv files
    /// replaced by their `${NAME}` references. Only for words: a `log` pattern may not compile once hidden, and is
    /// then matched literally.
    pub(crate) fn hidden(&self, secrets: &Secrets) -> Check {
        let hide = |s: &str| secrets.hide(s).into_owned();
        match self {
            Check::Tcp { host, port } => Check::Tcp { host: host.as_deref().map(hide), port: *port },
            Check::Http { url, status } => {
                Check::Http { url: HttpUrl { raw: hide(&url.raw), ..url.clone() }, status: *status }
            }
            Check::Exec(Cmd::Shell(s)) => Check::Exec(Cmd::Shell(hide(s))),
            Check::Exec(Cmd::Argv(argv)) => Check::Exec(Cmd::Argv(argv.iter().map(|a| hide(a)).collect())),
            Check::Log(re) => match secrets.hide(re.0.as_str()) {
                std::borrow::Cow::Borrowed(_) => self.clone(),
                std::borrow::Cow::Owned(text) => Check::Log(Pattern(
                    regex::Regex::new(&text).unwrap_or_else(|_| regex::Regex::new(&regex::escape(&text)).unwrap()),
                )),
            },
            Check::Later { key, text, status } => Check::Later { key, text: hide(text), status: *status },
            Check::AutoTcp => Check::AutoTcp,
        }
    }
}

/// The variable that holds the port chosen for service `name` (`ready = { tcp = "auto" }`): `IRUN_PORT_` and the
/// name in upper case, every character other than a letter or digit made `_` (`redis-main` → `IRUN_PORT_REDIS_MAIN`).
pub(crate) fn port_variable(name: &str) -> String {
    let tail: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("IRUN_PORT_{tail}")
}

/// `host:port`, with brackets around IPv6 addresses.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(host_port("127.0.0.1", 8001), "127.0.0.1:8001");
        assert_eq!(host_port("::1", 8001), "[::1]:8001");
    }

    fn parsed(text: &str) -> Config {
        crate::config::parse(crate::diagnostic::Source::new("Irun.toml".as_ref(), text), "/p".into())
            .unwrap_or_else(|d| panic!("{}", d.render(false)))
    }

    #[test]
    fn a_definition_is_the_same_wherever_its_deps_are_in_the_file_and_not_with_other_deps_in_their_place() {
        let same = |old: &Config, new: &Config, name: &str| {
            let (i, j) = (old.id(name).unwrap(), new.id(name).unwrap());
            old.tasks[i].same_definition(old, &new.tasks[j], new)
        };
        let before = parsed("[tasks.prep]\ncmd = \"p\"\n[tasks.srv]\ncmd = \"s\"\ndeps = [\"prep\"]\n");
        let moved = parsed(
            "[tasks.aaa]\ncmd = \"a\"\n[tasks.prep]\ncmd = \"p\"\n[tasks.srv]\ncmd = \"s\"\ndeps = [\"prep\"]\n",
        );
        assert!(same(&before, &moved, "srv"), "a task added above: nothing of srv changed");
        let replaced = parsed("[tasks.other]\ncmd = \"p\"\n[tasks.srv]\ncmd = \"s\"\ndeps = [\"other\"]\n");
        assert!(!same(&before, &replaced, "srv"), "another dep where prep was: srv changed");
    }

    #[test]
    fn port_variables_are_upper_case_names() {
        assert_eq!(port_variable("redis-main"), "IRUN_PORT_REDIS_MAIN");
    }
}
