//! Environment substitution with docker's rules (moby `shell.Lex`): `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?msg}`, quote removal, and the escape character
//! (`\` or `` ` ``) protecting `$` and quotes. Unset variables expand to the empty string, as in docker.

/// Errors from substitution.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubstError {
    #[error("missing '}}' in '{0}'")]
    MissingBrace(String),
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(char),
    #[error("{0}: {1}")]
    Required(String, String),
    #[error("unsupported modifier ({0}) in substitution")]
    BadModifier(char),
}

/// Variable lookup: returns the value of a variable, `None` when unset.
pub trait Env {
    /// Value of `name`, `None` when unset.
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The lexer: knows the Dockerfile's escape character.
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    pub escape: char,
}

impl Default for Lex {
    fn default() -> Self {
        Lex { escape: '\\' }
    }
}

struct Scan<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Env,
    src: &'a str,
}

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until end or (when `stop` is set) an unquoted `stop`; returns the words. When `split` is set,
    /// unquoted whitespace separates words (ProcessWords); otherwise everything is one word.
    fn process(&mut self, stop: Option<char>, split: bool) -> Result<Vec<String>, SubstError> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                break;
            }
            if split && c.is_whitespace() {
                self.pos += 1;
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            in_word = true;
            self.pos += 1;
            match c {
                '\'' => self.single_quote(&mut cur)?,
                '"' => self.double_quote(&mut cur)?,
                '$' if split => {
                    // An unquoted expansion is split on whitespace too (moby's `words.addString`).
                    let mut tmp = String::new();
                    self.dollar(&mut tmp)?;
                    for ch in tmp.chars() {
                        if ch.is_whitespace() {
                            if in_word && !cur.is_empty() {
                                words.push(std::mem::take(&mut cur));
                            }
                            in_word = false;
                        } else {
                            cur.push(ch);
                            in_word = true;
                        }
                    }
                }
                '$' => self.dollar(&mut cur)?,
                c if c == self.escape => match self.next() {
                    Some(n) => cur.push(n),
                    // A trailing escape stays literal, like docker.
                    None => cur.push(c),
                },
                c => cur.push(c),
            }
        }
        if in_word || (!split && words.is_empty()) {
            words.push(cur);
        }
        Ok(words)
    }

    fn single_quote(&mut self, out: &mut String) -> Result<(), SubstError> {
        loop {
            match self.next() {
                None => return Err(SubstError::Unterminated('\'')),
                Some('\'') => return Ok(()),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self, out: &mut String) -> Result<(), SubstError> {
        loop {
            match self.next() {
                None => return Err(SubstError::Unterminated('"')),
                Some('"') => return Ok(()),
                Some('$') => self.dollar(out)?,
                Some(c) if c == self.escape => match self.peek() {
                    Some(n @ ('"' | '$')) => {
                        self.pos += 1;
                        out.push(n);
                    }
                    Some(n) if n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    fn dollar(&mut self, out: &mut String) -> Result<(), SubstError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&self.env.get(&name).unwrap_or_default());
            }
            return Ok(());
        }
        self.pos += 1;
        let name = self.name();
        let value = self.env.get(&name);
        match self.next() {
            Some('}') => {
                out.push_str(&value.unwrap_or_default());
                Ok(())
            }
            Some(':') | Some('-') | Some('+') | Some('?') => {
                let prev = self.chars[self.pos - 1];
                let (colon, modifier) = if prev == ':' {
                    (true, self.next().ok_or_else(|| self.missing())?)
                } else {
                    (false, prev)
                };
                let word = self.process(Some('}'), false)?.concat();
                if self.next() != Some('}') {
                    return Err(self.missing());
                }
                // With ':' an empty value counts as unset.
                let set = match &value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                match modifier {
                    '-' => out.push_str(&if set { value.unwrap_or_default() } else { word }),
                    '+' => {
                        if set {
                            out.push_str(&word)
                        }
                    }
                    '?' => {
                        if !set {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return Err(SubstError::Required(name, msg));
                        }
                        out.push_str(&value.unwrap_or_default());
                    }
                    m => return Err(SubstError::BadModifier(m)),
                }
                Ok(())
            }
            _ => Err(self.missing()),
        }
    }

    fn missing(&self) -> SubstError {
        SubstError::MissingBrace(self.src.to_string())
    }
}

impl Lex {
    fn scan<'a>(&self, s: &'a str, env: &'a dyn Env) -> Scan<'a> {
        Scan {
            chars: s.chars().collect(),
            pos: 0,
            escape: self.escape,
            env,
            src: s,
        }
    }

    /// Expands `s` as one word (quotes removed, variables substituted).
    pub fn process_word(&self, s: &str, env: &dyn Env) -> Result<String, SubstError> {
        Ok(self.scan(s, env).process(None, false)?.concat())
    }

    /// Expands `s` and splits it on unquoted whitespace (used by EXPOSE, VOLUME, USER... in docker).
    pub fn process_words(&self, s: &str, env: &dyn Env) -> Result<Vec<String>, SubstError> {
        self.scan(s, env).process(None, true)
    }
}

/// Convenience for tests and callers with a key/value list (`K=V` strings, last one wins).
pub fn env_from_list(list: &[String]) -> impl Fn(&str) -> Option<String> + '_ {
    move |name: &str| {
        list.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == name).then(|| v.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str) -> Result<String, SubstError> {
        let env = vec![
            "PWD=/home".to_string(),
            "E=".to_string(),
            "A=a b".to_string(),
        ];
        let r = Lex::default().process_word(s, &env_from_list(&env));
        r
    }

    #[test]
    fn docker_cases() {
        assert_eq!(sub("$PWD").unwrap(), "/home");
        assert_eq!(sub("${PWD}").unwrap(), "/home");
        assert_eq!(sub("he$PWD/x").unwrap(), "he/home/x");
        assert_eq!(sub("\\$PWD").unwrap(), "$PWD");
        assert_eq!(sub("'$PWD'").unwrap(), "$PWD");
        assert_eq!(sub("\"$PWD\"").unwrap(), "/home");
        assert_eq!(sub("\"\\$PWD\"").unwrap(), "$PWD");
        assert_eq!(sub("${NOPE}x").unwrap(), "x");
        assert_eq!(sub("${NOPE:-def}").unwrap(), "def");
        assert_eq!(sub("${E:-def}").unwrap(), "def");
        assert_eq!(sub("${E-def}").unwrap(), "");
        assert_eq!(sub("${PWD:-def}").unwrap(), "/home");
        assert_eq!(sub("${PWD:+alt}").unwrap(), "alt");
        assert_eq!(sub("${NOPE:+alt}").unwrap(), "");
        assert_eq!(sub("${E+alt}").unwrap(), "alt");
        assert_eq!(sub("${NOPE:-$PWD/x}").unwrap(), "/home/x");
        assert_eq!(sub("$").unwrap(), "$");
        assert_eq!(sub("a$ b").unwrap(), "a$ b");
        assert_eq!(sub("\"a\\b\"").unwrap(), "a\\b");
        assert!(matches!(sub("${PWD"), Err(SubstError::MissingBrace(_))));
        assert!(matches!(sub("'abc"), Err(SubstError::Unterminated('\''))));
        assert!(matches!(
            sub("${NOPE:?oops}"),
            Err(SubstError::Required(..))
        ));
    }

    #[test]
    fn words_split_on_unquoted_space() {
        let env = vec!["A=a b".to_string()];
        let w = Lex::default()
            .process_words("x \"y z\" $A", &env_from_list(&env))
            .unwrap();
        assert_eq!(w, vec!["x", "y z", "a", "b"]);
        let w = Lex::default()
            .process_words("\"$A\" p$A", &env_from_list(&env))
            .unwrap();
        assert_eq!(w, vec!["a b", "pa", "b"]);
    }

    #[test]
    fn backtick_escape() {
        let lex = Lex { escape: '`' };
        let env = vec!["X=1".to_string()];
        assert_eq!(
            lex.process_word("`$X c:\\dir", &env_from_list(&env))
                .unwrap(),
            "$X c:\\dir"
        );
    }
}
