//! The failure tail in the summary: the last N lines of a task's output, plus the lines that point at a place in a
//! file (`src/lib.rs:12:5`, `File "t.py", line 3`) that scrolled out of those N, so the error's location survives
//! the noise after it.

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(crate) struct Tail {
    limit: usize,
    recent: VecDeque<Vec<u8>>,
    /// Lines with a location that left `recent`, the latest `limit` of them.
    located: VecDeque<Vec<u8>>,
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Tail {
        Tail { limit, ..Tail::default() }
    }

    pub(crate) fn clear(&mut self) {
        self.recent.clear();
        self.located.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// One output event: `\n`-separated lines, the last without its newline. Lines that scroll out are only looked
    /// at where they have a `:` or `", line ` (found with SIMD searches): a chatty task costs little here.
    pub(crate) fn push(&mut self, text: &[u8]) {
        if self.limit == 0 {
            return;
        }
        // `kept`: the event's last `limit` lines; `scrolled`: the lines before them (ending with a newline).
        let split = memchr::memrchr_iter(b'\n', text).nth(self.limit - 1).map_or(0, |p| p + 1);
        let (scrolled, kept) = text.split_at(split);
        if !scrolled.is_empty() {
            // Every line kept so far scrolls out too, before the event's own.
            while let Some(old) = self.recent.pop_front() {
                if has_location(&old) {
                    self.locate(old);
                }
            }
            for line in located_lines(&scrolled[..scrolled.len() - 1]) {
                self.locate(line.to_vec());
            }
        }
        for line in kept.split(|&b| b == b'\n') {
            // Reuse the oldest line's buffer: a chatty task costs no allocation per line here.
            let mut buf = if self.recent.len() == self.limit {
                let old = self.recent.pop_front().unwrap_or_default();
                if has_location(&old) {
                    self.locate(old);
                    Vec::new()
                } else {
                    old
                }
            } else {
                Vec::new()
            };
            buf.clear();
            buf.extend_from_slice(line);
            self.recent.push_back(buf);
        }
    }

    fn locate(&mut self, line: Vec<u8>) {
        if self.located.len() == self.limit {
            self.located.pop_front();
        }
        self.located.push_back(line);
    }

    /// What the summary shows: the located lines that scrolled out (then `None`, for an elision mark), then the
    /// last lines.
    pub(crate) fn lines(&self) -> Vec<Option<&[u8]>> {
        let mut out: Vec<Option<&[u8]>> = self.located.iter().map(|l| Some(l.as_slice())).collect();
        if !out.is_empty() {
            out.push(None);
        }
        out.extend(self.recent.iter().map(|l| Some(l.as_slice())));
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.recent.len()
    }
}

/// The lines of `text` (`\n`-separated) that point at a place in a file, in order.
fn located_lines(text: &[u8]) -> Vec<&[u8]> {
    let mut starts: Vec<usize> = memchr::memchr_iter(b':', text)
        .chain(memchr::memmem::find_iter(text, b"\", line "))
        .map(|at| memchr::memrchr(b'\n', &text[..at]).map_or(0, |p| p + 1))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
        .into_iter()
        .map(|start| {
            let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |e| start + e);
            &text[start..end]
        })
        .filter(|line| has_location(line))
        .collect()
}

/// Whether a line points at a place in a file: `name.ext:LINE` (as compilers, linters and test runners print), or
/// Python's `File "...", line N`.
pub(crate) fn has_location(line: &[u8]) -> bool {
    if memchr::memmem::find(line, b"\", line ").is_some() {
        return true;
    }
    let mut from = 0;
    while let Some(i) = memchr::memchr(b':', &line[from..]).map(|i| i + from) {
        if line.get(i + 1).is_some_and(u8::is_ascii_digit) {
            // The word before the colon: a file name with an extension.
            let word = line[..i].rsplit(|&b| b.is_ascii_whitespace() || b == b'(' || b == b'\'' || b == b'"').next();
            if word.is_some_and(is_file_name) {
                return true;
            }
        }
        from = i + 1;
    }
    false
}

/// `name.ext`: an extension of letters and digits that starts with a letter (so not `127.0.0.1`), and no URL.
fn is_file_name(word: &[u8]) -> bool {
    let Some(dot) = word.iter().rposition(|&b| b == b'.') else { return false };
    let ext = &word[dot + 1..];
    dot > 0
        && ext.first().is_some_and(u8::is_ascii_alphabetic)
        && ext.iter().all(u8::is_ascii_alphanumeric)
        && !word.windows(3).any(|w| w == b"://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_recognised() {
        for yes in [
            &b"src/lib.rs:12:5: error[E0308]"[..],
            b"  --> src/main.rs:3:1",
            b"tests/test_x.py:33: AssertionError",
            b"  File \"/app/t.py\", line 3, in <module>",
            b"main.go:10: undefined: x",
        ] {
            assert!(has_location(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"12:30:01 server up"[..],
            b"ratio 1:2",
            b"http://127.0.0.1:8123/",
            b"see http://example.com:80/x",
            b"done.",
            b"a.:1",
        ] {
            assert!(!has_location(no), "{}", String::from_utf8_lossy(no));
        }
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
