//! Watch mode's content checks ([`Checker::inputs_changed`]) on a temporary project.

use std::path::Path;

use super::files::{RACY_NS, stamp};
use super::*;
use crate::diagnostic::Source;
use crate::state::FileStamp;

fn config(dir: &Path, toml: &str) -> Config {
    crate::config::parse(Source::new(&dir.join("Irun.toml"), toml), dir.to_path_buf())
        .unwrap_or_else(|d| panic!("{}", d.render(false)))
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Set a file's modification time a little ahead (its content stays).
fn touch(dir: &Path, rel: &str) {
    let file = std::fs::OpenOptions::new().append(true).open(dir.join(rel)).unwrap();
    file.set_modified(SystemTime::now() + std::time::Duration::from_secs(2)).unwrap();
}

const DOCS: &str = "[tasks.build]\ncmd = \"b\"\n[tasks.docs]\ndeps = [\"build\"]\nsources = [\"docs/**\"]\n";

#[test]
fn a_group_is_compared_with_the_last_look_at_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/x.md", "1\n");
    let config = config(root, DOCS);
    let docs = &config.tasks[config.id("docs").unwrap()];
    let (mut checker, _) = Checker::new(root, false);
    checker.watch_groups(config.tasks.iter());
    assert!(!checker.inputs_changed(&config, docs, None), "nothing changed since watch mode began");
    touch(root, "docs/x.md");
    assert!(!checker.inputs_changed(&config, docs, None), "a touch is no change");
    write(root, "docs/x.md", "2\n");
    assert!(checker.inputs_changed(&config, docs, None), "new content is");
    assert!(!checker.inputs_changed(&config, docs, None), "and it is what the next change is compared with");
    write(root, "docs/y.md", "new\n");
    assert!(checker.inputs_changed(&config, docs, None), "a file added is a change");
    std::fs::remove_file(root.join("docs/y.md")).unwrap();
    assert!(checker.inputs_changed(&config, docs, None), "so is one removed");
}

#[test]
fn a_group_never_looked_at_counts_as_changed_once() {
    // (A group added by an Irun.toml reload: watch mode began without it.)
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/x.md", "1\n");
    let config = config(root, DOCS);
    let docs = &config.tasks[config.id("docs").unwrap()];
    let (mut checker, _) = Checker::new(root, false);
    assert!(checker.inputs_changed(&config, docs, None), "nothing to compare with: changed");
    assert!(!checker.inputs_changed(&config, docs, None), "then compared with that look");
}

#[test]
fn a_task_whose_outputs_went_since_its_last_good_run_counts_as_changed() {
    // (Events were lost while `dist` was removed: the watcher ignores outputs, so only this check can see it.)
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "src/a.txt", "1\n");
    let config = config(root, "[tasks.build]\ncmd = \"b\"\nsources = [\"src/**\"]\noutputs = [\"dist/**\"]\n");
    let build = &config.tasks[config.id("build").unwrap()];
    let (mut checker, _) = Checker::new(root, false);
    let (_, snapshot) = checker.verdict(&config, build, None);
    write(root, "dist/out.txt", "made\n");
    checker.record(build, snapshot.unwrap(), true);
    assert!(!checker.inputs_changed(&config, build, None), "as its last run left it");
    write(root, "dist/out.txt", "edited\n");
    assert!(checker.inputs_changed(&config, build, None), "an output edited");
    write(root, "dist/out.txt", "made\n");
    assert!(!checker.inputs_changed(&config, build, None), "as it was again");
    std::fs::remove_dir_all(root.join("dist")).unwrap();
    assert!(checker.inputs_changed(&config, build, None), "its outputs removed");
}

/// A file's ctime, nanoseconds since the epoch.
fn ctime(path: &Path) -> i64 {
    let meta = std::fs::metadata(path).unwrap();
    meta.ctime() * 1_000_000_000 + meta.ctime_nsec()
}

#[test]
fn a_stamp_vouches_for_a_file_only_with_its_stat_data_unchanged_and_older_than_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.txt");
    std::fs::write(&path, "one\n").unwrap();
    let (real, read) = stamp(&|| path.clone(), None, None, 0).unwrap();
    assert!(read, "nothing to vouch for it: read");
    // A stamp with another hash shows whether the file was read (its hash) or vouched for (the stamp's).
    let recorded = FileStamp { hash: "as recorded".into(), ..real.clone() };
    let long_after = ctime(&path) + 2 * RACY_NS;
    let (s, read) = stamp(&|| path.clone(), None, Some(&recorded), long_after).unwrap();
    assert_eq!((s.hash.to_string().as_str(), read), ("as recorded", false), "everything the same, checked long after");
    let (s, read) = stamp(&|| path.clone(), None, Some(&recorded), ctime(&path) + RACY_NS / 2).unwrap();
    assert_eq!((s.hash, read), (real.hash.clone(), true), "changed within a second of the check: read again");
    for (what, differs) in [
        ("size", FileStamp { size: real.size + 1, ..recorded.clone() }),
        ("mtime", FileStamp { mtime: real.mtime - 1, ..recorded.clone() }),
        ("inode", FileStamp { ino: real.ino + 1, ..recorded.clone() }),
        ("ctime", FileStamp { ctime: real.ctime - 1, ..recorded.clone() }),
        ("no inode recorded (an older irun)", FileStamp { ino: 0, ctime: 0, ..recorded.clone() }),
    ] {
        let (s, read) = stamp(&|| path.clone(), None, Some(&differs), long_after).unwrap();
        assert_eq!((s.hash, read), (real.hash.clone(), true), "another {what}: read again");
    }
}

