//! `irun TARGET -- ARGS…`: extra arguments for the one target that is a task, appended to its command before the
//! run is planned, so they are part of the task's fingerprint (a run with other arguments is not "up to date").

use crate::config::{Cmd, Config};
use crate::diagnostic::Diagnostic;

/// Append `args` to the command of the one non-group task among `targets` (the command line's, or `default`'s when
/// none were named); when the targets are all groups, of the one task they hold (through groups inside them). Names
/// that are not tasks are left for the planner to report.
pub(crate) fn apply(config: &mut Config, targets: &[String], args: &[String]) -> Result<(), Diagnostic> {
    if args.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = if targets.is_empty() {
        config.default.iter().flatten().map(|n| config.tasks[n.id].name.clone()).collect()
    } else {
        targets.to_vec()
    };
    if named.iter().any(|n| config.task(n).is_none()) {
        return Ok(());
    }
    let mut takers: Vec<String> =
        named.iter().filter(|n| config.task(n).is_some_and(|t| !t.is_group())).cloned().collect();
    let in_groups = takers.is_empty();
    if in_groups {
        takers = held(config, &named);
    }
    let shown = args.join(" ");
    let [taker] = takers.as_slice() else {
        let message = if takers.is_empty() {
            let groups = named.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            if named.is_empty() {
                "arguments after `--` need a task to go to, and no target was named".to_string()
            } else {
                format!(
                    "arguments after `--` go to one task, but the targets ({groups}) are groups, which run no command"
                )
            }
        } else {
            let names = takers.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            let n = takers.len();
            if in_groups {
                format!("arguments after `--` go to one task, but the groups named hold {n} tasks: {names}")
            } else {
                format!("arguments after `--` go to one task, but {n} targets are tasks: {names}")
            }
        };
        return Err(Diagnostic::new(message).with_help(format!(
            "name the one task the arguments are for, e.g. `irun TASK -- {shown}`, and run the others separately"
        )));
    };
    let Some(task) = config.task_mut(taker) else { return Ok(()) };
    let Some(process) = task.process_mut() else { return Ok(()) };
    match &mut process.cmd {
        Cmd::Argv(argv) => {
            argv.extend(args.iter().cloned());
            process.passed += args.len();
        }
        // Single-quoted (or plain) words: neither irun nor the shell expands them.
        Cmd::Shell(line) => {
            // After the command's last word, not after a trailing newline (which would start another command).
            line.truncate(line.trim_end().len());
            for arg in args {
                line.push(' ');
                line.push_str(&quote(arg));
            }
        }
    }
    Ok(())
}

/// The tasks (not groups) the groups `named` hold, through the groups inside them, each once.
fn held(config: &Config, named: &[String]) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mut todo: Vec<&str> = named.iter().map(String::as_str).collect();
    while let Some(name) = todo.pop() {
        // A name seen before (a group in two places, or a cycle, which the planner reports) is looked at once.
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let Some(task) = config.task(name) else { continue };
        if task.is_group() {
            todo.extend(task.deps.iter().rev().map(|d| config.tasks[d.id].name.as_str()));
        } else {
            out.push(task.name.clone());
        }
    }
    out
}

/// `arg` as one word for `sh`: unchanged when it has nothing the shell would read specially, else single-quoted.
pub(crate) fn quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+=.,:/@%^".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(crate::diagnostic::Source::new(std::path::Path::new("Irun.toml"), text), ".".into())
            .unwrap()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_that_hold_one_task_give_it_the_arguments() {
        let mut c = config(
            "default = [\"all\"]\n[tasks.all]\ndeps = [\"inner\", \"inner\"]\n[tasks.inner]\ndeps = [\"t\"]\n\
             [tasks.t]\ncmd = [\"true\"]\n[tasks.u]\ncmd = [\"true\"]\n[tasks.two]\ndeps = [\"inner\", \"u\"]\n\
             [tasks.loop]\ndeps = [\"loop2\"]\n[tasks.loop2]\ndeps = [\"loop\", \"t\"]\n",
        );
        apply(&mut c, &[], &args(&["1"])).unwrap();
        apply(&mut c, &args(&["inner", "all"]), &args(&["2"])).unwrap();
        apply(&mut c, &args(&["loop"]), &args(&["3"])).unwrap();
        assert_eq!(
            c.task("t").unwrap().process().map(|p| p.cmd.clone()),
            Some(Cmd::Argv(args(&["true", "1", "2", "3"])))
        );
        let two = apply(&mut c, &args(&["two"]), &args(&["x"])).unwrap_err();
        assert!(two.render(false).contains("the groups named hold 2 tasks: `t`, `u`"), "{}", two.render(false));
    }

    #[test]
    fn arguments_are_items_of_an_array_command_and_quoted_words_of_a_string_command() {
        let mut c = config("[tasks.a]\ncmd = [\"echo\", \"x\"]\n[tasks.b]\ncmd = \"echo x\"\n");
        apply(&mut c, &args(&["a"]), &args(&["-k", "it's here"])).unwrap();
        apply(&mut c, &args(&["b"]), &args(&["-k", "it's here", "$HOME", ""])).unwrap();
        assert_eq!(
            c.task("a").unwrap().process().map(|p| p.cmd.clone()),
            Some(Cmd::Argv(args(&["echo", "x", "-k", "it's here"])))
        );
        assert_eq!(c.task("a").unwrap().process().map(|p| p.passed), Some(2), "the runner leaves these as given");
        assert_eq!(
            c.task("b").unwrap().process().map(|p| p.cmd.clone()),
            Some(Cmd::Shell(r"echo x -k 'it'\''s here' '$HOME' ''".to_string()))
        );
        let mut c = config("[tasks.m]\ncmd = \"\"\"\npytest tests\n\"\"\"\n");
        apply(&mut c, &args(&["m"]), &args(&["-k", "x"])).unwrap();
        assert_eq!(
            c.task("m").unwrap().process().map(|p| p.cmd.clone()),
            Some(Cmd::Shell("pytest tests -k x".to_string())),
            "a trailing newline is dropped"
        );
    }

    #[test]
    fn the_one_task_among_groups_and_default_targets_takes_them() {
        let mut c = config(
            "default = [\"t\"]\n[tasks.g]\ndeps = [\"t\"]\n[tasks.t]\ncmd = [\"true\"]\n[tasks.u]\ncmd = [\"true\"]\n",
        );
        apply(&mut c, &args(&["g", "t"]), &args(&["1"])).unwrap();
        apply(&mut c, &[], &args(&["2"])).unwrap();
        assert_eq!(c.task("t").unwrap().process().map(|p| p.cmd.clone()), Some(Cmd::Argv(args(&["true", "1", "2"]))));
        let two = apply(&mut c, &args(&["t", "u"]), &args(&["x"])).unwrap_err();
        assert!(two.render(false).contains("2 targets are tasks: `t`, `u`"), "{}", two.render(false));
        // A misspelt target is the planner's to report (with its suggestions).
        assert!(apply(&mut c, &args(&["tt"]), &args(&["x"])).is_ok());
    }
}
