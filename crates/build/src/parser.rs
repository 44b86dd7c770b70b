//! The Dockerfile tokenizer (moby `parser.Parse`): parser directives (`# escape=`, `# syntax=`, only at the
//! top), comments, line continuations with the escape character, empty continuation lines, and splitting each
//! logical line into keyword, `--flags`, and arguments in JSON (exec) or shell form.

/// Errors from the tokenizer. Displayed the way docker's classic builder prints them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("Dockerfile parse error line {line}: {msg}")]
    Line { line: usize, msg: String },
    #[error("the Dockerfile (Dockerfile) cannot be empty")]
    Empty,
    #[error("invalid escape token '{0}' does not match ` or \\")]
    BadEscape(String),
}

/// One logical instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Keyword, upper-cased (`RUN`).
    pub keyword: String,
    /// The keyword exactly as written (for error messages).
    pub original_keyword: String,
    /// `--name=value` flags before the arguments, in order.
    pub flags: Vec<String>,
    /// Arguments after the flags, as written (leading whitespace trimmed).
    pub rest: String,
    /// Exec form: the JSON array when `rest` is one.
    pub json: Option<Vec<String>>,
    /// The whole logical line (keyword and all), whitespace-collapsed continuation joins included.
    pub original: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub syntax: Option<String>,
    pub nodes: Vec<Node>,
    pub warnings: Vec<String>,
}

fn directive(line: &str) -> Option<(String, String)> {
    let t = line.trim_start();
    let t = t.strip_prefix('#')?;
    let (k, v) = t.split_once('=')?;
    let k = k.trim();
    if k.is_empty()
        || !k.chars().all(|c| c.is_ascii_alphanumeric())
        || !k.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips a trailing escape char (continuation marker); returns the line without it when present.
fn continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end();
    t.strip_suffix(escape)
}

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    // Directives: only leading comment lines of the form `# key=value`; each key at most once.
    let mut seen = std::collections::HashSet::new();
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else {
            break;
        };
        if !seen.insert(k.clone()) {
            // A repeated directive is a plain comment from here on (docker stops directive parsing).
            break;
        }
        match k.as_str() {
            "escape" => {
                escape = match v.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(ParseError::BadEscape(v)),
                }
            }
            "syntax" => syntax = Some(v),
            _ => {}
        }
        i += 1;
    }
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        if raw.trim().is_empty() || is_comment(raw) {
            continue;
        }
        let start = i;
        let mut logical = String::new();
        let mut cur = raw;
        let mut empty_cont = false;
        loop {
            match continuation(cur, escape) {
                Some(body) => {
                    logical.push_str(body);
                    // Find the next non-comment line; empty lines inside a continuation are skipped with a
                    // warning (deprecated in docker but accepted).
                    let mut next = None;
                    while i < lines.len() {
                        let l = lines[i];
                        i += 1;
                        if is_comment(l) {
                            continue;
                        }
                        if l.trim().is_empty() {
                            empty_cont = true;
                            continue;
                        }
                        next = Some(l);
                        break;
                    }
                    match next {
                        Some(l) => cur = l,
                        None => break,
                    }
                }
                None => {
                    logical.push_str(cur);
                    break;
                }
            }
        }
        if empty_cont {
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in: {}",
                logical.trim()
            ));
        }
        nodes.push(split_node(start, logical.trim())?);
    }
    if nodes.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(Dockerfile {
        escape,
        syntax,
        nodes,
        warnings,
    })
}

fn split_node(line: usize, logical: &str) -> Result<Node, ParseError> {
    let (kw, rest) = match logical.find(char::is_whitespace) {
        Some(p) => (&logical[..p], logical[p..].trim_start()),
        None => (logical, ""),
    };
    let keyword = kw.to_ascii_uppercase();
    let mut rest = rest;
    let mut flags = Vec::new();
    // Flags are leading `--x` words; ONBUILD carries its own instruction so takes none itself.
    if keyword != "ONBUILD" {
        while rest.starts_with("--") {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            flags.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    let json = parse_json(rest);
    Ok(Node {
        line,
        keyword,
        original_keyword: kw.to_string(),
        flags,
        rest: rest.to_string(),
        json,
        original: logical.to_string(),
    })
}

/// Exec form: a JSON array of strings. Anything else (including invalid JSON) is shell form, like docker.
pub fn parse_json(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_flags() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n# escape=\\\nFROM busybox AS base\n\nRUN echo a \\\n  # comment inside\n  b \\\n\n  c\ncopy --from=base --chown=1:1 /a /b\nCMD [\"sh\", \"-c\", \"x\"]\nCMD [bad json\n",
        )
        .unwrap();
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.nodes.len(), 5);
        assert_eq!(df.nodes[0].line, 3);
        assert_eq!(df.nodes[1].keyword, "RUN");
        assert_eq!(df.nodes[1].rest, "echo a   b   c");
        assert_eq!(df.nodes[1].line, 5);
        assert_eq!(df.warnings.len(), 1);
        assert_eq!(df.nodes[2].keyword, "COPY");
        assert_eq!(df.nodes[2].flags, vec!["--from=base", "--chown=1:1"]);
        assert_eq!(df.nodes[2].line, 10);
        assert_eq!(
            df.nodes[3].json,
            Some(vec!["sh".into(), "-c".into(), "x".into()])
        );
        assert_eq!(df.nodes[4].json, None);
    }

    #[test]
    fn escape_directive_backtick() {
        let df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.nodes[1].rest, "dir c:\\   && echo");
    }

    #[test]
    fn directive_only_at_top() {
        let df = parse("FROM x\n# escape=`\nRUN a `\n").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.nodes[1].rest, "a `");
        let df = parse("# comment\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(df.escape, '\\');
    }

    #[test]
    fn empty_and_bad_escape() {
        assert_eq!(parse("# just a comment\n\n"), Err(ParseError::Empty));
        assert!(matches!(
            parse("# escape=x\nFROM a"),
            Err(ParseError::BadEscape(_))
        ));
    }
}
