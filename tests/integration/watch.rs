//! `--watch`: real files in temp dirs and the real watcher. Runs are counted by what tasks append to log files;
//! tests wait for irun's own lines ("waiting for changes" once a cycle is over), never for time to pass.

use nix::sys::signal::Signal;

use crate::harness::{Project, Running, alive, assert_all_dead, free_port};

const CYCLE_DONE: &str = "irun: waiting for changes";

/// Start `irun --watch ARGS` and wait until the first run is over (the watches were in place before it began).
pub(crate) fn watching(p: &Project, args: &[&str]) -> Running {
    let mut run = p.irun().args(["--watch"]).args(args).spawn();
    run.wait_for_line("irun: watching ");
    run.wait_for_count(CYCLE_DONE, 1);
    run
}

pub(crate) fn lines(p: &Project, rel: &str) -> Vec<String> {
    std::fs::read_to_string(p.path(rel)).unwrap_or_default().lines().map(String::from).collect()
}

pub(crate) fn stop(mut run: Running) -> crate::harness::Output {
    run.signal(Signal::SIGINT);
    let out = run.wait();
    assert_eq!(out.code, 130, "{out:?}");
    out
}

/// A task that reruns when the file `sentinel` changes: events arrive in order, so once its cycle is over, every
/// earlier change has been seen.
const SENTINEL: &str = "[tasks.sentinel]\ncmd = \"true\"\nsources = [\"sentinel\"]\n";

/// Touch the sentinel and check that its cycle is the only one: the changes made before it triggered nothing.
fn only_the_sentinel_reruns(p: &Project, run: &mut Running) {
    p.file("sentinel", "");
    run.wait_for_count(CYCLE_DONE, 2);
    let printed = run.printed();
    assert!(printed.contains("irun: ── change 1: sentinel; running sentinel\n"), "{printed}");
    assert!(!printed.contains("change 2"), "{printed}");
}

const CHAIN: &str = r#"
[tasks.a]
cmd = "echo \"$IRUN_CHANGED_PATHS\" >> a.log"
sources = ["src/**/*.txt"]

[tasks.b]
cmd = "echo run >> b.log"
deps = ["a"]

[tasks.other]
cmd = "echo run >> other.log"
sources = ["other/*.txt"]

[tasks.sentinel]
cmd = "echo run >> sentinel.log"
sources = ["sentinel"]
"#;

fn chain() -> Project {
    let p = Project::new(CHAIN);
    p.file(".gitignore", "*.log\nignored/\n");
    p.file("src/a.txt", "one\n");
    p.file("other/o.txt", "o\n");
    p
}

const ALL: [&str; 3] = ["b", "other", "sentinel"];

#[test]
fn editing_a_source_reruns_its_task_and_dependents_only() {
    let p = chain();
    let mut run = watching(&p, &ALL);
    p.file("src/a.txt", "two\n");
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "a.log"), ["", "src/a.txt"], "a reruns once and is told what changed");
    assert_eq!(lines(&p, "b.log").len(), 2, "b reruns as a's dependent");
    assert_eq!(lines(&p, "other.log").len(), 1, "an unrelated task does not rerun");
    assert!(run.printed().contains("irun: ── change 1: src/a.txt; running a, b"), "{}", run.printed());
    stop(run);
}

#[test]
fn an_atomic_save_by_rename_is_seen() {
    let p = chain();
    let mut run = watching(&p, &ALL);
    p.file("src/.a.txt.tmp", "saved atomically\n");
    std::fs::rename(p.path("src/.a.txt.tmp"), p.path("src/a.txt")).unwrap();
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "a.log").last().unwrap(), "src/a.txt");
    stop(run);
}

#[test]
fn a_vim_style_backup_rename_is_seen() {
    let p = chain();
    let mut run = watching(&p, &ALL);
    // vim: move the original aside as a backup, write the new file, delete the backup.
    std::fs::rename(p.path("src/a.txt"), p.path("src/a.txt~")).unwrap();
    p.file("src/a.txt", "written by vim\n");
    std::fs::remove_file(p.path("src/a.txt~")).unwrap();
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "a.log").last().unwrap(), "src/a.txt");
    assert!(!run.printed().contains("a.txt~"), "backup files are ignored: {}", run.printed());
    stop(run);
}

