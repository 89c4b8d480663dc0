//! irun: a make-like task runner for tasks and long-running services.
//!
//! One run flows one way: Irun.toml → [`config`] (validated, with spans) → [`graph`] and [`plan`] (the selected
//! tasks) → [`engine`] (the run's rules: inputs in, effects out) driven by [`driver`] (the async loop) → [`exec`]
//! (processes), with [`events`] flowing to [`report`] (output). Each subcommand lives in [`commands`].

mod arguments;
mod cli;
mod commands;
mod config;
mod diagnostic;
mod driver;
mod engine;
mod events;
mod exec;
mod exit;
mod fresh;
mod graph;
mod outcome;
mod partition;
mod plan;
mod report;
mod state;
mod watch;

pub use commands::main;
