//! Tasks with `junit`: the files its globs match just before its process starts and, once it has ended, those that
//! are new or changed since, read as JUnit reports and sent as one event before the engine hears that it ended. A
//! report left by an earlier run is not read again; a task up to date or restored from the cache reads nothing.
//! Reports are read on a thread of their own (a report of 100,000 cases takes a moment): the run goes on meanwhile,
//! and the task's end reaches the engine once they are sent.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use super::Driver;
use crate::config::TaskId;
use crate::engine::{End, Happened};
use crate::events::{Event, TaskName};
use crate::exec::Launcher;
use crate::exec::runner::Report;
use crate::fresh::Checker;
use crate::testcases::{Malformed, Problem, TestReports, line_column};

/// What a task's `junit` globs matched as its process was about to start.
pub(super) struct Before {
    patterns: Vec<String>,
    files: HashMap<String, Seen>,
}

/// What stat says of a file: a write that leaves its content another changes its size, mtime or ctime (the ctime
/// no program can set back), a file put in its place has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: i64,
    ctime: i64,
    size: u64,
    ino: u64,
}

/// A file as it was before the task ran.
#[derive(Debug)]
struct Seen {
    stamp: Stamp,
    /// Its content's hash, for a file changed within [`RACY_NS`] of the moment it was looked at: on a filesystem
    /// whose times are that coarse, a write by the task within the same tick could leave the same stamp (git's
    /// "racy" files). Never a decision by the clock: only whether the content is compared too.
    hash: Option<u128>,
}

/// The coarsest timestamps of the filesystems irun meets (a second on ext3 and HFS+), with room to spare.
const RACY_NS: i64 = 2_000_000_000;

impl Before {
    /// The files `patterns` (globs as in `outputs`) match under `root` now.
    pub(super) fn take(checker: &Checker, root: &Path, patterns: &[String]) -> Before {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let files = checker
            .files(patterns, false)
            .into_iter()
            .filter_map(|rel| {
                let path = root.join(&rel);
                let stamp = stamp(&path)?;
                let hash = if stamp.ctime >= now.saturating_sub(RACY_NS) { hash(&path) } else { None };
                Some((rel, Seen { stamp, hash }))
            })
            .collect();
        Before { patterns: patterns.to_vec(), files }
    }

    /// The files the globs match now that are new or changed since [`Before::take`], sorted.
    pub(super) fn written(&self, checker: &Checker, root: &Path) -> Vec<String> {
        let changed = |rel: &String| {
            let path = root.join(rel);
            let Some(now) = stamp(&path) else { return false };
            match self.files.get(rel) {
                None => true,
                Some(seen) if seen.stamp != now => true,
                Some(Seen { hash: Some(before), .. }) => hash(&path).is_none_or(|h| h != *before),
                Some(_) => false,
            }
        };
        checker.files(&self.patterns, false).into_iter().filter(changed).collect()
    }
}

/// The stamp of a regular file (links followed); none for anything else: a named pipe would block the reader.
fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file)?;
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    Some(Stamp {
        mtime: ns(m.mtime(), m.mtime_nsec()),
        ctime: ns(m.ctime(), m.ctime_nsec()),
        size: m.len(),
        ino: m.ino(),
    })
}

