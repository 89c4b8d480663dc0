//! `--partition slice:K/N | hash:K/N`, `irun plan --json --shards N` and `--expect-plan`: a run split across
//! machines, each shard running its leaf tasks and what they need.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::{Output, Project};

/// A layered DAG: `db` (a service) and three layers of tasks; the last layer (`leaf-*`) are the leaves, `leaf-0`
/// and `leaf-1` need `db`; `all` gathers the leaves. Each task appends its name to `ran.log`.
fn layered(extra_leaf: bool) -> String {
    let mut t = String::from("default = [\"all\"]\n");
    t += "[tasks.db]\ncmd = \"echo db up; exec sleep 600\"\ndaemon = true\nready = { log = \"db up\" }\n";
    for i in 0..4 {
        t += &format!("[tasks.base-{i}]\ncmd = \"echo base-{i} >> ran.log\"\n");
    }
    for i in 0..4 {
        t += &format!(
            "[tasks.mid-{i}]\ncmd = \"echo mid-{i} >> ran.log\"\ndeps = [\"base-{i}\", \"base-{}\"]\n",
            (i + 1) % 4
        );
    }
    let leaves = if extra_leaf { 10 } else { 9 };
    for i in 0..leaves {
        let db = if i < 2 { ", \"db\"" } else { "" };
        t += &format!("[tasks.leaf-{i}]\ncmd = \"echo leaf-{i} >> ran.log\"\ndeps = [\"mid-{}\"{db}]\n", i % 4);
    }
    let all: Vec<String> = (0..leaves).map(|i| format!("\"leaf-{i}\"")).collect();
    t += &format!("[tasks.all]\ndeps = [{}]\n", all.join(", "));
    t
}

fn plan(p: &Project, args: &[&str]) -> serde_json::Value {
    let out = p.irun().args(["plan", "--json"]).args(args).run();
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).expect("one JSON document")
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// The tasks a `--json` run started, and the run's output.
fn run_json(p: &Project, args: &[String]) -> (BTreeSet<String>, Output) {
    let out = p.irun().args(args).args(["--json"]).run();
    assert_eq!(out.code, 0, "irun {args:?}: {out:?}");
    let started = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "task_started")
        .map(|e| e["task"].as_str().unwrap().to_string())
        .collect();
    (started, out)
}

/// Run every shard of `scheme`, each in its own copy of the project (as on separate machines), and check that
/// together they run every leaf exactly once, that each has work, and that each runs its leaves' dependencies.
fn every_leaf_once(scheme: &str) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let whole = plan(&Project::new(&layered(false)), &[]);
    for k in 1..=3 {
        let p = Project::new(&layered(false));
        let (started, _) = run_json(&p, &["--partition".into(), format!("{scheme}:{k}/3")]);
        let leaves: Vec<&String> = started.iter().filter(|t| t.starts_with("leaf-")).collect();
        assert!(!leaves.is_empty(), "{scheme} shard {k}/3 has work");
        for leaf in leaves {
            *seen.entry(leaf.clone()).or_default() += 1;
            let n: usize = leaf.trim_start_matches("leaf-").parse().unwrap();
            assert!(started.contains(&format!("mid-{}", n % 4)), "{leaf}'s dependency ran on its shard");
        }
        let ran = p.read("ran.log");
        assert_eq!(ran.lines().count(), ran.lines().collect::<BTreeSet<_>>().len(), "nothing ran twice: {ran}");
    }
    let units = strings(&whole["units"]);
    assert_eq!(units.len(), 9);
    for unit in units {
        assert_eq!(seen.get(&unit), Some(&1), "{unit} ran on exactly one {scheme} shard: {seen:?}");
    }
}

#[test]
fn slice_shards_together_run_every_leaf_exactly_once() {
    every_leaf_once("slice");
}

#[test]
fn hash_shards_together_run_every_leaf_exactly_once() {
    every_leaf_once("hash");
}

#[test]
fn adding_a_task_moves_no_other_leaf_between_hash_shards() {
    let shards_of = |toml: String| -> BTreeMap<String, String> {
        let doc = plan(&Project::new(&toml), &["--shards", "3", "--scheme", "hash"]);
        let mut of = BTreeMap::new();
        for shard in doc["shards"].as_array().unwrap() {
            for unit in strings(&shard["units"]) {
                of.insert(unit, shard["shard"].as_str().unwrap().to_string());
            }
        }
        of
    };
    let before = shards_of(layered(false));
    let after = shards_of(layered(true));
    assert_eq!(after.len(), before.len() + 1);
    for (leaf, shard) in &before {
        assert_eq!(after.get(leaf), Some(shard), "{leaf} stayed on its shard");
    }
}

