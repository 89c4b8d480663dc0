//! Reports as the tools write them: pytest (both of its families), Maven surefire / JUnit 5, jest-junit; and the
//! ones no tool should write.

use super::*;

/// pytest 8's default family (`junit_family = "xunit2"`): one `pytest` suite, a pass, a failure, a fixture error
/// and a skip.
const PYTEST_XUNIT2: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="0.052" timestamp="2025-01-10T10:00:00.123456+00:00" hostname="ci-runner"><testcase classname="tests.test_db" name="test_connect" time="0.004" /><testcase classname="tests.test_db" name="test_query[sqlite]" time="0.002"><failure message="AssertionError: assert [1, 2] == [1, 3]&#10;  At index 1 diff: 2 != 3">engine = &lt;Engine&gt;

    def test_query(engine):
&gt;       assert rows(engine) == [1, 3]
E       AssertionError: assert [1, 2] == [1, 3]

tests/test_db.py:12: AssertionError</failure></testcase><testcase classname="tests.test_db" name="test_migrate" time="0.000"><error message="failed on setup with &quot;RuntimeError: no database&quot;">@pytest.fixture
    def database():
&gt;       raise RuntimeError("no database")
E       RuntimeError: no database

tests/conftest.py:5: RuntimeError</error></testcase><testcase classname="tests.test_db" name="test_vacuum" time="0.000"><skipped type="pytest.skip" message="needs postgres">tests/test_db.py:20: needs postgres</skipped></testcase></testsuite></testsuites>"#;

/// pytest's `junit_family = "xunit1"`: `file` and `line` on each case, properties inside it, captured output.
const PYTEST_XUNIT1: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="1" time="0.010" timestamp="2025-01-10T10:00:00.000000+00:00" hostname="h"><testcase classname="test_x" name="test_prints" file="test_x.py" line="3" time="0.001"><properties><property name="owner" value="db team" /></properties><system-out>hello from the test
</system-out><system-err>a warning</system-err></testcase></testsuite></testsuites>"#;

/// Maven surefire 3 (JUnit 5): a `<testsuite>` root, CDATA, a rerun that is not the result, thousands separators.
const SUREFIRE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report-3.0.xsd" version="3.0" name="com.example.CalculatorTest" time="1,234.567" tests="3" errors="0" skipped="1" failures="1">
  <properties>
    <property name="java.version" value="21.0.2"/>
  </properties>
  <testcase name="adds" classname="com.example.CalculatorTest" time="1,000.5"/>
  <testcase name="divides" classname="com.example.CalculatorTest" time="0.003">
    <failure message="expected: &lt;2&gt; but was: &lt;3&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <2> but was: <3>
	at com.example.CalculatorTest.divides(CalculatorTest.java:20)
]]></failure>
    <system-out><![CDATA[dividing 6 by 2 & <rounding>
]]></system-out>
    <rerunFailure message="flaky" type="org.opentest4j.AssertionFailedError">
      <stackTrace><![CDATA[not the result]]></stackTrace>
    </rerunFailure>
  </testcase>
  <testcase name="subtracts" classname="com.example.CalculatorTest" time="0">
    <skipped message="not implemented"/>
  </testcase>
</testsuite>
"#;

/// jest-junit's defaults: a suite per test file, the failure's text without a message.
const JEST_JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="jest tests" tests="2" failures="1" errors="0" time="1.234">
  <testsuite name="math.test.js" errors="0" failures="1" skipped="0" timestamp="2025-01-10T10:00:00" time="0.8" tests="2">
    <testcase classname="math adds" name="math adds" time="0.002">
    </testcase>
    <testcase classname="math divides by zero" name="math divides by zero" time="0.004">
      <failure>Error: expect(received).toThrow()

Received function did not throw
    at Object.toThrow (/app/math.test.js:9:28)</failure>
    </testcase>
  </testsuite>
</testsuites>
"#;

