//! Terminal input: irun under a pseudo-terminal. A task that reads the terminal from the background is reported
//! and failed instead of waiting forever; an `interactive` task gets the terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::libc;

use crate::harness::Project;

const PATIENCE: Duration = Duration::from_secs(60);

/// irun running as the session leader of a new pseudo-terminal, as in a terminal window.
struct OnTerminal {
    child: Child,
    master: File,
    output: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl OnTerminal {
    fn start(p: &Project, args: &[&str]) -> OnTerminal {
        OnTerminal::start_with(p, args, &[])
    }

    /// With `env` added to irun's environment (where `TERM` is `dumb` unless `env` says otherwise).
    fn start_with(p: &Project, args: &[&str], env: &[(&str, &str)]) -> OnTerminal {
        // SAFETY: plain libc calls on a descriptor this function owns; ptsname_r writes into the buffer it is given.
        let (master, slave_path) = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(fd >= 0, "no pseudo-terminal: {}", std::io::Error::last_os_error());
            assert_eq!(libc::grantpt(fd), 0);
            assert_eq!(libc::unlockpt(fd), 0);
            // ptsname_r: tests run on parallel threads, and ptsname's buffer is shared.
            let mut buf = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()), 0);
            let name = std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
            (OwnedFd::from_raw_fd(fd), name)
        };
        let slave = std::fs::OpenOptions::new().read(true).write(true).open(&slave_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_irun"));
        cmd.env_remove("NO_COLOR").env_remove("FORCE_COLOR").env_remove("CLICOLOR_FORCE").env("TERM", "dumb");
        cmd.envs(env.iter().copied()).current_dir(p.root()).args(args);
        cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe; the new session takes stdin (the slave) as its terminal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("irun starts");
        drop(cmd);
        let master = File::from(master);
        let mut reader = master.try_clone().unwrap();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every descriptor of the terminal's other side is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnTerminal { child, master, output, seen: Vec::new() }
    }

    fn printed(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Wait until the terminal shows `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.printed().contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.extend(bytes),
                Err(_) => panic!("the terminal never showed {needle:?}; it showed:\n{}", self.printed()),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        self.master.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// irun's exit code, once it has exited (everything it printed is in `printed` by then).
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(5)) {
                self.seen.extend(bytes);
            }
            assert!(Instant::now() < deadline, "irun did not finish; the terminal showed:\n{}", self.printed());
        };
        while let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(50)) {
            self.seen.extend(bytes);
        }
        use std::os::unix::process::ExitStatusExt;
        status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_task_that_reads_the_terminal_from_the_background_is_reported_and_fails_instead_of_hanging() {
    let p = Project::new("[tasks.ask]\ncmd = \"echo asking; read answer < /dev/tty; echo got $answer\"\n");
    let mut irun = OnTerminal::start(&p, &["--progress", "never", "ask"]);
    let code = irun.wait();
    let out = irun.printed();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "ask * is waiting for terminal input (stopped by SIGTTIN); mark it `interactive = true` in Irun.toml"
        ),
        "{out}"
    );
    assert!(!out.contains("got"), "{out}");
}

#[test]
fn an_interactive_task_reads_what_is_typed_on_the_terminal_and_the_run_succeeds() {
    let p = Project::new(
        "[tasks.ask]\ncmd = \"printf 'name? '; read name; echo \\\"hello $name\\\"\"\ninteractive = true\n[tasks.after]\ncmd = \"echo after ran\"\ndeps = [\"ask\"]\n",
    );
    let mut irun = OnTerminal::start(&p, &["after"]);
    irun.wait_for("name? ");
    irun.type_line("world");
    let code = irun.wait();
    let out = irun.printed();
    assert_eq!(code, 0, "{out}");
    // Its output went to the terminal as it is, not through irun's prefixes.
    assert!(out.contains("hello world"), "{out}");
    assert!(!out.contains("| hello"), "{out}");
    assert!(out.contains("after | after ran"), "{out}");
}

#[test]
fn without_a_terminal_an_interactive_task_reads_irun_s_stdin() {
    let p = Project::new("[tasks.ask]\ncmd = \"read name; echo \\\"hello $name\\\"\"\ninteractive = true\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_irun"))
        .env_remove("NO_COLOR")
        .env("TERM", "dumb")
        .current_dir(p.root())
        .arg("ask")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"world\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ask | hello world"), "{stdout}");
}

#[test]
fn ctrl_c_while_an_interactive_task_has_the_terminal_stops_the_run_with_sigint() {
    let p = Project::new(
        "[tasks.ask]\ncmd = \"printf 'name? '; read name\"\ninteractive = true\n\
         [tasks.trap]\ncmd = \"trap 'echo INT > got; exit 0' INT; trap 'echo TERM > got; exit 0' TERM; echo trap up; while true; do sleep 0.05; done\"\n",
    );
    let mut irun = OnTerminal::start(&p, &["-j2", "ask", "trap"]);
    irun.wait_for("trap | trap up");
    irun.wait_for("has the terminal until it exits");
    irun.wait_for("name? ");
    // Ctrl-C, as typed: the terminal sends SIGINT to its foreground group, the interactive task's.
    irun.master.write_all(b"\x03").unwrap();
    let code = irun.wait();
    let out = irun.printed();
    assert_eq!(code, 130, "{out}");
    assert!(out.contains("received SIGINT"), "{out}");
    assert_eq!(p.read("got"), "INT\n", "the other task was stopped as by Ctrl-C: {out}");
}

/// A task that says what it was told about colour.
const SAYS_COLOUR: &str = "cmd = \"echo colour=[$FORCE_COLOR/$CLICOLOR_FORCE]\"\n";

/// What the task said (`FORCE_COLOR/CLICOLOR_FORCE`), run on a terminal that colours (`TERM=xterm`).
fn colour_on_terminal(toml: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let p = Project::new(toml);
    let mut all_args = vec!["--progress", "never"];
    all_args.extend(args);
    let env: Vec<(&str, &str)> = [("TERM", "xterm")].into_iter().chain(env.iter().copied()).collect();
    let mut irun = OnTerminal::start_with(&p, &all_args, &env);
    assert_eq!(irun.wait(), 0, "{}", irun.printed());
    let printed = irun.printed();
    // The last one: with --json the command, which names the variables, comes first (`task_started`).
    let said =
        printed.rsplit("colour=").next().filter(|_| printed.contains("colour=")).and_then(|s| s.split(']').next());
    said.unwrap_or_else(|| panic!("the task said nothing of colour: {printed}")).trim_start_matches('[').to_string()
}

#[test]
fn on_a_terminal_a_task_is_told_to_colour_its_output() {
    assert_eq!(colour_on_terminal(&format!("[tasks.t]\n{SAYS_COLOUR}"), &["t"], &[]), "1/1");
}

#[test]
fn without_a_terminal_a_task_is_not_told_to_colour_unless_color_always() {
    let p = Project::new(&format!("[tasks.t]\n{SAYS_COLOUR}"));
    let out = p.irun().args(["--progress", "never", "t"]).run();
    assert!(out.stdout.contains("colour=[/]"), "{out:?}");
    let out = p.irun().args(["--progress", "never", "--color", "always", "t"]).run();
    assert!(out.stdout.contains("colour=[1/1]"), "{out:?}");
}

/// `--json` is for a program, not a human: the task's lines in it carry no colour codes unless asked for.
#[test]
fn with_json_on_a_terminal_a_task_is_not_told_to_colour_unless_color_always() {
    let toml = format!("[tasks.t]\n{SAYS_COLOUR}");
    assert_eq!(colour_on_terminal(&toml, &["--json", "t"], &[]), "/", "--json");
    assert_eq!(colour_on_terminal(&toml, &["--json", "--color", "always", "t"], &[]), "1/1", "--json --color always");
}

#[test]
fn color_false_or_color_never_or_no_color_tell_a_task_nothing_of_colour() {
    let toml = format!("[tasks.t]\n{SAYS_COLOUR}");
    assert_eq!(colour_on_terminal(&format!("{toml}color = false\n"), &["t"], &[]), "/", "color = false");
    assert_eq!(colour_on_terminal(&toml, &["--color", "never", "t"], &[]), "/", "--color never");
    assert_eq!(colour_on_terminal(&toml, &["t"], &[("NO_COLOR", "1")]), "/", "NO_COLOR");
}

#[test]
fn a_task_keeps_its_own_colour_variables() {
    let toml = format!("[tasks.t]\n{SAYS_COLOUR}env = {{ CLICOLOR_FORCE = \"0\" }}\n");
    assert_eq!(colour_on_terminal(&toml, &["t"], &[]), "1/0", "the task's env");
    assert_eq!(colour_on_terminal(&toml, &["t"], &[("FORCE_COLOR", "3")]), "3/0", "irun's environment and the task's");
}

#[test]
fn a_task_run_on_a_terminal_is_still_up_to_date_without_one() {
    let p = Project::new(
        "[tasks.t]\ncmd = \"echo colour=[$FORCE_COLOR/$CLICOLOR_FORCE] > out.txt\"\nsources = [\"in.txt\"]\noutputs = [\"out.txt\"]\n",
    );
    p.file("in.txt", "x");
    let mut irun = OnTerminal::start_with(&p, &["--progress", "never", "t"], &[("TERM", "xterm")]);
    assert_eq!(irun.wait(), 0, "{}", irun.printed());
    assert_eq!(p.read("out.txt").trim(), "colour=[1/1]");
    let out = p.irun().args(["--progress", "never", "t"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(p.read("out.txt").trim(), "colour=[1/1]", "not run again: {out:?}");
    assert!(out.stdout.contains("* up to date"), "{out:?}");
}
