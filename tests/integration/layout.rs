//! The code's shape, checked against README.md's layout section and the project's rules: every module listed once
//! with what it holds, imports that only run down the layers, no import circle, no file over 600 lines (tests
//! aside), no function over 80, a thin lib.rs, and no free-text notice event.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;
const MAX_LIB_LINES: usize = 60;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under src/, as `src/...`, with its text.
fn sources() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// The layout section of README.md: per module, its layer (0 at the top) and what it holds.
fn readme_layout() -> BTreeMap<String, (usize, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("\n### Layout\n").nth(1).expect("README.md has a `### Layout` section");
    let block = section.split("```").nth(1).expect("the layout section holds a code block");
    let mut layer = None;
    let mut out = BTreeMap::new();
    for line in block.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') {
            layer = Some(layer.map_or(0, |l| l + 1));
            continue;
        }
        let (path, what) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let layer = layer.expect("a layer heading comes first");
        assert!(out.insert(path.to_string(), (layer, what.trim().to_string())).is_none(), "{path} is listed twice");
    }
    out
}

/// The top-level module a file belongs to: `src/exec/runner.rs` -> `exec`, `src/plan.rs` -> `plan`.
fn module(path: &str) -> String {
    let rel = path.trim_start_matches("src/");
    match rel.split_once('/') {
        Some((dir, _)) => dir.to_string(),
        None => rel.trim_end_matches(".rs").to_string(),
    }
}

/// Files that only hold tests: declared `#[cfg(test)] mod name;` by their parent.
fn test_files(files: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, text) in files {
        let dir = Path::new(path).parent().unwrap();
        let stem = Path::new(path).file_stem().unwrap().to_string_lossy();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            let Some(name) = pair[1].strip_prefix("mod ").and_then(|m| m.strip_suffix(';')) else { continue };
            if pair[0].trim() != "#[cfg(test)]" {
                continue;
            }
            for candidate in [dir.join(format!("{name}.rs")), dir.join(&*stem).join(format!("{name}.rs"))] {
                let candidate = candidate.to_string_lossy().into_owned();
                if files.contains_key(&candidate) {
                    out.insert(candidate);
                }
            }
        }
    }
    out
}

/// The code of a file without comments and without an inline test module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or_default();
    text.lines()
        .map(|l| if l.trim_start().starts_with("//") { "" } else { l.split(" // ").next().unwrap_or(l) })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names: `crate::x::...` and `crate::{x, y::z}`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let list = &list[..list.find('}').unwrap_or(list.len())];
            out.extend(list.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_string()));
        } else {
            out.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

#[test]
fn the_readme_lists_every_module_once_with_what_it_holds() {
    let files = sources();
    let layout = readme_layout();
    let listed: BTreeSet<&String> = layout.keys().collect();
    let present: BTreeSet<&String> = files.keys().collect();
    assert_eq!(
        present.difference(&listed).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "modules missing from README.md's layout section"
    );
    assert_eq!(
        listed.difference(&present).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "README.md lists files that do not exist"
    );
    for (path, (_, what)) in &layout {
        assert!(what.len() > 10, "{path}: say what it holds");
    }
    // A module's files are in one layer.
    let mut layers: BTreeMap<String, usize> = BTreeMap::new();
    for (path, (layer, _)) in &layout {
        let previous = layers.insert(module(path), *layer);
        assert!(previous.is_none_or(|l| l == *layer), "{path} is in another layer than the rest of its module");
    }
}

#[test]
fn imports_only_run_down_the_layers_and_never_in_a_circle() {
    let files = sources();
    let tests = test_files(&files);
    let layout = readme_layout();
    let layer = |m: &str| layout.iter().find(|(p, _)| module(p) == m).map(|(_, (l, _))| *l);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files.iter().filter(|(p, _)| !tests.contains(*p)) {
        let from = module(path);
        for to in imports(&code(text)).into_iter().filter(|to| *to != from) {
            let (Some(a), Some(b)) = (layer(&from), layer(&to)) else { panic!("{path}: unknown module `{to}`") };
            assert!(b >= a, "{path} imports `{to}`, a module of a layer above it");
            graph.entry(from.clone()).or_default().insert(to);
        }
    }
    // Depth-first search for a way back to where it started.
    fn circle(graph: &BTreeMap<String, BTreeSet<String>>, at: &str, path: &mut Vec<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            return Some(path[i..].to_vec());
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(found) = circle(graph, next, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    for start in graph.keys() {
        assert_eq!(circle(&graph, start, &mut Vec::new()), None, "an import circle");
    }
}

/// Functions longer than the limit: `(file, line, name, lines)`. Code is rustfmt's, so a function ends at the first
/// closing brace at its own indentation.
fn long_functions(path: &str, text: &str) -> Vec<(String, usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else { continue };
        let qualifiers = ["pub", "pub(crate)", "pub(super)", "async", "unsafe", "const", "extern", "\"C\""];
        if !words[..at].iter().all(|w| qualifiers.contains(w)) || line.ends_with(';') {
            continue;
        }
        let name = words.get(at + 1).map_or("", |w| w.split(['(', '<']).next().unwrap_or(""));
        let end = (i..lines.len()).find(|&j| lines[j] == format!("{indent}}}") || (j == i && line.ends_with('}')));
        let length = end.map_or(0, |end| end - i + 1);
        if length > MAX_FN_LINES {
            out.push((path.to_string(), i + 1, name.to_string(), length));
        }
    }
    out
}

#[test]
fn files_and_functions_stay_small_and_lib_rs_is_thin() {
    let files = sources();
    let tests = test_files(&files);
    let big: Vec<(&String, usize)> = files
        .iter()
        .filter(|(p, _)| !tests.contains(*p))
        .map(|(p, t)| (p, t.lines().count()))
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .collect();
    assert!(big.is_empty(), "files over {MAX_FILE_LINES} lines: {big:?}");
    let long: Vec<_> = files.iter().flat_map(|(p, t)| long_functions(p, t)).collect();
    assert!(long.is_empty(), "functions over {MAX_FN_LINES} lines: {long:?}");
    let lib = files["src/lib.rs"].lines().count();
    assert!(lib < MAX_LIB_LINES, "src/lib.rs has {lib} lines");
}

#[test]
fn the_checks_above_see_what_they_are_meant_to() {
    // The layout checks must not pass by seeing nothing.
    let long = format!("fn long() {{\n{}}}\n", "    x();\n".repeat(MAX_FN_LINES));
    assert_eq!(long_functions("x.rs", &long).len(), 1);
    assert!(long_functions("x.rs", "pub(crate) fn short() -> u8 {\n    1\n}\n").is_empty());
    let text = "use crate::config::Task;\nuse crate::{driver, exec::runner};\n// crate::report in a comment\n";
    assert_eq!(imports(&code(text)), BTreeSet::from(["config".into(), "driver".into(), "exec".into()]));
    assert!(readme_layout().len() > 50);
}

#[test]
fn everything_a_run_says_is_a_typed_event() {
    let files = sources();
    let events = &files["src/events/mod.rs"];
    assert!(!events.contains("Notice"), "events carry no free-text notice");
    for (path, text) in &files {
        assert!(!text.contains("Event::Notice"), "{path} sends a free-text notice");
    }
}
