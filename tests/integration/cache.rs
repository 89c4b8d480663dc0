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
    let cached = |args: &[&str]| p.irun().args(args).env("IRUN_CACHE", "local").run();
    cached(&["build"]);
    p.file("src.txt", "two\n");
    cached(&["build"]);
    p.file("src.txt", "one\n");
    let out = p.irun().args(["--json", "build"]).env("IRUN_CACHE", "local").run();
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
    assert_ne!(p.irun().args(["t"]).env("IRUN_CACHE", "local").run().code, 0);
    let status = p.run_ok(&["cache", "status"]);
    assert!(status.stdout.contains("entries: 0"), "{status:?}");
}
