//! The command line.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::engine::OnBusy;
use crate::request::Request;

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; write durations like 50ms, 1s or 2m"))
}

const EXAMPLES: &str = "\
Examples:
  irun                      run the `default` targets from Irun.toml
  irun http typestubs       run these tasks and everything they depend on
  irun -j1 -k               one task at a time; keep going past failures
  irun -n http              show the plan without running anything
  irun --watch http         run, then rerun what a saved file affects, until Ctrl-C
  irun http-daemon          keep a service in the foreground until Ctrl-C
  irun list                 describe every task
  irun explain setup        why setup would run, or that it is up to date
  irun -B                   run everything, up to date or not
  irun --rerun test         run test even if it is up to date (its deps only if they are not)
  irun graph --dot | dot -Tsvg > graph.svg
  irun --junit report.xml   also write a JUnit report for CI
  irun --timings            also write .irun/timings.html: the run on a timeline
  irun timings events.jsonl the same page from a run saved with --events
  irun completions zsh      shell completions

Exit codes: 0 all tasks passed, 1 a task failed, 2 usage or Irun.toml error (nothing was started),
130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP.";

#[derive(Debug, Parser)]
#[command(
    name = "irun",
    version,
    about = "Run the tasks and services declared in Irun.toml: in parallel, in dependency order, cleaned up after",
    after_help = EXAMPLES,
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Use this Irun.toml instead of searching the current directory and its parents
    #[arg(short = 'f', long = "file", value_name = "PATH", global = true)]
    pub(crate) file: Option<PathBuf>,

    /// Colour the output: auto (on a terminal, unless NO_COLOR is set), always or never
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", global = true)]
    pub(crate) color: ColorChoice,
}

/// What to run, and how: the targets, their arguments and the options of a run (`irun [OPTIONS] [TARGET]...` and
/// `irun run [OPTIONS] [NAME]...`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// Tasks to run, with everything they depend on [default: `default` in Irun.toml]
    #[arg(value_name = "TARGET")]
    pub(crate) targets: Vec<String>,

    /// Arguments for the one target that is a task: appended to its command (array commands: as items; string
    /// commands: shell-quoted)
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) args: Vec<String>,

    /// Run at most N tasks at once [default: `jobs` in Irun.toml, else the number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) jobs: Option<u32>,

    /// Keep running tasks that do not depend on a failed one, instead of stopping at the first failure
    #[arg(short = 'k', long = "keep-going")]
    pub(crate) keep_going: bool,

    /// Print the plan (which tasks would run, in which waves) and run nothing
    #[arg(short = 'n', long = "dry-run")]
    pub(crate) dry_run: bool,

    /// Run every selected task, even those that are up to date
    #[arg(short = 'B', long = "force")]
    pub(crate) force: bool,

    /// Run the named targets (a group: the tasks it gathers) even if they are up to date; their deps run only if
    /// they are not [default targets: `default` in Irun.toml]
    #[arg(long, conflicts_with = "force")]
    pub(crate) rerun: bool,

    /// Say why each task runs (or is skipped as up to date) as the run goes
    #[arg(long)]
    pub(crate) explain: bool,

    /// Run the targets, then watch the project and rerun the tasks whose `sources` change (and their dependents)
    #[arg(short = 'w', long)]
    pub(crate) watch: bool,

    /// With --watch: how long changes must pause before a cycle starts [default: 10ms once every file written has
    /// been closed, 50ms otherwise]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "watch")]
    pub(crate) debounce: Option<std::time::Duration>,

    /// With --watch: on a change during a cycle, restart the affected tasks at once, or queue one more cycle
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = OnBusy::Restart, requires = "watch")]
    pub(crate) on_busy: OnBusy,

    /// Task output: `prefixed` (lines as they come, with the task's name) or `grouped` (each task's output together
    /// when it finishes, failures last) [default: prefixed; grouped under GitHub Actions]
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) output: Option<OutputMode>,

    /// How many of a failed task's last lines of output the summary shows (lines naming a `file:line` that scrolled
    /// out of them are kept too); 0: none
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) tail: usize,

    /// The live status area: `auto` (on a terminal, unless CI is set) or `never`
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ProgressChoice::Auto)]
    pub(crate) progress: ProgressChoice,

    /// Print events as JSON lines on stdout, instead of the human-readable output
    #[arg(long, conflicts_with = "events")]
    pub(crate) json: bool,

    /// Also write events as JSON lines to FILE
    #[arg(long, value_name = "FILE")]
    pub(crate) events: Option<PathBuf>,

    /// Run one shard of the plan: `slice:K/N` deals the leaf tasks (those nothing else in the plan needs) in plan
    /// order, `hash:K/N` places each by a stable hash of its name; a shard runs its leaves and what they depend on
    #[arg(long, value_name = "SCHEME:K/N", value_parser = crate::partition::parse, conflicts_with = "watch")]
    pub(crate) partition: Option<crate::partition::Partition>,

    /// With --partition: refuse to run (exit 2) unless the plan's hash (from `irun plan --json`) is HASH
    #[arg(long, value_name = "HASH", requires = "partition")]
    pub(crate) expect_plan: Option<String>,

    /// Write a JUnit XML report (one test case per task) to FILE
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,

    /// Write a timings page: one self-contained HTML file with every task on its job slot over time, waits, the
    /// critical path and a sortable table [default FILE: .irun/timings.html]
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = crate::report::timings::DEFAULT_PAGE)]
    pub(crate) timings: Option<PathBuf>,

    /// Write the run as a Chrome trace-event file (for Perfetto or chrome://tracing) to FILE
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,
}

