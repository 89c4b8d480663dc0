//! The cache: a task's result stored under a key of everything that makes it, restored instead of running it
//! again. [`key`] makes keys, [`artifact`] packs results as bytes, [`local`] keeps them under `.irun/cache/`.

pub(crate) mod artifact;
pub(crate) mod key;
pub(crate) mod local;
pub(crate) mod remote;

use std::collections::HashMap;

use crate::config::{Config, Task};
use crate::fresh::{Checker, Settings, portable_definition};
pub(crate) use key::Key;
use key::KeyInput;

/// Whether `task`'s results are cached: a task that has a key (see [`keyed`]) and no output that is a [`marker`],
/// unless `cache = true` says so. (Each call walks what the task needs: for every task of a run, use [`Table`].)
#[cfg(test)]
pub(crate) fn cacheable(config: &Config, task: &Task) -> bool {
    cacheable_with(config, task, &mut HashMap::new())
}

fn cacheable_with(config: &Config, task: &Task, keyed_memo: &mut HashMap<String, bool>) -> bool {
    let Some(process) = task.process() else { return false };
    if !process.cache.forced && marker(task.outputs()).is_some() {
        return false;
    }
    keyed_with(config, task, keyed_memo)
}

/// Whether each task of a configuration is cached, worked out once: a task's answer needs its deps', and asking
/// task by task would walk the same deps again for every task after them.
pub(crate) struct Table {
    cached: crate::config::PerTask<bool>,
}

impl Table {
    pub(crate) fn new(config: &Config) -> Table {
        let mut memo = HashMap::new();
        Table { cached: config.tasks.iter().map(|t| cacheable_with(config, t, &mut memo)).collect() }
    }

    pub(crate) fn cacheable(&self, task: crate::config::TaskId) -> bool {
        self.cached[task]
    }
}

/// Whether `task` has a key: a task (not a service or group) that is not `always_run` nor `cache = false`, has
/// sources or outputs, and all of whose deps have keys too, and those of the services it needs. A dep that has a
/// key but is not cached (a marker task such as a virtualenv's `setup`) is named by its key all the same: the same
/// inputs make the same result, which is what its fingerprint assumes too. A dep without one (it always runs, or
/// `cache = false` says its result does not follow from its inputs) is an input no key can name.
#[cfg(test)]
pub(crate) fn keyed(config: &Config, task: &Task) -> bool {
    keyed_with(config, task, &mut HashMap::new())
}

/// [`keyed`], remembering each task's answer (by name) in `memo`.
fn keyed_with(config: &Config, task: &Task, memo: &mut HashMap<String, bool>) -> bool {
    if let Some(&known) = memo.get(&task.name) {
        return known;
    }
    let keyed = match task.process() {
        // Without `sources` nor `outputs` it always runs (as its fingerprint says): nothing names what it reads.
        Some(p) if task.is_service() || p.always_run || !p.cache.enabled => false,
        Some(_) if task.sources().is_empty() && task.outputs().is_empty() => false,
        Some(_) => deps_keyed(config, task, memo),
        None => false,
    };
    memo.insert(task.name.clone(), keyed);
    keyed
}

/// The rule for what a cached result holds: the files its `outputs` match, and nothing else, so they must cover
/// everything the task makes that later tasks use. An output written as a plain path (no wildcard) that none of
/// the task's globs covers may be a marker standing for more than it holds (`.venv/pyvenv.cfg` for a whole venv,
/// `node_modules/.package-lock.json` for `node_modules`): restoring it alone would leave the rest missing. Such a
/// task is not cached unless `cache = true` says its outputs are its whole result. Returns the first such output.
pub(crate) fn marker(outputs: &[String]) -> Option<&str> {
    use crate::config::{Globs, is_literal, parse_glob as parse};
    let globs: Vec<String> = outputs.iter().filter(|o| !is_literal(parse(o).1)).cloned().collect();
    let globs = Globs::new(&globs);
    outputs.iter().map(String::as_str).find(|o| {
        let (exclude, body) = parse(o);
        !exclude && is_literal(body) && !globs.is_match(body.trim_start_matches("./"))
    })
}

