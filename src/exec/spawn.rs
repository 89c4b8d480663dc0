//! Creating a process as cheaply as the kernel allows: a vfork-like clone, then exec ([`vfork`]; glibc's
//! `posix_spawn` where that clone is not available) of a program resolved once on the PATH the task sees, in a
//! process group of its own, with an environment built from a copy of irun's taken once, stdin from one
//! `/dev/null` kept open, and stdout and stderr to pipes.
//!
//! What it does not do is decide anything about the process afterwards: see [`crate::exec::supervisor`].

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use nix::libc;

use crate::exec::command_line::{Invocation, SHELL};

/// Where a process's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To two pipes, returned to the caller.
    Piped,
    /// To `/dev/null`.
    Discarded,
}

pub struct Request<'a> {
    pub invocation: &'a Invocation,
    pub cwd: &'a Path,
    /// Added to irun's own environment; a later entry wins over an earlier one with the same name.
    pub env: &'a [(&'a str, &'a str)],
    pub output: Output,
}

/// A started process: the leader of its own process group, whose id is its pid.
pub struct Spawned {
    pub pid: i32,
    /// A pidfd for the child, when the kernel made one with it.
    pub pidfd: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Why a process could not be started, and which program it was.
#[derive(Debug)]
pub struct SpawnError {
    pub program: String,
    pub error: io::Error,
}

/// irun's environment when the run started, each entry ready for `execve`.
static BASE_ENV: LazyLock<Vec<(OsString, CString)>> = LazyLock::new(|| {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            Some((k, CString::new(entry).ok()?))
        })
        .collect()
});

/// irun's working directory: a task that runs there needs no `chdir`.
static HERE: LazyLock<Option<PathBuf>> = LazyLock::new(|| std::env::current_dir().ok());

/// `/dev/null`, opened once for reading and writing (close-on-exec; each child gets its own copy by `dup2`).
static NULL: LazyLock<io::Result<OwnedFd>> =
    LazyLock::new(|| std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map(OwnedFd::from));

/// Take irun's environment and working directory now, before anything could change them.
pub fn prepare() {
    // Inherited as ignored, SIGCHLD would make the kernel reap irun's children (and its tasks' children) itself:
    // waiting for them would fail. Its default is what every program expects.
    // SAFETY: setting a disposition to SIG_DFL runs no code in signal context.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    LazyLock::force(&BASE_ENV);
    LazyLock::force(&HERE);
    let _ = LazyLock::force(&NULL);
}

pub fn spawn(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    let fail = |error: io::Error| SpawnError { program: req.invocation.program.clone(), error };
    let path_var = req.env.iter().rev().find(|(k, _)| *k == "PATH").map(|(_, v)| OsStr::new(*v));
    let program = resolve(&req.invocation.program, path_var, req.cwd).map_err(fail)?;
    // A shell sets PWD to the directory it starts in; a program started directly gets it from irun, so it is set
    // here when the task runs elsewhere (before the task's own entries, which may still set it).
    let moved: Vec<(&str, &str)>;
    let env = match req.cwd.to_str() {
        Some(dir) if HERE.as_deref() != Some(req.cwd) => {
            moved = [("PWD", dir)].into_iter().chain(req.env.iter().copied()).collect();
            &moved
        }
        _ => req.env,
    };
    let env = Environment::new(env).map_err(fail)?;
    let argv = CStrings::new(req.invocation.argv.iter().map(String::as_str)).map_err(fail)?;
    match launch(&program, &argv, &env, req) {
        // A file without `#!` that is executable: run it with the shell, as execvp and a shell would.
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            let script = program.as_os_str().to_str().unwrap_or_default();
            let args = ["sh", script].into_iter().chain(req.invocation.argv[1..].iter().map(String::as_str));
            let argv = CStrings::new(args).map_err(fail)?;
            launch(Path::new(SHELL), &argv, &env, req).map_err(fail)
        }
        other => other.map_err(fail),
    }
}

