//! The model in a compact binary form, for [`super::snapshot`]: numbers and lengths as LEB128 varints, strings as
//! their bytes, enums as a tag byte. Reading trusts nothing: a length past the end, an unknown tag, a string that is
//! not UTF-8, a regex that does not compile or a dep naming no task of that name make it `None`, never a panic or an
//! allocation larger than the bytes given.
//!
//! Every struct is taken apart and put together field by field, so a field added to the model does not compile
//! until it is stored here too.

use std::ffi::OsString;
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::model::{
    CacheSettings, Check, Cmd, HttpUrl, Kind, Named, OutputPolicy, Pattern, Patterns, Probe, Process, Restart, Service,
    Task,
};
use super::{Config, TaskId};
use crate::diagnostic::Source;

/// Where stored bytes go, and the project's root (a task's `cwd` is usually the root itself, stored as one byte).
pub(super) struct Writer<'a> {
    pub(super) out: Vec<u8>,
    root: &'a Path,
}

/// The bytes left to read.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    /// Shared by every task that runs in the root: one allocation, not one per task.
    root: Arc<Path>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(root: &'a Path) -> Writer<'a> {
        Writer { out: Vec::new(), root }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    fn tag(&mut self, tag: u8) {
        self.out.push(tag);
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], root: &Path) -> Reader<'a> {
        Reader { bytes, root: Arc::from(root) }
    }

    /// What is left.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    fn tag(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.tag()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A length: no more than the bytes left, as everything stored takes at least one byte.
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok().filter(|&n| n <= self.bytes.len())
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        let (b, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(b)
    }
}

/// A value that can be stored and read back.
pub(super) trait Stored: Sized {
    fn put(&self, w: &mut Writer);
    fn load(r: &mut Reader) -> Option<Self>;
}

impl Stored for u64 {
    fn put(&self, w: &mut Writer) {
        w.varint(*self);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        r.varint()
    }
}

/// Numbers narrower than 64 bits, stored as varints and checked to fit when read.
macro_rules! narrow {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            fn put(&self, w: &mut Writer) {
                w.varint(*self as u64);
            }
            fn load(r: &mut Reader) -> Option<Self> {
                <$t>::try_from(r.varint()?).ok()
            }
        }
    )*};
}
narrow!(u16, u32, usize);

impl Stored for u128 {
    fn put(&self, w: &mut Writer) {
        w.out.extend_from_slice(&self.to_le_bytes());
    }
    fn load(r: &mut Reader) -> Option<Self> {
        let (head, rest) = r.bytes.split_first_chunk::<16>()?;
        r.bytes = rest;
        Some(u128::from_le_bytes(*head))
    }
}

