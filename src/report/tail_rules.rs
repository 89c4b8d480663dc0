//! What each line of a failed task's output is to the failure tail, in one place: warnings noise (never shown),
//! a line that explains the failure (kept when it scrolls out of the last N lines), the first error and the lines
//! around it, or anything else. Lines are read in order, through their colour codes: a warning's block, pytest's
//! "warnings summary", a Python traceback and an assertion's diff span several lines. Errors and explaining lines
//! win over warnings: only a warning's own line (and its block) is noise, never one that is also an error or
//! explains (a warning raised as an error, under pytest's `-W error`), so noise can be left out even of the last N
//! lines without hiding what went wrong.

use std::borrow::Cow;

/// How many lines (not blank) before the first error, and after it, come with it.
pub(crate) const BEFORE_FIRST_ERROR: usize = 2;
const AFTER_FIRST_ERROR: usize = 5;

/// What a line is to the failure tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Warnings noise (`DeprecationWarning: …`, `warning: …` and its block, `npm WARN`, pytest's warnings summary):
    /// never shown.
    Noise,
    /// The first line that looks like an error, and the lines around it.
    FirstError,
    /// Explains a failure: an error, a place in a file, pytest's `E` and `>` lines, `Expected:`/`Received:`, an
    /// assertion's diff.
    Explains,
    /// Anything else: shown only among the last lines.
    Plain,
}

/// A block of lines read as one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Block {
    #[default]
    None,
    /// A compiler's or Python's warning: its indented lines, up to a blank or unindented line.
    Warning,
    /// pytest's `=== warnings summary ===`, up to the next `===` line.
    WarningsSummary,
    /// `- Expected` / `+ Received` and the diff after them, up to a blank line after some of it.
    Diff { content: bool },
}

/// The rules, with what they remember from the lines before.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    block: Block,
    /// The first error was seen.
    errored: bool,
    /// Lines (not blank) still to take after the first error.
    after: usize,
    /// Within a Python traceback: how far its first line is indented.
    traceback: Option<usize>,
}

impl Rules {
    /// What `line` (without its newline) is. `Kind::FirstError` on the first error itself means: the
    /// [`BEFORE_FIRST_ERROR`] lines before it (not blank, not noise) are part of its block too.
    pub(crate) fn classify(&mut self, line: &[u8]) -> Kind {
        let text = plain(line);
        let kind = self.read(&text);
        if kind == Kind::Noise || is_blank(&text) {
            return kind;
        }
        if kind == Kind::FirstError {
            self.errored = true;
            self.after = AFTER_FIRST_ERROR;
            return kind;
        }
        if self.after > 0 {
            self.after -= 1;
            return Kind::FirstError;
        }
        kind
    }

    /// The first error was seen.
    pub(crate) fn errored(&self) -> bool {
        self.errored
    }