#[test]
fn files_in_a_new_nested_folder_are_seen() {
    let p = chain();
    let mut run = watching(&p, &ALL);
    std::fs::create_dir_all(p.path("src/n1/n2/n3")).unwrap();
    p.file("src/n1/n2/n3/x.txt", "deep\n");
    run.wait_for_count(CYCLE_DONE, 2);
    assert!(lines(&p, "a.log").last().unwrap().contains("src/n1/n2/n3/x.txt"), "{:?}", lines(&p, "a.log"));
    // And the new folder is watched from now on.
    p.file("src/n1/n2/n3/y.txt", "deeper\n");
    run.wait_for_count(CYCLE_DONE, 3);
    assert_eq!(lines(&p, "a.log").last().unwrap(), "src/n1/n2/n3/y.txt");
    stop(run);
}

#[test]
fn a_burst_of_writes_gives_at_most_two_cycles_that_see_the_final_content() {
    let p = Project::new(
        "[tasks.reader]\ncmd = \"cat data.txt >> seen.log\"\nsources = [\"data.txt\"]\n[tasks.sentinel]\ncmd = \"true\"\nsources = [\"sentinel\"]\n",
    );
    p.file("data.txt", "initial\n");
    // A quiet period well above any pause the writing loop below may suffer on a loaded machine, so the 300 writes
    // really are one burst to irun.
    let mut run = watching(&p, &["--debounce", "300ms", "reader", "sentinel"]);
    for i in 0..300 {
        std::fs::write(p.path("data.txt"), format!("version {i}\n")).unwrap();
    }
    // Events arrive in order: once a cycle has run the sentinel, every write of the burst has been handled.
    p.file("sentinel", "");
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    loop {
        let n = run.printed().matches(CYCLE_DONE).count();
        run.wait_for_count(CYCLE_DONE, n + 1);
        if run.printed().contains("sentinel * ok") {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
    }
    let seen = lines(&p, "seen.log");
    let reruns = seen.len() - 1;
    assert!((1..=2).contains(&reruns), "300 writes gave {reruns} runs: {seen:?}");
    assert_eq!(seen.last().unwrap(), "version 299", "the last run saw the final content");
    stop(run);
}

#[test]
fn gitignored_paths_and_a_tasks_own_outputs_trigger_nothing() {
    let p = Project::new(&format!(
        r#"{SENTINEL}
[tasks.writer]
cmd = "echo run >> runs.log; date +%s%N > src/generated.txt"
sources = ["src/**"]
outputs = ["src/generated.txt"]
"#
    ));
    p.file(".gitignore", "runs.log\nsrc/ignored/\n*.tmp\n");
    p.file("src/input.txt", "in\n");
    let mut run = watching(&p, &["writer", "sentinel"]);
    p.file("src/ignored/x.txt", "ignored by .gitignore\n");
    p.file("src/scratch.tmp", "ignored by .gitignore\n");
    p.file("src/generated.txt", "an output, written by hand\n");
    only_the_sentinel_reruns(&p, &mut run);
    assert_eq!(lines(&p, "runs.log").len(), 1, "writer ran only once, although it writes into its own sources");
    stop(run);
}

#[test]
fn a_services_source_change_restarts_it_and_reruns_its_client_while_another_service_keeps_running() {
    let port = free_port();
    let p = Project::new(&format!(
        r#"
[tasks.web]
cmd = "echo $$ >> web.pids; exec python3 serve.py {port} 0"
daemon = true
ready = {{ tcp = {port} }}
sources = ["web.cfg"]

[tasks.cache]
cmd = "echo $$ >> cache.pids; echo up; exec sleep 1000"
daemon = true
ready = {{ log = "up" }}
sources = ["cache.cfg"]

[tasks.client]
cmd = "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:{port}/\")' && echo run >> client.log"
deps = ["web", "cache"]
sources = ["client.cfg"]
"#
    ));
    p.file("serve.py", crate::harness::SERVE_PY);
    p.file("web.cfg", "1\n");
    let mut run = watching(&p, &["client"]);
    assert_eq!(lines(&p, "client.log").len(), 1);
    p.file("web.cfg", "2\n");
    run.wait_for_count(CYCLE_DONE, 2);
    let web = p.pids("web.pids");
    let cache = p.pids("cache.pids");
    assert_eq!(web.len(), 2, "web restarted");
    assert!(!alive(web[0]) && alive(web[1]), "the old web is gone, the new one serves");
    assert_eq!(cache.len(), 1, "cache was not touched");
    assert!(alive(cache[0]));
    assert_eq!(lines(&p, "client.log").len(), 2, "client ran again, against the new web");
    let out = stop(run);
    assert_all_dead(&[web[1], cache[0]]);
    assert!(out.stdout.contains("web    * stopping (restarting: its inputs changed)"), "{out:?}");
}

const SLOW: &str = r#"
[tasks.slow]
cmd = "echo start >> slow.log; while [ ! -e release ]; do sleep 0.01; done; echo end >> slow.log; echo \"$IRUN_CHANGED_PATHS\" >> changed.log"
sources = ["input/*"]
"#;

/// Start a cycle for `slow`, and change its input again while it runs.
fn change_during_cycle(policy: &str) -> (Project, Running) {
    let p = Project::new(SLOW);
    p.file("release", "");
    let mut run = watching(&p, &["--on-busy", policy, "slow"]);
    std::fs::remove_file(p.path("release")).unwrap();
    p.file("input/one", "1\n");
    // The cycle is running once slow has started a second time (and it cannot end before `release` exists).
    run.wait_for_count("slow * started", 2);
    p.file("input/two", "2\n");
    (p, run)
}

#[test]
fn on_busy_restart_stops_the_running_task_and_reruns_it_for_both_changes() {
    let (p, mut run) = change_during_cycle("restart");
    run.wait_for_line(
        "irun: ── change 2 during the run; restarting affected tasks: input/one, input/two; running slow",
    );
    run.wait_for_count("slow * started", 3);
    p.file("release", "");
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "slow.log"), ["start", "end", "start", "start", "end"], "the second run was cut short");
    assert_eq!(lines(&p, "changed.log").last().unwrap(), "input/one:input/two");
    stop(run);
}

