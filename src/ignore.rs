//! What irun never looks at, for watch mode and for up-to-date checks alike: version control, virtualenvs, build
//! output and caches, editors' swap and backup files, whatever the project's .gitignore files ignore, and the
//! tasks' own outputs; and which links to folders are followed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::{Globs, glob_root};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Folders and files never worth reacting to.
const IGNORED_NAMES: &[&str] = &[".git", "target", ".venv", "__pycache__", ".irun", ".mypy_cache", ".pytest_cache"];
/// Compiled files and editors' swap, backup and temporary files.
const IGNORED_GLOBS: &[&str] = &[
    "*.pyc",
    "*.pyo",
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.kate-swp",
    ".goutputstream-*",
    "*___jb_tmp___",
    "*___jb_old___",
    ".DS_Store",
];

/// Which paths changes are ignored for.
pub(crate) struct Filter {
    pub(crate) root: PathBuf,
    builtin: GlobSet,
    /// Tasks' declared outputs: writing them must never trigger a cycle. Shared with the [`Watcher`] handle, which
    /// replaces them when Irun.toml is reloaded.
    pub(crate) outputs: Arc<Mutex<Globs>>,
    /// Where tasks' `sources` globs start (their leading folders without wildcards): a link to a folder outside the
    /// project is followed only there. Replaced with the outputs on a reload.
    pub(crate) source_roots: Arc<Mutex<Vec<PathBuf>>>,
    /// The project's .gitignore files, deepest first: found when first needed (a run whose tasks name plain paths
    /// never needs them, and finding them reads every folder of the project).
    gitignores: OnceLock<Vec<Gitignore>>,
    /// The files irun's own reports write (`--events`, `--junit`, `--timings`, `--trace`), relative to the root, and
    /// the files they are written aside in first (`NAME.PID.tmp`): irun writing them must not start a cycle.
    reports: Vec<PathBuf>,
}

/// Where the `sources` globs start: a `!` pattern starts nowhere (it only takes out).
pub(crate) fn source_roots(sources: &[String]) -> Vec<PathBuf> {
    sources.iter().filter(|g| !crate::config::parse_glob(g).0).map(|g| glob_root(g)).collect()
}

impl Filter {
    /// `outputs` are the tasks' lists of globs relative to `root`.
    pub(crate) fn new(root: &Path, outputs: &[Vec<String>]) -> Filter {
        Filter {
            root: root.to_path_buf(),
            builtin: builtin(),
            // The same glob rules as Irun.toml's own (`./` prefix, `*` within a folder, `dir/**` covers `dir`, `!`
            // takes out of a task's list).
            outputs: Arc::new(Mutex::new(Globs::any(outputs))),
            source_roots: Arc::new(Mutex::new(Vec::new())),
            gitignores: OnceLock::new(),
            reports: Vec::new(),
        }
    }

