//! How commands become processes: string commands without shell syntax are executed directly (found on the task's
//! PATH), anything else through /bin/sh, and a task's output is read whole whether it ends at once or runs on.

use crate::harness::Project;

#[test]
fn a_plain_string_command_with_a_missing_program_is_reported_by_irun_not_by_a_shell() {
    let p = Project::new("[tasks.a]\ncmd = \"no-such-program-irun --version\"\n");
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("cannot start `no-such-program-irun`: no such program"), "{out:?}");
    assert!(!out.stdout.contains("sh: "), "no shell was involved: {out:?}");
}

#[test]
fn a_shell_command_whose_program_is_missing_says_command_not_found() {
    let p = Project::new("[tasks.a]\ncmd = \"no-such-program-irun > out.txt\"\n");
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("exit code 127 (a shell's \"command not found\")"), "{out:?}");
}

#[test]
fn programs_are_looked_up_on_the_tasks_own_path() {
    let p = Project::new("");
    p.script("tools/mytool", "#!/bin/sh\necho \"mytool ran with $1\"\n");
    let path = format!("{}:/usr/bin:/bin", p.path("tools").display());
    p.file("Irun.toml", &format!("[tasks.a]\ncmd = \"mytool hello\"\nenv = {{ PATH = \"{path}\" }}\n"));
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("mytool ran with hello"), "{out:?}");
}

#[test]
fn an_executable_script_without_a_shebang_runs_with_the_shell() {
    let p = Project::new("[tasks.a]\ncmd = \"./plain-script one\"\n[tasks.b]\ncmd = [\"./plain-script\", \"two\"]\n");
    p.script("plain-script", "echo \"a script without #! got $1\"\n");
    let out = p.irun().args(["a", "b"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("a script without #! got one"), "{out:?}");
    assert!(out.stdout.contains("a script without #! got two"), "{out:?}");
}

#[test]
fn shell_syntax_still_runs_through_the_shell() {
    let p = Project::new(
        "[tasks.a]\ncmd = \"printf '%s\\\\n' 'two words' | tr a-z A-Z; echo \\\"$GREETING\\\"\"\nenv = { GREETING = \"hi there\" }\n",
    );
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("a | TWO WORDS"), "{out:?}");
    assert!(out.stdout.contains("a | hi there"), "{out:?}");
}

