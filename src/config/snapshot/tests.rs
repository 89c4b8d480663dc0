//! The loaded Irun.toml kept in `.irun/`: stored and read back whole, used only while all it was made from holds,
//! never holding a value from irun's environment or a dotenv file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::super::codec::{Reader, Stored, Writer, decode, encode};
use super::super::env::Shell;
use super::super::{Config, checked, loaded};
use super::{DIR, FILE, MAGIC, Made, read};
use crate::diagnostic::Source;

/// Every kind of task, probe and setting the model has.
const RICH: &str = r#"
default = ["build", "all"]
jobs = 3
[env]
MODE = "fast"
[tasks.build]
description = "Build it"
cmd = ["cc", "-o", "out", "${MODE}", "${UNSET:-fallback}"]
cwd = "sub"
timeout = "1m 30s"
sources = ["src/**", "!src/x/**"]
outputs = ["out"]
stop_signal = "SIGINT"
stop_timeout = "250ms"
always_run = true
cache = true
cache_env = ["CC"]
cache_output = false
output = "on-failure"
color = false
env = { A = "1", B = 2, C = "$${IRUN_PORT}" }
inherit_env = ["MODE"]
[tasks.prompt]
cmd = "read x"
interactive = true
cache = false
[tasks.db]
cmd = "postgres"
daemon = true
ready = { tcp = "db.example:5432", interval = "1s", timeout = "10s" }
restart = "on-failure"
max_restarts = 5
[tasks.web]
cmd = "serve --port ${IRUN_PORT}"
daemon = true
port = "auto"
ready = { http = "http://127.0.0.1:${IRUN_PORT}/health", status = 204 }
deps = ["db"]
[tasks.api]
cmd = "api"
daemon = true
ready = { http = "http://[::1]:8080/x" }
reuse = true
restart = "always"
[tasks.log]
cmd = "tail"
daemon = true
ready = { log = "^ready (\\d+)$" }
[tasks.exec]
cmd = "x"
daemon = true
ready = { exec = ["pg_isready", "-q"] }
[tasks.auto]
cmd = "y"
daemon = true
ready = { tcp = "auto" }
[tasks.local]
cmd = "z"
daemon = true
ready = { tcp = 6379 }
[tasks.all]
deps = ["build", "web", "api", "build"]
sources = ["Irun.toml"]
[tasks.uses]
cmd = "echo ${IRUN_PORT_WEB}"
deps = ["all"]
"#;

fn parsed(text: &str, root: &Path) -> Config {
    let source = Source::new(&root.join("Irun.toml"), text);
    checked(source, root.to_path_buf(), &Shell::default()).unwrap_or_else(|d| panic!("{}", d.render(false))).0
}

fn stored(config: &Config) -> Vec<u8> {
    let mut w = Writer::new(&config.root);
    encode(config, &mut w);
    w.out
}

fn decoded(bytes: &[u8], config: &Config) -> Option<Config> {
    decode(&mut Reader::new(bytes, &config.root), config.source.clone())
}

/// What a configuration declares, in full.
fn shown(config: &Config) -> String {
    format!("{:?}", (&config.default, config.jobs, &config.tasks))
}

#[test]
fn every_kind_of_task_probe_and_setting_reads_back_as_it_was() {
    let config = parsed(RICH, Path::new("/project"));
    let back = decoded(&stored(&config), &config).expect("reads back");
    assert_eq!(shown(&back), shown(&config));
    assert_eq!(back.root, config.root);
    for name in config.names() {
        assert_eq!(back.id(name), config.id(name), "{name} is found by name");
    }
}

#[test]
fn tasks_read_back_that_run_in_the_root_share_one_path() {
    let config = parsed(
        "[tasks.a]\ncmd = \"a\"\n[tasks.b]\ncmd = \"b\"\n[tasks.c]\ncmd = \"c\"\ncwd = \"sub\"\n",
        Path::new("/p"),
    );
    let back = decoded(&stored(&config), &config).expect("reads back");
    let cwd = |name: &str| back.tasks[back.id(name).unwrap()].process().unwrap().cwd.clone();
    assert!(std::sync::Arc::ptr_eq(&cwd("a"), &cwd("b")), "one allocation for the root");
    assert_eq!((&*cwd("a"), &*cwd("c")), (Path::new("/p"), Path::new("/p/sub")));
}

