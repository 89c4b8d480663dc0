//! `${NAME}` / `${NAME:-default}` in Irun.toml, and dotenv files.

use crate::harness::{Project, free_port};

#[test]
fn a_port_from_the_shell_reaches_env_cmd_and_the_readiness_probe() {
    let p = Project::new(
        "[env]\nPORT = \"${PORT:-1}\"\n\
         [tasks.server]\ncmd = [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"${PORT}\"]\n\
         daemon = true\nready = { tcp = \"${PORT}\" }\n\
         [tasks.client]\ncmd = \"echo client sees $PORT and ${PORT}\"\ndeps = [\"server\"]\n",
    );
    let port = free_port().to_string();
    let out = p.irun().env("PORT", &port).args(["--progress", "never", "client"]).run();
    assert_eq!(out.code, 0, "the probe watched the port the server bound: {out:?}");
    assert!(out.stdout.contains(&format!("client | client sees {port} and {port}")), "{out:?}");
}

#[test]
fn defaults_apply_when_a_variable_is_unset_and_unknown_names_are_an_error_at_their_place() {
    let p = Project::new("[tasks.t]\ncmd = [\"echo\", \"${GREETING:-hello}\", \"$${LITERAL}\", \"$HOME\"]\n");
    let out = p.irun().args(["--progress", "never", "t"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("t | hello ${LITERAL} $HOME\n"), "{out:?}");
    p.file(
        "Irun.toml",
        "[tasks.t]\ncmd = \"true\"\n\n[tasks.u]\ncwd = \"sub\"\ncmd = \"echo ${NOT_SET_ANYWHERE_IRUN}\"\n",
    );
    let out = p.irun().args(["u"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown variable `NOT_SET_ANYWHERE_IRUN` in `cmd`"), "{out:?}");
    assert!(out.stderr.contains("Irun.toml:6:13"), "file:line:col of the reference: {out:?}");
    assert!(!out.stdout.contains("started"), "{out:?}");
}

#[test]
fn resolved_values_are_part_of_the_fingerprint() {
    let p = Project::new("[tasks.t]\ncmd = \"echo mode ${MODE:-fast}\"\nsources = [\"in.txt\"]\n");
    p.file("in.txt", "x");
    let run = |mode: &str| p.irun().env("MODE", mode).args(["--progress", "never", "t"]).run().stdout;
    assert!(run("a").contains("t | mode a"));
    assert!(run("a").contains("up to date"));
    assert!(run("b").contains("t | mode b"), "another value: the task runs again");
}

#[test]
fn dotenv_values_reach_tasks_and_the_shell_still_wins() {
    let p = Project::new(
        "dotenv = [\".env\", \"?.env.local\"]\n\
         [tasks.t]\ncmd = \"echo A=$A B=$B C=$C D=${D}\"\ndotenv = [\"task.env\"]\nenv = { C = \"from-env-${A}\" }\n",
    );
    p.file(".env", "# defaults\nA=from-dotenv\nexport B='quoted value'\nD=1\n");
    p.file("task.env", "D=from-task-file\n");
    let out = p.irun().env("B", "from-shell").args(["--progress", "never", "t"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("t | A=from-dotenv B=from-shell C=from-env-from-dotenv D=from-task-file"), "{out:?}");
    // The optional file is used once it exists.
    p.file(".env.local", "A=local\n");
    let out = p.irun().env("B", "x").args(["--progress", "never", "t"]).run();
    assert!(out.stdout.contains("t | A=local "), "{out:?}");
}

#[test]
fn a_missing_dotenv_file_is_an_error_unless_optional() {
    let p = Project::new("dotenv = [\"missing.env\"]\n[tasks.t]\ncmd = \"true\"\n");
    let out = p.irun().args(["t"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("dotenv file \"missing.env\" does not exist"), "{out:?}");
    assert!(out.stderr.contains("Irun.toml:1:11"), "{out:?}");
    assert!(out.stderr.contains("\"?missing.env\""), "the help says how to make it optional: {out:?}");
    p.file("Irun.toml", "dotenv = [\"bad.env\"]\n[tasks.t]\ncmd = \"true\"\n");
    p.file("bad.env", "OK=1\nBROKEN='unclosed\n");
    let out = p.irun().args(["t"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("cannot use dotenv file \"bad.env\": bad.env:2: the quote (')"), "{out:?}");
}

#[test]
fn an_unterminated_quote_in_a_dotenv_file_is_reported_at_its_line() {
    let p = Project::new("dotenv = [\"bad.env\"]\n[tasks.t]\ncmd = \"true\"\n");
    p.file("bad.env", "OK=1\n\n# a comment\nMULTI=\"two\nlines\"\nBROKEN='never closed\nNEXT=2\nLAST=3\n");
    let out = p.irun().args(["t"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("cannot use dotenv file \"bad.env\": bad.env:6: the quote (') opened here is never closed"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("line 0"), "{out:?}");
}

#[test]
fn a_dotenv_file_of_200_000_lines_is_read_in_one_pass() {
    // Each variable once replaced what came before it by a scan of all of them: 200,000 lines took minutes (the
    // harness gives up after a minute); in one pass they take well under a second.
    let mut env = String::from("DUP=first\n");
    for i in 0..200_000 {
        env += &format!("VARIABLE_NUMBER_{i:08}=value-{i}\n");
    }
    env += "DUP=last\n";
    let p = Project::new(
        "dotenv = [\".env\"]\n[env]\nX = \"${VARIABLE_NUMBER_00000007}\"\n\
         [tasks.t]\ncmd = \"echo ${DUP} ${VARIABLE_NUMBER_00123456} ${X}\"\n",
    );
    p.file(".env", &env);
    let out = p.irun().args(["list", "--json"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    // The values come from a dotenv file: irun shows their references (the last value winning: `last_wins`).
    let shown = "echo ${DUP} ${VARIABLE_NUMBER_00123456} ${VARIABLE_NUMBER_00000007}";
    assert_eq!(doc["tasks"][0]["cmd"], shown, "{doc}");
}

#[test]
fn references_to_a_big_dotenv_file_are_looked_up_not_searched() {
    // Each `${NAME}` was found by a scan of every variable: 20,000 references into 200,000 lines took minutes (the
    // harness gives up after one); looked up by name they take no time.
    let mut env = String::new();
    for i in 0..200_000 {
        env += &format!("VARIABLE_NUMBER_{i:08}=v{i}\n");
    }
    let refs: Vec<String> = (0..20_000).map(|i| format!("${{VARIABLE_NUMBER_{:08}}}", i % 100)).collect();
    let p = Project::new(&format!("dotenv = [\".env\"]\n[tasks.t]\ncmd = \"echo {}\"\n", refs.join(" ")));
    p.file(".env", &env);
    let out = p.irun().args(["list", "--json"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let cmd = doc["tasks"][0]["cmd"].as_str().unwrap();
    // The values come from a dotenv file: irun shows their references.
    let (first, last) =
        ("echo ${VARIABLE_NUMBER_00000000} ${VARIABLE_NUMBER_00000001} ", " ${VARIABLE_NUMBER_00000099}");
    assert!(cmd.starts_with(first) && cmd.ends_with(last), "{}", &cmd[..100]);
    assert_eq!(cmd.split(' ').count(), 20_001);
}

#[test]
fn a_reference_has_the_value_the_task_sees() {
    // `${PORT}` (resolved by irun) and `$PORT` (the task's environment) agree, whichever layers set it.
    let p = Project::new(
        "dotenv = [\".env\"]\n[env]\nPORT = \"2\"\n\
         [tasks.t]\ncmd = \"echo ${PORT} $PORT ${HOST} $HOST ${ONLY_DOTENV} $ONLY_DOTENV\"\nenv = { HOST = \"h-${PORT}\" }\n",
    );
    p.file(".env", "PORT=1\nHOST=dotenv-host\nONLY_DOTENV=d\n");
    let out = p.irun().args(["--progress", "never", "t"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("t | 2 2 h-2 h-2 d d"), "{out:?}");
}

#[test]
fn nested_defaults_expand_like_a_shell() {
    let p = Project::new(
        "[env]\nB = \"bee\"\n\
         [tasks.t]\ncmd = [\"echo\", \"${A_UNSET_IRUN:-${B}}\", \"${A_UNSET_IRUN:-x${B}y}\", \
         \"${A_UNSET_IRUN:-${C_UNSET_IRUN:-deep${B}}}\", \"${B:-${NOT_SET_ANYWHERE_IRUN}}\", \
         \"${A_UNSET_IRUN:-$${B}}\"]\n",
    );
    let out = p.irun().args(["--progress", "never", "t"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("t | bee xbeey deepbee bee ${B}\n"), "{out:?}");
    p.file(
        "Irun.toml",
        "[tasks.t]\ncmd = \"true\"\n\n[tasks.bad]\ncmd = \"echo ${A_UNSET_IRUN:-${NOT_SET_ANYWHERE_IRUN}}\"\n",
    );
    let out = p.irun().args(["bad"]).run();
    assert_eq!(out.code, 2, "a default that is used and names an unknown variable is an error: {out:?}");
    assert!(out.stderr.contains("unknown variable `NOT_SET_ANYWHERE_IRUN` in `cmd`"), "{out:?}");
    assert!(out.stderr.contains("Irun.toml:5:29"), "file:line:col of the inner reference: {out:?}");
}
