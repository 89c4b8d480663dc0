//! The runner's pure part: what starting a task takes, decided from its settings alone.

use super::*;

fn task(toml: &str) -> Task {
    let config = crate::config::parse(
        crate::diagnostic::Source::new(std::path::Path::new("Irun.toml"), toml),
        PathBuf::from("/project"),
    )
    .unwrap_or_else(|d| panic!("{}", d.render(false)));
    config.tasks.iter().next().unwrap().clone()
}

#[test]
fn an_array_command_gets_irun_s_variables_and_a_chosen_port_becomes_the_probe() {
    let svc =
        task("[tasks.web]\ncmd = [\"serve\", \"--port=${IRUN_PORT}\"]\ndaemon = true\nready = { tcp = \"auto\" }\n");
    let env = vec![("IRUN_PORT".to_string(), "4242".to_string())];
    let launch = prepare(&svc, &env, Some(4242)).unwrap();
    assert_eq!(launch.cmd, Cmd::Argv(vec!["serve".into(), "--port=4242".into()]));
    assert_eq!(launch.probe.map(|p| p.check), Some(Check::Tcp { host: None, port: 4242 }));
    assert!(launch.service && launch.env.contains(&env[0]));
}

#[test]
fn a_task_is_told_to_colour_unless_it_or_irun_s_environment_says_otherwise_or_color_is_false() {
    let none = |_: &str| false;
    let both = vec![("FORCE_COLOR".to_string(), "1".to_string()), ("CLICOLOR_FORCE".to_string(), "1".to_string())];
    assert_eq!(color_env(&task("[tasks.t]\ncmd = \"x\"\n"), none), both);
    assert_eq!(color_env(&task("[tasks.t]\ncmd = \"x\"\ndaemon = true\n"), none), both, "a service too");
    assert!(color_env(&task("[tasks.t]\ncmd = \"x\"\ncolor = false\n"), none).is_empty());
    let own = task("[tasks.t]\ncmd = \"x\"\nenv = { FORCE_COLOR = \"0\" }\n");
    assert_eq!(color_env(&own, none), both[1..]);
    assert_eq!(color_env(&own, |name| name == "CLICOLOR_FORCE"), []);
}

#[test]
fn arguments_after_dashes_are_not_expanded() {
    let mut t = task("[tasks.t]\ncmd = [\"run\", \"${IRUN_CHANGED_PATHS}\"]\n");
    t.process_mut().unwrap().cmd =
        Cmd::Argv(vec!["run".into(), "${IRUN_CHANGED_PATHS}".into(), "${IRUN_CHANGED_PATHS}".into()]);
    t.process_mut().unwrap().passed = 1;
    let env = vec![("IRUN_CHANGED_PATHS".to_string(), "a.txt".to_string())];
    let launch = prepare(&t, &env, None).unwrap();
    assert_eq!(launch.cmd, Cmd::Argv(vec!["run".into(), "a.txt".into(), "${IRUN_CHANGED_PATHS}".into()]));
}

#[test]
fn a_service_with_an_automatic_port_cannot_start_without_one() {
    let svc = task("[tasks.web]\ncmd = \"serve\"\ndaemon = true\nready = { tcp = \"auto\" }\n");
    assert_eq!(prepare(&svc, &[], None), Err(Failure::NoFreePort));
}

#[test]
fn env_values_and_every_probe_get_the_chosen_ports() {
    let svc = task(
        "[tasks.web]\ncmd = \"serve\"\ndaemon = true\nport = \"auto\"\n\
         env = { BASE_URL = \"http://127.0.0.1:${IRUN_PORT_WEB}/\", PLAIN = \"$HOME\" }\n\
         ready = { http = \"http://127.0.0.1:${IRUN_PORT}/health\" }\n",
    );
    let env = vec![("IRUN_PORT".to_string(), "4242".to_string()), ("IRUN_PORT_WEB".to_string(), "4242".to_string())];
    let launch = prepare(&svc, &env, Some(4242)).unwrap();
    assert!(launch.env.contains(&("BASE_URL".into(), "http://127.0.0.1:4242/".into())), "{:?}", launch.env);
    assert!(launch.env.contains(&("PLAIN".into(), "$HOME".into())), "{:?}", launch.env);
    let Some(Check::Http { url, .. }) = launch.probe.map(|p| p.check) else { panic!("not an http probe") };
    assert_eq!((url.port, url.path.as_str()), (4242, "/health"));
    // No port to be had: it cannot start.
    assert!(matches!(prepare(&svc, &env, None), Err(Failure::NoFreePort)));
    let exec = task(
        "[tasks.db]\ncmd = \"x\"\ndaemon = true\nport = \"auto\"\nready = { exec = [\"isready\", \"-p\", \"${IRUN_PORT}\"] }\n",
    );
    let launch = prepare(&exec, &env, Some(4242)).unwrap();
    assert_eq!(
        launch.probe.map(|p| p.check),
        Some(Check::Exec(Cmd::Argv(vec!["isready".into(), "-p".into(), "4242".into()])))
    );
}

#[test]
fn an_escaped_port_reference_in_env_stays_literal_and_the_others_are_read() {
    let t = task(
        "[tasks.web]\ncmd = \"serve\"\ndaemon = true\nport = \"auto\"\n\
         env = { A = \"$${IRUN_PORT_WEB} ${IRUN_PORT_WEB} $${1} $${HOME}\" }\n",
    );
    let env = vec![("IRUN_PORT".to_string(), "4242".to_string()), ("IRUN_PORT_WEB".to_string(), "4242".to_string())];
    let launch = prepare(&t, &env, Some(4242)).unwrap();
    assert!(launch.env.contains(&("A".into(), "${IRUN_PORT_WEB} 4242 ${1} ${HOME}".into())), "{:?}", launch.env);
}

#[test]
fn a_string_command_is_left_to_its_shell() {
    let t = task("[tasks.t]\ncmd = \"echo ${IRUN_CHANGED_PATHS:-none}\"\ntimeout = \"2s\"\n");
    let launch = prepare(&t, &[], None).unwrap();
    assert_eq!(launch.cmd, Cmd::Shell("echo ${IRUN_CHANGED_PATHS:-none}".into()));
    assert_eq!((launch.service, launch.probe, launch.timeout), (false, None, Some(Duration::from_secs(2))));
}