#[test]
fn on_busy_queue_finishes_the_cycle_then_runs_one_more() {
    let (p, mut run) = change_during_cycle("queue");
    run.wait_for_line("irun: change during the run: input/two; one more cycle will follow this one");
    p.file("release", "");
    run.wait_for_count(CYCLE_DONE, 3);
    assert_eq!(lines(&p, "slow.log"), ["start", "end", "start", "end", "start", "end"]);
    assert_eq!(lines(&p, "changed.log")[1..], ["input/one", "input/two"]);
    stop(run);
}

#[test]
fn a_failing_task_does_not_end_watch_mode() {
    let p = Project::new(
        "[tasks.check]\ncmd = \"echo run >> runs.log; grep -q good input.txt\"\nsources = [\"input.txt\"]\n",
    );
    p.file("input.txt", "bad\n");
    let mut run = watching(&p, &["check"]);
    assert!(run.printed().contains("irun: failed:"), "{}", run.printed());
    p.file("input.txt", "good\n");
    run.wait_for_count(CYCLE_DONE, 2);
    assert!(run.printed().contains("irun: passed:"), "{}", run.printed());
    assert_eq!(lines(&p, "runs.log").len(), 2);
    stop(run);
}

#[test]
fn ctrl_c_during_watch_leaves_no_child() {
    let p = Project::new(
        r#"
[tasks.svc]
cmd = "echo $$ >> pids; sleep 1000 & echo $! >> pids; echo up; wait"
daemon = true
ready = { log = "up" }

[tasks.busy]
cmd = "echo $$ >> pids; echo busy; exec sleep 1000"
deps = ["svc"]
sources = ["trigger"]
"#,
    );
    let mut run = p.irun().args(["--watch", "busy"]).spawn();
    run.wait_for_line("busy | busy");
    let pids = p.pids("pids");
    assert_eq!(pids.len(), 3);
    stop(run);
    assert_all_dead(&pids);
}

/// Freeze irun so nothing reads its inotify queue, fill the queue past the kernel's limit (alternating between two
/// ignored files keeps the kernel from merging events), make `change` (whose events are lost), and let irun go on.
pub(crate) fn while_events_are_lost(p: &Project, run: &Running, change: impl FnOnce(&Project)) {
    let max_queued: usize =
        std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events").unwrap().trim().parse().unwrap();
    run.signal(Signal::SIGSTOP);
    for i in 0..max_queued {
        std::fs::write(p.path(&format!("noise-{}.log", i % 2)), i.to_string()).unwrap();
    }
    change(p);
    run.signal(Signal::SIGCONT);
}

#[test]
fn a_kernel_queue_overflow_finds_what_changed_while_events_were_lost() {
    let p = chain();
    let mut run = watching(&p, &ALL);
    // The change to a's source comes after the queue is full: its event is lost.
    while_events_are_lost(&p, &run, |p| {
        p.file("src/a.txt", "changed while events were lost\n");
    });
    run.wait_for_line(
        "irun: ── change 1: events were lost; every task's sources were checked, these changed; running a, b",
    );
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "a.log").len(), 2, "the lost change to a's source was found: {}", run.printed());
    assert_eq!(lines(&p, "b.log").len(), 2, "and a's dependent reran");
    // (Until issue 22 every task with sources was in the cycle, and the unchanged ones reported up to date.)
    assert_eq!(lines(&p, "other.log").len(), 1, "unchanged tasks were checked by content, and left out");
    let printed = run.printed();
    assert!(!printed.split("change 1").nth(1).unwrap().contains("other    *"), "{printed}");
    stop(run);
}

