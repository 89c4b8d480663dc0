//! What a fingerprint holds: nothing that depends on where the project is (a copied or moved checkout stays up to
//! date), only the variables a task receives (`inherit_env`), and what `explain` shows of it.

use std::path::Path;

use crate::harness::{Irun, Output, Project};

/// A task, a service with sources and a cwd of its own, a service without sources, and a task that needs both;
/// `[env]` holds a path under the project (`PROJ` stands for the shell's `$PWD`).
const CHECKOUT: &str = r#"
[env]
VENV = "${PROJ}/.venv"

[tasks.gen]
cmd = "echo run >> gen.log; mkdir -p out; cat src/*.txt > out/all.txt"
sources = ["src/*.txt"]
outputs = ["out/all.txt"]

[tasks.web]
cmd = "echo run >> ../web.log; echo up; exec sleep 1000"
cwd = "web"
daemon = true
ready = { log = "up" }
sources = ["web/*.cfg"]
deps = ["gen"]

[tasks.db]
cmd = "echo up; exec sleep 1000"
daemon = true
ready = { log = "up" }

[tasks.use]
cmd = "echo run >> use.log"
cwd = "web"
deps = ["web", "db"]
sources = ["web/*.cfg"]
"#;

fn checkout() -> Project {
    let p = Project::new(CHECKOUT);
    p.file("src/a.txt", "a\n").file("web/site.cfg", "x\n");
    p
}

/// irun `args` in `dir`, with `PROJ` set to it as a shell's `$PWD` would be.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    let out = Irun::new().current_dir(dir).env("PROJ", &dir.display().to_string()).args(args).run();
    assert_eq!(out.code, 0, "{out:?}");
    out
}

fn lines(dir: &Path, rel: &str) -> usize {
    std::fs::read_to_string(dir.join(rel)).map_or(0, |s| s.lines().count())
}

/// A second run in `dir` runs nothing: every task is up to date and no service is started.
fn assert_all_up_to_date(dir: &Path, how: &str) {
    let out = run_in(dir, &["use"]);
    let counts = ["gen.log", "web.log", "web/use.log"].map(|f| lines(dir, f));
    assert_eq!(counts, [1, 1, 1], "{how}: {out:?}");
    assert!(out.stdout.contains("gen * up to date") && out.stdout.contains("use * up to date"), "{how}: {out:?}");
}

