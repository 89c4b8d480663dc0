//! irun: a make-like task runner for tasks and long-running services.
//!
//! One run flows one way: Irun.toml → [`config`] (validated, with spans) → [`graph`] (DAG) → [`plan`] (the selected
//! subgraph) → [`engine`] (the run's rules: inputs in, effects out) driven by [`driver`] (the async loop) →
//! [`runner`] / [`supervisor`] (processes), with [`events`] flowing to [`report`] (output). Each subcommand lives
//! in [`commands`]; this file only wires them.

pub mod arguments;
pub mod cli;
pub mod command_line;
pub mod commands;
pub mod config;
pub mod diagnostic;
pub mod driver;
pub mod engine;
pub mod events;
pub mod exit;
pub mod fresh;
pub mod graph;
pub mod guard;
pub mod outcome;
pub mod output;
pub mod partition;
pub mod plan;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod signals;
pub mod spawn;
pub mod state;
pub mod supervisor;
pub mod watch;

use std::io::IsTerminal;

use crate::cli::{Cli, Command};
use crate::exit::Failure;
use crate::graph::TaskGraph;
use crate::plan::Plan;

/// Parse the command line, do what it says, and return the exit code.
///
/// Must be called from a single-threaded process (the binary's `main`): it forks irun's guard process.
pub fn main() -> i32 {
    // Started as irun's guard process: be that, and nothing else.
    guard::run_if_guard();
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(d) => {
            eprintln!("{}", d.render(std::io::stderr().is_terminal()));
            return exit::USAGE;
        }
    };
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

fn execute(cli: Cli) -> Result<i32, Failure> {
    // Commands that need no Irun.toml.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            commands::print(&commands::completions::script(*shell))?;
            return Ok(exit::PASSED);
        }
        Some(Command::Schema) => {
            commands::print(&config::schema::json())?;
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
    let stdout_color = cli.color.enabled(std::io::stdout().is_terminal());
    if cli.command.is_none() {
        return commands::run::run(&cli, config, stdout_color);
    }
    let graph = TaskGraph::new(&config)?;

    match &cli.command {
        Some(Command::List { json, names }) => {
            let text = match (json, names) {
                (true, _) => commands::list::json(&config),
                (_, true) => commands::list::names(&config),
                _ => commands::list::text(&config, stdout_color),
            };
            commands::print(&text)?;
            Ok(exit::PASSED)
        }
        Some(Command::Graph { targets, mermaid, status, .. }) => {
            let selected = if targets.is_empty() { None } else { Some(graph.select(&graph.resolve(targets)?)) };
            commands::print(&commands::graph::text(&config, &graph, selected.as_deref(), *mermaid, *status))?;
            Ok(exit::PASSED)
        }
        Some(Command::Plan { shards, scheme, partition, targets, .. }) => {
            let plan = Plan::new(&graph, &plan::targets(&config, &graph, targets)?);
            let scheme = match scheme {
                cli::SchemeChoice::Slice => partition::Scheme::Slice,
                cli::SchemeChoice::Hash => partition::Scheme::Hash,
            };
            let file = cli.file.as_ref().map(|f| f.display().to_string());
            let req = commands::plan::Request {
                partition: *partition,
                shards: *shards,
                scheme,
                targets,
                file: file.as_deref(),
            };
            commands::print(&commands::plan::json(&graph, &plan, &req))?;
            Ok(exit::PASSED)
        }
        Some(Command::Completions { .. } | Command::Schema | Command::Run(_)) => unreachable!("handled above"),
        Some(Command::Explain { targets }) => {
            let targets = plan::targets(&config, &graph, targets)?;
            let plan = Plan::new(&graph, &targets);
            let (checker, warning) = fresh::Checker::new(&config.root, false);
            if let Some(w) = warning {
                eprintln!("irun: warning: {w}; every task would run");
            }
            commands::print(&commands::explain::text(&plan, &config, &checker, stdout_color))?;
            Ok(exit::PASSED)
        }
        None => unreachable!("handled above"),
    }
}
