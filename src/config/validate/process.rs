//! A command and the settings of its process: `cmd`, `cwd`, `timeout`, `stop_signal`, `stop_timeout`, `sources`,
//! `outputs`, `always_run`, `output`; and for a service `reuse`, `restart` and `max_restarts`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::Validator;
use crate::config::env::Layers;
use crate::config::model::{
    CacheSettings, Check, Cmd, DEFAULT_MAX_RESTARTS, DEFAULT_STOP_TIMEOUT, OutputPolicy, Probe, Process, Restart,
    Service,
};
use crate::config::raw::{At, CACHE_KEYS, RawTask};
use crate::diagnostic::{Diagnostic, suggestion};

/// Where and how a command runs.
pub(super) struct Runs {
    cwd: PathBuf,
    timeout: Option<Duration>,
    stop_signal: Signal,
    stop_timeout: Duration,
}

/// A service's own settings, before its process is known.
pub(super) struct ServiceKeys {
    ready: Option<Probe>,
    reuse: bool,
    restart: Restart,
    max_restarts: u32,
    auto_port: bool,
}

impl ServiceKeys {
    pub(super) fn with(self, process: Process) -> Service {
        let ServiceKeys { ready, reuse, restart, max_restarts, auto_port } = self;
        Service { process, ready, reuse, restart, max_restarts, auto_port }
    }
}

