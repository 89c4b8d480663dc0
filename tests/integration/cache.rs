//! The local cache: a result stored under its key is restored instead of running the task again.

use crate::harness::Project;

const BUILD: &str = r#"
[tasks.build]
cmd = "echo run >> build.log; mkdir -p out; cat src.txt > out/a.txt; echo built it"
sources = ["src.txt"]
outputs = ["out/*"]
"#;

#[test]
fn a_branch_switch_back_is_a_local_hit_with_outputs_and_output_restored() {
    let p = Project::new(BUILD);
    p.file("src.txt", "one\n");
    let cached = |args: &[&str]| p.irun().args(args).run();
    cached(&["build"]);
    p.file("src.txt", "two\n");
    cached(&["build"]);
    p.file("src.txt", "one\n");
    let out = p.irun().args(["--json", "build"]).run();
    assert_eq!(p.count_lines("build.log"), 2, "the third run was restored, not run");
    assert_eq!(p.read("out/a.txt"), "one\n");
    assert!(out.stdout.contains(r#""status":"cached""#) && out.stdout.contains(r#""source":"local""#), "{out:?}");
    assert!(out.stdout.contains("built it"), "the output is replayed: {out:?}");
    // Its fingerprint was recorded: the next plain run finds it up to date.
    let out = p.run_ok(&["build"]);
    assert!(out.stdout.contains("up to date"), "{out:?}");
}

#[test]
fn a_failing_task_is_never_cached() {
    let p = Project::new(
        "[tasks.t]\ncmd = \"echo run >> t.log; mkdir -p out; touch out/x; test -e ok\"\nsources = [\"s\"]\noutputs = [\"out/*\"]\n",
    );
    p.file("s", "1");
    assert_ne!(p.irun().args(["t"]).run().code, 0);
    let status = p.run_ok(&["cache", "status"]);
    assert!(status.stdout.contains("entries: 0"), "{status:?}");
}

#[test]
fn a_deleted_output_is_restored_from_the_cache() {
    let p = Project::new(BUILD);
    p.file("src.txt", "one\n");
    p.run_ok(&["build"]);
    std::fs::remove_file(p.path("out/a.txt")).unwrap();
    let explain = p.run_ok(&["explain", "build"]);
    assert!(explain.stdout.contains("will be restored from the cache"), "{explain:?}");
    let out = p.run_ok(&["--json", "build"]);
    assert!(out.stdout.contains(r#""status":"cached""#), "{out:?}");
    assert_eq!(p.read("out/a.txt"), "one\n");
    assert_eq!(p.count_lines("build.log"), 1, "restored, not run");
}

#[test]
fn a_dry_run_says_a_hit_will_be_restored_and_restores_nothing() {
    let p = Project::new(BUILD);
    p.file("src.txt", "one\n");
    p.run_ok(&["build"]);
    std::fs::remove_file(p.path("out/a.txt")).unwrap();
    let out = p.run_ok(&["-n", "build"]);
    assert!(out.stdout.contains("build (will be restored from the cache, key "), "{out:?}");
    assert!(!p.exists("out/a.txt"), "a dry run restores nothing");
    p.file("src.txt", "two\n");
    let out = p.run_ok(&["-n", "build"]);
    assert!(out.stdout.contains("wave 1: build\n"), "a miss runs: {out:?}");
    assert_eq!(p.count_lines("build.log"), 1);
}
