//! Validation: one test per rule.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::model::*;
use crate::config::parse;
use crate::diagnostic::{Diagnostic, Source};

fn parse_str(text: &str) -> Result<Config, Diagnostic> {
    parse(Source::new(Path::new("Irun.toml"), text), PathBuf::from("/project"))
}

fn probe_of(ready: &str) -> Result<Check, Diagnostic> {
    let cfg = parse_str(&format!("[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = {ready}\n"))?;
    Ok(cfg.tasks[TaskId::new(0)].probe().cloned().unwrap().check)
}

#[test]
fn tasks_keep_declaration_order() {
    let cfg = parse_str("[tasks.zeta]\ncmd = \"x\"\n[tasks.alpha]\ncmd = \"y\"\n").unwrap();
    let names: Vec<&str> = cfg.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
}

#[test]
fn task_env_overrides_global_env() {
    let cfg = parse_str("[env]\nA = \"1\"\nB = \"1\"\n[tasks.t]\ncmd = \"x\"\nenv = { B = \"2\" }\n").unwrap();
    let env = &cfg.tasks[TaskId::new(0)].process().unwrap().env;
    assert!(env.contains(&("A".into(), "1".into())) && env.contains(&("B".into(), "2".into())));
    assert!(!env.contains(&("B".into(), "1".into())));
}

#[test]
fn tcp_probes_of_this_machine_are_tried_more_often_than_remote_ones() {
    let interval = |probe: &str| {
        let cfg = parse_str(&format!("[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = {probe}\n")).unwrap();
        cfg.tasks[TaskId::new(0)].probe().cloned().unwrap().interval
    };
    assert_eq!(interval("{ tcp = 8001 }"), DEFAULT_TCP_INTERVAL);
    assert_eq!(interval("{ tcp = \"localhost:80\" }"), DEFAULT_TCP_INTERVAL);
    assert_eq!(interval("{ tcp = \"[::1]:80\" }"), DEFAULT_TCP_INTERVAL);
    assert_eq!(interval("{ tcp = \"127.0.0.2:80\" }"), DEFAULT_TCP_INTERVAL);
    assert_eq!(interval("{ tcp = \"db.internal:5432\" }"), DEFAULT_REMOTE_TCP_INTERVAL);
    assert_eq!(interval("{ tcp = 8001, interval = \"1s\" }"), Duration::from_secs(1));
}

#[test]
fn tcp_addresses() {
    assert!(matches!(probe_of("{ tcp = 8001 }").unwrap(), Check::Tcp { host: None, port: 8001 }));
    assert!(
        matches!(probe_of("{ tcp = \"localhost:80\" }").unwrap(), Check::Tcp { host: Some(host), port: 80 } if host == "localhost")
    );
    assert!(
        matches!(probe_of("{ tcp = \"[::1]:9\" }").unwrap(), Check::Tcp { host: Some(host), port: 9 } if host == "::1")
    );
    // A port as a string, as `tcp = "${PORT}"` expands.
    assert!(matches!(probe_of("{ tcp = \"8001\" }").unwrap(), Check::Tcp { host: None, port: 8001 }));
    assert!(probe_of("{ tcp = \"0\" }").is_err());
    assert!(probe_of("{ tcp = \":8001\" }").is_err());
}

#[test]
fn http_urls() {
    let Check::Http { url, status } =
        probe_of("{ http = \"http://127.0.0.1:8001/health?x=1\", status = 204 }").unwrap()
    else {
        panic!()
    };
    assert_eq!((url.host.as_str(), url.port, url.path.as_str(), status), ("127.0.0.1", 8001, "/health?x=1", Some(204)));
    let Check::Http { url, .. } = probe_of("{ http = \"http://example\" }").unwrap() else { panic!() };
    assert_eq!((url.port, url.path.as_str()), (80, "/"));
    let Check::Http { url, .. } = probe_of("{ http = \"http://[::1]:81/x\" }").unwrap() else { panic!() };
    assert_eq!((url.host.as_str(), url.port), ("::1", 81));
    assert!(probe_of("{ http = \"https://127.0.0.1/\" }").unwrap_err().message.contains("only http://"));
    assert!(probe_of("{ tcp = 1, status = 200 }").unwrap_err().message.contains("`status` only applies"));
}

