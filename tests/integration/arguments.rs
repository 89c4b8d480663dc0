//! `irun TARGET -- ARGS...` and `irun run NAME...`: arguments reach the one target that is a task, and are part of
//! its fingerprint.

use crate::harness::Project;

#[test]
fn arguments_after_dashes_reach_the_command_as_items_or_quoted_words() {
    let p = Project::new(
        "[tasks.arr]\ncmd = [\"sh\", \"-c\", \"printf '<%s>' \\\"$@\\\"; echo\", \"arr\"]\n\
         [tasks.str]\ncmd = \"printf '<%s>' first\"\n",
    );
    let out = p.irun().args(["--progress", "never", "arr", "--", "-k", "two words", "it's"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("arr | <-k><two words><it's>"), "{out:?}");
    let out = p.irun().args(["--progress", "never", "str", "--", "$HOME", "a b"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("str | <first><$HOME><a b>"), "the shell saw each argument as one word: {out:?}");
}

#[test]
fn arguments_are_part_of_the_fingerprint() {
    let p = Project::new("[tasks.t]\ncmd = \"echo ran\"\nsources = [\"in.txt\"]\n");
    p.file("in.txt", "x");
    let run = |args: &[&str]| {
        let mut all = vec!["--progress", "never", "t"];
        if !args.is_empty() {
            all.push("--");
            all.extend(args);
        }
        let out = p.irun().args(&all).run();
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout
    };
    assert!(run(&["-k", "one"]).contains("t | ran -k one"));
    assert!(run(&["-k", "one"]).contains("t * up to date"), "same arguments, same inputs: up to date");
    let other = run(&["-k", "two"]);
    assert!(other.contains("t | ran -k two"), "other arguments: the task runs again: {other}");
    let none = run(&[]);
    assert!(none.contains("t | ran\n"), "no arguments differs from the last run too: {none}");
}

#[test]
fn arguments_need_exactly_one_target_that_is_a_task() {
    let p = Project::new(
        "default = [\"a\"]\n[tasks.a]\ncmd = [\"echo\", \"a\"]\n[tasks.b]\ncmd = [\"echo\", \"b\"]\n\
         [tasks.g]\ndeps = [\"a\", \"b\"]\n",
    );
    let two = p.irun().args(["a", "b", "--", "x"]).run();
    assert_eq!(two.code, 2, "{two:?}");
    assert!(two.stderr.contains("arguments after `--` go to one task, but 2 targets are tasks: `a`, `b`"), "{two:?}");
    assert!(!two.stdout.contains("started"), "nothing ran: {two:?}");
    let group = p.irun().args(["g", "--", "x"]).run();
    assert_eq!(group.code, 2, "{group:?}");
    assert!(group.stderr.contains("the groups named hold 2 tasks: `a`, `b`"), "{group:?}");
    // A group beside the task, or the `default` target, leaves one task to take them.
    let out = p.irun().args(["--progress", "never", "g", "a", "--", "x"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("a | a x") && out.stdout.contains("b | b\n"), "{out:?}");
    let out = p.irun().args(["--progress", "never", "--", "y"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("a | a y"), "{out:?}");
}

#[test]
fn run_options_before_run_are_an_error_not_dropped() {
    let p = Project::new("[tasks.t]\ncmd = \"true\"\n");
    let out = p.irun().args(["-j1", "run", "t"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("-j/--jobs before `run` would be ignored"), "{out:?}");
}

#[test]
fn irun_run_runs_a_task_named_like_a_subcommand_with_run_options() {
    let p = Project::new("[tasks.list]\ncmd = [\"echo\", \"the list task\"]\n");
    let out = p.irun().args(["run", "--progress", "never", "-j1", "list", "--", "now"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("list | the list task now"), "{out:?}");
    let listing = p.irun().args(["list"]).run();
    assert_eq!(listing.code, 0, "{listing:?}");
    assert!(!listing.stdout.contains("started") && listing.stdout.contains("list"), "`irun list` lists: {listing:?}");
}

#[test]
fn arguments_after_dashes_reach_the_task_exactly_as_given() {
    let p = Project::new(
        "[tasks.srv]\ncmd = [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"${IRUN_PORT}\"]\n\
         daemon = true\nready = { tcp = \"auto\" }\n\
         [tasks.arr]\ncmd = [\"sh\", \"-c\", \"printf '<%s>' \\\"$@\\\"; echo\", \"arr\", \"${IRUN_PORT_SRV}\"]\n\
         deps = [\"srv\"]\n",
    );
    let out =
        p.irun().args(["--progress", "never", "arr", "--", "${IRUN_PORT}", "${IRUN_PORT_SRV:-x}", "$${IRUN_X}"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.lines().find(|l| l.starts_with("arr |")).unwrap_or_default().to_string();
    assert!(line.ends_with("><${IRUN_PORT}><${IRUN_PORT_SRV:-x}><$${IRUN_X}>"), "{out:?}");
    assert!(!line.contains("<${IRUN_PORT_SRV}>"), "the command's own reference is still expanded: {out:?}");
}

#[test]
fn explain_and_plan_take_arguments_after_dashes() {
    let p = Project::new("[tasks.t]\ncmd = \"echo ran\"\nsources = [\"in.txt\"]\n");
    p.file("in.txt", "x");
    assert_eq!(p.irun().args(["--progress", "never", "t", "--", "-k", "one"]).run().code, 0);
    let same = p.irun().args(["explain", "t", "--", "-k", "one"]).run();
    assert_eq!(same.code, 0, "{same:?}");
    assert!(same.stdout.contains("t  up to date"), "the same arguments are up to date: {same:?}");
    let other = p.irun().args(["explain", "t", "--", "-k", "two"]).run();
    assert_eq!(other.code, 0, "{other:?}");
    assert!(other.stdout.contains("t  will run"), "other arguments would run it: {other:?}");
    let plan = p.irun().args(["plan", "--json", "--shards", "1", "t", "--", "-k", "two"]).run();
    assert_eq!(plan.code, 0, "{plan:?}");
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let args: Vec<&str> = doc["shards"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.ends_with(&["t", "--", "-k", "two"]), "each shard runs with the arguments: {args:?}");
}

#[test]
fn a_default_group_of_one_task_gives_it_the_arguments() {
    let p = Project::new(
        "default = [\"all\"]\n[tasks.all]\ndeps = [\"inner\"]\n[tasks.inner]\ndeps = [\"t\"]\n\
         [tasks.t]\ncmd = [\"echo\", \"t\"]\n",
    );
    let out = p.irun().args(["--progress", "never", "--", "-k", "x"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.lines().any(|l| l.starts_with("t ") && l.ends_with("| t -k x")), "{out:?}");
}
