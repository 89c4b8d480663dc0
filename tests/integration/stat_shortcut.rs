//! The stat shortcut of the up-to-date checks: a file is not read again when its stat data vouches for what it
//! held, and no change to it can slip by that way — an edit in the same second with the same size and the mtime set
//! back, a file replaced by a rename, a state from before stat data was recorded. A touch alone reruns nothing.

use std::time::SystemTime;

use crate::harness::Project;

const COPY: &str = r#"
[tasks.copy]
cmd = "echo run >> copy.log; mkdir -p out; cp src/a.txt out/a.txt"
sources = ["src/a.txt"]
outputs = ["out/a.txt"]
"#;

fn copy_project() -> Project {
    let p = Project::new(COPY);
    p.file("src/a.txt", "one\n");
    p.run_ok(&["copy"]);
    assert_eq!(p.count_lines("copy.log"), 1);
    p
}

fn mtime(p: &Project, rel: &str) -> SystemTime {
    std::fs::metadata(p.path(rel)).unwrap().modified().unwrap()
}

fn set_mtime(p: &Project, rel: &str, to: SystemTime) {
    std::fs::OpenOptions::new().append(true).open(p.path(rel)).unwrap().set_modified(to).unwrap();
}

/// Writes `content` (as long as what the file holds) in place, then sets the mtime back to what it was: only the
/// content and the ctime differ, as after an edit within one tick of a coarse clock.
fn edit_keeping_size_and_mtime(p: &Project, rel: &str, content: &str) {
    let before = mtime(p, rel);
    assert_eq!(std::fs::metadata(p.path(rel)).unwrap().len(), content.len() as u64, "same size");
    std::fs::write(p.path(rel), content).unwrap();
    set_mtime(p, rel, before);
    assert_eq!(mtime(p, rel), before);
}

fn explain(p: &Project) -> String {
    let out = p.run_ok(&["explain", "copy"]);
    out.stdout.lines().find(|l| l.starts_with("copy")).unwrap_or_default().to_string()
}

#[test]
fn an_edit_in_the_same_second_with_the_same_size_and_mtime_reruns() {
    let p = copy_project();
    // Right after the run that recorded it: the same second, the same size, the mtime as recorded.
    edit_keeping_size_and_mtime(&p, "src/a.txt", "two\n");
    assert_eq!(explain(&p), "copy  will run: `src/a.txt` changed");
    p.run_ok(&["copy"]);
    assert_eq!(p.count_lines("copy.log"), 2, "the edited source reran the task");
    assert_eq!(p.read("out/a.txt"), "two\n");
    edit_keeping_size_and_mtime(&p, "out/a.txt", "TWO\n");
    assert!(explain(&p).starts_with("copy  will run: output `out/a.txt`"), "{}", explain(&p));
    p.run_ok(&["copy"]);
    assert_eq!(
        (p.count_lines("copy.log"), p.read("out/a.txt")),
        (3, "two\n".into()),
        "the edited output was made again"
    );
}

#[test]
fn a_source_replaced_by_a_rename_with_the_same_size_and_mtime_reruns() {
    let p = copy_project();
    let before = mtime(&p, "src/a.txt");
    p.file("src/a.txt.new", "six\n");
    set_mtime(&p, "src/a.txt.new", before);
    std::fs::rename(p.path("src/a.txt.new"), p.path("src/a.txt")).unwrap();
    assert_eq!(mtime(&p, "src/a.txt"), before);
    assert_eq!(explain(&p), "copy  will run: `src/a.txt` changed");
    p.run_ok(&["copy"]);
    assert_eq!((p.count_lines("copy.log"), p.read("out/a.txt")), (2, "six\n".into()));
}

#[test]
fn a_touch_without_a_content_change_reruns_nothing() {
    let p = copy_project();
    for rel in ["src/a.txt", "out/a.txt"] {
        set_mtime(&p, rel, SystemTime::now() + std::time::Duration::from_secs(3));
        // Rewritten the same, too: a new ctime, the same content.
        std::fs::write(p.path(rel), "one\n").unwrap();
    }
    assert_eq!(explain(&p), "copy  up to date");
    let out = p.run_ok(&["copy"]);
    assert!(out.stdout.contains("up to date"), "{out:?}");
    let again = p.run_ok(&["copy"]);
    assert!(again.stdout.contains("up to date"), "{again:?}");
    assert_eq!(p.count_lines("copy.log"), 1, "touched and rewritten the same: nothing ran");
}

#[test]
fn a_state_from_before_stat_data_was_recorded_keeps_tasks_up_to_date_and_sees_edits() {
    let p = copy_project();
    // As an irun that recorded only size, mtime and hash wrote it: JSON, format 2.
    let mut state = p.state();
    state["version"] = 2.into();
    let record = &mut state["tasks"]["copy"]["record"];
    assert!(record.as_object_mut().unwrap().remove("checked_at").is_some(), "{record}");
    for files in ["sources", "outputs"] {
        for stamp in record[files].as_object_mut().unwrap().values_mut() {
            let stamp = stamp.as_object_mut().unwrap();
            assert!(stamp.remove("ino").is_some() && stamp.remove("ctime").is_some(), "{stamp:?}");
        }
    }
    p.set_state(&state);
    let out = p.run_ok(&["copy"]);
    assert!(out.stdout.contains("up to date"), "no rerun after the upgrade: {out:?}");
    assert!(!p.exists(".irun/state.json") && p.exists(".irun/state.bin"), "replaced by the binary state");
    let saved = p.state();
    let stamp = &saved["tasks"]["copy"]["record"]["sources"]["src/a.txt"];
    assert!(stamp["ino"].as_u64().is_some_and(|i| i > 0), "the stamp takes the stat data it lacked: {stamp}");
    edit_keeping_size_and_mtime(&p, "src/a.txt", "two\n");
    p.run_ok(&["copy"]);
    assert_eq!((p.count_lines("copy.log"), p.read("out/a.txt")), (2, "two\n".into()), "the edit was seen");
}

#[test]
fn an_edit_with_the_same_size_and_mtime_long_after_the_last_check_reruns() {
    let p = copy_project();
    // As if the files had been checked ten seconds after they last changed: their stamps vouch for them, and only
    // the stat data can tell an edit.
    let later = |v: &serde_json::Value| serde_json::json!(v.as_i64().unwrap() + 10_000_000_000);
    let mut state = p.state();
    let record = &mut state["tasks"]["copy"]["record"];
    let later = later(&record["recorded_at"]);
    record["checked_at"] = later.clone();
    record["recorded_at"] = later;
    p.set_state(&state);
    assert_eq!(explain(&p), "copy  up to date");
    edit_keeping_size_and_mtime(&p, "src/a.txt", "two\n");
    assert_eq!(explain(&p), "copy  will run: `src/a.txt` changed");
    p.run_ok(&["copy"]);
    assert_eq!((p.count_lines("copy.log"), p.read("out/a.txt")), (2, "two\n".into()));
}
