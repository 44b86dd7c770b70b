//! Glob matching shared by COPY/ADD wildcards (Go `filepath.Match`: `*`, `?`, `[a-z]`, `[^a-z]`, `\` escape;
//! wildcards never cross `/`) and `.dockerignore` patterns (which add `**`, matching any number of
//! directories, with the translation moby's patternmatcher applies to build its regular expressions).

/// A malformed pattern.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GlobError {
    #[error("syntax error in pattern: {0}")]
    BadPattern(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    Any,
    /// `[...]`: ranges, negated.
    Class(Vec<(char, char)>, bool),
    /// `**` followed by more pattern: `(.*/)?`.
    Globstar,
    /// `**` at the end: `.*`.
    GlobstarEnd,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    toks: Vec<Tok>,
    text: String,
}

impl Pattern {
    /// Compiles a Go `filepath.Match` pattern (`double_star` off) or a dockerignore pattern (`double_star` on).
    pub fn new(pat: &str, double_star: bool) -> Result<Self, GlobError> {
        let bad = || GlobError::BadPattern(pat.to_string());
        let chars: Vec<char> = pat.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if double_star && chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    toks.push(if i >= chars.len() {
                        Tok::GlobstarEnd
                    } else {
                        Tok::Globstar
                    });
                }
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => {
                    let n = *chars.get(i).ok_or_else(bad)?;
                    i += 1;
                    toks.push(Tok::Lit(n));
                }
                '[' => {
                    let neg = chars.get(i) == Some(&'^');
                    if neg {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let mut lo = *chars.get(i).ok_or_else(bad)?;
                        i += 1;
                        if lo == ']' && !first {
                            break;
                        }
                        first = false;
                        if lo == '\\' {
                            lo = *chars.get(i).ok_or_else(bad)?;
                            i += 1;
                        }
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']')
                        {
                            hi = chars[i + 1];
                            i += 2;
                            if hi == '\\' {
                                hi = *chars.get(i).ok_or_else(bad)?;
                                i += 1;
                            }
                        }
                        ranges.push((lo, hi));
                    }
                    toks.push(Tok::Class(ranges, neg));
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern {
            toks,
            text: pat.to_string(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has any wildcard (so COPY must list the directory).
    pub fn has_wildcard(&self) -> bool {
        self.toks.iter().any(|t| !matches!(t, Tok::Lit(_)))
    }

    /// Whole-string match.
    pub fn matches(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        m(&self.toks, &s)
    }
}

fn m(p: &[Tok], s: &[char]) -> bool {
    let Some((t, rest)) = p.split_first() else {
        return s.is_empty();
    };
    match t {
        Tok::Lit(c) => s.first() == Some(c) && m(rest, &s[1..]),
        Tok::Any => s.first().is_some_and(|c| *c != '/') && m(rest, &s[1..]),
        Tok::Class(r, neg) => {
            s.first()
                .is_some_and(|c| *c != '/' && r.iter().any(|(lo, hi)| lo <= c && c <= hi) != *neg)
                && m(rest, &s[1..])
        }
        Tok::Star => {
            for k in 0..=s.len() {
                if m(rest, &s[k..]) {
                    return true;
                }
                if k < s.len() && s[k] == '/' {
                    break;
                }
            }
            false
        }
        Tok::GlobstarEnd => true,
        Tok::Globstar => {
            // `(.*/)?`: either nothing, or anything ending in a '/'.
            if m(rest, s) {
                return true;
            }
            (0..s.len()).any(|k| s[k] == '/' && m(rest, &s[k + 1..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match() {
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[x\\-]", "-", true),
            ("*x", "xxx", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(
                Pattern::new(p, false).unwrap().matches(s),
                want,
                "{p} vs {s}"
            );
        }
        for bad in ["[", "a\\", "[a-", "[]"] {
            assert!(Pattern::new(bad, false).is_err(), "{bad}");
        }
    }
}
