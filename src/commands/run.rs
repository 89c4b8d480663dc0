//! Running the targets: the plan (or, with `-n`, its description), the reporters on a thread of their own, watch
//! mode's watcher, the process layer, and the driver on a single-threaded runtime.

use std::io::IsTerminal;
use std::sync::Arc;

use super::dry_run;
use crate::cli::{self, RunArgs};
use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::events::{self, Event, RunOutcome};
use crate::exit::{self, Failure};
use crate::report::{self, Reporter};
use crate::request::{self, Prepared};
use crate::{driver, engine, exec, fresh, watch};

pub(super) fn run(args: &RunArgs, config: Config, color: cli::ColorChoice) -> Result<i32, Failure> {
    let stdout_color = color.enabled(std::io::stdout().is_terminal());
    let request = args.request();
    let Prepared { config, plan, jobs, shard } = request::plan(config, &request)?;
    let config = Arc::new(config);
    let (checker, warning) = fresh::Checker::new(&config.root, args.force);
    // `--rerun`: the targets, a group standing for the tasks it gathers.
    let rerun = if args.rerun { plan.through_groups(&plan.targets, |p| &p.deps) } else { Vec::new() };
    let mut checker = checker.with_rerun(rerun.into_iter().map(|i| config.tasks[i].name.clone()));
    if !args.watch {
        checker.look_ahead(&config, &plan.order);
    }
    if args.dry_run {
        if let Some(w) = &warning {
            eprintln!("irun: warning: {w}; every task would run");
        }
        let verdicts = fresh::predict(&plan, &config, &checker);
        let hits = crate::cache::hits(&config, &checker, &plan, &verdicts);
        super::print(&dry_run::text(&config, &plan, jobs, &verdicts, &hits))?;
        // irun exits now: freeing what 10,000 tasks were read into, allocation by allocation, would take longer
        // than anything the plan's description needed.
        std::mem::forget((config, plan, checker));
        return Ok(exit::PASSED);
    }
    let files = ReportFiles::of(args, &config.root);
    // Reports that show each task's command and why it ran ask for them; the terminal says why only with --explain.
    let describe = args.json || files.events.is_some() || files.timings.page.is_some() || files.timings.trace.is_some();
    let options = engine::Options {
        jobs,
        keep_going: args.keep_going,
        explain: args.explain || describe,
        watch: args.watch.then_some(args.on_busy),
    };
    distinct_reports(&files, &config.source.path)?;
    let reporters = reporters(args, &files, stdout_color)?;
    let mut notices: Vec<Event> = warning
        .map(|problem| Event::StateIgnored { problem })
        .into_iter()
        .chain(shard.map(|s| Event::ShardSelected {
            shard: s.partition.shard(),
            partition: s.partition.to_string(),
            leaves: s.leaves,
            units: s.units,
        }))
        .collect();
    let mut processes = exec::start()
        .map_err(|e| Failure::Internal(format!("cannot start the guard process: {e}")))?
        .with_color(tasks_color(args, color, stdout_color));
    notices.push(processes.isolation());
    // Watches go in before anything runs, so a change made during the first run is not missed.
    let watching = if args.watch {
        // Groups have no record to compare a change with: what their sources hold now is it.
        checker.watch_groups(plan.order.iter().map(|&i| &config.tasks[i]));
        let (outputs, sources) = plan.globs(&config);
        let filter =
            crate::ignore::Filter::new(&config.root, &outputs).with_sources(&sources).with_reports(files.all());
        let (watcher, changes) = watch::start(filter, watch::Pace::new(args.debounce))
            .map_err(|problem| Failure::Internal(report::text::watch_problem(&problem)))?;
        notices.push(Event::Watching { folders: watcher.folders, root: config.root.clone() });
        Some(driver::Watching { changes, watcher, request })
    } else {
        None
    };
    let (cache, cache_warning) = crate::cache::local::LocalStore::from_env(&config.root);
    notices.extend(cache_warning.map(|problem| Event::CacheWarning { problem }));
    let (remote, remote_warning) =
        if crate::cache::enabled() { crate::cache::remote::from_env() } else { (None, None) };
    notices.extend(remote_warning.map(|problem| Event::CacheWarning { problem }));
    let plan = Arc::new(plan);
    let setup = driver::Setup { config, plan, options, checker, watching, notices, cache, remote, describe };
    let (outcome, report_failures) = drive(setup, &mut processes, reporters)?;
    processes.finish();
    Ok(match outcome {
        // A report that could not be written (said on stderr as it happened) makes a passing run fail.
        RunOutcome::Passed if !report_failures.is_empty() => exit::FAILED,
        RunOutcome::Passed => exit::PASSED,
        RunOutcome::Failed => exit::FAILED,
        RunOutcome::Interrupted(sig) => 128 + sig as i32,
    })
}

