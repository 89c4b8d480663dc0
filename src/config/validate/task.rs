//! A task's name, deps and kind: a group (no `cmd`) holds nothing but deps; only a service (`daemon = true`) holds
//! the keys of [`SERVICE_KEYS`].

use std::collections::HashSet;
use std::ops::Range;

use super::{Names, Shared, Validator, named};
use crate::config::env::{Layers, Vars};
use crate::config::model::{InheritEnv, Kind, Named, Task, TaskId};
use crate::config::raw::{At, GROUP_KEYS, RawTask, SERVICE_KEYS};
use crate::diagnostic::Diagnostic;

impl Validator<'_> {
    pub(super) fn task(
        &self,
        name: &At<String>,
        raw: &RawTask,
        shared: &Shared,
        names: &Names,
    ) -> Result<Task, Diagnostic> {
        let task_name = name.get();
        let (deps, kind) = match &raw.cmd {
            None => {
                self.group(task_name, name.span(), raw)?;
                let deps = self.deps(task_name, raw, names)?;
                (deps, Kind::Group { sources: self.globs(raw.sources.as_ref(), "sources")? })
            }
            Some(cmd) => self.command_task(task_name, raw, cmd, shared, names)?,
        };
        Ok(Task {
            name: task_name.clone(),
            span: name.span(),
            description: raw.description.as_ref().map(|d| d.get().clone()),
            deps,
            kind,
        })
    }

    /// A task's name is printed at the start of its output lines, in the summary, in `list`: it must be
    /// something, and hold nothing a terminal would act on (a newline, a tab, an escape sequence, a bidi override).
    pub(super) fn name(&self, name: &At<String>) -> Result<(), Diagnostic> {
        if name.get().trim().is_empty() {
            return Err(self.err(name.span(), "a task name cannot be empty"));
        }
        if name.get().chars().any(crate::diagnostic::unprintable) {
            return Err(self
                .err(name.span(), format!("task name {:?} contains a control character", name.get()))
                .with_help(
                    "rename the task: a name is printed on every line of its output, so it cannot hold newlines, \
                     tabs, escapes or other control characters (spaces, quotes and any other Unicode are fine)",
                ));
        }
        Ok(())
    }

    /// A task or a service: its environment, command, deps and settings, in the order they are checked.
    fn command_task(
        &self,
        task_name: &str,
        raw: &RawTask,
        cmd: &At<toml::Value>,
        shared: &Shared,
        names: &Names,
    ) -> Result<(Vec<Named>, Kind), Diagnostic> {
        // `${NAME}` is the value the task will see as $NAME: its `env`, else `[env]`, else irun's environment, else
        // the dotenv files (the task's, then the top level's).
        let (dotenv, _) = self.dotenv(raw.dotenv.as_ref().map(At::get))?;
        let below = [&dotenv, &shared.dotenv];
        let task_env = match &raw.env {
            Some(e) => Vars::new(self.env(e.get(), &Layers::new(&[&shared.env], self.shell, &below))?),
            None => Vars::default(),
        };
        let vars = Layers::new(&[&task_env, &shared.env], self.shell, &below);
        let cmd = self.cmd(cmd, "cmd", &vars)?;
        let deps = self.deps(task_name, raw, names)?;
        let inherit = self.inherit_env(raw, shared)?;
        let env = self.environment(shared, &inherit, &dotenv, &task_env);
        let runs = self.runs(raw, &vars)?;
        let service = if raw.daemon.as_ref().is_some_and(|d| *d.get()) {
            self.not_interactive(task_name, raw)?;
            self.no_junit(task_name, raw)?;
            Some(self.service(task_name, raw, &vars)?)
        } else {
            self.service_only(task_name, raw)?;
            None
        };
        let mut process = self.process(raw, cmd, env, runs)?;
        process.cache = self.cache(task_name, raw, &shared.cache_env, service.is_some())?;
        let kind = match service {
            Some(service) => Kind::Service(Box::new(service.with(process))),
            None => Kind::Task {
                process,
                interactive: raw.interactive.as_ref().is_some_and(|i| *i.get()),
                junit: self.globs(raw.junit.as_ref(), "junit")?.into(),
            },
        };
        Ok((deps, kind))
    }

    /// A group only gathers deps; settings that shape a process make no sense on it (`ready` is named first).
    fn group(&self, task_name: &str, span: Range<usize>, raw: &RawTask) -> Result<(), Diagnostic> {
        let mut given = raw.given();
        given.sort_by_key(|(k, _)| *k != "ready");
        if let Some((key, span)) = given.into_iter().find(|(k, _)| !GROUP_KEYS.contains(k)) {
            return Err(if key == "ready" {
                self.err(span, format!("task `{task_name}` is a group (it has no `cmd`) and cannot have `ready`"))
                    .with_help("give it a `cmd` and `daemon = true` to make it a service, or remove `ready`")
            } else {
                self.err(span, format!("task `{task_name}` is a group (it has no `cmd`), so `{key}` has no effect"))
                    .with_help(format!("add a `cmd` to task `{task_name}`, or remove `{key}`"))
            });
        }
        if raw.deps.as_ref().is_none_or(|d| d.get().is_empty()) {
            return Err(self
                .err(span, format!("task `{task_name}` has neither `cmd` nor `deps`"))
                .with_help("give it a `cmd` to run, or `deps` to make it a group"));
        }
        Ok(())
    }

    /// A task that is not a service has none of a service's keys (`reuse = false` says nothing, and is let be).
    fn service_only(&self, task_name: &str, raw: &RawTask) -> Result<(), Diagnostic> {
        if !raw.has_any(&SERVICE_KEYS) {
            return Ok(());
        }
        let reuse_false = raw.reuse.as_ref().is_some_and(|r| !*r.get());
        let given = raw.given().into_iter().filter(|(k, _)| !(reuse_false && *k == "reuse"));
        let Some((key, span)) = given.into_iter().find(|(k, _)| SERVICE_KEYS.contains(k)) else { return Ok(()) };
        if key == "reuse" {
            return Err(self
                .err(
                    span,
                    format!("`reuse = true` on task `{task_name}`: only a service (`daemon = true`) can be reused"),
                )
                .with_help("reuse needs a service with a `tcp`, `http` or `exec` probe, or remove `reuse`"));
        }
        let message = format!("`{key}` is only for services, and task `{task_name}` is not one");
        Err(self.err(span, message).with_help(format!("add `daemon = true` to task `{task_name}`, or remove `{key}`")))
    }

    /// A service runs in the background for as long as it is needed: it cannot have the terminal.
    fn not_interactive(&self, task_name: &str, raw: &RawTask) -> Result<(), Diagnostic> {
        match &raw.interactive {
            Some(i) if *i.get() => Err(self
                .err(
                    i.span(),
                    format!("`interactive = true` on service `{task_name}`: only a task can have the terminal"),
                )
                .with_help(format!("remove `interactive`, or `daemon = true` to make `{task_name}` a task"))),
            _ => Ok(()),
        }
    }

    /// A service runs until nothing needs it: its end is no test run, so it has no JUnit reports to read.
    fn no_junit(&self, task_name: &str, raw: &RawTask) -> Result<(), Diagnostic> {
        match &raw.junit {
            Some(j) => Err(self
                .err(j.span(), format!("`junit` is only for tasks, and `{task_name}` is a service (`daemon = true`)"))
                .with_help("move `junit` to the task that runs the tests and writes the reports, or remove it")),
            None => Ok(()),
        }
    }

    fn deps(&self, task_name: &str, raw: &RawTask, names: &Names) -> Result<Vec<Named>, Diagnostic> {
        let listed = raw.deps.as_ref().map_or(&[][..], |d| d.get().as_slice());
        let mut deps: Vec<Named> = Vec::new();
        // A dep listed twice counts once (a set for long lists, so 50,000 deps cost no more than they must; a look
        // along a short one costs less than the set).
        let mut seen: HashSet<TaskId> = HashSet::new();
        for d in listed {
            let Some(&id) = names.get(d.get().as_str()) else {
                return Err(self.unknown_task(d, &format!("task `{task_name}` depends on unknown task"), names));
            };
            let new = if listed.len() <= 8 { !deps.iter().any(|n| n.id == id) } else { seen.insert(id) };
            if new {
                deps.push(named(d, id));
            }
        }
        Ok(deps)
    }

    /// The task's environment: irun's, then what the dotenv files add to it (a variable irun already has keeps its
    /// value), overridden by `[env]`, overridden by the task's `env`; of the top-level ones, those it `inherit`s.
    fn environment(
        &self,
        shared: &Shared,
        inherit: &InheritEnv,
        dotenv: &Vars,
        task_env: &Vars,
    ) -> Vec<(String, String)> {
        let top = |(k, _): &&(String, String)| inherit.receives(k);
        let added = shared.dotenv.list().iter().filter(top).chain(dotenv.list());
        let added = added.filter(|(k, _)| !self.shell.has(k));
        let all = added.chain(shared.env.list().iter().filter(top)).chain(task_env.list());
        crate::config::env::last_wins(all.cloned().collect())
    }
}