fn copy(from: &Path, to: &Path, preserve: bool) {
    let flags = if preserve { "-a" } else { "-r" };
    let status = std::process::Command::new("cp").arg(flags).arg(from.join(".")).arg(to).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_copied_or_moved_checkout_stays_up_to_date() {
    let p = checkout();
    run_in(p.root(), &["use"]);
    assert_all_up_to_date(p.root(), "the checkout itself");
    // `cp -a` keeps modification times; `cp -r` does not, and content decides.
    for preserve in [true, false] {
        let copy_dir = tempfile::Builder::new().prefix("irun-test-copy-").tempdir().unwrap();
        copy(p.root(), copy_dir.path(), preserve);
        assert_all_up_to_date(copy_dir.path(), if preserve { "cp -a" } else { "cp -r" });
    }
    let parent = tempfile::Builder::new().prefix("irun-test-moved-").tempdir().unwrap();
    let moved = parent.path().join("checkout");
    std::fs::rename(p.root(), &moved).unwrap();
    assert_all_up_to_date(&moved, "mv");
}

#[test]
fn a_checkout_moved_with_the_sibling_folder_its_cwd_names_stays_up_to_date() {
    // Irun.toml in `app/`, a task running in `../shared`: the pair moves together (a repository cloned elsewhere).
    let top = tempfile::Builder::new().prefix("irun-test-sibling-").tempdir().unwrap();
    let (app, shared) = (top.path().join("repo/app"), top.path().join("repo/shared"));
    std::fs::create_dir_all(&app).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    let toml = "[tasks.lib]\ncmd = \"echo run >> ../app/lib.log; cp lib.c ../app/lib.o\"\ncwd = \"../shared\"\n\
                sources = [\"version.txt\"]\noutputs = [\"lib.o\"]\n";
    std::fs::write(app.join("Irun.toml"), toml).unwrap();
    std::fs::write(app.join("version.txt"), "1\n").unwrap();
    std::fs::write(shared.join("lib.c"), "int x;\n").unwrap();
    run_in(&app, &["lib"]);
    let moved = top.path().join("elsewhere");
    std::fs::rename(top.path().join("repo"), &moved).unwrap();
    let out = run_in(&moved.join("app"), &["--explain", "lib"]);
    assert!(out.stdout.contains("lib * up to date"), "{out:?}");
    assert_eq!(lines(&moved.join("app"), "lib.log"), 1, "{out:?}");
    let out = run_in(&moved.join("app"), &["explain", "lib"]);
    assert_eq!(parts(&out, "lib")[2], "- cwd: ../shared", "recorded as written: {out:?}");
}

#[test]
fn a_checkout_reached_through_a_link_stays_up_to_date_moved_behind_a_new_link() {
    // `/home/me/proj -> /data/proj`: irun's working directory is the real folder, the shell's `$PWD` the link, and
    // `${PWD}/.venv` holds the link's path. Moved to another real folder behind another link, nothing changed.
    let top = tempfile::Builder::new().prefix("irun-test-linked-").tempdir().unwrap();
    let real = top.path().join("data/proj");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(top.path().join("home")).unwrap();
    let toml = "[env]\nVENV = \"${PWD}/.venv\"\n\
                [tasks.gen]\ncmd = \"echo \\\"$VENV\\\" >> gen.log\"\nsources = [\"src.txt\"]\n";
    std::fs::write(real.join("Irun.toml"), toml).unwrap();
    std::fs::write(real.join("src.txt"), "a\n").unwrap();
    let through = |link: &Path| {
        let out =
            Irun::new().current_dir(link).env("PWD", &link.display().to_string()).args(["--explain", "gen"]).run();
        assert_eq!(out.code, 0, "{out:?}");
        out
    };
    let link = top.path().join("home/proj");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    through(&link);
    let moved = top.path().join("data/moved");
    std::fs::rename(&real, &moved).unwrap();
    let new_link = top.path().join("home/renamed");
    std::os::unix::fs::symlink(&moved, &new_link).unwrap();
    let out = through(&new_link);
    assert!(out.stdout.contains("gen * up to date"), "{out:?}");
    assert_eq!(std::fs::read_to_string(moved.join("gen.log")).unwrap(), format!("{}/.venv\n", link.display()));
}

#[test]
fn a_change_in_a_copy_still_reruns_there() {
    let p = checkout();
    run_in(p.root(), &["use"]);
    let copy_dir = tempfile::Builder::new().prefix("irun-test-copy-").tempdir().unwrap();
    copy(p.root(), copy_dir.path(), true);
    std::fs::write(copy_dir.path().join("src/a.txt"), "changed\n").unwrap();
    let out = run_in(copy_dir.path(), &["--explain", "use"]);
    assert!(out.stdout.contains("gen * will run: `src/a.txt` changed"), "{out:?}");
    assert!(out.stdout.contains("use * will run: service `web` changed since it last ran"), "{out:?}");
    assert_eq!(lines(copy_dir.path(), "gen.log"), 2, "{out:?}");
}

#[test]
fn records_of_the_previous_version_with_absolute_paths_stay_up_to_date() {
    // Written as the previous irun did: absolute cwds, settings hashed without the root taken out, no probe, and
    // the service's fingerprint from those. (`PROJ` outside the project: its `env` hashes alike in both. A service
    // without sources counted as new at every start then, so `db` is left out.)
    let p = Project::new(&CHECKOUT.replace(r#"deps = ["web", "db"]"#, r#"deps = ["web"]"#));
    p.file("src/a.txt", "a\n").file("web/site.cfg", "x\n");
    let elsewhere = |args: &[&str]| p.irun().env("PROJ", "/elsewhere").args(args).run();
    assert_eq!(elsewhere(&["use"]).code, 0);
    let mut state = p.state();
    let root = p.root().display().to_string();
    let absolute = |rel: &str| if rel == "." { root.clone() } else { format!("{root}/{rel}") };
    for task in ["gen", "web", "use"] {
        let record = &mut state["tasks"][task]["record"];
        let cwd = absolute(record["cwd"].as_str().unwrap());
        record["cwd"] = cwd.into();
        record["hashing"] = 2.into();
        record.as_object_mut().unwrap().remove("probe");
    }
    let web = &state["tasks"]["web"]["record"];
    let mut bytes = Vec::new();
    for part in ["command", "env", "cwd", "globs"] {
        bytes.extend(web[part].as_str().unwrap().as_bytes());
        bytes.push(0);
    }
    for (path, stamp) in web["sources"].as_object().unwrap() {
        bytes.extend(path.as_bytes());
        bytes.extend(stamp["hash"].as_str().unwrap().as_bytes());
    }
    for (dep, stamp) in web["deps"].as_object().unwrap() {
        bytes.extend(dep.as_bytes());
        bytes.extend(stamp.as_str().unwrap().as_bytes());
    }
    let old = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
    state["tasks"]["web"]["record"]["fingerprint"] = old.clone().into();
    state["tasks"]["use"]["record"]["deps"]["web"] = old.into();
    p.set_state(&state);
    let out = elsewhere(&["use"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("gen * up to date") && out.stdout.contains("use * up to date"), "{out:?}");
    assert_eq!([p.count_lines("gen.log"), p.count_lines("web.log"), p.count_lines("web/use.log")], [1, 1, 1]);
}

#[test]
fn a_top_level_variable_a_task_does_not_receive_never_reruns_it() {
    // `PYTEST_K=… irun` changes PYTEST_ADDOPTS: the tests, which receive it, run again; setup does not.
    let p = Project::new(
        "[env]\nPYTEST_ADDOPTS = \"-k ${PYTEST_K:-}\"\n\
         [tasks.setup]\ncmd = \"echo run >> setup.log\"\nsources = [\"requirements.txt\"]\ninherit_env = false\n\
         [tasks.test]\ncmd = \"echo \\\"$PYTEST_ADDOPTS\\\" >> test.log\"\ndeps = [\"setup\"]\nsources = [\"tests.py\"]\n",
    );
    p.file("requirements.txt", "").file("tests.py", "");
    let run = |k: &str| {
        let out = p.irun().env("PYTEST_K", k).args(["--explain", "test"]).run();
        assert_eq!(out.code, 0, "{out:?}");
        out
    };
    run("one");
    let out = run("two");
    assert!(out.stdout.contains("setup * up to date"), "{out:?}");
    assert!(out.stdout.contains("test  * will run: env changed"), "{out:?}");
    assert_eq!((p.count_lines("setup.log"), p.read("test.log")), (1, "-k one\n-k two\n".to_string()));
    let out = run("two");
    assert!(out.stdout.contains("test  * up to date"), "the same value: up to date again: {out:?}");
}

#[test]
fn inherit_env_with_names_gives_those_and_only_those_count() {
    let toml = |a: &str, b: &str| {
        format!(
            "[env]\nXA_GIVEN = \"{a}\"\nXB_KEPT = \"{b}\"\n\
             [tasks.t]\ncmd = \"echo run >> t.log; env | grep '^X[AB]_' | sort > seen.txt\"\nsources = [\"in.txt\"]\n\
             inherit_env = [\"XA_GIVEN\"]\n"
        )
    };
    let p = Project::new(&toml("1", "1"));
    p.file("in.txt", "");
    p.run_ok(&["t"]);
    assert_eq!(p.read("seen.txt"), "XA_GIVEN=1\n", "XA_GIVEN, not XB_KEPT");
    p.file("Irun.toml", &toml("1", "2"));
    let out = p.run_ok(&["t"]);
    assert!(out.stdout.contains("t * up to date"), "a variable it does not receive: {out:?}");
    p.file("Irun.toml", &toml("2", "2"));
    let out = p.run_ok(&["--explain", "t"]);
    assert!(out.stdout.contains("t * will run: env changed"), "one it receives: {out:?}");
    assert_eq!((p.count_lines("t.log"), p.read("seen.txt")), (2, "XA_GIVEN=2\n".to_string()));
}

/// `irun explain TARGET`'s lines under `task`: the parts of its fingerprint.
fn parts(out: &Output, task: &str) -> Vec<String> {
    let mut lines = out.stdout.lines().skip_while(|l| l.split_whitespace().next() != Some(task)).skip(1);
    let mut parts = Vec::new();
    while let Some(line) = lines.next().filter(|l| l.trim_start().starts_with("- ")) {
        parts.push(line.trim_start().to_string());
    }
    parts
}

#[test]
fn explain_lists_what_a_fingerprint_holds_and_which_parts_changed() {
    let toml = |log: &str, mode: &str| {
        format!(
            "[env]\nTOP = \"1\"\n\
             [tasks.gen]\ncmd = \"mkdir -p out; cat src/*.txt > out/all.txt\"\nsources = [\"src/*.txt\"]\n\
             outputs = [\"out/all.txt\"]\nenv = {{ MODE = \"{mode}\" }}\ncwd = \".\"\n\
             [tasks.db]\ncmd = \"echo up; exec sleep 1000\"\ndaemon = true\nready = {{ log = \"{log}\" }}\n\
             inherit_env = false\n\
             [tasks.use]\ncmd = \"echo used\"\ndeps = [\"gen\", \"db\"]\nsources = [\"use.cfg\"]\ncwd = \"sub\"\n\
             inherit_env = [\"TOP\"]\n"
        )
    };
    let p = Project::new(&toml("up", "a"));
    p.file("src/a.txt", "a\n").file("src/b.txt", "b\n").file("use.cfg", "").file("sub/keep", "");
    p.run_ok(&["use"]);
    let out = p.run_ok(&["explain", "use"]);
    assert_eq!(
        parts(&out, "gen"),
        [
            "- command: mkdir -p out; cat src/*.txt > out/all.txt",
            "- env: MODE, TOP",
            "- cwd: .",
            "- sources: src/*.txt (2 files, by content)",
            "- outputs: out/all.txt (1 file, by content)",
            "- deps: none",
        ],
        "{out:?}"
    );
    assert_eq!(
        parts(&out, "db"),
        [
            "- command: echo up; exec sleep 1000",
            "- env: none from Irun.toml",
            "- cwd: .",
            "- sources: none",
            "- deps: none",
            "- probe: a line of output matching `up`",
        ],
        "{out:?}"
    );
    assert_eq!(parts(&out, "use")[1..4], ["- env: TOP", "- cwd: sub", "- sources: use.cfg (1 file, by content)"]);
    // What changed since: gen's env and a source, the service's probe, and so both of use's deps.
    p.file("Irun.toml", &toml("u", "b")).file("src/b.txt", "changed\n");
    let out = p.run_ok(&["explain", "use"]);
    let generated = parts(&out, "gen");
    assert_eq!(generated[1], "- env: MODE, TOP; changed since it last ran", "{out:?}");
    assert_eq!(generated[3], "- sources: src/*.txt (2 files, by content); changed since it last ran", "{out:?}");
    assert_eq!(generated[0], "- command: mkdir -p out; cat src/*.txt > out/all.txt", "unchanged: {out:?}");
    let db = parts(&out, "db");
    assert_eq!(db[5], "- probe: a line of output matching `u`; changed since it last started", "{out:?}");
    assert_eq!(db[0], "- command: echo up; exec sleep 1000", "unchanged: {out:?}");
    p.run_ok(&["gen"]);
    let out = p.run_ok(&["explain", "use"]);
    assert_eq!(parts(&out, "use")[5], "- deps: gen (changed), db (changed)", "{out:?}");
    // A task with no fingerprint (neither sources nor outputs) shows none: it always runs.
    let plain = Project::new("[tasks.t]\ncmd = \"true\"\n");
    assert_eq!(parts(&plain.run_ok(&["explain", "t"]), "t"), Vec::<String>::new());
}
