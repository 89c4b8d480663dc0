//! Creating a process as cheaply as the kernel allows: a vfork-like clone, then exec ([`vfork`]; glibc's
//! `posix_spawn` where that clone is not available) of a program resolved once on the PATH the task sees, in a
//! process group of its own, with an environment built from a copy of irun's taken once, stdin from one
//! `/dev/null` kept open, and stdout and stderr to pipes.
//!
//! What it does not do is decide anything about the process afterwards: see [`crate::exec::supervisor`].

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::libc;

use super::command_line::{Invocation, SHELL};
use super::sys;
use super::vfork::{self, Vfork};

/// Where a process's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// To two pipes, returned to the caller.
    Piped,
    /// To `/dev/null`.
    Discarded,
    /// irun's own (an interactive task that has the terminal).
    Inherited,
}

pub(crate) struct Request<'a> {
    pub(crate) invocation: &'a Invocation,
    pub(crate) cwd: &'a Path,
    /// Added to irun's own environment; a later entry wins over an earlier one with the same name.
    pub(crate) env: &'a [(&'a str, &'a str)],
    pub(crate) output: Output,
    /// irun's own stdin (an interactive task) instead of `/dev/null`.
    pub(crate) stdin_inherited: bool,
    /// The cgroup the process starts in (none: irun's own).
    pub(crate) cgroup: Option<&'a super::cgroup::TaskCgroup>,
    /// Return as soon as the child is started, before its exec, where that can be done (see [`super::vfork`]): how
    /// the exec went (a program that is not one included) is then [`Spawned::exec`]'s to say.
    pub(crate) exec_later: bool,
}

/// A started process: the leader of its own process group, whose id is its pid.
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    /// A pidfd for the child, when the kernel made one with it.
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    /// Started before its exec (`exec_later`): its way there.
    pub(crate) exec: Option<vfork::Exec>,
}

/// Why a process could not be started, and which program it was.
#[derive(Debug)]
pub(crate) struct SpawnError {
    pub(crate) program: String,
    pub(crate) error: io::Error,
}

/// What starting a process needs that is taken once for the run: irun's environment and working directory (before
/// anything could change them), `/dev/null`, programs found on PATH lately, and the cheap clone's stack.
pub(crate) struct Spawner {
    /// irun's environment when the run started, each entry ready for `execve`; shared with every [`Environment`]
    /// made from it, which points into it.
    base_env: Arc<BaseEnv>,
    /// irun's working directory: a task that runs there needs no `chdir`.
    here: Option<PathBuf>,
    /// `/dev/null`, opened once for reading and writing (close-on-exec; each child gets its own copy by `dup2`).
    null: io::Result<OwnedFd>,
    resolved: Mutex<Resolved>,
    /// Programs looked at lately: whether the kernel executes each as it is (see [`Spawner::execs_directly`]).
    direct: Mutex<HashMap<PathBuf, (bool, Instant)>>,
    vfork: Vfork,
}

