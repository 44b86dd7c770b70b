//! A small flag parser with urfave/cli's (runc's) conventions: `--flag value`, `--flag=value`, `-flag`,
//! single-letter aliases, global flags accepted anywhere before the command's free arguments.

use std::collections::HashMap;

/// Parsed flags and positionals of one command.
#[derive(Debug, Default)]
pub struct Parsed {
    pub values: HashMap<String, Vec<String>>,
    pub bools: Vec<String>,
    pub positionals: Vec<String>,
}

impl Parsed {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
    pub fn has(&self, name: &str) -> bool {
        self.bools.iter().any(|b| b == name)
    }
}

/// Flag table: (name, aliases, takes a value).
pub type Spec = &'static [(&'static str, &'static [&'static str], bool)];

/// Parses `args`. After `stop_after` positionals, everything (flags included) is positional (for `exec ID cmd
/// -flags`). `--` ends flag parsing.
pub fn parse(args: &[String], spec: Spec, stop_after: Option<usize>) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if stop_after.is_some_and(|n| p.positionals.len() >= n) {
            p.positionals.push(a.clone());
            continue;
        }
        if a == "--" {
            p.positionals.extend(args[i..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            p.positionals.push(a.clone());
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some((canon, _, takes)) = spec
            .iter()
            .find(|(n, al, _)| *n == name || al.contains(&name))
        else {
            return Err(format!("flag provided but not defined: -{name}"));
        };
        if *takes {
            let v = match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?
                        .clone();
                    i += 1;
                    v
                }
            };
            p.values.entry(canon.to_string()).or_default().push(v);
        } else if inline.as_deref().is_none_or(|v| v == "true") {
            p.bools.push(canon.to_string());
        }
    }
    Ok(p)
}

/// Global flags (runc's): pulled out of the argument list wherever they appear before the command's free args.
pub const GLOBAL: Spec = &[
    ("root", &[], true),
    ("log", &[], true),
    ("log-format", &[], true),
    ("systemd-cgroup", &[], false),
    ("debug", &[], false),
    ("rootless", &[], true),
    ("criu", &[], true),
    ("version", &["v"], false),
    ("help", &["h"], false),
];

/// Splits global flags from the rest. For `exec`, scanning stops at the container id's command.
pub fn split_globals(args: &[String]) -> (Vec<String>, Vec<String>) {
    let mut globals = Vec::new();
    let mut rest = Vec::new();
    let mut positionals = 0;
    let mut cmd: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let frozen = a == "--" || (cmd.as_deref() == Some("exec") && positionals >= 2);
        if frozen {
            rest.push(a.clone());
            rest.extend(args[i..].iter().cloned());
            break;
        }
        let body = a.trim_start_matches('-');
        let name = body.split_once('=').map_or(body, |(n, _)| n);
        if a.starts_with('-') && a != "-" {
            if let Some((_, _, takes)) = GLOBAL
                .iter()
                .find(|(n, al, _)| *n == name || al.contains(&name))
            {
                // `-v` is global only before the command (`exec -v` does not exist, but keep it simple).
                let is_rootless_bool = name == "rootless"
                    && !body.contains('=')
                    && args
                        .get(i)
                        .is_none_or(|n| !matches!(n.as_str(), "true" | "false" | "auto"));
                // `spec --rootless` is the spec command's own bool flag.
                if !(name == "rootless" && cmd.as_deref() == Some("spec")) {
                    globals.push(a.clone());
                    if *takes && !body.contains('=') && !is_rootless_bool {
                        if let Some(v) = args.get(i) {
                            globals.push(v.clone());
                            i += 1;
                        }
                    }
                    continue;
                }
            }
            rest.push(a.clone());
            continue;
        }
        if cmd.is_none() {
            cmd = Some(a.clone());
        }
        positionals += 1;
        rest.push(a.clone());
    }
    (globals, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn globals_anywhere() {
        let (g, r) = split_globals(&s(&["create", "--root", "/x", "-b", "b", "id", "--log=/l"]));
        assert_eq!(g, s(&["--root", "/x", "--log=/l"]));
        assert_eq!(r, s(&["create", "-b", "b", "id"]));
        let (g, r) = split_globals(&s(&["exec", "id", "sh", "--root", "x"]));
        assert!(g.is_empty());
        assert_eq!(r, s(&["exec", "id", "sh", "--root", "x"]));
    }

    #[test]
    fn flags() {
        const SPEC: Spec = &[
            ("bundle", &["b"], true),
            ("detach", &["d"], false),
            ("env", &["e"], true),
        ];
        let p = parse(
            &s(&["-b", "x", "--detach", "-e", "A=1", "--env=B=2", "id", "-d"]),
            SPEC,
            Some(1),
        )
        .unwrap();
        assert_eq!(p.value("bundle"), Some("x"));
        assert!(p.has("detach"));
        assert_eq!(p.all("env"), s(&["A=1", "B=2"]));
        assert_eq!(p.positionals, s(&["id", "-d"]));
        assert!(parse(&s(&["--nope"]), SPEC, None).is_err());
    }
}
