//! Bad input: one clear message naming file, line and what to do; exit code 2; nothing started.

use crate::harness::Project;

/// A task that would leave a mark if anything ran.
const MARKER_TASK: &str = "[tasks.marker]\ncmd = \"touch ran\"\n";

/// Run irun on `toml` (plus the marker task) and return stderr, asserting exit 2 and that nothing ran.
fn rejected(toml: &str, args: &[&str]) -> String {
    let p = Project::new(&format!("{toml}\n{MARKER_TASK}"));
    let out = p.irun().args(args).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!p.exists("ran"), "a task ran despite the error: {out:?}");
    assert!(out.stdout.is_empty(), "errors go to stderr only: {out:?}");
    out.stderr
}

#[test]
fn toml_syntax_error_names_file_line_column_and_shows_the_line() {
    let err = rejected("default = [\"marker\"]\n[tasks.a]\ncmd = \"echo hi\n", &[]);
    assert!(err.contains("Irun.toml:3:"), "{err}");
    assert!(err.contains("cmd = \"echo hi"), "offending line shown: {err}");
}

#[test]
fn unknown_key_is_an_error_with_a_suggestion() {
    let err = rejected("[tasks.a]\ncmd = \"true\"\ndpes = [\"marker\"]\n", &["a"]);
    assert!(err.contains("Irun.toml:3:1"), "{err}");
    assert!(err.contains("unknown key `dpes`; did you mean `deps`?"), "{err}");
}

#[test]
fn unknown_key_in_ready_is_an_error_with_a_suggestion() {
    let err = rejected("[tasks.a]\ncmd = \"true\"\ndaemon = true\nready = { tcp = 9, timout = \"5s\" }\n", &["a"]);
    assert!(err.contains("unknown key `timout`; did you mean `timeout`?"), "{err}");
}

#[test]
fn unknown_target_on_the_command_line_suggests_the_closest() {
    let err = rejected("[tasks.thread]\ncmd = \"true\"\n", &["thraed"]);
    assert!(err.contains("unknown task `thraed`; did you mean `thread`?"), "{err}");
}

#[test]
fn unknown_dep_names_the_task_and_suggests() {
    let err = rejected("[tasks.setup]\ncmd = \"true\"\n[tasks.a]\ncmd = \"true\"\ndeps = [\"setpu\"]\n", &["a"]);
    assert!(err.contains("Irun.toml:5:9"), "{err}");
    assert!(err.contains("task `a` depends on unknown task `setpu`; did you mean `setup`?"), "{err}");
}

#[test]
fn unknown_default_target_is_an_error() {
    let err = rejected("default = [\"markr\"]\n", &[]);
    assert!(err.contains("`default` names unknown task `markr`; did you mean `marker`?"), "{err}");
}

#[test]
fn dependency_cycle_is_printed() {
    let err =
        rejected("[tasks.a]\ncmd = \"true\"\ndeps = [\"b\"]\n[tasks.b]\ncmd = \"true\"\ndeps = [\"a\"]\n", &["marker"]);
    assert!(err.contains("dependency cycle: a -> b -> a"), "{err}");
}

#[test]
fn self_dependency_is_a_cycle() {
    let err = rejected("[tasks.a]\ncmd = \"true\"\ndeps = [\"a\"]\n", &["marker"]);
    assert!(err.contains("dependency cycle: a -> a"), "{err}");
}

#[test]
fn longer_cycle_is_printed_in_dependency_order() {
    let err = rejected(
        "[tasks.a]\ncmd = \"true\"\ndeps = [\"b\"]\n[tasks.b]\ncmd = \"true\"\ndeps = [\"c\"]\n[tasks.c]\ncmd = \"true\"\ndeps = [\"a\"]\n",
        &["marker"],
    );
    assert!(err.contains("dependency cycle: a -> b -> c -> a"), "{err}");
}

#[test]
fn group_with_ready_is_an_error() {
    let err = rejected("[tasks.g]\ndeps = [\"marker\"]\nready = { tcp = 9 }\n", &["marker"]);
    assert!(err.contains("task `g` is a group (it has no `cmd`) and cannot have `ready`"), "{err}");
}

#[test]
fn ready_without_daemon_is_an_error() {
    let err = rejected("[tasks.s]\ncmd = \"true\"\nready = { tcp = 9 }\n", &["marker"]);
    assert!(err.contains("`ready` is only for services"), "{err}");
    assert!(err.contains("daemon = true"), "{err}");
}

#[test]
fn invalid_duration_is_an_error() {
    let err = rejected("[tasks.a]\ncmd = \"true\"\ntimeout = \"two minutes\"\n", &["marker"]);
    assert!(err.contains("Irun.toml:3:11"), "{err}");
    assert!(err.contains("invalid duration \"two minutes\" for `timeout`"), "{err}");
}

#[test]
fn invalid_probe_duration_is_an_error() {
    let err =
        rejected("[tasks.s]\ncmd = \"true\"\ndaemon = true\nready = { tcp = 9, interval = \"fast\" }\n", &["marker"]);
    assert!(err.contains("invalid duration \"fast\" for `ready.interval`"), "{err}");
}

#[test]
fn invalid_port_is_an_error() {
    for (tcp, what) in
        [("70000", "invalid port 70000"), ("0", "invalid port 0"), ("\"localhost:http\"", "invalid port \"http\"")]
    {
        let err =
            rejected(&format!("[tasks.s]\ncmd = \"true\"\ndaemon = true\nready = {{ tcp = {tcp} }}\n"), &["marker"]);
        assert!(err.contains(what), "{tcp}: {err}");
        assert!(err.contains("Irun.toml:4:"), "{err}");
    }
}

