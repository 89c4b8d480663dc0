//! Process supervision: every task runs as the leader of its own process group, and irun stops the whole group
//! (stop signal, grace period, SIGKILL) and waits until no member is left. It never signals anything else.

use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::{Instant, sleep, timeout_at};

use crate::config::Cmd;
use crate::guard;

/// Last resort when a group ignores even SIGKILL (a process stuck in the kernel): give up waiting after this.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Mark irun as a child subreaper, so orphaned grandchildren are re-parented to irun (which reaps them) instead of
/// to PID 1 (which, in some containers, never does).
pub fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

pub struct Spec<'a> {
    pub cmd: &'a Cmd,
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub capture_output: bool,
}

/// A running process group started by irun.
pub struct Process {
    child: Child,
    pgid: i32,
    status: Option<ExitStatus>,
    /// Set once the leader is reaped and no member of the group remains.
    gone: bool,
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything exited within the grace period.
    Gracefully,
    /// SIGKILL was needed.
    Killed,
}

pub fn spawn(spec: &Spec<'_>) -> io::Result<(Process, Option<ChildStdout>, Option<ChildStderr>)> {
    let mut command = match spec.cmd {
        Cmd::Shell(script) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            c
        }
        Cmd::Argv(argv) => {
            // A relative path with a slash means "relative to the task's directory", as in a shell there.
            let program = Path::new(&argv[0]);
            let program = if program.is_relative() && argv[0].contains('/') {
                spec.cwd.join(program)
            } else {
                program.to_path_buf()
            };
            let mut c = Command::new(program);
            c.args(&argv[1..]);
            c
        }
    };
    command.current_dir(spec.cwd).envs(spec.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).process_group(0);
    if spec.capture_output {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let parent = nix::unistd::getpid();
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe {
        command.pre_exec(move || {
            // If irun dies, the kernel kills the leader at once; the guard takes care of the rest of the group.
            // irun spawns only from its main thread, which lives as long as irun does (the signal follows the
            // spawning thread, not the process).
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                // irun died between fork and prctl.
                return Err(io::Error::other("irun exited"));
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pgid = child.id().expect("a just-spawned child has a pid") as i32;
    guard::watch(pgid);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    Ok((Process { child, pgid, status: None, gone: false }, stdout, stderr))
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.pgid as u32
    }

    /// Wait for the leader to exit (other members of its group may live on).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = self.child.wait().await?;
        self.status = Some(s);
        Ok(s)
    }

    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    fn signal(&self, sig: Signal) {
        if !self.gone {
            let _ = kill(Pid::from_raw(-self.pgid), sig);
        }
    }

    /// SIGKILL the whole group now, without waiting (a second Ctrl-C).
    pub fn kill_now(&self) {
        self.signal(Signal::SIGKILL);
    }

    /// Stop the whole group: `sig`, up to `grace` for every member to exit, then SIGKILL.
    /// Also used after the leader exited on its own, to stop members it left behind.
    pub async fn stop(&mut self, sig: Signal, grace: Duration) -> Stopped {
        if self.gone {
            return Stopped::Gracefully;
        }
        self.signal(sig);
        // A stopped (SIGTSTP) process would not act on the signal until continued.
        self.signal(Signal::SIGCONT);
        if self.wait_gone(Instant::now() + grace).await {
            return Stopped::Gracefully;
        }
        self.kill_and_wait().await;
        Stopped::Killed
    }

    /// SIGKILL the group and wait until it is gone.
    pub async fn kill_and_wait(&mut self) {
        self.signal(Signal::SIGKILL);
        self.wait_gone(Instant::now() + KILL_WAIT).await;
    }

    /// True if members of the group other than the (already exited) leader are still running.
    pub fn has_leftovers(&mut self) -> bool {
        !self.gone && group_alive(self.pgid, self.child.id())
    }

    /// Wait until the leader is reaped and no member of the group is left, or until `deadline`.
    pub async fn wait_gone(&mut self, deadline: Instant) -> bool {
        if self.status.is_none() {
            match timeout_at(deadline, self.child.wait()).await {
                Ok(Ok(s)) => self.status = Some(s),
                Ok(Err(_)) | Err(_) => return false,
            }
        }
        // No notification exists for "process group empty": poll, quickly at first.
        let mut pause = Duration::from_millis(1);
        loop {
            if !group_alive(self.pgid, None) {
                self.gone = true;
                guard::forget(self.pgid);
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Never leak a group: if the owner bailed out early, kill what is left. The guard stays informed, since
        // the group may need a moment to die.
        if !self.gone {
            let _ = kill(Pid::from_raw(-self.pgid), Signal::SIGKILL);
        }
    }
}

/// Whether any live (non-zombie) process is in group `pgid`. Zombies irun inherited as subreaper are reaped on the
/// way; `leader` (owned by tokio, which reaps it) is left alone.
fn group_alive(pgid: i32, leader: Option<u32>) -> bool {
    if let Err(Errno::ESRCH) = kill(Pid::from_raw(-pgid), None) {
        return false;
    }
    // Members exist, but they may all be zombies waiting for a parent to reap them.
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return true };
    let mut alive = false;
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Some(stat) = ProcStat::read(pid) else { continue };
        if stat.pgrp != pgid {
            continue;
        }
        if stat.state == 'Z' {
            if stat.ppid == me && Some(pid as u32) != leader && pgid != pid {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            }
        } else {
            alive = true;
        }
    }
    alive
}

struct ProcStat {
    state: char,
    ppid: i32,
    pgrp: i32,
}

impl ProcStat {
    fn read(pid: i32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may itself contain spaces or parentheses.
        let rest = &text[text.rfind(')')? + 2..];
        let mut fields = rest.split(' ');
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let pgrp = fields.next()?.parse().ok()?;
        Some(ProcStat { state, ppid, pgrp })
    }
}

/// "exit code 3", "killed by SIGKILL".
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("killed by {}", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        "ended abnormally".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_of_this_process() {
        let me = std::process::id() as i32;
        let stat = ProcStat::read(me).expect("readable");
        assert_eq!(stat.ppid, nix::unistd::getppid().as_raw());
        assert_eq!(stat.pgrp, nix::unistd::getpgrp().as_raw());
        assert_ne!(stat.state, 'Z');
    }

    #[test]
    fn exit_descriptions() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe_exit(ExitStatus::from_raw(3 << 8)), "exit code 3");
        assert_eq!(describe_exit(ExitStatus::from_raw(9)), "killed by SIGKILL");
    }
}
