//! Words for outcomes, exits and stop reasons: the one place the typed results of a run become text.

use crate::config::{Check, host_port};
use crate::events::{Event, GuardNews, PlanDiff, TaskName, WatchProblem};
use crate::fresh::{Part, PartKind};
use crate::outcome::{Blocked, ChildExit, Failure, FileChange, Outcome, RunReason, Setting, StopReason};
use crate::testcases::{KEPT_MAX, Problem, TestReports};

/// What a readiness probe waits for: "port 8001 on 127.0.0.1 or ::1 accepting connections".
pub(crate) fn check(check: &Check) -> String {
    match check {
        Check::Tcp { host: Some(host), port } => format!("{} accepting connections", host_port(host, *port)),
        Check::Tcp { host: None, port } => format!("port {port} on 127.0.0.1 or ::1 accepting connections"),
        Check::Http { url, status } => match status {
            Some(s) => format!("{} answering {s}", url.raw),
            None => format!("{} answering 2xx or 3xx", url.raw),
        },
        Check::Exec(cmd) => format!("`{cmd}` exiting 0"),
        Check::Log(re) => format!("a line of output matching `{}`", re.0.as_str()),
        Check::AutoTcp => "the free port chosen for it as it starts (IRUN_PORT) accepting connections".to_string(),
        Check::Later { key: "tcp", text, .. } => format!("{text} accepting connections"),
        Check::Later { key: "http", text, status: Some(s) } => format!("{text} answering {s}"),
        Check::Later { key: "http", text, .. } => format!("{text} answering 2xx or 3xx"),
        Check::Later { text, .. } => format!("a line of output matching `{text}`"),
    }
}

/// "exit code 3", "killed by SIGKILL".
pub(crate) fn exit(e: ChildExit) -> String {
    match e {
        // What shells exit with when they cannot find a command (the shell's own message is in the output). A
        // program may exit 127 for its own reasons, hence the wording.
        ChildExit::Code(127) => "exit code 127 (a shell's \"command not found\")".to_string(),
        ChildExit::Code(code) => format!("exit code {code}"),
        ChildExit::Signal(sig) => match e.signal() {
            Some(s) => format!("killed by {}", s.as_str()),
            None => format!("killed by signal {sig}"),
        },
    }
}

pub(crate) fn failure(f: &Failure) -> String {
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
        Failure::NoFreePort => {
            "internal error in irun: no free port could be found on 127.0.0.1 for `ready = { tcp = \"auto\" }`"
                .to_string()
        }
        Failure::PortInUse { port, key, file, reuse: true } => {
            format!(
                "port {port} is already in use by another process that does not pass the service's `ready.{key}` \
                 probe, so `reuse = true` cannot use it; stop that process, or change `ready.{key}` in {file}"
            )
        }
        Failure::PortInUse { port, key, file, reuse: false } => {
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
        Failure::WantedTerminal { signal } => format!(
            "stopped by {}: it waited for terminal input; mark it `interactive = true` in Irun.toml",
            signal.as_str()
        ),
    }
}

pub(crate) fn blocked(b: &Blocked) -> String {
    match b {
        Blocked::DepFailed(d) => format!("dep `{d}` failed"),
        Blocked::DepDidNotRun(d) => format!("dep `{d}` did not run"),
        Blocked::ServiceGone(d) => format!("service `{d}` is no longer running"),
        Blocked::Unmeetable => "its deps can no longer be met".to_string(),
    }
}

/// The one-word status: ok, failed, timed out, cancelled, skipped, up to date, restarted.
pub(crate) fn label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed(_) => "failed",
        Outcome::TimedOut(_) => "timed out",
        Outcome::Cancelled => "cancelled",
        Outcome::Blocked(_) | Outcome::NotNeeded => "skipped",
        Outcome::UpToDate => "up to date",
        Outcome::Cached(_) => "cached",
        Outcome::Restarted => "restarted",
    }
}

