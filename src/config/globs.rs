//! `sources` and `outputs` globs as irun matches them: relative to the project root, `*` within one folder, `**`
//! across folders, and `!pattern` excluding what the patterns before it matched (as in .gitignore and turborepo).

use std::os::unix::ffi::OsStrExt;
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
    /// The globs of the forms matched by globset (those with a wildcard), if any.
    set: Option<GlobSet>,
    /// Every form in the order written.
    forms: Vec<Form>,
    /// Where the `!` patterns start: a folder the list matches still holds paths it does not if one is there.
    excluded_roots: Vec<PathBuf>,
}

/// One glob of a list, as written or as it stands for a folder (`dir/**` for `dir`, `dir` for `dir/**`).
#[derive(Clone, Debug)]
struct Form {
    /// Its text (for [`Globs::may_match_under`]).
    text: String,
    /// Whether it came from a `!` pattern.
    exclude: bool,
    matcher: Matcher,
}

/// How a form matches a path: most sources and outputs are plain paths, compared as bytes (globset's automaton costs
/// milliseconds and kilobytes per list; a project of 10,000 tasks has tens of thousands of lists).
#[derive(Clone, Debug)]
enum Matcher {
    /// The path is this one.
    Exact(String),
    /// The path is inside this folder (`dir/**`).
    Under(String),
    /// Glob number n of the list's set.
    Glob(usize),
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

    /// Whether some path inside the folder `dir` (not `dir` itself) could match: what a removed or moved-away folder
    /// may have taken with it. `src/**` and `**/*.py` can match under `src/sub`, `src/*.txt` cannot; nor can
    /// `src/**` followed by `!src/sub/**`. When in doubt (a `{a,b/c}` alternative spanning folders) it says yes.
    pub(crate) fn may_match_under(&self, dir: impl AsRef<Path>) -> bool {
        let dir = dir.as_ref();
        self.lists.iter().any(|l| l.may_match_under(dir))
    }
}

impl List {
    fn new(patterns: &[String]) -> List {
        let mut set = GlobSetBuilder::new();
        let mut globs = 0;
        let mut forms = Vec::new();
        let mut excluded_roots = Vec::new();
        for pattern in patterns {
            let (exclude, body) = parse(pattern);
            let body = body.trim_start_matches("./").trim_end_matches('/');
            if exclude {
                excluded_roots.push(glob_root(body));
            }
            let mut texts = vec![body.to_string()];
            // `dir/**` stands for the folder too, so removing or replacing `dir` itself is covered; a pattern without
            // wildcards that names a folder stands for what it holds (as in the up-to-date checks).
            if let Some(dir) = body.strip_suffix("/**") {
                texts.push(dir.to_string());
            } else if is_literal(body) && !body.is_empty() {
                texts.push(format!("{body}/**"));
            }
            for text in texts {
                let matcher = match text.strip_suffix("/**") {
                    _ if plain(&text) => Matcher::Exact(text.clone()),
                    Some(dir) if plain(dir) => Matcher::Under(format!("{dir}/")),
                    _ => match glob(&text) {
                        Ok(g) => {
                            set.add(g);
                            globs += 1;
                            Matcher::Glob(globs - 1)
                        }
                        Err(_) => continue,
                    },
                };
                forms.push(Form { text, exclude, matcher });
            }
        }
        let set = (globs > 0).then(|| set.build().unwrap_or_else(|_| GlobSet::empty()));
        List { set, forms, excluded_roots }
    }

    /// Whether a positive glob could match inside `dir`, and no `!` pattern after it takes out all of `dir`.
    fn may_match_under(&self, dir: &Path) -> bool {
        let dir: Vec<String> = dir.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let last_exclusion =
            self.forms.iter().rposition(|f| f.exclude && excludes_all_under(&f.text, &dir)).map_or(0, |i| i + 1);
        self.forms[last_exclusion..].iter().any(|f| !f.exclude && glob_may_match_under(&f.text, &dir))
    }

    /// The last form that matches decides, as in .gitignore: a later positive one takes back what a `!` took.
    fn is_match(&self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_bytes();
        let globs = match &self.set {
            Some(set) => set.matches(path),
            None => Vec::new(),
        };
        let matches = |m: &Matcher| match m {
            Matcher::Exact(p) => bytes == p.as_bytes(),
            Matcher::Under(dir) => bytes.starts_with(dir.as_bytes()),
            Matcher::Glob(n) => globs.contains(n),
        };
        self.forms.iter().rev().find(|f| matches(&f.matcher)).is_some_and(|f| !f.exclude)
    }
}

/// Whether a glob's text is a plain path: no wildcard, nor a `\` escaping one (compared as it is).
fn plain(text: &str) -> bool {
    is_literal(text) && !text.contains('\\')
}

