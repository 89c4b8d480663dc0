//! The cache: a task's result stored under a key of everything that makes it, restored instead of running it
//! again. [`key`] makes keys, [`artifact`] packs results as bytes, [`local`] keeps them under `.irun/cache/`.

pub(crate) mod artifact;
pub(crate) mod key;
pub(crate) mod local;

use std::collections::HashMap;

use crate::config::{Config, Task};
use crate::fresh::{Checker, Settings, portable_definition};
pub(crate) use key::Key;
use key::KeyInput;

/// Whether `task`'s results are cached: a task (not a service or group) that is not `always_run` nor `cache =
/// false` and has sources or deps, all of whose non-service deps are cached too (an uncached dep is an input no key can name).
pub(crate) fn cacheable(config: &Config, task: &Task) -> bool {
    let Some(process) = task.process() else { return false };
    if task.is_service() || process.always_run || !process.cache.enabled {
        return false;
    }
    let deps = config.deps_through_groups(task);
    if task.sources().is_empty() && deps.is_empty() {
        return false;
    }
    deps.iter().all(|d| d.is_service() || cacheable(config, d))
}

/// `task`'s key, given a way to get its deps' keys. Reads its sources (only asked for tasks that run anyway).
pub(crate) fn key_of(config: &Config, checker: &Checker, task: &Task, dep_key: &mut dyn FnMut(&Task) -> String) -> Key {
    let root = checker.portable_root();
    let (command, mut env) = portable_definition(task, root);
    env.extend(named_shell_variables(task));
    let sources = checker
        .files(task.sources(), true)
        .into_iter()
        .map(|rel| {
            let digest =
                std::fs::read(config.root.join(&rel)).map_or_else(|_| "unreadable".into(), |b| key::sha256(&b));
            (rel, digest)
        })
        .collect();
    let mut deps = Vec::new();
    let mut services = Vec::new();
    for dep in config.deps_through_groups(task) {
        if dep.is_service() {
            let Settings { command, env, cwd, probe, .. } = Settings::now(dep, root);
            services.push((dep.name.clone(), format!("{command}\0{env}\0{cwd}\0{probe}")));
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
        sources,
        outputs: task.outputs().to_vec(),
        deps,
        services,
        keep_output: task.process().is_none_or(|p| p.cache.output),
    })
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

/// For `irun explain`: a task that would run is restored from the local cache (its key), or what changed in its
/// key since the last one stored for it.
pub(crate) fn explain(
    config: &Config,
    checker: &Checker,
    task: &Task,
    keys: &mut HashMap<String, Key>,
) -> Option<Explained> {
    if !enabled() || !cacheable(config, task) {
        return None;
    }
    let key = key_with(config, checker, task, keys);
    let (store, _) = local::LocalStore::from_env(&config.root);
    if store.dir().join(format!("{}.tar.gz", key.hex)).is_file() {
        return Some(Explained::Hit(key.hex));
    }
    let changed = store.index().get(&task.name).map(|before| key.changed_since(before)).unwrap_or_default();
    Some(Explained::Miss { key: key.hex, changed })
}

pub(crate) enum Explained {
    Hit(String),
    Miss { key: String, changed: Vec<String> },
}

/// Whether runs use the cache: `IRUN_CACHE=local` (off by default while the cache is new: a task whose inputs
/// change back would otherwise be restored where users expect it to run).
pub(crate) fn enabled() -> bool {
    std::env::var("IRUN_CACHE").is_ok_and(|v| v == "local")
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
    fn cache_false_and_services_are_not_cacheable() {
        let cfg = config(
            "[tasks.a]\ncmd = \"x\"\nsources = [\"s\"]\n[tasks.b]\ncmd = \"x\"\nsources = [\"s\"]\ncache = false\n\
             [tasks.c]\ncmd = \"x\"\ndeps = [\"b\"]\n[tasks.d]\ncmd = \"x\"\ndaemon = true\nsources = [\"s\"]\n",
        );
        let cached = |i: usize| cacheable(&cfg, &cfg.tasks[TaskId::new(i)]);
        assert!(cached(0));
        assert!(!cached(1), "cache = false");
        assert!(!cached(2), "its dep is not cached, so no key names it");
        assert!(!cached(3), "a service");
    }
}
