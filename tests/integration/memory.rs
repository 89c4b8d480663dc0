//! Memory does not grow with a task's output: in every output mode irun's peak memory stays under a bound while a
//! task prints hundreds of MB, which arrive complete and in order; a slow reader of irun's stdout slows the task
//! down; grouped output past a few MiB waits in an unnamed temporary file that is gone however the run ends.
//!
//! Peak memory is the kernel's count for irun's process: `ru_maxrss` from `wait4`, which is the larger of irun's
//! own peak and that of the processes it waited for (here `seq`, `sh`, `python3`, all far smaller than the bound).
//! `wait4` is called by a small Python process that forks irun ([`MEASURE_PY`]): a process started straight from
//! this test binary would inherit its peak (the kernel carries the peak of the memory a process had before `exec`,
//! and the test binary holds other tests' data). It is a size, not a time.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::{PATIENCE, Project, processes_of_run};

/// Numbered lines of 100 digits each (`seq -f '%0100.0f'`): 101 bytes a line, so this is 252.5 MB of output.
const LINES: u64 = 2_500_000;

/// The most memory irun may use, in KiB, whatever a task prints. Most of it is irun's own (binary, runtime,
/// reporters); the output in flight is a few MiB.
const BOUND_KIB: u64 = 64 * 1024;

fn numbered(lines: u64) -> String {
    format!("seq -f '%0100.0f' 1 {lines}")
}

/// How a run went: its exit code, irun's peak memory (KiB) and what it said on stderr.
struct Measured {
    code: i32,
    peak_kib: u64,
    stderr: String,
}

/// Starts irun (argv[1:]) in a child, waits for it with `wait4` and writes its exit code and peak memory (KiB) to
/// the file `$MEASURED`; exits with irun's exit code. The fork's copy of this small process is all irun inherits.
const MEASURE_PY: &str = r#"
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
code = code if code >= 0 else 128 - code
with open(os.environ["MEASURED"], "w") as f:
    f.write(f"{code} {usage.ru_maxrss}\n")
sys.exit(code)
"#;

/// Run irun with `args` in `p` to its end, handing its stdout to `consume` a read at a time (so nothing is kept
/// here); its exit code and peak memory.
fn run_measured(p: &Project, args: &[&str], mut consume: impl FnMut(&[u8])) -> Measured {
    p.file("measure.py", MEASURE_PY);
    let mut cmd = Command::new("python3");
    cmd.arg(p.path("measure.py")).arg(env!("CARGO_BIN_EXE_irun")).args(args);
    cmd.current_dir(p.root()).env_remove("NO_COLOR").env("TERM", "dumb").env("MEASURED", p.path("measured"));
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("python3");
    let mut stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0; 64 << 10];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => consume(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading irun's stdout: {e}"),
        }
    }
    let status = child.wait().unwrap();
    let stderr = err_thread.join().unwrap();
    let measured = std::fs::read_to_string(p.path("measured")).unwrap_or_else(|e| panic!("{status}: {e}: {stderr}"));
    let (code, peak_kib) = measured.trim().split_once(' ').unwrap();
    Measured { code: code.parse().unwrap(), peak_kib: peak_kib.parse().unwrap(), stderr }
}

/// Checks that the numbered lines of irun's stdout come 1, 2, 3 … with none missing, and keeps the last line.
struct Numbers {
    /// The number a line of output carries, if it is one of the task's (and where its 100 digits start).
    pick: fn(&[u8]) -> Option<&[u8]>,
    seen: u64,
    partial: Vec<u8>,
    last_line: Vec<u8>,
}

impl Numbers {
    fn new(pick: fn(&[u8]) -> Option<&[u8]>) -> Numbers {
        Numbers { pick, seen: 0, partial: Vec::new(), last_line: Vec::new() }
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            let line = if self.partial.is_empty() {
                &chunk[..end]
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                &self.partial[..]
            };
            let picked = (self.pick)(line).map(|digits| digits.to_vec());
            self.last_line = line.to_vec();
            self.partial.clear();
            chunk = &chunk[end + 1..];
            if let Some(digits) = picked {
                self.number(&digits);
            }
        }
        self.partial.extend_from_slice(chunk);
    }

    fn number(&mut self, digits: &[u8]) {
        let expected = self.seen + 1;
        let (zeros, tail) = digits.split_at(80);
        let n: Option<u64> = std::str::from_utf8(tail).ok().and_then(|t| t.parse().ok());
        assert!(
            digits.len() == 100 && zeros.iter().all(|&b| b == b'0') && n == Some(expected),
            "line {expected} is missing or out of order: got {:?}",
            String::from_utf8_lossy(digits)
        );
        self.seen = expected;
    }
}

/// `big | 000…0042` in prefixed mode.
fn prefixed(line: &[u8]) -> Option<&[u8]> {
    line.strip_prefix(b"big | ").filter(|d| d.len() == 100)
}

/// A line of the task's own in grouped mode: 100 digits.
fn grouped(line: &[u8]) -> Option<&[u8]> {
    (line.len() == 100 && line.iter().all(u8::is_ascii_digit)).then_some(line)
}

