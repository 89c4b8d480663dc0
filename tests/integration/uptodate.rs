//! Up-to-date checks: tasks whose inputs, settings and outputs are unchanged are skipped, and irun says why each
//! task runs. Runs are counted by what tasks append to log files.

use nix::sys::signal::Signal;

use crate::gate::OpenGate;
use crate::harness::{Output, Project};

const PIPELINE: &str = r#"
[tasks.gen]
cmd = "echo run >> gen.log; mkdir -p out; cat src/*.txt > out/all.txt"
sources = ["src/*.txt"]
outputs = ["out/all.txt"]
env = { MODE = "fast" }

[tasks.use]
cmd = "echo run >> use.log; wc -c < out/all.txt > out/size.txt"
deps = ["gen"]
sources = ["out/all.txt"]
outputs = ["out/size.txt"]

[tasks.plain]
cmd = "echo run >> plain.log"
"#;

fn pipeline() -> Project {
    let p = Project::new(PIPELINE);
    p.file("src/a.txt", "a\n");
    p
}

fn runs(p: &Project, log: &str) -> usize {
    p.count_lines(log)
}

fn run_ok(p: &Project, args: &[&str]) -> Output {
    p.run_ok(args)
}

/// `irun explain` line for `task`.
fn explain(p: &Project, task: &str) -> String {
    let out = run_ok(p, &["explain", task]);
    out.stdout.lines().find(|l| l.split_whitespace().next() == Some(task)).unwrap_or_default().to_string()
}

#[test]
fn a_second_run_skips_what_is_up_to_date() {
    let p = pipeline();
    assert!(explain(&p, "gen").ends_with("will run: never ran"), "{}", explain(&p, "gen"));
    run_ok(&p, &["use", "plain"]);
    let out = run_ok(&p, &["use", "plain"]);
    assert_eq!((runs(&p, "gen.log"), runs(&p, "use.log")), (1, 1), "{out:?}");
    assert_eq!(runs(&p, "plain.log"), 2, "a task without sources always runs");
    assert!(out.stdout.contains("gen   * up to date"), "{out:?}");
    let summary = out.stdout.split("irun: summary").nth(1).unwrap();
    assert!(summary.contains("up to date  gen") || summary.contains("up to date gen"), "{summary}");
    assert!(summary.contains("2 up to date"), "{summary}");
    assert_eq!(explain(&p, "gen"), "gen  up to date");
    assert!(explain(&p, "plain").contains("will run: it has no `sources`, so it always runs"));
    let dry = run_ok(&p, &["-n", "use"]);
    assert!(dry.stdout.contains("wave 1: gen (up to date)"), "{dry:?}");
}

/// After `change`, explain names `reason` for gen (and its dependent follows), and a run reruns gen.
fn reruns_because(p: &Project, change: impl FnOnce(&Project), reason: &str) {
    let before = runs(p, "gen.log");
    change(p);
    assert!(explain(p, "gen").ends_with(&format!("will run: {reason}")), "{}", explain(p, "gen"));
    assert!(explain(p, "use").ends_with("will run: dep `gen` will run"), "{}", explain(p, "use"));
    run_ok(p, &["use"]);
    assert_eq!(runs(p, "gen.log"), before + 1, "{reason}");
}

#[test]
fn editing_adding_or_deleting_a_source_reruns() {
    // Removing src/b.txt brings back the first run's inputs, which the cache would restore: this test is about
    // the fingerprint seeing each change, so the task runs.
    let p = pipeline().uncached();
    run_ok(&p, &["use"]);
    reruns_because(
        &p,
        |p| {
            p.file("src/a.txt", "A\n");
        },
        "`src/a.txt` changed",
    );
    reruns_because(
        &p,
        |p| {
            p.file("src/b.txt", "b\n");
        },
        "`src/b.txt` was added",
    );
    reruns_because(&p, |p| std::fs::remove_file(p.path("src/b.txt")).unwrap(), "`src/b.txt` was removed");
}

#[test]
fn a_source_rewritten_with_the_same_content_does_not_rerun() {
    let p = pipeline();
    run_ok(&p, &["use"]);
    p.file("src/a.txt", "a\n");
    run_ok(&p, &["use"]);
    assert_eq!(runs(&p, "gen.log"), 1, "same content, new mtime: still up to date");
}

