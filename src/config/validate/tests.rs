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
    assert_eq!(cfg.tasks[TaskId::new(0)].process().unwrap().cwd, std::path::Path::new("/project/sub").into());
    assert_eq!(cfg.tasks[TaskId::new(1)].process().unwrap().cwd, std::path::Path::new("/project").into());
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

// -- chosen ports ---------------------------------------------------------------------------------------------------

const DB: &str = "[tasks.db]\ncmd = \"serve\"\ndaemon = true\nport = \"auto\"\n\
                  ready = { exec = \"pg_isready -p ${IRUN_PORT}\" }\n";

#[test]
fn port_auto_gives_a_service_a_port_with_any_probe_or_none() {
    let cfg = parse_str(DB).unwrap();
    assert!(cfg.tasks[TaskId::new(0)].service().unwrap().auto_port);
    let cfg = parse_str("[tasks.s]\ncmd = \"x\"\ndaemon = true\nport = \"auto\"\n").unwrap();
    assert!(cfg.tasks[TaskId::new(0)].service().unwrap().auto_port);
    // `tcp = "auto"` stays the shorthand.
    let cfg = parse_str("[tasks.s]\ncmd = \"x\"\ndaemon = true\nready = { tcp = \"auto\" }\n").unwrap();
    assert!(cfg.tasks[TaskId::new(0)].service().unwrap().auto_port);
    let err = parse_str("[tasks.s]\ncmd = \"x\"\ndaemon = true\nport = \"8001\"\n").unwrap_err();
    assert!(err.message.contains("unknown `port` \"8001\""), "{err}");
    let err = parse_str("[tasks.s]\ncmd = \"x\"\nport = \"auto\"\n").unwrap_err();
    assert!(err.message.contains("`port`"), "{err}");
}

#[test]
fn a_probe_may_name_the_chosen_port_and_is_still_checked_at_load() {
    let later = |ready: &str| {
        let toml = format!("[tasks.s]\ncmd = \"x\"\ndaemon = true\nport = \"auto\"\nready = {ready}\n");
        parse_str(&toml).map(|cfg| cfg.tasks[TaskId::new(0)].probe().cloned().unwrap().check)
    };
    let check = later("{ http = \"http://127.0.0.1:${IRUN_PORT}/health\", status = 204 }").unwrap();
    assert_eq!(
        check,
        Check::Later { key: "http", text: "http://127.0.0.1:${IRUN_PORT}/health".into(), status: Some(204) }
    );
    assert!(matches!(later("{ tcp = \"${IRUN_PORT}\" }").unwrap(), Check::Later { key: "tcp", .. }));
    assert!(matches!(later("{ log = \"listening on :${IRUN_PORT}\" }").unwrap(), Check::Later { key: "log", .. }));
    // irun reads a probe's text itself: only `${IRUN_PORT}` is a reference there.
    let err = later("{ http = \"http://127.0.0.1:$IRUN_PORT/\" }").unwrap_err();
    assert!(err.message.contains("`$IRUN_PORT` in `ready.http` is not read as a port"), "{err}");
    assert_eq!(err.help.as_deref(), Some("write `${IRUN_PORT}`, with braces"));
    // The rest of the text is checked with a stand-in port.
    let err = later("{ http = \"https://127.0.0.1:${IRUN_PORT}/\" }").unwrap_err();
    assert!(err.message.contains("only http:// URLs can be probed"), "{err}");
    let err = later("{ log = \"(${IRUN_PORT}\" }").unwrap_err();
    assert!(err.message.contains("invalid regular expression"), "{err}");
}

