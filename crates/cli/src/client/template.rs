//! A small Go `text/template` engine for `--format`, evaluated over JSON values.
//!
//! Supports what docker users write: `{{.A.B}}`, `{{.}}`, `{{json .}}`, pipelines `{{.X | lower}}`,
//! parenthesised calls, string/number/bool literals, `$` and `$var`, `if`/`else if`/`else`, `range`
//! (with `$i, $v :=`), `with`, `end`, `{{-`/`-}}` trimming, and docker's functions (`json`, `join`,
//! `lower`, `upper`, `title`, `split`, `truncate`, `pad`, `println`) plus Go's builtins (`len`, `index`,
//! `print`, `printf`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`).
//! Our own engine instead of gtmpl: it works on `serde_json::Value` directly (no conversions) and prints
//! values the way Go does (`map[k:v]`, `[a b]`, `<no value>`).

use serde_json::Value;

use super::template_funcs::{call, truthy};

/// Template parse and execution errors (messages follow Go's `template:` style).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("failed to parse template: template: :1: {0}")]
    Parse(String),
    #[error("failed to execute template: template: :1: {0}")]
    Exec(String),
}

pub(super) type Res<T> = Result<T, TemplateError>;

#[derive(Debug, Clone)]
enum Arg {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
    Ident(String),
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Ident(String),
    Pipe,
    Open,
    Close(Vec<String>),
    Decl,
    Assign,
    Comma,
}

fn field_chain(chars: &[char], i: &mut usize) -> Vec<String> {
    // Reads `.A.B` starting at a '.'; stops at anything else.
    let mut out = Vec::new();
    while *i < chars.len() && chars[*i] == '.' {
        let start = *i + 1;
        let mut j = start;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        if j == start {
            break;
        }
        out.push(chars[start..j].iter().collect());
        *i = j;
    }
    out
}

fn lex(src: &str) -> Res<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut toks = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1
            }
            ')' => {
                i += 1;
                toks.push(Tok::Close(field_chain(&chars, &mut i)));
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Decl);
                i += 2
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1
            }
            '.' => {
                let chain = field_chain(&chars, &mut i);
                if chain.is_empty() {
                    i += 1;
                }
                toks.push(Tok::Dot(chain));
            }
            '$' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                i = j;
                toks.push(Tok::Var(name, field_chain(&chars, &mut i)));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(TemplateError::Parse("unterminated quoted string".into()))
                        }
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('r') => s.push('\r'),
                                Some(&o) => s.push(o),
                                None => {
                                    return Err(TemplateError::Parse(
                                        "unterminated quoted string".into(),
                                    ))
                                }
                            }
                        }
                        Some(&o) => s.push(o),
                    }
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| TemplateError::Parse("unterminated raw quoted string".into()))?;
                toks.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let n = s
                    .parse::<f64>()
                    .map_err(|_| TemplateError::Parse(format!("bad number syntax: {s:?}")))?;
                toks.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(TemplateError::Parse(format!(
                    "unexpected {other:?} in command"
                )))
            }
        }
    }
    Ok(toks)
}

struct PipeParser<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl PipeParser<'_> {
    fn pipe(&mut self, nested: bool) -> Res<Pipe> {
        let mut decl = Vec::new();
        // `$x :=` or `$i, $v :=`
        let save = self.pos;
        while let Some(Tok::Var(name, chain)) = self.toks.get(self.pos) {
            if !chain.is_empty() {
                break;
            }
            decl.push(name.clone());
            self.pos += 1;
            match self.toks.get(self.pos) {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Decl) | Some(Tok::Assign) => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    decl.clear();
                    self.pos = save;
                    break;
                }
            }
        }
        let mut cmds = Vec::new();
        let mut cur = Vec::new();
        while let Some(t) = self.toks.get(self.pos) {
            self.pos += 1;
            match t {
                Tok::Pipe => {
                    if cur.is_empty() {
                        return Err(TemplateError::Parse("missing command".into()));
                    }
                    cmds.push(std::mem::take(&mut cur));
                }
                Tok::Close(chain) => {
                    if !nested {
                        return Err(TemplateError::Parse("unexpected right paren".into()));
                    }
                    if !cur.is_empty() {
                        cmds.push(cur);
                    }
                    // The caller attaches the chain.
                    self.pos -= 1;
                    let _ = chain;
                    return Ok(Pipe { decl, cmds });
                }
                Tok::Open => {
                    let sub = self.pipe(true)?;
                    let chain = match self.toks.get(self.pos) {
                        Some(Tok::Close(chain)) => chain.clone(),
                        _ => return Err(TemplateError::Parse("unclosed left paren".into())),
                    };
                    self.pos += 1;
                    cur.push(Arg::Sub(Box::new(sub), chain));
                }
                Tok::Dot(chain) => cur.push(Arg::Dot(chain.clone())),
                Tok::Var(n, chain) => cur.push(Arg::Var(n.clone(), chain.clone())),
                Tok::Str(s) => cur.push(Arg::Str(s.clone())),
                Tok::Num(n) => cur.push(Arg::Num(*n)),
                Tok::Ident(id) => cur.push(match id.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    _ => Arg::Ident(id.clone()),
                }),
                Tok::Decl | Tok::Assign | Tok::Comma => {
                    return Err(TemplateError::Parse("unexpected declaration".into()))
                }
            }
        }
        if nested {
            return Err(TemplateError::Parse("unclosed left paren".into()));
        }
        if !cur.is_empty() {
            cmds.push(cur);
        }
        if cmds.is_empty() {
            return Err(TemplateError::Parse("missing value for command".into()));
        }
        Ok(Pipe { decl, cmds })
    }
}