fn read(xml: &str) -> TestReports {
    let mut reports = TestReports::default();
    reports.read("r.xml", xml.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
    reports
}

fn case<'a>(reports: &'a TestReports, name: &str) -> &'a Case {
    reports.cases().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}: {reports:#?}"))
}

fn detail(case: &Case) -> &Detail {
    match &case.status {
        Status::Failed(d) | Status::Error(d) | Status::Skipped(d) => d,
        Status::Passed => panic!("{case:?} passed"),
    }
}

#[test]
fn pytest_xunit2_gives_each_case_with_its_class_time_and_result() {
    let r = read(PYTEST_XUNIT2);
    assert_eq!(r.files, ["r.xml"]);
    assert_eq!(r.counts, Counts { tests: 4, failures: 1, errors: 1, skipped: 1 });
    assert_eq!(r.suites.len(), 1);
    assert_eq!(r.suites[0].name, "pytest");
    let pass = case(&r, "test_connect");
    assert_eq!((pass.classname.as_deref(), pass.time), (Some("tests.test_db"), Some(Duration::from_millis(4))));
    assert_eq!(pass.status, Status::Passed);
    let fail = case(&r, "test_query[sqlite]");
    assert!(matches!(fail.status, Status::Failed(_)));
    let d = detail(fail);
    assert_eq!(d.message.as_deref(), Some("AssertionError: assert [1, 2] == [1, 3]\n  At index 1 diff: 2 != 3"));
    assert!(d.text.starts_with("engine = <Engine>\n\n    def test_query"), "{:?}", d.text);
    assert!(d.text.contains(">       assert rows(engine) == [1, 3]\n"), "{:?}", d.text);
    assert!(d.text.ends_with("tests/test_db.py:12: AssertionError"), "{:?}", d.text);
    let error = case(&r, "test_migrate");
    assert!(matches!(error.status, Status::Error(_)));
    assert_eq!(detail(error).message.as_deref(), Some("failed on setup with \"RuntimeError: no database\""));
    let skip = case(&r, "test_vacuum");
    assert!(matches!(skip.status, Status::Skipped(_)));
    let d = detail(skip);
    assert_eq!((d.message.as_deref(), d.kind.as_deref()), (Some("needs postgres"), Some("pytest.skip")));
    assert_eq!(d.text, "tests/test_db.py:20: needs postgres");
    assert_eq!(r.failed().collect::<Vec<_>>(), ["test_query[sqlite]", "test_migrate"]);
}

#[test]
fn pytest_xunit1_keeps_each_cases_output_and_passes_over_its_properties() {
    let r = read(PYTEST_XUNIT1);
    assert_eq!(r.counts, Counts { tests: 1, ..Counts::default() });
    let c = case(&r, "test_prints");
    assert_eq!(c.status, Status::Passed);
    assert_eq!(c.system_out.as_deref(), Some("hello from the test\n"));
    assert_eq!(c.system_err.as_deref(), Some("a warning"));
}

#[test]
fn surefire_reports_have_a_testsuite_root_and_cdata_and_their_reruns_are_not_results() {
    let r = read(SUREFIRE);
    assert_eq!(r.counts, Counts { tests: 3, failures: 1, errors: 0, skipped: 1 });
    assert_eq!(r.suites[0].name, "com.example.CalculatorTest");
    assert_eq!(case(&r, "adds").time, Some(Duration::from_millis(1_000_500)), "1,000.5 seconds");
    let divides = case(&r, "divides");
    let d = detail(divides);
    assert_eq!(d.message.as_deref(), Some("expected: <2> but was: <3>"));
    assert_eq!(d.kind.as_deref(), Some("org.opentest4j.AssertionFailedError"));
    assert!(d.text.starts_with("org.opentest4j.AssertionFailedError: expected: <2> but was: <3>\n\tat com."));
    assert!(!d.text.contains("not the result"), "{d:?}");
    assert_eq!(divides.system_out.as_deref(), Some("dividing 6 by 2 & <rounding>\n"));
    assert_eq!(case(&r, "subtracts").time, Some(Duration::ZERO));
    assert_eq!(detail(case(&r, "subtracts")).message.as_deref(), Some("not implemented"));
}