#[test]
fn a_port_name_a_task_does_not_get_is_an_error_naming_those_it_gets() {
    let toml = format!(
        "{DB}[tasks.tests]\ncmd = \"pytest\"\ndeps = [\"db\"]\nenv = {{ DSN = \"postgres://127.0.0.1:${{IRUN_PORT_DBB}}/x\" }}\n"
    );
    let err = parse_str(&toml).unwrap_err();
    assert!(err.message.contains("`IRUN_PORT_DBB` is not a port task `tests` gets"), "{err}");
    assert!(err.message.contains("did you mean `IRUN_PORT_DB`"), "{err}");
    assert!(err.help.as_deref().unwrap().starts_with("task `tests` gets IRUN_PORT_DB"), "{err}");
    let (_, span) = err.location.clone().unwrap();
    assert_eq!(&toml[span], "IRUN_PORT_DBB");
    // IRUN_PORT is a service's own: a task after it has only IRUN_PORT_DB.
    let err = parse_str(&format!("{DB}[tasks.tests]\ncmd = \"echo $IRUN_PORT\"\ndeps = [\"db\"]\n")).unwrap_err();
    assert!(err.message.contains("`IRUN_PORT` is not a port task `tests` gets"), "{err}");
    // A task that gets no port is told how to get one.
    let err = parse_str("[tasks.t]\ncmd = \"echo ${IRUN_PORT_WEB}\"\n").unwrap_err();
    assert!(err.help.unwrap().contains("gets no chosen port"));
    // Through a group, and `$$` escapes: fine.
    let ok = format!(
        "{DB}[tasks.g]\ndeps = [\"db\"]\n[tasks.outer]\ndeps = [\"g\"]\n\
         [tasks.t]\ncmd = \"echo ${{IRUN_PORT_DB}} $${{IRUN_PORT_X}}\"\ndeps = [\"outer\"]\n"
    );
    parse_str(&ok).unwrap_or_else(|e| panic!("{e}"));
    // Through another task: db may be stopped (or never started) by the time `t` runs.
    let through_task = format!(
        "{DB}[tasks.mk]\ncmd = \"x\"\ndeps = [\"db\"]\n[tasks.t]\ncmd = \"echo ${{IRUN_PORT_DB}}\"\ndeps = [\"mk\"]\n"
    );
    let err = parse_str(&through_task).unwrap_err();
    assert!(err.message.contains("`IRUN_PORT_DB` is not a port task `t` gets"), "{err}");
}

#[test]
fn color_is_on_unless_false_and_a_group_has_none() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\n[tasks.u]\ncmd = \"y\"\ncolor = false\n").unwrap();
    let color = |i: usize| cfg.tasks[TaskId::new(i)].process().unwrap().color;
    assert!(color(0) && !color(1));
    let err = parse_str("[tasks.g]\ndeps = [\"t\"]\ncolor = false\n[tasks.t]\ncmd = \"x\"\n").unwrap_err();
    assert!(err.message.contains("so `color` has no effect"), "{err}");
    let err = parse_str("[tasks.t]\ncmd = \"x\"\ncolor = \"yes\"\n").unwrap_err();
    assert!(err.to_string().contains("Irun.toml:3:9") && err.message.contains("expected a boolean"), "{err}");
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

#[test]
fn only_a_task_with_a_cmd_can_have_junit_reports_and_they_are_globs_as_outputs_are() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\njunit = [\"reports/*.xml\", \"!reports/old.xml\"]\n").unwrap();
    assert_eq!(cfg.tasks[TaskId::new(0)].junit(), ["reports/*.xml", "!reports/old.xml"]);
    let e = parse_str("[tasks.s]\ncmd = \"x\"\ndaemon = true\njunit = [\"r.xml\"]\n").unwrap_err().render(false);
    assert!(e.contains("Irun.toml:4:9") && e.contains("`junit` is only for tasks, and `s` is a service"), "{e}");
    assert!(e.contains("move `junit` to the task that runs the tests"), "{e}");
    let e = parse_str("[tasks.t]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"t\"]\njunit = [\"r.xml\"]\n")
        .unwrap_err()
        .render(false);
    assert!(e.contains("Irun.toml:5:9") && e.contains("task `g` is a group (it has no `cmd`), so `junit`"), "{e}");
    for (glob, says) in [("../r.xml", "points outside the project"), ("r[.xml", "invalid glob")] {
        let e = parse_str(&format!("[tasks.t]\ncmd = \"x\"\njunit = [\"{glob}\"]\n")).unwrap_err().render(false);
        assert!(e.contains(says) && e.contains("in `junit`"), "{e}");
    }
}

