//! Starting a program: PATH lookup, environments, the shell for what the kernel cannot execute, `posix_spawn`.

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
    let spawner = Spawner::new();
    let resolve = |program: &str| spawner.resolve(program, Some(&path), dir.path());
    assert_eq!(resolve("tool").unwrap(), a.join("tool"));
    let err = resolve("plain").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    let err = resolve("no-such-tool").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    // A path is taken as it is, relative to the task's directory.
    assert_eq!(resolve("./x").unwrap(), dir.path().join("./x"));
}

/// Run `script` with /bin/sh through the posix_spawn fallback, in `cwd`; its exit code.
fn through_posix_spawn(script: &str, cwd: &Path) -> i32 {
    let argv = CStrings::new(["sh", "-c", script].into_iter()).unwrap();
    let spawner = Spawner::new();
    let env = Environment::new(&spawner.base_env, &[]).unwrap();
    let null = spawner.null.as_ref().unwrap().as_raw_fd();
    let dir = CString::new(cwd.as_os_str().as_bytes()).unwrap();
    let (argv, envp) = (argv.ptrs.as_ptr(), env.ptrs.as_ptr());
    let pid = sys::posix_spawn(c"/bin/sh", argv, envp, [null, null, null], Some(&dir)).unwrap();
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_posix_spawn_fallback_starts_the_program_in_its_directory_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap();
    let check = format!("[ \"$(pwd -P)\" = '{}' ] && set -- $(cat /proc/$$/stat) && [ \"$5\" = $$ ]", here.display());
    assert_eq!(through_posix_spawn(&check, &here), 0);
    assert_eq!(through_posix_spawn("exit 3", &here), 3);
}

fn executable(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn only_binaries_and_scripts_with_an_executable_interpreter_are_executed_directly() {
    let dir = tempfile::tempdir().unwrap();
    assert!(executes_directly(Path::new("/bin/sh")), "an ELF binary");
    assert!(executes_directly(&executable(dir.path(), "script", b"#! /bin/sh -e\necho\n")));
    assert!(!executes_directly(&executable(dir.path(), "lost", b"#!/nonexistent/sh\n")));
    assert!(!executes_directly(&executable(dir.path(), "plain", b"echo no shebang\n")), "left to the shell");
    assert!(!executes_directly(&dir.path().join("missing")));
}

/// Start `program` (in `dir`) with `spawner`, without waiting for its exec; its exit code and how its exec went.
fn started_before_exec(spawner: &Spawner, dir: &Path, program: &str) -> (i32, io::Result<()>) {
    let invocation = super::super::command_line::invocation(&crate::config::Cmd::Argv(vec![program.into()]));
    let request = Request {
        invocation: &invocation,
        cwd: dir,
        env: &[],
        output: Output::Discarded,
        stdin_inherited: false,
        cgroup: None,
        exec_later: true,
    };
    let child = spawner.spawn(&request).unwrap();
    let code = match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
        other => panic!("{other:?}"),
    };
    let exec = child.exec.expect("started before its exec");
    (code, exec.outcome(Duration::from_secs(60)).expect("past its exec once it has exited"))
}

/// Have `spawner` take `program` (in `dir`) for one the kernel executes as it is, as it would for a while after it
/// last looked at it.
fn taken_for_direct(spawner: &Spawner, dir: &Path, program: &str) {
    spawner.direct.lock().unwrap().insert(dir.join(program), (true, Instant::now()));
}

