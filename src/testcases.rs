//! JUnit XML reports a task's command wrote (pytest's `--junitxml`, jest-junit, Maven surefire, JUnit 5's console
//! launcher), read into test cases. Pure: reports come from any reader; which files, and when, is the driver's
//! business.
//!
//! A report is a `<testsuites>` or a `<testsuite>` root; suites may nest (they are flattened, each keeping the cases
//! written directly in it). A `<testcase>` has its `name`, `classname` and `time`, and at most one result: the first
//! of its `<failure>`, `<error>` and `<skipped>` (message, type and text), with its own `<system-out>` and
//! `<system-err>`. Anything else (properties, surefire's reruns, elements of other tools) is passed over. Entities and
//! CDATA are read as XML has them.

#[cfg(test)]
mod tests;

use std::io::{BufRead, Read};
use std::time::Duration;

/// How deep elements may nest (JUnit reports nest a few levels; a file nested deeper is not one, and each level
/// keeps its name until it ends).
const MAX_DEPTH: usize = 256;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// What is kept of each text (a failure's text, a case's or suite's output): its last MiB, from where a line starts
/// when one does (the end of a failure says most).
pub(crate) const TEXT_MAX: usize = 1 << 20;

/// What is kept of one run's reports, all files together: 64 MiB, counting every case's strings and the room the
/// case itself takes. Past it, cases are counted but not kept ([`TestReports::dropped`]): a report of 100,000 cases
/// of a few hundred bytes each is kept whole (about 40 MB), one of millions, or with a MiB of output per case, is
/// not kept beyond the budget. (Markup between texts is read in pieces of one event each: the text of one element
/// is held whole while it is read, a file's size never is.)
pub(crate) const KEPT_MAX: usize = 64 << 20;

/// Names, class names, messages and types are attributes: each is kept up to this many bytes.
const ATTRIBUTE_MAX: usize = 4096;

/// What a run of a task found in its JUnit reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TestReports {
    /// The files read, relative to the project, in the order read.
    pub(crate) files: Vec<String>,
    /// Every suite of every file read, flattened.
    pub(crate) suites: Vec<Suite>,
    /// Every case of those files, kept or not.
    pub(crate) counts: Counts,
    /// Cases counted but not kept: they came after [`KEPT_MAX`] was spent.
    pub(crate) dropped: usize,
    /// Files that could not be read, or no file at all.
    pub(crate) problems: Vec<Problem>,
    /// What is left of [`KEPT_MAX`].
    left: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) tests: usize,
    pub(crate) failures: usize,
    pub(crate) errors: usize,
    pub(crate) skipped: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Suite {
    pub(crate) name: String,
    pub(crate) cases: Vec<Case>,
    /// Output written for the suite as a whole.
    pub(crate) system_out: Option<String>,
    pub(crate) system_err: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) classname: Option<String>,
    pub(crate) time: Option<Duration>,
    pub(crate) status: Status,
    pub(crate) system_out: Option<String>,
    pub(crate) system_err: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Status {
    Passed,
    /// `<failure>`: an assertion did not hold.
    Failed(Detail),
    /// `<error>`: the test could not run to its assertions (an exception, a failed fixture).
    Error(Detail),
    Skipped(Detail),
}

/// A failure's, error's or skip's `message`, `type` and text.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Detail {
    pub(crate) message: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) text: String,
}

/// Why a task's reports say less than they might.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Problem {
    /// A file its globs matched, new or changed in this run, could not be read or is not a JUnit report.
    Unreadable { path: String, error: String },
    /// The task succeeded and no file its globs match was new or changed.
    Missing { patterns: Vec<String> },
}

/// Where and why a report could not be read: the byte it went wrong at, if it is a matter of its content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Malformed {
    pub(crate) offset: Option<u64>,
    pub(crate) what: String,
}

impl Default for TestReports {
    fn default() -> TestReports {
        TestReports {
            files: Vec::new(),
            suites: Vec::new(),
            counts: Counts::default(),
            dropped: 0,
            problems: Vec::new(),
            left: KEPT_MAX,
        }
    }
}