/// Replayed for a task restored from the cache whose output was not stored with its result.
pub(crate) const OUTPUT_NOT_CACHED: &str =
    "(restored from the cache; its output is not kept there: cache_output = false)";

/// For `irun explain`: a task that will run is not in the cache under `key`; `changed`: the parts of its key that
/// differ from the last key stored for it.
pub(crate) fn cache_miss(key: &str, changed: &[String]) -> String {
    match changed {
        [] => format!("cache key {}: not stored", short_key(key)),
        _ => format!(
            "cache key {}: not stored; changed since the last stored key: {}",
            short_key(key),
            changed.join(", ")
        ),
    }
}

/// What `irun explain` says of a task whose result is in the `local` or `remote` cache.
pub(crate) fn will_restore(source: &str) -> String {
    match source {
        "remote" => "will be restored from the remote cache".to_string(),
        _ => "will be restored from the cache".to_string(),
    }
}

/// A cache key as people read it: its first 16 hex digits.
pub(crate) fn short_key(key: &str) -> &str {
    key.get(..16).unwrap_or(key)
}

/// Why, when there is more to say than the label.
pub(crate) fn detail(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Failed(f) => Some(failure(f)),
        Outcome::Blocked(b) => Some(blocked(b)),
        Outcome::NotNeeded => Some("nothing that needs it is left to run".to_string()),
        Outcome::TimedOut(after) => Some(format!("stopped after {}", humantime::format_duration(*after))),
        Outcome::Cached(hit) => Some(format!("restored from the {} cache ({})", hit.source, short_key(&hit.key))),
        Outcome::Ok | Outcome::Cancelled | Outcome::UpToDate | Outcome::Restarted => None,
    }
}

pub(crate) fn stop_reason(r: StopReason) -> &'static str {
    match r {
        StopReason::NotNeeded => "no longer needed",
        StopReason::Cancelled => "cancelled after a failure",
        StopReason::Interrupted => "interrupted",
        StopReason::Terminated => "irun was asked to stop",
        StopReason::Restart => "restarting: its inputs changed",
        StopReason::Reconfigured => "Irun.toml changed",
        StopReason::LeftBehind => "its main process exited and left processes behind",
        StopReason::ProbeFailed => "its readiness probe failed",
        StopReason::TimedOut => "it timed out",
        StopReason::WantsTerminal => "it is waiting for terminal input",
    }
}

/// What irun says when it receives a signal (`None` for other events).
pub(crate) fn interrupted(event: &crate::events::Event) -> Option<String> {
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

/// Why a task runs: "dep `setup` ran", "`src/a.rs` changed".
pub(crate) fn run_reason(r: &RunReason) -> String {
    match r {
        RunReason::Service => "services always run".to_string(),
        RunReason::NoSources => "it has no `sources`, so it always runs".to_string(),
        RunReason::Forced => "forced (--force)".to_string(),
        RunReason::Rerun => "asked for with --rerun".to_string(),
        RunReason::AlwaysRun => "`always_run = true`".to_string(),
        RunReason::NeverRan => "never ran".to_string(),
        RunReason::LastUnfinished => "last run did not finish".to_string(),
        RunReason::LastFailed => "last run failed".to_string(),
        RunReason::Setting(setting) => format!("{} changed", self::setting(*setting)),
        RunReason::Source(FileChange::Added(p)) => format!("`{p}` was added"),
        RunReason::Source(FileChange::Removed(p)) => format!("`{p}` was removed"),
        RunReason::Source(FileChange::Changed(p)) => format!("`{p}` changed"),
        RunReason::Output(FileChange::Added(p)) => format!("output `{p}` appeared"),
        RunReason::Output(FileChange::Removed(p)) => format!("output `{p}` missing"),
        RunReason::Output(FileChange::Changed(p)) => format!("output `{p}` changed"),
        RunReason::DepRan(d) => format!("dep `{d}` ran"),
        RunReason::DepWillRun(d) => format!("dep `{d}` will run"),
        RunReason::ServiceChanged(d) => format!("service `{d}` changed since it last ran"),
        RunReason::ServiceRestarted(d) => format!("service `{d}` was started again since it ran against it"),
        RunReason::DepRanSince(d) => format!("dep `{d}` ran since it last ran"),
        RunReason::WatchChanged(paths) => format!("watch: {} changed", list(paths)),
        RunReason::WatchOwed => "watch: it did not get to run in an earlier cycle".to_string(),
        RunReason::WatchNeededBy(m) => format!("watch: `{m}` needs it and its last run did not succeed"),
        RunReason::WatchDepChanged => "watch: a dep changed".to_string(),
    }
}

fn setting(s: Setting) -> &'static str {
    match s {
        Setting::Command => "command",
        Setting::Env => "env",
        Setting::Cwd => "cwd",
        Setting::Globs => "`sources` or `outputs` in Irun.toml",
        Setting::Probe => "`ready` probe",
    }
}