impl Spawner {
    /// Take irun's environment and working directory now, and give SIGCHLD its default disposition.
    pub(crate) fn new() -> Spawner {
        sys::default_sigchld();
        let base_env = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut entry = k.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                Some((k, CString::new(entry).ok()?))
            })
            .collect::<Vec<_>>()
            .into();
        Spawner {
            base_env,
            here: std::env::current_dir().ok(),
            null: std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map(OwnedFd::from),
            resolved: Mutex::new(HashMap::new()),
            direct: Mutex::new(HashMap::new()),
            vfork: Vfork::default(),
        }
    }

    pub(crate) fn spawn(&self, req: &Request<'_>) -> Result<Spawned, SpawnError> {
        let fail = |error: io::Error| SpawnError { program: req.invocation.program.clone(), error };
        let path_var = req.env.iter().rev().find(|(k, _)| *k == "PATH").map(|(_, v)| OsStr::new(*v));
        let program = self.resolve(&req.invocation.program, path_var, req.cwd).map_err(fail)?;
        // A shell sets PWD to the directory it starts in; a program started directly gets it from irun, so it is
        // set here when the task runs elsewhere (before the task's own entries, which may still set it).
        let moved: Vec<(&str, &str)>;
        let env = match req.cwd.to_str() {
            Some(dir) if self.here.as_deref() != Some(req.cwd) => {
                moved = [("PWD", dir)].into_iter().chain(req.env.iter().copied()).collect();
                &moved
            }
            _ => req.env,
        };
        let env = Arc::new(Environment::new(&self.base_env, env).map_err(fail)?);
        let argv = Arc::new(CStrings::new(req.invocation.argv.iter().map(String::as_str)).map_err(fail)?);
        match self.launch(&program, &argv, &env, req) {
            // A file without `#!` that is executable: run it with the shell, as execvp and a shell would. (Only
            // `posix_spawn` says so: the cheap clone's child falls back to the shell itself, see `vfork::Target`.)
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
                let script = program.as_os_str().to_str().unwrap_or_default();
                let args = ["sh", script].into_iter().chain(req.invocation.argv[1..].iter().map(String::as_str));
                let argv = Arc::new(CStrings::new(args).map_err(fail)?);
                self.launch(Path::new(SHELL), &argv, &env, req).map_err(fail)
            }
            other => other.map_err(fail),
        }
    }

    fn launch(
        &self,
        program: &Path,
        argv: &Arc<CStrings>,
        env: &Arc<Environment>,
        req: &Request<'_>,
    ) -> io::Result<Spawned> {
        let target_path = program;
        let program = CString::new(program.as_os_str().as_bytes()).map_err(|_| invalid("a NUL byte in the program"))?;
        let cwd = match self.here.as_deref() {
            Some(here) if here == req.cwd => None,
            _ => Some(CString::new(req.cwd.as_os_str().as_bytes()).map_err(|_| invalid("a NUL byte in `cwd`"))?),
        };
        let null = self.null.as_ref().map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/null: {e}")))?;
        let (out, err) = match req.output {
            Output::Piped => (Some(sys::pipe()?), Some(sys::pipe()?)),
            Output::Discarded | Output::Inherited => (None, None),
        };
        let (default_out, default_err) = match req.output {
            Output::Inherited => (1, 2),
            _ => (null.as_raw_fd(), null.as_raw_fd()),
        };
        let out_fd = out.as_ref().map_or(default_out, |(_, w)| w.as_raw_fd());
        let err_fd = err.as_ref().map_or(default_err, |(_, w)| w.as_raw_fd());
        let stdin = if req.stdin_inherited { 0 } else { null.as_raw_fd() };
        let stdio = [stdin, out_fd, err_fd];
        let shell = ShellArgv::new(&program, argv);
        let target = vfork::Target {
            program: program.as_ptr(),
            argv: argv.ptrs.as_ptr(),
            envp: env.ptrs.as_ptr(),
            cwd: cwd.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
            shell: shell.0.as_ptr(),
        };
        // Where irun need not wait for the exec, the child gets what the target points into (heap memory: it stays
        // where it is as it moves), until it is past its exec: the environment holds irun's, which it points into.
        let later = req.exec_later && self.execs_directly(target_path);
        let mut kept =
            if later { Some(vfork::Keep::new((argv.clone(), env.clone(), program, cwd, shell))) } else { None };
        let cgroup = req.cgroup.map(|c| vfork::Cgroup { handle: c.handle().as_raw_fd(), procs: c.procs().as_raw_fd() });
        let started = match vfork::spawn(&self.vfork, target, stdio, cgroup, &mut kept) {
            Ok(started) => started,
            Err(Some(e)) => return Err(e),
            Err(None) => {
                // SAFETY: the target's strings are alive: owned here, or in `kept`, which the clone left here.
                let (program, cwd) = unsafe {
                    (CStr::from_ptr(target.program), (!target.cwd.is_null()).then(|| CStr::from_ptr(target.cwd)))
                };
                let pid = sys::posix_spawn(program, target.argv, target.envp, stdio, cwd)?;
                // posix_spawn has no way to start a child in a cgroup: it is moved in now (what it started in
                // the meantime, if anything, is left to its process group).
                if let Some(c) = req.cgroup {
                    let _ = c.join(pid);
                }
                vfork::Started { pid, pidfd: None, exec: None }
            }
        };
        drop(kept);
        let vfork::Started { pid, pidfd, exec } = started;
        // The writing ends now belong to the child; dropping them here closes irun's copies.
        Ok(Spawned { pid, pidfd, stdout: out.map(|(r, _)| r), stderr: err.map(|(r, _)| r), exec })
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// NUL-terminated strings and the null-terminated array of pointers to them that `execve` wants.
struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into the strings it owns, which are never changed: reading them from any thread is sound.
unsafe impl Send for CStrings {}
// SAFETY: as above.
unsafe impl Sync for CStrings {}

impl CStrings {
    fn new<'a>(items: impl Iterator<Item = &'a str>) -> io::Result<CStrings> {
        let owned =
            items.map(CString::new).collect::<Result<Vec<_>, _>>().map_err(|_| invalid("a NUL byte in `cmd`"))?;
        let mut ptrs: Vec<_> = owned.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(CStrings { _owned: owned, ptrs })
    }
}