#[test]
fn changing_cmd_or_env_reruns() {
    let p = pipeline();
    run_ok(&p, &["use"]);
    std::fs::write(p.path("Irun.toml"), PIPELINE.replace("MODE = \"fast\"", "MODE = \"slow\"")).unwrap();
    assert!(explain(&p, "gen").ends_with("will run: env changed"), "{}", explain(&p, "gen"));
    run_ok(&p, &["use"]);
    std::fs::write(
        p.path("Irun.toml"),
        PIPELINE.replace("MODE = \"fast\"", "MODE = \"slow\"").replace("mkdir -p out;", "mkdir -p out &&"),
    )
    .unwrap();
    assert!(explain(&p, "gen").ends_with("will run: command changed"), "{}", explain(&p, "gen"));
    run_ok(&p, &["use"]);
    assert_eq!(runs(&p, "gen.log"), 3);
}

#[test]
fn deleting_or_editing_an_output_reruns() {
    // The cache would restore a deleted or edited output (cache::a_deleted_output_is_restored_from_the_cache):
    // this test is about the fingerprint noticing, so the task runs.
    let p = pipeline().uncached();
    run_ok(&p, &["use"]);
    std::fs::remove_file(p.path("out/size.txt")).unwrap();
    assert!(explain(&p, "use").ends_with("will run: output `out/size.txt` missing"), "{}", explain(&p, "use"));
    run_ok(&p, &["use"]);
    assert_eq!(runs(&p, "use.log"), 2);
    p.file("out/size.txt", "tampered\n");
    assert!(explain(&p, "use").ends_with("will run: output `out/size.txt` changed"), "{}", explain(&p, "use"));
    run_ok(&p, &["use"]);
    assert_eq!(runs(&p, "use.log"), 3);
    assert_eq!(runs(&p, "gen.log"), 1, "gen was up to date throughout");
}

#[test]
fn a_failed_run_is_not_up_to_date() {
    let p = Project::new("[tasks.check]\ncmd = \"echo run >> check.log; test -e pass\"\nsources = [\"input.txt\"]\n");
    p.file("input.txt", "x\n");
    assert_eq!(p.irun().args(["check"]).run().code, 1);
    let out = p.irun().args(["explain", "check"]).run();
    assert!(out.stdout.contains("check  will run: last run failed"), "{out:?}");
    assert_eq!(p.irun().args(["check"]).run().code, 1);
    assert_eq!(runs(&p, "check.log"), 2, "the failed task ran again");
}

#[test]
fn a_dependent_reruns_when_its_dep_ran() {
    let p = pipeline();
    run_ok(&p, &["use"]);
    // gen reruns (its source changed) and rewrites out/all.txt with the same content: use still reruns.
    p.file("src/a.txt", "a\n");
    std::fs::write(p.path("Irun.toml"), PIPELINE.replace("MODE = \"fast\"", "MODE = \"x\"")).unwrap();
    let out = run_ok(&p, &["--explain", "use"]);
    assert!(out.stdout.contains("use * will run: dep `gen` ran"), "{out:?}");
    assert_eq!(runs(&p, "use.log"), 2);
}

#[test]
fn force_runs_everything() {
    let p = pipeline();
    run_ok(&p, &["use"]);
    let out = run_ok(&p, &["-B", "--explain", "use"]);
    assert!(out.stdout.contains("gen * will run: forced (--force)"), "{out:?}");
    assert_eq!((runs(&p, "gen.log"), runs(&p, "use.log")), (2, 2));
}

#[test]
fn rerun_runs_the_named_targets_and_only_the_deps_that_are_not_up_to_date() {
    let p = Project::new(&format!("{PIPELINE}\n[tasks.all]\ndeps = [\"use\"]\n"));
    p.file("src/a.txt", "a\n");
    run_ok(&p, &["use"]);
    let out = run_ok(&p, &["--rerun", "--explain", "use"]);
    assert!(out.stdout.contains("use * will run: asked for with --rerun"), "{out:?}");
    assert!(out.stdout.contains("gen * up to date"), "{out:?}");
    assert_eq!((runs(&p, "gen.log"), runs(&p, "use.log")), (1, 2));
    // A group named with --rerun stands for the tasks it gathers; the JSON reason says it was asked for.
    let out = run_ok(&p, &["--rerun", "--explain", "--json", "all"]);
    let reason = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["kind"] == "will_run" && e["task"] == "use")
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(reason["reason"], "rerun", "{reason}");
    assert_eq!((runs(&p, "gen.log"), runs(&p, "use.log")), (1, 3));
    let dry = run_ok(&p, &["-n", "--rerun", "use"]);
    assert!(dry.stdout.contains("wave 1: gen (up to date)") && dry.stdout.contains("wave 2: use\n"), "{dry:?}");
    // -B still means everything.
    run_ok(&p, &["-B", "use"]);
    assert_eq!((runs(&p, "gen.log"), runs(&p, "use.log")), (2, 4));
}

