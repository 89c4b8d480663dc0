//! The cache in a run: a task that would run is looked up by its key, in the local store and then the remote one;
//! a hit has its outputs restored and its output replayed, and ends as cached; a task that passes has its result
//! stored, and uploaded in the background. The cache never fails a run nor holds it up for long: a problem is a
//! warning (once) and the task runs; a remote cache that cannot answer is not asked again in this run.

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::Driver;
use super::sharing::{RemoteDone, Sharing};
use crate::cache::artifact::{Artifact, Manifest};
use crate::cache::remote::Remote;
use crate::cache::{self, Key};
use crate::config::{Task, TaskId};
use crate::events::{Event, Stream, TaskName};
use crate::exec::Launcher;
use crate::outcome::{CacheHit, Outcome, RunReason, Verdict};

/// What the driver keeps for the cache.
pub(super) struct Caching {
    pub(super) store: cache::local::LocalStore,
    pub(super) sharing: Sharing,
    /// That the remote cache could not answer was said.
    pub(super) remote_said: bool,
    /// Keys of the tasks of this run that were looked at, by name.
    keys: HashMap<String, Key>,
    /// Which tasks are cached, for the configuration in force (worked out again after a reload).
    pub(super) table: Option<cache::Table>,
    warned: std::collections::HashSet<String>,
}

impl Caching {
    pub(super) fn new(
        store: cache::local::LocalStore,
        remote: Option<Remote>,
        done: mpsc::UnboundedSender<RemoteDone>,
    ) -> Caching {
        Caching {
            store,
            sharing: Sharing::new(remote, done),
            remote_said: false,
            keys: HashMap::new(),
            table: None,
            warned: Default::default(),
        }
    }

    /// Files changed (watch mode): every key computed so far may be stale. A task running meanwhile is then not
    /// stored (its key is gone): what it made may not match its sources any more.
    pub(super) fn files_changed(&mut self) {
        self.keys.clear();
        self.sharing.generation += 1;
    }
}

