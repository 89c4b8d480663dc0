//! irun: a make-like task runner for tasks and long-running services.
//!
//! One run flows one way: Irun.toml → [`config`] (validated, with spans) → [`graph`] (DAG) → [`plan`] (the selected
//! subgraph) → [`scheduler`] (the run, emitting [`events`]) → [`runner`] / [`supervisor`] (processes) and
//! [`report`] (output).

pub mod cli;
pub mod config;
pub mod diagnostic;
pub mod events;
pub mod fresh;
pub mod graph;
pub mod guard;
pub mod output;
pub mod plan;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod state;
pub mod supervisor;
pub mod watch;

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::events::RunOutcome;
use crate::graph::TaskGraph;
use crate::plan::Plan;

/// irun's documented exit codes.
pub mod exit {
    pub const PASSED: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
}

/// Parse the command line, do what it says, and return the exit code.
///
/// Must be called from a single-threaded process (the binary's `main`): it forks irun's guard process.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let color = cli.color;
    match execute(cli) {
        Ok(code) => code,
        Err(Failure::Usage(d)) => {
            eprintln!("{}", d.render(color.enabled(std::io::stderr().is_terminal())));
            exit::USAGE
        }
        Err(Failure::Internal(message)) => {
            eprintln!("irun: error: {message}");
            exit::FAILED
        }
    }
}

enum Failure {
    /// Bad command line or Irun.toml: nothing was started.
    Usage(Diagnostic),
    /// irun itself could not do its job (no runtime, no guard process).
    Internal(String),
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure::Usage(d)
    }
}

fn execute(cli: Cli) -> Result<i32, Failure> {
    // Commands that need no Irun.toml.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut Cli::command(), "irun", &mut std::io::stdout());
            return Ok(exit::PASSED);
        }
        Some(Command::Schema) => {
            print!("{}", config::JSON_SCHEMA);
            return Ok(exit::PASSED);
        }
        _ => {}
    }
    let path = match &cli.file {
        Some(f) => f.clone(),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| Failure::Internal(format!("cannot read the current directory: {e}")))?;
            config::find(&cwd)?
        }
    };
    let config = config::load(&path)?;
    let graph = TaskGraph::new(&config)?;
    let stdout_color = cli.color.enabled(std::io::stdout().is_terminal());

    match &cli.command {
        Some(Command::List) => {
            print!("{}", list(&config, stdout_color));
            Ok(exit::PASSED)
        }
        Some(Command::Graph { targets, mermaid, status, .. }) => {
            let selected = if targets.is_empty() { None } else { Some(graph.select(&graph.resolve(targets)?)) };
            let last_runs = status.then(|| {
                let (state, warning) = state::State::load(&config.root);
                if let Some(w) = warning {
                    eprintln!("irun: warning: {w}; showing every task as never run");
                }
                // Tasks with sources that stayed up to date since the state had a `last` table: their record says.
                let from_records: Vec<(String, state::LastRun)> = state
                    .tasks
                    .iter()
                    .filter(|(name, r)| !state.last.contains_key(*name) && !r.command.is_empty())
                    .map(|(name, r)| {
                        let last = match (r.unfinished, r.ok) {
                            (true, _) => state::LastRun::Unfinished,
                            (false, true) => state::LastRun::Ok,
                            (false, false) => state::LastRun::Failed,
                        };
                        (name.clone(), last)
                    })
                    .collect();
                state
                    .last
                    .into_iter()
                    .chain(from_records)
                    .map(|(name, last)| {
                        let last = match last {
                            state::LastRun::Ok => graph::LastRun::Ok,
                            state::LastRun::Failed => graph::LastRun::Failed,
                            state::LastRun::Unfinished => graph::LastRun::Unfinished,
                        };
                        (name, last)
                    })
                    .collect()
            });
            let text = if *mermaid {
                graph.to_mermaid(selected.as_deref(), last_runs.as_ref())
            } else {
                graph.to_dot(selected.as_deref(), last_runs.as_ref())
            };
            print!("{text}");
            Ok(exit::PASSED)
        }
        Some(Command::Completions { .. } | Command::Schema) => unreachable!("handled above"),
        Some(Command::Explain { targets }) => {
            let targets = resolve_targets(&config, &graph, targets)?;
            let plan = Plan::new(&graph, &targets);
            let (checker, warning) = fresh::Checker::new(&config.root, false);
            if let Some(w) = warning {
                eprintln!("irun: warning: {w}; every task would run");
            }
            print!("{}", explain(&plan, &config, &checker, stdout_color));
            Ok(exit::PASSED)
        }
        None => {
            let targets = resolve_targets(&config, &graph, &cli.targets)?;
            let plan = Plan::new(&graph, &targets);
            let jobs = cli
                .jobs
                .map(|j| j as usize)
                .or(config.jobs)
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
            let (checker, warning) = fresh::Checker::new(&config.root, cli.force);
            if cli.dry_run {
                if let Some(w) = &warning {
                    eprintln!("irun: warning: {w}; every task would run");
                }
                let verdicts = fresh::predict(&plan, &config, &checker);
                print!("{}", plan.describe(&graph, jobs, &verdicts));
                return Ok(exit::PASSED);
            }
            let options = scheduler::Options { jobs, keep_going: cli.keep_going, explain: cli.explain };
            let reporters = reporters(&cli, stdout_color)?;
            drop(graph);
            let watch = cli.watch.then_some(WatchSettings { debounce: cli.debounce, on_busy: cli.on_busy });
            let warning = warning.map(|w| format!("warning: {w}; running every task, as if none had run before"));
            let outcome = run_plan(config, &plan, &options, checker, warning, watch, reporters)?;
            Ok(match outcome {
                RunOutcome::Passed => exit::PASSED,
                RunOutcome::Failed => exit::FAILED,
                RunOutcome::Interrupted(sig) => 128 + sig as i32,
            })
        }
    }
}

