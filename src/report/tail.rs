//! The failure tail in the summary: the last N lines of a task's output, and above them the lines that scrolled
//! out of those N but explain the failure (the first error and the lines around it, then the latest lines with a
//! place in a file, an error, pytest's `E` lines, `Expected:`/`Received:`, an assertion's diff), at most N of those.
//! Warnings noise is left out of both. What each line is: [`super::tail_rules`].

use std::collections::VecDeque;

use super::tail_rules::{BEFORE_FIRST_ERROR, Kind, Rules};

#[derive(Debug, Default)]
pub(crate) struct Tail {
    limit: usize,
    rules: Rules,
    /// The last `limit` lines that are not noise, with what they are.
    recent: VecDeque<(Kind, Vec<u8>)>,
    /// The first error's block, as far as it scrolled out of `recent` (at most `limit` lines), numbered.
    first: Vec<(u64, Vec<u8>)>,
    /// The latest lines that explain and scrolled out, as many as `first` leaves room for, numbered.
    explaining: VecDeque<(u64, Vec<u8>)>,
    /// How many lines scrolled out: numbers them, so the two above show in the order they came.
    scrolled: u64,
    /// One output event's lines that are not noise: where each is, and what.
    read: Vec<(usize, usize, Kind)>,
    /// Buffers of lines that scrolled out, to reuse: a chatty task costs no allocation per line here.
    spare: Vec<Vec<u8>>,
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Tail {
        Tail { limit, ..Tail::default() }
    }

