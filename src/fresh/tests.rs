//! Watch mode's content checks ([`Checker::inputs_changed`]) on a temporary project.

use std::path::Path;

use super::*;
use crate::diagnostic::Source;

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