/// Whether tasks are told to colour (`FORCE_COLOR`, `CLICOLOR_FORCE`): when irun colours its output for a human.
/// `--json` is read by a program, and its `line`s (and `--events`') would carry the codes: only `--color always`, an
/// explicit request, tells tasks to colour then.
fn tasks_color(args: &RunArgs, color: cli::ColorChoice, stdout_color: bool) -> bool {
    if args.json { color == cli::ColorChoice::Always } else { stdout_color }
}

/// Run the driver on a single-threaded runtime (every child is spawned from the main thread, which lives as long
/// as irun: see [`exec::supervisor`]), with the reporters on a thread of their own. How the run went, and the
/// reports that could not be written.
fn drive(
    setup: driver::Setup,
    processes: &mut exec::Processes,
    reporters: Vec<Box<dyn Reporter>>,
) -> Result<(RunOutcome, Vec<String>), Failure> {
    let (tx, rx) = events::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Events collected while the runtime worked go to the reporters together when it goes idle.
        .on_thread_park(tx.flusher())
        .build()
        .map_err(|e| Failure::Internal(format!("cannot start the async runtime: {e}")))?;
    // Installed before any task starts: from here on SIGINT/SIGTERM/SIGHUP only set irun's own teardown going.
    let signals = {
        let _runtime = runtime.enter();
        driver::signals::Signals::install()
            .map_err(|e| Failure::Internal(format!("cannot install signal handlers ({e}); nothing was started")))?
    };
    let (closed_tx, output_closed) = tokio::sync::mpsc::unbounded_channel();
    let secrets = setup.config.secrets.clone();
    let reporting = std::thread::spawn(move || {
        driver::signals::leave_to_main_thread();
        report::drive(rx, reporters, secrets, move || {
            let _ = closed_tx.send(());
        })
    });
    let inputs = driver::Inputs { signals, output_closed };
    let outcome = runtime.block_on(driver::run(setup, tx, inputs, processes));
    // Output readers the runners gave up on (a process that escaped and kept the pipe) go with the runtime.
    drop(runtime);
    Ok((outcome, reporting.join().unwrap_or_default()))
}

/// The files the command line asks reports to write.
struct ReportFiles {
    junit: Option<std::path::PathBuf>,
    events: Option<std::path::PathBuf>,
    timings: report::timings::Outputs,
}

impl ReportFiles {
    fn all(&self) -> impl Iterator<Item = &std::path::Path> {
        [&self.junit, &self.events, &self.timings.page, &self.timings.trace].into_iter().flatten().map(|p| p.as_path())
    }

    fn of(args: &RunArgs, root: &std::path::Path) -> ReportFiles {
        let page = args.timings.as_ref().map(|p| match default_page(p) {
            true => root.join(report::timings::DEFAULT_PAGE),
            false => p.clone(),
        });
        ReportFiles {
            junit: args.junit.clone(),
            events: args.events.clone(),
            timings: report::timings::Outputs { page, trace: args.trace.clone() },
        }
    }
}

/// `--timings` without a FILE: the page goes under the project's .irun/, wherever irun runs from.
fn default_page(p: &std::path::Path) -> bool {
    p == std::path::Path::new(report::timings::DEFAULT_PAGE)
}