#[test]
fn ctrl_c_with_a_queued_change_starts_nothing_new() {
    let (p, mut run) = change_during_cycle("queue");
    run.wait_for_line("one more cycle will follow this one");
    run.signal(Signal::SIGINT);
    let out = run.wait();
    assert_eq!(out.code, 130, "{out:?}");
    let after = out.stdout.split("received SIGINT").nth(1).expect("the interrupt is reported");
    assert!(!after.contains("change 2") && !after.contains("slow * started"), "{out:?}");
    assert_eq!(lines(&p, "slow.log"), ["start", "end", "start"], "{out:?}");
    assert!(!after.contains(CYCLE_DONE), "an interrupted cycle does not wait for changes: {out:?}");
}

#[test]
fn a_failure_while_a_service_restarts_ends_the_cycle_and_a_fix_brings_it_back() {
    let p = Project::new(
        r#"
[tasks.build]
cmd = "! grep -q bad build.in"
sources = ["build.in"]

[tasks.web]
cmd = "trap 'sleep 0.3; exit 0' TERM; echo $$ >> web.pids; echo up; while true; do sleep 0.05; done"
daemon = true
ready = { log = "up" }
deps = ["build"]

[tasks.client]
cmd = "echo run >> client.log"
deps = ["web"]
"#,
    );
    p.file("build.in", "good\n");
    let mut run = watching(&p, &["client"]);
    p.file("build.in", "bad\n");
    run.wait_for_count(CYCLE_DONE, 2);
    assert!(run.printed().contains("irun: failed:"), "{}", run.printed());
    p.file("build.in", "good again\n");
    run.wait_for_count(CYCLE_DONE, 3);
    let printed = run.printed();
    let last = printed.rsplit("irun: ── change").next().unwrap();
    assert!(last.contains("irun: passed:"), "{printed}");
    assert_eq!(lines(&p, "client.log").len(), 2, "{printed}");
    let web = p.pids("web.pids");
    assert_eq!(web.len(), 2, "web came back once the build was fixed: {printed}");
    stop(run);
    assert_all_dead(&web);
}

#[test]
fn outputs_written_as_folders_with_dot_slash_globs_never_trigger() {
    let p = Project::new(&format!(
        r#"{SENTINEL}
[tasks.gen]
cmd = "echo run >> runs.log; rm -rf gen; mkdir -p gen/sub; echo x > gen/sub/file.txt"
sources = ["**/*.txt", "**/*.in"]
outputs = ["./gen/**"]
"#
    ));
    p.file(".gitignore", "runs.log\n");
    p.file("input.in", "1\n");
    let mut run = watching(&p, &["gen", "sentinel"]);
    only_the_sentinel_reruns(&p, &mut run);
    assert_eq!(lines(&p, "runs.log").len(), 1);
    stop(run);
}

#[test]
fn a_symlink_to_a_folder_outside_is_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("deep")).unwrap();
    let p = chain();
    std::os::unix::fs::symlink(outside.path(), p.path("src/link")).unwrap();
    let mut run = watching(&p, &ALL);
    std::fs::write(outside.path().join("deep/x.txt"), "outside\n").unwrap();
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "a.log").last().unwrap(), "src/link/deep/x.txt", "{}", run.printed());
    stop(run);
}

#[test]
fn a_change_in_a_folder_linked_from_sources_is_seen_at_the_linked_path() {
    // src/lib -> ../shared/lib: the task's sources reach shared/lib through the link.
    let p = chain();
    p.file("shared/lib/x.txt", "1\n").file("shared/lib/deep/y.txt", "1\n");
    std::os::unix::fs::symlink("../shared/lib", p.path("src/lib")).unwrap();
    // A link loop must not make the watch (or the up-to-date checks) walk forever.
    std::os::unix::fs::symlink(".", p.path("src/loop")).unwrap();
    let mut run = watching(&p, &ALL);
    for (n, file) in [(2, "x.txt"), (3, "deep/y.txt")] {
        p.file(&format!("shared/lib/{file}"), "2\n");
        run.wait_for_count(CYCLE_DONE, n);
        let last = lines(&p, "a.log").last().unwrap().clone();
        assert!(last.contains(&format!("src/lib/{file}")), "{last}: {}", run.printed());
    }
    stop(run);
}