#[test]
fn exclusions_in_globs_are_kept_as_written() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\nsources = [\"src/**\", \"!src/**/*.test.tsx\"]\noutputs = [\"dist/**\", \"!dist/cache/**\"]\n[tasks.g]\ndeps = [\"t\"]\nsources = [\"a/**\", \"!a/b\"]\n").unwrap();
    assert_eq!(cfg.tasks[TaskId::new(0)].sources(), ["src/**", "!src/**/*.test.tsx"]);
    assert_eq!(cfg.tasks[TaskId::new(0)].outputs(), ["dist/**", "!dist/cache/**"]);
    assert_eq!(cfg.tasks[TaskId::new(1)].sources(), ["a/**", "!a/b"]);
}

#[test]
fn a_glob_list_of_only_exclusions_is_refused_naming_its_line() {
    for key in ["sources", "outputs"] {
        let text = format!("[tasks.t]\ncmd = \"x\"\n{key} = [\"!src/**/*.test.tsx\"]\n");
        let e = parse_str(&text).unwrap_err().render(false);
        assert!(e.contains("Irun.toml:3:"), "{e}");
        assert!(e.contains(&format!("`{key}` holds only `!` patterns")), "{e}");
    }
    let group = parse_str("[tasks.t]\ncmd = \"x\"\n[tasks.g]\ndeps = [\"t\"]\nsources = [\"!a\"]\n").unwrap_err();
    assert!(group.render(false).contains("Irun.toml:5:"), "{}", group.render(false));
}

#[test]
fn an_exclusion_is_checked_like_any_glob() {
    for (glob, says) in [
        ("!../x/**", "points outside the project"),
        ("!/etc/**", "points outside the project"),
        ("![a", "invalid glob"),
        ("!", "must be followed by a glob"),
    ] {
        let text = format!("[tasks.t]\ncmd = \"x\"\nsources = [\"src/**\", {glob:?}]\n");
        let e = parse_str(&text).unwrap_err().render(false);
        assert!(e.contains("Irun.toml:3:") && e.contains(says), "{glob}: {e}");
    }
}

#[test]
fn invalid_globs_are_refused_however_few_wildcards_they_hold() {
    // A plain path skips globset: only its special characters can make a pattern invalid.
    for glob in ["src\\", "a}", "{a,b}}", "src/[x"] {
        let text = format!("[tasks.t]\ncmd = \"x\"\nsources = [{glob:?}]\n");
        let e = parse_str(&text).unwrap_err().render(false);
        assert!(e.contains("Irun.toml:3:") && e.contains("invalid glob"), "{glob}: {e}");
    }
}

proptest::proptest! {
    /// What lets validation take a pattern without globset's special characters as it is.
    #[test]
    fn a_path_without_glob_characters_is_a_valid_glob(path in "[^*?\\[\\]{},\\\\]{0,40}") {
        proptest::prop_assert!(crate::config::glob(&path).is_ok());
    }
}

#[test]
fn inherit_env_gives_a_task_all_none_or_the_named_top_level_variables() {
    let env_of = |inherit: &str| {
        let toml =
            format!("[env]\nA = \"1\"\nB = \"2\"\n[tasks.t]\ncmd = \"x\"\n{inherit}\nenv = {{ C = \"${{B}}3\" }}\n");
        let cfg = parse_str(&toml).unwrap_or_else(|e| panic!("{e}"));
        let mut names: Vec<String> =
            cfg.tasks[TaskId::new(0)].process().unwrap().env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        names.sort();
        names.join(" ")
    };
    assert_eq!(env_of(""), "A=1 B=2 C=23");
    assert_eq!(env_of("inherit_env = true"), "A=1 B=2 C=23");
    // The task's own `env` still finds them with ${NAME}.
    assert_eq!(env_of("inherit_env = false"), "C=23");
    assert_eq!(env_of("inherit_env = [\"A\"]"), "A=1 C=23");
}