#[test]
fn a_garbage_or_truncated_state_gives_a_warning_and_a_full_run() {
    // The cache would restore what the lost state no longer says is up to date: this test is about the state.
    let p = pipeline().uncached();
    run_ok(&p, &["use"]);
    let state = std::fs::read(p.path(".irun/state.bin")).unwrap();
    let mut flipped = state.clone();
    flipped[state.len() / 2] ^= 1;
    let cases = [state[..state.len() / 2].to_vec(), b"\x00\x01garbage".to_vec(), flipped];
    for (n, broken) in cases.iter().enumerate() {
        std::fs::write(p.path(".irun/state.bin"), broken).unwrap();
        let out = run_ok(&p, &["use"]);
        assert!(
            out.stdout.contains("irun: warning: ") && out.stdout.contains(".irun/state.bin is unreadable"),
            "{out:?}"
        );
        assert!(out.stdout.contains("running every task"), "{out:?}");
        assert_eq!(runs(&p, "gen.log"), n + 2, "{out:?}");
        // ...and the state is whole again afterwards.
        let again = run_ok(&p, &["use"]);
        assert!(!again.stdout.contains("warning"), "{again:?}");
        assert_eq!(runs(&p, "gen.log"), n + 2);
    }
}

#[test]
fn a_state_that_is_not_a_regular_file_is_ignored_with_a_warning_and_replaced() {
    // The cache would restore what the lost state no longer says is up to date: this test is about the state.
    let p = pipeline().uncached();
    run_ok(&p, &["use"]);
    let state = p.path(".irun/state.bin");
    let cases: [(&str, &dyn Fn()); 3] = [
        ("a named pipe", &|| nix::unistd::mkfifo(&state, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()),
        ("a device", &|| std::os::unix::fs::symlink("/dev/zero", &state).unwrap()),
        // A sparse file: 1 GiB that takes no room, but would take 1 GiB of memory to read.
        ("larger than 256 MiB", &|| std::fs::File::create(&state).unwrap().set_len(1 << 30).unwrap()),
    ];
    for (n, (what, make)) in cases.into_iter().enumerate() {
        std::fs::remove_file(&state).unwrap();
        make();
        let out = run_ok(&p, &["use"]);
        let warning = out.stdout.lines().filter(|l| l.contains("irun: warning: ")).collect::<Vec<_>>();
        assert_eq!(warning.len(), 1, "one notice: {out:?}");
        let said = [format!("state.bin is not a regular file ({what})"), format!("state.bin is {what}")];
        assert!(said.iter().any(|s| warning[0].contains(s.as_str())), "{out:?}");
        assert!(warning[0].contains("running every task"), "{out:?}");
        assert_eq!(runs(&p, "gen.log"), n + 2, "{out:?}");
        // The save replaced it (by a rename: nothing was written through it) with a state that works.
        assert!(std::fs::symlink_metadata(&state).unwrap().is_file(), "{what} replaced");
        let again = run_ok(&p, &["use"]);
        assert!(!again.stdout.contains("warning"), "{again:?}");
        assert_eq!(runs(&p, "gen.log"), n + 2, "up to date again");
    }
}

#[test]
fn sigkill_while_saving_state_leaves_a_usable_state() {
    // Inputs go back to earlier ones the cache would restore: this test is about what the state says ran.
    let p = pipeline().uncached();
    run_ok(&p, &["use"]);
    let state = p.path(".irun/state.bin");
    let old = std::fs::read(&state).unwrap();
    // A source changed: the next run has a new state to save.
    p.file("src/a.txt", "changed\n");
    // Every open of a file in .irun waits for the test's answer from here on (see gate.rs): irun is stopped at the
    // exact point where it opens the temporary file of its save, after creating it and before writing to it.
    let gate = OpenGate::new(&p.path(".irun"));
    let mut run = p.irun().args(["use"]).spawn();
    let saving =
        |path: &std::path::Path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("state.bin.tmp-"));
    let Some(held) = gate.hold(run.pid(), saving) else {
        panic!("irun never began to save its state: {:?}", run.wait());
    };
    // Killed there: SIGKILL is pending before the open is answered, so irun runs no further instruction of its own.
    run.signal(Signal::SIGKILL);
    drop(gate);
    let out = run.wait();
    assert_eq!(out.code, 128 + Signal::SIGKILL as i32, "killed: {out:?}");
    assert!(held.path.exists(), "it was killed inside its save, with its temporary file created: {:?}", held.path);
    assert_eq!(std::fs::read(&state).unwrap(), old, "the state it was replacing is left as it was, whole");
    // That state is usable: read without a warning, and it still says what the killed run never recorded.
    let out = run_ok(&p, &["explain", "gen"]);
    assert!(!out.all().contains("warning"), "the state was left unusable: {out:?}");
    assert!(out.stdout.lines().any(|l| l.starts_with("gen ") && l.contains("will run: ")), "{out:?}");
    // The next run cleans up what the killed one left, and saves its own state.
    let next = run_ok(&p, &["use"]);
    let leftovers: Vec<_> = std::fs::read_dir(p.path(".irun")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().contains(".tmp-")), "{leftovers:?}\n{next:?}");
    assert!(explain(&p, "use").ends_with("up to date"), "{}", explain(&p, "use"));
}