/// The first file of `files` that none of `outputs` takes in (a glob matching it, or a plain path naming it or a
/// folder holding it, and no later `!` pattern taking it out): an artifact holding one would write where the task
/// does not (a poisoned store writing `.git/hooks`, sources).
pub(crate) fn not_an_output<'a>(outputs: &[String], files: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    use crate::config::{Globs, is_literal, parse_glob as parse};
    let globs = Globs::new(outputs);
    let in_folder = |rel: &str| {
        let mut taken = false;
        for o in outputs {
            let (exclude, body) = parse(o);
            let body = body.trim_start_matches("./").trim_end_matches('/');
            if is_literal(body) && (rel == body || rel.starts_with(&format!("{body}/"))) {
                taken = !exclude;
            }
        }
        taken
    };
    files.into_iter().find(|rel| !globs.is_match(rel) && !in_folder(rel))
}

/// Whether every task `task` needs, directly or through the services it needs, has a key.
fn deps_keyed(config: &Config, task: &Task, memo: &mut HashMap<String, bool>) -> bool {
    config
        .deps_through_groups(task)
        .iter()
        .all(|d| if d.is_service() { deps_keyed(config, d, memo) } else { keyed_with(config, d, memo) })
}

/// `task`'s key, given a way to get its deps' keys. Reads its sources (only asked for tasks that run anyway).
pub(crate) fn key_of(config: &Config, checker: &Checker, task: &Task, dep_key: &mut dyn FnMut(&Task) -> String) -> Key {
    let root = checker.portable_root();
    let (command, mut env) = portable_definition(task, root);
    env.extend(named_shell_variables(task));
    let mut deps = Vec::new();
    let mut services = Vec::new();
    for dep in config.deps_through_groups(task) {
        if dep.is_service() {
            services.push((dep.name.clone(), service_definition(config, checker, dep, dep_key)));
        } else {
            deps.push((dep.name.clone(), dep_key(dep)));
        }
    }
    Key::of(&KeyInput {
        name: task.name.clone(),
        kind: task.tag().as_str().to_string(),
        command: vec![command],
        env,
        cwd: task.process().map_or(String::new(), |p| root.relative(&p.cwd)),
        sources: sources(config, checker, task),
        outputs: task.outputs().to_vec(),
        deps,
        services,
        keep_output: task.process().is_none_or(|p| p.cache.output),
    })
}

/// `task`'s sources: (path relative to the project, SHA-256 of the content).
fn sources(config: &Config, checker: &Checker, task: &Task) -> Vec<(String, String)> {
    let files = checker.files(task.sources(), true).into_iter();
    files.map(|rel| (rel.clone(), source_digest(&config.root.join(&rel)))).collect()
}

/// What a service a task needs is, as one digest: its definition (command, environment, cwd, probe), its sources,
/// and what it needs in turn (the keys of its tasks, the same of its services): a task's result may depend on all
/// of it, as its fingerprint does.
fn service_definition(
    config: &Config,
    checker: &Checker,
    service: &Task,
    dep_key: &mut dyn FnMut(&Task) -> String,
) -> String {
    let Settings { command, env, cwd, probe, .. } = Settings::now(service, checker.portable_root());
    let mut parts = vec![command.to_string(), env.to_string(), cwd, probe.to_string()];
    for (rel, digest) in sources(config, checker, service) {
        parts.extend([rel, digest]);
    }
    for dep in config.deps_through_groups(service) {
        let inner = if dep.is_service() { service_definition(config, checker, dep, dep_key) } else { dep_key(dep) };
        parts.extend([dep.name.clone(), inner]);
    }
    key::sha256(parts.join("\0").as_bytes())
}

/// A source's SHA-256. A FIFO or device would block or never end: its presence counts, not its content.
fn source_digest(path: &std::path::Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => "not a regular file".into(),
        Ok(_) => std::fs::read(path).map_or_else(|_| "unreadable".into(), |b| key::sha256(&b)),
        Err(_) => "unreadable".into(),
    }
}