#[test]
fn stored_bytes_cut_short_or_altered_never_read_back_wrongly_and_never_panic() {
    let config = parsed(RICH, Path::new("/project"));
    let bytes = stored(&config);
    for len in 0..bytes.len() {
        assert!(decoded(&bytes[..len], &config).is_none(), "cut to {len} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decoded(&longer, &config).is_none(), "a byte too many");
    for at in 0..bytes.len() {
        for value in [0x00, 0xff, bytes[at] ^ 0x01] {
            let mut altered = bytes.clone();
            altered[at] = value;
            // Whatever it reads back holds together: every dep names the task it says.
            if let Some(back) = decoded(&altered, &config) {
                for task in back.tasks.iter() {
                    assert!(task.deps.iter().all(|d| d.id.index() < back.tasks.len()));
                }
            }
        }
    }
}

/// A project folder with Irun.toml and an `.irun/` (as a run leaves it).
fn project(text: &str) -> (tempfile::TempDir, Source) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(DIR)).unwrap();
    let path = dir.path().join("Irun.toml");
    std::fs::write(&path, text).unwrap();
    (dir, Source::new(&path, text))
}

fn shell(vars: &[(&str, &str)]) -> Shell {
    Shell::from(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>())
}

fn load(source: &Source, root: &Path, shell: &Shell) -> Config {
    loaded(source.clone(), root.to_path_buf(), shell).unwrap_or_else(|d| panic!("{}", d.render(false)))
}

fn kept(root: &Path) -> PathBuf {
    root.join(DIR).join(FILE)
}

#[test]
fn a_loaded_irun_toml_is_kept_and_read_back_for_the_same_text_only() {
    let (dir, source) = project(RICH);
    let root = dir.path();
    let first = load(&source, root, &Shell::default());
    assert!(kept(root).is_file(), "kept in .irun/");
    let back = read(&source, root, &Shell::default()).expect("read back");
    assert_eq!(shown(&back), shown(&first));
    // The same length, one letter changed: another file.
    let edited = RICH.replace("cmd = \"tail\"", "cmd = \"tall\"");
    assert_eq!(edited.len(), RICH.len());
    assert!(read(&Source::new(&source.path, &edited), root, &Shell::default()).is_none());
    // The same text at another place (a copied project): commands run elsewhere.
    let elsewhere = Source::new(&root.join("sub").join("Irun.toml"), RICH);
    assert!(read(&elsewhere, root, &Shell::default()).is_none());
}

#[test]
fn a_kept_irun_toml_is_used_only_while_the_variables_it_looked_up_keep_their_values() {
    let (dir, source) = project("[tasks.t]\ncmd = \"echo ${NAME:-nobody} ${EMPTY}\"\n");
    let root = dir.path();
    let at_first = shell(&[("EMPTY", ""), ("OTHER", "x")]);
    let first = load(&source, root, &at_first);
    assert!(read(&source, root, &at_first).is_some());
    assert!(read(&source, root, &shell(&[("EMPTY", ""), ("OTHER", "changed")])).is_some(), "not looked up");
    for changed in [shell(&[("EMPTY", ""), ("NAME", "me")]), shell(&[("EMPTY", ""), ("NAME", "")]), shell(&[])] {
        assert!(read(&source, root, &changed).is_none(), "{:?}", changed.asked());
    }
    let shown_cmd = |c: &Config| c.tasks.iter().next().and_then(|t| t.process()).map(|p| p.cmd.to_string());
    assert_eq!(shown_cmd(&first).as_deref(), Some("echo nobody "));
}

#[test]
fn values_from_irun_s_environment_or_a_dotenv_file_are_never_written_to_disk() {
    let nothing_holds = |root: &Path, secret: &str| {
        for entry in std::fs::read_dir(root.join(DIR)).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(secret), "{:?} holds it", entry.path());
        }
    };
    let (dir, source) = project("[tasks.t]\ncmd = \"curl -H 'x: ${TOKEN:-none}'\"\n");
    let root = dir.path();
    load(&source, root, &shell(&[]));
    assert!(kept(root).is_file(), "kept while TOKEN is not set");
    let with_token = load(&source, root, &shell(&[("TOKEN", "s3cr3t-from-the-shell")]));
    assert!(with_token.tasks.iter().next().unwrap().process().unwrap().cmd.to_string().contains("s3cr3t"));
    assert!(!kept(root).exists(), "nothing kept, and what was kept before is gone");
    nothing_holds(root, "s3cr3t");
    let (dir, source) = project("dotenv = [\".env\"]\n[tasks.t]\ncmd = \"echo\"\n");
    std::fs::write(dir.path().join(".env"), "KEY=s3cr3t-from-a-file\n").unwrap();
    load(&source, dir.path(), &Shell::default());
    assert!(!kept(dir.path()).exists());
    nothing_holds(dir.path(), "s3cr3t");
}

