//! The state file: saved, merged, locked, read back, and refused when it is not irun's.

use super::*;

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, warning) = State::load(dir.path());
    assert!(warning.is_none() && s.entries().is_empty());
    let mut rec = TaskRecord { ok: true, command: "c".into(), ..Default::default() };
    rec.sources.insert("a b/ü.txt".into(), FileStamp { size: 3, mtime: 5, ino: 7, ctime: 6, hash: "ff".into() });
    s.set_record("setup", rec.clone());
    s.set_last("setup", LastRun::Ok);
    s.set_duration("setup", 12);
    s.save().unwrap();
    let (back, warning) = State::load(dir.path());
    assert!(warning.is_none());
    assert_eq!(*back.record("setup").unwrap(), rec);
    assert_eq!((back.last("setup").unwrap(), back.duration("setup").unwrap()), (LastRun::Ok, 12));
    assert!(dir.path().join(".irun/.gitignore").exists());
}

#[test]
fn a_save_keeps_what_another_run_saved_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = State::load(dir.path());
    let (mut second, _) = State::load(dir.path());
    second.set_record("x", TaskRecord { ok: false, command: "x".into(), ..Default::default() });
    second.set_last("x", LastRun::Failed);
    second.save().unwrap();
    // The first run loaded the state before the second saved; it only touched y.
    first.set_last("y", LastRun::Ok);
    first.save().unwrap();
    let (after, _) = State::load(dir.path());
    assert_eq!(after.last("x"), Some(LastRun::Failed), "x's failure survives y's save");
    assert!(!after.record("x").unwrap().ok);
    assert_eq!(after.last("y"), Some(LastRun::Ok));
    assert_eq!(first.last("x"), Some(LastRun::Failed), "and the first run now knows it too");
}

/// A project whose state is a TOML state of irun's first format with this body.
fn legacy_state(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
    let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body.as_bytes()));
    let text = format!("tool = \"irun\"\nversion = 1\ndigest = \"{digest}\"\n\n{body}");
    std::fs::write(dir.path().join(DIR).join(LEGACY_FILE), text).unwrap();
    dir
}

#[test]
fn a_run_that_read_the_old_format_never_writes_it_over_a_newer_save() {
    let dir = legacy_state("[last]\nx = \"ok\"\n");
    let (mut a, _) = State::load(dir.path());
    let (mut b, _) = State::load(dir.path());
    b.set_last("x", LastRun::Failed);
    b.save().unwrap();
    a.set_last("y", LastRun::Ok);
    a.save().unwrap();
    let (after, _) = State::load(dir.path());
    assert_eq!(after.last("x"), Some(LastRun::Failed), "b's newer result stands");
    assert_eq!(after.last("y"), Some(LastRun::Ok));
}

#[test]
fn saves_in_between_are_seen_however_many() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, _) = State::load(dir.path());
    a.set_last("a", LastRun::Ok);
    a.save().unwrap();
    let (mut b, _) = State::load(dir.path());
    for n in 0..3 {
        b.set_duration("b", n);
        b.save().unwrap();
    }
    a.set_last("a", LastRun::Failed);
    a.save().unwrap();
    let (after, _) = State::load(dir.path());
    assert_eq!(after.duration("b"), Some(2));
    assert_eq!(after.last("a"), Some(LastRun::Failed));
}

#[test]
fn a_lock_held_by_another_save_means_not_now() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = State::load(dir.path());
    s.set_last("a", LastRun::Ok);
    s.save().unwrap();
    let held = lock(&dir.path().join(DIR).join(LOCK)).unwrap().expect("nobody else holds it");
    s.set_last("a", LastRun::Failed);
    assert!(!s.save().unwrap(), "not saved while the lock is held");
    assert!(s.unsaved());
    drop(held);
    assert!(s.save().unwrap());
}