/// The variables of irun's environment that `cache_env` names and Irun.toml does not set (those count already),
/// as `$NAME` and their value, or `unset`: the task inherits them as they are now.
fn named_shell_variables(task: &Task) -> Vec<(String, String)> {
    let Some(process) = task.process() else { return Vec::new() };
    let set = |name: &String| process.env.iter().any(|(k, _)| k == name);
    let value = |name: &String| std::env::var_os(name).map_or("unset".into(), |v| format!("={}", v.to_string_lossy()));
    process.cache.env.iter().filter(|n| !set(n)).map(|n| (format!("${n}"), value(n))).collect()
}

/// `def`'s key, its deps' computed first (and kept in `keys`).
pub(crate) fn key_with(config: &Config, checker: &Checker, def: &Task, keys: &mut HashMap<String, Key>) -> Key {
    if let Some(key) = keys.get(&def.name) {
        return key.clone();
    }
    let key = key_of(config, checker, def, &mut |dep| key_with(config, checker, dep, keys).hex);
    keys.insert(def.name.clone(), key.clone());
    key
}

/// For `irun explain`: a task that would run is restored from the local or remote cache (its key), or what changed
/// in its key since the last one stored for it here.
/// `remote`: the remote cache to look in (from [`remote::from_env`]); one that cannot answer is not asked again.
pub(crate) fn explain(
    config: &Config,
    checker: &Checker,
    table: &Table,
    task: crate::config::TaskId,
    keys: &mut HashMap<String, Key>,
    remote: &mut Option<remote::Remote>,
) -> Option<Explained> {
    if !enabled() || !table.cacheable(task) {
        return None;
    }
    let task = &config.tasks[task];
    let key = key_with(config, checker, task, keys);
    let (store, _) = local::LocalStore::from_env(&config.root);
    if store.dir().join(format!("{}.tar.gz", key.hex)).is_file() {
        return Some(Explained::Hit { key: key.hex, source: "local" });
    }
    // Only looking: a server that cannot answer is a miss, and is not asked again.
    match remote.as_ref().map(|r| r.exists(&key.hex)) {
        Some(Ok(true)) => return Some(Explained::Hit { key: key.hex, source: "remote" }),
        Some(Err(_)) => *remote = None,
        _ => {}
    }
    let changed = store.index().get(&task.name).map(|before| key.changed_since(before)).unwrap_or_default();
    Some(Explained::Miss { key: key.hex, changed })
}

/// For `irun -n`: the tasks of `plan` that would run (not forced) and would be restored from the local cache
/// instead, by name, with their keys. It only looks: nothing is restored.
pub(crate) fn hits(
    config: &Config,
    checker: &Checker,
    plan: &crate::plan::Plan,
    verdicts: &crate::config::PerTask<Option<crate::outcome::Verdict>>,
) -> HashMap<String, String> {
    use crate::outcome::{RunReason, Verdict};
    let mut keys = HashMap::new();
    let mut hits = HashMap::new();
    let mut remote = remote::from_env().0;
    let table = Table::new(config);
    for &i in &plan.order {
        let Some(Verdict::Run(why)) = &verdicts[i] else { continue };
        if matches!(why, RunReason::Forced | RunReason::Rerun | RunReason::AlwaysRun) {
            continue;
        }
        if let Some(Explained::Hit { key, .. }) = explain(config, checker, &table, i, &mut keys, &mut remote) {
            hits.insert(config.tasks[i].name.clone(), key);
        }
    }
    hits
}

pub(crate) enum Explained {
    /// Its key, and which cache holds it (`local` or `remote`).
    Hit {
        key: String,
        source: &'static str,
    },
    Miss {
        key: String,
        changed: Vec<String>,
    },
}