#[test]
fn jest_junit_failures_have_only_their_text() {
    let r = read(JEST_JUNIT);
    assert_eq!(r.counts, Counts { tests: 2, failures: 1, errors: 0, skipped: 0 });
    let failed = case(&r, "math divides by zero");
    assert_eq!(failed.classname.as_deref(), Some("math divides by zero"));
    let d = detail(failed);
    assert_eq!(d.message, None);
    assert!(d.text.starts_with("Error: expect(received).toThrow()\n\nReceived function did not throw"), "{d:?}");
    assert_eq!(case(&r, "math adds").status, Status::Passed);
}

#[test]
fn nested_suites_are_flattened_and_suite_output_stays_with_its_suite() {
    let xml = "<testsuites><testsuite name=\"outer\"><testsuite name=\"inner\"><testcase name=\"a\"/></testsuite>\
               <testcase name=\"b\" classname=\"\"/><system-out>suite said &amp; left</system-out></testsuite>\
               </testsuites>";
    let r = read(xml);
    let names: Vec<(&str, Vec<&str>)> =
        r.suites.iter().map(|s| (s.name.as_str(), s.cases.iter().map(|c| c.name.as_str()).collect())).collect();
    assert_eq!(names, [("outer", vec!["b"]), ("inner", vec!["a"])]);
    assert_eq!(r.suites[0].system_out.as_deref(), Some("suite said & left"));
    assert_eq!(case(&r, "b").classname, None, "an empty classname is none");
}

#[test]
fn reports_from_several_files_add_up() {
    let mut r = TestReports::default();
    r.read("a.xml", PYTEST_XUNIT2.as_bytes()).unwrap();
    r.read("b.xml", JEST_JUNIT.as_bytes()).unwrap();
    assert_eq!(r.files, ["a.xml", "b.xml"]);
    assert_eq!(r.counts, Counts { tests: 6, failures: 2, errors: 1, skipped: 1 });
    assert_eq!(r.suites.len(), 2);
}

/// What reading `xml` says is wrong, with the line and column of the place.
fn malformed(xml: impl AsRef<[u8]>) -> String {
    let xml = xml.as_ref();
    let mut r = TestReports::default();
    let e = r.read("bad.xml", xml).expect_err("malformed");
    assert_eq!(r, TestReports::default(), "nothing of a malformed report is kept");
    match e.offset {
        Some(offset) => {
            let (line, column) = line_column(xml, offset);
            format!("{} at line {line} column {column}", e.what)
        }
        None => e.what,
    }
}

#[test]
fn a_malformed_report_says_what_is_wrong_and_where() {
    let e =
        malformed("<testsuites>\n  <testsuite name=\"s\">\n    <testcase name=\"a\">\n  </testsuite>\n</testsuites>");
    assert!(e.contains("testcase") && e.ends_with("at line 4 column 3"), "{e}");
    let e = malformed("<testsuite name=\"s\">\n<testcase name=\"a\"/>\n");
    assert!(e.starts_with("the file ends before `</testsuite>`"), "{e}");
    let e = malformed("<html><body>not a report</body></html>");
    assert!(e.starts_with("not a JUnit report: its root element is `<html>`"), "{e}");
    assert_eq!(malformed(""), "it holds no XML element");
    assert_eq!(malformed("junk"), "it holds no XML element");
    let e = malformed(b"<testsuite><testcase name=\"a\"><failure>\xff</failure></testcase></testsuite>");
    assert!(e.contains("UTF-8") || e.contains("utf-8"), "{e}");
    assert!(malformed("<testsuite><testcase name=\"&nope;\"/></testsuite>").contains("nope"));
    let e = malformed("<testsuite><failure>&bogus;</failure></testsuite>");
    assert!(e.starts_with("unknown entity `&bogus;`"), "{e}");
    let e = malformed("<testsuite/><testsuite/>");
    assert!(e.starts_with("a second root element `<testsuite>`"), "{e}");
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(line_column("ab\ncdé<".as_bytes(), "ab\ncdé".len() as u64), (2, 4));
    assert_eq!(line_column("".as_bytes(), 0), (1, 1));
}

