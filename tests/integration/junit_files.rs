//! `junit = ["glob", …]`: the JUnit reports a task writes are read after it runs and their test cases nested under
//! the task in irun's own reports; an old report is not read again; a broken or missing one is a warning.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{Project, tools_python};
use crate::reporting::python;

/// `merged` (irun's `--junit` report in `p`), checked against the Jenkins JUnit schema, as JSON: its suites, each
/// `{name, cases: [{name, classname, result, message, text, out}]}` (`result`: passed, failure, error, skipped).
fn suites(p: &Project, merged: &str) -> Vec<Value> {
    let xsd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit-10.xsd");
    let script = r#"
import json, sys, xmlschema
import xml.etree.ElementTree as ET
xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2])
def case(c):
    result = next((r for r in c if r.tag in ("failure", "error", "skipped")), None)
    out = c.find("system-out")
    return {
        "name": c.get("name"), "classname": c.get("classname"),
        "result": "passed" if result is None else result.tag,
        "message": None if result is None else result.get("message"),
        "text": None if result is None else (result.text or ""),
        "out": None if out is None else out.text,
    }
root = ET.parse(sys.argv[2]).getroot()
print(json.dumps([{"name": s.get("name"), "cases": [case(c) for c in s.findall("testcase")]} for s in root]))
"#;
    let checked = python(script, &[xsd.to_str().unwrap(), p.path(merged).to_str().unwrap()]);
    assert_eq!(checked.code, 0, "{merged} does not validate: {checked:?}\n{}", p.read(merged));
    serde_json::from_str(&checked.stdout).unwrap()
}

fn suite<'a>(suites: &'a [Value], name: &str) -> &'a Vec<Value> {
    let found = suites.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no suite {name}: {suites:#?}"));
    found["cases"].as_array().unwrap()
}

fn case<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no case {name}: {cases:#?}"))
}

/// The `--events` file's objects.
fn events(p: &Project, file: &str) -> Vec<Value> {
    p.read(file).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn notices<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == "notice" && e["kind"] == kind).collect()
}

const TEST_X: &str = r#"import pytest


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    print("about to fail")
    assert 1 + 1 == 3, "arithmetic is broken"


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"#;

#[test]
fn pytests_cases_are_nested_under_their_task_in_a_merged_report_that_validates() {
    let pytest = tools_python();
    let p = Project::new(&format!(
        "[tasks.test]\ncmd = [{:?}, \"-m\", \"pytest\", \"-p\", \"no:cacheprovider\", \"--junitxml=reports/junit.xml\", \
         \"test_x.py\"]\njunit = [\"reports/*.xml\"]\n\n[tasks.lint]\ncmd = \"echo lint clean\"\n",
        pytest.to_str().unwrap()
    ));
    p.file("test_x.py", TEST_X);
    let out = p.irun().args(["--junit", "merged.xml", "--events", "events.jsonl", "-k", "test", "lint"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("test * 3 test cases, 1 failed, 1 skipped (reports/junit.xml): test_fails"), "{out:?}");
    let suites = suites(&p, "merged.xml");
    assert_eq!(suite(&suites, "irun").len(), 1, "lint stays in irun's suite: {suites:#?}");
    let test = suite(&suites, "test");
    assert_eq!(test.len(), 4, "three of pytest's, one of the task's own: {test:#?}");
    let fails = case(test, "test_fails");
    assert_eq!((&fails["classname"], &fails["result"]), (&Value::from("test_x"), &Value::from("failure")));
    assert!(fails["message"].as_str().unwrap().contains("arithmetic is broken"), "{fails}");
    assert!(fails["text"].as_str().unwrap().contains("assert 1 + 1 == 3"), "{fails}");
    let skipped = case(test, "test_skipped");
    assert_eq!((&skipped["result"], &skipped["message"]), (&Value::from("skipped"), &Value::from("not today")));
    assert_eq!(
        (&case(test, "test_passes")["result"], &case(test, "test_passes")["classname"]),
        (&"passed".into(), &"test_x".into())
    );
    let own = case(test, "test");
    assert_eq!((&own["classname"], &own["result"]), (&Value::from("irun.task"), &Value::from("failure")));
    assert_eq!(own["message"], "exit code 1");
    assert!(own["out"].as_str().unwrap().contains("1 failed, 1 passed, 1 skipped"), "pytest's summary: {own}");
    let events = events(&p, "events.jsonl");
    let tests: Vec<&Value> = events.iter().filter(|e| e["event"] == "tests").collect();
    assert_eq!(tests.len(), 1, "{events:#?}");
    let counts = ["tests", "failures", "errors", "skipped"].map(|k| tests[0][k].as_u64().unwrap());
    assert_eq!(
        (&tests[0]["task"], &tests[0]["files"], counts),
        (&"test".into(), &serde_json::json!(["reports/junit.xml"]), [3, 1, 0, 1])
    );
    let order: Vec<&str> = events
        .iter()
        .filter(|e| e["task"] == "test" && (e["event"] == "tests" || e["event"] == "task_finished"))
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["tests", "task_finished"], "the counts come before the task's result");
}