/// Up to five items, then how many more.
pub(crate) fn list<'a>(items: impl IntoIterator<Item = &'a String, IntoIter: ExactSizeIterator>) -> String {
    const SHOWN: usize = 5;
    let items = items.into_iter();
    let n = items.len();
    let mut text = items.take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if n > SHOWN {
        text.push_str(&format!(" (+{} more)", n - SHOWN));
    }
    text
}

fn plural(n: usize, one: &'static str, more: &'static str) -> &'static str {
    if n == 1 { one } else { more }
}

/// The words for an event that is a notice (not a task's status), and the task it is about: `None` for any other
/// event.
pub(crate) fn notice(event: &Event) -> Option<(Option<&TaskName>, String)> {
    match task_notice(event) {
        Some((task, words)) => Some((Some(task), words)),
        None => run_notice(event).map(|words| (None, words)),
    }
}

/// A notice about one task: the task and the words.
fn task_notice(event: &Event) -> Option<(&TaskName, String)> {
    match event {
        Event::TaskKilled { task, grace, signal } => Some((
            task,
            format!(
                "did not exit within {} of {}; killed it with SIGKILL",
                humantime::format_duration(*grace),
                signal.as_str()
            ),
        )),
        Event::TerminalHandedOver { task } => Some((task, terminal_handed_over().to_string())),
        Event::WaitingForTerminal { task, signal } => Some((
            task,
            format!(
                "is waiting for terminal input (stopped by {}); mark it `interactive = true` in Irun.toml",
                signal.as_str()
            ),
        )),
        Event::TaskWillRun { task, reason } => Some((task, format!("will run: {}", run_reason(reason)))),
        Event::ServiceReused { task, probe } => Some((
            task,
            format!(
                "reusing the server already running ({}); irun did not start it and will not stop it",
                check(probe)
            ),
        )),
        Event::OrphanAdopted { pid, command, task: Some(task), .. } => Some((
            task,
            format!(
                "process {pid} ({command}) left its task's process group and outlived its parent; irun stops it when \
                 the run ends"
            ),
        )),
        _ => None,
    }
}

