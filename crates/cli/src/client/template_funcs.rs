//! The functions of `--format` templates: docker's (`json`, `join`, `split`, `lower`, `upper`, `title`,
//! `truncate`, `pad`, `println`) and Go's builtins (`len`, `index`, `print`, `printf`, comparisons, logic).

use serde_json::Value;

use super::template::{go_string, Res, TemplateError};

/// Go truthiness.
pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn as_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        o => go_string(o),
    }
}

fn as_int(v: &Value) -> Res<i64> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0) as i64),
        Value::String(s) => s
            .parse()
            .map_err(|_| TemplateError::Exec(format!("expected integer; found {s:?}"))),
        o => Err(TemplateError::Exec(format!(
            "expected integer; found {}",
            go_string(o)
        ))),
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// A minimal `printf` covering %s %d %v %q %% and widths like %-10s.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut n = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = it.peek() {
            if d == '-' || d.is_ascii_digit() || d == '.' {
                spec.push(d);
                it.next();
            } else {
                break;
            }
        }
        let verb = it.next().unwrap_or('%');
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args.get(n).cloned().unwrap_or(Value::Null);
        n += 1;
        let s = match verb {
            'q' => format!("{:?}", as_str(&arg)),
            _ => go_string(&arg),
        };
        let left = spec.starts_with('-');
        let width: usize = spec
            .trim_start_matches('-')
            .split('.')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        let pad = width.saturating_sub(s.chars().count());
        if left {
            out.push_str(&s);
            out.push_str(&" ".repeat(pad));
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&s);
        }
    }
    out
}

pub(super) fn call(name: &str, args: Vec<Value>, header: bool) -> Res<Value> {
    let need = |n: usize| -> Res<()> {
        if args.len() != n {
            return Err(TemplateError::Exec(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )));
        }
        Ok(())
    };
    let s = |i: usize| args.get(i).map(as_str).unwrap_or_default();
    if header
        && matches!(
            name,
            "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
        )
    {
        // Docker's HeaderFunctions: the header string passes through unchanged.
        return Ok(args.first().cloned().unwrap_or(Value::Null));
    }
    Ok(match name {
        "json" => {
            need(1)?;
            Value::String(serde_json::to_string(&args[0]).unwrap_or_default())
        }
        "join" => {
            need(2)?;
            let parts: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(as_str).collect(),
                other => vec![as_str(other)],
            };
            Value::String(parts.join(&s(1)))
        }
        "split" => {
            need(2)?;
            Value::Array(
                s(0).split(s(1).as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )
        }
        "lower" => {
            need(1)?;
            Value::String(s(0).to_lowercase())
        }
        "upper" => {
            need(1)?;
            Value::String(s(0).to_uppercase())
        }
        "title" => {
            need(1)?;
            Value::String(title(&s(0)))
        }
        "truncate" => {
            need(2)?;
            let n = as_int(&args[1])?.max(0) as usize;
            Value::String(s(0).chars().take(n).collect())
        }
        "pad" => {
            need(3)?;
            let l = as_int(&args[1])?.max(0) as usize;
            let r = as_int(&args[2])?.max(0) as usize;
            Value::String(format!("{}{}{}", " ".repeat(l), s(0), " ".repeat(r)))
        }
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(go_string).collect::<Vec<_>>().join(" ")
        )),
        "print" => Value::String(args.iter().map(go_string).collect::<Vec<_>>().concat()),
        "printf" => {
            if args.is_empty() {
                return Err(TemplateError::Exec(
                    "wrong number of args for printf".into(),
                ));
            }
            Value::String(printf(&s(0), &args[1..]))
        }
        "len" => {
            need(1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::String(x) => x.len(),
                other => return Err(TemplateError::Exec(format!("len of {}", go_string(other)))),
            })
        }
        "index" => {
            let mut cur = args.first().cloned().unwrap_or(Value::Null);
            for k in args.iter().skip(1) {
                cur = match (&cur, k) {
                    (Value::Array(a), k) => {
                        a.get(as_int(k)? as usize).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Object(o), k) => o.get(&as_str(k)).cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            cur
        }
        "eq" => Value::Bool(
            args.len() >= 2
                && args[1..]
                    .iter()
                    .any(|b| compare(&args[0], b) == Some(std::cmp::Ordering::Equal)),
        ),
        "ne" => {
            need(2)?;
            Value::Bool(compare(&args[0], &args[1]) != Some(std::cmp::Ordering::Equal))
        }
        "lt" | "le" | "gt" | "ge" => {
            need(2)?;
            let o = compare(&args[0], &args[1]).ok_or_else(|| {
                TemplateError::Exec(format!("incompatible types for comparison in {name}"))
            })?;
            use std::cmp::Ordering::*;
            Value::Bool(match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "not" => {
            need(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        other => {
            return Err(TemplateError::Parse(format!(
                "function \"{other}\" not defined"
            )))
        }
    })
}
