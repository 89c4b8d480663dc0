//! `--timings[=FILE]` and `--trace FILE`: a run you can look at. The reporter keeps what places each task in time
//! ([`record`]), as the JSON objects of `--events` give it, builds sections of bars on lanes ([`model`]) and writes
//! the page ([`html`]) and the trace ([`trace`]) when the run ends, and in watch mode after every cycle.
//! `irun timings` makes both from an events file by the same road.

pub(crate) mod html;
pub(crate) mod model;
pub(crate) mod record;
pub(crate) mod trace;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::events::Event;
use crate::report::{Reporter, Trouble, json};

/// Where `--timings` writes the page when no FILE is given, under the project's root.
pub(crate) const DEFAULT_PAGE: &str = ".irun/timings.html";

/// What to write, and where.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outputs {
    pub(crate) page: Option<PathBuf>,
    pub(crate) trace: Option<PathBuf>,
}

impl Outputs {
    /// Write the page and the trace of these sections (each whole or not at all: written aside, then renamed).
    pub(crate) fn write(&self, sections: &[model::Section]) -> Result<(), Trouble> {
        if let Some(path) = &self.page {
            write_atomically(path, html::page(sections).as_bytes())
                .map_err(|e| Trouble::of(&e, "timings page", &path.display().to_string()))?;
        }
        if let Some(path) = &self.trace {
            write_atomically(path, trace::trace(sections).as_bytes())
                .map_err(|e| Trouble::of(&e, "trace", &path.display().to_string()))?;
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A pipe, a terminal, /dev/stdout: written to as it is (it cannot be replaced).
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return std::fs::write(path, bytes);
    }
    let name = path.file_name().ok_or_else(|| std::io::Error::other("it names no file"))?;
    let mut aside = name.to_os_string();
    aside.push(format!(".{}.tmp", std::process::id()));
    let aside = path.with_file_name(aside);
    std::fs::write(&aside, bytes).and_then(|()| std::fs::rename(&aside, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&aside);
    })
}

pub(crate) struct Timings {
    outputs: Outputs,
    builder: model::Builder,
    shard: Option<String>,
    trouble: Option<Trouble>,
    /// A write failed: nothing more is written.
    failed: bool,
    /// The run has ended and the files are written: where, said on stderr after the other reports' last words.
    say_where: bool,
}

impl Timings {
    pub(crate) fn new(outputs: Outputs, shard: Option<String>) -> Timings {
        Timings { outputs, builder: model::Builder::default(), shard, trouble: None, failed: false, say_where: false }
    }

    fn write(&mut self) {
        if self.failed {
            return;
        }
        if let Err(t) = self.outputs.write(&self.builder.sections()) {
            self.failed = true;
            self.trouble = Some(t);
        }
    }
}

impl Reporter for Timings {
    fn event(&mut self, at: SystemTime, event: &Event) {
        if matches!(event, Event::Output { .. }) {
            return;
        }
        // The objects `--events` writes for it: a page made now and one made from the events file are the same.
        for object in json::objects(at, event, self.shard.as_deref()) {
            if let Ok(Some(record)) = record::parse(&object) {
                self.builder.push(record);
            }
        }
        match event {
            Event::CycleFinished { .. } => self.write(),
            Event::RunFinished { .. } => {
                self.write();
                self.say_where = !self.failed;
            }
            _ => {}
        }
    }

    fn flush(&mut self) {
        if std::mem::take(&mut self.say_where) {
            for path in self.outputs.page.iter().chain(&self.outputs.trace) {
                eprintln!("irun: timings: {}", path.display());
            }
        }
    }

    fn trouble(&mut self) -> Option<Trouble> {
        self.trouble.take()
    }
}