#[test]
fn empty_cmd_is_an_error() {
    for cmd in ["\"\"", "\"   \"", "[]", "[\"\"]"] {
        let err = rejected(&format!("[tasks.a]\ncmd = {cmd}\n"), &["marker"]);
        assert!(err.contains("Irun.toml:2:7"), "{cmd}: {err}");
        assert!(
            err.contains("`cmd` is empty") || err.contains("empty array") || err.contains("empty program"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn more_than_one_probe_is_an_error() {
    let err = rejected("[tasks.s]\ncmd = \"true\"\ndaemon = true\nready = { tcp = 9, log = \"up\" }\n", &["marker"]);
    assert!(err.contains("`ready` has more than one probe: tcp, log"), "{err}");
}

#[test]
fn invalid_log_regex_is_an_error() {
    let err = rejected("[tasks.s]\ncmd = \"true\"\ndaemon = true\nready = { log = \"(unclosed\" }\n", &["marker"]);
    assert!(err.contains("invalid regular expression in `ready.log`"), "{err}");
}

#[test]
fn unknown_stop_signal_is_an_error() {
    let err = rejected("[tasks.s]\ncmd = \"true\"\nstop_signal = \"SIGFOO\"\n", &["marker"]);
    assert!(err.contains("unknown signal \"SIGFOO\" for `stop_signal`"), "{err}");
}

#[test]
fn wrong_type_is_an_error_with_position() {
    let err = rejected("jobs = \"four\"\n", &["marker"]);
    assert!(err.contains("Irun.toml:1:8"), "{err}");
}

#[test]
fn missing_irun_toml_says_where_irun_looked() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    let p = Project::new("");
    let out = p.irun().current_dir(&sub).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&format!("no Irun.toml found in {} or any parent directory", sub.display())),
        "{out:?}"
    );
    assert!(out.stderr.contains("-f PATH"), "{out:?}");
}

#[test]
fn missing_file_given_with_f_is_an_error() {
    let p = Project::new("");
    let out = p.irun().args(["-f", "nope/Irun.toml"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("cannot read nope/Irun.toml"), "{out:?}");
}

#[test]
fn no_targets_and_no_default_is_an_error() {
    let err = rejected("", &[]);
    assert!(err.contains("no targets given"), "{err}");
    assert!(err.contains("marker"), "lists the tasks: {err}");
}

#[test]
fn usage_errors_exit_2() {
    let p = Project::new(MARKER_TASK);
    let out = p.irun().args(["-j", "0", "marker"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!p.exists("ran"));
}

#[test]
fn listing_a_file_with_a_dependency_cycle_is_an_error_too() {
    let err =
        rejected("[tasks.a]\ncmd = \"true\"\ndeps = [\"b\"]\n[tasks.b]\ncmd = \"true\"\ndeps = [\"a\"]\n", &["list"]);
    assert!(err.contains("dependency cycle: a -> b -> a"), "{err}");
}

#[test]
fn a_task_name_with_a_control_character_is_rejected_naming_file_and_line() {
    for (written, shown) in [
        ("\"two\\nlines\"", "\"two\\nlines\""),
        ("\"tab\\tbed\"", "\"tab\\tbed\""),
        ("\"red\\u001b[31m\"", "\"red\\u{1b}[31m\""),
        ("\"bell\\u0007\"", "\"bell\\u{7}\""),
        ("\"back\\u202eward\"", "\"back\\u{202e}ward\""),
    ] {
        let err = rejected(&format!("[tasks.ok]\ncmd = \"true\"\n[tasks.{written}]\ncmd = \"true\"\n"), &["ok"]);
        assert!(err.contains("Irun.toml:3:"), "{written}: {err}");
        assert!(err.contains(&format!("task name {shown} contains a control character")), "{written}: {err}");
        assert!(err.contains("help: rename the task"), "{written}: {err}");
        assert!(!err.contains('\u{1b}') && !err.contains('\u{7}') && !err.contains('\u{202e}'), "{err:?}");
    }
    // Nor does a reference to such a name reach the terminal as it is.
    let err = rejected("[tasks.a]\ncmd = \"true\"\ndeps = [\"x\\u001b[2J\"]\n", &["a"]);
    assert!(err.contains("unknown task \"x\\u{1b}[2J\""), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn task_names_with_spaces_quotes_and_unicode_print_as_written() {
    let p = Project::new(
        "[tasks.\"my task\"]\ncmd = \"echo spaced\"\n[tasks.'say \"hi\"']\ncmd = \"echo quoted\"\n\
         [tasks.\"café ☕\"]\ncmd = \"echo unicode\"\ndeps = [\"my task\", 'say \"hi\"']\n",
    );
    let out = p.irun().args(["--progress", "never", "café ☕"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    // Each name starts its lines as written (padded to a common width).
    for (name, rest) in [("my task ", "| spaced"), ("say \"hi\" ", "| quoted"), ("café ☕ ", "| unicode")] {
        let found = out
            .stdout
            .lines()
            .any(|l| l.starts_with(name) && l.ends_with(rest) && l[name.len()..].trim_start() == rest);
        assert!(found, "{name:?} {rest:?}: {out:?}");
    }
    let list = p.irun().args(["list", "--names"]).run();
    assert_eq!(list.stdout, "my task\nsay \"hi\"\ncafé ☕\n", "{list:?}");
}

#[test]
fn no_targets_in_a_large_file_names_a_few_tasks_and_how_to_see_the_rest() {
    let toml: String = (0..30).map(|i| format!("[tasks.t{i}]\ncmd = \"true\"\n")).collect();
    let p = Project::new(&toml);
    let out = p.irun().run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("t0, t1, t2") && out.stderr.contains("and 20 more: `irun list`"), "{out:?}");
    assert!(!out.stderr.contains("t29"), "not every name: {out:?}");
}
