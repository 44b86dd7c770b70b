//! `.dockerignore` (moby `patternmatcher` + `ignorefile`): one pattern per line, `#` comments, `!` exceptions,
//! patterns cleaned like `filepath.Clean` with a leading `/` dropped, `**` for any number of directories, and a
//! pattern that matches a parent directory excluding everything below it. Later lines win.

use crate::glob::{GlobError, Pattern};

/// Errors reading `.dockerignore`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\"")]
    BareExclusion,
    #[error("error parsing .dockerignore: {0}")]
    Glob(#[from] GlobError),
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    exclusion: bool,
}

/// The compiled ignore list.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

/// Go's `path.Clean` for a slash path.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

impl Ignore {
    /// Parses the contents of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut rules = Vec::new();
        for line in text.lines() {
            // Only a `#` in the first column is a comment (ignorefile.ReadAll).
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(IgnoreError::BareExclusion);
                }
            }
            let mut c = clean(p);
            if c.len() > 1 && c.starts_with('/') {
                c.remove(0);
            }
            rules.push(Rule {
                pattern: Pattern::new(&c, true)?,
                exclusion,
            });
        }
        Ok(Ignore { rules })
    }

    /// Whether there are exception (`!`) rules: then an excluded directory must still be walked.
    pub fn has_exclusions(&self) -> bool {
        self.rules.iter().any(|r| r.exclusion)
    }

    /// Whether `path` (relative, `/`-separated) is ignored.
    pub fn matches(&self, path: &str) -> bool {
        let file = clean(path);
        let parents: Vec<&str> = file.split('/').collect();
        let has_parent = parents.len() > 1;
        let mut matched = false;
        for r in &self.rules {
            if r.exclusion != matched {
                continue;
            }
            let mut hit = r.pattern.matches(&file);
            if !hit && has_parent {
                hit = (1..parents.len()).any(|i| r.pattern.matches(&parents[..i].join("/")));
            }
            if hit {
                matched = !r.exclusion;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(p: &str, f: &str) -> bool {
        Ignore::parse(p).unwrap().matches(f)
    }

    #[test]
    fn moby_match_table() {
        let cases = [
            ("**", "file", true),
            ("**", "/", true),
            ("**/", "file", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            ("/leading", "leading", true),
            ("docs", "docs/a/b.md", true),
            ("./x/../y", "y", true),
        ];
        for (p, f, want) in cases {
            assert_eq!(one(p, f), want, "pattern {p:?} file {f:?}");
        }
    }

    #[test]
    fn exceptions_and_order() {
        let ig = Ignore::parse("# comment\n*.md\n!README.md\n\n  docs  \n!docs/keep\n").unwrap();
        assert!(ig.matches("a.md"));
        assert!(!ig.matches("README.md"));
        assert!(ig.matches("docs/x"));
        assert!(!ig.matches("docs/keep"));
        assert!(!ig.matches("src/main.rs"));
        assert!(ig.has_exclusions());
        // Later lines win.
        let ig = Ignore::parse("!a\na\n").unwrap();
        assert!(ig.matches("a"));
        assert_eq!(
            Ignore::parse("!\n").unwrap_err(),
            IgnoreError::BareExclusion
        );
    }

    #[test]
    fn path_clean() {
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("../a"), "../a");
    }
}
