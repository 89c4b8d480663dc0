//! Integration tests: the real irun binary on Irun.toml files in temporary directories.
//! All in one binary (one link step); each module covers one area.

mod gate;
mod harness;

mod arguments;
mod cache;
mod cache_server;
mod cli;
mod config_errors;
mod cycles;
mod database;
mod discovery;
mod escapees;
mod examples;
mod faults;
mod fingerprints;
mod junit_files;
mod layout;
mod loading;
mod memory;
mod output;
mod partition;
mod ports;
mod probes;
mod remote_cache;
mod reporting;
mod restarts;
mod scheduling;
mod secrets;
mod services;
mod spawning;
mod stat_shortcut;
mod stopping;
mod suite;
mod teardown;
mod terminal;
mod timings;
mod uptodate;
mod variables;
mod watch;
mod watch_content;
