//! Running the targets: the dry run, the reporters, watch mode's watcher, the guard, and the driver.

use std::io::IsTerminal;
use std::sync::Arc;

use crate::cli::{self, Cli};
use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::engine;
use crate::events::{self, RunOutcome};
use crate::exit::{self, Failure};
use crate::graph::TaskGraph;
use crate::plan::Plan;
use crate::{driver, fresh, guard, report, supervisor, watch};

pub fn run(cli: &Cli, mut config: Config, stdout_color: bool) -> Result<i32, Failure> {
    crate::arguments::apply(&mut config, &cli.run.targets, &cli.run.args)?;
    let graph = TaskGraph::new(&config)?;
    let mut targets = crate::plan::targets(&config, &graph, &cli.run.targets)?;
    let mut shard_notice = None;
    if let Some(p) = cli.run.partition {
        // One shard: its leaf tasks become the targets, after the whole plan's hash is checked.
        let whole = Plan::new(&graph, &targets);
        let hash = crate::partition::plan_hash(&whole);
        if let Some(expected) = cli.run.expect_plan.as_deref().filter(|e| *e != hash) {
            return Err(Failure::Usage(
                Diagnostic::new(format!(
                    "this plan's hash is {hash}, not {expected}: shard {} was planned from a different Irun.toml \
                     or other targets",
                    p.shard()
                ))
                .with_help("run `irun plan --json` again on this checkout, and start every shard from its output"),
            ));
        }
        let leaves = crate::partition::leaves(&whole).len();
        let units = crate::partition::units_of(&whole, p);
        if units.is_empty() {
            // An empty run all the same: reports (JSON, JUnit) are written as for any shard.
            shard_notice =
                Some(format!("shard {} ({p}) has none of the plan's {leaves} leaf tasks: nothing to run", p.shard()));
        } else {
            let names: Vec<&str> = units.iter().map(|&u| config.tasks[u].name.as_str()).collect();
            shard_notice = Some(format!(
                "shard {} ({p}): {} of the plan's {leaves} leaf tasks: {}",
                p.shard(),
                units.len(),
                names.join(", ")
            ));
        }
        targets = units;
    }
    let plan = Plan::new(&graph, &targets);
    let jobs = cli.run.jobs.map(|j| j as usize).or(config.jobs).unwrap_or_else(default_jobs);
    let (checker, warning) = fresh::Checker::new(&config.root, cli.run.force);
    if cli.run.dry_run {
        if let Some(w) = &warning {
            eprintln!("irun: warning: {w}; every task would run");
        }
        let verdicts = fresh::predict(&plan, &config, &checker);
        super::print(&plan.describe(&graph, jobs, &verdicts))?;
        return Ok(exit::PASSED);
    }
    drop(graph);
    let options = engine::Options {
        jobs,
        keep_going: cli.run.keep_going,
        explain: cli.run.explain,
        watch: cli.run.watch.then_some(cli.run.on_busy),
    };
    let reporters = reporters(cli, stdout_color)?;
    let warning = warning.map(|w| format!("warning: {w}; running every task, as if none had run before"));

    // Children irun has before it starts anything are not its tasks'; then the guard, before any task.
    supervisor::note_inherited_children();
    crate::spawn::prepare();
    guard::start().map_err(|e| Failure::Internal(format!("cannot start the guard process: {e}")))?;
    supervisor::become_subreaper();
    // Watches go in before anything runs, so a change made during the first run is not missed.
    let mut notices: Vec<String> = warning.into_iter().chain(shard_notice).collect();
    let watching = if cli.run.watch {
        let outputs: Vec<String> = plan.order.iter().flat_map(|&i| config.tasks[i].outputs().iter().cloned()).collect();
        let sources: Vec<String> = plan.order.iter().flat_map(|&i| config.tasks[i].sources().iter().cloned()).collect();
        let filter = watch::Filter::new(&config.root, &outputs).with_sources(&sources);
        let (watcher, changes) = watch::start(filter, watch::Pace::new(cli.run.debounce)).map_err(Failure::Internal)?;
        notices.push(format!(
            "watching {} folder{} under {} for changes (Ctrl-C to stop)",
            watcher.folders,
            if watcher.folders == 1 { "" } else { "s" },
            config.root.display()
        ));
        Some(driver::Watching {
            changes,
            watcher,
            targets: cli.run.targets.clone(),
            args: cli.run.args.clone(),
            cli_jobs: cli.run.jobs.map(|j| j as usize),
        })
    } else {
        None
    };
    // One thread: every child is spawned from the main thread, which lives as long as irun (see supervisor::spawn).
    let (tx, rx) = events::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Events collected while the runtime worked go to the reporters together when it goes idle.
        .on_thread_park(tx.flusher())
        .build()
        .map_err(|e| Failure::Internal(format!("cannot start the async runtime: {e}")))?;
    let (closed_tx, output_closed) = tokio::sync::mpsc::unbounded_channel();
    let reporting = std::thread::spawn(move || {
        crate::signals::leave_to_main_thread();
        report::drive(rx, reporters, move || {
            let _ = closed_tx.send(());
        })
    });
    let setup = driver::Setup {
        config: Arc::new(config),
        plan: Arc::new(plan),
        options,
        checker,
        events: tx,
        watching,
        notices,
        output_closed,
    };
    let outcome = runtime.block_on(driver::run(setup));
    // Output readers the runners gave up on (a process that escaped and kept the pipe) go with the runtime.
    drop(runtime);
    let report_failures = reporting.join().unwrap_or_default();
    guard::finish();
    Ok(match outcome {
        // A report that could not be written (said on stderr as it happened) makes a passing run fail.
        RunOutcome::Passed if !report_failures.is_empty() => exit::FAILED,
        RunOutcome::Passed => exit::PASSED,
        RunOutcome::Failed => exit::FAILED,
        RunOutcome::Interrupted(sig) => 128 + sig as i32,
    })
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
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
    let shard = cli.run.partition.map(|p| p.shard());
    let mut out: Vec<Box<dyn report::Reporter>> = Vec::new();
    if cli.run.json {
        out.push(Box::new(report::json::Json::new(stdout(), report::STDOUT).with_shard(shard.clone())));
    } else {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let opts = report::terminal::Options {
            color,
            grouped: cli.run.output.map_or(github, |o| o == cli::OutputMode::Grouped),
            github,
            progress: cli.run.progress == cli::ProgressChoice::Auto && std::io::stdout().is_terminal() && !in_ci,
            tail: cli.run.tail,
        };
        out.push(Box::new(report::terminal::Terminal::new(stdout(), opts)));
    }
    if let Some(path) = &cli.run.events {
        let file = create(path, "event stream")?;
        let json = report::json::Json::new(std::io::BufWriter::new(file), &path.display().to_string());
        out.push(Box::new(json.with_shard(shard.clone())));
    }
    if let Some(path) = &cli.run.junit {
        let file = create(path, "JUnit report")?;
        out.push(Box::new(report::junit::Junit::new(path.clone(), file).with_shard(shard.clone())));
    }
    Ok(out)
}
