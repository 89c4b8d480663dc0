//! Secrets stay home: a value from a dotenv file or irun's own environment reaches the task, but irun's reports
//! show the `${NAME}` reference in its place.

use crate::harness::Project;

/// The task receives `value` through `cmd`, an `env` value and a service's readiness probe; it writes what it got to
/// files, then fails (so the summary shows its failure). The value must appear in nothing irun prints.
fn assert_never_shown(p: &Project, name: &str, value: &str, shell: Option<(&str, &str)>) {
    let irun = |args: &[&str]| {
        let irun = p.irun().args(args);
        match shell {
            Some((k, v)) => irun.env(k, v),
            None => irun,
        }
        .run()
    };
    let mut shown = Vec::new();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["explain", "t"],
        &["-n", "t"],
        &["plan", "--json", "t"],
        &["graph", "--dot"],
        &["graph", "--mermaid"],
    ] {
        let out = irun(args);
        assert_eq!(out.code, 0, "irun {args:?}: {out:?}");
        shown.push((format!("irun {args:?}"), out.all()));
    }
    let out = irun(&["--json", "--junit", "report.xml", "--timings=page.html", "--trace", "trace.json", "t"]);
    assert_eq!(out.code, 1, "{out:?}");
    shown.push(("--json run".into(), out.all()));
    shown.push(("JUnit".into(), p.read("report.xml")));
    let page = p.read("page.html");
    assert!(page.contains(&format!("${{{name}}}")), "the page shows the command with the reference: {page}");
    shown.push(("timings page".into(), p.read("page.html")));
    shown.push(("trace".into(), p.read("trace.json")));
    let out = irun(&["--progress", "never", "t"]);
    assert_eq!(out.code, 1, "{out:?}");
    shown.push(("a failing run".into(), out.all()));
    let out = irun(&["explain", "t"]);
    shown.push(("explain after a run".into(), out.all()));
    assert_eq!(p.read("sub/cmd.txt"), value, "the command received the value");
    assert_eq!(p.read("sub/env.txt"), value, "the env value received it");
    for (what, text) in &shown {
        assert!(!text.contains(value), "{what} shows the value of {name}:\n{text}");
    }
    let list = &shown[1].1;
    assert!(list.contains(&format!("${{{name}}}")), "list --json shows the reference instead: {list}");
}

const TOML: &str = r#"dotenv = ["?.env"]
[tasks.t]
cmd = "printf '%s' '${TOKEN}' > cmd.txt; printf '%s' \"$AUTH\" > env.txt; echo 'curl -H x:' >&2; exit 1"
env = { AUTH = "${TOKEN}", PLAIN = "written-in-irun-toml" }
cwd = "sub"
deps = ["db"]
[tasks.db]
cmd = "sleep 30"
daemon = true
ready = { exec = "test -n '${TOKEN}'" }
"#;

#[test]
fn a_dotenv_secret_is_shown_as_its_reference_and_still_reaches_the_task() {
    let p = Project::new(TOML);
    p.file(".env", "TOKEN=s3cr3t-value\n");
    p.file("sub/.keep", "");
    assert_never_shown(&p, "TOKEN", "s3cr3t-value", None);
}

#[test]
fn a_shell_secret_is_shown_as_its_reference_and_still_reaches_the_task() {
    let p = Project::new(TOML);
    p.file("sub/.keep", "");
    assert_never_shown(&p, "TOKEN", "from-the-shell-s3cr3t", Some(("TOKEN", "from-the-shell-s3cr3t")));
}

#[test]
fn a_secret_read_again_when_watch_mode_reloads_irun_toml_is_hidden_too() {
    let toml = "dotenv = [\".env\"]\n[tasks.t]\ncmd = \"echo ran\"\ndeps = [\"db\"]\nsources = [\"s\"]\n\
                [tasks.db]\ncmd = \"sleep 30\"\ndaemon = true\nready = { exec = \"test -n '${TOKEN}'\" }\n";
    let p = Project::new(toml);
    p.file(".env", "TOKEN=first-s3cr3t\n").file("s", "1");
    let mut run = p.irun().args(["--watch", "--json", "t"]).spawn();
    run.wait_for_count(r#""event":"cycle_finished""#, 1);
    // A new value, read as Irun.toml is reloaded: the service's probe changed, so it is started again.
    p.file(".env", "TOKEN=second-s3cr3t\n");
    p.file("Irun.toml", &format!("{toml}# edited\n"));
    run.wait_for_line(r#""kind":"reload_applied""#);
    run.wait_for_count(r#""event":"task_ready""#, 2);
    run.signal(nix::sys::signal::Signal::SIGINT);
    let out = run.wait();
    for value in ["first-s3cr3t", "second-s3cr3t"] {
        assert!(!out.all().contains(value), "{value} is shown: {out:?}");
    }
    assert!(out.stdout.contains("${TOKEN}"), "{out:?}");
}