/// Whether runs use the cache: yes, unless `IRUN_CACHE=off` (a task whose inputs change back to ones already
/// stored is then run, not restored; `cache = false` says the same for one task).
pub(crate) fn enabled() -> bool {
    std::env::var_os("IRUN_CACHE").is_none_or(|v| v != "off")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::TaskId;
    use crate::diagnostic::Source;

    fn config(text: &str) -> Config {
        crate::config::parse(Source::new(Path::new("Irun.toml"), text), PathBuf::from("/project")).unwrap()
    }

    #[test]
    fn only_the_shell_variables_cache_env_names_count_and_unset_ones_say_so() {
        let cfg = config(
            "[tasks.t]\ncmd = \"x\"\nenv = { SET = \"1\" }\ncache_env = [\"PATH\", \"SET\", \"IRUN_TEST_SURELY_UNSET\"]\n",
        );
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            named_shell_variables(&cfg.tasks[TaskId::new(0)]),
            [("$PATH".to_string(), format!("={path}")), ("$IRUN_TEST_SURELY_UNSET".into(), "unset".into())],
            "SET is set by Irun.toml and counts already; HOME is not named"
        );
    }

    #[test]
    fn an_artifact_file_must_be_one_of_the_tasks_outputs() {
        let outputs: Vec<String> = ["dist/**", "!dist/tmp/**", "build"].iter().map(|s| s.to_string()).collect();
        assert_eq!(not_an_output(&outputs, ["dist/a.js", "dist/x/b.js", "build/app", "build"]), None);
        assert_eq!(not_an_output(&outputs, ["dist/a.js", ".git/hooks/pre-commit"]), Some(".git/hooks/pre-commit"));
        assert_eq!(not_an_output(&outputs, ["dist/tmp/x"]), Some("dist/tmp/x"), "taken out by `!`");
        assert_eq!(not_an_output(&outputs, ["buildx"]), Some("buildx"));
    }

    #[test]
    fn cache_false_and_services_are_not_cacheable() {
        let cfg = config(
            "[tasks.a]\ncmd = \"x\"\nsources = [\"s\"]\n[tasks.b]\ncmd = \"x\"\nsources = [\"s\"]\ncache = false\n\
             [tasks.c]\ncmd = \"x\"\ndeps = [\"b\"]\nsources = [\"s\"]\n\
             [tasks.e]\ncmd = \"x\"\ndeps = [\"a\"]\n[tasks.d]\ncmd = \"x\"\ndaemon = true\nsources = [\"s\"]\n",
        );
        let cached = |i: usize| cacheable(&cfg, &cfg.tasks[TaskId::new(i)]);
        assert!(cached(0));
        assert!(!cached(1), "cache = false");
        assert!(!cached(2), "its dep is cache = false: its result does not follow from its inputs");
        assert!(!cached(4), "a service");
        assert!(!cached(3), "neither sources nor outputs: it always runs");
    }

    #[test]
    fn a_task_with_a_plain_path_output_no_glob_covers_is_a_marker_task_and_cache_true_caches_it() {
        let cfg = config(
            "[tasks.marker]\ncmd = \"x\"\noutputs = [\"env/marker\"]\n             [tasks.forced]\ncmd = \"x\"\noutputs = [\"env/marker\"]\ncache = true\n             [tasks.covered]\ncmd = \"x\"\noutputs = [\"out/**\", \"out/stamp\"]\n             [tasks.mixed]\ncmd = \"x\"\noutputs = [\"dist/*\", \"node_modules/.package-lock.json\"]\n             [tasks.globs]\ncmd = \"x\"\noutputs = [\"out/*\", \"!out/tmp\"]\n",
        );
        let cached = |i: usize| cacheable(&cfg, &cfg.tasks[TaskId::new(i)]);
        assert!(!cached(0), "a plain path may be a marker for more than it holds");
        assert!(cached(1), "cache = true says the outputs are the whole result");
        assert!(keyed(&cfg, &cfg.tasks[TaskId::new(0)]), "a marker task has a key: the tasks after it are cached");
        assert!(cached(2), "the plain path is inside a glob that holds the rest");
        assert!(!cached(3), "the glob holds dist, not node_modules");
        assert!(cached(4), "a plain path after `!` takes out, it adds nothing");
        assert_eq!(
            marker(&["dist/*".into(), "node_modules/.package-lock.json".into()]),
            Some("node_modules/.package-lock.json")
        );
    }
}
