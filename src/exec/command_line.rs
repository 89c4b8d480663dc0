//! How a task's command becomes a program and its arguments. An array command is executed as it is. A string
//! command is executed directly too, split at spaces, when it has no shell syntax (as make does): no quotes,
//! escapes, variables, globs, redirections, pipes, separators, comments, assignments, and no shell keyword or
//! built-in as its first word. Anything else runs with `/bin/sh -c`. Both ways behave the same; the direct way
//! saves starting a shell (and `ps` shows the program instead of `sh`).

use crate::config::Cmd;

/// The shell used for commands that need one, by absolute path (never looked up on PATH).
pub(crate) const SHELL: &str = "/bin/sh";

/// What to execute for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// The program as written (`true`, `./x`, `/bin/sh`): looked up on PATH when it has no `/`.
    pub(crate) program: String,
    /// Every argument, `argv[0]` (the program as written) included.
    pub(crate) argv: Vec<String>,
    /// Run through `/bin/sh -c`.
    pub(crate) shell: bool,
}

pub(crate) fn invocation(cmd: &Cmd) -> Invocation {
    match cmd {
        Cmd::Argv(argv) => Invocation { program: argv[0].clone(), argv: argv.clone(), shell: false },
        Cmd::Shell(script) => match simple_words(script) {
            Some(words) => Invocation { program: words[0].clone(), argv: words, shell: false },
            None => Invocation {
                program: SHELL.to_string(),
                argv: vec!["sh".to_string(), "-c".to_string(), script.clone()],
                shell: true,
            },
        },
    }
}

/// Characters that mean something to `sh` (or to bash, when `/bin/sh` is bash) anywhere in a command.
const SHELL_CHARS: &[char] = &[
    '\'', '"', '\\', '`', '$', '&', '|', ';', '<', '>', '(', ')', '{', '}', '[', ']', '*', '?', '~', '#', '!', '^',
    '\n', '\r',
];

/// First words the shell treats itself: keywords, and built-ins that differ from (or have no) program of the same
/// name (`echo` interprets escapes in dash, `cd`/`export` change the shell, `pwd` is logical, `.` sources).
const SHELL_WORDS: &[&str] = &[
    "!",
    ".",
    ":",
    "[",
    "[[",
    "alias",
    "bg",
    "break",
    "case",
    "cd",
    "command",
    "continue",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "printf",
    "pwd",
    "read",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "source",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
    // bash's own, for systems where /bin/sh is bash.
    "bind",
    "builtin",
    "caller",
    "compgen",
    "complete",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "enable",
    "help",
    "history",
    "logout",
    "mapfile",
    "popd",
    "pushd",
    "readarray",
    "shopt",
    "suspend",
];

/// The words of a command without shell syntax, or `None` if it needs a shell.
pub(crate) fn simple_words(script: &str) -> Option<Vec<String>> {
    if script.contains(SHELL_CHARS) {
        return None;
    }
    // Only spaces and tabs separate words; any other whitespace (a form feed, a non-breaking space) is left to sh.
    if script.chars().any(|c| c.is_whitespace() && c != ' ' && c != '\t') {
        return None;
    }
    let words: Vec<String> = script.split([' ', '\t']).filter(|w| !w.is_empty()).map(str::to_string).collect();
    let first = words.first()?;
    // `NAME=value cmd` sets a variable for the command; `%1` is a job.
    if first.contains('=') || first.starts_with('%') || SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Option<Vec<&str>> {
        simple_words(s).map(|w| w.iter().map(|x| &*x.clone().leak()).collect())
    }

    #[test]
    fn plain_commands_are_split_at_spaces() {
        assert_eq!(words("true"), Some(vec!["true"]));
        assert_eq!(words("date +%s.%N"), Some(vec!["date", "+%s.%N"]));
        assert_eq!(words("  python3   -m pytest\t-x "), Some(vec!["python3", "-m", "pytest", "-x"]));
        assert_eq!(words("./build.sh --release a=b"), Some(vec!["./build.sh", "--release", "a=b"]));
        assert_eq!(
            words("gunicorn -b 127.0.0.1:8000 app:app"),
            Some(vec!["gunicorn", "-b", "127.0.0.1:8000", "app:app"])
        );
    }

    #[test]
    fn shell_syntax_needs_the_shell() {
        for s in [
            "echo hi",
            "a | b",
            "a && b",
            "a; b",
            "a > out",
            "cat < in",
            "echo $HOME",
            "ls *.rs",
            "ls ~",
            "x 'quoted arg'",
            "x \"quoted\"",
            "x a\\ b",
            "sleep 1 &",
            "(cd x)",
            "x # comment",
            "FOO=1 x",
            "cd sub",
            "export A=1",
            "exit 3",
            "%1",
            "if",
            "x\ny",
            "",
            "   ",
            "x `y`",
            "x {a,b}",
            "x [ab]",
        ] {
            assert_eq!(simple_words(s), None, "{s:?} must run with the shell");
        }
    }

    #[test]
    fn string_and_array_commands_become_invocations() {
        let direct = invocation(&Cmd::Shell("python3 -V".into()));
        assert_eq!(
            direct,
            Invocation { program: "python3".into(), argv: vec!["python3".into(), "-V".into()], shell: false }
        );
        let shell = invocation(&Cmd::Shell("a | b".into()));
        assert_eq!(shell.program, "/bin/sh");
        assert_eq!(shell.argv, vec!["sh", "-c", "a | b"]);
        assert!(shell.shell);
        let argv = invocation(&Cmd::Argv(vec!["echo".into(), "$x".into()]));
        assert_eq!(argv, Invocation { program: "echo".into(), argv: vec!["echo".into(), "$x".into()], shell: false });
    }
}
