//! The CLI surface: list, graph, dry run, -f, finding Irun.toml.

use graphviz_rust::dot_structures::{Graph, Id, Stmt};

use crate::harness::Project;

const SUITE: &str = r#"
default = ["all"]

[tasks.setup]
description = "Prepare things"
cmd = "touch setup-ran"

[tasks.server]
description = "A service"
cmd = "sleep 100"
deps = ["setup"]
daemon = true
ready = { tcp = 1 }

[tasks.client]
cmd = "touch client-ran"
deps = ["server"]

[tasks.all]
deps = ["client", "setup"]
"#;

#[test]
fn list_describes_tasks_kinds_deps_and_default() {
    let p = Project::new(SUITE);
    let out = p.irun().args(["list"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("setup") && lines[0].contains("task") && lines[0].contains("Prepare things"),
        "{out:?}"
    );
    assert!(
        lines[1].starts_with("server") && lines[1].contains("service") && lines[1].contains("deps: setup"),
        "{out:?}"
    );
    assert!(lines[1].contains("ready once irun sees port 1 on 127.0.0.1 or ::1 accepting connections"), "{out:?}");
    assert!(lines[3].starts_with("all") && lines[3].contains("group"), "{out:?}");
    assert!(out.stdout.contains("default: all"), "{out:?}");
}

fn node_ids(g: &Graph) -> Vec<String> {
    let Graph::DiGraph { stmts, .. } = g else { panic!("not a digraph") };
    stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Node(n) => match &n.id.0 {
                Id::Escaped(s) => Some(s.trim_matches('"').to_string()),
                Id::Plain(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn edge_count(g: &Graph) -> usize {
    let Graph::DiGraph { stmts, .. } = g else { panic!("not a digraph") };
    stmts.iter().filter(|s| matches!(s, Stmt::Edge(_))).count()
}

#[test]
fn graph_dot_parses_as_dot_and_marks_services_and_groups() {
    let p = Project::new(SUITE);
    let out = p.irun().args(["graph", "--dot"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let g = graphviz_rust::parse(&out.stdout).unwrap_or_else(|e| panic!("invalid DOT: {e}\n{}", out.stdout));
    assert_eq!(node_ids(&g), ["setup", "server", "client", "all"]);
    assert_eq!(edge_count(&g), 4);
    // Edges run from a dependency to its dependent.
    assert!(out.stdout.contains("\"setup\" -> \"server\""), "{}", out.stdout);
    assert!(out.stdout.contains("\"server\" [label=\"server\\n(service)\", shape=ellipse"), "{}", out.stdout);
    assert!(out.stdout.contains("\"all\" [label=\"all\\n(group)\", style=dashed"), "{}", out.stdout);
    assert!(!p.exists("setup-ran"), "graph runs nothing");
}

#[test]
fn graph_can_be_limited_to_targets() {
    let p = Project::new(SUITE);
    let out = p.irun().args(["graph", "--dot", "server"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let g = graphviz_rust::parse(&out.stdout).unwrap();
    assert_eq!(node_ids(&g), ["setup", "server"]);
    assert_eq!(edge_count(&g), 1);
}

#[test]
fn graph_escapes_awkward_names() {
    let p = Project::new("[tasks.'say \"hi\"']\ncmd = \"true\"\n[tasks.b]\ncmd = \"true\"\ndeps = ['say \"hi\"']\n");
    let out = p.irun().args(["graph", "--dot"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    graphviz_rust::parse(&out.stdout).unwrap_or_else(|e| panic!("invalid DOT: {e}\n{}", out.stdout));
}

#[test]
fn dry_run_counts_tasks_and_services_but_not_groups() {
    let p = Project::new(
        "[tasks.a]\ncmd = \"true\"\n[tasks.svc]\ncmd = \"sleep 9\"\ndaemon = true\n[tasks.b]\ncmd = \"true\"\ndeps = [\"svc\"]\n",
    );
    let out = p.irun().args(["-n", "a", "b"]).run();
    assert!(out.stdout.starts_with("plan: 3 tasks in 2 waves,"), "{out:?}");
    let p = Project::new("[tasks.a]\ncmd = \"true\"\n[tasks.g]\ndeps = [\"a\"]\n[tasks.h]\ndeps = [\"g\"]\n");
    let out = p.irun().args(["-n", "h"]).run();
    assert!(out.stdout.starts_with("plan: 1 task and 2 groups in 3 waves,"), "{out:?}");
}

#[test]
fn dry_run_prints_waves_and_starts_nothing() {
    let p = Project::new(SUITE);
    let out = p.irun().args(["--dry-run"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("3 tasks and 1 group in 4 waves"), "{out:?}");
    assert!(out.stdout.contains("wave 1: setup\n"), "{out:?}");
    assert!(
        out.stdout.contains(
            "wave 2: server (service, ready once irun sees port 1 on 127.0.0.1 or ::1 accepting connections)"
        ),
        "{out:?}"
    );
    assert!(out.stdout.contains("wave 3: client\n"), "{out:?}");
    assert!(out.stdout.contains("wave 4: all (group)"), "{out:?}");
    assert!(!p.exists("setup-ran") && !p.exists("client-ran"), "dry run ran something");
}

#[test]
fn irun_toml_is_found_in_a_parent_directory_and_commands_run_from_there() {
    let p = Project::new("[tasks.a]\ncmd = \"pwd > where\"\n");
    std::fs::create_dir_all(p.path("deep/er")).unwrap();
    let out = p.irun().current_dir(&p.path("deep/er")).args(["a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let root = std::fs::canonicalize(p.root()).unwrap();
    assert_eq!(p.read("where").trim(), root.to_str().unwrap());
}

#[test]
fn file_flag_overrides_the_search() {
    let p = Project::new("[tasks.a]\ncmd = \"touch wrong\"\n");
    p.file("other/Irun.toml", "[tasks.a]\ncmd = \"touch right\"\n");
    let out = p.irun().args(["-f", "other/Irun.toml", "a"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(p.exists("other/right") && !p.exists("wrong"), "{out:?}");
}

#[test]
fn help_has_examples_and_exit_codes() {
    let p = Project::new("");
    let out = p.irun().args(["--help"]).run();
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Examples:") && out.stdout.contains("irun http typestubs"), "{out:?}");
    assert!(out.stdout.contains("Exit codes:"), "{out:?}");
}

#[test]
fn global_options_work_before_and_after_a_subcommand() {
    let p = Project::new("[tasks.x]\ncmd = \"true\"\n");
    p.file("other.toml", "[tasks.y]\ncmd = \"true\"\nsources = [\"y.txt\"]\n");
    for args in [&["-f", "other.toml", "list"][..], &["list", "-f", "other.toml"], &["--file=other.toml", "graph"]] {
        let out = p.irun().args(args).run();
        assert_eq!(out.code, 0, "irun {args:?}: {out:?}");
        assert!(out.stdout.contains('y') && !out.stdout.contains("\"x\""), "irun {args:?} read other.toml: {out:?}");
    }
    for args in [&["--color", "never", "explain", "x"][..], &["explain", "--color", "never", "x"]] {
        let out = p.irun().args(args).run();
        assert_eq!(out.code, 0, "irun {args:?}: {out:?}");
        assert!(out.stdout.starts_with("x  will run"), "irun {args:?}: {out:?}");
    }
}

#[test]
fn a_run_option_with_a_subcommand_is_an_error_not_ignored() {
    let p = Project::new("[tasks.x]\ncmd = \"true\"\n");
    let out = p.irun().args(["-j2", "list"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("-j/--jobs applies to running tasks, not to `irun list`"), "{out:?}");
}