fn launch(program: &Path, argv: &CStrings, env: &Environment, req: &Request<'_>) -> io::Result<Spawned> {
    let program = CString::new(program.as_os_str().as_bytes()).map_err(|_| invalid("a NUL byte in the program"))?;
    let cwd = match HERE.as_deref() {
        Some(here) if here == req.cwd => None,
        _ => Some(CString::new(req.cwd.as_os_str().as_bytes()).map_err(|_| invalid("a NUL byte in `cwd`"))?),
    };
    let null = NULL.as_ref().map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/null: {e}")))?;
    let (out, err) = match req.output {
        Output::Piped => (Some(pipe()?), Some(pipe()?)),
        Output::Discarded => (None, None),
    };
    let out_fd = out.as_ref().map_or(null.as_raw_fd(), |(_, w)| w.as_raw_fd());
    let err_fd = err.as_ref().map_or(null.as_raw_fd(), |(_, w)| w.as_raw_fd());
    let stdio = [null.as_raw_fd(), out_fd, err_fd];
    let (pid, pidfd) = match super::vfork::spawn(&program, argv.ptrs.as_ptr(), env.ptrs.as_ptr(), stdio, cwd.as_deref())
    {
        Ok(started) => started,
        Err(Some(e)) => return Err(e),
        Err(None) => (posix_spawn(&program, argv, env, stdio, cwd.as_deref())?, None),
    };
    // The writing ends now belong to the child; dropping them here closes irun's copies.
    Ok(Spawned { pid, pidfd, stdout: out.map(|(r, _)| r), stderr: err.map(|(r, _)| r) })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// A pipe, close-on-exec (the child's copy is made by `dup2`, which clears it). Both ends are blocking: the writing
/// end must be (a child's non-blocking stdout makes its writes fail with EAGAIN when the pipe is full), and the
/// reading end is made non-blocking only if it is read while the task runs (see [`crate::exec::output`]): pipe2 cannot
/// set the flag on one end only.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// NUL-terminated strings and the null-terminated array of pointers to them that `execve` wants.
struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CStrings {
    fn new<'a>(items: impl Iterator<Item = &'a str>) -> io::Result<CStrings> {
        let owned =
            items.map(CString::new).collect::<Result<Vec<_>, _>>().map_err(|_| invalid("a NUL byte in `cmd`"))?;
        let mut ptrs: Vec<_> = owned.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(CStrings { _owned: owned, ptrs })
    }
}

/// irun's environment with the task's entries on top: the inherited entries are shared, not copied.
struct Environment {
    _own: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl Environment {
    fn new(env: &[(&str, &str)]) -> io::Result<Environment> {
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
        let mut ptrs = Vec::with_capacity(BASE_ENV.len() + own.len() + 1);
        for (k, entry) in BASE_ENV.iter() {
            if !names.iter().any(|n| n.as_bytes() == k.as_bytes()) {
                ptrs.push(entry.as_ptr());
            }
        }
        ptrs.extend(own.iter().rev().map(|c| c.as_ptr()));
        ptrs.push(std::ptr::null());
        Ok(Environment { _own: own, ptrs })
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// Where [`vfork::spawn`] cannot be used: glibc's `posix_spawn`, to the same effect.
fn posix_spawn(
    program: &std::ffi::CStr,
    argv: &CStrings,
    env: &Environment,
    stdio: [RawFd; 3],
    cwd: Option<&std::ffi::CStr>,
) -> io::Result<i32> {
    // SAFETY: the attribute and file-action objects are initialised before use and destroyed on every path; every
    // pointer passed (program, argv, envp, cwd) points into values that outlive the call, and argv/envp are
    // null-terminated. posix_spawn keeps nothing it is given after it returns.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(e);
        }
        let result = (|| {
            for (target, fd) in stdio.into_iter().enumerate() {
                check(libc::posix_spawn_file_actions_adddup2(&mut actions, fd, target as libc::c_int))?;
            }
            if let Some(dir) = cwd {
                check(libc::posix_spawn_file_actions_addchdir_np(&mut actions, dir.as_ptr()))?;
            }
            // Its own process group (0: its pid); no blocked signals; SIGPIPE back to its default (Rust ignores it),
            // and SIGCHLD too.
            let flags = libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            check(libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short))?;
            check(libc::posix_spawnattr_setpgroup(&mut attr, 0))?;
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::posix_spawnattr_setsigmask(&mut attr, &set))?;
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            check(libc::posix_spawnattr_setsigdefault(&mut attr, &set))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                program.as_ptr(),
                &actions,
                &attr,
                argv.ptrs.as_ptr() as *const *mut libc::c_char,
                env.ptrs.as_ptr() as *const *mut libc::c_char,
            ))?;
            Ok(pid)
        })();
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        result
    }
}