#[test]
fn a_service_starts_only_for_a_dependent_that_runs_and_that_one_reruns_only_when_the_service_changed() {
    let p = Project::new(
        "[tasks.setup]\ncmd = \"echo run >> setup.log\"\nsources = [\"setup.cfg\"]\n\
         [tasks.svc]\ncmd = \"echo run >> svc.log; echo up; exec sleep 1000\"\ndaemon = true\nready = { log = \"up\" }\nsources = [\"svc.cfg\"]\ndeps = [\"setup\"]\n\
         [tasks.client]\ncmd = \"echo run >> client.log\"\ndeps = [\"svc\"]\nsources = [\"client.cfg\"]\n",
    );
    p.file("svc.cfg", "").file("client.cfg", "").file("setup.cfg", "");
    run_ok(&p, &["client"]);
    // Nothing changed: its client is up to date, so the service is not even started.
    let out = run_ok(&p, &["client"]);
    assert_eq!((runs(&p, "svc.log"), runs(&p, "client.log")), (1, 1), "{out:?}");
    assert!(out.stdout.contains("client * up to date"), "{out:?}");
    assert!(out.stdout.contains("svc    * skipped: nothing that needs it is left to run"), "{out:?}");
    assert!(explain(&p, "client").ends_with("up to date"), "{}", explain(&p, "client"));
    // The service's own source changed: its fingerprint did, and the client runs again.
    p.file("svc.cfg", "changed\n");
    assert!(
        explain(&p, "client").ends_with("will run: service `svc` changed since it last ran"),
        "{}",
        explain(&p, "client")
    );
    run_ok(&p, &["client"]);
    assert_eq!((runs(&p, "svc.log"), runs(&p, "client.log")), (2, 2));
    // A dep of the service ran: that changes the service too.
    p.file("setup.cfg", "changed\n");
    let out = run_ok(&p, &["--explain", "client"]);
    assert_eq!((runs(&p, "setup.log"), runs(&p, "client.log")), (2, 3), "{out:?}");
    assert!(out.stdout.contains("client * will run: service `svc` changed since it last ran"), "{out:?}");
}

#[test]
fn a_dependent_reruns_when_its_dep_ran_in_an_earlier_invocation() {
    // `report` reads gen's output without declaring it: only gen's own record can tell it is stale.
    let p = Project::new(&format!(
        "{PIPELINE}\n[tasks.report]\ncmd = \"cp out/all.txt report.txt\"\ndeps = [\"gen\"]\nsources = [\"report.cfg\"]\n"
    ));
    p.file("src/a.txt", "a\n").file("report.cfg", "");
    run_ok(&p, &["report"]);
    p.file("src/a.txt", "changed\n");
    run_ok(&p, &["gen"]);
    assert!(explain(&p, "report").ends_with("will run: dep `gen` ran since it last ran"), "{}", explain(&p, "report"));
    run_ok(&p, &["report"]);
    assert_eq!(p.read("report.txt"), "changed\n", "report saw gen's new output");
    assert!(explain(&p, "report").ends_with("up to date"));
}

