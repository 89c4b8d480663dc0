//! Variables in Irun.toml: `env` tables, `dotenv` files and `${NAME}` references, with errors that point at the
//! reference itself.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use super::{Shared, Validator};
use crate::config::env::{self, DotenvError, Layers, Problem, Vars};
use crate::config::model::InheritEnv;
use crate::config::raw::{At, RawTask};
use crate::diagnostic::{Diagnostic, suggestion};

impl Validator<'_> {
    /// `text` (the value at `span`) with its `${NAME}`s resolved from `vars`.
    pub(super) fn expand<'t>(
        &self,
        text: &'t str,
        span: Range<usize>,
        key: &str,
        vars: &Layers,
    ) -> Result<Cow<'t, str>, Diagnostic> {
        self.expand_by(env::expand, text, span, key, vars)
    }

    /// As [`Validator::expand`], with `how` to expand.
    pub(super) fn expand_by<'t>(
        &self,
        how: env::Expansion,
        text: &'t str,
        span: Range<usize>,
        key: &str,
        vars: &Layers,
    ) -> Result<Cow<'t, str>, Diagnostic> {
        let lookup = |name: &str| {
            let (value, secret) = vars.lookup(name)?;
            if secret {
                self.secrets.borrow_mut().record(name, &value);
            }
            Some(value)
        };
        how(text, &lookup).map_err(|problem| {
            // Point at the reference itself when it is written as is in the file (no escapes before it).
            let written = self.source.text.get(span.clone()).unwrap_or_default();
            let at = |needle: &str| {
                written.find(needle).map(|i| span.start + i..span.start + i + needle.len()).unwrap_or(span.clone())
            };
            match problem {
                Problem::Unknown { name, .. } => self
                    .err(at(&format!("${{{name}")), format!("unknown variable `{name}` in `{key}`"))
                    .with_help(format!(
                        "set {name} in the environment, a `dotenv` file or `env`, give a default with \
                         `${{{name}:-default}}`, or write `$${{{name}}}` for a literal `${{{name}}}`"
                    )),
                Problem::Malformed { at: offset } => {
                    let rest = &text[offset..];
                    let shown: String = rest.chars().take(rest.find('}').map_or(12, |i| i + 1).min(40)).collect();
                    self.err(at(&shown), format!("`{shown}` in `{key}` is not a variable reference")).with_help(
                        "write `${NAME}` or `${NAME:-default}` (NAME: letters, digits and `_`), or `$${` for a literal `${`",
                    )
                }
            }
        })
    }

    /// A string, or an array of strings, with each string's `${NAME}`s resolved.
    pub(super) fn expand_value(
        &self,
        value: &At<toml::Value>,
        key: &str,
        vars: &Layers,
    ) -> Result<At<toml::Value>, Diagnostic> {
        let span = value.span();
        let expand = |s: &str| self.expand(s, span.clone(), key, vars).map(|s| toml::Value::String(s.into_owned()));
        let expanded = match value.get() {
            toml::Value::String(s) => expand(s)?,
            toml::Value::Array(items) => toml::Value::Array(
                items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => expand(s),
                        other => Ok(other.clone()),
                    })
                    .collect::<Result<_, Diagnostic>>()?,
            ),
            other => other.clone(),
        };
        Ok(At::new(span, expanded))
    }

    /// The variables of the listed dotenv files, in order (a later file's value wins); `?` before a path makes the
    /// file optional. And whether an optional one is missing.
    pub(super) fn dotenv(&self, list: Option<&Vec<At<String>>>) -> Result<(Vars, bool), Diagnostic> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut missing = false;
        for file in list.map(Vec::as_slice).unwrap_or_default() {
            let (written, optional) = match file.get().strip_prefix('?') {
                Some(rest) => (rest, true),
                None => (file.get().as_str(), false),
            };
            let unusable = |why: String| {
                self.err(file.span(), format!("cannot use dotenv file {written:?}: {why}"))
                    .with_help("fix the file (lines are `NAME=value`, `export NAME=value` or `# comments`)")
            };
            let path = self.root.join(written);
            match env::read_dotenv(&path) {
                Ok(vars) => {
                    out.extend(vars);
                    self.files.borrow_mut().read = true;
                }
                Err(DotenvError::Missing) if optional => {
                    missing = true;
                    self.files.borrow_mut().missing.push(path);
                }
                Err(DotenvError::Missing) => {
                    return Err(self
                        .err(file.span(), format!("dotenv file {written:?} does not exist ({})", path.display()))
                        .with_help(format!("create it, or write \"?{written}\" to use it only when it exists")));
                }
                Err(DotenvError::Line { line, why }) => return Err(unusable(format!("{written}:{line}: {why}"))),
                Err(DotenvError::Unreadable(why)) => return Err(unusable(why)),
            }
        }
        Ok((Vars::new(out), missing))
    }

    /// An `env` table: names checked, values made strings, `${NAME}`s resolved from `vars`.
    pub(super) fn env(
        &self,
        table: &BTreeMap<String, At<toml::Value>>,
        vars: &Layers,
    ) -> Result<Vec<(String, String)>, Diagnostic> {
        let mut out = Vec::with_capacity(table.len());
        for (k, v) in table {
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(self
                    .err(v.span(), format!("invalid environment variable name {k:?}"))
                    .with_help("a name must be non-empty and cannot contain `=` or NUL"));
            }
            let value: Cow<str> = match v.get() {
                toml::Value::String(s) => Cow::Borrowed(s),
                toml::Value::Integer(i) => Cow::Owned(i.to_string()),
                toml::Value::Float(f) => Cow::Owned(f.to_string()),
                toml::Value::Boolean(b) => Cow::Owned(b.to_string()),
                other => {
                    return Err(self
                        .err(
                            v.span(),
                            format!("environment variable `{k}` must be a string, not a {}", other.type_str()),
                        )
                        .with_help(format!("write it as `{k} = \"...\"`")));
                }
            };
            if value.contains('\0') {
                return Err(self.err(v.span(), format!("environment variable `{k}` contains a NUL byte")));
            }
            // Expanded again as the task starts (for the ports chosen then): `$${IRUN_...}` stays escaped till then.
            let value = self.expand_by(env::expand_before_start, &value, v.span(), &format!("env.{k}"), vars)?;
            out.push((k.clone(), value.into_owned()));
        }
        Ok(out)
    }

    /// `inherit_env`: `true` (the default), `false`, or an array of names that the top-level `[env]` or `dotenv`
    /// files define (unless an optional one is missing: it may define them).
    pub(super) fn inherit_env(&self, raw: &RawTask, shared: &Shared) -> Result<InheritEnv, Diagnostic> {
        let Some(value) = &raw.inherit_env else { return Ok(InheritEnv::All) };
        let wrong = |what: &str| {
            self.err(value.span(), format!("`inherit_env` must be `true`, `false` or an array of variable names, not {what}"))
                .with_help("write `inherit_env = false` for none of [env] and the top-level dotenv files, or `inherit_env = [\"NAME\"]` for some")
        };
        let items = match value.get() {
            toml::Value::Boolean(true) => return Ok(InheritEnv::All),
            toml::Value::Boolean(false) => return Ok(InheritEnv::Nothing),
            toml::Value::Array(items) => items,
            other => return Err(wrong(&format!("a {}", other.type_str()))),
        };
        let mut names = Vec::with_capacity(items.len());
        for item in items {
            let toml::Value::String(name) = item else {
                return Err(wrong(&format!("an array holding a {}", item.type_str())));
            };
            let top_level = |name: &str| shared.env.get(name).is_some() || shared.dotenv.get(name).is_some();
            if !shared.unread && !top_level(name) {
                // Listed only for the message: a task's check costs its names, not the top level's.
                let mut known: Vec<&str> =
                    shared.env.list().iter().chain(shared.dotenv.list()).map(|(k, _)| k.as_str()).collect();
                known.sort_unstable();
                known.dedup();
                let written = self.source.text.get(value.span()).unwrap_or_default();
                let span = written
                    .find(&format!("\"{name}\""))
                    .map_or(value.span(), |i| value.span().start + i..value.span().start + i + name.len() + 2);
                let hint = suggestion(name, known.iter().copied());
                let defined = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                return Err(self
                    .err(span, format!("`inherit_env` names `{name}`, which neither [env] nor a top-level dotenv file defines{hint}"))
                    .with_help(format!(
                        "list variables of [env] or the top-level dotenv files (they define: {defined}); irun's own \
                         environment reaches every task anyway"
                    )));
            }
            names.push(name.clone());
        }
        Ok(InheritEnv::Only(names))
    }
}