impl<L: Launcher> Driver<'_, L> {
    /// A task about to run because its inputs differ from its last run's: restored from the cache if its key is
    /// stored there. Forced runs (`--force`, `--rerun`) and tasks that are not cached run as decided. `None`: the
    /// remote cache is being asked, and the verdict comes with its answer ([`Driver::on_remote`]).
    pub(super) fn look_up_cache(
        &mut self,
        task: TaskId,
        verdict: Verdict,
        dep_ran: Option<TaskName>,
    ) -> Option<Verdict> {
        let Verdict::Run(why) = &verdict else { return Some(verdict) };
        let config = self.config.clone();
        let def = &config.tasks[task];
        let forced = matches!(why, RunReason::Forced | RunReason::Rerun | RunReason::AlwaysRun);
        if forced || !cache::enabled() || !self.cacheable(task) {
            return Some(verdict);
        }
        let key = self.key(def);
        if let Some(bytes) = self.caching.store.get(&key.hex) {
            match self.restore(task, &key, &bytes, "local") {
                Ok(hit) => return Some(hit),
                Err(problem) => {
                    self.caching.store.remove(&key.hex);
                    self.warn(format!("{problem}; it runs"));
                }
            }
        }
        self.caching.sharing.ask(&def.name, dep_ran, key, verdict).err()
    }

    /// `bytes` hold `task`'s result under `key`: its outputs are restored, its output replayed, and it is a hit.
    pub(super) fn restore(
        &mut self,
        task: TaskId,
        key: &Key,
        bytes: &[u8],
        source: &'static str,
    ) -> Result<Verdict, String> {
        let config = self.config.clone();
        let def = &config.tasks[task];
        let artifact = match Artifact::unpack(bytes) {
            Ok(a) if a.manifest.key == key.hex => a,
            Ok(_) => return Err(format!("the {source} entry for {} holds another key", def.name)),
            Err(e) => return Err(format!("the {source} entry for {} is unusable: {e}", def.name)),
        };
        if let Some(file) = cache::not_an_output(def.outputs(), artifact.files.iter().map(|(p, _, _)| p.as_str())) {
            return Err(format!("the {source} entry for {} holds `{file}`, which is not one of its outputs", def.name));
        }
        let existing: Vec<String> = self.checker.files(def.outputs(), false).into_iter().collect();
        artifact
            .restore(&config.root, &existing)
            .map_err(|e| format!("cannot restore the outputs of {}: {e}", def.name))?;
        let name = self.engine.plan()[task].name.clone();
        if def.process().is_some_and(|p| !p.cache.output) {
            let text = crate::report::text::OUTPUT_NOT_CACHED.as_bytes().to_vec();
            self.events.send(Event::Output { task: name.clone(), stream: Stream::Stdout, text });
        }
        for (stderr, text) in artifact.output {
            let stream = if stderr { Stream::Stderr } else { Stream::Stdout };
            self.events.send(Event::Output { task: name.clone(), stream, text });
        }
        Ok(Verdict::Cached(CacheHit { key: key.hex.clone(), source }))
    }

    pub(super) fn warn(&mut self, problem: String) {
        if self.caching.warned.insert(problem.clone()) {
            self.events.send(Event::CacheWarning { problem });
        }
    }

    /// Whether `task` is cached, by the configuration in force.
    fn cacheable(&mut self, task: TaskId) -> bool {
        let config = &self.config;
        self.caching.table.get_or_insert_with(|| cache::Table::new(config)).cacheable(task)
    }

    /// `def`'s key (and its deps', as needed), computed once per run.
    fn key(&mut self, def: &Task) -> Key {
        if let Some(key) = self.caching.keys.get(&def.name) {
            return key.clone();
        }
        let (config, checker) = (self.config.clone(), &self.checker);
        let mut keys = std::mem::take(&mut self.caching.keys);
        let key = cache::key_with(&config, checker, def, &mut keys);
        self.caching.keys = keys;
        key
    }

    /// A task that will run and may be cached: its output is kept from now on.
    pub(super) fn capture(&mut self, task: TaskId) {
        let def = &self.config.tasks[task];
        if self.caching.keys.contains_key(&def.name) && self.cacheable(task) {
            self.events.capture(self.engine.plan()[task].name.clone());
        }
    }

    /// A task ended: a pass is stored under its key (failures never are).
    pub(super) fn store(&mut self, task: TaskId, outcome: &Outcome, took: Option<std::time::Duration>) {
        let name = self.engine.plan()[task].name.clone();
        let Some(output) = self.events.captured(&name) else { return };
        let config = self.config.clone();
        let def = &config.tasks[task];
        let Some(key) = self.caching.keys.get(&def.name).cloned() else { return };
        if *outcome != Outcome::Ok {
            return;
        }
        // A result without an output it declares would be restored as it is at every run (the output still missing).
        if let Some(missing) = def.outputs().iter().find(|o| declared_file_missing(&self.config.root, o)) {
            let missing = missing.trim_start_matches("./").to_string();
            return self
                .warn(format!("`{missing}`, an output of {}, was not made: its result is not stored", def.name));
        }
        let mut files = Vec::new();
        for rel in self.checker.files(def.outputs(), false) {
            use std::os::unix::fs::PermissionsExt;
            let path = self.config.root.join(&rel);
            match (std::fs::read(&path), std::fs::metadata(&path)) {
                (Ok(data), Ok(meta)) => files.push((rel, data, meta.permissions().mode())),
                _ => {
                    return self
                        .warn(format!("cannot read {rel}, an output of {}: its result is not stored", def.name));
                }
            }
        }
        let manifest = Manifest {
            key: key.hex.clone(),
            task: def.name.clone(),
            parts: key.parts.clone(),
            exit_status: 0,
            duration_ms: took.map_or(0, |t| t.as_millis() as u64),
            irun_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        // `cache_output = false`: the output stays out of the cache (it was captured all the same).
        let output = if def.process().is_some_and(|p| p.cache.output) { output } else { Vec::new() };
        let bytes = match (Artifact { manifest, files, output }).pack() {
            Ok(bytes) => bytes,
            Err(e) => return self.warn(format!("cannot pack the result of {}: {e}", def.name)),
        };
        if let Err(e) = self.caching.store.put(&key.hex, &def.name, &key.parts, &bytes) {
            let problem =
                format!("cannot store the result of {} in {}: {e}", def.name, self.caching.store.dir().display());
            self.warn(problem);
        }
        self.caching.sharing.upload(def.name.clone(), key.hex, bytes, took);
    }
}

/// Whether `output` names one file (a plain path, not a `!` one) that is not there.
fn declared_file_missing(root: &std::path::Path, output: &str) -> bool {
    let (exclude, body) = crate::config::parse_glob(output);
    !exclude && crate::config::is_literal(body) && !root.join(body.trim_start_matches("./")).exists()
}