impl TestReports {
    /// Read the report at `path` from `input`: its suites and cases are added, or, if it is not a well-formed JUnit
    /// report, nothing of it is and why is returned.
    pub(crate) fn read(&mut self, path: &str, input: impl BufRead) -> Result<(), Malformed> {
        let parsed = Parser::new(self.left).run(input)?;
        self.files.push(path.to_string());
        self.suites.extend(parsed.suites);
        let (a, b) = (&mut self.counts, parsed.counts);
        (a.tests, a.failures, a.errors, a.skipped) =
            (a.tests + b.tests, a.failures + b.failures, a.errors + b.errors, a.skipped + b.skipped);
        self.dropped += parsed.dropped;
        self.left = parsed.left;
        Ok(())
    }

    /// The cases kept, in the order read.
    pub(crate) fn cases(&self) -> impl Iterator<Item = &Case> {
        self.suites.iter().flat_map(|s| &s.cases)
    }

    /// The names of the cases that failed or had errors, in the order read.
    pub(crate) fn failed(&self) -> impl Iterator<Item = &str> {
        self.cases().filter(|c| matches!(c.status, Status::Failed(_) | Status::Error(_))).map(|c| c.name.as_str())
    }
}

/// The line and column (both from 1, the column in characters) of byte `offset` of `input`.
pub(crate) fn line_column(input: impl BufRead, offset: u64) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for byte in input.take(offset).bytes().map_while(Result::ok) {
        match byte {
            b'\n' => (line, column) = (line + 1, 1),
            // A UTF-8 continuation byte is part of the character before it.
            0x80..=0xbf => {}
            _ => column += 1,
        }
    }
    (line, column)
}

/// What one file held.
struct Parsed {
    suites: Vec<Suite>,
    counts: Counts,
    dropped: usize,
    left: usize,
}

/// Where text being read goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// The open case's failure, error or skip.
    Detail,
    CaseOut,
    CaseErr,
    SuiteOut,
    SuiteErr,
}

struct Parser {
    suites: Vec<Suite>,
    /// The `<testsuite>` elements open, innermost last: their place in `suites`.
    open: Vec<usize>,
    case: Option<Case>,
    /// Text being read, and where it goes.
    text: Option<(Target, Tail)>,
    /// The names of the elements open, innermost last (to say which one a file cut short left open).
    names: Vec<String>,
    /// How deep inside an element that is passed over (0: not in one).
    skipping: usize,
    /// The root element was seen (and, once `names` is empty again, closed).
    rooted: bool,
    counts: Counts,
    dropped: usize,
    left: usize,
}

impl Parser {
    fn new(left: usize) -> Parser {
        Parser {
            suites: Vec::new(),
            open: Vec::new(),
            case: None,
            text: None,
            names: Vec::new(),
            skipping: 0,
            rooted: false,
            counts: Counts::default(),
            dropped: 0,
            left,
        }
    }