#[test]
fn a_quick_task_that_writes_more_than_a_pipe_holds_loses_no_line() {
    // 100,000 lines are ~600 KB, far more than a pipe holds: the task blocks until irun reads, and must not hang.
    let p = Project::new("[tasks.t]\ncmd = \"seq 1 100000\"\n");
    let out = p.irun().args(["--progress", "never", "t"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().filter_map(|l| l.strip_prefix("t | ")).collect();
    assert_eq!(lines.len(), 100_000);
    assert_eq!(lines.first(), Some(&"1"));
    assert_eq!(lines.last(), Some(&"100000"));
}

#[test]
fn a_running_tasks_output_is_shown_before_it_ends() {
    let p = Project::new("[tasks.talk]\ncmd = \"./talk.sh\"\n");
    // It ends only once the test has seen its first line (or gives up after a long while, failing).
    p.script("talk.sh", "#!/bin/sh\necho hello\ni=0\nwhile [ ! -e go ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done\n[ -e go ] && echo bye\n");
    let mut run = p.irun().args(["--progress", "never", "talk"]).spawn();
    run.wait_for_line("talk | hello");
    p.file("go", "");
    let out = run.wait();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("talk | bye"), "{out:?}");
}

#[test]
fn a_program_started_directly_in_another_folder_sees_pwd_there() {
    let p = Project::new(
        "[tasks.a]\ncmd = \"printenv PWD\"\ncwd = \"sub\"\n[tasks.b]\ncmd = [\"printenv\", \"PWD\"]\ncwd = \"sub\"\n",
    );
    std::fs::create_dir(p.path("sub")).unwrap();
    let out = p.irun().args(["a", "b"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let sub = p.path("sub");
    assert!(out.stdout.contains(&format!("a | {}", sub.display())), "{out:?}");
    assert!(out.stdout.contains(&format!("b | {}", sub.display())), "{out:?}");
}

#[test]
fn irun_started_with_sigchld_ignored_still_waits_for_its_tasks() {
    // Ignored SIGCHLD is inherited through exec: the kernel would reap irun's children itself.
    let p = Project::new("[tasks.a]\ncmd = \"sh -c 'exit 3'\"\n[tasks.b]\ncmd = \"true\"\n");
    let wrapper =
        "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])";
    let out = std::process::Command::new("python3")
        .args(["-c", wrapper, env!("CARGO_BIN_EXE_irun"), "-k", "a", "b"])
        .current_dir(p.root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("a * FAILED") && stdout.contains("exit code 3"), "{stdout}");
    assert!(stdout.contains("b * ok"), "{stdout}");
}

#[test]
fn a_task_starts_with_no_signal_blocked_caught_or_ignored_that_irun_changed() {
    // irun catches SIGINT/SIGTERM/SIGHUP, ignores SIGPIPE (Rust does) and blocks every signal while it starts a
    // child: none of that may reach the task.
    let p = Project::new("[tasks.a]\ncmd = [\"cat\", \"/proc/self/status\"]\n");
    let out = p.irun().args(["a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let field = |name: &str| {
        let line = out.stdout.lines().find_map(|l| l.strip_prefix(&format!("a | {name}:"))).expect(name);
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    assert_eq!(field("SigBlk"), 0, "no signal blocked: {out:?}");
    assert_eq!(field("SigCgt"), 0, "no handler of irun's survives: {out:?}");
    let (pipe, chld) = (1 << (libc_sig::SIGPIPE - 1), 1 << (libc_sig::SIGCHLD - 1));
    assert_eq!(field("SigIgn") & (pipe | chld), 0, "SIGPIPE and SIGCHLD are back to their defaults: {out:?}");
}

mod libc_sig {
    pub const SIGPIPE: u32 = 13;
    pub const SIGCHLD: u32 = 17;
}

#[test]
fn a_program_whose_exec_fails_in_the_child_is_reported_and_the_run_goes_on() {
    // Found on disk and executable, but its interpreter is missing: the exec itself fails, in the child.
    let p = Project::new("[tasks.a]\ncmd = \"./broken one\"\n[tasks.b]\ncmd = \"true\"\n");
    p.script("broken", "#!/nonexistent/interpreter\n");
    let out = p.irun().args(["-k", "a", "b"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("cannot start `./broken`: no such program"), "{out:?}");
    assert!(out.stdout.contains("b * ok"), "{out:?}");
}

#[test]
fn in_a_run_only_irun_s_main_thread_takes_signals_so_a_child_s_exit_wakes_no_other_thread() {
    // A child that exits while the main thread has signals blocked (it does, for the instant of a spawn) queues a
    // SIGCHLD that the kernel would hand to the first thread that does not block it, waking it for nothing. The
    // other threads block every signal; the main thread (the one whose id is irun's pid) takes them all.
    let p = Project::new(
        "[tasks.a]\ncmd = [\"sh\", \"-c\", \"echo main $PPID; for t in /proc/$PPID/task/*; do echo $(basename $t) $(grep SigBlk $t/status); done\"]\n",
    );
    let out = p.irun().args(["--progress", "never", "a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let threads: Vec<(u32, u64)> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("a | "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let tid = words.next()?.parse().ok()?;
            let mask = u64::from_str_radix(words.nth(1)?, 16).ok()?;
            Some((tid, mask))
        })
        .collect();
    assert!(threads.len() >= 2, "irun has a main and a reporting thread: {out:?}");
    let main: u32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("a | main "))
        .and_then(|pid| pid.trim().parse().ok())
        .expect("irun's pid");
    assert!(threads.iter().any(|t| t.0 == main), "{out:?}");
    for (tid, mask) in threads {
        let sigchld = 1u64 << (nix::libc::SIGCHLD - 1);
        if tid == main {
            assert_eq!(mask & sigchld, 0, "the main thread takes SIGCHLD: {out:?}");
        } else {
            assert_ne!(mask & sigchld, 0, "thread {tid} blocks SIGCHLD: {out:?}");
        }
    }
}

#[test]
fn irun_catches_no_sigchld_while_a_task_runs_so_no_child_s_exit_interrupts_it() {
    // irun learns of exits through pidfds, and looks for a task stopped for the terminal without a SIGCHLD handler:
    // one, once installed, stays for the run and interrupts irun at every child's exit. The task runs longer than
    // irun's first look for such a stop (20 ms), then reads irun's caught signals.
    let p = Project::new("[tasks.a]\ncmd = [\"sh\", \"-c\", \"sleep 0.2; grep SigCgt /proc/$PPID/status\"]\n");
    let out = p.irun().args(["--progress", "never", "a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let caught = out.stdout.lines().find_map(|l| l.strip_prefix("a | SigCgt:")).expect("irun's SigCgt");
    let caught = u64::from_str_radix(caught.trim(), 16).unwrap();
    assert_eq!(caught & (1 << (libc_sig::SIGCHLD - 1)), 0, "irun has a SIGCHLD handler: {out:?}");
}

#[test]
fn a_file_the_kernel_cannot_execute_runs_with_the_shell_whether_or_not_irun_waits_for_its_exec() {
    // irun does not wait for the exec of a program the kernel would run as it is (an ELF binary, as `foreign` claims
    // to be; a script whose `#!` interpreter is there) where it can (x86-64), and waits for it elsewhere: either way a
    // file the kernel then refuses runs with /bin/sh, as a shell would run it (which takes `foreign`'s first line for
    // a command it cannot find, and `script`'s for a comment).
    let p = Project::new("[tasks.a]\ncmd = [\"./foreign\", \"x\"]\n[tasks.b]\ncmd = \"./script y\"\n");
    p.script("foreign", "\u{7f}ELF\necho \"foreign run by the shell with $1\"\n");
    p.script("interpreter", "echo interpreter run\n");
    p.script("script", &format!("#!{}\necho \"script run by the shell with $1\"\n", p.path("interpreter").display()));
    let out = p.irun().args(["a", "b"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("a | foreign run by the shell with x"), "{out:?}");
    assert!(out.stdout.contains("b | script run by the shell with y"), "{out:?}");
    assert!(!out.stdout.contains("interpreter run"), "{out:?}");
}
