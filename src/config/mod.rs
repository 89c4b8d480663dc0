//! Irun.toml: finding it, reading it ([`raw`]), checking it ([`validate`]) into a model the rest of irun can trust
//! ([`model`]); variables in [`env`], the JSON Schema in [`schema`].
//!
//! Parsing keeps byte spans so every error points at the offending line.

mod codec;
pub(crate) mod env;
mod globs;
mod ids;
mod model;
mod raw;
pub(crate) mod schema;
mod snapshot;
mod validate;

pub(crate) use validate::resolve as resolve_probe;

pub(crate) use globs::{Globs, glob, glob_root, is_literal, parse as parse_glob};

use std::path::{Path, PathBuf};

pub(crate) use model::{
    Check, Cmd, DEFAULT_STOP_TIMEOUT, HttpUrl, OutputPolicy, PerTask, Probe, Restart, Task, TaskId, host_port,
    port_variable,
};
pub(crate) use model::{Config, TaskKind};

use crate::diagnostic::{Diagnostic, Source, suggestion};

pub(crate) const FILE_NAME: &str = "Irun.toml";

/// The Irun.toml to use: `start` itself or the nearest parent holding one, like Cargo does.
pub(crate) fn find(start: &Path) -> Result<PathBuf, Diagnostic> {
    for dir in start.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Diagnostic::new(format!("no {FILE_NAME} found in {} or any parent directory", start.display()))
        .with_help(format!("create {FILE_NAME} there, or pass its path with `-f PATH`")))
}

/// The Irun.toml at `path`: as kept in `.irun/` by an earlier load if nothing it depends on changed since (see
/// [`snapshot`]), else parsed and checked (and kept for the next time).
pub(crate) fn load(path: &Path) -> Result<Config, Diagnostic> {
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
    let source = Source::new(&path, &text);
    drop(text);
    loaded(source, root, &env::Shell::from_env())
}

/// Irun.toml's `source` at `root`, with `shell` as irun's environment: as kept, or parsed, checked and kept.
fn loaded(source: Source, root: PathBuf, shell: &env::Shell) -> Result<Config, Diagnostic> {
    if let Some(config) = snapshot::read(&source, &root, shell) {
        return Ok(config);
    }
    let (config, files) = checked(source, root, shell)?;
    snapshot::write(&config, shell, &files);
    Ok(config)
}

/// Parse and validate the text of an Irun.toml whose commands run in `root`.
pub(crate) fn parse(source: Source, root: PathBuf) -> Result<Config, Diagnostic> {
    checked(source, root, &env::Shell::from_env()).map(|(config, _)| config)
}

/// Parse and validate, with `shell` as irun's environment; and the dotenv files looked for.
fn checked(source: Source, root: PathBuf, shell: &env::Shell) -> Result<(Config, validate::Files), Diagnostic> {
    let raw: raw::RawConfig = toml::from_str(&source.text).map_err(|e| toml_error(&source, &e))?;
    let validator = validate::Validator {
        source: &source,
        root: &root,
        shell,
        secrets: Default::default(),
        files: Default::default(),
    };
    let validated = validator.config(raw)?;
    let mut config = Config::new(source.clone(), root.clone(), validated.default, validated.jobs, validated.tasks);
    config.secrets = validated.secrets;
    Ok((config, validated.files))
}

/// `config` as a later load reads it back from `.irun/` (for the tests that feed irun untrusted text).
#[cfg(test)]
pub(crate) fn stored_and_read_back(config: &Config) -> Option<Config> {
    let mut w = codec::Writer::new(&config.root);
    codec::encode(config, &mut w);
    codec::decode(&mut codec::Reader::new(&w.out, &config.root), config.source.clone())
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