/// irun's environment as it was when the run started: each name, and its `NAME=value` entry for `execve`.
type BaseEnv = Vec<(OsString, CString)>;

/// irun's environment with the task's entries on top: the inherited entries are shared, not copied (it holds them,
/// so whoever keeps it keeps all its pointers point to, even past the spawner).
struct Environment {
    _own: Vec<CString>,
    _base: Arc<BaseEnv>,
    ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into the strings it owns, or into irun's environment, which it holds; none of them is
// ever changed: reading them from any thread is sound.
unsafe impl Send for Environment {}
// SAFETY: as above.
unsafe impl Sync for Environment {}

impl Environment {
    fn new(base: &Arc<BaseEnv>, env: &[(&str, &str)]) -> io::Result<Environment> {
        // The last entry for a name wins.
        let mut own: Vec<CString> = Vec::with_capacity(env.len());
        let mut names: Vec<&str> = Vec::with_capacity(env.len());
        for (k, v) in env.iter().rev() {
            if names.contains(k) {
                continue;
            }
            names.push(k);
            own.push(CString::new(format!("{k}={v}")).map_err(|_| invalid("a NUL byte in `env`"))?);
        }
        let mut ptrs = Vec::with_capacity(base.len() + own.len() + 1);
        for (k, entry) in base.iter() {
            if !names.iter().any(|n| n.as_bytes() == k.as_bytes()) {
                ptrs.push(entry.as_ptr());
            }
        }
        ptrs.extend(own.iter().rev().map(|c| c.as_ptr()));
        ptrs.push(std::ptr::null());
        Ok(Environment { _own: own, _base: base.clone(), ptrs })
    }
}

/// `sh PROGRAM ARGS...`, null-terminated: what the cheap clone's child execs as `/bin/sh` when the kernel cannot
/// execute the program itself (see [`vfork::Target`]). Pointers into a static string, the program's path and the
/// arguments' strings, which whoever keeps this keeps beside it (the caller, until the child is past its exec).
struct ShellArgv(Vec<*const libc::c_char>);

// SAFETY: the pointers point into strings that are never changed (see above): reading them from any thread is sound.
unsafe impl Send for ShellArgv {}
// SAFETY: as above.
unsafe impl Sync for ShellArgv {}

impl ShellArgv {
    fn new(program: &CStr, argv: &CStrings) -> ShellArgv {
        // The arguments after the program's name, and their terminating null.
        let args = if argv.ptrs.len() > 1 { &argv.ptrs[1..] } else { &[std::ptr::null()][..] };
        ShellArgv([c"sh".as_ptr(), program.as_ptr()].into_iter().chain(args.iter().copied()).collect())
    }
}

/// How long a program found on PATH is remembered: long enough that a graph of thousands of tasks looks each
/// program up a handful of times, short enough that one installed during a long watch session is found.
const RESOLVED_FOR: Duration = Duration::from_secs(2);

type Resolved = HashMap<(String, OsString), (PathBuf, Instant)>;

impl Spawner {
    /// The file to execute for `program`, as a shell would find it: a name with a `/` is a path (relative to the task's
    /// directory); any other name is looked up in PATH's folders, in order (an empty entry is the task's directory).
    /// `path` is the task's PATH if it sets one; irun's otherwise.
    pub(crate) fn resolve(&self, program: &str, path: Option<&OsStr>, cwd: &Path) -> io::Result<PathBuf> {
        if program.contains('/') {
            return Ok(cwd.join(program));
        }
        if program.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "an empty program name"));
        }
        let inherited =
            self.base_env.iter().find(|(k, _)| k == "PATH").map(|(_, e)| OsStr::from_bytes(&e.as_bytes()[5..]));
        let path = path.or(inherited).unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
        // Relative entries depend on the task's directory: not remembered.
        let cacheable = path.as_bytes().split(|&b| b == b':').all(|d| d.starts_with(b"/"));
        let key = (program.to_string(), path.to_os_string());
        if cacheable {
            let cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((found, at)) = cache.get(&key)
                && at.elapsed() < RESOLVED_FOR
            {
                return Ok(found.clone());
            }
        }
        let mut denied = None;
        for dir in path.as_bytes().split(|&b| b == b':') {
            let dir = if dir.is_empty() { cwd.to_path_buf() } else { cwd.join(OsStr::from_bytes(dir)) };
            let candidate = dir.join(program);
            match std::fs::metadata(&candidate) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                    if cacheable {
                        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
                        cache.insert(key, (candidate.clone(), Instant::now()));
                    }
                    return Ok(candidate);
                }
                Ok(m) if m.is_file() => denied = Some(candidate),
                _ => {}
            }
        }
        Err(match denied {
            Some(file) => {
                io::Error::new(io::ErrorKind::PermissionDenied, format!("{} is not executable", file.display()))
            }
            None => io::Error::new(io::ErrorKind::NotFound, "command not found on PATH"),
        })
    }
}