impl Validator<'_> {
    /// Where and how the command runs: `cwd`, `timeout`, `stop_timeout`, `stop_signal`.
    pub(super) fn runs(&self, raw: &RawTask, vars: &Layers) -> Result<Runs, Diagnostic> {
        let cwd = match &raw.cwd {
            None => self.root.to_path_buf(),
            Some(c) if c.get().trim().is_empty() => {
                return Err(self
                    .err(c.span(), "`cwd` is empty")
                    .with_help("remove `cwd` to run in the directory holding Irun.toml"));
            }
            Some(c) => self.root.join(&*self.expand(c.get(), c.span(), "cwd", vars)?),
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
        Ok(Runs { cwd, timeout, stop_signal, stop_timeout })
    }

    /// The process: its command and environment, how it runs, and its `sources`, `outputs`, `always_run`, `output`.
    pub(super) fn process(
        &self,
        raw: &RawTask,
        cmd: Cmd,
        env: Vec<(String, String)>,
        runs: Runs,
    ) -> Result<Process, Diagnostic> {
        let Runs { cwd, timeout, stop_signal, stop_timeout } = runs;
        Ok(Process {
            cmd,
            passed: 0,
            env,
            cwd: cwd.into(),
            timeout,
            sources: self.globs(raw.sources.as_ref(), "sources")?.into(),
            outputs: self.globs(raw.outputs.as_ref(), "outputs")?.into(),
            stop_signal,
            stop_timeout,
            always_run: raw.always_run.as_ref().is_some_and(|a| *a.get()),
            cache: CacheSettings::default(),
            output: match &raw.output {
                None => OutputPolicy::Live,
                Some(o) => self.choice(
                    o,
                    &[("live", OutputPolicy::Live), ("on-failure", OutputPolicy::OnFailure)],
                    "write `output = \"live\"` (the default) or `output = \"on-failure\"`",
                )?,
            },
            color: raw.color.as_ref().is_none_or(|c| *c.get()),
        })
    }

    /// What only a service has: `ready`, `restart`, `max_restarts`, `reuse`. Its process is added later.
    pub(super) fn service(&self, task_name: &str, raw: &RawTask, vars: &Layers) -> Result<ServiceKeys, Diagnostic> {
        let ready = raw.ready.as_ref().map(|r| self.probe(r, vars)).transpose()?;
        let restart = match &raw.restart {
            None => Restart::No,
            Some(r) => self.choice(
                r,
                &[("no", Restart::No), ("on-failure", Restart::OnFailure), ("always", Restart::Always)],
                "write `restart = \"no\"` (the default), `\"on-failure\"` or `\"always\"`",
            )?,
        };
        let max_restarts = match &raw.max_restarts {
            None => DEFAULT_MAX_RESTARTS,
            Some(m) => u32::try_from(*m.get()).map_err(|_| {
                self.err(m.span(), format!("`max_restarts` must be 0 or more, not {}", m.get()))
                    .with_help(format!("remove it for the default of {DEFAULT_MAX_RESTARTS}"))
            })?,
        };
        let auto_port = match &raw.port {
            None => ready.as_ref().is_some_and(|p| p.check == Check::AutoTcp),
            Some(p) => self.choice(p, &[("auto", true)], "write `port = \"auto\"`, or remove `port`")?,
        };
        let reuse = raw.reuse.as_ref().is_some_and(|r| *r.get());
        if let Some(r) = raw.reuse.as_ref().filter(|_| reuse) {
            let why = match ready.as_ref().map(|p| &p.check) {
                None => Some("a service is reused when its `ready` probe already passes, and it has none"),
                Some(Check::Log(_)) => Some("a `log` probe cannot tell that a server irun did not start is up"),
                Some(Check::AutoTcp) => Some("a port chosen as the service starts cannot already be in use"),
                Some(_) if auto_port => Some("a port chosen as the service starts cannot already be in use"),
                Some(_) => None,
            };
            if let Some(why) = why {
                return Err(self
                    .err(r.span(), format!("`reuse = true` on task `{task_name}`: {why}"))
                    .with_help("reuse needs a service with a `tcp`, `http` or `exec` probe, or remove `reuse`"));
            }
        }
        Ok(ServiceKeys { ready, reuse, restart, max_restarts, auto_port })
    }

    /// `cache`, `cache_env` (after the top level's `inherited`) and `cache_output`. A service is never cached: it
    /// may say `cache = false`, nothing more.
    pub(super) fn cache(
        &self,
        task_name: &str,
        raw: &RawTask,
        inherited: &[String],
        service: bool,
    ) -> Result<CacheSettings, Diagnostic> {
        let on = |b: &Option<At<bool>>| b.as_ref().is_none_or(|b| *b.get());
        if service {
            let given = raw.given().into_iter().filter(|(k, _)| *k != "cache" || on(&raw.cache));
            if let Some((key, span)) = given.into_iter().find(|(k, _)| CACHE_KEYS.contains(k)) {
                return Err(self
                    .err(span, format!("`{key}` on service `{task_name}`: services are never cached"))
                    .with_help(format!(
                        "remove `{key}`; a service's definition counts in the keys of tasks that need it"
                    )));
            }
        }
        let mut env = inherited.to_vec();
        for name in self.variable_names(raw.cache_env.as_ref(), "cache_env")? {
            if !env.contains(&name) {
                env.push(name);
            }
        }
        let forced = raw.cache.as_ref().is_some_and(|c| *c.get());
        Ok(CacheSettings { enabled: on(&raw.cache), forced, env, output: on(&raw.cache_output) })
    }

    /// A list of variable names (`cache_env`): each non-empty, without `=` or NUL.
    pub(super) fn variable_names(
        &self,
        list: Option<&At<Vec<At<String>>>>,
        key: &str,
    ) -> Result<Vec<String>, Diagnostic> {
        let mut names: Vec<String> = Vec::new();
        for name in list.map(|l| l.get().as_slice()).unwrap_or_default() {
            let n = name.get();
            if n.is_empty() || n.contains(['=', '\0']) {
                return Err(self
                    .err(name.span(), format!("`{key}` holds {n:?}, which is not a variable name"))
                    .with_help(format!("list the names of variables, like `{key} = [\"NODE_ENV\"]`")));
            }
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        Ok(names)
    }

    /// One of a key's few words (`output = "on-failure"`), with a suggestion for a misspelt one and `help`.
    fn choice<T: Copy>(&self, value: &At<String>, words: &[(&str, T)], help: &str) -> Result<T, Diagnostic> {
        if let Some((_, choice)) = words.iter().find(|(w, _)| *w == value.get()) {
            return Ok(*choice);
        }
        let key = help.split('`').nth(1).and_then(|k| k.split(' ').next()).unwrap_or_default();
        let hint = suggestion(value.get(), words.iter().map(|(w, _)| *w));
        Err(self.err(value.span(), format!("unknown `{key}` {:?}{hint}", value.get())).with_help(help))
    }

    /// A command: a string (run with `sh -c` when it needs a shell) or an array (executed directly), each string's
    /// `${NAME}`s resolved.
    pub(super) fn cmd(&self, value: &At<toml::Value>, key: &str, vars: &Layers) -> Result<Cmd, Diagnostic> {
        let span = value.span();
        let expand = |s: &str| self.expand(s, span.clone(), key, vars).map(Cow::into_owned);
        match value.get() {
            toml::Value::String(s) => {
                let s = expand(s)?;
                if s.trim().is_empty() {
                    Err(self.err(span, format!("`{key}` is empty")).with_help(format!("give `{key}` a command to run")))
                } else if s.contains('\0') {
                    Err(self.err(span, format!("`{key}` contains a NUL byte")))
                } else {
                    Ok(Cmd::Shell(s))
                }
            }
            toml::Value::Array(items) => {
                // Every string is expanded before any item is checked, so the first fault named is the first one
                // found in that order.
                let expanded = items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => expand(s).map(Ok),
                        other => Ok(Err(other.type_str())),
                    })
                    .collect::<Result<Vec<_>, Diagnostic>>()?;
                let mut argv = Vec::with_capacity(items.len());
                for item in expanded {
                    match item {
                        Ok(s) if s.contains('\0') => {
                            return Err(self.err(span.clone(), format!("`{key}` contains a NUL byte")));
                        }
                        Ok(s) => argv.push(s),
                        Err(kind) => {
                            return Err(self.err(
                                span.clone(),
                                format!("`{key}` must be an array of strings, but it holds a {kind}"),
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

    /// A list of globs; `!pattern` excludes (the glob after `!` is checked like any other).
    pub(super) fn globs(&self, list: Option<&At<Vec<At<String>>>>, key: &str) -> Result<Vec<String>, Diagnostic> {
        let mut out = Vec::new();
        for g in list.map(|l| l.get().as_slice()).unwrap_or_default() {
            let (excludes, body) = crate::config::parse_glob(g.get());
            if excludes && body.is_empty() {
                return Err(self
                    .err(g.span(), format!("`!` in `{key}` must be followed by a glob to exclude"))
                    .with_help("write the glob after it, like \"!src/**/*.test.ts\""));
            }
            // A plain path cannot be an invalid glob: only globset's special characters can make one (checking
            // costs a glob's regex, and a 10,000-task file has tens of thousands of plain paths).
            if let Err(e) = plain_path_or_glob(body) {
                return Err(self
                    .err(g.span(), format!("invalid glob {:?} in `{key}`: {}", g.get(), e.kind()))
                    .with_help("globs are relative to the directory holding Irun.toml, like \"src/**/*.rs\""));
            }
            if std::path::Path::new(body).is_absolute() || escapes_root(body) {
                return Err(self
                    .err(g.span(), format!("glob {:?} in `{key}` points outside the project", g.get()))
                    .with_help("globs are relative to the directory holding Irun.toml"));
            }
            out.push(g.get().clone());
        }
        if let Some(l) = list.filter(|_| !out.is_empty() && out.iter().all(|g| crate::config::parse_glob(g).0)) {
            return Err(self
                .err(l.span(), format!("`{key}` holds only `!` patterns, which exclude from nothing"))
                .with_help(
                    "a `!` pattern removes what the globs before it matched: list those first, like \
                     [\"src/**\", \"!src/**/*.test.ts\"]",
                ));
        }
        Ok(out)
    }

    pub(super) fn duration(&self, value: &At<String>, key: &str) -> Result<Duration, Diagnostic> {
        match humantime::parse_duration(value.get()) {
            Ok(d) if d.is_zero() => Err(self
                .err(value.span(), format!("`{key}` must be longer than zero"))
                .with_help(format!("remove `{key}`, or give it a positive duration such as \"5s\""))),
            Ok(d) => Ok(d),
            Err(e) => Err(self
                .err(value.span(), format!("invalid duration {:?} for `{key}`: {e}", value.get()))
                .with_help("write durations like \"500ms\", \"5s\", \"2m\" or \"1h 30m\"")),
        }
    }

    fn signal(&self, value: &At<String>) -> Result<Signal, Diagnostic> {
        let upper = value.get().trim().to_ascii_uppercase();
        let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        let help = "use a signal name such as \"SIGTERM\", \"SIGINT\", \"SIGQUIT\", \"SIGHUP\" or \"SIGKILL\"";
        let signal = Signal::from_str(&name).map_err(|_| {
            self.err(value.span(), format!("unknown signal {:?} for `stop_signal`", value.get())).with_help(help)
        })?;
        // Signals whose default action is to ignore, stop or continue a process would never stop a task.
        use Signal::*;
        if matches!(signal, SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU | SIGCONT | SIGCHLD | SIGURG | SIGWINCH) {
            return Err(self
                .err(value.span(), format!("`stop_signal = {:?}` does not end a process", value.get()))
                .with_help(help));
        }
        Ok(signal)
    }
}

/// `Ok` for a pattern holding none of the characters globset reads specially (it names one path, as written),
/// else whether globset accepts it.
fn plain_path_or_glob(pattern: &str) -> Result<(), globset::Error> {
    if pattern.contains(['*', '?', '[', ']', '{', '}', ',', '\\']) {
        crate::config::glob(pattern).map(drop)
    } else {
        Ok(())
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
