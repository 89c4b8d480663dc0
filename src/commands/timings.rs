//! `irun timings EVENTS...`: the timings page, or a trace, from events files written by `--events`, by the road a
//! live run's page takes (the same records, sections and pages).

use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::exit::Failure;
use crate::report::timings::{Outputs, model, record};

/// Read the events files, write what is asked, and say where.
pub(super) fn write(events: &[PathBuf], html: Option<&Path>, trace: Option<&Path>) -> Result<String, Failure> {
    let mut builder = model::Builder::default();
    for path in events {
        read(path, &mut builder)?;
    }
    let page = match (html, trace) {
        (None, None) => Some(events[0].with_extension("html")),
        (html, _) => html.map(Path::to_path_buf),
    };
    let outputs = Outputs { page, trace: trace.map(Path::to_path_buf) };
    for (flag, out) in [("--html", &outputs.page), ("--trace", &outputs.trace)] {
        if let Some(out) = out.as_deref().filter(|o| events.iter().any(|e| same_path(e, o))) {
            return Err(Failure::Usage(
                Diagnostic::new(format!("{flag} {} names an events file irun reads", out.display()))
                    .with_help("write the page or trace to a file of its own"),
            ));
        }
    }
    outputs.write(&builder.finish()).map_err(|t| match t {
        crate::report::Trouble::WriteFailed(m) => Failure::Internal(m),
        crate::report::Trouble::OutputClosed => Failure::Internal("stdout was closed".into()),
    })?;
    Ok(outputs.page.iter().chain(&outputs.trace).map(|p| format!("{}\n", p.display())).collect())
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).is_ok_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
}

/// Every record of one events file, into the builder. A line that is not an event is an error naming the file and
/// the line; a run's events after another's (shards, files put together) are sections of their own.
fn read(path: &Path, builder: &mut model::Builder) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Usage(
            Diagnostic::new(format!("cannot read the events file {}: {e}", path.display()))
                .with_help("give a file written by `irun --events FILE`"),
        )
    })?;
    let mut records = 0;
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |why: String| {
            Failure::Usage(
                Diagnostic::new(format!("{}:{}: {why}", path.display(), n + 1))
                    .with_help("give a file written by `irun --events FILE`, one JSON object per line"),
            )
        };
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            // irun was stopped while it wrote its last event: what came before is the run as far as it went.
            Err(e) if e.is_eof() && n + 1 == lines.len() && !text.ends_with('\n') => {
                eprintln!(
                    "irun: warning: {}:{}: the last line is cut short (the run was stopped as it wrote it); \
                     the events before it are used",
                    path.display(),
                    n + 1
                );
                break;
            }
            Err(e) => return Err(bad(format!("this line is not JSON ({e})"))),
        };
        match record::parse(&value) {
            Ok(Some(r)) => {
                builder.push(r);
                records += 1;
            }
            Ok(None) => {}
            Err(record::Unusable::Malformed(why)) => return Err(bad(format!("this line is not an irun event: {why}"))),
            Err(record::Unusable::Version(v)) => {
                return Err(bad(format!("this event is of schema version {v}; this irun reads version 1")));
            }
        }
    }
    if records == 0 {
        return Err(Failure::Usage(
            Diagnostic::new(format!("{} holds no run's events", path.display()))
                .with_help("give a file written by `irun --events FILE`"),
        ));
    }
    Ok(())
}
