//! The cache in a run: a task that would run is looked up by its key; a hit has its outputs restored and its output
//! replayed, and ends as cached; a task that passes has its result stored. The cache never fails a run: a problem
//! is a warning (once) and the task runs.

use std::collections::HashMap;

use super::Driver;
use crate::cache::artifact::{Artifact, Manifest};
use crate::cache::{self, Key};
use crate::config::{Task, TaskId};
use crate::events::{Event, Stream};
use crate::exec::Launcher;
use crate::outcome::{CacheHit, Outcome, RunReason, Verdict};

/// What the driver keeps for the cache.
pub(super) struct Caching {
    pub(super) store: cache::local::LocalStore,
    /// Keys of the tasks of this run that were looked at, by name.
    keys: HashMap<String, Key>,
    warned: std::collections::HashSet<String>,
}

impl Caching {
    pub(super) fn new(store: cache::local::LocalStore) -> Caching {
        Caching { store, keys: HashMap::new(), warned: Default::default() }
    }

    /// Files changed (watch mode): every key computed so far may be stale. A task running meanwhile is then not
    /// stored (its key is gone): what it made may not match its sources any more.
    pub(super) fn files_changed(&mut self) {
        self.keys.clear();
    }
}

impl<L: Launcher> Driver<'_, L> {
    /// A task about to run because its inputs differ from its last run's: restored from the cache if its key is
    /// stored there. Forced runs (`--force`, `--rerun`) and tasks that are not cached run as decided.
    pub(super) fn look_up_cache(&mut self, task: TaskId, verdict: Verdict) -> Verdict {
        let Verdict::Run(why) = &verdict else { return verdict };
        let config = self.config.clone();
        let def = &config.tasks[task];
        let forced = matches!(why, RunReason::Forced | RunReason::Rerun | RunReason::AlwaysRun);
        if forced || !cache::enabled() || !cache::cacheable(&config, def) {
            return verdict;
        }
        let key = self.key(def);
        let Some(bytes) = self.caching.store.get(&key.hex) else { return verdict };
        let artifact = match Artifact::unpack(&bytes) {
            Ok(a) if a.manifest.key == key.hex => a,
            Ok(_) => return self.unusable(&key, format!("the entry for {} holds another key", def.name), verdict),
            Err(e) => return self.unusable(&key, format!("the entry for {} is unusable: {e}", def.name), verdict),
        };
        let existing: Vec<String> = self.checker.files(def.outputs(), false).into_iter().collect();
        if let Err(e) = artifact.restore(&self.config.root, &existing) {
            return self.unusable(&key, format!("cannot restore the outputs of {}: {e}", def.name), verdict);
        }
        let name = self.engine.plan()[task].name.clone();
        if def.process().is_some_and(|p| !p.cache.output) {
            let text = crate::report::text::OUTPUT_NOT_CACHED.as_bytes().to_vec();
            self.events.send(Event::Output { task: name.clone(), stream: Stream::Stdout, text });
        }
        for (stderr, text) in artifact.output {
            let stream = if stderr { Stream::Stderr } else { Stream::Stdout };
            self.events.send(Event::Output { task: name.clone(), stream, text });
        }
        Verdict::Cached(CacheHit { key: key.hex, source: "local" })
    }

    fn unusable(&mut self, key: &Key, problem: String, verdict: Verdict) -> Verdict {
        self.caching.store.remove(&key.hex);
        self.warn(format!("{problem}; it runs"));
        verdict
    }

    fn warn(&mut self, problem: String) {
        if self.caching.warned.insert(problem.clone()) {
            self.events.send(Event::CacheWarning { problem });
        }
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
        if cache::cacheable(&self.config, def) && self.caching.keys.contains_key(&def.name) {
            self.events.capture(self.engine.plan()[task].name.clone());
        }
    }

    /// A task ended: a pass is stored under its key (failures never are).
    pub(super) fn store(&mut self, task: TaskId, outcome: &Outcome, took: Option<std::time::Duration>) {
        let name = self.engine.plan()[task].name.clone();
        let Some(output) = self.events.captured(&name) else { return };
        let def = &self.config.tasks[task];
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
        let artifact = Artifact { manifest, files, output };
        let stored = artifact.pack().and_then(|bytes| self.caching.store.put(&key.hex, &def.name, &key.parts, &bytes));
        if let Err(e) = stored {
            self.warn(format!(
                "cannot store the result of {} in {}: {e}",
                def.name,
                self.caching.store.dir().display()
            ));
        }
    }
}

/// Whether `output` names one file (a plain path, not a `!` one) that is not there.
fn declared_file_missing(root: &std::path::Path, output: &str) -> bool {
    let (exclude, body) = crate::config::parse_glob(output);
    !exclude && crate::config::is_literal(body) && !root.join(body.trim_start_matches("./")).exists()
}