fn parse_pipe(src: &str) -> Res<Pipe> {
    let toks = lex(src)?;
    PipeParser {
        toks: &toks,
        pos: 0,
    }
    .pipe(false)
}

enum Item {
    Text(String),
    Act(String),
}

fn split_actions(src: &str) -> Res<Vec<Item>> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        items.push(Item::Text(text.to_string()));
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError::Parse("unclosed action".into()))?;
        let mut inner = &after[..end];
        if trim_left {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            items.push(Item::Act(inner.to_string()));
        }
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    items.push(Item::Text(text.to_string()));
    Ok(items)
}

fn build(
    items: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
    depth: usize,
) -> Res<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while let Some(item) = items.next() {
        match item {
            Item::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
            }
            Item::Act(a) => {
                let word = a.split_whitespace().next().unwrap_or("");
                match word {
                    "end" | "else" => {
                        if depth == 0 {
                            return Err(TemplateError::Parse(format!("unexpected {{{{{word}}}}}")));
                        }
                        return Ok((nodes, Some(a)));
                    }
                    "if" | "range" | "with" => {
                        nodes.push(build_block(word, &a[word.len()..], items, depth)?)
                    }
                    _ => nodes.push(Node::Action(parse_pipe(&a)?)),
                }
            }
        }
    }
    if depth > 0 {
        return Err(TemplateError::Parse("unexpected EOF".into()));
    }
    Ok((nodes, None))
}

fn build_block(
    word: &str,
    rest: &str,
    items: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
    depth: usize,
) -> Res<Node> {
    let pipe = parse_pipe(rest)?;
    let (body, term) = build(items, depth + 1)?;
    let term = term.unwrap_or_default();
    let mut else_nodes = Vec::new();
    if term != "end" {
        let after_else = term.trim_start_matches("else").trim();
        if after_else.starts_with("if ") && word == "if" {
            // `else if` chains nest a new if that shares our end.
            else_nodes.push(build_block("if", &after_else[2..], items, depth)?);
        } else {
            let (e, t2) = build(items, depth + 1)?;
            if t2.as_deref() != Some("end") {
                return Err(TemplateError::Parse("expected end".into()));
            }
            else_nodes = e;
        }
    }
    Ok(match word {
        "if" => Node::If(pipe, body, else_nodes),
        "range" => Node::Range(pipe, body, else_nodes),
        _ => Node::With(pipe, body, else_nodes),
    })
}

impl Template {
    /// Parses a template.
    pub fn parse(src: &str) -> Res<Template> {
        let mut items = split_actions(src)?.into_iter().peekable();
        let (nodes, _) = build(&mut items, 0)?;
        Ok(Template { nodes })
    }

    /// Renders the template with `dot` as `.`; a missing field prints `<no value>` (docker's map fallback,
    /// as in `inspect -f`).
    pub fn render(&self, dot: &Value) -> Res<String> {
        self.exec(dot, false, false)
    }

    /// Renders like docker's typed formatter contexts (`ps`, `images`, `info`): a field the object does not
    /// have is an error ("can't evaluate field").
    pub fn render_strict(&self, dot: &Value) -> Res<String> {
        self.exec(dot, false, true)
    }

    fn exec(&self, dot: &Value, header: bool, strict: bool) -> Res<String> {
        let mut ex = Exec {
            vars: vec![("".into(), dot.clone())],
            header,
            strict,
            out: String::new(),
        };
        ex.nodes(&self.nodes, dot)?;
        Ok(ex.out)
    }

