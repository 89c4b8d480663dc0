//! Irun.toml as loaded, kept in `.irun/config.bin` and read back while nothing it was made from changed: an edit,
//! a variable it looks up, a dotenv file appearing are always seen; what it took from the environment stays off
//! the disk; a damaged file is passed over.

use std::time::{Duration, SystemTime};

use crate::harness::Project;

const KEPT: &str = ".irun/config.bin";

/// A project where irun has run once (so `.irun/` exists) and loaded Irun.toml once more, keeping it.
fn ran(irun_toml: &str) -> Project {
    let p = Project::new(irun_toml);
    p.run_ok(&["--progress", "never"]);
    p.run_ok(&["list"]);
    assert!(p.exists(KEPT), "kept after a load in a project irun has run in");
    p
}

fn said(p: &Project, env: &[(&str, &str)]) -> String {
    let mut irun = p.irun().args(["--progress", "never", "t"]);
    for (k, v) in env {
        irun = irun.env(k, v);
    }
    let out = irun.run();
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout.lines().find_map(|l| l.strip_prefix("t | ")).unwrap_or_else(|| panic!("no output: {out:?}")).to_string()
}

#[test]
fn an_edited_irun_toml_is_read_again_even_with_the_same_size_and_modification_time() {
    let p = ran("default = [\"t\"]\n[tasks.t]\ncmd = \"echo one\"\n");
    assert_eq!(said(&p, &[]), "one");
    let then = SystemTime::now() - Duration::from_secs(3600);
    let set_time = || std::fs::File::options().write(true).open(p.path("Irun.toml")).unwrap().set_modified(then);
    set_time().unwrap();
    p.file("Irun.toml", "default = [\"t\"]\n[tasks.t]\ncmd = \"echo two\"\n");
    set_time().unwrap();
    assert_eq!(said(&p, &[]), "two");
}

#[test]
fn a_variable_that_irun_toml_looks_up_is_read_again_whenever_it_changes() {
    let p = ran("default = [\"t\"]\n[tasks.t]\ncmd = \"echo hello ${WHO:-world}\"\n");
    assert_eq!(said(&p, &[]), "hello world");
    assert_eq!(said(&p, &[("WHO", "you")]), "hello you");
    assert_eq!(said(&p, &[("WHO", "")]), "hello world", "empty: the default, as before");
    assert_eq!(said(&p, &[]), "hello world");
    assert_eq!(said(&p, &[("WHO", "them")]), "hello them");
}

#[test]
fn an_optional_dotenv_file_that_appears_is_read() {
    let p = ran("default = [\"t\"]\ndotenv = [\"?.env\"]\n[tasks.t]\ncmd = \"echo got ${GOT:-nothing} $FROM_FILE\"\n");
    assert_eq!(said(&p, &[]), "got nothing");
    p.file(".env", "GOT=it\nFROM_FILE=too\n");
    assert_eq!(said(&p, &[]), "got it too");
}

#[test]
fn values_from_irun_s_environment_or_a_dotenv_file_are_never_written_into_irun_s_folder() {
    let p = ran("default = [\"t\"]\ndotenv = [\"?.env\"]\n[tasks.t]\ncmd = \"echo ${TOKEN:-none} $KEY\"\n");
    assert_eq!(said(&p, &[("TOKEN", "s3cr3t-shell")]), "s3cr3t-shell");
    p.file(".env", "KEY=s3cr3t-file\n");
    assert_eq!(said(&p, &[]), "none s3cr3t-file");
    p.run_ok(&["list"]);
    let mut stack = vec![p.path(".irun")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(!String::from_utf8_lossy(&bytes).contains("s3cr3t"), "{:?} holds a secret", entry.path());
            }
        }
    }
}

#[test]
fn a_damaged_or_foreign_kept_irun_toml_is_passed_over_and_replaced() {
    let p = ran("default = [\"t\"]\n[tasks.t]\ncmd = \"echo fine\"\n");
    let whole = std::fs::read(p.path(KEPT)).unwrap();
    for bytes in [&whole[..whole.len() - 3], b"irun: Irun.toml as loaded, v1\ngarbage", &[0xff; 64][..], b""] {
        std::fs::write(p.path(KEPT), bytes).unwrap();
        assert_eq!(said(&p, &[]), "fine");
        assert_eq!(std::fs::read(p.path(KEPT)).unwrap(), whole, "kept again as it was");
    }
}

#[test]
fn an_error_found_in_a_kept_irun_toml_still_quotes_its_line() {
    // The dependency cycle is found after loading, so a kept Irun.toml (whose text irun does not hold) meets it too.
    let p = ran("default = [\"t\"]\n[tasks.t]\ncmd = \"echo fine\"\n");
    p.file("Irun.toml", "[tasks.a]\ncmd = \"true\"\ndeps = [\"b\"]\n[tasks.b]\ncmd = \"true\"\ndeps = [\"a\"]\n");
    let parsed = p.irun().args(["list"]).run();
    let kept_at = std::fs::metadata(p.path(KEPT)).unwrap().modified().unwrap();
    let kept = p.irun().args(["list"]).run();
    assert_eq!(std::fs::metadata(p.path(KEPT)).unwrap().modified().unwrap(), kept_at, "read back, not made again");
    assert_eq!((kept.code, &kept.stderr), (parsed.code, &parsed.stderr), "the same error either way");
    assert!(kept.stderr.contains("Irun.toml:3:") && kept.stderr.contains("deps = [\"b\"]"), "{kept:?}");
    assert!(kept.stderr.contains("dependency cycle: a -> b -> a"), "{kept:?}");
}
