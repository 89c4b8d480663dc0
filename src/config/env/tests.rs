//! Variables: dotenv files, `${NAME}` expansion, secrets.

use super::*;

fn vars(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("6379".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn x(text: &str) -> Result<String, Problem> {
    expand(text, &vars).map(Cow::into_owned)
}

#[test]
fn names_defaults_and_escapes() {
    assert_eq!(x("redis --port ${PORT}").unwrap(), "redis --port 6379");
    assert_eq!(x("${HOST:-localhost}:${PORT:-1}").unwrap(), "localhost:6379");
    assert_eq!(x("${EMPTY:-fallback} [${EMPTY}]").unwrap(), "fallback []", ":- also replaces an empty value");
    assert_eq!(x("${HOST:-}").unwrap(), "");
    assert_eq!(x("cost $5, $HOME, $${PORT}, a$").unwrap(), "cost $5, $HOME, ${PORT}, a$");
    assert_eq!(x("echo ${IRUN_CHANGED_PATHS:-none}").unwrap(), "echo ${IRUN_CHANGED_PATHS:-none}");
    assert_eq!(x("no variables").unwrap(), "no variables");
}

#[test]
fn secrets_show_as_their_references_and_irun_toml_values_as_written() {
    let shell = Shell::from(HashMap::from([("TOKEN".to_string(), "from-shell".to_string())]));
    let (env, dotenv) =
        (Vars::new(vec![("MODE".into(), "fast".into())]), Vars::new(vec![("KEY".into(), "k3y".into())]));
    let layers = Layers::new(&[&env], &shell, &[&dotenv]);
    assert_eq!(layers.lookup("MODE"), Some(("fast".into(), false)), "written in Irun.toml");
    assert_eq!(layers.lookup("TOKEN"), Some(("from-shell".into(), true)));
    assert_eq!(layers.lookup("KEY"), Some(("k3y".into(), true)));
    let mut secrets = Secrets::default();
    secrets.record("KEY", "k3y");
    secrets.record("TOKEN", "from-shell");
    secrets.record("EMPTY", "");
    assert_eq!(secrets.hide("curl -H 'x: from-shell' --key=k3y fast"), "curl -H 'x: ${TOKEN}' --key=${KEY} fast");
    assert_eq!(secrets.hide("nothing secret"), "nothing secret");
    secrets.record("SHORT", "k");
    assert_eq!(secrets.hide("k3y k"), "${KEY} ${SHORT}", "the longest value wins, and a reference is not hidden again");
}

#[test]
fn irun_s_own_variables_are_expanded_as_a_task_starts() {
    let env = vec![("IRUN_PORT".to_string(), "4242".to_string()), ("PORT".to_string(), "1".to_string())];
    assert_eq!(
        expand_irun("--port=${IRUN_PORT} ${PORT} ${IRUN_NOPE} ${IRUN_NOPE:-d}", &env),
        "--port=4242 ${PORT} ${IRUN_NOPE} d"
    );
}

#[test]
fn defaults_may_hold_references_expanded_only_when_used() {
    assert_eq!(x("${HOST:-${PORT}}").unwrap(), "6379");
    assert_eq!(x("${HOST:-x${PORT}y}").unwrap(), "x6379y");
    assert_eq!(x("${HOST:-${NOPE:-deep${PORT}}}!").unwrap(), "deep6379!");
    assert_eq!(x("${EMPTY:-${PORT:-1}}").unwrap(), "6379");
    assert_eq!(x("${PORT:-${NOPE}}").unwrap(), "6379", "an unused default is not looked into");
    assert_eq!(x("${HOST:-$${PORT}}").unwrap(), "${PORT}", "`$${{` in a default is a literal");
    assert_eq!(x("${HOST:-a}b}").unwrap(), "ab}", "the first `}}` outside a reference closes it");
    assert_eq!(x("${HOST:-${PORT}} ${PORT}").unwrap(), "6379 6379");
}

#[test]
fn irun_s_own_references_keep_a_default_resolved_at_load() {
    let load = expand_before_start("${IRUN_PORT:-${PORT}} ${HOST:-${IRUN_PORT}}", &vars).unwrap();
    assert_eq!(load, "${IRUN_PORT:-6379} ${IRUN_PORT}");
    assert_eq!(expand_irun(&load, &[]), "6379 ${IRUN_PORT}");
    let port = vec![("IRUN_PORT".to_string(), "4242".to_string())];
    assert_eq!(expand_irun(&load, &port), "4242 4242");
    assert_eq!(expand_irun("${IRUN_NOPE:-${IRUN_PORT}}", &port), "4242");
}

#[test]
fn faults_in_a_used_default_say_where_in_the_whole_value() {
    assert_eq!(x("ab ${HOST:-${NOPE}}"), Err(Problem::Unknown { name: "NOPE".into(), at: 11 }));
    assert_eq!(x("${HOST:-x ${1X}}"), Err(Problem::Malformed { at: 10 }));
    assert_eq!(x("${HOST:-${PORT}"), Err(Problem::Malformed { at: 0 }), "the outer reference is never closed");
}

#[test]
fn unknown_names_and_broken_references_say_where() {
    assert_eq!(x("a ${NOPE} b"), Err(Problem::Unknown { name: "NOPE".into(), at: 2 }));
    assert_eq!(x("${PORT} ${NOPE"), Err(Problem::Malformed { at: 8 }));
    assert_eq!(x("${1X}"), Err(Problem::Malformed { at: 0 }));
    assert_eq!(x("${}"), Err(Problem::Malformed { at: 0 }));
}

#[test]
fn comments_quotes_and_export_are_understood() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(
        &path,
        "# a comment\nA=1\nexport B=\"two words\"\nC='single $A'\nD=\"double\\nline\"\n\nE=  spaced  # trailing\n",
    )
    .unwrap();
    let vars = match read_dotenv(&path) {
        Ok(v) => v,
        Err(DotenvError::Unreadable(why)) => panic!("{why}"),
        Err(DotenvError::Line { line, why }) => panic!("line {line}: {why}"),
        Err(DotenvError::Missing) => panic!("missing"),
    };
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("A"), Some("1"));
    assert_eq!(get("B"), Some("two words"));
    assert_eq!(get("C"), Some("single $A"));
    assert_eq!(get("D"), Some("double\nline"));
    assert_eq!(get("E"), Some("spaced"));
    assert!(matches!(read_dotenv(&dir.path().join("nope")), Err(DotenvError::Missing)));
    std::fs::write(&path, "A=1\nB='unclosed\n").unwrap();
    match read_dotenv(&path) {
        Err(DotenvError::Line { line, why }) => {
            assert_eq!((line, why.as_str()), (2, "the quote (') opened here is never closed"))
        }
        _ => panic!("an unclosed quote is an error"),
    }
}