#[test]
fn a_touched_source_is_read_and_its_record_refreshed_so_that_it_vouches_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "src/a.txt", "1\n");
    let config = config(root, "[tasks.build]\ncmd = \"b\"\nsources = [\"src/a.txt\"]\noutputs = [\"out.txt\"]\n");
    let build = &config.tasks[config.id("build").unwrap()];
    let (mut checker, _) = Checker::new(root, false);
    let (_, snapshot) = checker.verdict(&config, build, None);
    write(root, "out.txt", "made\n");
    checker.record(build, snapshot.unwrap(), true);
    let recorded_at = checker.state.record("build").unwrap().recorded_at;
    touch(root, "src/a.txt");
    let (verdict, snapshot) = checker.verdict(&config, build, None);
    let snapshot = snapshot.unwrap();
    assert_eq!((verdict, snapshot.reread), (Verdict::UpToDate, true), "touched: read, and the same");
    assert!(checker.refresh(build, &snapshot), "its record takes the new stamps");
    let record = checker.state.record("build").unwrap();
    let now = std::fs::metadata(root.join("src/a.txt")).unwrap();
    assert_eq!(record.sources["src/a.txt"].mtime, now.mtime() * 1_000_000_000 + now.mtime_nsec());
    assert_eq!(record.recorded_at, recorded_at, "what its dependents remember it by stays");
    // As if checked long after the touch (rather than waiting): the stamps vouch, nothing is read.
    checker.state.record_mut("build").unwrap().checked_at += 2 * RACY_NS;
    let (verdict, snapshot) = checker.verdict(&config, build, None);
    assert_eq!((verdict, snapshot.as_ref().unwrap().reread), (Verdict::UpToDate, false));
    assert!(!checker.refresh(build, snapshot.as_ref().unwrap()), "nothing to refresh");
}

#[test]
fn files_looked_at_ahead_decide_a_task_only_if_no_dep_of_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "gen.txt", "g\n");
    write(root, "in.txt", "one\n");
    let toml = "[tasks.gen]\ncmd = \"g\"\nsources = [\"gen.txt\"]\n\
                [tasks.use]\ncmd = \"u\"\ndeps = [\"gen\"]\nsources = [\"in.txt\"]\noutputs = [\"out.txt\"]\n";
    let config = std::sync::Arc::new(config(root, toml));
    let (generate, used) = (config.id("gen").unwrap(), config.id("use").unwrap());
    let (mut checker, _) = Checker::new(root, false);
    for id in [generate, used] {
        let (_, snapshot) = checker.verdict(&config, &config.tasks[id], None);
        write(root, "out.txt", "made\n");
        checker.record(&config.tasks[id], snapshot.unwrap(), true);
    }
    // As if checked long after the files last changed (rather than waiting): their stamps vouch for them.
    for name in ["gen", "use"] {
        checker.state.record_mut(name).unwrap().checked_at += 2 * RACY_NS;
    }
    checker.look_ahead(&config, &[generate, used]);
    checker.ahead.as_ref().unwrap().wait_for(used);
    // Changed after the look (as gen, running, could have done): the same size, the mtime set back.
    let before = std::fs::metadata(root.join("in.txt")).unwrap().modified().unwrap();
    write(root, "in.txt", "two\n");
    std::fs::OpenOptions::new().append(true).open(root.join("in.txt")).unwrap().set_modified(before).unwrap();
    let gen_name = TaskName::from("gen");
    let (verdict, snapshot) = checker.verdict(&config, &config.tasks[used], Some(&gen_name));
    assert_eq!(verdict, Verdict::Run(RunReason::Source(FileChange::Changed("in.txt".into()))), "looked at again");
    let (fresh, _) = stamp(&|| root.join("in.txt"), None, None, 0).unwrap();
    assert_eq!(snapshot.unwrap().record.sources["in.txt"].hash, fresh.hash, "its dep ran: looked at again, not ahead");
    // Looked at once: a second check of it in this run looks again.
    let (verdict, _) = checker.verdict(&config, &config.tasks[used], None);
    assert!(matches!(verdict, Verdict::Run(RunReason::Source(_))), "{verdict:?}");
}
