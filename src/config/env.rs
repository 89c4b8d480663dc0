//! Variables, in one place: dotenv files (read with the dotenvy crate) and `${NAME}` / `${NAME:-default}` in
//! Irun.toml's values, resolved when Irun.toml is read. A default may hold references itself (`${A:-${B}}`,
//! `${A:-x${B:-y}z}`), expanded, as a shell does, only when it is used.
//!
//! `$${` writes a literal `${`. `$NAME` without braces, and `${IRUN_...}` (variables irun itself gives a task as it
//! starts, such as `IRUN_CHANGED_PATHS` and `IRUN_PORT`), are left as written: they reach the task's environment,
//! and its shell expands them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Variables in the order written, each name once (its last value, where it was last written), found by name
/// without a scan: a dotenv file of 400,000 lines and a `${NAME}` in every task cost their sizes, not their product.
#[derive(Default)]
pub(crate) struct Vars {
    list: Vec<(String, String)>,
    at: HashMap<String, usize>,
}

impl Vars {
    pub(crate) fn new(list: Vec<(String, String)>) -> Vars {
        let list = last_wins(list);
        let at = list.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
        Vars { list, at }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.at.get(name).map(|&i| self.list[i].1.as_str())
    }

    pub(crate) fn list(&self) -> &[(String, String)] {
        &self.list
    }
}

/// irun's environment as `${NAME}` sees it (the variables whose name and value are UTF-8), and the names Irun.toml
/// asked it for: besides its files, what a loaded Irun.toml depends on.
#[derive(Default)]
pub(crate) struct Shell {
    vars: HashMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl Shell {
    pub(crate) fn from_env() -> Shell {
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Shell::from(vars.collect::<HashMap<_, _>>())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.note(name);
        self.vars.get(name).map(String::as_str)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn note(&self, name: &str) {
        let mut asked = self.asked.borrow_mut();
        if !asked.contains(name) {
            asked.insert(name.to_string());
        }
    }

    /// The names asked for, in order, each with its value (`None`: not set).
    pub(crate) fn asked(&self) -> Vec<(String, Option<String>)> {
        self.asked.borrow().iter().map(|name| (name.clone(), self.vars.get(name).cloned())).collect()
    }

    /// Whether each of these names has the value it had (`None`: still not set).
    pub(crate) fn gives(&self, values: &[(String, Option<String>)]) -> bool {
        values.iter().all(|(name, value)| self.vars.get(name) == value.as_ref())
    }
}

impl From<HashMap<String, String>> for Shell {
    fn from(vars: HashMap<String, String>) -> Shell {
        Shell { vars, asked: RefCell::default() }
    }
}

/// Where `${NAME}` is looked up, the first that has it winning: the lists in `over` (settings that override irun's
/// environment), irun's environment, then the lists in `under` (dotenv files, which do not). This is the order in
/// which a task's environment is made, so `${NAME}` is the value the task sees as `$NAME`. (At most two lists on
/// each side, held in place: one is made for every task.)
pub(crate) struct Layers<'a> {
    over: [Option<&'a Vars>; 2],
    shell: &'a Shell,
    under: [Option<&'a Vars>; 2],
}

/// Up to two lists, in order.
fn two<'a>(lists: &[&'a Vars]) -> [Option<&'a Vars>; 2] {
    assert!(lists.len() <= 2, "at most two lists on each side of irun's environment");
    [lists.first().copied(), lists.get(1).copied()]
}

impl<'a> Layers<'a> {
    pub(crate) fn new(over: &[&'a Vars], shell: &'a Shell, under: &[&'a Vars]) -> Self {
        Layers { over: two(over), shell, under: two(under) }
    }

    /// The value of `name`, and whether it is a secret: it comes from irun's environment or a dotenv file, not
    /// from Irun.toml itself.
    pub(crate) fn lookup(&self, name: &str) -> Option<(String, bool)> {
        let find =
            |lists: &[Option<&Vars>; 2]| lists.iter().flatten().find_map(|list| list.get(name)).map(str::to_string);
        find(&self.over)
            .map(|v| (v, false))
            .or_else(|| self.shell.get(name).map(|v| (v.to_string(), true)))
            .or_else(|| find(&self.under).map(|v| (v, true)))
    }
}

/// The values that `${NAME}` took from irun's environment or a dotenv file, anywhere in Irun.toml: the task gets
/// them, but what irun shows (lists, plans, graphs, reports, messages) holds the `${NAME}` reference instead. Values
/// written in Irun.toml (`[env]`, a task's `env`) are not secrets; one that holds a reference to a secret shows the
/// reference where it is used.
#[derive(Debug, Default, Clone)]
pub(crate) struct Secrets {
    /// (value, `${NAME}`), each value once.
    list: Vec<(String, String)>,
    /// The values, found in one pass, the longest where two start at the same place (made on first use).
    finder: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>>,
}

impl Secrets {
    /// `${name}` took `value` from irun's environment or a dotenv file.
    pub(crate) fn record(&mut self, name: &str, value: &str) {
        if value.is_empty() || self.list.iter().any(|(v, _)| v == value) {
            return;
        }
        self.list.push((value.to_string(), format!("${{{name}}}")));
        self.finder = std::sync::OnceLock::new();
    }

    /// Whether no value was taken from irun's environment or a dotenv file.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Hide `other`'s values too.
    pub(crate) fn merge(&mut self, other: &Secrets) {
        for (value, reference) in &other.list {
            let name = reference.trim_start_matches("${").trim_end_matches('}');
            self.record(name, value);
        }
    }

    /// `text` as irun shows it: each secret value replaced by the reference that brought it in.
    pub(crate) fn hide<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let finder = self.finder.get_or_init(|| {
            let values = self.list.iter().map(|(v, _)| v.as_str());
            let kind = aho_corasick::MatchKind::LeftmostLongest;
            (!self.list.is_empty()).then(|| aho_corasick::AhoCorasick::builder().match_kind(kind).build(values).ok())?
        });
        let Some(finder) = finder.as_ref().filter(|f| f.is_match(text)) else {
            return std::borrow::Cow::Borrowed(text);
        };
        let references: Vec<&str> = self.list.iter().map(|(_, r)| r.as_str()).collect();
        std::borrow::Cow::Owned(finder.replace_all(text, &references))
    }
}

/// Why a value could not be expanded, with the byte offset (in the value) of the `${` at fault.
#[derive(Debug, PartialEq)]
pub(crate) enum Problem {
    /// `${NAME}` where no layer defines NAME and there is no default.
    Unknown { name: String, at: usize },
    /// `${` without its `}`, or with a name that is not a variable name.
    Malformed { at: usize },
}

/// The references to a port chosen as a service starts in `text`: `${IRUN_PORT}`, `${IRUN_PORT_<NAME>}` (with or
/// without a default) and `$IRUN_PORT…` without braces, each as (byte offset of the name, name).
pub(crate) fn port_refs(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("IRUN_PORT") {
        let at = from + i;
        let end = text[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(text.len(), |n| at + n);
        let before = &text[..at];
        let escaped = before.ends_with("$${");
        if !escaped && (before.ends_with("${") || (before.ends_with('$') && !before.ends_with("$$"))) {
            out.push((at, &text[at..end]));
        }
        from = end;
    }
    out
}

/// Expand `text`, looking each name up with `lookup` (borrowed as it is when it holds no `${`).
pub(crate) fn expand<'a>(text: &'a str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Cow<'a, str>, Problem> {
    expand_with(text, lookup, Pass::Load { again: false })
}

/// As [`expand`], for a value irun expands again as the task starts (an `env` value): `$${IRUN_...}` stays escaped
/// until then, so that it still writes a literal `${IRUN_...}`.
pub(crate) fn expand_before_start<'a>(
    text: &'a str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'a, str>, Problem> {
    expand_with(text, lookup, Pass::Load { again: true })
}

/// A way to expand a value at load: [`expand`] or [`expand_before_start`].
pub(crate) type Expansion = for<'a> fn(&'a str, &dyn Fn(&str) -> Option<String>) -> Result<Cow<'a, str>, Problem>;

/// Which expansion this is: at load (and whether the value is expanded again as the task starts), or as it starts.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Load { again: bool },
    Start,
}