fn hash(path: &Path) -> Option<u128> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(hasher.digest128()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// The reports at `files` (relative to `root`), read; a file that cannot be read is a problem, not an error.
pub(super) fn read(root: &Path, files: &[String]) -> TestReports {
    let mut reports = TestReports::default();
    for rel in files {
        let path = root.join(rel);
        let error = match std::fs::File::open(&path) {
            Err(e) => lowercase(&e.to_string()),
            Ok(f) => match reports.read(rel, BufReader::new(f)) {
                Ok(()) => continue,
                // The place, counted again from the file's start (the parser does not keep where lines begin).
                Err(Malformed { offset: Some(at), what }) => match std::fs::File::open(&path) {
                    Ok(f) => {
                        let (line, column) = line_column(BufReader::new(f), at);
                        format!("{what} at line {line} column {column}")
                    }
                    Err(_) => what,
                },
                Err(Malformed { offset: None, what }) => what,
            },
        };
        reports.problems.push(Problem::Unreadable { path: rel.clone(), error });
    }
    reports
}

/// An error as irun words its messages: from a lowercase letter ("permission denied (os error 13)").
fn lowercase(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

impl<L: Launcher> Driver<'_, L> {
    /// A task with `junit` is about to start (instance `instance`): what its globs match now.
    pub(super) fn before_tests(&mut self, task: TaskId, instance: u64) {
        let patterns = self.config.tasks[task].junit();
        if !patterns.is_empty() {
            self.junit.insert(instance, Before::take(&self.checker, &self.config.root, patterns));
        }
    }

    /// `report` of `task`, if it is its end: the reports it wrote, sent before the engine hears of the end (so
    /// reporters have them before the task's result). The report back, to go on with at once; or none while they
    /// are read on a thread of their own, which sends them and then the report again (to the driver's inbox). A task
    /// that succeeded without writing any is told of it.
    pub(super) fn after_tests(&mut self, task: &TaskName, report: Report) -> Option<Report> {
        let Happened::Exited { end, .. } = &report.what else { return Some(report) };
        let Some(before) = self.junit.remove(&report.instance) else { return Some(report) };
        let files = before.written(&self.checker, &self.config.root);
        if files.is_empty() {
            let mut reports = TestReports::default();
            if matches!(end, End::Exited(exit) if exit.success()) {
                reports.problems.push(Problem::Missing { patterns: before.patterns });
            }
            self.events.send(Event::TestReports { task: task.clone(), reports: Arc::new(reports) });
            return Some(report);
        }
        let (root, events, inbox, task) =
            (self.config.root.clone(), self.events.clone(), self.reports.clone(), task.clone());
        tokio::task::spawn_blocking(move || {
            let reports = read(&root, &files);
            events.send(Event::TestReports { task, reports: Arc::new(reports) });
            // (The loop is gone only once the run is over, which waits for this task's end.)
            let _ = inbox.send(report);
        });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, Checker) {
        let dir = tempfile::tempdir().unwrap();
        let (checker, _) = Checker::new(dir.path(), false);
        (dir, checker)
    }

    #[test]
    fn only_files_new_or_changed_since_the_task_started_are_its_reports() {
        let (dir, checker) = project();
        let root = dir.path();
        std::fs::create_dir_all(root.join("reports")).unwrap();
        for f in ["kept.xml", "rewritten.xml", "removed.xml"] {
            std::fs::write(root.join("reports").join(f), "<testsuite name=\"a\"/>").unwrap();
        }
        std::fs::write(root.join("reports/other.txt"), "not matched").unwrap();
        let before = Before::take(&checker, root, &["reports/*.xml".into(), "!reports/ignored.xml".into()]);
        assert_eq!(before.files.len(), 3);
        // Rewritten in place with as many bytes: the same inode and size, and (within a tick of the kernel's
        // coarse clock) maybe the same times.
        std::fs::write(root.join("reports/rewritten.xml"), "<testsuite name=\"b\"/>").unwrap();
        std::fs::write(root.join("reports/new.xml"), "<testsuites/>").unwrap();
        std::fs::write(root.join("reports/ignored.xml"), "<testsuites/>").unwrap();
        std::fs::remove_file(root.join("reports/removed.xml")).unwrap();
        assert_eq!(before.written(&checker, root), ["reports/new.xml", "reports/rewritten.xml"]);
    }

    #[test]
    fn a_file_written_again_within_one_tick_of_a_coarse_clock_is_told_by_its_content() {
        let (dir, checker) = project();
        let root = dir.path();
        std::fs::write(root.join("junit.xml"), "<testsuite name=\"old\"/>").unwrap();
        let mut before = Before::take(&checker, root, &["junit.xml".into()]);
        assert!(before.files["junit.xml"].hash.is_some(), "changed just now: its content is kept too");
        std::fs::write(root.join("junit.xml"), "<testsuite name=\"new\"/>").unwrap();
        // As a filesystem with one-second times would leave it: the stamp alone says nothing changed.
        let now = stamp(&root.join("junit.xml")).unwrap();
        before.files.get_mut("junit.xml").unwrap().stamp = now;
        assert_eq!(before.written(&checker, root), ["junit.xml"]);
        before.files.get_mut("junit.xml").unwrap().hash = hash(&root.join("junit.xml"));
        assert!(before.written(&checker, root).is_empty(), "the same stamp and content: not written");
    }

    #[test]
    fn a_report_that_cannot_be_read_is_a_problem_naming_the_file_and_the_place() {
        let (dir, _) = project();
        let root = dir.path();
        std::fs::write(root.join("good.xml"), "<testsuite><testcase name=\"t\"/></testsuite>").unwrap();
        std::fs::write(root.join("bad.xml"), "<testsuite>\n  <testcase>\n</testsuite>").unwrap();
        let files = ["bad.xml".to_string(), "good.xml".to_string(), "gone.xml".to_string()];
        let reports = read(root, &files);
        assert_eq!(reports.files, ["good.xml"]);
        assert_eq!(reports.counts.tests, 1);
        let problems: Vec<(&str, &str)> = reports
            .problems
            .iter()
            .map(|p| match p {
                Problem::Unreadable { path, error } => (path.as_str(), error.as_str()),
                Problem::Missing { .. } => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(problems[0].0, "bad.xml");
        assert!(problems[0].1.ends_with("at line 3 column 1"), "{problems:?}");
        assert_eq!(problems[1], ("gone.xml", "no such file or directory (os error 2)"));
    }
}