/// The reporters the command line asks for. Files are created now, so a bad path stops irun before it starts
/// anything.
fn reporters(cli: &Cli, color: bool) -> Result<Vec<Box<dyn report::Reporter>>, Failure> {
    let create = |path: &std::path::Path, what: &str| {
        std::fs::File::create(path).map_err(|e| {
            Failure::Usage(
                Diagnostic::new(format!("cannot write the {what} to {}: {e}", path.display()))
                    .with_help("check that its folder exists and is writable"),
            )
        })
    };
    let stdout = || std::io::BufWriter::new(std::io::stdout());
    let mut out: Vec<Box<dyn report::Reporter>> = Vec::new();
    if cli.json {
        out.push(Box::new(report::json::Json::new(stdout())));
    } else {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let opts = report::terminal::Options {
            color,
            grouped: cli.output.map_or(github, |o| o == cli::OutputMode::Grouped),
            github,
            progress: cli.progress == cli::ProgressChoice::Auto && std::io::stdout().is_terminal() && !in_ci,
        };
        out.push(Box::new(report::terminal::Terminal::new(stdout(), opts)));
    }
    if let Some(path) = &cli.events {
        let file = create(path, "event stream")?;
        out.push(Box::new(report::json::Json::new(std::io::BufWriter::new(file))));
    }
    if let Some(path) = &cli.junit {
        let file = create(path, "JUnit report")?;
        out.push(Box::new(report::junit::Junit::new(path.clone(), file)));
    }
    Ok(out)
}

/// The command line's targets, else the `default` ones, as task indices.
fn resolve_targets(config: &Config, graph: &TaskGraph<'_>, named: &[String]) -> Result<Vec<usize>, Failure> {
    if !named.is_empty() {
        return Ok(graph.resolve(named)?);
    }
    match &config.default {
        Some(d) => Ok(graph.resolve(&d.iter().map(|n| n.name.clone()).collect::<Vec<_>>())?),
        None => {
            let names: Vec<&str> = config.tasks.iter().map(|t| t.name.as_str()).collect();
            Err(Diagnostic::new(format!("no targets given, and {} has no `default`", config.source.path.display()))
                .with_help(format!(
                    "name tasks to run (defined: {}), or add `default = [\"...\"]` to Irun.toml",
                    names.join(", ")
                ))
                .into())
        }
    }
}