    pub(crate) fn clear(&mut self) {
        *self = Tail::new(self.limit);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// One output event: `\n`-separated lines, the last without its newline.
    pub(crate) fn push(&mut self, text: &[u8]) {
        if self.limit == 0 {
            return;
        }
        self.read.clear();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len())) {
            let (from, line) = (start, &text[start..end]);
            start = end + 1;
            let first_error = !self.rules.errored();
            let kind = self.rules.classify(line);
            if kind == Kind::Noise {
                continue;
            }
            if kind == Kind::FirstError && first_error {
                self.take_before_first_error(text);
            }
            self.read.push((from, end, kind));
        }
        // What no longer fits scrolls out: the oldest kept lines, then the event's own first lines.
        let over = (self.recent.len() + self.read.len()).saturating_sub(self.limit);
        for _ in 0..over.min(self.recent.len()) {
            if let Some((kind, line)) = self.recent.pop_front() {
                self.scroll_out(kind, &line);
                self.spare.push(line);
            }
        }
        let skip = self.read.len().saturating_sub(self.limit);
        for i in 0..self.read.len() {
            let (from, to, kind) = self.read[i];
            if i < skip {
                self.scroll_out(kind, &text[from..to]);
            } else {
                let buf = self.copy(&text[from..to]);
                self.recent.push_back((kind, buf));
            }
        }
    }

    fn copy(&mut self, line: &[u8]) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(line);
        buf
    }

    /// The first error came: the lines before it (not blank) are part of its block.
    fn take_before_first_error(&mut self, text: &[u8]) {
        let read = self.read.iter_mut().rev().map(|(from, to, kind)| (kind, text[*from..*to].trim_ascii().is_empty()));
        let recent = self.recent.iter_mut().rev().map(|(kind, line)| (kind, line.trim_ascii().is_empty()));
        let mut left = BEFORE_FIRST_ERROR;
        for (kind, blank) in read.chain(recent) {
            if left == 0 {
                break;
            }
            if !blank {
                *kind = Kind::FirstError;
                left -= 1;
            }
        }
    }

    /// A line leaves the last `limit`: kept (copied) if it explains, within the limit, the first error's block
    /// first.
    fn scroll_out(&mut self, kind: Kind, line: &[u8]) {
        let at = self.scrolled;
        self.scrolled += 1;
        let room = self.first.len() < self.limit && !line.trim_ascii().is_empty();
        match kind {
            Kind::FirstError if room => {
                let line = self.copy(line);
                self.first.push((at, line));
            }
            Kind::Explains if room => {
                let line = self.copy(line);
                self.explaining.push_back((at, line));
            }
            _ => return,
        }
        while self.first.len() + self.explaining.len() > self.limit {
            if let Some((_, line)) = self.explaining.pop_front() {
                self.spare.push(line);
            }
        }
    }

    /// What the summary shows: the lines that scrolled out but explain (then `None`, for an elision mark), then the
    /// last lines.
    pub(crate) fn lines(&self) -> Vec<Option<&[u8]>> {
        let mut above: Vec<&(u64, Vec<u8>)> = self.first.iter().chain(&self.explaining).collect();
        above.sort_unstable_by_key(|(at, _)| *at);
        let mut out: Vec<Option<&[u8]>> = above.into_iter().map(|(_, l)| Some(l.as_slice())).collect();
        if !out.is_empty() {
            out.push(None);
        }
        out.extend(self.recent.iter().map(|(_, l)| Some(l.as_slice())));
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tail_samples::{
        PLAYWRIGHT, PLAYWRIGHT_AFTER_NODE_WARNING, PYTEST, PYTEST_W_ERROR, PYTHON_W_ERROR, RUSTC, TRACEBACK,
    };

    fn shown(t: &Tail) -> Vec<String> {
        t.lines()
            .iter()
            .map(|l| l.map_or("...".into(), |l| String::from_utf8_lossy(l).trim_end().to_string()))
            .collect()
    }

    /// The summary's tail of `text` with `--tail limit`, fed as one event and line by line: the same either way.
    fn tail_of(text: &str, limit: usize) -> Vec<String> {
        let text = text.trim_end_matches('\n');
        let mut whole = Tail::new(limit);
        whole.push(text.as_bytes());
        let mut by_line = Tail::new(limit);
        text.lines().for_each(|l| by_line.push(l.as_bytes()));
        assert_eq!(shown(&whole), shown(&by_line), "however the output came in");
        shown(&whole)
    }

    #[test]
    fn a_pytest_tail_has_the_e_lines_and_not_the_warnings() {
        assert_eq!(
            tail_of(PYTEST, 6),
            [
                "    def test_adds():",
                ">       assert add(1, 1) == 3",
                "E       assert 2 == 3",
                "...",
                "E        +  where 2 = add(1, 1)",
                "",
                "tests/test_math.py:7: AssertionError",
                "=========================== short test summary info ============================",
                "FAILED tests/test_math.py::test_adds - assert 2 == 3",
                "==================== 1 failed, 2 passed, 1 warning in 0.03s ====================",
            ]
            .as_slice()[..]
        );
    }

    #[test]
    fn a_playwright_tail_has_expected_received_and_the_diff() {
        let tail = tail_of(PLAYWRIGHT, 10);
        let above: Vec<&str> = tail.iter().map(|l| l.trim()).take_while(|l| *l != "...").collect();
        assert_eq!(above.len(), 10, "{tail:#?}");
        for line in ["Expected string: \"Vite + React!\"", "Received string: \"Vite + React\"", "+   \"count\": 2,"] {
            assert!(above.contains(&line), "{line}: {tail:#?}");
        }
        assert!(tail.last().is_some_and(|l| l.contains("counter counts")), "the last line is last: {tail:#?}");
    }

    #[test]
    fn a_rust_tail_has_the_error_block_and_not_the_warning() {
        let tail = tail_of(RUSTC, 5);
        assert_eq!(
            tail[..3],
            ["Compiling app v0.1.0 (/app)", "error[E0308]: mismatched types", " --> src/main.rs:3:18"]
        );
        assert!(!tail.iter().any(|l| l.starts_with("warning") || l.contains("src/main.rs:2:9")), "{tail:#?}");
        assert_eq!(
            tail.last().map(String::as_str),
            Some("error: could not compile `app` (bin \"app\") due to 1 previous error; 1 warning emitted")
        );
    }

    #[test]
    fn a_python_tail_has_the_traceback_start_and_the_exception() {
        let tail = tail_of(TRACEBACK, 3);
        assert_eq!(
            tail,
            [
                "starting import",
                "Traceback (most recent call last):",
                "  File \"/app/manage.py\", line 22, in <module>",
                "...",
                "                                    ~~~~~~~~~~^^^^^^^^^^^^^^^^",
                "  File \"<frozen os>\", line 714, in __getitem__",
                "KeyError: 'DATABASE_URL'",
            ]
        );
    }

    /// Warnings raised as errors: the lines that say so stay, among the last N and above them.
    #[test]
    fn a_warning_raised_as_an_error_stays_in_the_tail() {
        let tail = tail_of(PYTEST_W_ERROR, 3);
        assert_eq!(
            tail,
            [
                "    def old_api():",
                ">       warnings.warn(\"old_api is deprecated\", DeprecationWarning)",
                "E       DeprecationWarning: old_api is deprecated",
                "...",
                "=========================== short test summary info ============================",
                "FAILED tests/test_api.py::test_old_api - DeprecationWarning: old_api is deprecated",
                "========================= 1 failed, 1 passed in 0.02s ==========================",
            ]
        );
        let tail = tail_of(PYTHON_W_ERROR, 2);
        assert_eq!(tail.last().map(String::as_str), Some("DeprecationWarning: old_api is deprecated"), "{tail:#?}");
    }

    #[test]
    fn a_node_warning_does_not_hide_the_playwright_failure_after_it() {
        let tail = tail_of(PLAYWRIGHT_AFTER_NODE_WARNING, 4);
        assert!(
            tail.iter().any(|l| l.trim() == "Error: expect(received).toBe(expected) // Object.is equality"),
            "{tail:#?}"
        );
        assert!(!tail.iter().any(|l| l.contains("DeprecationWarning")), "{tail:#?}");
    }

    #[test]
    fn what_is_kept_above_stays_within_the_limit() {
        let mut t = Tail::new(3);
        t.push(b"error: one\na.rs:1:1\nb.rs:2:2\nc.rs:3:3\nd.rs:4:4\ne.rs:5:5\nf.rs:6:6\nx\ny\nz");
        assert_eq!(
            shown(&t),
            ["error: one", "a.rs:1:1", "b.rs:2:2", "...", "x", "y", "z"],
            "the first error's block first"
        );
        let mut t = Tail::new(3);
        t.push(b"a.rs:1:1\nb.rs:2:2\nc.rs:3:3\nd.rs:4:4\nx\ny\nz");
        assert_eq!(shown(&t), ["b.rs:2:2", "c.rs:3:3", "d.rs:4:4", "...", "x", "y", "z"], "then the latest");
    }

    #[test]
    fn scrolled_out_locations_stay_in_order() {
        let mut t = Tail::new(2);
        t.push(
            b"a.rs:1:1 first
x",
        );
        t.push(
            b"b.rs:2:2 second
y
z",
        );
        let shown: Vec<String> =
            t.lines().iter().map(|l| l.map_or("...".into(), |l| String::from_utf8_lossy(l).into_owned())).collect();
        assert_eq!(shown, ["a.rs:1:1 first", "b.rs:2:2 second", "...", "y", "z"]);
    }

    #[test]
    fn the_last_lines_and_the_locations_before_them_are_kept() {
        let mut t = Tail::new(3);
        t.push(b"start\nsrc/a.rs:1:1: error here\nnoise 1\nnoise 2");
        t.push(b"noise 3\nnoise 4");
        t.push(b"end");
        let shown: Vec<String> =
            t.lines().iter().map(|l| l.map_or("...".into(), |l| String::from_utf8_lossy(l).into_owned())).collect();
        assert_eq!(shown, ["src/a.rs:1:1: error here", "...", "noise 3", "noise 4", "end"]);
        let mut short = Tail::new(10);
        short.push(b"one\ntwo");
        assert_eq!(short.lines().len(), 2, "nothing scrolled out: no elision mark");
        let mut none = Tail::new(0);
        none.push(b"x");
        assert!(none.is_empty(), "--tail 0 keeps nothing");
    }
}