/// How long a program found on PATH is remembered: long enough that a graph of thousands of tasks looks each
/// program up a handful of times, short enough that one installed during a long watch session is found.
const RESOLVED_FOR: Duration = Duration::from_secs(2);

type Resolved = HashMap<(String, OsString), (PathBuf, Instant)>;

static RESOLVED: LazyLock<Mutex<Resolved>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The file to execute for `program`, as a shell would find it: a name with a `/` is a path (relative to the task's
/// directory); any other name is looked up in PATH's folders, in order (an empty entry is the task's directory).
/// `path` is the task's PATH if it sets one; irun's otherwise.
pub fn resolve(program: &str, path: Option<&OsStr>, cwd: &Path) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(cwd.join(program));
    }
    if program.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "an empty program name"));
    }
    let inherited = BASE_ENV.iter().find(|(k, _)| k == "PATH").map(|(_, e)| OsStr::from_bytes(&e.as_bytes()[5..]));
    let path = path.or(inherited).unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    // Relative entries depend on the task's directory: not remembered.
    let cacheable = path.as_bytes().split(|&b| b == b':').all(|d| d.starts_with(b"/"));
    let key = (program.to_string(), path.to_os_string());
    if cacheable {
        let cache = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((found, at)) = cache.get(&key) {
            if at.elapsed() < RESOLVED_FOR {
                return Ok(found.clone());
            }
        }
    }
    let mut denied = None;
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { cwd.to_path_buf() } else { cwd.join(OsStr::from_bytes(dir)) };
        let candidate = dir.join(program);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                if cacheable {
                    let mut cache = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
                    cache.insert(key, (candidate.clone(), Instant::now()));
                }
                return Ok(candidate);
            }
            Ok(m) if m.is_file() => denied = Some(candidate),
            _ => {}
        }
    }
    Err(match denied {
        Some(file) => io::Error::new(io::ErrorKind::PermissionDenied, format!("{} is not executable", file.display())),
        None => io::Error::new(io::ErrorKind::NotFound, "command not found on PATH"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_given_path_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("tool"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(d.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(a.join("plain"), "").unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(resolve("tool", Some(&path), dir.path()).unwrap(), a.join("tool"));
        let err = resolve("plain", Some(&path), dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let err = resolve("no-such-tool", Some(&path), dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // A path is taken as it is, relative to the task's directory.
        assert_eq!(resolve("./x", Some(&path), dir.path()).unwrap(), dir.path().join("./x"));
    }

    /// Run `script` with /bin/sh through the posix_spawn fallback, in `cwd`; its exit code.
    fn through_posix_spawn(script: &str, cwd: &Path) -> i32 {
        let argv = CStrings::new(["sh", "-c", script].into_iter()).unwrap();
        let env = Environment::new(&[]).unwrap();
        let null = NULL.as_ref().unwrap().as_raw_fd();
        let dir = CString::new(cwd.as_os_str().as_bytes()).unwrap();
        let pid = posix_spawn(c"/bin/sh", &argv, &env, [null, null, null], Some(&dir)).unwrap();
        let mut status = 0;
        // SAFETY: waits for the child just started.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn the_posix_spawn_fallback_starts_the_program_in_its_directory_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().canonicalize().unwrap();
        let check =
            format!("[ \"$(pwd -P)\" = '{}' ] && set -- $(cat /proc/$$/stat) && [ \"$5\" = $$ ]", here.display());
        assert_eq!(through_posix_spawn(&check, &here), 0);
        assert_eq!(through_posix_spawn("exit 3", &here), 3);
    }

    #[test]
    fn the_task_environment_overrides_irun_s_and_the_last_entry_wins() {
        let env = Environment::new(&[("IRUN_TEST_A", "1"), ("PATH", "/nowhere"), ("IRUN_TEST_A", "2")]).unwrap();
        let entries: Vec<String> = env.ptrs[..env.ptrs.len() - 1]
            .iter()
            // SAFETY: every pointer but the last points to a NUL-terminated string owned by `env` or BASE_ENV.
            .map(|&p| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect();
        assert!(entries.contains(&"IRUN_TEST_A=2".to_string()), "{entries:?}");
        assert!(!entries.contains(&"IRUN_TEST_A=1".to_string()));
        assert_eq!(entries.iter().filter(|e| e.starts_with("PATH=")).collect::<Vec<_>>(), ["PATH=/nowhere"]);
        assert!(env.ptrs.last().unwrap().is_null());
    }
}
