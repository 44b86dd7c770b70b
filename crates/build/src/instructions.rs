//! Typed Dockerfile instructions and stages (moby `instructions.Parse`): every instruction's arguments and
//! flags are validated here, with docker's messages and the line number. Variable substitution happens later,
//! in the driver, because it needs the build-time environment; values here are still as written.

use crate::parser::{parse_json, Dockerfile, Node};

/// A parse error that names the line, like docker's classic builder.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstructionError {
    #[error("Dockerfile parse error line {line}: {msg}")]
    Line { line: usize, msg: String },
    #[error("no build stage in current context")]
    NoStage,
}

/// Shell or exec form of RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdForm {
    Shell(String),
    Exec(Vec<String>),
}

/// COPY / ADD arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    None,
    Cmd {
        test: CmdForm,
        interval: Option<i64>,
        timeout: Option<i64>,
        start_period: Option<i64>,
        start_interval: Option<i64>,
        retries: Option<i64>,
    },
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    Run(CmdForm),
    Cmd(CmdForm),
    Entrypoint(CmdForm),
    Label(Vec<(String, String)>),
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    Add(CopyArgs),
    Copy(CopyArgs),
    Volume {
        json: bool,
        values: Vec<String>,
    },
    User(String),
    Workdir(String),
    Arg(Vec<(String, Option<String>)>),
    Onbuild(String),
    StopSignal(String),
    Healthcheck(Health),
    Shell(Vec<String>),
    Maintainer(String),
}

/// An instruction with its source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub line: usize,
    /// The logical line as written (`RUN echo hi`), used for the `Step n/m :` output.
    pub original: String,
    pub inst: Instruction,
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub from: Command,
    pub name: Option<String>,
    pub commands: Vec<Command>,
}

/// A Dockerfile split into global ARGs (before the first FROM) and stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    pub escape: char,
    pub meta_args: Vec<Command>,
    pub stages: Vec<Stage>,
}

fn err(line: usize, msg: impl Into<String>) -> InstructionError {
    InstructionError::Line {
        line,
        msg: msg.into(),
    }
}

/// Splits on unquoted whitespace keeping quotes and escapes (moby `parseWords`); they are removed later by
/// substitution.
pub fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        cur.push(c);
        if c == escape && quote != Some('\'') {
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `k=v k2=v2` or the legacy `k v with spaces` form (ENV and LABEL).
fn name_vals(
    node: &Node,
    escape: char,
    allow_legacy: bool,
) -> Result<Vec<(String, String)>, InstructionError> {
    let words = split_words(&node.rest, escape);
    if words.is_empty() {
        return Err(err(
            node.line,
            format!("{} requires at least one argument", node.keyword),
        ));
    }
    if !words[0].contains('=') {
        if !allow_legacy {
            return Err(err(
                node.line,
                format!(
                    "Syntax error - can't find = in {:?}. Must be of the form: name=value",
                    words[0]
                ),
            ));
        }
        let name = words[0].clone();
        let value = node.rest.trim_start()[name.len()..].trim().to_string();
        if value.is_empty() {
            return Err(err(
                node.line,
                format!("{} must have two arguments", node.keyword),
            ));
        }
        return Ok(vec![(name, value)]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(err(
                node.line,
                format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value"),
            ));
        };
        if k.is_empty() {
            return Err(err(
                node.line,
                format!("{} names can not be blank", node.keyword),
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

struct Flags<'a> {
    node: &'a Node,
    values: Vec<(String, Option<String>)>,
}

impl<'a> Flags<'a> {
    fn new(node: &'a Node, allowed: &[&str]) -> Result<Self, InstructionError> {
        let mut values = Vec::new();
        for f in &node.flags {
            let body = &f[2..];
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if matches!(
                (node.keyword.as_str(), name.as_str()),
                ("RUN", "mount" | "network" | "security")
                    | ("COPY" | "ADD", "link" | "parents" | "exclude")
                    | ("ADD", "checksum" | "keep-git-dir")
            ) {
                return Err(err(node.line, format!("the --{name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled")));
            }
            if !allowed.contains(&name.as_str()) {
                return Err(err(node.line, format!("Unknown flag: {name}")));
            }
            values.push((name, value));
        }
        Ok(Flags { node, values })
    }
    fn string(&self, name: &str) -> Result<Option<String>, InstructionError> {
        match self.values.iter().rev().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, Some(v))) => Ok(Some(v.clone())),
            Some((_, None)) => Err(err(
                self.node.line,
                format!("Missing a value on flag: --{name}"),
            )),
        }
    }
    fn duration(&self, name: &str) -> Result<Option<i64>, InstructionError> {
        let Some(v) = self.string(name)? else {
            return Ok(None);
        };
        let d = parse_duration(&v)
            .ok_or_else(|| err(self.node.line, format!("time: invalid duration {v:?}")))?;
        if d != 0 && d < 1_000_000 {
            return Err(err(
                self.node.line,
                format!("{name} cannot be less than 1ms"),
            ));
        }
        if d < 0 {
            return Err(err(self.node.line, format!("{name} cannot be negative")));
        }
        Ok(Some(d))
    }
}

/// Go's `time.ParseDuration` (h, m, s, ms, us/µs, ns; fractions; sequences like `1m30s`), in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    let t = total as i64;
    Some(if neg { -t } else { t })
}

fn cmd_form(node: &Node) -> CmdForm {
    match &node.json {
        Some(v) => CmdForm::Exec(v.clone()),
        None => CmdForm::Shell(node.rest.clone()),
    }
}

fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic())
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
}