    /// The report files of the run (absolute, or relative to the current directory); those outside the project are
    /// never seen anyway.
    pub(crate) fn with_reports<'a>(mut self, files: impl IntoIterator<Item = &'a Path>) -> Filter {
        let root = &self.root;
        self.reports = files
            .into_iter()
            .filter_map(|f| std::path::absolute(f).ok())
            .filter_map(|f| f.strip_prefix(root).ok().map(Path::to_path_buf))
            .collect();
        self
    }

    fn is_report(&self, rel: &Path) -> bool {
        self.reports.iter().any(|report| {
            let aside = || {
                let (Some(name), Some(report_name)) = (rel.file_name(), report.file_name()) else { return false };
                let (name, report_name) = (name.to_string_lossy(), report_name.to_string_lossy());
                rel.parent() == report.parent()
                    && name
                        .strip_prefix(&*report_name)
                        .is_some_and(|rest| rest.starts_with('.') && rest.ends_with(".tmp"))
            };
            rel == report || aside()
        })
    }

    /// Read the project's .gitignore files again (one of them changed, or events were lost).
    pub(crate) fn reload_gitignores(&mut self) {
        self.gitignores = OnceLock::from(self.sorted_gitignores());
    }

    fn gitignores(&self) -> &[Gitignore] {
        self.gitignores.get_or_init(|| self.sorted_gitignores())
    }

    fn sorted_gitignores(&self) -> Vec<Gitignore> {
        let mut found = self.find_gitignores();
        // Deepest first: the closest .gitignore with a rule for a path decides (as in git).
        found.sort_by_key(|g| std::cmp::Reverse(g.path().components().count()));
        found
    }

    /// Every .gitignore in the project (outside ignored folders), plus .git/info/exclude.
    fn find_gitignores(&self) -> Vec<Gitignore> {
        let mut found = Vec::new();
        let mut root_rules = GitignoreBuilder::new(&self.root);
        root_rules.add(self.root.join(".git/info/exclude"));
        root_rules.add(self.root.join(".gitignore"));
        if let Ok(g) = root_rules.build() {
            found.push(g);
        }
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for sub in subfolders(&dir) {
                let rel = sub.strip_prefix(&self.root).unwrap_or(&sub).to_path_buf();
                if self.ignored_by(&found, &rel, true) {
                    continue;
                }
                let file = sub.join(".gitignore");
                if file.is_file() {
                    let mut b = GitignoreBuilder::new(&sub);
                    b.add(&file);
                    if let Ok(g) = b.build() {
                        found.push(g);
                    }
                }
                stack.push(sub);
            }
        }
        found
    }

    fn ignored_by(&self, gitignores: &[Gitignore], rel: &Path, is_dir: bool) -> bool {
        if rel.components().any(|c| IGNORED_NAMES.iter().any(|n| c.as_os_str() == *n)) {
            return true;
        }
        if rel.file_name().is_some_and(|name| self.builtin.is_match(name)) || self.builtin.is_match(rel) {
            return true;
        }
        let abs = self.root.join(rel);
        for g in gitignores.iter().filter(|g| abs.starts_with(g.path())) {
            match g.matched_path_or_any_parents(&abs, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }

    /// The `sources` globs of the tasks watched (links to folders outside the project are followed under them).
    pub(crate) fn with_sources(self, sources: &[String]) -> Filter {
        *self.source_roots.lock().unwrap_or_else(|e| e.into_inner()) = source_roots(sources);
        self
    }

    /// Whether to follow the link to a folder at `rel`, whose real folder is `real`: always inside the project
    /// (it is watched anyway, and its files get a second path); outside it, only where a task's `sources` may reach
    /// (a link to a huge folder elsewhere, such as a build cache, is not watched for nothing), and never to a folder
    /// that holds the project.
    fn follows(&self, rel: &Path, real: &Path) -> bool {
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        if real.starts_with(&root) {
            return true;
        }
        if root.starts_with(real) {
            return false;
        }
        let roots = self.source_roots.lock().unwrap_or_else(|e| e.into_inner());
        roots.iter().any(|r| rel.starts_with(r) || r.starts_with(rel))
    }

    /// Whether the link at `path` leads to a folder to follow.
    pub(crate) fn follows_link(&self, path: &Path) -> bool {
        let Ok(real) = std::fs::canonicalize(path) else { return false };
        real.is_dir() && self.follows(path.strip_prefix(&self.root).unwrap_or(path), &real)
    }

    /// Whether a change to `rel` (relative to the root) is to be ignored.
    pub(crate) fn ignored(&self, rel: &Path, is_dir: bool) -> bool {
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        // A folder of outputs is looked into when a `!` pattern may take something in it out of the outputs.
        (if is_dir { outputs.covers_folder(rel) } else { outputs.is_match(rel) })
            || (!is_dir && self.is_report(rel))
            || self.ignored_by(self.gitignores(), rel, is_dir)
    }
}

fn builtin() -> GlobSet {
    let mut builtin = GlobSetBuilder::new();
    for g in IGNORED_GLOBS {
        builtin.add(Glob::new(g).expect("built-in globs are valid"));
    }
    builtin.build().expect("built-in globs are valid")
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    // `file_type` does not follow symlinks: (for .gitignore files) a link to a folder is not descended into.
    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_followed_inside_the_project_and_under_sources_but_never_to_a_folder_holding_it() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("tools")).unwrap();
        std::fs::create_dir_all(root.join("shared")).unwrap();
        let f = Filter::new(&root, &[]).with_sources(&["src/**/*.rs".to_string()]);
        for (link, target, followed) in [
            ("src/ext", outside.path().to_path_buf(), true),
            ("tools/ext", outside.path().to_path_buf(), false),
            ("tools/shared", root.join("shared"), true),
            ("src/up", dir.path().to_path_buf(), false),
            ("src/self", root.clone(), true),
        ] {
            std::os::unix::fs::symlink(&target, root.join(link)).unwrap();
            assert_eq!(f.follows_link(&root.join(link)), followed, "{link} -> {}", target.display());
        }
    }

    #[test]
    fn built_in_ignores_and_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let f = Filter::new(dir.path(), &[vec!["build/**".to_string()]]);
        for p in [
            ".git/index",
            "target/debug/x",
            ".venv/bin/python",
            "a/__pycache__/m.cpython-311.pyc",
            "x.pyc",
            "notes.txt~",
            ".file.py.swp",
            "4913",
            "build/out.bin",
        ] {
            assert!(f.ignored(Path::new(p), false), "{p} should be ignored");
        }
        for p in ["src/main.rs", "integration/thread", "targets/list", "buildings.txt"] {
            assert!(!f.ignored(Path::new(p), false), "{p} should be watched");
        }
    }

    #[test]
    fn gitignore_rules_apply_including_nested_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.log\n/generated/\n").unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deep")).unwrap();
        std::fs::write(dir.path().join("sub/.gitignore"), "secret.txt\n").unwrap();
        let f = Filter::new(dir.path(), &[]);
        assert!(f.ignored(Path::new("a/b.log"), false));
        assert!(f.ignored(Path::new("generated/x.rs"), false));
        assert!(f.ignored(Path::new("sub/deep/secret.txt"), false));
        assert!(!f.ignored(Path::new("secret.txt"), false));
        assert!(!f.ignored(Path::new("sub/deep/code.rs"), false));
    }

    #[test]
    fn a_nested_gitignore_can_unignore_what_a_parent_ignores() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.txt\n").unwrap();
        std::fs::create_dir_all(dir.path().join("keep")).unwrap();
        std::fs::write(dir.path().join("keep/.gitignore"), "!important.txt\n").unwrap();
        let f = Filter::new(dir.path(), &[]);
        assert!(f.ignored(Path::new("notes.txt"), false));
        assert!(f.ignored(Path::new("keep/other.txt"), false));
        assert!(!f.ignored(Path::new("keep/important.txt"), false));
    }

    #[test]
    fn output_globs_follow_irun_toml_rules() {
        let dir = tempfile::tempdir().unwrap();
        let f = Filter::new(dir.path(), &[vec!["./gen/**".to_string(), "*.json".to_string()]]);
        assert!(f.ignored(Path::new("gen"), true), "`dir/**` covers the folder itself");
        assert!(f.ignored(Path::new("gen/a/b.c"), false));
        assert!(f.ignored(Path::new("top.json"), false));
        assert!(!f.ignored(Path::new("src/config.json"), false), "`*` stays within a folder");
    }
}