    fn read(&mut self, text: &[u8]) -> Kind {
        let trimmed = text.trim_ascii_start();
        let indent = text.len() - trimmed.len();
        match self.block {
            Block::WarningsSummary if !text.starts_with(b"=") => return Kind::Noise,
            Block::Warning if (indent > 0 && !trimmed.is_empty() || is_code_line(text)) && !ends_warning(text) => {
                return Kind::Noise;
            }
            Block::Diff { content } if trimmed.is_empty() => {
                self.block = if content { Block::None } else { Block::Diff { content } };
                return Kind::Plain;
            }
            Block::Diff { .. } => {
                self.block = Block::Diff { content: !trimmed.starts_with(b"+ Received") };
                return Kind::Explains;
            }
            _ => self.block = Block::None,
        }
        // A traceback ends at its exception, indented as the traceback's first line: whatever it is (a warning
        // raised as an error too), it is what went wrong.
        if let Some(at) = self.traceback.filter(|_| !trimmed.is_empty()) {
            if indent <= at {
                self.traceback = None;
                if !trimmed.starts_with(b"Traceback (most recent call last)") {
                    return self.error();
                }
            }
        } else if trimmed.is_empty() {
            self.traceback = None;
        }
        if !may_matter(trimmed) {
            return Kind::Plain;
        }
        if text.starts_with(b"=") && memchr::memmem::find(text, b"warnings summary").is_some() {
            self.block = Block::WarningsSummary;
            return Kind::Noise;
        }
        if trimmed.starts_with(b"- Expected") {
            self.block = Block::Diff { content: false };
            return Kind::Explains;
        }
        // Errors and the lines that explain come before warnings: a warning raised as an error is an error.
        if is_error(text, trimmed) {
            if trimmed.starts_with(b"Traceback (most recent call last)") {
                self.traceback = Some(indent);
            }
            return self.error();
        }
        if explains(trimmed) {
            return Kind::Explains;
        }
        if is_warning(trimmed) {
            if indent == 0 {
                self.block = Block::Warning;
            }
            return Kind::Noise;
        }
        if has_location(text) {
            return Kind::Explains;
        }
        Kind::Plain
    }

    /// An error: the first, or a later one.
    fn error(&self) -> Kind {
        if self.errored { Kind::Explains } else { Kind::FirstError }
    }
}

/// A line in a warning's block that ends it: an error, or one that explains (`Expected: 3`, a `- Expected` diff).
fn ends_warning(text: &[u8]) -> bool {
    let trimmed = text.trim_ascii_start();
    is_error(text, trimmed) || explains(trimmed) || trimmed.starts_with(b"- Expected")
}

/// The line without its colour codes (and as text only for that: lines without an escape are looked at as they are).
fn plain(line: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(0x1b, line).is_none() {
        return Cow::Borrowed(line);
    }
    let text = String::from_utf8_lossy(line);
    Cow::Owned(console::strip_ansi_codes(&text).into_owned().into_bytes())
}

fn is_blank(text: &[u8]) -> bool {
    text.trim_ascii().is_empty()
}

/// A line of a compiler's code excerpt: `12 |     let x = 1;`, `   |`, `...`.
fn is_code_line(text: &[u8]) -> bool {
    let t = text.trim_ascii_start();
    let digits = t.iter().take_while(|b| b.is_ascii_digit()).count();
    t[digits..].trim_ascii_start().starts_with(b"|") || t.starts_with(b"...")
}

/// Whether any rule below may apply, found cheaply: each needs a `:` in the line, or the line to start with one of
/// these bytes, or to end with `Error` or `Exception` (a bare `AssertionError`). Most lines of a chatty task are
/// let go here.
fn may_matter(trimmed: &[u8]) -> bool {
    trimmed.first().is_some_and(|b| b"EF>-+n=(".contains(b))
        || memchr::memchr(b':', trimmed).is_some()
        || trimmed.trim_ascii_end().ends_with(b"Error")
        || trimmed.trim_ascii_end().ends_with(b"Exception")
}

/// Warnings noise, a warning's own line: `warning: …` (any case; rustc's `warning[…]`), `npm WARN`, a Python
/// warning (`DeprecationWarning: …`, `x.py:3: DeprecationWarning: …`), node's (`(node:12) [DEP0040]
/// DeprecationWarning: …`) and node's hint after it. A warning named further into a line (pytest's
/// `E   DeprecationWarning: …`, `FAILED … - UserWarning: …`) does not make it one.
fn is_warning(trimmed: &[u8]) -> bool {
    let word = trimmed.split(|&b| b == b':' || b == b'[').next().unwrap_or_default();
    if word.eq_ignore_ascii_case(b"warning") && trimmed.len() > word.len() {
        return true;
    }
    if trimmed.starts_with(b"npm WARN")
        || trimmed.starts_with(b"npm warn")
        || trimmed.starts_with(b"(Use `node --trace-")
    {
        return true;
    }
    // `SomethingWarning:` (or node's `Warning:`), at the start or after the warning's place.
    memchr::memmem::find_iter(trimmed, b"Warning:").any(|at| {
        let start = trimmed[..at].iter().rposition(|b| !b.is_ascii_alphanumeric() && *b != b'_').map_or(0, |i| i + 1);
        let place = &trimmed[..start];
        place.is_empty() || ends_with_line_number(place) || is_node_place(place)
    })
}