/// `{"event":"output","line":"000…0042",…}` with `--json`.
fn json(line: &[u8]) -> Option<&[u8]> {
    line.strip_prefix(b"{\"event\":\"output\",\"line\":\"").and_then(|rest| rest.get(..100))
}

fn assert_bounded_and_whole(mode: &str, args: &[&str], pick: fn(&[u8]) -> Option<&[u8]>, last: &str) {
    let p = Project::new(&format!("[tasks.big]\ncmd = \"{}\"\n", numbered(LINES)));
    let mut numbers = Numbers::new(pick);
    let run = run_measured(&p, args, |chunk| numbers.feed(chunk));
    assert_eq!(run.code, 0, "{mode}: {}", run.stderr);
    assert_eq!(numbers.seen, LINES, "{mode}: every line arrives, in order");
    let last_line = String::from_utf8_lossy(&numbers.last_line);
    assert!(last_line.contains(last), "{mode}: the run's last line comes last: {last_line}");
    assert!(
        run.peak_kib < BOUND_KIB,
        "{mode}: irun's peak memory was {} MiB for {} MB of output (bound {} MiB)",
        run.peak_kib / 1024,
        LINES * 101 / 1_000_000,
        BOUND_KIB / 1024
    );
}

#[test]
fn prefixed_output_of_250_mb_keeps_memory_bounded_and_arrives_whole_in_order() {
    assert_bounded_and_whole("prefixed", &["--progress", "never", "--output", "prefixed", "big"], prefixed, "passed");
}

#[test]
fn grouped_output_of_250_mb_keeps_memory_bounded_and_arrives_whole_in_order() {
    assert_bounded_and_whole("grouped", &["--progress", "never", "--output", "grouped", "big"], grouped, "passed");
}

#[test]
fn json_output_of_250_mb_keeps_memory_bounded_and_arrives_whole_in_order() {
    assert_bounded_and_whole("json", &["--json", "big"], json, "\"event\":\"run_finished\"");
}

#[test]
fn a_failed_grouped_block_of_250_mb_shown_at_the_end_keeps_memory_bounded() {
    // Failed blocks wait for the end of the run (and a JUnit report keeps each task's tail meanwhile).
    let p = Project::new(&format!("[tasks.big]\ncmd = \"{}; exit 3\"\n", numbered(LINES)));
    let junit = p.path("junit.xml");
    let junit = junit.to_str().unwrap();
    let mut numbers = Numbers::new(grouped);
    let args = ["--progress", "never", "--output", "grouped", "--junit", junit, "big"];
    let run = run_measured(&p, &args, |chunk| numbers.feed(chunk));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(numbers.seen, LINES, "every line arrives, in order");
    assert!(String::from_utf8_lossy(&numbers.last_line).contains("failed"), "the verdict comes last");
    assert!(run.peak_kib < BOUND_KIB, "peak memory {} MiB (bound {} MiB)", run.peak_kib / 1024, BOUND_KIB / 1024);
    let report = std::fs::read_to_string(p.path("junit.xml")).unwrap();
    assert!(report.contains(&format!("{LINES:0100}")), "the report keeps the output's end");
    assert!(!report.contains(&format!("{:0100}", 1)), "and only its end");
}

#[test]
fn a_slow_reader_of_irun_stdout_slows_the_task_down() {
    // The task records how much it has written after each MiB; the test reads irun's stdout a little at a time.
    // However slowly it reads, the task is never more than the output in flight (pipes and irun's budget, a few MiB)
    // ahead of it.
    let script = "import sys\n\
        line = b'y' * 1023 + b'\\n'\n\
        for i in range(64):\n    \
            sys.stdout.buffer.write(line * 1024); sys.stdout.flush()\n    \
            open('written.tmp', 'w').write(str((i + 1) << 20)); __import__('os').rename('written.tmp', 'written')\n";
    let p = Project::new("[tasks.big]\ncmd = [\"python3\", \"slow.py\"]\n");
    p.file("slow.py", script);
    let written = p.path("written");
    let mut read: u64 = 0;
    let mut ahead_most: u64 = 0;
    let mut lines: u64 = 0;
    let run = run_measured(&p, &["--progress", "never", "big"], |chunk| {
        // Each read is a few KiB at most: the rest waits in the pipe.
        for piece in chunk.chunks(4096) {
            read += piece.len() as u64;
            lines += piece.iter().filter(|&&b| b == b'\n').count() as u64;
            let task: u64 = std::fs::read_to_string(&written).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            ahead_most = ahead_most.max(task.saturating_sub(read));
        }
    });
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(lines >= 64 * 1024, "every line arrives: {lines}");
    assert!(ahead_most <= 16 << 20, "the task ran {} MiB ahead of irun's reader", ahead_most >> 20);
    assert!(run.peak_kib < BOUND_KIB, "peak memory {} MiB (bound {} MiB)", run.peak_kib / 1024, BOUND_KIB / 1024);
}