#[test]
fn a_folder_created_while_events_were_lost_is_watched_afterwards() {
    let p = chain();
    let mut run = watching(&p, &ALL);
    // (A new empty folder changes no task's sources: the sentinel's change makes the lost events' cycle seen.)
    while_events_are_lost(&p, &run, |p| {
        std::fs::create_dir_all(p.path("src/late")).unwrap();
        p.file("sentinel", "changed\n");
    });
    run.wait_for_line("events were lost; every task's sources were checked, these changed; running sentinel");
    run.wait_for_count(CYCLE_DONE, 2);
    p.file("src/late/x.txt", "seen\n");
    run.wait_for_count(CYCLE_DONE, 3);
    assert_eq!(lines(&p, "a.log").last().unwrap(), "src/late/x.txt", "{}", run.printed());
    stop(run);
}

#[test]
fn moving_a_folder_of_sources_away_reruns_the_task() {
    let outside = tempfile::tempdir().unwrap();
    let p = chain();
    p.file("src/sub/deep.txt", "x\n");
    let mut run = watching(&p, &ALL);
    std::fs::rename(p.path("src/sub"), outside.path().join("sub")).unwrap();
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "a.log").len(), 2, "{}", run.printed());
    assert_eq!(lines(&p, "b.log").len(), 2);
    assert_eq!(lines(&p, "other.log").len(), 1, "unaffected tasks stay");
    stop(run);
}

#[test]
fn a_huge_list_of_changed_paths_is_cut_short_not_fatal() {
    let p = Project::new(
        "[tasks.t]\ncmd = \"echo ${IRUN_CHANGED_PATHS_TRUNCATED:-no} >> t.log\"\nsources = [\"many/**\"]\n",
    );
    p.file(".gitignore", "t.log\n");
    let mut run = watching(&p, &["t"]);
    let staging = p.path("staging");
    std::fs::create_dir_all(&staging).unwrap();
    for i in 0..3000 {
        std::fs::write(staging.join(format!("a-rather-long-file-name-for-the-list-{i:05}.txt")), "x").unwrap();
    }
    // One rename brings them all in at once.
    std::fs::rename(&staging, p.path("many")).unwrap();
    run.wait_for_count(CYCLE_DONE, 2);
    assert_eq!(lines(&p, "t.log"), ["no", "1"], "{}", run.printed());
    stop(run);
}

#[test]
fn an_edit_to_an_excluded_source_reruns_nothing_and_an_included_one_reruns() {
    let p = Project::new(&format!(
        r#"{SENTINEL}
[tasks.unit]
cmd = "echo \"$IRUN_CHANGED_PATHS\" >> unit.log"
sources = ["src/**", "!src/**/*.test.txt"]
"#
    ));
    p.file(".gitignore", "*.log\n");
    p.file("src/a.txt", "a\n");
    p.file("src/ui/a.test.txt", "t\n");
    let mut run = watching(&p, &["unit", "sentinel"]);
    p.file("src/ui/a.test.txt", "edited\n");
    p.file("src/ui/b.test.txt", "added\n");
    only_the_sentinel_reruns(&p, &mut run);
    p.file("src/ui/a.txt", "added\n");
    run.wait_for_count(CYCLE_DONE, 3);
    assert_eq!(lines(&p, "unit.log"), ["", "src/ui/a.txt"], "{}", run.printed());
    stop(run);
}

#[test]
fn a_write_to_an_output_excluded_by_a_bang_glob_is_seen() {
    let p = Project::new(&format!(
        r#"{SENTINEL}
[tasks.gen]
cmd = "echo run >> runs.log; mkdir -p out; date +%s%N > out/made.txt"
sources = ["**/*.txt"]
outputs = ["out/**", "!out/by-hand.txt"]
"#
    ));
    p.file(".gitignore", "runs.log\n");
    p.file("out/by-hand.txt", "1\n");
    let mut run = watching(&p, &["gen", "sentinel"]);
    only_the_sentinel_reruns(&p, &mut run);
    assert_eq!(lines(&p, "runs.log").len(), 1, "writing its outputs did not trigger gen");
    p.file("out/by-hand.txt", "2\n");
    run.wait_for_count(CYCLE_DONE, 3);
    assert!(run.printed().contains("irun: ── change 2: out/by-hand.txt; running gen\n"), "{}", run.printed());
    assert_eq!(lines(&p, "runs.log").len(), 2);
    stop(run);
}
