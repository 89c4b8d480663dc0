//! `irun list`: every task with its kind, description, deps and readiness probe.

use crate::config::Config;

pub fn text(config: &Config, color: bool) -> String {
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
