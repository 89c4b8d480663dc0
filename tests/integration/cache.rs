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

/// The number after `name: ` in `irun cache status`.
fn status_field(p: &Project, name: &str) -> u64 {
    let out = p.run_ok(&["cache", "status"]);
    let line =
        out.stdout.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or_else(|| panic!("{out:?}"));
    line.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn eviction_keeps_the_cache_under_a_small_limit() {
    let p = Project::new(
        "[tasks.big]\ncmd = \"echo run >> big.log; mkdir -p out; head -c 30000 /dev/urandom > out/blob\"\n\
         sources = [\"src.txt\"]\noutputs = [\"out/blob\"]\ncache = true\n",
    );
    for n in 0..5 {
        p.file("src.txt", &format!("{n}\n"));
        let out = p.irun().args(["big"]).env("IRUN_CACHE_MAX", "80K").run();
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert_eq!(p.count_lines("big.log"), 5);
    let size = status_field(&p, "size");
    assert!(size <= 80 * 1024, "the cache holds {size} bytes, over its limit");
    let entries = status_field(&p, "entries");
    assert!((1..5).contains(&entries), "the oldest entries went: {entries}");
    // The newest stays: going back to it is a hit; the oldest went: going back to it runs.
    p.file("src.txt", "3\n");
    assert!(p.run_ok(&["big"]).stdout.contains("big * cached"));
    p.file("src.txt", "0\n");
    p.run_ok(&["big"]);
    assert_eq!(p.count_lines("big.log"), 6, "the first entry was evicted");
}

#[test]
fn a_corrupt_entry_warns_once_and_the_task_runs() {
    let p = Project::new(BUILD);
    p.file("src.txt", "one\n");
    p.run_ok(&["build"]);
    for entry in std::fs::read_dir(p.path(".irun/cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".tar.gz") {
            std::fs::write(path, "not a tar.gz").unwrap();
        }
    }
    std::fs::remove_file(p.path("out/a.txt")).unwrap();
    let out = p.run_ok(&["--json", "build"]);
    assert_eq!(out.stdout.matches(r#""kind":"cache_warning""#).count(), 1, "{out:?}");
    assert!(out.stdout.contains(r#""status":"ok""#), "it ran: {out:?}");
    assert_eq!(p.count_lines("build.log"), 2);
    assert_eq!(p.read("out/a.txt"), "one\n");
    // The run stored a good entry in its place.
    std::fs::remove_file(p.path("out/a.txt")).unwrap();
    assert!(p.run_ok(&["build"]).stdout.contains("build * cached"));
}

#[test]
fn cache_false_and_services_are_never_cached() {
    let p = Project::new(
        "[tasks.svc]\ncmd = \"echo up; exec sleep 600\"\ndaemon = true\nready = { log = \"up\" }\nsources = [\"svc.cfg\"]\n\
         [tasks.t]\ncmd = \"echo run >> t.log\"\ndeps = [\"svc\"]\nsources = [\"src.txt\"]\ncache = false\n",
    );
    p.file("svc.cfg", "x\n").file("src.txt", "one\n");
    p.run_ok(&["t"]);
    p.file("src.txt", "two\n");
    p.run_ok(&["t"]);
    p.file("src.txt", "one\n");
    let out = p.run_ok(&["t"]);
    assert_eq!(p.count_lines("t.log"), 3, "back to earlier inputs, it runs: {out:?}");
    assert_eq!(status_field(&p, "entries"), 0, "neither the task nor the service was stored");
}

#[test]
fn cache_status_and_clean() {
    let p = Project::new(BUILD);
    p.file("src.txt", "one\n");
    assert_eq!(status_field(&p, "entries"), 0);
    p.run_ok(&["build"]);
    let status = p.run_ok(&["cache", "status"]);
    assert!(status.stdout.contains("entries: 1\n"), "{status:?}");
    assert!(status.stdout.contains(&format!("location: {}", p.path(".irun/cache").display())), "{status:?}");
    assert!(status.stdout.contains(&format!("limit: {} bytes (IRUN_CACHE_MAX)", 1u64 << 30)), "{status:?}");
    let clean = p.run_ok(&["cache", "clean"]);
    assert!(clean.stdout.contains("removed 1 cache entries"), "{clean:?}");
    assert_eq!(status_field(&p, "entries"), 0);
    std::fs::remove_file(p.path("out/a.txt")).unwrap();
    p.run_ok(&["build"]);
    assert_eq!(p.count_lines("build.log"), 2, "nothing left to restore");
}

#[test]
fn explain_names_the_key_part_that_changed() {
    let p = Project::new(&format!("[env]\nMODE = \"fast\"\n{BUILD}"));
    p.file("src.txt", "one\n");
    p.run_ok(&["build"]);
    p.file("Irun.toml", &format!("[env]\nMODE = \"slow\"\n{BUILD}"));
    let out = p.run_ok(&["explain", "build"]);
    assert!(out.stdout.contains("not stored; changed since the last stored key: env\n"), "{out:?}");
    p.file("Irun.toml", &format!("[env]\nMODE = \"fast\"\n{BUILD}")).file("src.txt", "two\n");
    let out = p.run_ok(&["explain", "build"]);
    assert!(out.stdout.contains("not stored; changed since the last stored key: sources\n"), "{out:?}");
}

#[test]
fn cache_env_counts_a_named_shell_variable_and_not_an_unnamed_one() {
    let p = Project::new(&BUILD.replace("outputs = [\"out/*\"]", "outputs = [\"out/*\"]\ncache_env = [\"NAMED\"]"));
    let run = |src: &str, named: &str, unnamed: &str| {
        p.file("src.txt", src);
        let out = p.irun().args(["build"]).env("NAMED", named).env("UNNAMED", unnamed).run();
        assert_eq!(out.code, 0, "{out:?}");
        out
    };
    run("one\n", "1", "1");
    run("two\n", "1", "1");
    let out = run("one\n", "1", "2");
    assert!(out.stdout.contains("build * cached"), "an unnamed variable is not in the key: {out:?}");
    assert_eq!(p.count_lines("build.log"), 2);
    let out = run("two\n", "2", "2");
    assert!(!out.stdout.contains("cached"), "a named variable is in the key: {out:?}");
    assert_eq!(p.count_lines("build.log"), 3);
}

#[test]
fn cache_output_false_keeps_the_output_out_and_says_so_on_a_hit() {
    let p = Project::new(&BUILD.replace("outputs = [\"out/*\"]", "outputs = [\"out/*\"]\ncache_output = false"));
    p.file("src.txt", "one\n");
    assert!(p.run_ok(&["build"]).stdout.contains("built it"));
    std::fs::remove_file(p.path("out/a.txt")).unwrap();
    let out = p.run_ok(&["build"]);
    assert!(out.stdout.contains("build * cached"), "{out:?}");
    assert!(!out.stdout.contains("built it"), "{out:?}");
    assert!(out.stdout.contains("its output is not kept there: cache_output = false"), "{out:?}");
    assert_eq!(p.read("out/a.txt"), "one\n");
}

/// A setup task whose `outputs` name only a marker file of what it makes (as `.venv/pyvenv.cfg` or
/// `node_modules/.package-lock.json` do): the cache holds the marker alone.
const SETUP_WITH_MARKER: &str = r#"
[tasks.setup]
cmd = "echo run >> setup.log; mkdir -p env/bin; printf '#!/bin/sh\necho tool works\n' > env/bin/tool; chmod +x env/bin/tool; touch env/marker"
sources = ["req.txt"]
outputs = ["env/marker"]

[tasks.use]
cmd = "env/bin/tool"
deps = ["setup"]
"#;

#[test]
fn a_task_whose_outputs_are_a_marker_runs_again_when_its_folder_is_deleted() {
    let p = Project::new(SETUP_WITH_MARKER);
    p.file("req.txt", "tool==1\n");
    p.run_ok(&["use"]);
    std::fs::remove_dir_all(p.path("env")).unwrap();
    let out = p.run_ok(&["--json", "use"]);
    assert!(out.stdout.contains("tool works"), "the dep's whole result is back: {out:?}");
    assert!(!out.stdout.contains(r#""status":"cached""#), "the marker alone is not restored: {out:?}");
    assert_eq!(p.count_lines("setup.log"), 2, "setup ran again");
    let status = p.run_ok(&["cache", "status"]);
    assert!(status.stdout.contains("entries: 0"), "a marker task is not stored: {status:?}");
}

#[test]
fn a_result_missing_a_declared_output_is_not_stored_and_says_so() {
    let p = Project::new(
        "[tasks.t]\ncmd = \"echo run >> t.log\"\nsources = [\"s\"]\noutputs = [\"out/never\"]\ncache = true\n",
    );
    p.file("s", "1");
    let out = p.run_ok(&["t"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    let warning = "warning: the cache: `out/never`, an output of t, was not made: its result is not stored";
    assert_eq!(all.matches(warning).count(), 1, "said once: {out:?}");
    let status = p.run_ok(&["cache", "status"]);
    assert!(status.stdout.contains("entries: 0"), "{status:?}");
    p.run_ok(&["t"]);
    assert_eq!(p.count_lines("t.log"), 2, "it runs again, never restored without its output");
}

#[test]
fn a_task_after_an_uncached_setup_is_restored_on_a_branch_switch_back() {
    // `setup` makes a virtualenv-like folder through a marker: it is not cached, but its key (its inputs) names it,
    // so the test after it is. An `always_run` or `cache = false` dep names nothing: what comes after is never cached.
    let p = Project::new(
        r#"
[tasks.setup]
cmd = "echo run >> setup.log; mkdir -p env/lib; touch env/lib/x env/marker"
sources = ["reqs.txt"]
outputs = ["env/marker"]
[tasks.test]
cmd = "echo run >> test.log; mkdir -p out; cat src.txt > out/r.txt"
deps = ["setup"]
sources = ["src.txt"]
outputs = ["out/*"]
[tasks.stamp]
cmd = "echo stamp"
always_run = true
[tasks.after]
cmd = "echo run >> after.log; mkdir -p out2; cat src.txt > out2/r.txt"
deps = ["stamp"]
sources = ["src.txt"]
outputs = ["out2/*"]
[tasks.fetch]
cmd = "echo run >> fetch.log; mkdir -p data; cat reqs.txt > data/d"
sources = ["reqs.txt"]
outputs = ["data/*"]
cache = false
[tasks.report]
cmd = "echo run >> report.log; mkdir -p out3; cat src.txt > out3/r.txt"
deps = ["fetch"]
sources = ["src.txt"]
outputs = ["out3/*"]
"#,
    );
    p.file("reqs.txt", "a\n");
    p.file("src.txt", "one\n");
    p.run_ok(&["test", "after", "report"]);
    p.file("src.txt", "two\n");
    p.run_ok(&["test", "after", "report"]);
    p.file("src.txt", "one\n");
    let out = p.run_ok(&["--json", "test", "after", "report"]);
    assert_eq!(p.count_lines("test.log"), 2, "the third run of test was restored: {out:?}");
    assert_eq!(p.read("out/r.txt"), "one\n");
    assert_eq!(p.count_lines("after.log"), 3, "after an always-run dep nothing is cached");
    assert_eq!(p.count_lines("report.log"), 3, "nor after a cache = false one: its result may change by itself");
    assert_eq!(p.count_lines("setup.log"), 1, "setup stayed up to date");
    // A changed requirement changes setup's key, and so the test's: it runs.
    p.file("reqs.txt", "b\n");
    p.file("src.txt", "two\n");
    p.run_ok(&["test"]);
    assert_eq!(p.count_lines("test.log"), 3);
}

#[test]
fn a_key_stored_by_a_pass_is_restored_after_a_failure_with_the_same_inputs() {
    // The documented rule (turborepo's): failures are never stored, but they do not unstore an earlier pass.
    let p = Project::new(
        "[tasks.t]\ncmd = \"echo run >> t.log; test ! -e flaky && mkdir -p out && cat s > out/r\"\nsources = [\"s\"]\noutputs = [\"out/*\"]\n",
    );
    p.file("s", "1");
    p.run_ok(&["t"]);
    p.file("flaky", "");
    assert_ne!(p.irun().args(["--force", "t"]).run().code, 0);
    let out = p.run_ok(&["--json", "t"]);
    assert!(out.stdout.contains(r#""status":"cached""#), "{out:?}");
    assert_eq!(p.count_lines("t.log"), 2, "restored, not run a third time");
}