/// As a task starts: expand the `${IRUN_...}` references that [`expand`] left (in a command run without a shell,
/// nothing else would), from the task's environment. One that is not set, without a default, is left as written.
pub(crate) fn expand_irun(text: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    expand_with(text, &lookup, Pass::Start).map_or_else(|_| text.to_string(), Cow::into_owned)
}

fn expand_with<'a>(
    text: &'a str,
    lookup: &dyn Fn(&str) -> Option<String>,
    pass: Pass,
) -> Result<Cow<'a, str>, Problem> {
    if !text.contains("${") {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    expand_into(&mut out, text, 0, lookup, pass)?;
    Ok(Cow::Owned(out))
}

/// Expand `text` onto `out`. `base` is where `text` starts in the value (a default is expanded on its own, and its
/// faults are reported where they are in the whole value).
fn expand_into(
    out: &mut String,
    text: &str,
    base: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    pass: Pass,
) -> Result<(), Problem> {
    let irun = pass == Pass::Start;
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = offset + i;
        let after = &rest[i..];
        if let Some(escaped) = after.strip_prefix("$${") {
            // Kept for the expansion at start, which undoes it.
            let keep = pass == (Pass::Load { again: true }) && escaped.starts_with("IRUN_");
            out.push_str(if keep { "$${" } else { "${" });
            rest = escaped;
            offset = at + 3;
            continue;
        }
        if !after.starts_with("${") {
            out.push('$');
            rest = &after[1..];
            offset = at + 1;
            continue;
        }
        let reference = closing(after).map(|close| {
            let body = &after[2..close];
            match body.split_once(":-") {
                Some((name, default)) => (close, name, Some(default)),
                None => (close, body, None),
            }
        });
        let Some((close, name, default)) = reference.filter(|(_, name, _)| is_name(name)) else {
            if irun {
                // As a task starts, what is not a reference was a literal `${` (load found no fault in it).
                out.push('$');
                rest = &after[1..];
                offset = at + 1;
                continue;
            }
            return Err(Problem::Malformed { at: base + at });
        };
        // Where the default starts in the whole value: after `${NAME:-`.
        let default_at = base + at + name.len() + 4;
        match default {
            // Left for the other pass, but the references in its default that are this pass's are resolved now.
            Some(d) if name.starts_with("IRUN_") != irun => {
                out.push_str(&after[..name.len() + 4]);
                expand_into(out, d, default_at, lookup, pass)?;
                out.push('}');
            }
            None if name.starts_with("IRUN_") != irun => out.push_str(&after[..=close]),
            // As a shell does: the default is expanded only when it is used.
            _ => match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => expand_into(out, d, default_at, lookup, pass)?,
                (None, None) if irun => out.push_str(&after[..=close]),
                (None, None) => return Err(Problem::Unknown { name: name.to_string(), at: base + at }),
            },
        }
        rest = &after[close + 1..];
        offset = at + close + 1;
    }
    out.push_str(rest);
    Ok(())
}