#[test]
fn an_optional_dotenv_file_that_appears_is_read() {
    let (dir, source) = project("dotenv = [\"?.env\"]\n[tasks.t]\ncmd = \"echo\"\n");
    let root = dir.path();
    load(&source, root, &Shell::default());
    assert!(read(&source, root, &Shell::default()).is_some(), "kept while it is missing");
    std::fs::write(root.join(".env"), "KEY=value\n").unwrap();
    assert!(read(&source, root, &Shell::default()).is_none());
    let env = |c: &Config| c.tasks.iter().next().and_then(|t| t.process()).map(|p| p.env.clone());
    assert_eq!(env(&load(&source, root, &Shell::default())), Some(vec![("KEY".into(), "value".into())]));
}

#[test]
fn a_kept_file_of_another_irun_or_cut_short_or_not_a_file_is_passed_over() {
    let (dir, source) = project(RICH);
    let root = dir.path();
    load(&source, root, &Shell::default());
    let whole = std::fs::read(kept(root)).unwrap();
    // The same file, but made by another irun: every hash in it right.
    let another = {
        let mut r = Reader::new(whole.strip_prefix(MAGIC).unwrap(), root);
        let (mut made, body_hash) = (Made::load(&mut r).unwrap(), u128::load(&mut r).unwrap());
        made.irun = made.irun.replacen(env!("CARGO_PKG_VERSION"), "0.0.0-another", 1);
        let mut w = Writer::new(root);
        w.out.extend_from_slice(MAGIC);
        made.put(&mut w);
        body_hash.put(&mut w);
        w.out.extend_from_slice(r.rest());
        w.out
    };
    for bytes in [&whole[..whole.len() / 2], &whole[..whole.len() - 1], b"garbage", &another] {
        std::fs::write(kept(root), bytes).unwrap();
        assert!(read(&source, root, &Shell::default()).is_none());
        assert_eq!(shown(&load(&source, root, &Shell::default())), shown(&parsed(RICH, root)), "parsed instead");
        assert_eq!(std::fs::read(kept(root)).unwrap(), whole, "and kept again");
    }
    std::fs::remove_file(kept(root)).unwrap();
    nix::unistd::mkfifo(&kept(root), nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(read(&source, root, &Shell::default()).is_none(), "a named pipe is not read from");
}

#[test]
fn what_an_irun_killed_while_keeping_irun_toml_left_behind_goes_with_the_next_one() {
    let (dir, source) = project(RICH);
    let root = dir.path();
    std::fs::write(root.join(DIR).join(format!("{}killed", super::TEMPORARY)), "half").unwrap();
    load(&source, root, &Shell::default());
    let names: Vec<_> = std::fs::read_dir(root.join(DIR)).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, [FILE], "only the kept file is left");
}

#[test]
fn nothing_is_kept_where_irun_has_not_run() {
    let (dir, source) = project(RICH);
    std::fs::remove_dir(dir.path().join(DIR)).unwrap();
    load(&source, dir.path(), &Shell::default());
    assert!(!dir.path().join(DIR).exists(), "no .irun/ made by loading Irun.toml");
}

#[test]
fn one_pattern_is_kept_inline_and_takes_no_more_room_than_a_list() {
    use crate::config::model::Patterns;
    assert!(size_of::<Patterns>() <= size_of::<Vec<String>>());
    let config = parsed("[tasks.a]\ncmd = \"a\"\nsources = [\"in\"]\noutputs = [\"x\", \"y\"]\n", Path::new("/p"));
    let back = decoded(&stored(&config), &config).expect("reads back");
    let process = back.tasks[back.id("a").unwrap()].process().unwrap().clone();
    assert!(matches!(process.sources, Patterns::One(_)) && matches!(process.outputs, Patterns::Many(_)));
    assert_eq!((&*process.sources, &*process.outputs), (&["in".to_string()][..], &["x".to_string(), "y".into()][..]));
}