fn copy_args(node: &Node, escape: char, allow_from: bool) -> Result<CopyArgs, InstructionError> {
    let allowed: &[&str] = if allow_from {
        &["from", "chown", "chmod"]
    } else {
        &["chown", "chmod"]
    };
    let flags = Flags::new(node, allowed)?;
    let mut words = match &node.json {
        Some(v) => v.clone(),
        None => split_words(&node.rest, escape),
    };
    if words.len() < 2 {
        return Err(err(node.line, format!("{} requires at least two arguments, but only one was provided. Destination could not be determined.", node.keyword)));
    }
    let dest = words.pop().unwrap_or_default();
    let chmod = flags.string("chmod")?;
    if let Some(m) = &chmod {
        if u32::from_str_radix(m, 8).is_err() {
            return Err(err(node.line, format!("invalid chmod parameter: {m}")));
        }
    }
    Ok(CopyArgs {
        sources: words,
        dest,
        from: flags.string("from")?,
        chown: flags.string("chown")?,
        chmod,
    })
}

/// Converts one tokenized node to an instruction.
pub fn parse_node(node: &Node, escape: char) -> Result<Instruction, InstructionError> {
    let line = node.line;
    let kw = node.keyword.as_str();
    let words = || split_words(&node.rest, escape);
    let needs_args = |n: usize| -> Result<(), InstructionError> {
        if n == 0 {
            return Err(err(line, format!("{kw} requires at least one argument")));
        }
        Ok(())
    };
    let no_flags = || Flags::new(node, &[]).map(|_| ());
    Ok(match kw {
        "FROM" => {
            let flags = Flags::new(node, &["platform"])?;
            let w = words();
            if w.len() != 1 && w.len() != 3 {
                return Err(err(line, "FROM requires either one or three arguments"));
            }
            let alias = if w.len() == 3 {
                if !w[1].eq_ignore_ascii_case("as") {
                    return Err(err(line, "FROM requires either one or three arguments"));
                }
                let name = w[2].to_ascii_lowercase();
                if !valid_stage_name(&name) {
                    return Err(err(line, format!("invalid name for build stage: {:?}, name can't start with a number or contain symbols", w[2])));
                }
                Some(name)
            } else {
                None
            };
            Instruction::From {
                image: w[0].clone(),
                alias,
                platform: flags.string("platform")?,
            }
        }
        "RUN" => {
            Flags::new(node, &[])?;
            needs_args(node.rest.trim().len())?;
            Instruction::Run(cmd_form(node))
        }
        "CMD" | "ENTRYPOINT" => {
            no_flags()?;
            let f = cmd_form(node);
            if kw == "CMD" {
                Instruction::Cmd(f)
            } else {
                Instruction::Entrypoint(f)
            }
        }
        "LABEL" => {
            no_flags()?;
            Instruction::Label(name_vals(node, escape, true)?)
        }
        "ENV" => {
            no_flags()?;
            Instruction::Env(name_vals(node, escape, true)?)
        }
        "MAINTAINER" => {
            no_flags()?;
            needs_args(node.rest.trim().len())?;
            Instruction::Maintainer(node.rest.trim().to_string())
        }
        "EXPOSE" => {
            no_flags()?;
            let w = words();
            needs_args(w.len())?;
            Instruction::Expose(w)
        }
        "ADD" => Instruction::Add(copy_args(node, escape, false)?),
        "COPY" => Instruction::Copy(copy_args(node, escape, true)?),
        "VOLUME" => {
            no_flags()?;
            let (json, values) = match &node.json {
                Some(v) => (true, v.clone()),
                None => (false, words()),
            };
            needs_args(values.len())?;
            if values.iter().any(|v| v.trim().is_empty()) {
                return Err(err(line, "VOLUME specified can not be an empty string"));
            }
            Instruction::Volume { json, values }
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            no_flags()?;
            let v = node.rest.trim().to_string();
            // WORKDIR keeps its spaces (a path may contain them); USER and STOPSIGNAL are one word.
            if v.is_empty() || (kw != "WORKDIR" && words().len() != 1) {
                return Err(err(line, format!("{kw} requires exactly one argument")));
            }
            match kw {
                "USER" => Instruction::User(v),
                "WORKDIR" => Instruction::Workdir(v),
                _ => Instruction::StopSignal(v),
            }
        }
        "ARG" => {
            no_flags()?;
            let w = words();
            needs_args(w.len())?;
            let mut out = Vec::new();
            for a in w {
                let (k, v) = match a.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (a, None),
                };
                if k.is_empty() {
                    return Err(err(line, "ARG names can not be blank"));
                }
                out.push((k, v));
            }
            Instruction::Arg(out)
        }
        "ONBUILD" => {
            let rest = node.rest.trim();
            needs_args(rest.len())?;
            let trig = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match trig.as_str() {
                "ONBUILD" => {
                    return Err(err(
                        line,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "FROM" | "MAINTAINER" => {
                    return Err(err(
                        line,
                        format!("{trig} isn't allowed as an ONBUILD trigger"),
                    ))
                }
                _ => {}
            }
            // Validate the trigger now so a broken one fails this build, not the child's.
            let inner = crate::parser::parse(rest).map_err(|e| err(line, e.to_string()))?;
            parse_node(&inner.nodes[0], escape).map_err(|e| match e {
                InstructionError::Line { msg, .. } => err(line, msg),
                other => other,
            })?;
            let (_, args) = rest.split_at(trig.len());
            Instruction::Onbuild(format!("{trig}{args}"))
        }
        "HEALTHCHECK" => {
            let flags = Flags::new(
                node,
                &[
                    "interval",
                    "timeout",
                    "start-period",
                    "start-interval",
                    "retries",
                ],
            )?;
            let rest = node.rest.trim();
            let (first, after) = match rest.find(char::is_whitespace) {
                Some(p) => (&rest[..p], rest[p..].trim_start()),
                None => (rest, ""),
            };
            match first.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !after.is_empty() || !node.flags.is_empty() {
                        return Err(err(line, "HEALTHCHECK NONE takes no arguments"));
                    }
                    Instruction::Healthcheck(Health::None)
                }
                "CMD" => {
                    if after.is_empty() {
                        return Err(err(line, "Missing command after HEALTHCHECK CMD"));
                    }
                    let test = match parse_json(after) {
                        Some(v) => CmdForm::Exec(v),
                        None => CmdForm::Shell(after.to_string()),
                    };
                    let retries = match flags.string("retries")? {
                        None => None,
                        Some(r) => {
                            let n: i64 = r
                                .parse()
                                .map_err(|_| err(line, format!("invalid retries value {r:?}")))?;
                            if n < 0 {
                                return Err(err(line, "--retries cannot be negative"));
                            }
                            Some(n)
                        }
                    };
                    Instruction::Healthcheck(Health::Cmd {
                        test,
                        interval: flags.duration("interval")?,
                        timeout: flags.duration("timeout")?,
                        start_period: flags.duration("start-period")?,
                        start_interval: flags.duration("start-interval")?,
                        retries,
                    })
                }
                other => {
                    return Err(err(
                        line,
                        format!("Unknown type {other:?} in HEALTHCHECK (try CMD)"),
                    ))
                }
            }
        }
        "SHELL" => {
            no_flags()?;
            match &node.json {
                Some(v) if !v.is_empty() => Instruction::Shell(v.clone()),
                _ => return Err(err(line, "SHELL requires the arguments to be in JSON form")),
            }
        }
        _ => {
            return Err(err(
                line,
                format!(
                    "unknown instruction: {}",
                    node.original_keyword.to_ascii_uppercase()
                ),
            ))
        }
    })
}

/// Converts a parsed Dockerfile into global ARGs and stages.
pub fn parse_stages(df: &Dockerfile) -> Result<Stages, InstructionError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &df.nodes {
        let inst = parse_node(node, df.escape)?;
        let cmd = Command {
            line: node.line,
            original: node.original.clone(),
            inst,
        };
        match &cmd.inst {
            Instruction::From { alias, .. } => {
                let name = alias.clone();
                stages.push(Stage {
                    from: cmd,
                    name,
                    commands: Vec::new(),
                });
            }
            _ => match stages.last_mut() {
                Some(s) => s.commands.push(cmd),
                None if matches!(cmd.inst, Instruction::Arg(_)) => meta_args.push(cmd),
                None => return Err(InstructionError::NoStage),
            },
        }
    }
    if stages.is_empty() {
        return Err(InstructionError::NoStage);
    }
    Ok(Stages {
        escape: df.escape,
        meta_args,
        stages,
    })
}

#[cfg(test)]
#[path = "instructions_tests.rs"]
mod tests;
