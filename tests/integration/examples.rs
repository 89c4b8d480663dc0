//! The README's examples do what its text says. The Node example runs offline, with stand-ins for `npm` and `npx`
//! on PATH: `npm ci` writes `node_modules/.package-lock.json`, `vite` is Python's HTTP server on the port given,
//! `vitest` passes, and `playwright` fetches `BASE_URL`.

use crate::harness::Project;

/// The ```toml block after `heading` in README.md.
fn readme_toml(heading: &str) -> String {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let from = readme.find(heading).unwrap_or_else(|| panic!("README.md has {heading:?}"));
    readme[from..].split("```toml\n").nth(1).unwrap().split("\n```").next().unwrap().to_string()
}

const NPM: &str =
    "#!/bin/sh\n[ \"$1\" = ci ] && mkdir -p node_modules && echo '{}' > node_modules/.package-lock.json\n";

const NPX: &str = r#"#!/bin/sh
tool=$1; shift
case "$tool" in
  vite) while [ $# -gt 0 ]; do [ "$1" = --port ] && port=$2; shift; done
        exec python3 -m http.server --bind 127.0.0.1 "$port" ;;
  vitest) echo "vitest: 3 passed" ;;
  playwright) mkdir -p test-results
        python3 -c 'import os, urllib.request as u; print("playwright reached", os.environ["BASE_URL"], u.urlopen(os.environ["BASE_URL"]).status)' ;;
  *) exit 127 ;;
esac
"#;

#[test]
fn the_node_example_plans_runs_and_stays_up_to_date_as_the_readme_says() {
    let p = Project::new(&readme_toml("### Example: a Node project"));
    p.script("bin/npm", NPM).script("bin/npx", NPX);
    for (file, text) in [
        ("package.json", "{}"),
        ("package-lock.json", "{}"),
        ("src/App.tsx", "export default 1"),
        ("src/App.e2e.ts", "test(1)"),
        ("e2e/home.spec.ts", "test(2)"),
    ] {
        p.file(file, text);
    }
    let path = format!("{}:{}", p.path("bin").display(), std::env::var("PATH").unwrap_or_default());
    let irun = |args: &[&str]| p.irun().env("PATH", &path).args(["--progress", "never"]).args(args).run();

    // `npm ci` first, then the dev server and Vitest side by side, then Playwright.
    let plan = irun(&["-n"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let waves: Vec<&str> = plan.stdout.lines().filter(|l| l.trim_start().starts_with("wave")).collect();
    assert_eq!(waves.len(), 3, "{plan:?}");
    assert!(waves[0].ends_with("wave 1: deps"), "{plan:?}");
    assert!(waves[1].contains("web (service, ready once") && waves[1].ends_with(", unit"), "{plan:?}");
    assert!(waves[2].ends_with("wave 3: e2e"), "{plan:?}");
    let unit_only = irun(&["-n", "unit"]);
    assert!(!unit_only.stdout.contains("web"), "`irun unit` starts no server: {unit_only:?}");

    // Playwright reaches the server on the port chosen for it; the server is stopped when it is done.
    let out = irun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("vitest: 3 passed"), "{out:?}");
    let reached = out.stdout.lines().find(|l| l.contains("playwright reached")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(reached.contains("http://127.0.0.1:") && reached.ends_with("/ 200"), "{reached}");
    let stopping = out.stdout.find("web  * stopping (no longer needed)").unwrap_or_else(|| panic!("{out:?}"));
    assert!(out.stdout.find("e2e  * ok").is_some_and(|done| done < stopping), "{out:?}");

    // An edit to an e2e file under src/ reruns Playwright and leaves Vitest up to date.
    p.file("src/App.e2e.ts", "test(3)");
    let plan = irun(&["-n"]);
    assert!(plan.stdout.contains("unit (up to date)"), "{plan:?}");
    assert!(plan.stdout.contains("e2e") && !plan.stdout.contains("e2e (up to date)"), "{plan:?}");
}
