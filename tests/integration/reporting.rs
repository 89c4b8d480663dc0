//! Reporting: the terminal output (prefixed, grouped, summary), the JSON event stream, JUnit, GitHub Actions,
//! colour, the live status area, graphs with state, completions and the JSON Schema.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{Output, Project, tools_python};

/// A fixed graph whose output is the same on every run with `-j1` (durations and pids masked).
const FIXED: &str = r#"
[tasks.compile]
description = "Build"
cmd = "echo compiling; echo done compiling"

[tasks.lint]
cmd = "echo lint clean"

[tasks.test]
cmd = "echo 'test a ... ok'; echo 'test b ... FAILED'; exit 1"
deps = ["compile"]

[tasks.docs]
cmd = "echo docs"
deps = ["test"]

[tasks.all]
deps = ["docs", "lint"]
"#;

/// Durations and pids vary from run to run.
fn masked(text: &str) -> String {
    let durations = regex::Regex::new(r"\b\d+(\.\d+)?(s|ms|m\d\ds)\b").unwrap();
    let pids = regex::Regex::new(r"pid \d+").unwrap();
    pids.replace_all(&durations.replace_all(text, "<t>"), "pid <n>").into_owned()
}

fn fixed_run(extra: &[&str]) -> Output {
    let p = Project::new(FIXED);
    let out = p.irun().args(["-j1", "-k", "--color", "never"]).args(extra).args(["all"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    out
}

#[test]
fn prefixed_output_and_summary() {
    insta::assert_snapshot!("prefixed", masked(&fixed_run(&[]).stdout));
}

#[test]
fn grouped_output_puts_failures_last() {
    let out = fixed_run(&["--output", "grouped"]);
    insta::assert_snapshot!("grouped", masked(&out.stdout));
    let failed_block = out.stdout.find("── test: FAILED").unwrap();
    let other_blocks = ["── compile:", "── lint:"].map(|b| out.stdout.find(b).unwrap());
    assert!(other_blocks.iter().all(|&b| b < failed_block), "the failure comes last: {out:?}");
}

#[test]
fn the_summary_names_the_critical_path() {
    let p = Project::new(
        "[tasks.a]\ncmd = \"true\"\n[tasks.b]\ncmd = \"true\"\ndeps = [\"a\"]\n[tasks.c]\ncmd = \"true\"\ndeps = [\"b\"]\n[tasks.side]\ncmd = \"true\"\n",
    );
    // side runs first under -j1; the chain a -> b -> c ends last and so decided the wall time.
    let out = p.irun().args(["-j1", "side", "c"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.lines().find(|l| l.starts_with("irun: critical path:")).expect("critical path line");
    assert_eq!(masked(line), "irun: critical path: a (<t>) -> b (<t>) -> c (<t>)", "{out:?}");
}

/// Parsed JSON lines.
fn json_events(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[test]
fn json_events_tell_a_consistent_story() {
    let p = Project::new(FIXED);
    let out = p.irun().args(["--json", "-j2", "-k", "all"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let events = json_events(&out.stdout);
    assert_eq!(events.first().unwrap()["event"], "run_started");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert_eq!(events.last().unwrap()["outcome"], "failed");
    let mut last_time = String::new();
    for e in &events {
        assert_eq!(e["version"], 1);
        let time = e["time"].as_str().unwrap();
        humantime::parse_rfc3339(time).unwrap_or_else(|err| panic!("bad time {time}: {err}"));
        assert!(time >= last_time.as_str(), "times never go backwards");
        last_time = time.to_string();
    }
    let index = |kind: &str, task: &str| events.iter().position(|e| e["event"] == kind && e["task"] == task);
    for task in ["compile", "lint", "test", "docs"] {
        let finished = index("task_finished", task).unwrap_or_else(|| panic!("{task} never finished"));
        if let Some(started) = index("task_started", task) {
            assert!(started < finished);
        }
    }
    assert_eq!(events[index("task_finished", "test").unwrap()]["status"], "failed");
    assert_eq!(events[index("task_finished", "test").unwrap()]["reason"], "exit code 1");
    assert_eq!(events[index("task_finished", "docs").unwrap()]["status"], "skipped");
    assert!(index("task_started", "docs").is_none(), "a skipped task never starts");
    // Deps finish before their dependents start.
    assert!(index("task_finished", "compile").unwrap() < index("task_started", "test").unwrap());
    let output = events.iter().find(|e| e["event"] == "output" && e["task"] == "test").unwrap();
    assert_eq!(output["stream"], "stdout");
    assert_eq!(output["line"], "test a ... ok");
    let started = &events[0];
    let test = started["tasks"].as_array().unwrap().iter().find(|t| t["name"] == "test").unwrap();
    assert_eq!(test["deps"], serde_json::json!(["compile"]));
}

#[test]
fn events_file_is_written_beside_the_human_output() {
    let p = Project::new(FIXED);
    let out = p.irun().args(["--events", "events.jsonl", "-k", "all"]).run();
    assert!(out.stdout.contains("irun: summary"), "{out:?}");
    let events = json_events(&p.read("events.jsonl"));
    assert!(events.iter().any(|e| e["event"] == "run_finished"));
}

#[test]
fn an_unwritable_report_path_is_an_error_before_anything_runs() {
    let p = Project::new("[tasks.a]\ncmd = \"touch ran\"\n");
    let out = p.irun().args(["--junit", "no/such/dir/report.xml", "a"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("cannot write the JUnit report to no/such/dir/report.xml"), "{out:?}");
    assert!(!p.exists("ran"));
}

#[test]
fn two_reports_to_one_file_are_refused_before_anything_runs() {
    let p = Project::new("[tasks.a]\ncmd = \"touch ran\"\n");
    std::fs::create_dir(p.path("sub")).unwrap();
    std::fs::write(p.path("old.xml"), "old\n").unwrap();
    std::os::unix::fs::symlink("old.xml", p.path("link.xml")).unwrap();
    for (junit, events) in [
        ("report.xml", "report.xml"),
        ("./report.xml", "report.xml"),
        ("sub/../report.xml", "report.xml"),
        ("old.xml", "link.xml"),
    ] {
        let out = p.irun().args(["--junit", junit, "--events", events, "a"]).run();
        assert_eq!(out.code, 2, "{junit} {events}: {out:?}");
        assert!(out.stderr.contains(&format!("--junit {junit} and --events {events} name the same file")), "{out:?}");
        assert!(out.stderr.contains("help: give each report a file of its own"), "{out:?}");
        assert!(!p.exists("ran"), "nothing ran");
        assert!(!p.exists("report.xml"), "nothing was written");
        assert_eq!(p.read("old.xml"), "old\n", "nothing was truncated");
    }
    // Nor may a report overwrite the Irun.toml in use.
    let toml = p.read("Irun.toml");
    let out = p.irun().args(["--junit", "./Irun.toml", "a"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--junit ./Irun.toml names the Irun.toml irun reads"), "{out:?}");
    assert_eq!(p.read("Irun.toml"), toml);
    assert!(!p.exists("ran"));
    // Two files of their own are fine.
    let out = p.irun().args(["--junit", "report.xml", "--events", "sub/events.jsonl", "a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.read("report.xml").starts_with("<?xml"));
}

pub fn python(code: &str, args: &[&str]) -> Output {
    let out = Command::new(tools_python()).arg("-c").arg(code).args(args).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

#[test]
fn junit_report_validates_against_the_junit_schema() {
    let p = Project::new(&format!(
        "{FIXED}\n[tasks.svc]\ncmd = \"echo up; exec sleep 1000\"\ndaemon = true\nready = {{ log = \"up\" }}\n[tasks.client]\ncmd = \"printf 'bad \\\\033[31mbytes\\\\n'\"\ndeps = [\"svc\"]\n"
    ));
    let out = p.irun().args(["--junit", "junit.xml", "-k", "all", "client"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let xsd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit-10.xsd");
    let check = python(
        "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2]); print('valid')",
        &[xsd.to_str().unwrap(), p.path("junit.xml").to_str().unwrap()],
    );
    assert_eq!(check.code, 0, "JUnit report does not validate: {check:?}\n{}", p.read("junit.xml"));
    let xml = p.read("junit.xml");
    assert!(xml.contains("<testcase name=\"test\" classname=\"irun.task\""), "{xml}");
    assert!(xml.contains("<failure message=\"exit code 1\" type=\"failed\""), "{xml}");
    assert!(xml.contains("test b ... FAILED"), "failure output included: {xml}");
    assert!(xml.contains("<skipped message=\"dep `test` failed\""), "{xml}");
    assert!(xml.contains("classname=\"irun.service\""), "{xml}");
    assert!(!xml.contains("name=\"all\""), "groups are not test cases: {xml}");
}

#[test]
fn github_actions_groups_and_annotations_only_when_asked() {
    let p = Project::new(FIXED);
    let plain = p.irun().args(["-k", "all"]).env("GITHUB_ACTIONS", "false").run();
    assert!(!plain.stdout.contains("::group::") && !plain.stdout.contains("::error"), "{plain:?}");
    let gh = p.irun().args(["-k", "-j1", "all"]).env("GITHUB_ACTIONS", "true").run();
    assert!(gh.stdout.contains("::group::compile: ok in"), "{gh:?}");
    assert!(gh.stdout.contains("::endgroup::"), "{gh:?}");
    assert!(gh.stdout.contains("::error title=irun%3A task test failed::exit code 1"), "{gh:?}");
    let group = gh.stdout.split("::group::compile").nth(1).unwrap().split("::endgroup::").next().unwrap();
    assert!(group.contains("compiling\ndone compiling\n"), "the task's output is inside its group: {gh:?}");
}

#[test]
fn no_color_means_no_escape_codes() {
    let p = Project::new(FIXED);
    let out = p.irun().args(["-k", "all"]).env("NO_COLOR", "1").run();
    assert!(!out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'), "{out:?}");
    let forced = p.irun().args(["-k", "--color", "always", "all"]).run();
    assert!(forced.stdout.contains("\x1b["), "--color always colours even a pipe: {forced:?}");
}

/// Run irun under a pseudo-terminal (util-linux `script`), returning what the terminal received.
fn on_a_terminal(p: &Project, args: &str, env: &[(&str, &str)]) -> String {
    let bin = env!("CARGO_BIN_EXE_irun");
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &format!("{bin} {args}"), "/dev/null"]).current_dir(p.root()).env_remove("CI");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("script (util-linux) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SLOWISH: &str = "[tasks.a]\ncmd = \"sleep 0.5; echo a done\"\n[tasks.b]\ncmd = \"sleep 0.5; echo b done\"\n[tasks.both]\ndeps = [\"a\", \"b\"]\n";

#[test]
fn the_status_area_is_drawn_on_a_terminal_and_never_into_a_pipe() {
    let p = Project::new(SLOWISH);
    let piped = p.irun().args(["--color", "never", "a", "b"]).run();
    assert!(!piped.stdout.contains('\x1b'), "no cursor movement into a pipe: {piped:?}");
    let tty = on_a_terminal(&p, "--color never both", &[("TERM", "xterm")]);
    assert!(tty.contains("done,") && tty.contains("running"), "the status area shows progress: {tty:?}");
    assert!(tty.contains("\x1b["), "drawn with terminal control codes: {tty:?}");
    assert!(tty.contains("a done") && tty.contains("irun: summary"), "{tty:?}");
    let counts = regex::Regex::new(r"(\d+)/(\d+) done").unwrap();
    for c in counts.captures_iter(&tty) {
        let (done, total): (u32, u32) = (c[1].parse().unwrap(), c[2].parse().unwrap());
        assert!(done <= total && total == 2, "groups are not counted: {done}/{total}");
    }
    let grouped = on_a_terminal(&p, "--color never both", &[("TERM", "xterm")]);
    assert!(counts.captures_iter(&grouped).all(|c| c[1] <= c[2]), "{grouped:?}");
    let quiet = on_a_terminal(&p, "--progress never --color never a b", &[("TERM", "xterm")]);
    assert!(!quiet.contains("done,"), "--progress never: {quiet:?}");
    let ci = on_a_terminal(&p, "--color never a b", &[("TERM", "xterm"), ("CI", "true")]);
    assert!(!ci.contains("done,"), "CI set: {ci:?}");
}

/// Runs irun (argv[1:]) on a pseudo-terminal 100 columns wide, presses Ctrl-C once both tasks have printed and the
/// status area has been drawn, and prints what the screen shows at the end (a terminal emulator, pyte, replays
/// every byte irun wrote, cursor movements included) after a line `ECHOED` if the terminal echoed `^C`.
const CTRL_C_ON_A_TERMINAL: &str = r#"
import fcntl, os, pty, select, struct, sys, termios, time
import pyte
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.environ.pop("CI", None)
    os.execv(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
screen = pyte.Screen(100, 30)
stream = pyte.ByteStream(screen)
out = b""
def read(until):
    global out
    deadline = time.time() + 60
    while not until() and time.time() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            out += data
            stream.feed(data)
def drawn_after_both():
    i = max(out.find(b"a up"), out.find(b"b up"))
    return out.find(b"a up") >= 0 and out.find(b"b up") >= 0 and out.find(b" done, ", i) >= 0
read(drawn_after_both)
os.write(fd, b"\x03")
read(lambda: False)
if b"^C" in out:
    print("ECHOED")
for line in screen.display:
    if line.strip():
        print(line.rstrip())
"#;

#[test]
fn ctrl_c_on_a_terminal_leaves_no_status_line_behind() {
    let p = Project::new(
        "[tasks.a]\ncmd = \"echo a up; exec sleep 1000\"\n[tasks.b]\ncmd = \"echo b up; exec sleep 1000\"\n",
    );
    let bin = env!("CARGO_BIN_EXE_irun");
    let screen = python(CTRL_C_ON_A_TERMINAL, &[bin, "-f", p.path("Irun.toml").to_str().unwrap(), "-j2", "a", "b"]);
    assert_eq!(screen.code, 0, "{screen:?}");
    assert!(screen.stdout.starts_with("ECHOED\n"), "the terminal echoed ^C, as a real one does: {screen:?}");
    assert!(!screen.stdout.contains(" done, "), "a line of the status area was left on the screen: {}", screen.stdout);
    let last = screen.stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("irun: interrupted by SIGINT: 2 cancelled"), "{}", screen.stdout);
}

#[test]
fn graph_status_colours_nodes_by_the_last_run() {
    let p = Project::new(FIXED);
    p.irun().args(["-k", "all"]).run();
    let out = p.irun().args(["graph", "--dot", "--status"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    graphviz_rust::parse(&out.stdout).unwrap_or_else(|e| panic!("invalid DOT: {e}\n{}", out.stdout));
    // Only tasks with sources are remembered; give them some to see colours.
    let p = Project::new(
        &FIXED
            .replace("cmd = \"echo lint clean\"", "cmd = \"echo lint clean\"\nsources = [\"lint.cfg\"]")
            .replace("exit 1\"\ndeps = [\"compile\"]", "exit 1\"\ndeps = [\"compile\"]\nsources = [\"test.cfg\"]"),
    );
    p.irun().args(["-k", "all"]).run();
    let out = p.irun().args(["graph", "--status"]).run();
    let node = |name: &str| {
        out.stdout.lines().find(|l| l.trim_start().starts_with(&format!("\"{name}\" ["))).unwrap().to_string()
    };
    assert!(node("lint").contains("#c8e6c9") && node("lint").contains("last run: ok"), "{}", out.stdout);
    assert!(node("test").contains("#ffcdd2") && node("test").contains("last run: failed"), "{}", out.stdout);
    assert!(node("docs").contains("#e0e0e0") && node("docs").contains("never ran"), "{}", out.stdout);
}

#[test]
fn graph_mermaid_is_a_flowchart_limited_to_targets() {
    let p = Project::new(FIXED);
    let out = p.irun().args(["graph", "--mermaid", "docs"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let expected =
        "flowchart LR\n    t0[\"compile\"]\n    t2[\"test\"]\n    t3[\"docs\"]\n    t0 --> t2\n    t2 --> t3\n";
    assert_eq!(out.stdout, expected);
}

#[test]
fn completions_load_in_their_shells() {
    let p = Project::new("");
    for shell in ["bash", "zsh", "fish"] {
        let out = p.irun().args(["completions", shell]).run();
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("irun"), "{shell}: {out:?}");
    }
    let bash = p.irun().args(["completions", "bash"]).run();
    p.file("irun.bash", &bash.stdout);
    let loaded = Command::new("bash")
        .args(["-c", "source irun.bash && complete -p irun"])
        .current_dir(p.root())
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("irun"), "{loaded:?}");
}

fn validate_toml(schema: &str, toml_path: &str) -> Output {
    python(
        "import json, sys\ntry:\n    import tomllib\nexcept ImportError:\n    import tomli as tomllib\nimport jsonschema\nschema = json.load(open(sys.argv[1]))\njsonschema.Draft202012Validator.check_schema(schema)\ndoc = tomllib.load(open(sys.argv[2], 'rb'))\njsonschema.Draft202012Validator(schema).validate(doc)\nprint('valid')",
        &[schema, toml_path],
    )
}

#[test]
fn the_schema_accepts_the_root_irun_toml_and_rejects_an_unknown_key() {
    let p = Project::new("[tasks.a]\ncmd = \"true\"\ncmdd = \"typo\"\n");
    let schema = p.irun().args(["schema"]).run();
    assert_eq!(schema.code, 0, "{schema:?}");
    p.file("irun.schema.json", &schema.stdout);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Irun.toml");
    let ok = validate_toml(p.path("irun.schema.json").to_str().unwrap(), root.to_str().unwrap());
    assert_eq!(ok.code, 0, "{ok:?}");
    let bad = validate_toml(p.path("irun.schema.json").to_str().unwrap(), p.path("Irun.toml").to_str().unwrap());
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("cmdd"), "{bad:?}");
}

#[test]
fn the_schema_rejects_what_irun_rejects() {
    let p = Project::new("");
    let schema = p.irun().args(["schema"]).run();
    p.file("irun.schema.json", &schema.stdout);
    let cases = [
        "[tasks.g]\ndeps = []\n",
        "[tasks.a]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"a\"]\nenv = { A = \"1\" }\n",
        "[tasks.s]\ncmd = \"x\"\nready = { tcp = 1 }\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = { tcp = 1, status = 200 }\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = { log = \"up\", interval = \"1s\" }\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = { tcp = \"h:99999\" }\n",
        "[tasks.a]\ncmd = [\" \"]\n",
        "[tasks.\" \"]\ncmd = \"x\"\n",
        "[env]\n\"A=B\" = \"1\"\n",
        "[tasks.a]\ncmd = \"x\"\ncwd = \"\"\n",
        "[tasks.a]\ncmd = \"x\"\nsources = [\"../up\"]\n",
        "[tasks.a]\ncmd = \"x\"\nsources = [\"src/**\", \"!../up\"]\n",
        "[tasks.a]\ncmd = \"x\"\noutputs = [\"!/tmp/**\"]\n",
        "[tasks.a]\ncmd = \"x\"\nsources = [\"!src/**/*.test.ts\"]\n",
        "[tasks.a]\ncmd = \"x\"\nsources = [\"src/**\", \"!\"]\n",
        "[tasks.a]\ncmd = \"x\"\nstop_signal = \"SIGFOO\"\n",
        "[tasks.t]\ncmd = \"x\"\nreuse = true\n",
        "[tasks.t]\ncmd = \"x\"\nrestart = \"always\"\n",
        "[tasks.t]\ncmd = \"x\"\ndaemon = true\nmax_restarts = -1\n",
        "[tasks.t]\ncmd = \"x\"\noutput = \"quiet\"\n",
        "[tasks.a]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"a\"]\ndotenv = [\".env\"]\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\ninteractive = true\n",
        "[tasks.a]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"a\"]\ninteractive = true\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\ncache = true\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\ncache_output = false\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\ncache_env = [\"A\"]\n",
        "[tasks.a]\ncmd = \"x\"\ncache_env = [\"A=1\"]\n",
        "cache_env = [\"\"]\n",
        "[tasks.s]\ncmd = \"x\"\ndaemon = true\njunit = [\"r.xml\"]\n",
        "[tasks.a]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"a\"]\njunit = [\"r.xml\"]\n",
        "[tasks.a]\ncmd = \"x\"\njunit = [\"!r.xml\"]\n",
    ];
    for (n, case) in cases.iter().enumerate() {
        let file = format!("case{n}.toml");
        p.file(&file, case);
        let irun = p.irun().args(["-f", &file, "list"]).run();
        assert_eq!(irun.code, 2, "irun should reject case {n}:\n{case}\n{irun:?}");
        let schema = validate_toml(p.path("irun.schema.json").to_str().unwrap(), p.path(&file).to_str().unwrap());
        assert_ne!(schema.code, 0, "the schema should reject case {n}:\n{case}\n{schema:?}");
    }
}

#[test]
fn grouped_output_keeps_the_lines_of_cancelled_tasks() {
    let p = Project::new(
        "[tasks.slow]\ncmd = \"echo slow said this; exec sleep 1000\"\n[tasks.bad]\ncmd = \"while ! grep -q said slow.out 2>/dev/null; do sleep 0.01; done; exit 1\"\n",
    );
    // slow's line reaches irun before bad fails (bad waits for it via the file below).
    std::fs::write(
        p.path("Irun.toml"),
        p.read("Irun.toml").replace("echo slow said this;", "echo slow said this; echo said > slow.out;"),
    )
    .unwrap();
    let out = p.irun().args(["-j2", "--output", "grouped", "slow", "bad"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("── slow: cancelled\nslow said this\n"), "{out:?}");
}

#[test]
fn github_annotations_come_with_prefixed_output_too() {
    let p = Project::new(FIXED);
    let out = p.irun().args(["-k", "--output", "prefixed", "all"]).env("GITHUB_ACTIONS", "true").run();
    assert!(out.stdout.contains("::error title=irun%3A task test failed::exit code 1"), "{out:?}");
    assert!(!out.stdout.contains("::group::"), "{out:?}");
}

#[test]
fn junit_survives_characters_xml_cannot_carry() {
    // A name may not hold a control character (an error at load), but may hold what XML cannot carry or must escape.
    let p = Project::new(
        "[tasks.\"odd\\ufffe<&>name\"]\ncmd = \"printf 'a\\\\357\\\\277\\\\276b\\\\001c\\\\n'; exit 1\"\n",
    );
    let out = p.irun().args(["--junit", "junit.xml", "odd\u{fffe}<&>name"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let xsd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit-10.xsd");
    let check = python(
        "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2]); print('valid')",
        &[xsd.to_str().unwrap(), p.path("junit.xml").to_str().unwrap()],
    );
    assert_eq!(check.code, 0, "{check:?}\n{}", p.read("junit.xml"));
}

/// A task that colours its output (told to by `--color always`, or on its own): the JUnit report has its words, not
/// the escape codes (which XML cannot carry, and a CI page would show as `[31m`).
#[test]
fn junit_output_has_no_colour_codes() {
    let p = Project::new("[tasks.t]\ncmd = \"printf '\\\\033[1;31mred\\\\033[0m failure\\\\n'; exit 1\"\n");
    let out = p.irun().args(["--color", "always", "--junit", "junit.xml", "t"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("\u{1b}[1;31mred"), "the terminal keeps the colour: {out:?}");
    let xml = p.read("junit.xml");
    assert!(xml.contains("red failure"), "{xml}");
    assert!(!xml.contains("[1;31m") && !xml.contains("[0m"), "{xml}");
}

#[test]
fn json_events_in_watch_mode_pair_every_start_with_a_finish() {
    let p = Project::new(
        "[tasks.svc]\ncmd = \"echo up; exec sleep 1000\"\ndaemon = true\nready = { log = \"up\" }\nsources = [\"svc.cfg\"]\n[tasks.client]\ncmd = \"true\"\ndeps = [\"svc\"]\n",
    );
    p.file("svc.cfg", "1\n");
    let mut run = p.irun().args(["--watch", "--json", "client"]).spawn();
    run.wait_for_count("\"event\":\"cycle_finished\"", 1);
    p.file("svc.cfg", "2\n");
    run.wait_for_count("\"event\":\"cycle_finished\"", 2);
    run.signal(nix::sys::signal::Signal::SIGINT);
    let out = run.wait();
    let events = json_events(&out.stdout);
    assert_eq!(events[0]["event"], "run_started", "nothing comes before run_started");
    for task in ["svc", "client"] {
        let count = |kind: &str| events.iter().filter(|e| e["event"] == kind && e["task"] == task).count();
        assert_eq!(count("task_started"), count("task_finished"), "{task}: {}", out.stdout);
    }
    assert!(events.iter().any(|e| e["event"] == "task_finished" && e["status"] == "restarted"));
}

#[test]
fn graph_status_covers_tasks_without_sources_and_unfinished_ones() {
    let p = Project::new(
        "[tasks.plain]\ncmd = \"true\"\n[tasks.hang]\ncmd = \"echo hanging; exec sleep 1000\"\nsources = [\"x\"]\n",
    );
    p.file("x", "");
    let mut run = p.irun().args(["-j2", "plain", "hang"]).spawn();
    // Both events, not just one: Ctrl-C before plain has finished would cancel it.
    run.wait_for_line("hang  | hanging");
    run.wait_for_line("plain * ok");
    run.signal(nix::sys::signal::Signal::SIGINT);
    run.wait();
    let out = p.irun().args(["graph", "--status"]).run();
    let node = |name: &str| {
        out.stdout.lines().find(|l| l.trim_start().starts_with(&format!("\"{name}\" ["))).unwrap().to_string()
    };
    assert!(node("plain").contains("last run: ok"), "{}", out.stdout);
    assert!(node("hang").contains("last run: did not finish"), "{}", out.stdout);
}

#[test]
fn the_critical_path_never_names_a_cancelled_task_or_a_service_that_never_became_ready() {
    let p = Project::new(
        r#"
[tasks.x]
cmd = "true"

[tasks.slow]
cmd = "touch slow.started; exec sleep 1000"
deps = ["x"]

[tasks.svc]
cmd = "touch svc.started; exec sleep 1000"
daemon = true
ready = { log = "never printed" }
deps = ["x"]

[tasks.client]
cmd = "true"
deps = ["svc"]

[tasks.bad]
cmd = "while [ ! -e slow.started ] || [ ! -e svc.started ]; do sleep 0.01; done; exit 1"
deps = ["x"]
"#,
    );
    let out = p.irun().args(["-j4", "slow", "client", "bad"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("slow   * cancelled"), "{out:?}");
    let line = out.stdout.lines().find(|l| l.starts_with("irun: critical path:")).expect("a critical path");
    assert_eq!(masked(line), "irun: critical path: x (<t>) -> bad (<t>)", "{out:?}");
}

#[test]
fn graph_status_shows_a_group_by_how_its_tasks_last_went() {
    let p = Project::new(
        "[tasks.a]\ncmd = \"true\"\n[tasks.b]\ncmd = \"true\"\n[tasks.both]\ndeps = [\"a\", \"b\"]\n\
         [tasks.bad]\ncmd = \"exit 1\"\n[tasks.mixed]\ndeps = [\"both\", \"bad\"]\n[tasks.fresh]\ncmd = \"true\"\n\
         [tasks.unrun]\ndeps = [\"a\", \"fresh\"]\n",
    );
    assert_eq!(p.irun().args(["both"]).run().code, 0);
    assert_eq!(p.irun().args(["bad"]).run().code, 1);
    let out = p.irun().args(["graph", "--status"]).run();
    let node = |name: &str| {
        out.stdout.lines().find(|l| l.trim_start().starts_with(&format!("\"{name}\" ["))).unwrap().to_string()
    };
    assert!(node("both").contains("last run: ok"), "a group that passed is green: {}", out.stdout);
    assert!(node("mixed").contains("last run: failed"), "{}", out.stdout);
    assert!(node("unrun").contains("never ran"), "{}", out.stdout);
}

#[test]
fn a_report_that_cannot_be_written_is_an_error_naming_the_file() {
    let p = Project::new("[tasks.a]\ncmd = \"echo hello\"\n");
    let events = p.irun().args(["--events", "/dev/full", "a"]).run();
    assert_eq!(events.code, 1, "{events:?}");
    assert_eq!(events.stderr.matches("cannot write the event stream to /dev/full").count(), 1, "{events:?}");
    let junit = p.irun().args(["--junit", "/dev/full", "a"]).run();
    assert_eq!(junit.code, 1, "{junit:?}");
    assert_eq!(junit.stderr.matches("cannot write the JUnit report to /dev/full").count(), 1, "{junit:?}");
}

/// irun with its stdout a pipe nobody reads any more (as in `irun ... | head -1` once head has gone).
fn with_stdout_closed(p: &Project, args: &[&str]) -> (i32, String) {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let mut child = Command::new(env!("CARGO_BIN_EXE_irun"))
        .args(args)
        .current_dir(p.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("irun {args:?} did not end after its stdout was closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    use std::os::unix::process::ExitStatusExt;
    (status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)), stderr)
}

#[test]
fn a_closed_stdout_stops_the_run_and_leaves_nothing_running() {
    let p = Project::new("[tasks.t]\ncmd = \"echo $$ > t.pid; exec sleep 1000\"\n");
    let (code, stderr) = with_stdout_closed(&p, &["t"]);
    assert_eq!(code, 141, "stopped as if by SIGPIPE: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    if p.exists("t.pid") {
        crate::harness::assert_all_dead(&p.pids("t.pid"));
    }
}

#[test]
fn listing_into_a_closed_pipe_exits_quietly() {
    let p = Project::new("[tasks.a]\ncmd = \"true\"\n");
    for args in [&["list"][..], &["graph"], &["explain", "a"], &["-n", "a"], &["schema"], &["completions", "bash"]] {
        let (code, stderr) = with_stdout_closed(&p, args);
        assert_eq!((code, stderr.as_str()), (0, ""), "irun {args:?}");
    }
}

#[test]
fn the_schema_accepts_every_key_in_use() {
    let p = Project::new(
        "dotenv = [\"?.env\"]\n[env]\nPORT = \"${PORT:-7000}\"\n\
         [tasks.web]\ncmd = [\"serve\", \"${IRUN_PORT}\"]\ndaemon = true\nready = { tcp = \"auto\" }\nrestart = \"on-failure\"\n\
         max_restarts = 5\noutput = \"on-failure\"\ndotenv = [\"?web.env\"]\n\
         [tasks.db]\ncmd = \"db --port ${PORT}\"\ndaemon = true\nreuse = true\nready = { tcp = \"${PORT}\" }\n\
         [tasks.t]\ncmd = \"t\"\ndeps = [\"web\", \"db\"]\noutput = \"live\"\n\
         sources = [\"src/**\", \"!src/**/*.test.ts\"]\noutputs = []\njunit = [\"reports/*.xml\", \"!reports/x.xml\"]\n",
    );
    let irun = p.irun().args(["list"]).run();
    assert_eq!(irun.code, 0, "irun accepts it: {irun:?}");
    let schema = p.irun().args(["schema"]).run();
    p.file("irun.schema.json", &schema.stdout);
    let check = validate_toml(p.path("irun.schema.json").to_str().unwrap(), p.path("Irun.toml").to_str().unwrap());
    assert_eq!(check.code, 0, "the schema accepts it too: {check:?}");
}
