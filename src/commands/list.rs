//! `irun list`: every task with its kind, description, deps and readiness probe.

use crate::config::{Check, Cmd, Config};
use crate::report::text;

/// The list as asked for: `--json`, `--names`, or text.
pub(super) fn text(config: &Config, json: bool, names: bool, color: bool) -> String {
    match (json, names) {
        (true, _) => self::json(config),
        (_, true) => self::names(config),
        _ => self::plain(config, color),
    }
}

fn plain(config: &Config, color: bool) -> String {
    let width = config.tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
    let bold = anstyle::Style::new().bold();
    let dim = anstyle::Style::new().dimmed();
    let paint = |s: anstyle::Style, t: &str| {
        if color { format!("{}{t}{}", s.render(), s.render_reset()) } else { t.to_string() }
    };
    let mut out = String::new();
    for t in config.tasks.iter() {
        let mut line = format!("{} {:<7}", paint(bold, &format!("{:<width$}", t.name)), t.tag().as_str());
        if let Some(d) = &t.description {
            line.push_str(&format!(" {d}"));
        }
        let mut extra = Vec::new();
        if !t.deps.is_empty() {
            extra.push(format!(
                "deps: {}",
                t.deps.iter().map(|d| config.tasks[d.id].name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(svc) = t.service() {
            match &svc.ready {
                Some(p) => {
                    extra.push(format!("ready once irun sees {}", text::check(&p.check.hidden(&config.secrets))))
                }
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
        out.push_str(&format!(
            "default: {}\n",
            d.iter().map(|n| config.tasks[n.id].name.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

/// `irun list --names`: the task names, one per line (for shell completion and scripts).
fn names(config: &Config) -> String {
    config.tasks.iter().map(|t| format!("{}\n", t.name)).collect()
}

/// `irun list --json`: one JSON document describing every task, for editors and scripts.
fn json(config: &Config) -> String {
    use serde_json::json;
    let defaults: Vec<&str> = config.default.iter().flatten().map(|n| config.tasks[n.id].name.as_str()).collect();
    let tasks: Vec<serde_json::Value> = config
        .tasks
        .iter()
        .map(|t| {
            let ready = t.service().map(|s| match &s.ready {
                None => json!({ "probe": null, "description": "ready once started" }),
                Some(p) => {
                    let check = p.check.hidden(&config.secrets);
                    let mut v = json!({
                        "probe": check.key(),
                        "description": text::check(&check),
                        "timeout_s": p.timeout.as_secs_f64(),
                    });
                    match &check {
                        Check::Tcp { host, port } => {
                            v["host"] = json!(host);
                            v["port"] = json!(port);
                        }
                        Check::AutoTcp => v["port"] = json!("auto"),
                        Check::Http { url, status } => {
                            v["url"] = json!(url.raw);
                            v["status"] = json!(status);
                        }
                        Check::Exec(cmd) => v["command"] = json!(cmd.to_string()),
                        Check::Log(re) => v["pattern"] = json!(re.0.as_str()),
                        Check::Later { key: "tcp", text, .. } => v["port"] = json!(text),
                        Check::Later { key: "http", text, status } => {
                            v["url"] = json!(text);
                            v["status"] = json!(status);
                        }
                        Check::Later { text, .. } => v["pattern"] = json!(text),
                    }
                    if check.key() != "log" {
                        v["interval_s"] = json!(p.interval.as_secs_f64());
                    }
                    v
                }
            });
            json!({
                "name": t.name,
                "kind": t.tag().as_str(),
                "description": t.description,
                "cmd": t.process().map(|p| match &p.cmd {
                    Cmd::Shell(s) => json!(config.shown(s)),
                    Cmd::Argv(a) => json!(a.iter().map(|a| config.shown(a)).collect::<Vec<_>>()),
                }),
                "deps": t.deps.iter().map(|d| config.tasks[d.id].name.as_str()).collect::<Vec<_>>(),
                "sources": t.sources(),
                "outputs": t.outputs(),
                "junit": t.junit(),
                "ready": ready,
                "port": t.service().map(|s| if s.auto_port { json!("auto") } else { json!(null) }),
                "default": defaults.contains(&t.name.as_str()),
            })
        })
        .collect();
    let doc = json!({
        "version": 1,
        "file": config.source.path.display().to_string(),
        "default": defaults,
        "tasks": tasks,
    });
    format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
}