/// The `irun explain` text: one line per task, in the order they would run.
fn explain(plan: &Plan, config: &Config, checker: &fresh::Checker, color: bool) -> String {
    let verdicts = fresh::predict(plan, config, checker);
    let width = plan.order.iter().map(|&i| plan.names[i].chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for &i in &plan.order {
        let (text, style) = match &verdicts[i] {
            None => (
                format!(
                    "group of {}",
                    config.tasks[i].deps.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
                anstyle::Style::new().dimmed(),
            ),
            Some(fresh::Verdict::UpToDate) => ("up to date".to_string(), anstyle::AnsiColor::Green.on_default()),
            Some(fresh::Verdict::Run(why)) => (format!("will run: {why}"), anstyle::AnsiColor::Yellow.on_default()),
        };
        let text = if color { format!("{}{text}{}", style.render(), style.render_reset()) } else { text };
        out.push_str(&format!("{:<width$}  {text}\n", plan.names[i]));
    }
    out
}

struct WatchSettings {
    debounce: std::time::Duration,
    on_busy: scheduler::OnBusy,
}

#[allow(clippy::too_many_arguments)]
fn run_plan(
    config: Config,
    plan: &Plan,
    options: &scheduler::Options,
    checker: fresh::Checker,
    warning: Option<String>,
    watch: Option<WatchSettings>,
    reporters: Vec<Box<dyn report::Reporter>>,
) -> Result<RunOutcome, Failure> {
    // The guard is forked first, while irun has a single thread (the watcher starts threads of its own).
    guard::start().map_err(|e| Failure::Internal(format!("cannot start the guard process: {e}")))?;
    supervisor::become_subreaper();
    // Watches go in before anything runs, so a change made during the first run is not missed.
    let (_watcher, watching, armed) = match watch {
        None => (None, None, None),
        Some(settings) => {
            let outputs: Vec<String> =
                plan.order.iter().flat_map(|&i| config.tasks[i].outputs.iter().cloned()).collect();
            let filter = watch::Filter::new(&config.root, &outputs);
            let (watcher, changes) = watch::start(filter, settings.debounce).map_err(Failure::Internal)?;
            let sources = config.tasks.iter().map(|t| config::glob_set(&t.sources)).collect();
            let armed = format!(
                "watching {} folder{} under {} for changes (Ctrl-C to stop)",
                watcher.folders,
                if watcher.folders == 1 { "" } else { "s" },
                config.root.display()
            );
            let watching = scheduler::Watching { changes, sources, on_busy: settings.on_busy };
            (Some(watcher), Some(watching), Some(armed))
        }
    };
    // One thread: every child is spawned from the main thread, which lives as long as irun (see supervisor::spawn).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Internal(format!("cannot start the async runtime: {e}")))?;
    let config = Arc::new(config);
    let (tx, rx) = events::channel();
    let reporting = std::thread::spawn(move || report::drive(rx, reporters));
    let notices: Vec<String> = [warning, armed].into_iter().flatten().collect();
    let outcome = runtime.block_on(scheduler::run(config, plan, options, checker, tx, watching, notices));
    // Output readers the runners gave up on (a process that escaped and kept the pipe) go with the runtime.
    drop(runtime);
    let _ = reporting.join();
    guard::finish();
    Ok(outcome)
}

/// The `irun list` text.
fn list(config: &Config, color: bool) -> String {
    let width = config.tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
    let bold = anstyle::Style::new().bold();
    let dim = anstyle::Style::new().dimmed();
    let paint = |s: anstyle::Style, t: &str| {
        if color { format!("{}{t}{}", s.render(), s.render_reset()) } else { t.to_string() }
    };
    let mut out = String::new();
    for t in &config.tasks {
        let mut line = format!("{} {:<7}", paint(bold, &format!("{:<width$}", t.name)), t.kind());
        if let Some(d) = &t.description {
            line.push_str(&format!(" {d}"));
        }
        let mut extra = Vec::new();
        if !t.deps.is_empty() {
            extra.push(format!("deps: {}", t.deps.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")));
        }
        if let Some(svc) = &t.service {
            match &svc.ready {
                Some(p) => extra.push(format!("ready when {}", p.check.describe())),
                None => extra.push("ready once started".into()),
            }
        }
        if !extra.is_empty() {
            line.push_str(&format!(" {}", paint(dim, &format!("[{}]", extra.join("; ")))));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(d) = &config.default {
        out.push_str(&format!("default: {}\n", d.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")));
    }
    out
}
