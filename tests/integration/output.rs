//! Task output: prefixed, whole lines, bytes untouched, never stalled; colour only when wanted.

use crate::harness::Project;

#[test]
fn lines_are_prefixed_with_the_task_name() {
    let p = Project::new("[tasks.hello]\ncmd = \"echo out; echo err >&2\"\n[tasks.x]\ncmd = \"true\"\n");
    let out = p.irun().args(["hello", "x"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("hello | out\n"), "{out:?}");
    assert!(out.stdout.contains("hello | err\n"), "{out:?}");
}

#[test]
fn parallel_output_never_mixes_mid_line() {
    let line = "x".repeat(3000);
    let script = format!("for i in $(seq 1 300); do echo \"$i {line}\"; done");
    let p = Project::new(&format!("[tasks.aa]\ncmd = '{script}'\n[tasks.bb]\ncmd = '{script}'\n"));
    let out = p.irun().args(["-j2", "aa", "bb"]).run();
    assert_eq!(out.code, 0);
    let mut counts = [0, 0];
    for l in out.stdout.lines().filter(|l| l.contains(" | ")) {
        let (prefix, rest) = l.split_once(" | ").unwrap();
        let (_, payload) = rest.split_once(' ').unwrap_or_else(|| panic!("mangled line: {l:.80}"));
        assert_eq!(payload, line, "mangled line: {l:.80}");
        counts[if prefix.trim() == "aa" { 0 } else { 1 }] += 1;
    }
    assert_eq!(counts, [300, 300]);
}

#[test]
fn non_utf8_bytes_pass_through_unharmed() {
    let p = Project::new(
        "[tasks.bin]\ncmd = [\"python3\", \"-c\", \"import sys; sys.stdout.buffer.write(b'caf\\\\xe9 \\\\xff\\\\xfe end\\\\nno newline \\\\x80')\"]\n",
    );
    let out = p.irun().args(["bin"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let needle = b"bin | caf\xe9 \xff\xfe end\nbin | no newline \x80\n";
    assert!(out.stdout_bytes.windows(needle.len()).any(|w| w == needle), "{out:?}");
}

#[test]
fn a_task_printing_a_lot_does_not_stall() {
    // 8 MB on each stream, far beyond any pipe buffer, and one 1 MB line with no newline.
    let p = Project::new(
        "[tasks.loud]\ncmd = [\"python3\", \"-c\", \"import sys\\nfor i in range(100000): print('o' * 80); print('e' * 80, file=sys.stderr)\\nsys.stdout.write('z' * 1000000)\"]\n",
    );
    let out = p.irun().args(["loud"]).run();
    assert_eq!(out.code, 0, "irun did not finish");
    assert_eq!(out.stdout.lines().filter(|l| l.ends_with(&"o".repeat(80))).count(), 100000);
    assert_eq!(out.stdout.lines().filter(|l| l.ends_with(&"e".repeat(80))).count(), 100000);
    let z: usize = out.stdout.lines().filter(|l| l.starts_with("loud | z")).map(|l| l.len() - "loud | ".len()).sum();
    assert_eq!(z, 1000000, "the long line arrives whole, in pieces");
}

#[test]
fn summary_lists_every_task_with_status_and_total_time() {
    let p = Project::new(
        "[tasks.good]\ncmd = \"true\"\n[tasks.bad]\ncmd = \"echo oops; exit 4\"\ndeps = [\"good\"]\n[tasks.never]\ncmd = \"true\"\ndeps = [\"bad\"]\n",
    );
    let out = p.irun().args(["-k", "never"]).run();
    assert_eq!(out.code, 1);
    let summary = out.stdout.split("irun: summary\n").nth(1).expect("summary");
    let rows: Vec<&str> = summary.lines().take(3).collect();
    assert!(rows[0].contains("ok") && rows[0].contains("good") && rows[0].ends_with('s'), "{summary}");
    assert!(rows[1].contains("failed") && rows[1].contains("bad") && rows[1].contains("exit code 4"), "{summary}");
    assert!(
        rows[2].contains("skipped") && rows[2].contains("never") && rows[2].contains("dep `bad` failed"),
        "{summary}"
    );
    assert!(summary.contains("oops"), "failed task's last lines repeated: {summary}");
    let last = summary.lines().last().unwrap();
    assert!(last.starts_with("irun: failed: 1 ok, 1 failed, 1 skipped in "), "{last}");
}

#[test]
fn no_color_unless_asked() {
    let p = Project::new("[tasks.a]\ncmd = \"echo hi\"\n");
    let plain = p.irun().args(["a"]).run();
    assert!(!plain.stdout.contains('\x1b'), "not a terminal: no escape codes: {plain:?}");
    let forced = p.irun().args(["--color", "always", "a"]).run();
    assert!(forced.stdout.contains('\x1b'), "{forced:?}");
    let no_color = p.irun().args(["--color", "auto", "a"]).env("NO_COLOR", "1").run();
    assert!(!no_color.stdout.contains('\x1b'), "{no_color:?}");
}

#[test]
fn a_line_of_exactly_64_kib_gains_no_empty_line() {
    let p = Project::new(
        "[tasks.edge]\ncmd = [\"python3\", \"-c\", \"import sys; sys.stdout.write('x' * 65536 + '\\\\n'); sys.stdout.flush(); sys.stdout.write('next\\\\n')\"]\n",
    );
    let out = p.irun().args(["edge"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("edge | ")).map(|l| &l[7..]).collect();
    assert_eq!(lines.len(), 2, "{:?}", lines.iter().map(|l| l.len()).collect::<Vec<_>>());
    assert_eq!(lines[0].len(), 65536);
    assert_eq!(lines[1], "next");
}

#[test]
fn on_failure_output_is_hidden_for_a_passing_task_and_shown_for_a_failing_one() {
    let p = Project::new(
        "[tasks.pass]\ncmd = \"echo chatter from pass\"\noutput = \"on-failure\"\n\
         [tasks.fail]\ncmd = \"echo clue from fail; exit 3\"\noutput = \"on-failure\"\n\
         [tasks.loud]\ncmd = \"echo loud says hi\"\n",
    );
    for mode in ["prefixed", "grouped"] {
        let out = p.irun().args(["--progress", "never", "--output", mode, "-k", "pass", "fail", "loud"]).run();
        assert_eq!(out.code, 1, "{mode}: {out:?}");
        assert!(!out.stdout.contains("chatter from pass"), "{mode}: a passing task's output is hidden: {out:?}");
        assert!(out.stdout.contains("pass") && out.stdout.contains("(output hidden: 1 line)"), "{mode}: {out:?}");
        assert!(out.stdout.contains("clue from fail"), "{mode}: a failing task's output is shown: {out:?}");
        assert!(out.stdout.contains("loud says hi"), "{mode}: live output is unchanged: {out:?}");
    }
    // Machine-readable events keep every line.
    let out = p.irun().args(["--json", "-k", "pass", "fail"]).run();
    assert!(out.stdout.contains("chatter from pass"), "{out:?}");
}

#[test]
fn an_on_failure_service_shows_its_output_only_if_it_never_becomes_ready() {
    let p = Project::new(
        "[tasks.svc]\ncmd = \"echo svc starting up; exec sleep 600\"\ndaemon = true\noutput = \"on-failure\"\n\
         ready = { exec = \"test -e ready-now\", timeout = \"300ms\" }\n\
         [tasks.use]\ncmd = \"true\"\ndeps = [\"svc\"]\n",
    );
    let out = p.irun().args(["--progress", "never", "use"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("svc | svc starting up"), "an unready service's output is shown: {out:?}");
    p.file("ready-now", "");
    let out = p.irun().args(["--progress", "never", "use"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("svc starting up"), "a service that did its job stays quiet: {out:?}");
}

#[test]
fn the_failure_tail_has_the_chosen_length_and_keeps_file_line_lines() {
    let p = Project::new(
        "[tasks.t]\ncmd = \"echo 'tests/test_x.py:33: AssertionError'; for i in $(seq 1 30); do echo noise $i; done; exit 1\"\n",
    );
    let out = p.irun().args(["--progress", "never", "--tail", "4", "t"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let summary = out.stdout.split("irun: summary").nth(1).unwrap_or_default();
    assert!(
        summary.contains("last 4 lines of t's output:\n  tests/test_x.py:33: AssertionError\n  ...\n  noise 27\n"),
        "{out:?}"
    );
    assert!(!summary.contains("noise 26"), "{out:?}");
    let out = p.irun().args(["--progress", "never", "--tail", "0", "t"]).run();
    assert!(!out.stdout.contains("lines of t's output"), "--tail 0 shows no tail: {out:?}");
}

#[test]
fn held_back_output_is_bounded_even_for_empty_lines() {
    // A million empty lines hold no bytes of text, but each one is a line kept in memory: the bound counts them.
    let p = Project::new("[tasks.t]\ncmd = \"yes '' | head -n 1000000; exit 1\"\noutput = \"on-failure\"\n");
    let out = p.irun().args(["--progress", "never", "--tail", "0", "t"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let note = out.stdout.lines().find(|l| l.contains("output held back until it failed")).expect("a note");
    assert!(note.contains("earlier lines dropped"), "{note}");
    assert!(out.stdout.lines().filter(|l| *l == "t | ").count() < 1_000_000, "not every line was kept");
}

/// A pytest failure with a warning (as pytest prints it), then a Playwright one: the summary's tail keeps the `E`
/// lines and `Expected:`/`Received:` that scrolled out of the last lines, and none of the warnings.
#[test]
fn the_failure_tail_keeps_what_explains_a_failure_and_drops_warnings() {
    let p = Project::new("[tasks.t]\ncmd = \"cat pytest.txt playwright.txt; exit 1\"\n");
    p.file(
        "pytest.txt",
        "tests/test_math.py .F.                                                   [100%]\n\
         \n\
         =================================== FAILURES ===================================\n\
         \x20   def test_adds():\n\
         >       assert add(1, 1) == 3\n\
         E       assert 2 == 3\n\
         E        +  where 2 = add(1, 1)\n\
         \n\
         tests/test_math.py:7: AssertionError\n\
         =============================== warnings summary ===============================\n\
         tests/test_math.py::test_old\n\
         \x20 /app/tests/test_math.py:12: DeprecationWarning: old_api is deprecated\n\
         \x20   warnings.warn(\"old_api is deprecated\", DeprecationWarning)\n\
         \n\
         -- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html\n\
         ==================== 1 failed, 2 passed, 1 warning in 0.03s ====================\n",
    );
    p.file(
        "playwright.txt",
        "npm WARN deprecated inflight@1.0.6: This module is not supported\n\
         \x20   Error: expect(received).toBe(expected) // Object.is equality\n\
         \n\
         \x20   Expected: 3\n\
         \x20   Received: 2\n\
         \n\
         \x20     4 |   const n = count();\n\
         \x20   > 5 |   expect(n).toBe(3);\n\
         \x20       |             ^\n\
         \n\
         \x20       at /app/e2e/count.spec.ts:5:13\n\
         \n\
         \x20 1 failed\n\
         \x20 1 passed (1.2s)\n",
    );
    let out = p.irun().args(["--progress", "never", "t"]).run();
    assert_eq!(out.code, 1, "{out:?}");
    let summary = out.stdout.split("irun: summary").nth(1).unwrap_or_default();
    let tail: Vec<&str> = summary.lines().skip_while(|l| !l.contains("of t's output:")).skip(1).collect();
    for line in ["E       assert 2 == 3", "Expected: 3", "Received: 2", "> 5 |   expect(n).toBe(3);", "1 passed (1.2s)"]
    {
        assert!(tail.iter().any(|l| l.trim() == line), "{line} is in the tail: {tail:#?}");
    }
    for noise in ["DeprecationWarning", "warnings summary", "warnings.warn", "npm WARN", "-- Docs"] {
        assert!(!tail.iter().any(|l| l.contains(noise)), "{noise} is not in the tail: {tail:#?}");
    }
    let above = tail.iter().take_while(|l| l.trim() != "...").count();
    assert!(above <= 10 && tail.len() <= 10 + 1 + 10, "at most --tail lines above the `...` and below: {tail:#?}");
}