impl Spawner {
    /// Whether the kernel executes `program` as it is: an ELF binary, or a script whose `#!` interpreter is an
    /// executable file. Only such a program is started without waiting for its exec (`Request::exec_later`); any
    /// other starts as with `posix_spawn`. Remembered for as long as a program found on PATH is. A verdict that is
    /// wrong by then (the file was rewritten), or for a file the kernel refuses after all (a `#!` interpreter that is
    /// itself a script without one, a binary for another system), changes only that: the child runs what the kernel
    /// refuses with the shell either way (see [`vfork::Target`]).
    fn execs_directly(&self, program: &Path) -> bool {
        let mut known = self.direct.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(direct, at)) = known.get(program)
            && at.elapsed() < RESOLVED_FOR
        {
            return direct;
        }
        let direct = executes_directly(program);
        known.insert(program.to_path_buf(), (direct, Instant::now()));
        direct
    }
}

/// See [`Spawner::execs_directly`].
fn executes_directly(program: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 256];
    let Ok(n) = std::fs::File::open(program).and_then(|mut f| f.read(&mut head)) else { return false };
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        return true;
    }
    let Some(line) = head.strip_prefix(b"#!") else { return false };
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let Some(interpreter) = line.split(|&b| b == b' ' || b == b'\t').find(|w| !w.is_empty()) else { return false };
    std::fs::metadata(OsStr::from_bytes(interpreter)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests;
