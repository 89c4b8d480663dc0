//! `irun completions SHELL`: clap's completion script for the options and subcommands, plus completion of task
//! names (from `irun list --names`, run in the directory being completed in) where a run, `irun run`, `explain`,
//! `graph` or `plan` takes targets. Names are only ever compared, never evaluated by the shell.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

pub(crate) fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "irun", &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    match shell {
        Shell::Bash => bash(&script),
        Shell::Zsh => zsh(&script),
        Shell::Fish => format!("{script}{FISH}"),
        _ => script,
    }
}

/// Wrap clap's `_irun`: where a word that is not an option (or an option's value) is completed, for a run or a
/// subcommand that takes targets, add the task names.
const BASH: &str = r#"
_irun_tasks() {
    _irun "$@"
    # The word being completed as typed: bash splits `build:web` at the colon.
    local line="${COMP_LINE:0:COMP_POINT}"
    local word="${line##*[[:space:]]}" prev="${COMP_WORDS[COMP_CWORD-1]}" w name
    [[ "$word" == -* ]] && return 0
    case "$prev" in
        -f|--file|-j|--jobs|--debounce|--on-busy|--output|--tail|--progress|--events|--junit|--color) return 0 ;;
        --partition|--expect-plan|--shards|--scheme) return 0 ;;
    esac
    for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
        case "$w" in
            --|list|completions|schema|help) return 0 ;;
        esac
    done
    # Names are compared, never evaluated (a task name is text from Irun.toml); readline replaces only what follows
    # the word's last colon, so that much is left out of each candidate.
    local head="${word%"${word##*:}"}"
    while IFS= read -r name; do
        [[ "$name" == "$word"* ]] && COMPREPLY+=("${name#"$head"}")
    done < <(irun list --names 2>/dev/null)
    return 0
}
"#;

fn bash(script: &str) -> String {
    let wired = script.replace("complete -F _irun ", "complete -F _irun_tasks ");
    format!("{wired}{BASH}")
}

const ZSH: &str = r#"
(( $+functions[_irun_tasks] )) ||
_irun_tasks() {
    local -a tasks
    tasks=(${(f)"$(irun list --names 2>/dev/null)"})
    # `_describe` reads `name:description`: a colon in a name is escaped.
    tasks=(${tasks//:/\\:})
    _describe -t tasks 'task' tasks
}

"#;

/// Complete targets with task names instead of files, and define the function that lists them.
fn zsh(script: &str) -> String {
    let wired: String = script
        .lines()
        .map(|line| {
            if line.contains("targets -- ") && line.ends_with(":_default' \\") {
                format!("{}:_irun_tasks' \\\n", line.trim_end_matches(":_default' \\"))
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    match wired.rfind("if [ \"$funcstack[1]\" = \"_irun\" ]") {
        Some(at) => format!("{}{ZSH}{}", &wired[..at], &wired[at..]),
        None => format!("{wired}{ZSH}"),
    }
}

const FISH: &str = r#"
# Task names, from the Irun.toml of the directory being completed in.
complete -c irun -n "__fish_irun_needs_command" -f -a "(irun list --names 2>/dev/null)" -d task
complete -c irun -n "__fish_seen_subcommand_from run explain graph plan" -f -a "(irun list --names 2>/dev/null)" -d task
"#;