#[test]
fn a_toml_state_of_an_earlier_version_is_read_and_replaced() {
    let dir = legacy_state(
        "[last]\na = \"ok\"\n\n[tasks.a]\nok = true\nrecorded_at = 7\ncommand = \"c\"\nenv = \"e\"\ncwd = \"/p\"\nglobs = \"g\"\n\n[tasks.a.deps]\nb = 5\n",
    );
    let (mut s, warning) = State::load(dir.path());
    assert!(warning.is_none(), "{warning:?}");
    let a = s.record("a").unwrap();
    assert_eq!((a.ok, a.hashing, a.deps["b"].as_str()), (true, HASHING_LEGACY, "5"));
    s.set_last("c", LastRun::Ok);
    s.save().unwrap();
    assert!(!dir.path().join(DIR).join(LEGACY_FILE).exists());
    let (back, _) = State::load(dir.path());
    assert_eq!(
        back.record("a").unwrap().hashing,
        HASHING_LEGACY,
        "the record keeps its hashing until it is written anew"
    );
}

#[test]
fn a_state_cut_short_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = State::load(dir.path());
    for name in ["a", "b"] {
        s.set_record(name, TaskRecord { ok: true, command: "c".into(), ..Default::default() });
    }
    s.save().unwrap();
    let bytes = std::fs::read(State::path_for(dir.path())).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    std::fs::write(State::path_for(dir.path()), cut).unwrap();
    let (s, warning) = State::load(dir.path());
    assert!(s.entries().is_empty());
    assert!(warning.unwrap().contains("is unreadable"));
}

#[test]
fn garbage_and_foreign_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
    let (binary, json) = (State::path_for(dir.path()), dir.path().join(DIR).join(JSON_FILE));
    for (file, content, expect) in [
        (&binary, &b"\xff\xfe garbage"[..], "state.bin is unreadable (not irun's state)"),
        (&binary, b"irun-state\x09\0\0\0", "another irun (format 9)"),
        (&json, b"\xff\xfe garbage", "state.json is unreadable"),
        (&json, b"{\"tool\": \"irun\", \"version\": 2, \"tasks\": {\"a\": {\"last\": \"o", "unreadable"),
        (&json, b"{\"tool\": \"other\", \"version\": 2}", "written by other"),
        (&json, b"{\"tool\": \"irun\", \"version\": 99}", "format 99"),
    ] {
        for f in [&binary, &json] {
            let _ = std::fs::remove_file(f);
        }
        std::fs::write(file, content).unwrap();
        let (s, warning) = State::load(dir.path());
        assert!(s.entries().is_empty());
        let warning = warning.unwrap();
        assert!(warning.contains(expect), "{warning}");
    }
}

#[test]
fn a_refreshed_record_never_replaces_what_another_run_saved_since() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = State::load(dir.path());
    let stamp = |ino| FileStamp { size: 1, mtime: 2, ino, ctime: 3, hash: "h".into() };
    let record = TaskRecord {
        ok: true,
        command: "c".into(),
        recorded_at: 5,
        sources: [("a".to_string(), stamp(1))].into_iter().collect(),
        ..Default::default()
    };
    first.set_record("t", record.clone());
    first.set_last("t", LastRun::Ok);
    first.save().unwrap();
    // Two runs load it; the second refreshes t's stamps; the first runs t again, which fails, and saves first.
    let (mut a, _) = State::load(dir.path());
    let (mut b, _) = State::load(dir.path());
    b.refresh_record(
        "t",
        TaskRecord { sources: [("a".to_string(), stamp(9))].into_iter().collect(), ..record.clone() },
    );
    a.set_record("t", TaskRecord { ok: false, recorded_at: 6, ..record.clone() });
    a.set_last("t", LastRun::Failed);
    a.save().unwrap();
    b.save().unwrap();
    let (after, _) = State::load(dir.path());
    assert_eq!(
        (after.record("t").unwrap().ok, after.last("t").unwrap()),
        (false, LastRun::Failed),
        "the failed run stands"
    );
    // Over the same run's record, the refresh is written.
    let (mut c, _) = State::load(dir.path());
    let failed = c.record("t").unwrap().clone();
    c.refresh_record("t", TaskRecord { checked_at: 7, ..failed });
    let (mut d, _) = State::load(dir.path());
    d.set_last("other", LastRun::Ok);
    d.save().unwrap();
    c.save().unwrap();
    let (after, _) = State::load(dir.path());
    assert_eq!((after.record("t").unwrap().checked_at, after.last("other")), (7, Some(LastRun::Ok)));
}