/// The report files (`--junit`, `--events`, `--timings`, `--trace`) each name a file of their own, and not the
/// Irun.toml irun reads: two writers of one file would interleave into something neither format can read.
fn distinct_reports(files: &ReportFiles, irun_toml: &std::path::Path) -> Result<(), Failure> {
    let files: Vec<(&str, &std::path::Path)> = [
        ("--junit", &files.junit),
        ("--events", &files.events),
        ("--timings", &files.timings.page),
        ("--trace", &files.timings.trace),
    ]
    .into_iter()
    .filter_map(|(flag, path)| path.as_deref().map(|p| (flag, p)))
    .collect();
    for (n, &(flag, path)) in files.iter().enumerate() {
        if same_file(path, irun_toml) {
            return Err(Failure::Usage(
                Diagnostic::new(format!("{flag} {} names the Irun.toml irun reads", path.display()))
                    .with_help(format!("write the report to another file, such as `{flag} report`")),
            ));
        }
        if let Some((other, other_path)) = files[..n].iter().find(|(_, p)| same_file(p, path)) {
            return Err(Failure::Usage(
                Diagnostic::new(format!(
                    "{other} {} and {flag} {} name the same file",
                    other_path.display(),
                    path.display()
                ))
                .with_help("give each report a file of its own"),
            ));
        }
    }
    Ok(())
}

/// Whether two paths name one file, however spelt (`./x`, `d/../x`, a link): the same inode if both exist, else
/// the same name in the same (resolved) folder.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        (Err(_), Err(_)) => {
            let place = |p: &std::path::Path| {
                let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                Some((std::fs::canonicalize(parent).ok()?, p.file_name()?.to_owned()))
            };
            place(a).is_some_and(|pa| place(b).is_some_and(|pb| pa == pb))
        }
        _ => false,
    }
}

/// The reporters the command line asks for. Files are created now, so a bad path stops irun before it starts
/// anything.
fn reporters(args: &RunArgs, files: &ReportFiles, color: bool) -> Result<Vec<Box<dyn Reporter>>, Failure> {
    let create = |path: &std::path::Path, what: &str| {
        std::fs::File::create(path).map_err(|e| {
            Failure::Usage(
                Diagnostic::new(format!("cannot write the {what} to {}: {e}", path.display()))
                    .with_help("check that its folder exists and is writable"),
            )
        })
    };
    let stdout = || std::io::BufWriter::new(std::io::stdout());
    let shard = args.partition.map(|p| p.shard());
    let mut out: Vec<Box<dyn Reporter>> = Vec::new();
    if args.json {
        out.push(Box::new(report::json::Json::new(stdout(), report::STDOUT).with_shard(shard.clone())));
    } else {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let opts = report::terminal::Options {
            color,
            grouped: args.output.map_or(github, |o| o == cli::OutputMode::Grouped),
            github,
            progress: args.progress == cli::ProgressChoice::Auto && std::io::stdout().is_terminal() && !in_ci,
            tail: args.tail,
            explain: args.explain,
        };
        out.push(Box::new(report::terminal::Terminal::new(stdout(), opts)));
    }
    if let Some(path) = &files.events {
        let file = create(path, "event stream")?;
        let json = report::json::Json::new(std::io::BufWriter::new(file), &path.display().to_string());
        out.push(Box::new(json.with_shard(shard.clone())));
    }
    if let Some(path) = &files.junit {
        let file = create(path, "JUnit report")?;
        out.push(Box::new(report::junit::Junit::new(path.clone(), file).with_shard(shard.clone())));
    }
    if files.timings.page.is_some() || files.timings.trace.is_some() {
        // Written whole at the end (and after each watch cycle); made now, so a bad path stops irun first.
        if let Some(page) = &files.timings.page {
            if args.timings.as_deref().is_some_and(default_page)
                && let Some(dir) = page.parent()
            {
                let _ = std::fs::create_dir_all(dir);
            }
            create(page, "timings page")?;
        }
        if let Some(trace) = &files.timings.trace {
            create(trace, "trace")?;
        }
        out.push(Box::new(report::timings::Timings::new(files.timings.clone(), shard)));
    }
    Ok(out)
}