#[test]
fn inherit_env_names_only_top_level_variables_and_says_which_there_are() {
    let toml = "[env]\nPYTEST_ADDOPTS = \"-q\"\n[tasks.t]\ncmd = \"x\"\ninherit_env = [\"PYTEST_ADOPTS\"]\n";
    let err = parse_str(toml).unwrap_err();
    assert!(err.message.contains("`inherit_env` names `PYTEST_ADOPTS`, which neither [env] nor"), "{err}");
    assert!(err.message.contains("did you mean `PYTEST_ADDOPTS`?"), "{err}");
    assert!(err.help.as_deref().unwrap().contains("they define: PYTEST_ADDOPTS"), "{err}");
    let (_, span) = err.location.clone().unwrap();
    assert_eq!(&toml[span], "\"PYTEST_ADOPTS\"");
    for wrong in ["\"yes\"", "[1]"] {
        let err = parse_str(&format!("[tasks.t]\ncmd = \"x\"\ninherit_env = {wrong}\n")).unwrap_err();
        assert!(err.message.contains("`inherit_env` must be `true`, `false` or an array of variable names"), "{err}");
    }
    let err = parse_str("[tasks.t]\ndeps = [\"u\"]\ninherit_env = false\n[tasks.u]\ncmd = \"x\"\n").unwrap_err();
    assert!(err.message.contains("is a group (it has no `cmd`), so `inherit_env` has no effect"), "{err}");
    // An optional dotenv file that is missing may define the name: not an error.
    parse_str("dotenv = [\"?/nonexistent/.env\"]\n[tasks.t]\ncmd = \"x\"\ninherit_env = [\"LATER\"]\n")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn cache_settings_default_to_cached_with_output_and_no_shell_variables() {
    let cfg = parse_str("[tasks.t]\ncmd = \"x\"\n").unwrap();
    assert_eq!(cfg.tasks[TaskId::new(0)].process().unwrap().cache, CacheSettings::default());
    assert_eq!(CacheSettings::default(), CacheSettings { enabled: true, forced: false, env: vec![], output: true });
}

#[test]
fn cache_env_adds_the_task_names_to_the_top_level_ones() {
    let toml = "cache_env = [\"CC\", \"NODE_ENV\"]\n[tasks.t]\ncmd = \"x\"\ncache = false\ncache_output = false\n\
                cache_env = [\"NODE_ENV\", \"CFLAGS\"]\n[tasks.u]\ncmd = \"y\"\n";
    let cfg = parse_str(toml).unwrap();
    let cache = |i: usize| cfg.tasks[TaskId::new(i)].process().unwrap().cache.clone();
    assert_eq!(
        cache(0),
        CacheSettings {
            enabled: false,
            forced: false,
            env: vec!["CC".into(), "NODE_ENV".into(), "CFLAGS".into()],
            output: false
        }
    );
    assert_eq!(
        cache(1),
        CacheSettings { enabled: true, forced: false, env: vec!["CC".into(), "NODE_ENV".into()], output: true }
    );
}

#[test]
fn cache_env_holds_variable_names_and_says_where_one_is_not() {
    let err = parse_str("[tasks.t]\ncmd = \"x\"\ncache_env = [\"A=1\"]\n").unwrap_err();
    assert!(err.message.contains("`cache_env` holds \"A=1\", which is not a variable name"), "{err}");
    assert!(err.to_string().contains("Irun.toml:3"), "{err}");
    let err = parse_str("cache_env = [\"\"]\n[tasks.t]\ncmd = \"x\"\n").unwrap_err();
    assert!(err.message.contains("`cache_env` holds \"\""), "{err}");
    assert!(err.to_string().contains("Irun.toml:1"), "{err}");
}

#[test]
fn a_service_is_never_cached_and_may_only_say_so() {
    for key in ["cache = true", "cache_env = [\"A\"]", "cache_output = false"] {
        let err = parse_str(&format!("[tasks.s]\ncmd = \"x\"\ndaemon = true\n{key}\n")).unwrap_err();
        let name = key.split(' ').next().unwrap();
        assert!(err.message.contains(&format!("`{name}` on service `s`: services are never cached")), "{err}");
        assert!(err.to_string().contains("Irun.toml:4"), "{err}");
    }
    assert!(parse_str("[tasks.s]\ncmd = \"x\"\ndaemon = true\ncache = false\n").is_ok());
    let err = parse_str("[tasks.g]\ndeps = [\"t\"]\ncache = false\n[tasks.t]\ncmd = \"x\"\n").unwrap_err();
    assert!(err.message.contains("`cache` has no effect"), "{err}");
}