/// A notice about the run as a whole.
fn run_notice(event: &Event) -> Option<String> {
    match event {
        Event::Interrupted { .. } => interrupted(event),
        Event::StateIgnored { problem } => {
            Some(format!("warning: {problem}; running every task, as if none had run before"))
        }
        Event::CacheWarning { problem } => Some(format!("warning: the cache: {problem}")),
        Event::StateLockWait { lock } => Some(format!(
            "waiting for another irun to release {} before saving this run's state (Ctrl-C: stop without saving)",
            lock.display()
        )),
        Event::StateNotSaved { path, error } => {
            Some(format!("warning: cannot save irun's state to {}: {error}", path.display()))
        }
        Event::ShardSelected { shard, partition, leaves, units } if units.is_empty() => {
            Some(format!("shard {shard} ({partition}) has none of the plan's {leaves} leaf tasks: nothing to run"))
        }
        Event::ShardSelected { shard, partition, leaves, units } => {
            let names: Vec<&str> = units.iter().map(|n| &**n).collect();
            let n = units.len();
            Some(format!("shard {shard} ({partition}): {n} of the plan's {leaves} leaf tasks: {}", names.join(", ")))
        }
        Event::Watching { folders, root } => Some(format!(
            "watching {folders} folder{} under {} for changes (Ctrl-C to stop)",
            plural(*folders, "", "s"),
            root.display()
        )),
        Event::WatchTrouble { problem } => Some(watch_problem(problem)),
        Event::ChangeQueued { paths, rescan } => {
            let what = if *rescan { "events were lost".to_string() } else { list(paths) };
            Some(format!("change during the run: {what}; one more cycle will follow this one"))
        }
        Event::FeedbackLoop { cycles, paths, tasks } => Some(feedback_loop(*cycles, paths, tasks)),
        Event::ConfigUnreadable { path, error } => {
            Some(format!("cannot read {}: {error}; still running the previous version", path.display()))
        }
        Event::ReloadRejected { file, diagnostic } => {
            Some(format!("{file} changed but cannot be used; still running the previous version:\n{diagnostic}"))
        }
        Event::ReloadApplied { file, diff, .. } => Some(reload_applied(file, diff)),
        Event::OrphanAdopted { pid, command, task: None, .. } => Some(format!(
            "process {pid} ({command}) left its task's process group and outlived its parent (which task it came \
             from is not known: it cleared its environment); irun stops it when the run ends"
        )),
        Event::EscapeesStopped { count } => Some(format!(
            "stopped {count} process{} that had left {} task's process group and outlived it",
            plural(*count, "", "es"),
            plural(*count, "its", "their")
        )),
        Event::GuardEnded { exit: how, news } => Some(guard(*how, news)),
        _ => None,
    }
}

/// After a run of a task with `junit`: how many test cases its reports held, how many did not pass, and the first
/// few that failed: "97 test cases, 2 failed (reports/junit.xml): test_a, test_b". None when it wrote no report.
pub(crate) fn test_counts(reports: &TestReports) -> Option<String> {
    const NAMED: usize = 3;
    if reports.files.is_empty() {
        return None;
    }
    let c = reports.counts;
    let mut line = format!("{} test {}", c.tests, plural(c.tests, "case", "cases"));
    for (n, what) in [(c.failures, "failed"), (c.errors, plural(c.errors, "error", "errors")), (c.skipped, "skipped")] {
        if n > 0 {
            line.push_str(&format!(", {n} {what}"));
        }
    }
    if reports.dropped > 0 {
        line.push_str(&format!(", {} not kept for the JUnit report (over {} MiB)", reports.dropped, KEPT_MAX >> 20));
    }
    let files: Vec<String> = reports.files.iter().map(|f| printable(f)).collect();
    line.push_str(&format!(" ({})", list(&files)));
    let failed: Vec<String> = reports.failed().take(NAMED + 1).map(printable).collect();
    if !failed.is_empty() {
        let more = (c.failures + c.errors).saturating_sub(failed.len().min(NAMED));
        line.push_str(&format!(": {}", failed[..failed.len().min(NAMED)].join(", ")));
        if more > 0 {
            line.push_str(&format!(" (+{more} more)"));
        }
    }
    Some(line)
}

/// Text from a file a task wrote, safe to print: a character a terminal would act on (escape, bell, a line break,
/// a bidirectional control) becomes U+FFFD.
fn printable(s: &str) -> String {
    s.chars().map(|c| if crate::diagnostic::unprintable(c) { '\u{fffd}' } else { c }).collect()
}