#[test]
fn a_service_needed_on_two_shards_starts_and_stops_on_both() {
    // slice deals leaf-0 and leaf-1 (both need db) to shards 1 and 2.
    for k in [1, 2] {
        let p = Project::new(&layered(false));
        let (started, out) = run_json(&p, &["--partition".into(), format!("slice:{k}/3")]);
        assert!(started.contains("db") && started.contains(&format!("leaf-{}", k - 1)), "{out:?}");
        let events: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let pid = events.iter().find(|e| e["event"] == "task_started" && e["task"] == "db").unwrap()["pid"]
            .as_i64()
            .unwrap() as i32;
        assert!(
            events.iter().any(|e| e["event"] == "task_finished" && e["task"] == "db" && e["status"] == "ok"),
            "db was stopped once its shard's leaves were done: {out:?}"
        );
        crate::harness::assert_all_dead(&[pid]);
    }
}

#[test]
fn plan_json_lists_the_shards_and_their_args_reproduce_the_runs() {
    let doc = plan(&Project::new(&layered(false)), &["--shards", "3"]);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["plan"].as_str().unwrap().len(), 16);
    assert_eq!(doc["targets"], serde_json::json!(["all"]));
    assert!(doc["waves"].as_array().unwrap().len() >= 3);
    let shards = doc["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    for (k, shard) in shards.iter().enumerate() {
        assert_eq!(shard["shard"], format!("{}/3", k + 1));
        let p = Project::new(&layered(false));
        let (started, _) = run_json(&p, &strings(&shard["args"]));
        let planned: BTreeSet<String> = strings(&shard["tasks"]).into_iter().filter(|t| t != "all").collect();
        assert_eq!(started, planned, "shard {}: the args run exactly the tasks the plan lists", k + 1);
        for unit in strings(&shard["units"]) {
            assert!(started.contains(&unit));
        }
    }
}

#[test]
fn a_shard_of_another_plan_or_a_bad_partition_is_refused() {
    let p = Project::new(&layered(false));
    let hash = plan(&p, &[])["plan"].as_str().unwrap().to_string();
    let ok = p.irun().args(["--partition", "slice:1/3", "--expect-plan", &hash, "-n"]).run();
    assert_eq!(ok.code, 0, "{ok:?}");
    let other = p.irun().args(["--partition", "slice:1/3", "--expect-plan", "0123456789abcdef"]).run();
    assert_eq!(other.code, 2, "{other:?}");
    assert!(other.stderr.contains(&format!("this plan's hash is {hash}, not 0123456789abcdef")), "{other:?}");
    assert!(!p.exists("ran.log"), "nothing ran");
    for bad in ["slice:0/3", "slice:4/3", "hash:1/0", "count:1/2", "slice:1", "slice:a/3"] {
        let out = p.irun().args(["--partition", bad]).run();
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(out.stderr.contains("--partition"), "{bad}: {out:?}");
    }
}