impl RunArgs {
    /// What these arguments ask to run.
    pub(crate) fn request(&self) -> Request {
        Request {
            targets: self.targets.clone(),
            args: self.args.clone(),
            jobs: self.jobs.map(|j| j as usize),
            partition: self.partition,
            expect_plan: self.expect_plan.clone(),
        }
    }
}

/// Options (and targets) that only mean something when tasks run, with their flag as written in `--help`.
const RUN_ONLY: &[(&str, &str)] = &[
    ("targets", "a TARGET"),
    ("args", "arguments after `--`"),
    ("jobs", "-j/--jobs"),
    ("keep_going", "-k/--keep-going"),
    ("dry_run", "-n/--dry-run"),
    ("force", "-B/--force"),
    ("rerun", "--rerun"),
    ("explain", "--explain"),
    ("watch", "-w/--watch"),
    ("debounce", "--debounce"),
    ("on_busy", "--on-busy"),
    ("output", "--output"),
    ("progress", "--progress"),
    ("tail", "--tail"),
    ("json", "--json"),
    ("events", "--events"),
    ("junit", "--junit"),
    ("timings", "--timings"),
    ("trace", "--trace"),
    ("partition", "--partition"),
    ("expect_plan", "--expect-plan"),
];

impl Cli {
    /// Parse the command line (exiting on `--help`, `--version` and clap's own errors). `-f` and `--color` work
    /// before and after a subcommand; an option that only applies to a run, given with a subcommand, is an error
    /// rather than silently ignored.
    pub(crate) fn parse_args() -> Result<Cli, crate::diagnostic::Diagnostic> {
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Some((sub, _)) = matches.subcommand().filter(|(sub, _)| *sub != "run")
            && let Some((_, flag)) =
                RUN_ONLY.iter().find(|(id, _)| matches.value_source(id) == Some(ValueSource::CommandLine))
        {
            return Err(crate::diagnostic::Diagnostic::new(format!(
                "{flag} applies to running tasks, not to `irun {sub}`"
            ))
            .with_help(format!("leave it out, or run tasks without `{sub}`: `irun [OPTIONS] [TARGET]...`")));
        }
        // `irun run NAME...` is a run like any other; it only lets a task be named like a subcommand. Its options go
        // after `run` (those before it would be dropped).
        if let (Some((_, _)), Some((_, flag))) = (
            matches.subcommand().filter(|(sub, _)| *sub == "run"),
            RUN_ONLY.iter().find(|(id, _)| matches.value_source(id) == Some(ValueSource::CommandLine)),
        ) {
            return Err(crate::diagnostic::Diagnostic::new(format!("{flag} before `run` would be ignored"))
                .with_help(format!("put it after `run`: `irun run {flag} ...`, or leave `run` out")));
        }
        Ok(cli)
    }
}