impl Stored for bool {
    fn put(&self, w: &mut Writer) {
        w.tag(u8::from(*self));
    }
    fn load(r: &mut Reader) -> Option<Self> {
        match r.tag()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl Stored for String {
    fn put(&self, w: &mut Writer) {
        w.bytes(self.as_bytes());
    }
    fn load(r: &mut Reader) -> Option<Self> {
        std::str::from_utf8(r.bytes()?).ok().map(str::to_string)
    }
}

impl Stored for PathBuf {
    fn put(&self, w: &mut Writer) {
        w.bytes(self.as_os_str().as_bytes());
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Some(PathBuf::from(OsString::from_vec(r.bytes()?.to_vec())))
    }
}

impl<T: Stored> Stored for Option<T> {
    fn put(&self, w: &mut Writer) {
        match self {
            None => w.tag(0),
            Some(v) => {
                w.tag(1);
                v.put(w);
            }
        }
    }
    fn load(r: &mut Reader) -> Option<Self> {
        match r.tag()? {
            0 => Some(None),
            1 => Some(Some(T::load(r)?)),
            _ => None,
        }
    }
}

impl<T: Stored> Stored for Vec<T> {
    fn put(&self, w: &mut Writer) {
        w.varint(self.len() as u64);
        for v in self {
            v.put(w);
        }
    }
    fn load(r: &mut Reader) -> Option<Self> {
        let n = r.len()?;
        // Reserved whole up to 65,536 items (grown as read, 10,000 tasks would take room for 16,384). A count is at
        // most the bytes left, but a damaged one read before the hash check (the header's) could ask for far more
        // than the file holds: room reserved and never filled is never touched, and is bounded.
        let mut out = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            out.push(T::load(r)?);
        }
        Some(out)
    }
}

impl Stored for Patterns {
    fn put(&self, w: &mut Writer) {
        w.varint(self.len() as u64);
        for p in self.iter() {
            p.put(w);
        }
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Vec::<String>::load(r).map(Patterns::from)
    }
}

impl<A: Stored, B: Stored> Stored for (A, B) {
    fn put(&self, w: &mut Writer) {
        self.0.put(w);
        self.1.put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Some((A::load(r)?, B::load(r)?))
    }
}

impl Stored for Range<usize> {
    fn put(&self, w: &mut Writer) {
        self.start.put(w);
        self.end.put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Some(usize::load(r)?..usize::load(r)?)
    }
}

impl Stored for Duration {
    fn put(&self, w: &mut Writer) {
        self.as_secs().put(w);
        self.subsec_nanos().put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        let (secs, nanos) = (u64::load(r)?, u32::load(r)?);
        (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
    }
}

impl Stored for Signal {
    fn put(&self, w: &mut Writer) {
        (*self as i32 as u32).put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Signal::try_from(i32::try_from(u32::load(r)?).ok()?).ok()
    }
}

impl Stored for TaskId {
    fn put(&self, w: &mut Writer) {
        (self.index() as u32).put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Some(TaskId::new(u32::load(r)? as usize))
    }
}

impl Stored for Named {
    fn put(&self, w: &mut Writer) {
        let Named { span, id } = self;
        span.put(w);
        id.put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Some(Named { span: Range::load(r)?, id: TaskId::load(r)? })
    }
}

impl Stored for Task {
    fn put(&self, w: &mut Writer) {
        let Task { name, span, description, deps, kind } = self;
        name.put(w);
        span.put(w);
        description.put(w);
        deps.put(w);
        match kind {
            Kind::Task { process, interactive, junit } => {
                w.tag(0);
                process.put(w);
                interactive.put(w);
                w.varint(junit.len() as u64);
                for p in junit {
                    p.put(w);
                }
            }
            Kind::Service(service) => {
                w.tag(1);
                service.put(w);
            }
            Kind::Group { sources } => {
                w.tag(2);
                sources.put(w);
            }
        }
    }
    fn load(r: &mut Reader) -> Option<Self> {
        let (name, span, description, deps) = (String::load(r)?, Range::load(r)?, Option::load(r)?, Vec::load(r)?);
        let kind = match r.tag()? {
            0 => Kind::Task {
                process: Process::load(r)?,
                interactive: bool::load(r)?,
                junit: Vec::<String>::load(r)?.into(),
            },
            1 => Kind::Service(Box::new(Service::load(r)?)),
            2 => Kind::Group { sources: Vec::load(r)? },
            _ => return None,
        };
        Some(Task { name, span, description, deps, kind })
    }
}

impl Stored for Process {
    fn put(&self, w: &mut Writer) {
        let Process {
            cmd,
            passed,
            env,
            cwd,
            timeout,
            sources,
            outputs,
            stop_signal,
            stop_timeout,
            always_run,
            cache,
            output,
            color,
        } = self;
        cmd.put(w);
        passed.put(w);
        env.put(w);
        // Most tasks run in the root itself: stored as `None`.
        if **cwd == *w.root {
            w.tag(0);
        } else {
            w.tag(1);
            cwd.to_path_buf().put(w);
        }
        timeout.put(w);
        sources.put(w);
        outputs.put(w);
        stop_signal.put(w);
        stop_timeout.put(w);
        always_run.put(w);
        let CacheSettings { enabled, forced, env, output: cache_output } = cache;
        (*enabled, *forced).put(w);
        env.put(w);
        cache_output.put(w);
        (*output == OutputPolicy::OnFailure).put(w);
        color.put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        let (cmd, passed, env) = (Cmd::load(r)?, usize::load(r)?, Vec::load(r)?);
        let cwd = Option::<PathBuf>::load(r)?.map_or_else(|| r.root.clone(), Arc::from);
        let (timeout, sources, outputs) = (Option::load(r)?, Patterns::load(r)?, Patterns::load(r)?);
        let (stop_signal, stop_timeout, always_run) = (Signal::load(r)?, Duration::load(r)?, bool::load(r)?);
        let (enabled, forced) = <(bool, bool)>::load(r)?;
        let cache = CacheSettings { enabled, forced, env: Vec::load(r)?, output: bool::load(r)? };
        let output = if bool::load(r)? { OutputPolicy::OnFailure } else { OutputPolicy::Live };
        let color = bool::load(r)?;
        Some(Process {
            cmd,
            passed,
            env,
            cwd,
            timeout,
            sources,
            outputs,
            stop_signal,
            stop_timeout,
            always_run,
            cache,
            output,
            color,
        })
    }
}

impl Stored for Cmd {
    fn put(&self, w: &mut Writer) {
        match self {
            Cmd::Shell(s) => {
                w.tag(0);
                s.put(w);
            }
            Cmd::Argv(argv) => {
                w.tag(1);
                argv.put(w);
            }
        }
    }
    fn load(r: &mut Reader) -> Option<Self> {
        match r.tag()? {
            0 => Some(Cmd::Shell(String::load(r)?)),
            1 => Some(Cmd::Argv(Vec::load(r)?)),
            _ => None,
        }
    }
}

impl Stored for Service {
    fn put(&self, w: &mut Writer) {
        let Service { process, ready, reuse, restart, max_restarts, auto_port } = self;
        process.put(w);
        ready.put(w);
        reuse.put(w);
        w.tag(match restart {
            Restart::No => 0,
            Restart::OnFailure => 1,
            Restart::Always => 2,
        });
        max_restarts.put(w);
        auto_port.put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        let (process, ready, reuse) = (Process::load(r)?, Option::load(r)?, bool::load(r)?);
        let restart = match r.tag()? {
            0 => Restart::No,
            1 => Restart::OnFailure,
            2 => Restart::Always,
            _ => return None,
        };
        Some(Service { process, ready, reuse, restart, max_restarts: u32::load(r)?, auto_port: bool::load(r)? })
    }
}

impl Stored for Probe {
    fn put(&self, w: &mut Writer) {
        let Probe { check, interval, timeout } = self;
        check.put(w);
        interval.put(w);
        timeout.put(w);
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Some(Probe { check: Check::load(r)?, interval: Duration::load(r)?, timeout: Duration::load(r)? })
    }
}

/// The keys a [`Check::Later`] may hold, by the number stored.
const LATER_KEYS: [&str; 3] = ["tcp", "http", "log"];

impl Stored for Check {
    fn put(&self, w: &mut Writer) {
        match self {
            Check::Tcp { host, port } => {
                w.tag(0);
                host.put(w);
                port.put(w);
            }
            Check::Http { url: HttpUrl { raw, host, port, path }, status } => {
                w.tag(1);
                raw.put(w);
                host.put(w);
                port.put(w);
                path.put(w);
                status.put(w);
            }
            Check::Exec(cmd) => {
                w.tag(2);
                cmd.put(w);
            }
            Check::Log(Pattern(re)) => {
                w.tag(3);
                re.as_str().to_string().put(w);
            }
            Check::AutoTcp => w.tag(4),
            Check::Later { key, text, status } => {
                w.tag(5);
                (LATER_KEYS.iter().position(|k| k == key).expect("a probe key") as u16).put(w);
                text.put(w);
                status.put(w);
            }
        }
    }
    fn load(r: &mut Reader) -> Option<Self> {
        Some(match r.tag()? {
            0 => Check::Tcp { host: Option::load(r)?, port: u16::load(r)? },
            1 => {
                let (raw, host) = (String::load(r)?, String::load(r)?);
                let url = HttpUrl { raw, host, port: u16::load(r)?, path: String::load(r)? };
                Check::Http { url, status: Option::load(r)? }
            }
            2 => Check::Exec(Cmd::load(r)?),
            3 => Check::Log(Pattern(regex::Regex::new(&String::load(r)?).ok()?)),
            4 => Check::AutoTcp,
            5 => {
                let key = LATER_KEYS.get(usize::from(u16::load(r)?))?;
                Check::Later { key, text: String::load(r)?, status: Option::load(r)? }
            }
            _ => return None,
        })
    }
}

/// `config` as bytes: what Irun.toml declares (not its text, its place or its secrets, which the reader has).
pub(super) fn encode(config: &Config, w: &mut Writer) {
    config.default.put(w);
    config.jobs.put(w);
    w.varint(config.tasks.len() as u64);
    for task in config.tasks.iter() {
        task.put(w);
    }
}

/// The configuration `encode` stored, for Irun.toml's `source` at `root`; `None` unless every byte reads back and
/// every dep names a task there is.
pub(super) fn decode(r: &mut Reader, source: Source) -> Option<Config> {
    let (default, jobs, tasks): (Option<Vec<Named>>, Option<usize>, Vec<Task>) =
        (Option::load(r)?, Option::load(r)?, Vec::load(r)?);
    if !r.bytes.is_empty() {
        return None;
    }
    let names = |list: &[Named]| list.iter().all(|d| d.id.index() < tasks.len());
    if !tasks.iter().all(|t| names(&t.deps)) || !default.as_deref().is_none_or(names) {
        return None;
    }
    Some(Config::new(source, r.root.to_path_buf(), default, jobs, tasks))
}
