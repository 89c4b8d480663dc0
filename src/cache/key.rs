//! Cache keys: SHA-256 over a canonical, length-prefixed serialisation of everything that makes a task's result,
//! kept as named parts so `irun explain` can say which part changed since the last stored key.

use sha2::{Digest, Sha256};

/// Bumped whenever what goes into a key, or how, changes: old entries then simply miss.
pub(crate) const KEY_FORMAT: &str = "irun-cache-v1";

/// The named parts of a key, in a fixed order. Each part is a list of fields, serialised length-prefixed.
pub(crate) const PARTS: [&str; 10] =
    ["platform", "task", "command", "env", "cwd", "sources", "outputs", "deps", "services", "output"];

/// The inputs of one task's key, as plain data (the driver fills it from the model; tests by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyInput {
    pub(crate) name: String,
    pub(crate) kind: String,
    /// The command as it runs (argv items or one shell string), the project's root replaced by a placeholder.
    pub(crate) command: Vec<String>,
    /// The environment irun sets for it, and the inherited variables Irun.toml names (`cache_env`).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: String,
    /// (path relative to the project, SHA-256 of the content in hex).
    pub(crate) sources: Vec<(String, String)>,
    pub(crate) outputs: Vec<String>,
    /// The dependencies' keys, in dependency order (name, key).
    pub(crate) deps: Vec<(String, String)>,
    /// For each service it needs: its name and definition (command, env, cwd, probe) as canonical text.
    pub(crate) services: Vec<(String, String)>,
    /// Whether the task's output is kept in the artifact (`cache_output`).
    pub(crate) keep_output: bool,
}

/// A key and the digest of each of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) hex: String,
    pub(crate) parts: Vec<(String, String)>,
}

/// Length-prefixed fields: `a`+`bc` and `ab`+`c` never serialise alike.
#[derive(Default)]
struct Fields(Vec<u8>);

impl Fields {
    fn push(&mut self, field: &str) -> &mut Fields {
        self.0.extend_from_slice(&(field.len() as u64).to_le_bytes());
        self.0.extend_from_slice(field.as_bytes());
        self
    }

    fn pairs(&mut self, pairs: &[(String, String)]) -> &mut Fields {
        self.push(&pairs.len().to_string());
        for (a, b) in pairs {
            self.push(a).push(b);
        }
        self
    }

    fn list(&mut self, items: &[String]) -> &mut Fields {
        self.push(&items.len().to_string());
        for item in items {
            self.push(item);
        }
        self
    }