/// What `irun cache` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CacheAction {
    Status,
    Clean,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run tasks, as `irun [TARGET]...` does; for a task named like a subcommand: `irun run list`
    Run(RunArgs),
    /// List tasks with their descriptions, deps and kind (task, service or group)
    List {
        /// One JSON document: every task's name, kind, description, command, deps, sources, outputs, readiness
        /// probe, and whether it is a default target
        #[arg(long, conflicts_with = "names")]
        json: bool,
        /// Only the task names, one per line (for shell completion and scripts)
        #[arg(long)]
        names: bool,
    },
    /// Say, for these tasks and their deps, whether each would run or is up to date, and why
    Explain {
        /// Tasks to explain [default: `default` in Irun.toml]
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
        /// Arguments for the one target that is a task, as a run would be given them
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Print a shell completion script: `irun completions bash > /etc/bash_completion.d/irun`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of Irun.toml (for editors: completion and validation)
    Schema,
    /// The local cache under .irun/cache: `status` (entries, size, limit, location) or `clean` (remove every entry)
    Cache {
        #[arg(value_enum)]
        action: CacheAction,
    },
    /// Print what irun remembers of each task (.irun/state.bin) as one JSON document: how its last run ended and
    /// took, and the record its up-to-date checks compare with (settings' hashes, file stamps, deps)
    State {
        /// JSON output (the only form)
        #[arg(long, required = true)]
        json: bool,
    },
    /// Print the plan as one JSON document (tasks, waves, leaf tasks, the plan's hash and, with --shards or
    /// --partition, each shard's tasks and the `irun` arguments that run it), for a CI job matrix
    Plan {
        /// JSON output (the only form)
        #[arg(long, required = true)]
        json: bool,
        /// Describe this many shards (at most 10000; shards past the plan's leaf tasks are empty)
        #[arg(
            long,
            value_name = "N",
            value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::partition::MAX_SHARDS)),
            conflicts_with = "partition"
        )]
        shards: Option<u32>,
        /// With --shards: deal the leaf tasks in plan order (`slice`) or by a hash of their names (`hash`)
        #[arg(long, value_enum, default_value_t = crate::partition::Scheme::Slice, requires = "shards")]
        scheme: crate::partition::Scheme,
        /// Describe this one shard
        #[arg(long, value_name = "SCHEME:K/N", value_parser = crate::partition::parse)]
        partition: Option<crate::partition::Partition>,
        /// Tasks to plan [default: `default` in Irun.toml]
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
        /// Arguments for the one target that is a task, as a run would be given them (repeated in each shard's)
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Make the timings page, or a trace, from the events of runs saved with `--events` (a CI artifact; the files of
    /// several shards give a section each)
    Timings {
        /// Events files, as `irun --events FILE` writes them
        #[arg(value_name = "EVENTS", required = true)]
        events: Vec<PathBuf>,
        /// Write the page to FILE [default, without --trace: the first EVENTS file with `.html` for its extension]
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Write a Chrome trace-event file (for Perfetto or chrome://tracing) to FILE
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Print the task graph; edges point from a dependency to the task that depends on it
    Graph {
        /// Graphviz DOT output (the default)
        #[arg(long, conflicts_with = "mermaid")]
        dot: bool,
        /// A Mermaid flowchart instead of DOT
        #[arg(long)]
        mermaid: bool,
        /// Colour tasks by the result of their last run (from irun's state)
        #[arg(long)]
        status: bool,
        /// Only these tasks and what they depend on
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputMode {
    Prefixed,
    Grouped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressChoice {
    Auto,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that is (or is not) a terminal.
    pub(crate) fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_terminal
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}