#[test]
fn a_report_from_an_earlier_run_is_not_read_again() {
    let p = Project::new("[tasks.t]\ncmd = \"echo ran; exit 1\"\njunit = [\"reports/*.xml\"]\n");
    p.file("reports/junit.xml", "<testsuite name=\"old\"><testcase classname=\"old\" name=\"old_case\"/></testsuite>");
    let out = p.irun().args(["--junit", "merged.xml", "--events", "events.jsonl", "t"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let suites = suites(&p, "merged.xml");
    let t = suite(&suites, "t");
    assert_eq!(t.len(), 1, "only the task's own failed case: {suites:#?}");
    assert_eq!(
        (&t[0]["name"], &t[0]["classname"], &t[0]["result"]),
        (&"t".into(), &"irun.task".into(), &"failure".into())
    );
    assert!(!p.read("merged.xml").contains("old_case"));
    let events = events(&p, "events.jsonl");
    let tests = events.iter().find(|e| e["event"] == "tests").expect("a tests event");
    assert_eq!((&tests["files"], &tests["tests"]), (&serde_json::json!([]), &Value::from(0)));
    assert!(notices(&events, "junit_missing").is_empty(), "a failed task is told of its failure alone: {events:#?}");
    assert!(!out.stdout.contains("warning"), "{out:?}");
}

#[test]
fn a_malformed_report_is_a_warning_and_the_others_are_read() {
    let p = Project::new("[tasks.t]\ncmd = \"sh write.sh\"\njunit = [\"reports/*.xml\"]\n");
    p.script(
        "write.sh",
        "mkdir -p reports\necho '<testsuite><testcase name=\"fine\"/></testsuite>' > reports/good.xml\n\
         printf '<testsuite>\\n<testcase name=\"x\">\\n</testsuite>' > reports/junit.xml\n",
    );
    let out = p.irun().args(["--junit", "merged.xml", "--events", "events.jsonl", "t"]).run();
    assert_eq!(out.code, 0, "a broken report does not fail the run: {out:?}");
    let warning = "irun: warning: cannot read the JUnit report reports/junit.xml of task `t`: ill-formed document: \
                   expected `</testcase>`, but `</testsuite>` was found at line 3 column 1";
    assert!(out.stdout.contains(warning), "{out:?}");
    assert!(out.stdout.contains("t * 1 test case (reports/good.xml)"), "{out:?}");
    let events = events(&p, "events.jsonl");
    let unreadable = notices(&events, "junit_unreadable");
    assert_eq!(unreadable.len(), 1, "{events:#?}");
    assert_eq!((&unreadable[0]["task"], &unreadable[0]["path"]), (&"t".into(), &"reports/junit.xml".into()));
    assert!(unreadable[0]["error"].as_str().unwrap().ends_with("at line 3 column 1"), "{events:#?}");
    let suites = suites(&p, "merged.xml");
    let t = suite(&suites, "t");
    assert_eq!((t.len(), &t[0]["name"], &t[0]["result"]), (1, &"fine".into(), &"passed".into()), "{suites:#?}");
}

#[test]
fn a_task_that_succeeds_without_writing_its_report_is_warned_of() {
    let p = Project::new("[tasks.t]\ncmd = \"echo no report\"\njunit = [\"reports/*.xml\", \"!reports/old.xml\"]\n");
    let out = p.irun().args(["--junit", "merged.xml", "--events", "events.jsonl", "t"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let warning = "irun: warning: task `t` succeeded without writing a JUnit report: no file matching `reports/*.xml`, \
                   `!reports/old.xml` was written in this run";
    assert!(out.stdout.contains(warning), "{out:?}");
    let events = events(&p, "events.jsonl");
    let missing = notices(&events, "junit_missing");
    assert_eq!(missing.len(), 1, "{events:#?}");
    assert_eq!(missing[0]["patterns"], serde_json::json!(["reports/*.xml", "!reports/old.xml"]));
    let suites = suites(&p, "merged.xml");
    let t = suite(&suites, "t");
    assert_eq!((t.len(), &t[0]["classname"], &t[0]["result"]), (1, &"irun.task".into(), &"passed".into()));
}

#[test]
fn junit_on_a_service_or_a_group_is_an_error_naming_its_line() {
    let service = Project::new("[tasks.db]\ncmd = \"sleep 100\"\ndaemon = true\njunit = [\"r.xml\"]\n");
    let out = service.irun().args(["db"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("Irun.toml:4:9"), "{out:?}");
    assert!(out.stderr.contains("`junit` is only for tasks, and `db` is a service (`daemon = true`)"), "{out:?}");
    let group = Project::new("[tasks.t]\ncmd = \"true\"\n[tasks.all]\ndeps = [\"t\"]\njunit = [\"r.xml\"]\n");
    let out = group.irun().args(["all"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("Irun.toml:5:9"), "{out:?}");
    assert!(out.stderr.contains("task `all` is a group (it has no `cmd`), so `junit` has no effect"), "{out:?}");
}

#[test]
fn in_watch_mode_each_run_reads_its_report_and_a_report_among_the_sources_triggers_nothing() {
    use crate::watch::{lines, stop, watching};
    let p = Project::new(
        "[tasks.sentinel]\ncmd = \"true\"\nsources = [\"sentinel\"]\n\
         [tasks.test]\ncmd = \"sh test.sh\"\nsources = [\"src/**\", \"reports/**\"]\njunit = [\"reports/*.xml\"]\n",
    );
    p.file(".gitignore", "runs.log\n");
    p.file("src/a.txt", "1\n");
    // Each run's report has a case named after the run.
    p.script(
        "test.sh",
        "echo run >> runs.log\nmkdir -p reports\n\
         echo \"<testsuite><testcase name=\\\"run$(wc -l < runs.log)\\\"/></testsuite>\" > reports/junit.xml\n",
    );
    let mut run = watching(&p, &["--events", "events.jsonl", "test", "sentinel"]);
    p.file("src/a.txt", "2\n");
    run.wait_for_count("irun: waiting for changes", 2);
    // Events arrive in order: once the sentinel's cycle is over, anything the report could have started has.
    p.file("sentinel", "");
    run.wait_for_count("irun: waiting for changes", 3);
    stop(run);
    let events = events(&p, "events.jsonl");
    let cycles: Vec<&Value> = events.iter().filter(|e| e["event"] == "cycle_started").map(|e| &e["changed"]).collect();
    assert_eq!(cycles, [&serde_json::json!([]), &serde_json::json!(["src/a.txt"]), &serde_json::json!(["sentinel"])]);
    assert_eq!(lines(&p, "runs.log").len(), 2, "the report test writes into its own sources started no run");
    let counts: Vec<(u64, &Value)> =
        events.iter().filter(|e| e["event"] == "tests").map(|e| (e["tests"].as_u64().unwrap(), &e["files"])).collect();
    assert_eq!(counts, [(1, &serde_json::json!(["reports/junit.xml"])); 2], "each run read its report: {events:#?}");
}