/// Whether glob `text` takes out everything inside the folder `dir`: it is `X/**` (or names `X`, which stands for
/// `X/**` too) with `X` matching `dir` or a folder above it.
fn excludes_all_under(text: &str, dir: &[String]) -> bool {
    let Some(folder) = text.strip_suffix("/**") else { return false };
    let Ok(g) = glob(folder) else { return false };
    let m = g.compile_matcher();
    (1..=dir.len()).any(|n| m.is_match(dir[..n].join("/")))
}

/// Whether glob `text` could match some path inside the folder `dir` (given as its components), matching one
/// component at a time: `**` matches any number of them.
fn glob_may_match_under(text: &str, dir: &[String]) -> bool {
    if text.contains('{') {
        // An alternative may hold a `/`: compare only where the glob starts (a yes costs an up-to-date check).
        let root: Vec<String> =
            glob_root(text).components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let n = root.len().min(dir.len());
        return root[..n] == dir[..n];
    }
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
    let mut at = 0;
    for name in dir {
        match parts.get(at) {
            // Nothing left to match what is inside, or `**`, which can take the rest of `dir` and what is in it.
            None => return false,
            Some(&"**") => return true,
            Some(part) => {
                let matches = glob(part).is_ok_and(|g| g.compile_matcher().is_match(name));
                if !matches {
                    return false;
                }
                at += 1;
            }
        }
    }
    // `dir` matched so far: something inside it can match what is left, if anything is.
    at < parts.len()
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

    #[test]
    fn a_glob_may_match_under_a_folder_only_where_it_could_reach() {
        assert!(globs(&["src/**"]).may_match_under("src/sub"));
        assert!(globs(&["src/**"]).may_match_under("src"));
        assert!(globs(&["src/*.txt"]).may_match_under("src"));
        assert!(!globs(&["src/*.txt"]).may_match_under("src/sub"), "`*` stays within src");
        assert!(globs(&["**/*.py"]).may_match_under("anything/at/all"));
        assert!(globs(&["src/*/test/*.py"]).may_match_under("src/a"));
        assert!(!globs(&["src/*/test/*.py"]).may_match_under("src/a/other"));
        assert!(!globs(&["src/**"]).may_match_under("junk"));
        assert!(globs(&["src/a.txt"]).may_match_under("src"), "src/a.txt went with src");
        assert!(!globs(&["src/a.txt"]).may_match_under("src/sub"));
        assert!(globs(&["src/vendor"]).may_match_under("src/vendor"), "a literal folder stands for what it holds");
        assert!(globs(&["src/vendor"]).may_match_under("src"));
        assert!(!globs(&["test-results/**"]).may_match_under("test-result"));
    }

    #[test]
    fn an_exclusion_of_a_whole_folder_means_nothing_under_it_may_match() {
        let g = globs(&["src/**", "!src/gen/**"]);
        assert!(!g.may_match_under("src/gen"));
        assert!(!g.may_match_under("src/gen/deep"));
        assert!(g.may_match_under("src/other"));
        assert!(g.may_match_under("src"), "src holds paths besides src/gen");
        assert!(!globs(&["src/**", "!src/vendor"]).may_match_under("src/vendor/x"));
        assert!(globs(&["src/**", "!src/**/*.test.tsx"]).may_match_under("src/ui"), "only some files are taken out");
        assert!(globs(&["!src/gen/**", "src/**"]).may_match_under("src/gen"), "a later pattern takes them back");
        assert!(globs(&["src/{a,b/c}/*.rs"]).may_match_under("src/b"), "in doubt, yes");
    }

    /// The rule as globset alone applies it (every form a glob; the last one matching decides).
    fn by_globset_alone(patterns: &[String], path: &str) -> bool {
        let mut last = None;
        for pattern in patterns {
            let (exclude, body) = parse(pattern);
            let body = body.trim_start_matches("./").trim_end_matches('/');
            let mut forms = vec![body.to_string()];
            if let Some(dir) = body.strip_suffix("/**") {
                forms.push(dir.to_string());
            } else if is_literal(body) && !body.is_empty() {
                forms.push(format!("{body}/**"));
            }
            for form in forms {
                if glob(&form).is_ok_and(|g| g.compile_matcher().is_match(path)) {
                    last = Some(exclude);
                }
            }
        }
        last == Some(false)
    }

    proptest::proptest! {
        #[test]
        fn plain_paths_match_as_globset_would_match_them(
            patterns in proptest::collection::vec(
                "!?(\\./)?(a|b|src|a/b|src/a|b/\\*|\\*\\*|a/\\*\\*|\\*\\*/b|src/a\\.txt|a\\\\b)(/)?", 1..5),
            path in "(a|b|src|a/b|src/a|src/b|a/b/c|src/a\\.txt|b/x|a\\\\b|ab|src/a/b)",
        ) {
            let g = Globs::new(&patterns);
            proptest::prop_assert_eq!(g.is_match(&path), by_globset_alone(&patterns, &path), "{:?} on {}", patterns, path);
        }
    }
}
