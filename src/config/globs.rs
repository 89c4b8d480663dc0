//! `sources` and `outputs` globs as irun matches them: relative to the project root, `*` within one folder, `**`
//! across folders, and `!pattern` excluding what the patterns before it matched (as in .gitignore and turborepo).

use std::path::{Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};

/// The glob a pattern holds, and whether it excludes (`!src/**/*.test.tsx`).
pub(crate) fn parse(pattern: &str) -> (bool, &str) {
    match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    }
}

/// Whether a glob has no wildcard: it names one file or folder.
pub(crate) fn is_literal(glob: &str) -> bool {
    !glob.contains(['*', '?', '[', '{'])
}

/// The folder a glob starts in: its leading components without wildcards (`src/**/*.rs` -> `src`).
pub(crate) fn glob_root(glob: &str) -> PathBuf {
    Path::new(glob.trim_start_matches("./"))
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[', '{']))
        .collect()
}

pub(crate) fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern.trim_start_matches("./")).literal_separator(true).build()
}

/// The matcher for one or more lists of `sources` or `outputs` patterns (one list per task). A path matches a list
/// when the last of its patterns that matches the path is not a `!` one; it matches when any list takes it. The
/// globs were checked when Irun.toml was loaded (one that is not valid matches nothing).
#[derive(Clone, Debug)]
pub(crate) struct Globs {
    lists: Vec<List>,
}

#[derive(Clone, Debug)]
struct List {
    set: GlobSet,
    /// Per glob in `set`, in the order written: whether it came from a `!` pattern.
    excludes: Vec<bool>,
    /// Where the `!` patterns start: a folder the list matches still holds paths it does not if one is there.
    excluded_roots: Vec<PathBuf>,
}

impl Globs {
    /// One task's list.
    pub(crate) fn new(patterns: &[String]) -> Globs {
        Globs::any(std::slice::from_ref(&patterns.to_vec()))
    }

    /// Several tasks' lists: a path matches when one of them takes it in (one task's `!` does not exclude from
    /// another's).
    pub(crate) fn any(lists: &[Vec<String>]) -> Globs {
        Globs { lists: lists.iter().filter(|l| !l.is_empty()).map(|l| List::new(l)).collect() }
    }

    /// No pattern at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    pub(crate) fn is_match(&self, path: impl AsRef<Path>) -> bool {
        let path = path.as_ref();
        self.lists.iter().any(|l| l.is_match(path))
    }

    /// Whether the folder `dir` and everything in it match (no `!` pattern may take out something inside): what
    /// the watcher need not look into.
    pub(crate) fn covers_folder(&self, dir: impl AsRef<Path>) -> bool {
        let dir = dir.as_ref();
        self.lists
            .iter()
            .any(|l| l.is_match(dir) && !l.excluded_roots.iter().any(|r| r.starts_with(dir) || dir.starts_with(r)))
    }
}

impl List {
    fn new(patterns: &[String]) -> List {
        let mut set = GlobSetBuilder::new();
        let mut excludes = Vec::new();
        let mut excluded_roots = Vec::new();
        for pattern in patterns {
            let (exclude, body) = parse(pattern);
            let body = body.trim_start_matches("./").trim_end_matches('/');
            if exclude {
                excluded_roots.push(glob_root(body));
            }
            let mut forms = vec![body.to_string()];
            // `dir/**` stands for the folder too, so removing or replacing `dir` itself is covered; a pattern without
            // wildcards that names a folder stands for what it holds (as in the up-to-date checks).
            if let Some(dir) = body.strip_suffix("/**") {
                forms.push(dir.to_string());
            } else if is_literal(body) && !body.is_empty() {
                forms.push(format!("{body}/**"));
            }
            for form in forms {
                if let Ok(g) = glob(&form) {
                    set.add(g);
                    excludes.push(exclude);
                }
            }
        }
        let set = set.build().unwrap_or_else(|_| GlobSet::empty());
        List { set, excludes, excluded_roots }
    }

    fn is_match(&self, path: &Path) -> bool {
        if !self.excludes.contains(&true) {
            return self.set.is_match(path);
        }
        // The last pattern that matches decides, as in .gitignore: a later positive one takes back what a `!` took.
        self.set.matches(path).into_iter().max().is_some_and(|i| !self.excludes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(patterns: &[&str]) -> Globs {
        Globs::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn an_exclusion_removes_what_the_patterns_before_it_matched() {
        let g = globs(&["src/**", "!src/**/*.test.tsx"]);
        assert!(g.is_match("src/app.tsx"));
        assert!(g.is_match("src/ui/button.tsx"));
        assert!(!g.is_match("src/app.test.tsx"));
        assert!(!g.is_match("src/ui/button.test.tsx"));
        assert!(!g.is_match("docs/a.md"), "an exclusion includes nothing");
    }

    #[test]
    fn a_later_pattern_takes_back_what_an_exclusion_removed() {
        let g = globs(&["src/**", "!src/gen/**", "src/gen/keep.rs"]);
        assert!(g.is_match("src/main.rs"));
        assert!(!g.is_match("src/gen/a.rs"));
        assert!(!g.is_match("src/gen"), "`!dir/**` excludes the folder itself");
        assert!(g.is_match("src/gen/keep.rs"));
        let before = globs(&["!src/gen/**", "src/**"]);
        assert!(before.is_match("src/gen/a.rs"), "an exclusion only removes what came before it");
    }

    #[test]
    fn an_exclusion_without_wildcards_takes_out_a_folder_or_a_file() {
        let g = globs(&["src/**", "!src/vendor", "!./src/config.local.json"]);
        assert!(!g.is_match("src/vendor/lib.rs"));
        assert!(!g.is_match("src/config.local.json"));
        assert!(g.is_match("src/config.json"));
    }

    #[test]
    fn one_lists_exclusion_does_not_remove_from_another() {
        let lists = [vec!["dist/**".to_string(), "!dist/cache/**".to_string()], vec!["dist/cache/**".to_string()]];
        let g = Globs::any(&lists);
        assert!(g.is_match("dist/cache/x"));
        assert!(g.is_match("dist/a.js"));
        let alone = Globs::any(&lists[..1]);
        assert!(!alone.is_match("dist/cache/x"));
        assert!(Globs::any(&[vec![]]).is_empty());
    }

    #[test]
    fn a_folder_is_covered_only_when_no_exclusion_may_reach_into_it() {
        let g = globs(&["out/**", "!out/keep/*.txt", "gen/**"]);
        assert!(g.covers_folder("gen"));
        assert!(g.covers_folder("out/sub"));
        assert!(!g.covers_folder("out"), "out/keep/a.txt is not an output");
        assert!(!g.covers_folder("out/keep"));
        assert!(!globs(&["out/**", "!**/*.md"]).covers_folder("out"));
        assert!(!g.covers_folder("src"));
    }
}