/// Python's `file:LINE: ` before a warning (`x.py:3: `, `sys:1: `, `<frozen importlib._bootstrap>:488: `).
fn ends_with_line_number(place: &[u8]) -> bool {
    let Some(rest) = place.strip_suffix(b": ") else { return false };
    let digits = rest.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[..rest.len() - digits].len() > 1 && rest[..rest.len() - digits].ends_with(b":")
}

/// node's `(node:PID) ` or `(node:PID) [CODE] ` before a warning.
fn is_node_place(place: &[u8]) -> bool {
    let Some(rest) = place.strip_prefix(b"(node:") else { return false };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(rest) = rest[digits..].strip_prefix(b") ") else { return false };
    rest.is_empty() || rest.starts_with(b"[") && rest.ends_with(b"] ")
}

/// A line that looks like an error: `error: …`, `error[E0308]: …`, `TypeError: …`, `Error: expect(…)`,
/// `ERROR …`, `npm ERR!`, `Traceback (most recent call last):`, `FAILED …`, `FAIL …`, `--- FAIL: …`, Rust's
/// `panicked at`, and pytest's `E   ` lines.
fn is_error(text: &[u8], trimmed: &[u8]) -> bool {
    if text.starts_with(b"E ") || text == b"E" {
        return true;
    }
    let word_len = trimmed.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'.').count();
    let (word, next) = (&trimmed[..word_len], trimmed.get(word_len).copied());
    let errorish = word.ends_with(b"Error") || word.ends_with(b"Exception") || word == b"error";
    if errorish && matches!(next, None | Some(b':' | b'[')) {
        return true;
    }
    if matches!(word, b"ERROR" | b"FAILED" | b"FAIL") && matches!(next, None | Some(b' ' | b':' | b'!' | b']')) {
        return true;
    }
    trimmed.starts_with(b"Traceback (most recent call last)")
        || trimmed.starts_with(b"--- FAIL")
        || trimmed.starts_with(b"npm ERR!")
        || trimmed.starts_with(b"npm error")
        || memchr::memmem::find(trimmed, b"panicked at").is_some()
        || memchr::memmem::find(trimmed, b"error TS").is_some()
}

/// Explains a failure without being an error: `Expected: 3` / `Received string: "x"` (Jest, Vitest,
/// Playwright), `+ Received` (a diff's header), pytest's `>   assert …` and Playwright's `> 5 |   await …`.
fn explains(trimmed: &[u8]) -> bool {
    for word in [&b"Expected"[..], b"Received"] {
        if let Some(rest) = trimmed.strip_prefix(word) {
            let head = &rest[..rest.len().min(24)];
            if rest.first().is_some_and(|b| *b == b':' || *b == b' ') && memchr::memchr(b':', head).is_some() {
                return true;
            }
        }
    }
    if trimmed.starts_with(b"+ Received") {
        return true;
    }
    match trimmed.strip_prefix(b">") {
        Some(rest) if rest.starts_with(b"  ") => true,
        Some(rest) => {
            let rest = rest.trim_ascii_start();
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            digits > 0 && rest[digits..].trim_ascii_start().starts_with(b"|")
        }
        None => false,
    }
}