#[test]
fn a_task_cancelled_before_it_finished_is_not_up_to_date() {
    let p = Project::new(
        "[tasks.bad]\ncmd = \"test ! -e fail\"\n[tasks.slow]\ncmd = \"echo run >> slow.log; test ! -e fail || exec sleep 1000\"\nsources = [\"in.txt\"]\n",
    );
    p.file("in.txt", "x\n");
    run_ok(&p, &["slow", "bad"]);
    // Force slow to run again, and fail `bad` while it runs: slow is cancelled half-way.
    p.file("in.txt", "y\n");
    p.file("fail", "");
    assert_eq!(p.irun().args(["-j2", "slow", "bad"]).run().code, 1);
    std::fs::remove_file(p.path("fail")).unwrap();
    let out = p.irun().args(["explain", "slow"]).run();
    assert!(out.stdout.contains("slow  will run: last run did not finish"), "{out:?}");
}

#[test]
fn sources_in_ignored_or_oddly_named_folders_are_tracked_when_named() {
    let p = Project::new(
        r#"
[tasks.gen]
cmd = "echo run >> gen.log"
sources = ["build/**", "src/**/*.rs", "conf/"]
"#,
    );
    p.file(".gitignore", "build/\ngen.log\n");
    p.file("build/sub/x.txt", "1\n").file("src/target/mod.rs", "1\n").file("conf/a.toml", "1\n");
    run_ok(&p, &["gen"]);
    for (path, content) in [("build/sub/x.txt", "2\n"), ("src/target/mod.rs", "2\n"), ("conf/a.toml", "2\n")] {
        p.file(path, content);
        let line = explain(&p, "gen");
        assert!(line.ends_with(&format!("will run: `{path}` changed")), "{path}: {line}");
        run_ok(&p, &["gen"]);
    }
}

