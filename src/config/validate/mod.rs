//! From the raw file to the model, one concern per file: the top level here, a task's kind and deps in
//! [`task`], its command and process settings in [`process`], readiness probes in [`probe`], variables (`env`,
//! `dotenv`, `${NAME}`) in [`vars`]. Anything that would only fail later (a bad duration, port, regex, signal) is
//! rejected here, before a single process starts, with the place it is written.

mod ports;
mod probe;
mod process;
mod task;
mod vars;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub(crate) use probe::resolve;

use super::env::{Layers, Secrets, Shell, Vars};
use super::model::{Named, Task, TaskId};
use super::raw::{At, RawConfig, RawTask};
use crate::diagnostic::{Diagnostic, Source, suggestion};

/// What the top level of Irun.toml holds once checked.
pub(super) struct Validated {
    pub(super) default: Option<Vec<Named>>,
    pub(super) jobs: Option<usize>,
    pub(super) tasks: Vec<Task>,
    pub(super) secrets: Secrets,
    pub(super) files: Files,
}

/// The files Irun.toml names that a loaded one depends on: dotenv files.
#[derive(Default)]
pub(crate) struct Files {
    /// Optional dotenv files that do not exist.
    pub(crate) missing: Vec<PathBuf>,
    /// Whether a dotenv file was read.
    pub(crate) read: bool,
}

pub(super) struct Validator<'a> {
    pub(super) source: &'a Source,
    pub(super) root: &'a Path,
    /// irun's environment, the first place `${NAME}` is looked up.
    pub(super) shell: &'a Shell,
    /// What `${NAME}` took from `shell` or a dotenv file: shown as the reference.
    pub(super) secrets: std::cell::RefCell<Secrets>,
    /// The dotenv files looked for.
    pub(super) files: std::cell::RefCell<Files>,
}

/// What the top level of Irun.toml gives every task.
struct Shared {
    /// From the top-level `dotenv` files, later files winning.
    dotenv: Vars,
    /// `[env]`, expanded.
    env: Vars,
    /// An optional top-level dotenv file is missing: it may define names `inherit_env` lists.
    unread: bool,
    /// The top-level `cache_env`.
    cache_env: Vec<String>,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.source, span, message)
    }

    pub(super) fn config(&self, raw: RawConfig) -> Result<Validated, Diagnostic> {
        let jobs = match raw.jobs {
            None => None,
            Some(j) if *j.get() >= 1 => Some(*j.get() as usize),
            Some(j) => {
                return Err(self
                    .err(j.span(), format!("`jobs` must be at least 1, not {}", j.get()))
                    .with_help("remove `jobs` to use one job per CPU"));
            }
        };
        let (dotenv, unread) = self.dotenv(raw.dotenv.as_ref().map(At::get))?;
        let env = Vars::new(self.env(&raw.env, &Layers::new(&[], self.shell, &[&dotenv]))?);
        let cache_env = self.variable_names(raw.cache_env.as_ref(), "cache_env")?;
        let shared = Shared { dotenv, env, unread, cache_env };

        // Declaration order, not alphabetical: `irun list` and ties in scheduling follow the file. (References
        // are sorted: moving the tasks themselves costs more than the sort.)
        let mut tasks: Vec<(&At<String>, &RawTask)> = raw.tasks.iter().map(|(n, t)| (n, &**t)).collect();
        tasks.sort_unstable_by_key(|(name, _)| name.span().start);
        let names: Names = tasks.iter().enumerate().map(|(i, (n, _))| (n.get().as_str(), TaskId::new(i))).collect();
        for (name, _) in &tasks {
            self.name(name)?;
        }

        let default = match raw.default {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for t in list {
                    let Some(&id) = names.get(t.get().as_str()) else {
                        return Err(self.unknown_task(&t, "`default` names unknown task", &names));
                    };
                    out.push(named(&t, id));
                }
                Some(out)
            }
        };

        let mut out = Vec::with_capacity(tasks.len());
        for (name, task) in &tasks {
            out.push(self.task(name, task, &shared, &names)?);
        }
        self.port_references(&tasks, &out)?;
        Ok(Validated { default, jobs, tasks: out, secrets: self.secrets.take(), files: self.files.take() })
    }

    fn unknown_task(&self, name: &At<String>, what: &str, names: &Names) -> Diagnostic {
        let hint = suggestion(name.get(), names.keys().copied());
        let mut known: Vec<&str> = names.keys().copied().collect();
        known.sort_unstable();
        self.err(name.span(), format!("{what} {}{hint}", crate::diagnostic::shown(name.get())))
            .with_help(format!("tasks defined in Irun.toml: {}", known.join(", ")))
    }
}

/// Every task's id, by name.
type Names<'a> = HashMap<&'a str, TaskId>;

fn named(s: &At<String>, id: TaskId) -> Named {
    Named { span: s.span(), id }
}