fn error_at(text: &str) -> (usize, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(&path, text).unwrap();
    match read_dotenv(&path) {
        Err(DotenvError::Line { line, why }) => (line, why),
        Err(DotenvError::Unreadable(why)) => panic!("no line: {why}"),
        _ => panic!("{text:?} is an error"),
    }
}

#[test]
fn a_line_that_cannot_be_read_is_found_however_many_lines_came_before() {
    let never_closed = |q: char| format!("the quote ({q}) opened here is never closed");
    // The quote left open is found after quoted values over several lines, comments and escapes.
    let text = "A=1\n\n# it's a comment\nM=\"two\nlines\"\nE=\"a \\\" quote\"\nB='open\nC=2\nD=3\n";
    assert_eq!(error_at(text), (7, never_closed('\'')));
    assert_eq!(error_at("A=\"x\" B='y' C=\"z\n"), (1, never_closed('"')));
    assert_eq!(error_at("A='one\ntwo' \"three\nfour\n"), (2, never_closed('"')));
    assert_eq!(error_at("OK=1\nNOT A LINE\n").0, 2);
}

#[test]
fn the_last_value_of_a_name_wins_where_it_was_last_written() {
    let v = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    assert_eq!(last_wins(v(&[("A", "1"), ("B", "2")])), v(&[("A", "1"), ("B", "2")]));
    assert_eq!(
        last_wins(v(&[("A", "1"), ("B", "2"), ("A", "3"), ("C", "4"), ("B", "5")])),
        v(&[("A", "3"), ("C", "4"), ("B", "5")])
    );
}