    /// Renders a table header: `dot` maps field names to header strings; docker's header functions are
    /// identities there and missing fields print nothing.
    pub fn render_header(&self, dot: &Value) -> Res<String> {
        self.exec(dot, true, false)
    }
}

struct Exec {
    vars: Vec<(String, Value)>,
    header: bool,
    strict: bool,
    out: String,
}

/// Prints a value like Go's `fmt.Print` would print the equivalent Go value.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", k, go_string(&o[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn field(v: &Value, chain: &[String], header: bool) -> Value {
    let mut cur = v.clone();
    for name in chain {
        cur = match &cur {
            // Go field names and JSON keys differ in case (`APIVersion`/`ApiVersion`, `ID`/`Id`): fall back to
            // a case-insensitive match so both spellings work, as docker's struct-then-map lookup does.
            Value::Object(o) => match o.get(name).or_else(|| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            }) {
                Some(x) => x.clone(),
                None if header => Value::String(String::new()),
                None => Value::Null,
            },
            _ => Value::Null,
        };
    }
    cur
}

impl Exec {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Res<()> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&go_string(&v));
                    }
                }
                Node::If(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    if truthy(&v) {
                        self.nodes(body, dot)?;
                    } else {
                        self.nodes(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe_value(p, dot)?;
                    if truthy(&v) {
                        self.nodes(body, &v)?;
                    } else {
                        self.nodes(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, els) => {
                    let v = self.pipe_value(p, dot)?;
                    let entries: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Value::Object(o) => {
                            let mut keys: Vec<&String> = o.keys().collect();
                            keys.sort();
                            keys.into_iter()
                                .map(|k| (Value::String(k.clone()), o[k.as_str()].clone()))
                                .collect()
                        }
                        Value::Null => Vec::new(),
                        Value::Number(n) => (0..n.as_u64().unwrap_or(0))
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect(),
                        other => {
                            return Err(TemplateError::Exec(format!(
                                "range can't iterate over {}",
                                go_string(other)
                            )))
                        }
                    };
                    if entries.is_empty() {
                        self.nodes(els, dot)?;
                    }
                    for (k, x) in entries {
                        let mark = self.vars.len();
                        match p.decl.len() {
                            0 => {}
                            1 => self.vars.push((p.decl[0].clone(), x.clone())),
                            _ => {
                                self.vars.push((p.decl[0].clone(), k));
                                self.vars.push((p.decl[1].clone(), x.clone()));
                            }
                        }
                        self.nodes(body, &x)?;
                        self.vars.truncate(mark);
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluates a pipeline without binding its declarations (range binds per element).
    fn pipe_value(&mut self, p: &Pipe, dot: &Value) -> Res<Value> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.cmd(cmd, dot, prev)?);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Res<Value> {
        let v = self.pipe_value(p, dot)?;
        if let Some(name) = p.decl.first() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Res<Value> {
        Ok(match a {
            Arg::Dot(chain) => {
                if let (true, false, Some(first), Value::Object(o)) =
                    (self.strict, self.header, chain.first(), dot)
                {
                    if !o.keys().any(|k| k.eq_ignore_ascii_case(first)) {
                        return Err(TemplateError::Exec(format!(
                            "executing \"\" at <.{first}>: can't evaluate field {first}"
                        )));
                    }
                }
                field(dot, chain, self.header)
            }
            Arg::Var(name, chain) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| TemplateError::Exec(format!("undefined variable: ${name}")))?;
                field(&v, chain, self.header)
            }
            Arg::Str(s) => Value::String(s.clone()),
            Arg::Num(n) => {
                if n.fract() == 0.0 {
                    Value::from(*n as i64)
                } else {
                    Value::from(*n)
                }
            }
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Null,
            Arg::Ident(name) => call(name, Vec::new(), self.header)?,
            Arg::Sub(p, chain) => {
                let v = self.pipe_value(p, dot)?;
                field(&v, chain, self.header)
            }
        })
    }

    fn cmd(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Res<Value> {
        if let Some(Arg::Ident(name)) = cmd.first() {
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return call(name, args, self.header);
        }
        // docker's one-argument methods (`{{.Label "com.example"}}`): a field `.X` called with an argument
        // indexes the hidden map `_X` that rows carry for it.
        if let (Some(Arg::Dot(chain)), 2) = (cmd.first(), cmd.len()) {
            if let Some((last, parent)) = chain.split_last() {
                if self.header {
                    return Ok(field(dot, chain, true));
                }
                let key = self.arg(&cmd[1], dot)?;
                let map = field(&field(dot, parent, false), &[format!("_{last}")], false);
                return Ok(map
                    .get(go_string(&key))
                    .cloned()
                    .unwrap_or(Value::String(String::new())));
            }
        }
        if cmd.len() > 1 || piped.is_some() {
            return Err(TemplateError::Exec(
                "can't give argument to non-function".into(),
            ));
        }
        self.arg(&cmd[0], dot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: Value) -> String {
        Template::parse(t)
            .expect("parse")
            .render(&v)
            .expect("render")
    }

    #[test]
    fn fields_and_nesting() {
        let v = json!({"Server": {"Version": "0.1.0"}, "N": 3, "B": true});
        assert_eq!(r("{{.Server.Version}}", v.clone()), "0.1.0");
        assert_eq!(
            r("n={{.N}} b={{.B}} x={{.Missing}}", v.clone()),
            "n=3 b=true x=<no value>"
        );
        assert_eq!(r("{{.Server}}", v), "map[Version:0.1.0]");
    }

    #[test]
    fn docker_functions() {
        let v = json!({"Names": "web", "L": ["a", "b"], "S": "a,b,c", "T": "hello world"});
        assert_eq!(r("{{json .L}}", v.clone()), "[\"a\",\"b\"]");
        assert_eq!(r("{{join .L \", \"}}", v.clone()), "a, b");
        assert_eq!(r("{{.Names | upper}}", v.clone()), "WEB");
        assert_eq!(r("{{upper .Names | lower}}", v.clone()), "web");
        assert_eq!(r("{{title .T}}", v.clone()), "Hello World");
        assert_eq!(r("{{split .S \",\"}}", v.clone()), "[a b c]");
        assert_eq!(r("{{truncate .T 5}}", v.clone()), "hello");
        assert_eq!(r("[{{pad .Names 1 2}}]", v.clone()), "[ web  ]");
        assert_eq!(r("{{println .Names}}x", v.clone()), "web\nx");
        assert_eq!(r("{{len .L}} {{index .L 1}}", v), "2 b");
    }

    #[test]
    fn control_flow_and_variables() {
        let v = json!({"Labels": {"b": "2", "a": "1"}, "On": false, "L": []});
        assert_eq!(
            r(
                "{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}",
                v.clone()
            ),
            "a=1;b=2;"
        );
        assert_eq!(
            r(
                "{{if .On}}yes{{else if .Labels}}labels{{else}}no{{end}}",
                v.clone()
            ),
            "labels"
        );
        assert_eq!(r("{{range .L}}x{{else}}empty{{end}}", v.clone()), "empty");
        assert_eq!(r("{{with .Labels}}{{.a}}{{end}}", v.clone()), "1");
        assert_eq!(r("{{- \" a \" -}}  \n", v.clone()), " a ");
        assert_eq!(
            r("{{$x := .Labels.a}}{{$x}}{{$.Labels.b}}", v.clone()),
            "12"
        );
        assert_eq!(
            r(
                "{{if eq .Labels.a \"1\" \"3\"}}eq{{end}}{{if not .On}}!{{end}}",
                v
            ),
            "eq!"
        );
    }

    #[test]
    fn parens_and_printf() {
        let v = json!({"A": {"B": "x"}, "N": 5});
        assert_eq!(r("{{(index . \"A\").B}}", v.clone()), "x");
        assert_eq!(r("{{printf \"%-4s|%d\" .A.B .N}}", v), "x   |5");
    }

    #[test]
    fn strict_mode_rejects_unknown_fields() {
        let t = Template::parse("{{.ID}} {{.Bogus}}").expect("parse");
        let e = t.render_strict(&json!({"ID": "x"})).expect_err("strict");
        assert!(e.to_string().contains("can't evaluate field Bogus"), "{e}");
        assert_eq!(
            t.render(&json!({"ID": "x"})).expect("lenient"),
            "x <no value>"
        );
    }

    #[test]
    fn label_method() {
        let v = json!({"Labels": "a=1", "_Label": {"a": "1"}});
        assert_eq!(r("{{.Label \"a\"}}|{{.Label \"b\"}}", v), "1|");
    }

    #[test]
    fn header_mode() {
        let t = Template::parse("{{.ID}}\t{{.Names | upper}}\t{{.Nope}}").expect("parse");
        let h = t
            .render_header(&json!({"ID": "CONTAINER ID", "Names": "NAMES"}))
            .expect("header");
        assert_eq!(h, "CONTAINER ID\tNAMES\t");
    }

    #[test]
    fn errors_are_reported() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{if .A}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(Template::parse("{{nosuch .A}}")
            .expect("parse")
            .render(&json!({}))
            .is_err());
    }
}