/// Whether a line points at a place in a file: `name.ext:LINE` (as compilers, linters and test runners print), or
/// Python's `File "...", line N`.
fn has_location(line: &[u8]) -> bool {
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
    use crate::report::tail_samples::{
        PLAYWRIGHT, PLAYWRIGHT_AFTER_NODE_WARNING, PYTEST, PYTEST_W_ERROR, PYTHON_W_ERROR, RUSTC, TRACEBACK,
    };

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        let mut rules = Rules::default();
        text.lines().map(|l| (rules.classify(l.as_bytes()), l)).collect()
    }

    fn of(kinds: &[(Kind, &str)], kind: Kind) -> Vec<String> {
        kinds.iter().filter(|(k, _)| *k == kind).map(|(_, l)| l.trim().to_string()).collect()
    }

    #[test]
    fn warnings_are_noise() {
        for noise in [
            "warning: unused variable: `y`",
            "WARNING: Running pip as the 'root' user can result in broken permissions",
            "npm WARN deprecated inflight@1.0.6: This module is not supported",
            "npm warn deprecated glob@7.2.3: Glob versions prior to v9 are no longer supported",
            "/app/tests/test_math.py:12: DeprecationWarning: old_api is deprecated",
            "(node:4242) [DEP0040] DeprecationWarning: The `punycode` module is deprecated.",
            "(Use `node --trace-deprecation ...` to show where the warning was created)",
            "(node:22296) Warning: Closing file descriptor 21 on garbage collection",
            "DeprecationWarning: old_api is deprecated",
            "sys:1: ResourceWarning: unclosed file <_io.TextIOWrapper name='x' mode='r' encoding='UTF-8'>",
            "<frozen importlib._bootstrap>:488: DeprecationWarning: builtin type SwigPyPacked has no __module__",
        ] {
            assert_eq!(Rules::default().classify(noise.as_bytes()), Kind::Noise, "{noise}");
        }
        for not in ["1 passed, 1 warning in 0.02s", "warnings: none", "no warning here", "warning"] {
            assert_ne!(Rules::default().classify(not.as_bytes()), Kind::Noise, "{not}");
        }
    }

    #[test]
    fn errors_are_recognised() {
        for error in [
            "error[E0308]: mismatched types",
            "error: could not compile `app`",
            "Error: expect(received).toBe(expected) // Object.is equality",
            "AssertionError: assert 1 == 2",
            "AssertionError",
            "requests.exceptions.ConnectionError: boom",
            "E       assert 1 == 2",
            "Traceback (most recent call last):",
            "FAILED tests/test_math.py::test_adds - assert 2 == 3",
            " FAIL  src/App.test.tsx > adds",
            "--- FAIL: TestAdd (0.00s)",
            "thread 'main' panicked at src/main.rs:2:5:",
            "npm ERR! code ELIFECYCLE",
            "ERROR: Could not find a version that satisfies the requirement nope",
            "src/App.tsx(3,7): error TS2322: Type 'string' is not assignable to type 'number'.",
        ] {
            assert_eq!(Rules::default().classify(error.as_bytes()), Kind::FirstError, "{error}");
        }
        for not in ["errors: 0", "Everything fine", "Errors are reported below", "FAILURES", "Ending"] {
            assert_eq!(Rules::default().classify(not.as_bytes()), Kind::Plain, "{not}");
        }
    }

    #[test]
    fn colour_codes_do_not_hide_a_line_s_kind() {
        let mut rules = Rules::default();
        assert_eq!(rules.classify(b"\x1b[1m\x1b[31mE       assert 2 == 3\x1b[0m"), Kind::FirstError);
        assert_eq!(rules.classify(b"    Expected: \x1b[32m3\x1b[39m"), Kind::FirstError, "context after the error");
        assert_eq!(rules.classify(b"\x1b[33mwarning\x1b[0m\x1b[1m: unused variable\x1b[0m"), Kind::Noise);
    }

    /// The lines kept when they scroll out: the first error's block and the lines that explain.
    fn kept(kinds: &[(Kind, &str)]) -> Vec<String> {
        let mut out = of(kinds, Kind::FirstError);
        out.extend(of(kinds, Kind::Explains));
        out
    }

    /// pytest, with a warning: the `>` and `E` lines and the location explain; the warnings summary is noise.
    #[test]
    fn a_pytest_failure_with_warnings() {
        let k = kinds(PYTEST);
        assert_eq!(
            of(&k, Kind::Noise),
            [
                "=============================== warnings summary ===============================",
                "tests/test_math.py::test_old",
                "/app/tests/test_math.py:12: DeprecationWarning: old_api is deprecated",
                "warnings.warn(\"old_api is deprecated\", DeprecationWarning)",
                "",
                "-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html",
            ]
        );
        let first = of(&k, Kind::FirstError);
        assert_eq!(
            first[..3],
            ["E       assert 2 == 3", "E        +  where 2 = add(1, 1)", "tests/test_math.py:7: AssertionError"]
        );
        let kept = kept(&k);
        assert!(kept.contains(&">       assert add(1, 1) == 3".to_string()), "{k:#?}");
        assert!(kept.contains(&"FAILED tests/test_math.py::test_adds - assert 2 == 3".to_string()), "{k:#?}");
    }

    /// Playwright: the error, `Expected`/`Received`, the diff and the `>` line of the excerpt explain.
    #[test]
    fn a_playwright_failure() {
        let k = kinds(PLAYWRIGHT);
        let first = of(&k, Kind::FirstError);
        assert_eq!(first[0], "Error: Timed out 5000ms waiting for expect(locator).toHaveText(expected)");
        let kept = kept(&k);
        for line in [
            "Expected string: \"Vite + React!\"",
            "Received string: \"Vite + React\"",
            "> 5 |   await expect(page.getByRole('heading')).toHaveText('Vite + React!');",
            "at /app/e2e/home.spec.ts:5:43",
            "Error: expect(received).toEqual(expected) // deep equality",
            "- Expected  - 1",
            "+ Received  + 1",
            "Object {",
            "-   \"count\": 3,",
            "+   \"count\": 2,",
            "}",
            "> 11 |   expect(state).toEqual({ count: 3 });",
        ] {
            assert!(kept.contains(&line.to_string()), "{line}: {k:#?}");
        }
        for plain in ["4 |   await page.goto('/');", "Running 2 tests using 1 worker", "2 failed"] {
            assert!(!kept.contains(&plain.to_string()), "{plain}");
        }
        assert!(of(&k, Kind::Noise).is_empty());
    }

    /// rustc: the warning's whole block is noise, the error's block explains.
    #[test]
    fn a_rust_compile_error_after_a_warning() {
        let k = kinds(RUSTC);
        let noise = of(&k, Kind::Noise);
        assert_eq!(noise.len(), 8, "{noise:#?}");
        assert!(noise.contains(&"--> src/main.rs:2:9".to_string()));
        let first = of(&k, Kind::FirstError);
        assert_eq!(first[..3], ["error[E0308]: mismatched types", "--> src/main.rs:3:18", "|"]);
        assert!(of(&k, Kind::Explains).iter().any(|l| l.starts_with("error: could not compile")));
    }

    /// Python: the traceback starts the block; its `File` lines and the exception explain; a warning is noise.
    #[test]
    fn a_python_traceback() {
        let k = kinds(TRACEBACK);
        assert_eq!(of(&k, Kind::FirstError)[0], "Traceback (most recent call last):");
        let explains = of(&k, Kind::Explains);
        assert!(explains.contains(&"KeyError: 'DATABASE_URL'".to_string()), "{k:#?}");
        assert!(explains.contains(&"File \"<frozen os>\", line 714, in __getitem__".to_string()), "{k:#?}");
        assert_eq!(
            of(&k, Kind::Noise),
            ["/app/settings.py:4: UserWarning: DEBUG is on", "warnings.warn(\"DEBUG is on\")"]
        );
    }

    /// A line is noise only when it is a warning's own line: one that mentions a warning and is an error, or
    /// explains, is kept.
    #[test]
    fn a_warning_that_is_an_error_or_explains_is_not_noise() {
        for line in [
            "E       DeprecationWarning: old_api is deprecated",
            "FAILED tests/t.py::test_old - DeprecationWarning: old_api is deprecated",
            "Error: expected no UserWarning: got one",
            "Expected: \"no DeprecationWarning: at all\"",
        ] {
            assert_ne!(Rules::default().classify(line.as_bytes()), Kind::Noise, "{line}");
        }
        assert_eq!(Rules::default().classify(b"collected 3 items; UserWarning: seen"), Kind::Plain, "not its own line");
    }

    /// A warning's block ends at a line that is an error or explains, indented or not.
    #[test]
    fn a_warning_block_ends_at_an_error_or_a_line_that_explains() {
        let k = kinds("(node:1) Warning: something\n    Expected: 3\n    Received: 2\n");
        assert_eq!(of(&k, Kind::Noise), ["(node:1) Warning: something"], "{k:#?}");
        let k = kinds("warning: unused\n  |\n    Error: boom\n      at x (/app/a.js:1:2)\n");
        assert_eq!(of(&k, Kind::Noise), ["warning: unused", "|"], "{k:#?}");
        assert_eq!(of(&k, Kind::FirstError), ["Error: boom", "at x (/app/a.js:1:2)"], "{k:#?}");
    }

    /// pytest with warnings raised as errors: the `E` line and the `FAILED` line are the failure, not noise.
    #[test]
    fn a_pytest_failure_from_a_warning_raised_as_an_error() {
        let k = kinds(PYTEST_W_ERROR);
        assert!(of(&k, Kind::Noise).is_empty(), "{k:#?}");
        let first = of(&k, Kind::FirstError);
        assert_eq!(first[0], "E       DeprecationWarning: old_api is deprecated");
        let kept = kept(&k);
        for line in [
            ">       warnings.warn(\"old_api is deprecated\", DeprecationWarning)",
            "app/api.py:5: DeprecationWarning",
            "FAILED tests/test_api.py::test_old_api - DeprecationWarning: old_api is deprecated",
        ] {
            assert!(kept.contains(&line.to_string()), "{line}: {k:#?}");
        }
    }

    /// `python -W error`: the traceback's last line is the warning, raised: the exception that explains.
    #[test]
    fn a_python_traceback_ending_in_a_warning_raised_as_an_error() {
        let k = kinds(PYTHON_W_ERROR);
        assert!(of(&k, Kind::Noise).is_empty(), "{k:#?}");
        assert_eq!(of(&k, Kind::FirstError)[0], "Traceback (most recent call last):");
        assert!(of(&k, Kind::Explains).contains(&"DeprecationWarning: old_api is deprecated".to_string()), "{k:#?}");
    }

    /// node's warning just before Playwright's indented failure: the warning is noise, the failure is not.
    #[test]
    fn a_node_warning_before_a_playwright_failure() {
        let k = kinds(PLAYWRIGHT_AFTER_NODE_WARNING);
        let noise = of(&k, Kind::Noise);
        assert_eq!(noise.len(), 2, "{k:#?}");
        assert!(noise[0].starts_with("(node:4242) [DEP0005] DeprecationWarning: Buffer() is deprecated"));
        assert!(noise[1].starts_with("(Use `node --trace-deprecation"));
        assert_eq!(of(&k, Kind::FirstError)[0], "Error: expect(received).toBe(expected) // Object.is equality");
        let kept = kept(&k);
        for line in ["Expected: 3", "Received: 2", "> 5 |   expect(count).toBe(3);", "at /app/e2e/count.spec.ts:5:17"] {
            assert!(kept.contains(&line.to_string()), "{line}: {k:#?}");
        }
    }

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
}
