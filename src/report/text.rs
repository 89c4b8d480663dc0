//! Words for outcomes, exits and stop reasons: the one place the typed results of a run become text.

use crate::config::{Check, host_port};
use crate::outcome::{Blocked, ChildExit, Failure, Outcome, StopReason};

/// What a readiness probe waits for: "port 8001 on 127.0.0.1 or ::1 accepting connections".
pub fn check(check: &Check) -> String {
    match check {
        Check::Tcp { host: Some(host), port } => format!("{} accepting connections", host_port(host, *port)),
        Check::Tcp { host: None, port } => format!("port {port} on 127.0.0.1 or ::1 accepting connections"),
        Check::Http { url, status } => match status {
            Some(s) => format!("{} answering {s}", url.raw),
            None => format!("{} answering 2xx or 3xx", url.raw),
        },
        Check::Exec(cmd) => format!("`{cmd}` exiting 0"),
        Check::Log(re) => format!("a line of output matching `{}`", re.0.as_str()),
        Check::AutoTcp => "a port chosen as it starts (IRUN_PORT) accepting connections".to_string(),
    }
}

/// "exit code 3", "killed by SIGKILL".
pub fn exit(e: ChildExit) -> String {
    match e {
        // What shells exit with when they cannot find a command (the shell's own message is in the output). A
        // program may exit 127 for its own reasons, hence the wording.
        ChildExit::Code(127) => "exit code 127 (a shell's \"command not found\")".to_string(),
        ChildExit::Code(code) => format!("exit code {code}"),
        ChildExit::Signal(sig) => match e.signal() {
            Some(s) => format!("killed by {}", s.as_str()),
            None => format!("killed by signal {sig}"),
        },
        ChildExit::SpawnFailed(kind) => format!("could not be started ({kind})"),
    }
}

pub fn failure(f: &Failure) -> String {
    match f {
        Failure::Exit(e) => exit(*e),
        Failure::ExitedBeforeReady(e) => format!("exited with {} before it was ready", exit(*e)),
        Failure::ExitedWhileNeeded { exit: e, needed_by } if needed_by.is_empty() => {
            format!("exited unexpectedly ({}) while tasks still needed it", exit(*e))
        }
        Failure::ExitedWhileNeeded { exit: e, needed_by } => {
            let names: Vec<&str> = needed_by.iter().map(|n| &**n).collect();
            format!("exited ({}) while {} still needed it", exit(*e), names.join(", "))
        }
        Failure::NotReady { timeout, check: c } => {
            format!("not ready after {}: never saw {}", humantime::format_duration(*timeout), check(c))
        }
        Failure::NoFreePort => "no free port could be found on 127.0.0.1 for `ready = { tcp = \"auto\" }`".to_string(),
        Failure::PortInUse { port, key, file } => {
            format!(
                "port {port} is already in use by another process; stop it, change `ready.{key}` in {file}, or set \
                 `reuse = true` on the service to use the server already running"
            )
        }
        Failure::NoWorkingDirectory(dir) => {
            format!("working directory {} does not exist; create it or fix `cwd` in Irun.toml", dir.display())
        }
        Failure::SpawnFailed { program, kind, message } => match kind {
            std::io::ErrorKind::NotFound => {
                format!(
                    "cannot start `{program}`: no such program (command not found on PATH); check `cmd` in Irun.toml"
                )
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("cannot start `{program}`: permission denied; is it executable (chmod +x)?")
            }
            _ => format!("cannot start `{program}`: {message}"),
        },
        Failure::Internal(why) => format!("internal error in irun: {why}"),
    }
}

pub fn blocked(b: &Blocked) -> String {
    match b {
        Blocked::DepFailed(d) => format!("dep `{d}` failed"),
        Blocked::DepDidNotRun(d) => format!("dep `{d}` did not run"),
        Blocked::ServiceGone(d) => format!("service `{d}` is no longer running"),
        Blocked::Unmeetable => "its deps can no longer be met".to_string(),
    }
}

/// The one-word status: ok, failed, timed out, cancelled, skipped, up to date, restarted.
pub fn label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed(_) => "failed",
        Outcome::TimedOut(_) => "timed out",
        Outcome::Cancelled => "cancelled",
        Outcome::Blocked(_) | Outcome::NotNeeded => "skipped",
        Outcome::UpToDate => "up to date",
        Outcome::Restarted => "restarted",
    }
}

/// Why, when there is more to say than the label.
pub fn detail(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Failed(f) => Some(failure(f)),
        Outcome::Blocked(b) => Some(blocked(b)),
        Outcome::NotNeeded => Some("nothing that needs it is left to run".to_string()),
        Outcome::TimedOut(after) => Some(format!("stopped after {}", humantime::format_duration(*after))),
        Outcome::Ok | Outcome::Cancelled | Outcome::UpToDate | Outcome::Restarted => None,
    }
}

pub fn stop_reason(r: StopReason) -> &'static str {
    match r {
        StopReason::NotNeeded => "no longer needed",
        StopReason::Cancelled => "cancelled after a failure",
        StopReason::Interrupted => "interrupted",
        StopReason::Restart => "restarting: its inputs changed",
        StopReason::Reconfigured => "Irun.toml changed",
        StopReason::LeftBehind => "its main process exited and left processes behind",
        StopReason::ProbeFailed => "its readiness probe failed",
        StopReason::TimedOut => "it timed out",
    }
}

/// What irun says when it receives a signal (`None` for other events).
pub fn interrupted(event: &crate::events::Event) -> Option<String> {
    let crate::events::Event::Interrupted { signal, count, running } = event else { return None };
    if *signal == nix::sys::signal::Signal::SIGPIPE {
        let plural = if *running == 1 { "" } else { "s" };
        return Some(format!("irun's output was closed; stopping {running} running task{plural}"));
    }
    Some(match (count, running) {
        (1, 0) => format!("received {}; stopping", signal.as_str()),
        (1, n) => format!(
            "received {}; stopping {n} running task{} (send it again to kill {} at once)",
            signal.as_str(),
            if *n == 1 { "" } else { "s" },
            if *n == 1 { "it" } else { "them" }
        ),
        (_, 0) => format!("received {} again; nothing is left to kill", signal.as_str()),
        (_, _) => format!("received {} again; killing everything now", signal.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_in_words() {
        assert_eq!(exit(ChildExit::Code(3)), "exit code 3");
        assert_eq!(exit(ChildExit::Signal(9)), "killed by SIGKILL");
        assert_eq!(exit(ChildExit::Signal(99)), "killed by signal 99");
    }
}