#[test]
fn a_long_text_keeps_its_end_from_the_start_of_a_line() {
    let line = "x".repeat(99) + "\n";
    let body = line.repeat(3 * TEXT_MAX / line.len()) + "the end";
    let xml = format!("<testsuite><testcase name=\"a\"><failure>{body}</failure></testcase></testsuite>");
    let r = read(&xml);
    let text = &detail(case(&r, "a")).text;
    let (note, kept) = text.split_once('\n').unwrap();
    assert!(note.starts_with("[irun: the first ") && note.ends_with(" bytes of this text are left out]"), "{note}");
    assert!(kept.len() <= TEXT_MAX && kept.len() > TEXT_MAX - line.len(), "{}", kept.len());
    assert!(kept.starts_with(&line) && kept.ends_with("the end"));
    let left_out: usize = note.split(' ').nth(3).unwrap().parse().unwrap();
    assert_eq!(left_out + kept.len(), body.len());
}

#[test]
fn a_hundred_thousand_cases_are_counted_and_kept_within_the_budget() {
    let mut xml = String::from("<testsuites><testsuite name=\"many\">");
    for i in 0..100_000 {
        xml.push_str(&format!("<testcase classname=\"t.c\" name=\"test_{i}\" time=\"0.001\"/>"));
    }
    xml.push_str("<testcase name=\"last\"><failure message=\"m\">boom</failure></testcase></testsuite></testsuites>");
    let r = read(&xml);
    assert_eq!(r.counts, Counts { tests: 100_001, failures: 1, errors: 0, skipped: 0 });
    assert_eq!((r.cases().count(), r.dropped), (100_001, 0));
    assert!(r.left < KEPT_MAX && KEPT_MAX - r.left < 40 << 20, "{} bytes kept", KEPT_MAX - r.left);
}

#[test]
fn past_the_budget_texts_are_left_out_then_cases_are_only_counted() {
    let case_xml =
        |n: usize| format!("<testcase name=\"c{n}\"><system-out>{}</system-out></testcase>", "o".repeat(1000));
    let xml = format!("<testsuite>{}</testsuite>", (0..10).map(case_xml).collect::<String>());
    let mut r = TestReports { left: 3 * 1000 + 5 * (std::mem::size_of::<Case>() + 2), ..TestReports::default() };
    r.read("r.xml", xml.as_bytes()).unwrap();
    assert_eq!(r.counts.tests, 10);
    let kept: Vec<&Case> = r.cases().collect();
    assert_eq!(kept.len() + r.dropped, 10);
    assert!(kept[0].system_out.as_ref().is_some_and(|o| o.len() == 1000));
    let short = kept.iter().find(|c| c.system_out.as_ref().is_some_and(|o| o.starts_with("[irun: left out")));
    assert!(short.is_some(), "a case whose text no longer fits is kept without it: {kept:#?}");
    assert!(r.dropped > 0, "once not even that fits, cases are only counted");
}

#[test]
fn a_file_nested_deeper_than_any_report_is_refused_before_it_costs_memory() {
    let deep = format!("<testsuites>{}{}</testsuites>", "<x>".repeat(100_000), "</x>".repeat(100_000));
    assert!(malformed(&deep).contains("nested deeper than 256"), "{}", malformed(&deep));
    let (open, close) = ("<testsuite>".repeat(200), "</testsuite>".repeat(200));
    let fine = format!("<testsuites>{open}<testcase name=\"a\"/>{close}</testsuites>");
    assert_eq!(read(&fine).counts.tests, 1);
}
