//! `irun explain`: for each task, in the order they would run, up to date or the first reason it would run, and
//! what its fingerprint holds, with the parts that changed since it last ran.

use crate::config::Config;
use crate::exit::Failure;
use crate::fresh::{self, Checker, Verdict};
use crate::report::text;
use crate::request::{self, Request};

/// `request`: the targets, and the arguments after `--` (which change the command, so whether it is up to date).
pub(super) fn text(config: Config, request: &Request, color: bool) -> Result<String, Failure> {
    let prepared = request::plan(config, request)?;
    let (config, plan) = (&prepared.config, &prepared.plan);
    let (checker, warning) = Checker::new(&config.root, false);
    if let Some(w) = warning {
        eprintln!("irun: warning: {w}; every task would run");
    }
    let verdicts = fresh::predict(plan, config, &checker);
    let idle = fresh::not_started(plan, &verdicts);
    let width = plan.order.iter().map(|&i| plan[i].name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    let mut keys = std::collections::HashMap::new();
    let mut remote = crate::cache::remote::from_env().0;
    let table = crate::cache::Table::new(config);
    for &i in &plan.order {
        let cached = match &verdicts[i] {
            Some(Verdict::Run(_)) => crate::cache::explain(config, &checker, &table, i, &mut keys, &mut remote),
            _ => None,
        };
        let (text, style) = match &verdicts[i] {
            None => (
                format!(
                    "group of {}",
                    config.tasks[i]
                        .deps
                        .iter()
                        .map(|d| config.tasks[d.id].name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                anstyle::Style::new().dimmed(),
            ),
            Some(_) if idle[i] => (
                "not started: every task that needs it is up to date".to_string(),
                anstyle::AnsiColor::Green.on_default(),
            ),
            Some(Verdict::UpToDate) => ("up to date".to_string(), anstyle::AnsiColor::Green.on_default()),
            Some(Verdict::Cached(hit)) => (
                format!("will be restored from the cache ({})", text::short_key(&hit.key)),
                anstyle::AnsiColor::Green.on_default(),
            ),
            Some(Verdict::Run(why)) => match &cached {
                Some(crate::cache::Explained::Hit { key, source }) => (
                    format!("{} ({}): {}", text::will_restore(source), text::short_key(key), text::run_reason(why)),
                    anstyle::AnsiColor::Green.on_default(),
                ),
                _ => (format!("will run: {}", text::run_reason(why)), anstyle::AnsiColor::Yellow.on_default()),
            },
        };
        let text = if color { format!("{}{text}{}", style.render(), style.render_reset()) } else { text };
        out.push_str(&format!("{:<width$}  {text}\n", plan[i].name));
        // What its fingerprint holds, and what changed since it last ran; then its cache key, and what changed in
        // it since the last one stored.
        let task = &config.tasks[i];
        let miss = match cached {
            Some(crate::cache::Explained::Miss { key, changed }) => Some(text::cache_miss(&key, &changed)),
            _ => None,
        };
        let parts = checker.parts(config, task).map(|p| text::fingerprint(&p, task.is_service())).unwrap_or_default();
        for line in parts.into_iter().chain(miss) {
            let dim = anstyle::Style::new().dimmed();
            let line = if color { format!("{}{line}{}", dim.render(), dim.render_reset()) } else { line };
            out.push_str(&format!("{:<width$}  {line}\n", ""));
        }
    }
    Ok(out)
}
