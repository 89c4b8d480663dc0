//! irun: a make-like task runner for tasks and long-running services.
//!
//! One run flows one way: Irun.toml → [`config`] (validated, with spans) → [`request`] (the command line's targets,
//! through [`graph`], to a [`plan`]) → [`engine`] (the run's rules: inputs in, effects out) driven by [`driver`] (the async loop) → [`exec`]
//! (processes), with [`events`] flowing to [`report`] (output). Each subcommand lives in [`commands`].

mod arguments;
mod cache;
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
mod ignore;
mod outcome;
mod partition;
mod plan;
mod report;
mod request;
mod state;
mod testcases;
mod watch;

pub use commands::main;