/// Where the `}` that closes the `${` at the start of `after` is: each `${` inside (a nested default, or a `$${`
/// literal in one) is closed by a `}` of its own first.
fn closing(after: &str) -> Option<usize> {
    let bytes = after.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A shell variable name: a letter or `_`, then letters, digits and `_`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `vars` with each name once: its last value, where its last entry was (in one pass, for dotenv files of any size).
pub(crate) fn last_wins(vars: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(vars.len());
    for (i, (k, _)) in vars.iter().enumerate() {
        last.insert(k, i);
    }
    if last.len() == vars.len() {
        return vars;
    }
    let keep: Vec<bool> = vars.iter().enumerate().map(|(i, (k, _))| last[k.as_str()] == i).collect();
    drop(last);
    vars.into_iter().zip(keep).filter_map(|(kv, keep)| keep.then_some(kv)).collect()
}

/// Why a dotenv file cannot be used.
pub(crate) enum DotenvError {
    Missing,
    /// Why the file cannot be used.
    Unreadable(String),
    /// A line (1-based) that cannot be read, and why.
    Line {
        line: usize,
        why: String,
    },
}

/// The file's variables in the order written.
pub(crate) fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, DotenvError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DotenvError::Missing),
        Err(e) => return Err(DotenvError::Unreadable(e.to_string())),
    };
    let mut out = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => out.push(pair),
            Err(dotenvy::Error::LineParse(line, index)) => return Err(line_error(&text, &line, index)),
            Err(e) => return Err(DotenvError::Unreadable(e.to_string())),
        }
    }
    Ok(out)
}

/// Where in `text` the line dotenvy could not parse is, and why. dotenvy hands back the logical line (physical lines
/// joined while a quote is open) and a byte position in it, not a line number.
fn line_error(text: &str, line: &str, index: usize) -> DotenvError {
    let line_of = |offset: usize| 1 + memchr::memchr_iter(b'\n', &text.as_bytes()[..offset]).count();
    // The file ended inside a quote: `line` is the rest of the file from the line it started on.
    if index >= line.len()
        && text.ends_with(line)
        && let Some((at, quote)) = open_quote(line)
    {
        let line = line_of(text.len() - line.len() + at);
        return DotenvError::Line { line, why: format!("the quote ({quote}) opened here is never closed") };
    }
    // Otherwise the first place, at the start of a line, that reads as `line`.
    let starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
    let Some(start) = starts.into_iter().find(|&s| text[s..].starts_with(line)) else {
        return DotenvError::Unreadable(format!("{:?} cannot be read", line.trim()));
    };
    let at = start + index.min(line.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let shown = text[line_start..].lines().next().unwrap_or_default();
    let column = text[line_start..at].chars().count() + 1;
    DotenvError::Line { line: line_of(at), why: format!("{:?} cannot be read at character {column}", shown.trim()) }
}

/// The byte position and character of the quote still open at the end of `text`, read as dotenvy reads it: `"` and
/// `'` open and close, `\\` escapes the next character, `#` after a space (or first) comments out the line.
fn open_quote(text: &str) -> Option<(usize, char)> {
    let mut open: Option<(usize, char)> = None;
    let mut chars = text.char_indices().peekable();
    let mut after_space = true;
    while let Some((i, c)) = chars.next() {
        match (open, c) {
            (_, '\\') => {
                chars.next();
            }
            (Some((_, q)), c) if c == q => open = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => open = Some((i, c)),
            (None, '#') if after_space => while chars.next_if(|&(_, c)| c != '\n').is_some() {},
            (None, _) => {}
        }
        after_space = c.is_whitespace();
    }
    open
}

#[cfg(test)]
mod tests;
