//! User-facing error messages that point into Irun.toml: `file:line:column`, the offending line, and a hint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

/// The text of a configuration file, kept so errors found after parsing can still quote it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    /// Empty once let go ([`Source::without_text`]).
    pub(crate) text: Arc<str>,
    /// xxh3-128 of the text: what an unchanged file is known by. (As bytes: a `u128` would align the source, and
    /// every error and `Result` holding one, to 16 bytes.)
    pub(crate) digest: [u8; 16],
}

impl Source {
    pub(crate) fn new(path: &Path, text: &str) -> Self {
        Source { path: path.to_path_buf(), text: text.into(), digest: digest(text) }
    }

    /// The same file without its text in memory (a configuration read back from `.irun/` has no use for the text
    /// unless an error quotes it: 1.2 MB for 10,000 tasks). An error quotes it from the file, if unchanged.
    pub(crate) fn without_text(&self) -> Self {
        Source { path: self.path.clone(), text: "".into(), digest: self.digest }
    }

    /// Whether this source is `text`.
    pub(crate) fn is(&self, text: &str) -> bool {
        digest(text) == self.digest && (self.text.is_empty() || *self.text == *text)
    }

    /// This source with its text, read again if it was let go: `None` if the file no longer holds it.
    fn quotable(&self) -> Option<Source> {
        if !self.text.is_empty() || self.digest == digest("") {
            return Some(self.clone());
        }
        let text = std::fs::read_to_string(&self.path).ok()?;
        (digest(&text) == self.digest).then(|| Source::new(&self.path, &text))
    }

    /// 1-based line and column of a byte offset, columns counted in characters.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

fn digest(text: &str) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes()).to_le_bytes()
}

/// One error for the user: what went wrong, where, and what to do about it.
#[derive(Debug)]
pub(crate) struct Diagnostic {
    pub(crate) message: String,
    pub(crate) location: Option<(Source, Range<usize>)>,
    pub(crate) help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Diagnostic { message: message.into(), location: None, help: None }
    }

    /// An error at `span` of `source`; only its file's name, if the file changed since the source was read.
    pub(crate) fn at(source: &Source, span: Range<usize>, message: impl Into<String>) -> Self {
        match source.quotable() {
            Some(source) => Diagnostic { message: message.into(), location: Some((source, span)), help: None },
            None => Diagnostic::new(format!("{}: {}", source.path.display(), message.into())),
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn render(&self, color: bool) -> String {
        let renderer = if color { Renderer::styled() } else { Renderer::plain() };
        let Some((source, span)) = &self.location else {
            let mut out = format!("error: {}", self.message);
            if let Some(help) = &self.help {
                out.push_str(&format!("\nhelp: {help}"));
            }
            return out;
        };
        let (line, col) = source.line_col(span.start);
        // The title carries file:line:column so the position is greppable even without the snippet.
        let title = format!("{}:{line}:{col}: {}", source.path.display(), self.message);
        let path = source.path.display().to_string();
        let mut span = span.clone();
        span.end = span.end.clamp(span.start, source.text.len());
        span.start = span.start.min(span.end);
        let mut group = Level::ERROR
            .primary_title(&title)
            .element(Snippet::source(&*source.text).path(&path).annotation(AnnotationKind::Primary.span(span)));
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help));
        }
        let report: [Group; 1] = [group];
        renderer.render(&report)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// The closest candidate to `word`, if any is close enough to be worth suggesting.
/// A character a terminal acts on rather than shows: control characters (newline, tab, ESC, DEL, C1) and the
/// invisible marks that reorder or hide text (bidi controls, zero-width spaces, byte order mark).
pub(crate) fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}')
}

/// A name as an error message shows it: as written, or quoted with escapes if a terminal would act on part of it.
pub(crate) fn shown(name: &str) -> String {
    if name.chars().any(unprintable) { format!("{name:?}") } else { format!("`{name}`") }
}

pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// ", did you mean `x`?" or nothing.
pub(crate) fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let s = Source::new(Path::new("Irun.toml"), "a = 1\nné = \"x\"\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        // "né" is three bytes but two characters.
        assert_eq!(s.line_col(10), (2, 4));
    }

    #[test]
    fn suggestions_only_for_close_words() {
        assert_eq!(did_you_mean("thraed", ["thread", "http", "init"]), Some("thread"));
        assert_eq!(did_you_mean("zzz", ["thread", "http", "init"]), None);
    }

    #[test]
    fn render_names_file_line_column_and_quotes_the_line() {
        let s = Source::new(Path::new("Irun.toml"), "[tasks.a]\ncmd = 1\n");
        let text = Diagnostic::at(&s, 16..17, "`cmd` must be a string").with_help("quote it").render(false);
        assert!(text.contains("Irun.toml:2:7: `cmd` must be a string"), "{text}");
        assert!(text.contains("cmd = 1"), "{text}");
        assert!(text.contains("help: quote it"), "{text}");
    }

    #[test]
    fn a_source_without_its_text_quotes_the_file_while_it_is_unchanged_and_names_it_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Irun.toml");
        std::fs::write(&path, "[tasks.a]\ncmd = 1\n").unwrap();
        let s = Source::new(&path, "[tasks.a]\ncmd = 1\n").without_text();
        assert!(s.text.is_empty() && s.is("[tasks.a]\ncmd = 1\n") && !s.is("[tasks.a]\ncmd = 2\n"));
        let text = Diagnostic::at(&s, 16..17, "`cmd` must be a string").render(false);
        assert!(text.contains("Irun.toml:2:7: `cmd` must be a string") && text.contains("cmd = 1"), "{text}");
        std::fs::write(&path, "[tasks.a]\ncmd = 2\n").unwrap();
        let text = Diagnostic::at(&s, 16..17, "`cmd` must be a string").render(false);
        assert_eq!(text, format!("error: {}: `cmd` must be a string", path.display()), "no line of another text");
    }
}