#[test]
fn a_child_started_before_its_exec_says_how_the_exec_went_once_it_has_exited() {
    if !vfork::LATER {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    executable(dir.path(), "exits", b"#!/bin/sh\nexit 3\n");
    let spawner = Spawner::new();
    let (code, exec) = started_before_exec(&spawner, dir.path(), "./exits");
    assert_eq!(code, 3);
    assert!(exec.is_ok(), "{exec:?}");
    // Removed since it was looked at: its exec fails, in the child, which then exits.
    taken_for_direct(&spawner, dir.path(), "./gone");
    let (code, exec) = started_before_exec(&spawner, dir.path(), "./gone");
    assert_eq!(code, 127);
    assert_eq!(exec.unwrap_err().kind(), io::ErrorKind::NotFound);
}

#[test]
fn a_file_the_kernel_cannot_execute_runs_with_the_shell_though_irun_did_not_wait_for_its_exec() {
    if !vfork::LATER {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spawner = Spawner::new();
    // Rewritten without `#!` since irun looked at it (it would look again only a while later).
    executable(dir.path(), "rewritten", b"exit 5\n");
    taken_for_direct(&spawner, dir.path(), "./rewritten");
    // A `#!` interpreter that is itself a script without one.
    let interpreter = executable(dir.path(), "interpreter", b"exit 9\n");
    executable(dir.path(), "script", format!("#!{}\nexit 6\n", interpreter.display()).as_bytes());
    // A binary for no loader this kernel has (the shell takes each line for a command: the first is not found).
    executable(dir.path(), "foreign", b"\x7fELF\nexit 7\n");
    for (program, code) in [("./rewritten", 5), ("./script", 6), ("./foreign", 7)] {
        let (exited, exec) = started_before_exec(&spawner, dir.path(), program);
        assert_eq!((exited, exec.is_ok()), (code, true), "{program}: {exec:?}");
    }
}

#[test]
fn a_child_irun_did_not_wait_for_gets_irun_s_environment_though_the_spawner_is_gone_before_its_exec() {
    if !vfork::LATER {
        return;
    }
    let Some(frozen) = crate::exec::cgroup::Frozen::new() else {
        eprintln!("not run: irun cannot make cgroups here");
        return;
    };
    let spawner = Spawner::new();
    let here = std::env::current_dir().unwrap();
    let invocation = super::super::command_line::invocation(&crate::config::Cmd::Argv(vec!["/usr/bin/env".into()]));
    let request = Request {
        invocation: &invocation,
        cwd: &here,
        env: &[("IRUN_TEST_ENTRY", "kept")],
        output: Output::Piped,
        stdin_inherited: false,
        cgroup: Some(&frozen.task),
        exec_later: true,
    };
    let child = spawner.spawn(&request).unwrap();
    assert!(child.exec.is_some(), "started before its exec");
    let mut expected: Vec<String> = spawner.base_env.iter().map(|(_, e)| e.to_string_lossy().into_owned()).collect();
    expected.push("IRUN_TEST_ENTRY=kept".into());
    // Frozen before its exec, it outlives the spawner, whose memory is then used again.
    drop(spawner);
    let reused: Vec<Vec<u8>> = (0..10_000).map(|i| vec![b'x'; 8 + i % 400]).collect();
    frozen.thaw();
    let mut printed = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(child.stdout.unwrap()), &mut printed).unwrap();
    let printed = String::from_utf8_lossy(&printed);
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid), None).unwrap();
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(child.pid), 0));
    let mut printed: Vec<&str> = printed.lines().collect();
    printed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(printed, expected);
    drop(reused);
}

#[test]
fn the_task_environment_overrides_irun_s_and_the_last_entry_wins() {
    let spawner = Spawner::new();
    let env = Environment::new(&spawner.base_env, &[("IRUN_TEST_A", "1"), ("PATH", "/nowhere"), ("IRUN_TEST_A", "2")])
        .unwrap();
    let entries: Vec<String> = env.ptrs[..env.ptrs.len() - 1]
        .iter()
        // SAFETY: every pointer but the last points to a NUL-terminated string owned by `env` or the spawner.
        .map(|&p| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
        .collect();
    assert!(entries.contains(&"IRUN_TEST_A=2".to_string()), "{entries:?}");
    assert!(!entries.contains(&"IRUN_TEST_A=1".to_string()));
    assert_eq!(entries.iter().filter(|e| e.starts_with("PATH=")).collect::<Vec<_>>(), ["PATH=/nowhere"]);
    assert!(env.ptrs.last().unwrap().is_null());
}