#[test]
fn a_fifo_among_the_sources_does_not_hang_irun() {
    let p = Project::new("[tasks.t]\ncmd = \"echo run >> t.log\"\nsources = [\"src/**\"]\n");
    p.file("src/a.txt", "a\n");
    nix::unistd::mkfifo(&p.path("src/pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    run_ok(&p, &["t"]);
    run_ok(&p, &["t"]);
    assert_eq!(runs(&p, "t.log"), 1);
}

#[test]
fn a_declared_output_that_was_never_produced_is_missing() {
    // The cached result lacks the file as well: this test is about the fingerprint's verdict, so the task runs.
    let p =
        Project::new("[tasks.t]\ncmd = \"true\"\nsources = [\"in.txt\"]\noutputs = [\"out/result.bin\"]\n").uncached();
    p.file("in.txt", "x\n");
    run_ok(&p, &["t"]);
    let out = p.irun().args(["explain", "t"]).run();
    assert!(out.stdout.contains("t  will run: output `out/result.bin` missing"), "{out:?}");
}

#[test]
fn two_runs_at_once_never_lose_each_others_records() {
    // A kept failure must run again: the cache would restore an earlier pass with the same inputs.
    let p = Project::new(
        r#"
[tasks.x]
cmd = "! test -e x.fails"
sources = ["x.cfg"]

[tasks.y]
cmd = "touch y.started; while [ ! -e y.release ]; do sleep 0.01; done"
sources = ["y.cfg"]
"#,
    )
    .uncached();
    p.file("x.cfg", "").file("y.cfg", "");
    p.file("y.release", "");
    run_ok(&p, &["x", "y"]);
    std::fs::remove_file(p.path("y.release")).unwrap();
    // A slow run of y loads the state while x's record says "ok"...
    let mut slow = p.irun().args(["-B", "y"]).spawn();
    slow.wait_for_line("y * started");
    // ...meanwhile x fails in another run...
    p.file("x.fails", "");
    let failed = p.irun().args(["-B", "x"]).run();
    assert_eq!(failed.code, 1, "{failed:?}");
    // ...then the slow run ends and saves.
    p.file("y.release", "");
    assert_eq!(slow.wait().code, 0);
    let out = p.irun().args(["x"]).run();
    assert_eq!(out.code, 1, "x's failure was kept, so x runs (and fails) again: {out:?}");
    assert!(explain_failing(&p, "x").ends_with("will run: last run failed"), "{}", explain_failing(&p, "x"));
}

fn explain_failing(p: &Project, task: &str) -> String {
    let out = p.irun().args(["explain", task]).run();
    out.stdout.lines().find(|l| l.split_whitespace().next() == Some(task)).unwrap_or_default().to_string()
}

#[test]
fn a_state_written_by_the_previous_version_keeps_tasks_up_to_date() {
    // irun's first state format: TOML, settings hashed from Debug text. Written here as that version would have.
    let p = Project::new("[tasks.gen]\ncmd = \"echo run >> gen.log\"\nsources = [\"src/*.txt\"]\n");
    p.file("src/a.txt", "a\n");
    run_ok(&p, &["gen"]);
    let json = p.state();
    let record = &json["tasks"]["gen"]["record"];
    let hash = |s: &str| format!("{:032x}", xxhash_rust::xxh3::xxh3_128(s.as_bytes()));
    let stamp = &record["sources"]["src/a.txt"];
    let body = format!(
        "[last]\ngen = \"ok\"\n\n[tasks.gen]\nok = true\nrecorded_at = {}\ncommand = \"{}\"\nenv = \"{}\"\ncwd = \"{}\"\nglobs = \"{}\"\n\n[tasks.gen.sources.\"src/a.txt\"]\nsize = {}\nmtime = {}\nhash = \"{}\"\n",
        record["recorded_at"],
        hash("Some(Shell(\"echo run >> gen.log\"))"),
        hash("[]"),
        // (An absolute cwd then: records are relative to the project since.)
        p.root().display(),
        hash("[\"src/*.txt\"] []"),
        stamp["size"],
        stamp["mtime"],
        stamp["hash"].as_str().unwrap(),
    );
    let text = format!("tool = \"irun\"\nversion = 1\ndigest = \"{}\"\n\n{body}", hash(&body));
    std::fs::remove_file(p.path(".irun/state.bin")).unwrap();
    p.file(".irun/state.toml", &text);
    let out = run_ok(&p, &["gen"]);
    assert!(out.stdout.contains("gen * up to date"), "migrated without a forced rerun: {out:?}");
    assert!(!p.exists(".irun/state.toml") && p.exists(".irun/state.bin"), "replaced by the binary state");
    assert_eq!(runs(&p, "gen.log"), 1);
}

#[test]
fn a_binary_state_of_the_format_before_keeps_tasks_up_to_date() {
    // tests/fixtures/state-format3.bin was written by the irun of format 3 (hashes as hex text), for this project
    // with these files (other inodes and times now: their content vouches for them).
    let p = Project::new(
        "[tasks.gen]\ncmd = \"cp src/a.txt out.txt && echo run >> gen.log\"\nsources = [\"src/a.txt\"]\noutputs = [\"out.txt\"]\n",
    );
    p.file("src/a.txt", "a\n").file("out.txt", "a\n");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-format3.bin");
    std::fs::create_dir_all(p.path(".irun")).unwrap();
    std::fs::copy(fixture, p.path(".irun/state.bin")).unwrap();
    let out = run_ok(&p, &["gen"]);
    assert!(out.stdout.contains("gen * up to date"), "read without a forced rerun: {out:?}");
    assert!(!p.exists("gen.log"), "{out:?}");
    p.file("src/a.txt", "b\n");
    let out = run_ok(&p, &["gen"]);
    assert!(out.stdout.contains("gen * ok"), "a change is still seen: {out:?}");
}

#[test]
fn sources_reached_through_a_symlinked_folder_are_checked() {
    let p = Project::new("[tasks.build]\ncmd = \"echo run >> build.log\"\nsources = [\"src/**\"]\n");
    p.file("src/main.txt", "m\n").file("shared/lib/util.txt", "1\n");
    std::os::unix::fs::symlink("../shared/lib", p.path("src/lib")).unwrap();
    // A link loop (src/again -> src) is walked once.
    std::os::unix::fs::symlink(".", p.path("src/again")).unwrap();
    run_ok(&p, &["build"]);
    assert!(explain(&p, "build").ends_with("up to date"), "{}", explain(&p, "build"));
    p.file("shared/lib/util.txt", "2\n");
    assert!(explain(&p, "build").ends_with("will run: `src/lib/util.txt` changed"), "{}", explain(&p, "build"));
    run_ok(&p, &["build"]);
    assert_eq!(runs(&p, "build.log"), 2);
}

#[test]
fn explain_and_a_run_agree_when_a_services_dep_will_run() {
    let p = Project::new(
        "[tasks.t]\ncmd = \"echo run >> t.log\"\nsources = [\"t.cfg\"]\n\
         [tasks.svc]\ncmd = \"echo up; exec sleep 1000\"\ndaemon = true\nready = { log = \"up\" }\nsources = [\"svc.cfg\"]\ndeps = [\"t\"]\n\
         [tasks.y]\ncmd = \"echo run >> y.log\"\ndeps = [\"svc\"]\nsources = [\"y.cfg\"]\n",
    );
    p.file("t.cfg", "").file("svc.cfg", "").file("y.cfg", "");
    run_ok(&p, &["y"]);
    assert!(explain(&p, "y").ends_with("up to date"), "{}", explain(&p, "y"));
    p.file("t.cfg", "changed\n");
    assert!(explain(&p, "y").ends_with("will run: dep `svc` will run"), "{}", explain(&p, "y"));
    run_ok(&p, &["y"]);
    assert_eq!(runs(&p, "y.log"), 2, "and the run agrees");
}

#[test]
fn a_service_without_sources_is_fingerprinted_by_its_definition() {
    // Its command, env, cwd and probe: the same definition leaves its dependents up to date (and it is not even
    // started); a change to any of them reruns them.
    let toml = |cmd: &str, env: &str, cwd: &str, log: &str| {
        format!(
            "[tasks.db]\ncmd = \"{cmd}\"\ndaemon = true\nready = {{ log = \"{log}\" }}\nenv = {{ MODE = \"{env}\" }}\n\
             cwd = \"{cwd}\"\n\
             [tasks.seed]\ncmd = \"echo run >> seed.log\"\ndeps = [\"db\"]\nsources = [\"seed.cfg\"]\n"
        )
    };
    let first = toml("echo up; exec sleep 1000", "a", ".", "up");
    let p = Project::new(&first);
    p.file("seed.cfg", "").file("data/keep", "");
    run_ok(&p, &["seed"]);
    let out = run_ok(&p, &["--explain", "seed"]);
    assert_eq!(runs(&p, "seed.log"), 1, "{out:?}");
    assert!(out.stdout.contains("seed * up to date"), "{out:?}");
    assert!(out.stdout.contains("db   * skipped: nothing that needs it is left to run"), "{out:?}");
    let changes = [
        ("command", toml("echo up; exec sleep 999", "a", ".", "up")),
        ("env", toml("echo up; exec sleep 999", "b", ".", "up")),
        ("cwd", toml("echo up; exec sleep 999", "b", "data", "up")),
        ("probe", toml("echo up; exec sleep 999", "b", "data", "u")),
    ];
    for (n, (what, text)) in changes.iter().enumerate() {
        p.file("Irun.toml", text);
        let out = run_ok(&p, &["--explain", "seed"]);
        assert_eq!(runs(&p, "seed.log"), n + 2, "a changed {what} reruns its dependent: {out:?}");
        assert!(out.stdout.contains("seed * will run: service `db` changed since it last ran"), "{what}: {out:?}");
        let again = run_ok(&p, &["seed"]);
        assert_eq!(runs(&p, "seed.log"), n + 2, "and then it is up to date again: {again:?}");
    }
}

#[test]
fn a_state_that_cannot_be_written_is_a_warning_said_once_not_a_failure() {
    let mut toml = String::new();
    for i in 0..20 {
        toml.push_str(&format!("[tasks.t{i}]\ncmd = \"true\"\nsources = [\"in.txt\"]\n"));
    }
    let p = Project::new(&toml);
    p.file("in.txt", "");
    // .irun is a file, so no state can be written (or read) there.
    p.file(".irun", "not a folder\n");
    let targets: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let out = p.irun().args(&targets).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.matches("warning: cannot save irun's state to").count(), 1, "{out:?}");
    assert!(out.stdout.contains(".irun/state.bin"), "names the file: {out:?}");
}

#[test]
fn a_task_with_outputs_and_no_sources_runs_again_only_when_an_output_is_gone_or_a_dep_ran() {
    // make's rule for a target without prerequisites: `init` (like initdb) makes a folder that others then write to.
    // The cache would restore a gone output: this test is about make's rule deciding that the task runs.
    let p = Project::new(
        "[tasks.gen]\ncmd = \"echo run >> gen.log\"\nsources = [\"gen.cfg\"]\n\
         [tasks.init]\ncmd = \"mkdir -p data && echo 15 > data/VERSION && echo run >> init.log\"\n\
         outputs = [\"data/VERSION\", \"data/*.db\"]\ndeps = [\"gen\"]\n\
         [tasks.fill]\ncmd = \"echo row >> data/main.db; echo run >> fill.log\"\ndeps = [\"init\"]\n",
    )
    .uncached();
    p.file("gen.cfg", "");
    p.file("data/main.db", "");
    run_ok(&p, &["fill"]);
    // `fill` changed what `init` made (as a server changes its data): `init` is still up to date.
    let out = run_ok(&p, &["fill"]);
    assert_eq!((runs(&p, "init.log"), runs(&p, "fill.log")), (1, 2), "{out:?}");
    assert!(out.stdout.contains("init * up to date"), "{out:?}");
    // A glob that matches nothing any more counts as a missing output.
    std::fs::remove_file(p.path("data/main.db")).unwrap();
    assert!(explain(&p, "init").ends_with("will run: output `data/*.db` missing"), "{}", explain(&p, "init"));
    p.file("data/main.db", "");
    // A declared file gone.
    std::fs::remove_file(p.path("data/VERSION")).unwrap();
    run_ok(&p, &["fill"]);
    assert_eq!(runs(&p, "init.log"), 2);
    // A dep ran.
    p.file("gen.cfg", "changed\n");
    let out = run_ok(&p, &["--explain", "fill"]);
    assert_eq!(runs(&p, "init.log"), 3, "{out:?}");
    assert!(out.stdout.contains("init * will run: dep `gen` ran"), "{out:?}");
}

#[test]
fn an_edit_to_an_excluded_source_or_output_does_not_rerun_and_an_included_one_does() {
    // The cache would restore an edited output: this test is about what the fingerprint counts, so the task runs.
    let p = Project::new(
        r#"
[tasks.build]
cmd = "echo run >> build.log; mkdir -p dist/cache; echo out > dist/app.js; echo c > dist/cache/stamp"
sources = ["src/**", "!src/**/*.test.txt"]
outputs = ["dist/**", "!dist/cache/**"]
"#,
    )
    .uncached();
    p.file("src/a.txt", "a\n");
    p.file("src/a.test.txt", "t\n");
    run_ok(&p, &["build"]);
    p.file("src/a.test.txt", "edited\n");
    p.file("src/b.test.txt", "added\n");
    p.file("dist/cache/stamp", "rewritten by a tool\n");
    p.file("dist/cache/more", "added\n");
    assert_eq!(explain(&p, "build"), "build  up to date");
    run_ok(&p, &["build"]);
    assert_eq!(runs(&p, "build.log"), 1, "excluded files are not looked at");
    p.file("dist/app.js", "tampered\n");
    assert!(explain(&p, "build").ends_with("will run: output `dist/app.js` changed"), "{}", explain(&p, "build"));
    run_ok(&p, &["build"]);
    p.file("src/a.txt", "A\n");
    assert!(explain(&p, "build").ends_with("will run: `src/a.txt` changed"), "{}", explain(&p, "build"));
    run_ok(&p, &["build"]);
    assert_eq!(runs(&p, "build.log"), 3);
}

#[test]
fn an_output_glob_whose_files_are_all_excluded_counts_as_missing() {
    // The cache would restore the missing output: this test is about the fingerprint's verdict, so the task runs.
    let p = Project::new(
        r#"
[tasks.init]
cmd = "echo run >> init.log; mkdir -p data/tmp; echo x > data/tmp/lock; echo v > data/VERSION"
outputs = ["data/**", "!data/tmp/**"]
"#,
    )
    .uncached();
    run_ok(&p, &["init"]);
    p.file("data/tmp/lock", "the server rewrote it\n");
    assert_eq!(explain(&p, "init"), "init  up to date");
    std::fs::remove_file(p.path("data/VERSION")).unwrap();
    assert!(explain(&p, "init").ends_with("will run: output `data/**` missing"), "{}", explain(&p, "init"));
    run_ok(&p, &["init"]);
    assert_eq!(runs(&p, "init.log"), 2);
}