    fn digest(&self) -> String {
        hex(&Sha256::digest(&self.0))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, hex.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The platform a result was made on: OS, architecture and C library (a glibc binary is not a musl one).
pub(crate) fn platform() -> String {
    let libc = if cfg!(target_env = "musl") {
        "musl"
    } else if cfg!(target_env = "gnu") {
        "gnu"
    } else {
        "other"
    };
    format!("{}-{}-{libc}", std::env::consts::OS, std::env::consts::ARCH)
}

impl Key {
    pub(crate) fn of(input: &KeyInput) -> Key {
        Key::on(&platform(), input)
    }

    fn on(platform: &str, input: &KeyInput) -> Key {
        let mut env = input.env.clone();
        env.sort();
        let mut sources = input.sources.clone();
        sources.sort();
        let part = |f: &mut dyn FnMut(&mut Fields)| {
            let mut fields = Fields::default();
            f(&mut fields);
            fields.digest()
        };
        let digests = [
            part(&mut |f| {
                f.push(platform);
            }),
            part(&mut |f| {
                f.push(&input.name).push(&input.kind);
            }),
            part(&mut |f| {
                f.list(&input.command);
            }),
            part(&mut |f| {
                f.pairs(&env);
            }),
            part(&mut |f| {
                f.push(&input.cwd);
            }),
            part(&mut |f| {
                f.pairs(&sources);
            }),
            part(&mut |f| {
                f.list(&input.outputs);
            }),
            part(&mut |f| {
                f.pairs(&input.deps);
            }),
            part(&mut |f| {
                f.pairs(&input.services);
            }),
            part(&mut |f| {
                f.push(if input.keep_output { "kept" } else { "left out" });
            }),
        ];
        let mut all = Fields::default();
        all.push(KEY_FORMAT);
        let parts: Vec<(String, String)> = PARTS.iter().zip(digests).map(|(n, d)| (n.to_string(), d)).collect();
        all.pairs(&parts);
        Key { hex: all.digest(), parts }
    }

    /// The parts whose digests differ from `before`'s (by name), in key order.
    pub(crate) fn changed_since(&self, before: &[(String, String)]) -> Vec<String> {
        self.parts
            .iter()
            .filter(|(name, digest)| before.iter().find(|(n, _)| n == name).is_none_or(|(_, d)| d != digest))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KeyInput {
        KeyInput {
            name: "build".into(),
            kind: "task".into(),
            command: vec!["make all".into()],
            env: vec![("A".into(), "1".into())],
            cwd: ".".into(),
            sources: vec![("src/a.c".into(), sha256(b"int a;"))],
            outputs: vec!["out/**".into()],
            deps: vec![("gen".into(), "k1".into())],
            services: vec![("db".into(), "{cmd}".into())],
            keep_output: true,
        }
    }

    fn changed(edit: impl FnOnce(&mut KeyInput)) -> Vec<String> {
        let mut input = base();
        edit(&mut input);
        let (a, b) = (Key::of(&base()), Key::of(&input));
        assert_ne!(a.hex, b.hex);
        b.changed_since(&a.parts)
    }

    #[test]
    fn the_same_inputs_give_the_same_key_in_any_order() {
        let mut input = base();
        input.env = vec![("B".into(), "2".into()), ("A".into(), "1".into())];
        input.sources.push(("src/b.c".into(), sha256(b"b")));
        let mut other = input.clone();
        other.env.reverse();
        other.sources.reverse();
        assert_eq!(Key::of(&input), Key::of(&other));
        assert_eq!(Key::of(&input).hex.len(), 64);
    }

    #[test]
    fn each_part_changes_the_key_and_is_named() {
        assert_eq!(changed(|i| i.name = "other".into()), ["task"]);
        assert_eq!(changed(|i| i.kind = "service".into()), ["task"]);
        assert_eq!(changed(|i| i.command = vec!["make".into(), "all".into()]), ["command"]);
        assert_eq!(changed(|i| i.env[0].1 = "2".into()), ["env"]);
        assert_eq!(changed(|i| i.cwd = "web".into()), ["cwd"]);
        assert_eq!(changed(|i| i.sources[0].1 = sha256(b"int b;")), ["sources"]);
        assert_eq!(changed(|i| i.sources[0].0 = "src/b.c".into()), ["sources"]);
        assert_eq!(changed(|i| i.outputs.push("dist".into())), ["outputs"]);
        assert_eq!(changed(|i| i.deps[0].1 = "k2".into()), ["deps"]);
        assert_eq!(changed(|i| i.services[0].1 = "{cmd2}".into()), ["services"]);
        assert_eq!(changed(|i| i.keep_output = false), ["output"]);
    }

    #[test]
    fn the_platform_is_part_of_the_key() {
        let (a, b) = (Key::on("linux-x86_64-gnu", &base()), Key::on("linux-x86_64-musl", &base()));
        assert_ne!(a.hex, b.hex);
        assert_eq!(b.changed_since(&a.parts), ["platform"]);
    }

    #[test]
    fn fields_are_length_prefixed() {
        let mut a = base();
        a.command = vec!["ab".into(), "c".into()];
        let mut b = base();
        b.command = vec!["a".into(), "bc".into()];
        assert_ne!(Key::of(&a).hex, Key::of(&b).hex);
    }
}