    fn run(mut self, input: impl BufRead) -> Result<Parsed, Malformed> {
        let mut reader = Reader::from_reader(input);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let event = reader.read_event_into(&mut buf).map_err(|e| {
                let offset = match e {
                    quick_xml::Error::Io(_) => None,
                    _ => Some(reader.error_position()),
                };
                Malformed { offset, what: e.to_string() }
            })?;
            let at = reader.buffer_position();
            let wrong = |what: String| Malformed { offset: Some(at), what };
            match event {
                Event::Start(e) => self.start(&e, false).map_err(wrong)?,
                Event::Empty(e) => self.start(&e, true).map_err(wrong)?,
                Event::End(_) => self.end(),
                Event::Text(t) => self.push(|| t.xml10_content()).map_err(wrong)?,
                Event::CData(t) => self.push(|| t.xml10_content()).map_err(wrong)?,
                Event::GeneralRef(r) => {
                    let name = r.decode().map_err(|e| wrong(e.to_string()))?;
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_string(),
                            None => return Err(wrong(format!("unknown entity `&{name};`"))),
                        },
                        Err(e) => return Err(wrong(e.to_string())),
                    };
                    self.push(|| Ok::<_, std::convert::Infallible>(resolved.into())).map_err(wrong)?;
                }
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
        let at = reader.buffer_position();
        match self.names.last() {
            _ if !self.rooted => Err(Malformed { offset: None, what: "it holds no XML element".into() }),
            Some(open) => Err(Malformed { offset: Some(at), what: format!("the file ends before `</{open}>`") }),
            None => Ok(Parsed { suites: self.suites, counts: self.counts, dropped: self.dropped, left: self.left }),
        }
    }

    /// An element starts (`empty`: and ends, `<testcase/>`).
    fn start(&mut self, e: &BytesStart, empty: bool) -> Result<(), String> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        if self.names.is_empty() {
            if self.rooted {
                return Err(format!("a second root element `<{name}>` after the first one ended"));
            }
            if name != "testsuites" && name != "testsuite" {
                return Err(format!(
                    "not a JUnit report: its root element is `<{name}>`, not `<testsuites>` or `<testsuite>`"
                ));
            }
            self.rooted = true;
        }
        if self.names.len() >= MAX_DEPTH {
            return Err(format!("elements nested deeper than {MAX_DEPTH}: not a JUnit report"));
        }
        self.names.push(name);
        if self.skipping > 0 || self.text.is_some() {
            // Markup inside a text, or inside what is passed over, is passed over with it.
            self.skipping += 1;
        } else {
            self.open_element(e)?;
        }
        if empty {
            self.end();
        }
        Ok(())
    }

    fn open_element(&mut self, e: &BytesStart) -> Result<(), String> {
        let in_suite = !self.open.is_empty();
        match (self.names.last().map(String::as_str).unwrap_or_default(), &mut self.case) {
            ("testsuites", None) if self.open.is_empty() => {}
            ("testsuite", None) => {
                let name = attribute(e, "name")?.unwrap_or_default();
                self.suites.push(Suite { name, cases: Vec::new(), system_out: None, system_err: None });
                self.open.push(self.suites.len() - 1);
            }
            ("testcase", None) if in_suite => {
                let time = attribute(e, "time")?.and_then(|t| seconds(&t));
                self.case = Some(Case {
                    name: attribute(e, "name")?.unwrap_or_default(),
                    classname: attribute(e, "classname")?.filter(|c| !c.is_empty()),
                    time,
                    status: Status::Passed,
                    system_out: None,
                    system_err: None,
                });
            }
            (kind @ ("failure" | "error" | "skipped"), Some(case)) if case.status == Status::Passed => {
                let detail =
                    Detail { message: attribute(e, "message")?, kind: attribute(e, "type")?, text: String::new() };
                case.status = match kind {
                    "failure" => Status::Failed(detail),
                    "error" => Status::Error(detail),
                    _ => Status::Skipped(detail),
                };
                self.text = Some((Target::Detail, Tail::default()));
            }
            ("system-out", Some(_)) => self.text = Some((Target::CaseOut, Tail::default())),
            ("system-err", Some(_)) => self.text = Some((Target::CaseErr, Tail::default())),
            ("system-out", None) if in_suite => self.text = Some((Target::SuiteOut, Tail::default())),
            ("system-err", None) if in_suite => self.text = Some((Target::SuiteErr, Tail::default())),
            _ => self.skipping = 1,
        }
        Ok(())
    }

    /// The innermost open element ends (its name was checked by the reader).
    fn end(&mut self) {
        let name = self.names.pop().unwrap_or_default();
        if self.skipping > 0 {
            self.skipping -= 1;
            return;
        }
        if let Some((into, tail)) = self.text.take() {
            return self.text_read(into, tail.finish());
        }
        match name.as_str() {
            "testsuite" => {
                self.open.pop();
            }
            "testcase" => {
                if let Some(case) = self.case.take() {
                    self.case_read(case);
                }
            }
            _ => {}
        }
    }

    /// Text (if it is read: in a failure, an error, a skip or an output).
    fn push<'a, E: std::fmt::Display>(
        &mut self,
        text: impl FnOnce() -> Result<std::borrow::Cow<'a, str>, E>,
    ) -> Result<(), String> {
        if let (Some((_, tail)), 0) = (&mut self.text, self.skipping) {
            tail.push(&text().map_err(|e| e.to_string())?);
        }
        Ok(())
    }

    fn text_read(&mut self, into: Target, text: String) {
        let suite = self.open.last().map(|&i| &mut self.suites[i]);
        let case = self.case.as_mut();
        match (into, case, suite) {
            (Target::Detail, Some(case), _) => match &mut case.status {
                Status::Failed(d) | Status::Error(d) | Status::Skipped(d) => d.text = text,
                Status::Passed => {}
            },
            (Target::CaseOut, Some(case), _) => append(&mut case.system_out, text),
            (Target::CaseErr, Some(case), _) => append(&mut case.system_err, text),
            (Target::SuiteOut, _, Some(suite)) => append(&mut suite.system_out, text),
            (Target::SuiteErr, _, Some(suite)) => append(&mut suite.system_err, text),
            _ => {}
        }
    }

    /// A case ends: counted, and kept in its suite if the budget allows (its texts left out if only they do not
    /// fit).
    fn case_read(&mut self, mut case: Case) {
        let c = &mut self.counts;
        c.tests += 1;
        match case.status {
            Status::Passed => {}
            Status::Failed(_) => c.failures += 1,
            Status::Error(_) => c.errors += 1,
            Status::Skipped(_) => c.skipped += 1,
        }
        if cost(&case) > self.left {
            let note = format!("[irun: left out: the reports of this run held more than {} MiB]", KEPT_MAX >> 20);
            case.system_out = case.system_out.map(|_| note.clone());
            case.system_err = case.system_err.map(|_| note.clone());
            if let Status::Failed(d) | Status::Error(d) | Status::Skipped(d) = &mut case.status {
                d.text = note;
            }
        }
        let cost = cost(&case);
        match self.open.last() {
            Some(&suite) if cost <= self.left => {
                self.left -= cost;
                self.suites[suite].cases.push(case);
            }
            _ => self.dropped += 1,
        }
    }
}