#[test]
fn a_shard_without_leaves_exits_0_and_says_so() {
    let p = Project::new(
        "[tasks.a]\ncmd = \"touch a.ran\"\n[tasks.b]\ncmd = \"touch b.ran\"\n[tasks.all]\ndeps = [\"a\", \"b\"]\n",
    );
    let out = p.irun().args(["--partition", "slice:3/3", "--junit", "junit.xml", "all"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("shard 3/3 (slice:3/3) has none of the plan's 2 leaf tasks: nothing to run"),
        "{out:?}"
    );
    assert!(!p.exists("a.ran") && !p.exists("b.ran"));
    // Its reports are written all the same, for a CI step that uploads them.
    let xml = p.read("junit.xml");
    assert!(xml.contains("<testsuite name=\"irun (shard 3/3)\" tests=\"0\""), "{xml}");
    let json = p.irun().args(["--partition", "slice:3/3", "--json", "all"]).run();
    assert!(json.stdout.lines().any(|l| l.contains("\"run_finished\"") && l.contains("\"shard\":\"3/3\"")), "{json:?}");
}

#[test]
fn reports_carry_the_shard() {
    let p = Project::new(&layered(false));
    let out = p.irun().args(["--partition", "hash:2/3", "--json", "--junit", "junit.xml"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    for line in out.stdout.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["shard"], "2/3", "every event says its shard: {line}");
    }
    let xml = p.read("junit.xml");
    assert!(xml.contains("<testsuite name=\"irun (shard 2/3)\""), "{xml}");
    assert!(xml.contains("<property name=\"irun.shard\" value=\"2/3\"/>"), "{xml}");
    assert!(xml.contains("classname=\"irun.shard-2-of-3.task\""), "{xml}");
}

/// The YAML block that follows `after` in README.md, as JSON (parsed by PyYAML).
fn readme_yaml(after: &str) -> serde_json::Value {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let from = readme.find(after).unwrap_or_else(|| panic!("README.md has {after:?}"));
    let block = readme[from..].split("```yaml\n").nth(1).unwrap().split("\n```").next().unwrap();
    let out =
        crate::reporting::python("import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.argv[1])))", &[block]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

/// Run one CI step's shell script in the project, with this irun on PATH (installing irun, the step before, is the
/// one not run).
fn ci_step(p: &Project, script: &str, env: &[(&str, String)]) -> std::process::Output {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_irun")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-eo", "pipefail", "-c", script]).current_dir(p.root()).env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    out
}

/// Leaves that ran in these projects, with how often.
fn leaves_run(projects: &[Project]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for p in projects {
        for line in p.read("ran.log").lines().filter(|l| l.starts_with("leaf-")) {
            *seen.entry(line.to_string()).or_default() += 1;
        }
    }
    seen
}

#[test]
fn the_readme_github_actions_workflow_runs_every_leaf_once_in_three_shards() {
    let workflow = readme_yaml("A GitHub Actions workflow that runs the integration suite");
    let steps = workflow["jobs"]["plan"]["steps"].as_array().unwrap();
    let plan_step = steps.iter().find(|s| s["id"] == "plan").unwrap()["run"].as_str().unwrap();
    let planner = Project::new(&layered(false));
    ci_step(&planner, plan_step, &[("GITHUB_OUTPUT", planner.path("github-output").display().to_string())]);
    let output = planner.read("github-output");
    let plan: serde_json::Value = serde_json::from_str(output.trim().strip_prefix("plan=").unwrap()).unwrap();
    // The matrix is the plan's shards, as `fromJSON(needs.plan.outputs.plan).shards` makes it.
    let shard_job = &workflow["jobs"]["shard"];
    assert_eq!(shard_job["strategy"]["matrix"]["include"], "${{ fromJSON(needs.plan.outputs.plan).shards }}");
    assert_eq!(workflow["jobs"]["plan"]["outputs"]["plan"], "${{ steps.plan.outputs.plan }}");
    let run = shard_job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.starts_with("irun "))
        .unwrap();
    let mut projects = Vec::new();
    for matrix in plan["shards"].as_array().unwrap() {
        let p = Project::new(&layered(false));
        let script = run.replace("${{ join(matrix.args, ' ') }}", &strings(&matrix["args"]).join(" "));
        assert!(!script.contains("${{"), "{script}");
        ci_step(&p, &script, &[]);
        assert!(p.read("junit.xml").contains(&format!("irun (shard {})", matrix["shard"].as_str().unwrap())));
        projects.push(p);
    }
    assert_eq!(projects.len(), 3);
    let seen = leaves_run(&projects);
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[test]
fn the_readme_gitlab_job_runs_every_leaf_once_in_its_parallel_jobs() {
    let pipeline = readme_yaml("The same on GitLab CI");
    let job = &pipeline["integration"];
    let total = job["parallel"].as_u64().unwrap();
    let script: Vec<&str> = job["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .filter(|l| !l.starts_with("cargo "))
        .collect();
    assert_eq!(job["artifacts"]["reports"]["junit"], "junit.xml");
    let mut projects = Vec::new();
    for index in 1..=total {
        let p = Project::new(&layered(false));
        let env = [("CI_NODE_INDEX", index.to_string()), ("CI_NODE_TOTAL", total.to_string())];
        ci_step(&p, &script.join("\n"), &env);
        assert!(p.exists("junit.xml"));
        projects.push(p);
    }
    let seen = leaves_run(&projects);
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[test]
fn a_huge_shard_count_is_a_usage_error_and_a_huge_partition_works() {
    let p = Project::new(&layered(false));
    let out = p.irun().args(["plan", "--json", "--shards", "4294967295"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--shards") && out.stderr.contains("1..=10000"), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    // The most it describes: shards past the leaves are there, empty.
    let doc = plan(&p, &["--shards", "10000"]);
    let shards = doc["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 10000);
    assert_eq!(strings(&shards[0]["units"]), ["leaf-0"]);
    assert!(
        shards[9999]["units"].as_array().unwrap().is_empty() && shards[9999]["tasks"].as_array().unwrap().is_empty()
    );
    assert_eq!(shards[9999]["shard"], "10000/10000");
    // One shard of a partition of any size is described, and runs.
    let one = plan(&p, &["--partition", "slice:4294967295/4294967295"]);
    assert!(one["shards"][0]["units"].as_array().unwrap().is_empty(), "{one}");
    let first = plan(&p, &["--partition", "hash:1/4294967295"]);
    assert_eq!(first["shards"].as_array().unwrap().len(), 1, "{first}");
    let run = p.irun().args(["--partition", "slice:1/4294967295", "-n"]).run();
    assert_eq!(run.code, 0, "{run:?}");
}
