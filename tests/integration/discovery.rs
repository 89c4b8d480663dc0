//! Discovery for editors, scripts and shells: `irun list --json`, `irun list --names`, and completion scripts that
//! complete task names from the Irun.toml of the current directory.

use std::path::Path;
use std::process::Command;

use crate::harness::Project;

const TASKS: &str = "default = [\"web-server\"]\n\
    [tasks.web-server]\ndescription = \"Serves\"\ncmd = [\"serve\", \"--port\", \"${IRUN_PORT}\"]\ndaemon = true\nready = { tcp = \"auto\" }\n\
    [tasks.client]\ncmd = \"run-client\"\ndeps = [\"web-server\"]\nsources = [\"src/**\"]\noutputs = [\"out.txt\"]\njunit = [\"reports/*.xml\"]\n\
    [tasks.all]\ndeps = [\"client\"]\n";

#[test]
fn list_json_is_one_document_describing_every_task() {
    let p = Project::new(TASKS);
    let out = p.irun().args(["list", "--json"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["default"], serde_json::json!(["web-server"]));
    let tasks = doc["tasks"].as_array().unwrap();
    assert_eq!(tasks.iter().map(|t| t["name"].as_str().unwrap()).collect::<Vec<_>>(), ["web-server", "client", "all"]);
    let web = &tasks[0];
    assert_eq!(web["kind"], "service");
    assert_eq!(web["description"], "Serves");
    assert_eq!(web["default"], true);
    assert_eq!(web["ready"]["probe"], "tcp");
    assert_eq!(web["ready"]["port"], "auto");
    let client = &tasks[1];
    assert_eq!(client["kind"], "task");
    assert_eq!(client["cmd"], "run-client");
    assert_eq!(client["deps"], serde_json::json!(["web-server"]));
    assert_eq!(client["sources"], serde_json::json!(["src/**"]));
    assert_eq!(client["outputs"], serde_json::json!(["out.txt"]));
    assert_eq!(client["junit"], serde_json::json!(["reports/*.xml"]));
    assert_eq!(web["junit"], serde_json::json!([]));
    assert_eq!(client["ready"], serde_json::Value::Null);
    assert_eq!(client["default"], false);
    assert_eq!(tasks[2]["kind"], "group");
    let names = p.irun().args(["list", "--names"]).run();
    assert_eq!(names.stdout, "web-server\nclient\nall\n");
}

/// A shell command run in the project, with this irun first on PATH.
fn in_shell(p: &Project, shell: &str, script: &str) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_irun")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(shell).args(["-c", script]).current_dir(p.root()).env("PATH", path).output().unwrap();
    assert!(out.status.success(), "{shell}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn completion_scripts_complete_task_names() {
    // Besides the usual names: one with a colon, and one a shell would run if it evaluated it.
    let p = Project::new(&format!(
        "{TASKS}[tasks.\"build:web\"]\ncmd = \"true\"\n[tasks.\"$(touch pwned)\"]\ncmd = \"true\"\n"
    ));
    for shell in ["bash", "zsh", "fish"] {
        let out = p.irun().args(["completions", shell]).run();
        assert_eq!(out.code, 0, "{out:?}");
        p.file(&format!("irun.{shell}"), &out.stdout);
    }
    let shell = |name: &str| crate::harness::shell(name);
    // bash: what the completion function offers for `irun cl`, `irun run w` and `irun explain ` (all tasks).
    let bash = in_shell(
        &p,
        &shell("bash"),
        "source ./irun.bash; for line in 'irun cl' 'irun run w' 'irun explain ' 'irun build:w'; do \
         COMP_LINE=$line; COMP_POINT=${#line}; \
         read -ra COMP_WORDS <<< \"${line//:/ : }\"; [[ $line == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); \
         COMPREPLY=(); _irun_tasks irun \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"; \
         echo \"$line => ${COMPREPLY[*]}\"; done",
    );
    assert!(bash.contains("irun cl => client"), "{bash}");
    assert!(bash.contains("irun run w => web-server"), "{bash}");
    let explain = bash.lines().find(|l| l.starts_with("irun explain ")).unwrap();
    assert!(explain.contains("web-server") && explain.contains("client") && explain.contains("all"), "{bash}");
    assert!(explain.contains("$(touch pwned)"), "the odd name is offered as text: {bash}");
    assert!(bash.contains("irun build:w => web"), "after the colon, as readline replaces it: {bash}");
    // fish: its own completion engine, as at a prompt.
    let fish = in_shell(&p, &shell("fish"), "source ./irun.fish; complete -C 'irun cl'; complete -C 'irun graph a'");
    assert!(fish.contains("client\ttask") && fish.contains("all\ttask"), "{fish}");
    // zsh: the whole script parses, targets complete with `_irun_tasks`, and that offers the task names.
    let zsh = in_shell(
        &p,
        &shell("zsh"),
        "compdef() { :; }; source ./irun.zsh; _describe() { local name=$4; print -r -l -- ${(P)name}; }; _irun_tasks",
    );
    assert_eq!(zsh, "web-server\nclient\nall\nbuild\\:web\n$(touch pwned)\n");
    assert!(!p.exists("pwned"), "no shell ran a task's name");
    assert!(p.read("irun.zsh").contains("targets -- Tasks to run, with everything they depend on"));
    assert!(
        !p.read("irun.zsh").lines().any(|l| l.contains("targets -- ") && l.contains(":_default'")),
        "targets complete as tasks, not files"
    );
}