/// Why a task's JUnit reports say less than they might, as a warning.
pub(crate) fn test_report_problem(task: &TaskName, problem: &Problem) -> String {
    match problem {
        Problem::Unreadable { path, error } => {
            format!("warning: cannot read the JUnit report {} of task `{task}`: {}", printable(path), printable(error))
        }
        Problem::Missing { patterns } => format!(
            "warning: task `{task}` succeeded without writing a JUnit report: no file matching {} was written in this \
             run; check where its command writes its report (pytest: --junitxml=PATH), or its `junit` in Irun.toml",
            patterns.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// An interactive task was given the terminal.
pub(crate) fn terminal_handed_over() -> &'static str {
    "has the terminal until it exits"
}

/// Why a folder cannot be watched, with what to do about the kernel limits behind the common causes.
pub(crate) fn watch_problem(problem: &WatchProblem) -> String {
    match problem {
        WatchProblem::TooManyWatches { path, limit } => format!(
            "cannot watch {}: the inotify watch limit is reached (fs.inotify.max_user_watches = {limit}); raise it \
             with `sudo sysctl fs.inotify.max_user_watches=524288`, or ignore large folders in .gitignore",
            path.display()
        ),
        WatchProblem::TooManyInstances { path, limit } => format!(
            "cannot watch {}: too many inotify instances (fs.inotify.max_user_instances = {limit}); raise it with \
             `sudo sysctl fs.inotify.max_user_instances=1024`, or stop other watching programs",
            path.display()
        ),
        WatchProblem::Other { path, error } => format!("cannot watch {}: {error}", path.display()),
        WatchProblem::NoThread { error } => format!("cannot start the watch thread: {error}"),
    }
}

/// Grouped output could not go to its temporary file (it stays in memory).
pub(crate) fn spill_failed(error: &std::io::Error) -> String {
    format!(
        "cannot keep grouped output in a temporary file in {} ({error}); keeping it in memory instead. Set TMPDIR to \
         a writable folder with free space, or use `--output prefixed`",
        std::env::temp_dir().display()
    )
}

/// Grouped output kept in a temporary file could not be read back.
pub(crate) fn spool_lost(error: &std::io::Error) -> String {
    format!(
        "part of a task's grouped output is lost: its temporary file in {} could not be read back ({error})",
        std::env::temp_dir().display()
    )
}

fn feedback_loop(cycles: u32, paths: &[String], tasks: &[TaskName]) -> String {
    let names: Vec<String> = tasks.iter().map(|t| format!("`{t}`")).collect();
    format!(
        "the last {cycles} cycles were each started by changes to {} made while the cycle before ran: {} seems to \
         write {} own sources; list them in `outputs` or narrow `sources` in Irun.toml",
        list(paths),
        names.join(", "),
        plural(names.len(), "its", "their")
    )
}

fn reload_applied(file: &str, diff: &PlanDiff) -> String {
    let what: Vec<String> = [("added", &diff.added), ("changed", &diff.changed), ("removed", &diff.removed)]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(verb, names)| format!("{verb} {}", names.iter().map(|n| &**n).collect::<Vec<_>>().join(", ")))
        .collect();
    if what.is_empty() {
        format!("{file} changed; no task changed")
    } else {
        format!("{file} changed: {}", what.join("; "))
    }
}

fn guard(how: Option<ChildExit>, news: &GuardNews) -> String {
    let how = how.map_or("it stopped reading".to_string(), exit);
    let risk = "if irun is killed now, its processes may outlive it (irun still stops them itself when it ends)";
    match news {
        GuardNews::Replaced => {
            format!("irun's guard process ended ({how}); started a new one, which knows every running process")
        }
        GuardNews::GivenUp { times, within } => format!(
            "irun's guard process ended ({how}) again, {times} times in {}s; irun carries on without one: {risk}",
            within.as_secs()
        ),
        GuardNews::NotReplaced { error } => {
            format!("irun's guard process ended ({how}) and a new one could not be started ({error}); {risk}")
        }
    }
}

/// `irun explain`'s lines for what a task's fingerprint holds, one part each, saying which changed since it last ran
/// (a service: since it last started).
pub(crate) fn fingerprint(parts: &[Part], service: bool) -> Vec<String> {
    let since = if service { "since it last started" } else { "since it last ran" };
    let files = |n: usize| format!("{n} {}", plural(n, "file", "files"));
    parts
        .iter()
        .map(|part| {
            let what = match &part.kind {
                PartKind::Command(cmd) => format!("command: {}", one_line(cmd)),
                PartKind::Env(names) if names.is_empty() => "env: none from Irun.toml".to_string(),
                PartKind::Env(names) => format!("env: {}", names.join(", ")),
                PartKind::Cwd(cwd) => format!("cwd: {cwd}"),
                PartKind::Sources { globs, .. } if globs.is_empty() => "sources: none".to_string(),
                PartKind::Sources { globs, files: n } => {
                    format!("sources: {} ({}, by content)", globs.join(", "), files(*n))
                }
                PartKind::Outputs { globs, .. } if globs.is_empty() => "outputs: none".to_string(),
                PartKind::Outputs { globs, files: n, content: true } => {
                    format!("outputs: {} ({}, by content)", globs.join(", "), files(*n))
                }
                PartKind::Outputs { globs, files: n, content: false } => {
                    format!("outputs: {} ({}, must exist)", globs.join(", "), files(*n))
                }
                PartKind::Deps(deps) if deps.is_empty() => "deps: none".to_string(),
                PartKind::Deps(deps) => {
                    let names: Vec<String> = deps
                        .iter()
                        .map(|(d, changed)| if *changed { format!("{d} (changed)") } else { d.clone() })
                        .collect();
                    format!("deps: {}", names.join(", "))
                }
                PartKind::Probe(None) => "probe: none (ready once started)".to_string(),
                PartKind::Probe(Some(c)) => format!("probe: {}", check(c)),
            };
            // (Deps say which of them changed.)
            match part.changed && !matches!(part.kind, PartKind::Deps(_)) {
                true => format!("- {what}; changed {since}"),
                false => format!("- {what}"),
            }
        })
        .collect()
}

/// The first line of a command, at most 80 characters, with `…` where it was cut.
fn one_line(text: &str) -> String {
    const MAX: usize = 80;
    let first = text.lines().next().unwrap_or_default();
    let cut = first.chars().count() > MAX || first.len() < text.trim_end().len();
    let shown: String = first.chars().take(MAX).filter(|c| !crate::diagnostic::unprintable(*c)).collect();
    if cut { format!("{shown} …") } else { shown }
}

/// What a ready service's probe saw, as the ready line and JSON say it.
pub(crate) fn ready_probe(probe: Option<&Check>, reused: bool) -> Option<String> {
    let probe = check(probe?);
    Some(if reused { format!("{probe} (already running, reused)") } else { probe })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_with_nothing_running_says_only_that_irun_stops() {
        let event = Event::Interrupted { signal: nix::sys::signal::Signal::SIGINT, count: 1, running: 0 };
        assert_eq!(interrupted(&event).unwrap(), "received SIGINT; stopping");
        let event = Event::Interrupted { signal: nix::sys::signal::Signal::SIGINT, count: 1, running: 2 };
        assert!(interrupted(&event).unwrap().contains("stopping 2 running tasks (send it again"));
    }

    #[test]
    fn watch_limits_say_which_limit_and_how_to_raise_it() {
        let path = std::path::PathBuf::from("/p");
        let text = watch_problem(&WatchProblem::TooManyWatches { path: path.clone(), limit: "8192".into() });
        assert!(text.contains("fs.inotify.max_user_watches = 8192") && text.contains("sysctl"), "{text}");
        let text = watch_problem(&WatchProblem::TooManyInstances { path, limit: "128".into() });
        assert!(text.contains("fs.inotify.max_user_instances = 128"), "{text}");
    }

    #[test]
    fn exits_in_words() {
        assert_eq!(exit(ChildExit::Code(3)), "exit code 3");
        assert_eq!(exit(ChildExit::Signal(9)), "killed by SIGKILL");
        assert_eq!(exit(ChildExit::Signal(99)), "killed by signal 99");
    }
}
