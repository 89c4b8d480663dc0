//! What irun does, one file per subcommand, and the one place the command line is dispatched.

mod cache;
mod completions;
mod dry_run;
mod explain;
#[cfg(test)]
mod fuzz;
mod graph;
mod list;
mod plan;
mod run;
mod timings;

use std::io::IsTerminal;

use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use crate::exit::{self, Failure};
use crate::request::Request;

/// Parse the command line, do what it says, and return the exit code.
///
/// Must be called from a single-threaded process (the binary's `main`): it forks irun's guard process.
pub fn main() -> i32 {
    lean_allocator();
    // Started as irun's guard process: be that, and nothing else.
    crate::exec::guard::run_if_guard();
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(d) => {
            eprintln!("{}", d.render(std::io::stderr().is_terminal()));
            return exit::USAGE;
        }
    };
    let color = cli.color;
    let dry_run = match &cli.command {
        None => cli.run.dry_run,
        Some(Command::Run(args)) => args.dry_run,
        Some(_) => false,
    };
    if dry_run {
        planning_allocator();
    }
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

/// glibc's allocator tuned for a short-lived command whose memory is mostly per-task data: one arena for all
/// threads (each thread that allocates would otherwise get one of its own, the reporters' and the look-ahead's
/// half-empty), and blocks of 128 KiB or more always mapped apart, so that a large buffer freed (a file read whole)
/// goes back to the system instead of raising the threshold and staying in the heap. At 10,000 tasks this takes
/// about 2.5 MB off the peak (bench/run's no-op and memory steps).
fn lean_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::libc;
        // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

/// `-n` reads, prints and exits, keeping what it read to the end: blocks up to 8 MiB come from the heap there, so
/// the pages of a file read whole and freed (the state, the kept Irun.toml) serve what is made next instead of new
/// ones being faulted in (about 8% of a `-n` over 10,000 tasks; its memory is not what it is for).
fn planning_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 8 << 20);
    }
}

fn execute(cli: Cli) -> Result<i32, Failure> {
    let stdout_color = cli.color.enabled(std::io::stdout().is_terminal());
    let text = match &cli.command {
        // Commands that need no Irun.toml.
        Some(Command::Completions { shell }) => completions::script(*shell),
        Some(Command::Schema) => config::schema::json(),
        Some(Command::Timings { events, html, trace }) => timings::write(events, html.as_deref(), trace.as_deref())?,
        None => return run::run(&cli.run, load(&cli)?, cli.color),
        Some(Command::Run(args)) => return run::run(args, load(&cli)?, cli.color),
        Some(Command::List { json, names }) => {
            let config = load(&cli)?;
            // A listing of a file with a dependency cycle would list tasks no run can run: the cycle is the error.
            crate::graph::TaskGraph::new(&config)?;
            list::text(&config, *json, *names, stdout_color)
        }
        Some(Command::Graph { targets, mermaid, status, .. }) => graph::text(&load(&cli)?, targets, *mermaid, *status)?,
        Some(Command::Plan { shards, scheme, partition, targets, args, .. }) => {
            let file = cli.file.as_ref().map(|f| f.display().to_string());
            let describe = plan::Describe { partition: *partition, shards: *shards, scheme: *scheme, file };
            plan::json(load(&cli)?, &asked(targets, args), &describe)?
        }
        Some(Command::Cache { action }) => cache::text(&load(&cli)?, *action)?,
        // (Irun.toml is found, not loaded: the state of a project whose Irun.toml has an error can be looked at.)
        Some(Command::State { .. }) => crate::state::json(&project_root(&cli)?).map_err(Failure::Internal)?,
        Some(Command::Explain { targets, args }) => explain::text(load(&cli)?, &asked(targets, args), stdout_color)?,
    };
    print(&text)?;
    Ok(exit::PASSED)
}

/// What `irun explain` or `irun plan` is asked about: the targets, and the arguments after `--` a run would be given.
fn asked(targets: &[String], args: &[String]) -> Request {
    Request { targets: targets.to_vec(), args: args.to_vec(), ..Request::default() }
}

/// The Irun.toml the command line names, or the nearest one up from here.
fn load(cli: &Cli) -> Result<Config, Failure> {
    Ok(config::load(&irun_toml(cli)?)?)
}

/// The folder of the Irun.toml [`load`] would load.
fn project_root(cli: &Cli) -> Result<std::path::PathBuf, Failure> {
    let path = std::path::absolute(irun_toml(cli)?)
        .map_err(|e| Failure::Internal(format!("cannot read the current directory: {e}")))?;
    Ok(path.parent().map(|p| p.to_path_buf()).unwrap_or_default())
}

fn irun_toml(cli: &Cli) -> Result<std::path::PathBuf, Failure> {
    Ok(match &cli.file {
        Some(f) => f.clone(),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| Failure::Internal(format!("cannot read the current directory: {e}")))?;
            config::find(&cwd)?
        }
    })
}

/// Write a command's output to stdout. A reader that went away (`irun list | head -1`) is not an error: irun stops
/// writing and exits 0, as `ls | head` does; any other failure to write is.
fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Internal(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