/// Descriptors of `pid` open on a file in `dir` (a spool file shows as `dir/#123 (deleted)`).
fn open_in(pid: i32, dir: &Path) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(dir))
        .map(|target| target.display().to_string())
        .collect()
}

/// Every process's descriptors open on a file in `dir`.
fn anyone_open_in(dir: &Path) -> Vec<String> {
    let pids = std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok());
    pids.flat_map(|pid: i32| open_in(pid, dir)).collect()
}

fn spill_project() -> (Project, std::path::PathBuf) {
    // 10 MB, more than grouped output keeps in memory; then the task waits to be interrupted (or ends at once).
    let p = Project::new(&format!(
        "[tasks.big]\ncmd = \"{}; echo done > printed; test -e end-now || exec sleep 600\"\n",
        numbered(100_000)
    ));
    let tmp = p.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    (p, tmp)
}

/// A grouped run whose task printed past what memory keeps: once its spool file is open (unnamed, not inherited),
/// irun gets `sig`. What it printed, and TMPDIR.
fn spilled_then(sig: nix::sys::signal::Signal) -> (crate::harness::Output, Project, std::path::PathBuf) {
    let (p, tmp) = spill_project();
    let mut run = p
        .irun()
        .env("TMPDIR", tmp.to_str().unwrap())
        .args(["--progress", "never", "--output", "grouped", "big"])
        .spawn();
    p.wait_for_file("printed");
    let deadline = Instant::now() + PATIENCE;
    let spilled = loop {
        let open = open_in(run.pid(), &tmp);
        if !open.is_empty() {
            break open;
        }
        assert!(Instant::now() < deadline, "grouped output never went to a file in TMPDIR");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(spilled.iter().all(|f| f.ends_with(" (deleted)")), "the file has no name: {spilled:?}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "nothing in TMPDIR carries a name");
    // The task may be in the middle of its `exec sleep` (its environment unreadable for that moment): wait until
    // it is seen.
    let tasks = loop {
        let tasks = processes_of_run(run.pid());
        if !tasks.is_empty() {
            break tasks;
        }
        assert!(Instant::now() < deadline, "the task's process was never seen");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    for pid in tasks {
        assert!(open_in(pid, &tmp).is_empty(), "the task (pid {pid}) does not inherit the spool file");
    }
    run.signal(sig);
    (run.wait(), p, tmp)
}

#[test]
fn grouped_output_spills_to_an_unnamed_file_gone_after_an_interrupted_run() {
    let (out, _p, tmp) = spilled_then(nix::sys::signal::Signal::SIGINT);
    assert_eq!(out.code, 130, "{out:?}");
    let lines = out.stdout.lines().filter(|l| l.len() == 100 && l.bytes().all(|b| b.is_ascii_digit())).count();
    assert_eq!(lines, 100_000, "the interrupted task's block is still shown whole");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "TMPDIR is empty");
    assert!(anyone_open_in(&tmp).is_empty(), "no process holds the spool file: {:?}", anyone_open_in(&tmp));
}

#[test]
fn grouped_output_spill_file_is_gone_when_irun_is_killed() {
    let (out, _p, tmp) = spilled_then(nix::sys::signal::Signal::SIGKILL);
    assert_eq!(out.code, 137, "{out:?}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "TMPDIR is empty");
    assert!(anyone_open_in(&tmp).is_empty(), "no process holds the spool file: {:?}", anyone_open_in(&tmp));
}

#[test]
fn grouped_output_leaves_nothing_in_tmpdir_after_a_run() {
    let (p, tmp) = spill_project();
    p.file("end-now", "");
    let out =
        p.irun().env("TMPDIR", tmp.to_str().unwrap()).args(["--progress", "never", "--output", "grouped", "big"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let lines = out.stdout.lines().filter(|l| l.len() == 100 && l.bytes().all(|b| b.is_ascii_digit())).count();
    assert_eq!(lines, 100_000);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "TMPDIR is empty");
    assert!(anyone_open_in(&tmp).is_empty(), "no process holds a file in TMPDIR");
}

#[test]
fn grouped_output_stays_whole_when_no_temporary_file_can_be_made() {
    let (p, tmp) = spill_project();
    p.file("end-now", "");
    let missing = tmp.join("missing");
    let out = p
        .irun()
        .env("TMPDIR", missing.to_str().unwrap())
        .args(["--progress", "never", "--output", "grouped", "big"])
        .run();
    assert_eq!(out.code, 0, "{out:?}");
    let numbers: Vec<&str> =
        out.stdout.lines().filter(|l| l.len() == 100 && l.bytes().all(|b| b.is_ascii_digit())).collect();
    assert_eq!(numbers.len(), 100_000, "every line, kept in memory");
    assert!(numbers.iter().enumerate().all(|(i, l)| l.trim_start_matches('0') == (i + 1).to_string()), "in order");
    let warning = out
        .stderr
        .lines()
        .find(|l| l.starts_with("irun: warning: cannot keep grouped output"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(warning.contains(missing.to_str().unwrap()), "{warning}");
    assert_eq!(out.stderr.matches("irun: warning: cannot keep grouped output").count(), 1, "said once: {out:?}");
}