#[test]
fn env_names_and_nul_bytes_are_checked() {
    assert!(parse_str("[env]\n\"A=B\" = \"1\"\n").unwrap_err().message.contains("invalid environment variable name"));
    assert!(parse_str("[env]\n\"\" = \"1\"\n").unwrap_err().message.contains("invalid environment variable name"));
    assert!(parse_str("[env]\nA = \"x\\u0000y\"\n").unwrap_err().message.contains("NUL"));
    assert!(parse_str("[tasks.t]\ncmd = \"a\\u0000b\"\n").unwrap_err().message.contains("NUL"));
    assert!(parse_str("[tasks.t]\ncmd = [\"a\\u0000b\"]\n").unwrap_err().message.contains("NUL"));
}

#[test]
fn stop_signals_must_end_a_process() {
    let err = parse_str("[tasks.t]\ncmd = \"x\"\nstop_signal = \"SIGCHLD\"\n").unwrap_err();
    assert!(err.message.contains("does not end a process"), "{err}");
    assert!(parse_str("[tasks.t]\ncmd = \"x\"\nstop_signal = \"SIGKILL\"\n").is_ok());
}

#[test]
fn signals_accept_short_names() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\nstop_signal = \"int\"\n").unwrap();
    assert_eq!(cfg.tasks[TaskId::new(0)].process().unwrap().stop_signal, Signal::SIGINT);
}

#[test]
fn group_keys_that_need_a_command_are_rejected() {
    let err = parse_str("[tasks.a]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"a\"]\ntimeout = \"1s\"\n").unwrap_err();
    assert!(err.message.contains("task `g` is a group (it has no `cmd`), so `timeout` has no effect"), "{err}");
    let err = parse_str("[tasks.g]\ndescription = \"nothing\"\n").unwrap_err();
    assert!(err.message.contains("neither `cmd` nor `deps`"), "{err}");
}

#[test]
fn cwd_is_relative_to_the_project_root() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\ncwd = \"sub\"\n[tasks.u]\ncmd = \"x\"\n").unwrap();
    assert_eq!(cfg.tasks[TaskId::new(0)].process().unwrap().cwd, PathBuf::from("/project/sub"));
    assert_eq!(cfg.tasks[TaskId::new(1)].process().unwrap().cwd, PathBuf::from("/project"));
}

#[test]
fn a_task_may_say_reuse_false_and_a_group_may_have_sources() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\nreuse = false\n[tasks.g]\ndeps = [\"t\"]\nsources = [\"src/**\"]\n")
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(cfg.tasks[TaskId::new(1)].sources(), ["src/**".to_string()]);
    let err = parse_str("[tasks.t]\ncmd = \"x\"\nreuse = true\n").unwrap_err();
    assert!(err.message.contains("`reuse = true` on task `t`: only a service"), "{err}");
}

#[test]
fn several_probes_are_named_in_one_order_and_a_group_s_ready_first() {
    let err = probe_of("{ http = \"http://h/\", tcp = 1 }").unwrap_err();
    assert!(err.message.contains("more than one probe: tcp, http"), "{err}");
    let err = parse_str("[tasks.a]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"a\"]\ntimeout = \"1s\"\nready = { tcp = 1 }\n")
        .unwrap_err();
    assert!(err.message.contains("cannot have `ready`"), "{err}");
}

#[test]
fn only_a_task_can_be_interactive() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\ninteractive = true\n[tasks.u]\ncmd = \"y\"\n").unwrap();
    assert!(cfg.tasks[TaskId::new(0)].is_interactive() && !cfg.tasks[TaskId::new(1)].is_interactive());
    let err = parse_str("[tasks.s]\ncmd = \"x\"\ndaemon = true\ninteractive = true\n").unwrap_err();
    assert!(err.message.contains("`interactive = true` on service `s`: only a task can have the terminal"), "{err}");
    let err = parse_str("[tasks.g]\ndeps = [\"t\"]\ninteractive = true\n[tasks.t]\ncmd = \"x\"\n").unwrap_err();
    assert!(err.message.contains("`interactive` has no effect"), "{err}");
    assert!(parse_str("[tasks.s]\ncmd = \"x\"\ndaemon = true\ninteractive = false\n").is_ok());
}