/// What keeping a case takes: its strings and its own room.
fn cost(case: &Case) -> usize {
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let detail = match &case.status {
        Status::Passed => 0,
        Status::Failed(d) | Status::Error(d) | Status::Skipped(d) => len(&d.message) + len(&d.kind) + d.text.len(),
    };
    std::mem::size_of::<Case>()
        + case.name.len()
        + len(&case.classname)
        + detail
        + len(&case.system_out)
        + len(&case.system_err)
}

/// A second output of the same kind (two `<system-out>` in one case) follows the first.
fn append(to: &mut Option<String>, text: String) {
    match to {
        Some(before) => {
            before.push('\n');
            before.push_str(&text);
            let mut tail = Tail::default();
            tail.push(before);
            *before = tail.finish();
        }
        None => *to = Some(text),
    }
}

/// An attribute's value, entities resolved, at most [`ATTRIBUTE_MAX`] bytes of it.
fn attribute(e: &BytesStart, name: &str) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        if a.key.local_name().as_ref() == name.as_bytes() {
            let mut value =
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| e.to_string())?.into_owned();
            if value.len() > ATTRIBUTE_MAX {
                let mut cut = ATTRIBUTE_MAX;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
                value.push('…');
            }
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// A `time` attribute: seconds, maybe with thousands separators (surefire writes `1,234.5`); none if it is not a
/// duration.
fn seconds(text: &str) -> Option<Duration> {
    Duration::try_from_secs_f64(text.trim().replace(',', "").parse().ok()?).ok()
}

/// Text kept as it comes: its last [`TEXT_MAX`] bytes (up to twice that while it grows), and how much was left out.
#[derive(Default)]
struct Tail {
    text: String,
    cut: usize,
}

impl Tail {
    fn push(&mut self, s: &str) {
        // A piece longer than what is kept: only its end counts.
        let mut from = s.len().saturating_sub(TEXT_MAX);
        while !s.is_char_boundary(from) {
            from += 1;
        }
        self.cut += from;
        self.text.push_str(&s[from..]);
        if self.text.len() > 2 * TEXT_MAX {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.text.len() <= TEXT_MAX {
            return;
        }
        let mut start = self.text.len() - TEXT_MAX;
        while !self.text.is_char_boundary(start) {
            start += 1;
        }
        self.cut += start;
        self.text.drain(..start);
    }

    /// The text kept, from the start of a line if one starts in its first half, and a line saying what was left out.
    fn finish(mut self) -> String {
        self.trim();
        if self.cut == 0 {
            return self.text;
        }
        if let Some(i) = memchr::memchr(b'\n', &self.text.as_bytes()[..self.text.len() / 2]) {
            self.cut += i + 1;
            self.text.drain(..=i);
        }
        format!("[irun: the first {} bytes of this text are left out]\n{}", self.cut, self.text)
    }
}
