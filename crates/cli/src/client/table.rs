//! docker's `--format` handling for lists: `table ...` (header row + tabwriter), raw templates, `json`.

use std::io::Write;

use serde_json::Value;

use super::template::{Template, TemplateError};

/// Writes `text` through a tabwriter configured like docker's (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`).
/// Go counts padding inside minwidth; the Rust crate adds it after, hence 7 + 3.
pub fn tabulate(text: &str) -> String {
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
    let _ = tw.write_all(text.as_bytes());
    let _ = tw.flush();
    String::from_utf8_lossy(&tw.into_inner().unwrap_or_default()).into_owned()
}

/// Docker's pre-processing: `\t` and `\n` typed literally in a flag become real tabs and newlines.
pub fn unescape(format: &str) -> String {
    format.replace("\\t", "\t").replace("\\n", "\n")
}

/// Renders `rows` with a user `--format` (or `default` when empty). `header` maps field names to column titles.
pub fn render(
    format: &str,
    default: &str,
    header: &Value,
    rows: &[Value],
) -> Result<String, TemplateError> {
    let format = if format.is_empty() || format == "table" {
        default
    } else {
        format
    };
    if format == "json" {
        let mut out = String::new();
        for r in rows {
            // Hidden helper keys (`_Label`) are not part of docker's JSON.
            let mut r = r.clone();
            if let Value::Object(o) = &mut r {
                o.retain(|k, _| !k.starts_with('_'));
            }
            // Go's json.Marshal (behind docker's MarshalJSON of row contexts) escapes HTML characters.
            let text = serde_json::to_string(&r).unwrap_or_default();
            out.push_str(
                &text
                    .replace('<', "\\u003c")
                    .replace('>', "\\u003e")
                    .replace('&', "\\u0026"),
            );
            out.push('\n');
        }
        return Ok(out);
    }
    if let Some(rest) = format.strip_prefix("table") {
        let tmpl = Template::parse(&unescape(rest.trim_matches(' ')))?;
        let mut text = tmpl.render_header(header)?;
        text.push('\n');
        for r in rows {
            text.push_str(&tmpl.render_strict(r)?);
            text.push('\n');
        }
        return Ok(tabulate(&text));
    }
    let tmpl = Template::parse(&unescape(format))?;
    let mut out = String::new();
    for r in rows {
        out.push_str(&tmpl.render_strict(r)?);
        out.push('\n');
    }
    Ok(out)
}

/// Renders one value with a template (inspect -f, info/version --format); `json` means `{{json .}}`.
/// `strict`: unknown fields are errors (info, version), else `<no value>` (inspect).
pub fn render_one(format: &str, v: &Value, strict: bool) -> Result<String, TemplateError> {
    let format = if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    let t = Template::parse(&unescape(format))?;
    let mut s = if strict {
        t.render_strict(v)?
    } else {
        t.render(v)?
    };
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_matches_docker_spacing() {
        let header = json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "Size": "SIZE"});
        let rows = vec![
            json!({"Repository": "hello-world", "Tag": "latest", "ID": "d2c94e258dcb", "CreatedSince": "2 years ago", "Size": "13.3kB"}),
        ];
        let out = render(
            "",
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
            &header,
            &rows,
        )
        .expect("render");
        assert_eq!(
            out,
            "REPOSITORY    TAG       IMAGE ID       CREATED       SIZE\nhello-world   latest    d2c94e258dcb   2 years ago   13.3kB\n"
        );
    }

    #[test]
    fn header_printed_without_rows_and_raw_and_json() {
        let header = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
        assert_eq!(
            render("table {{.ID}}\\t{{.Names}}", "", &header, &[]).expect("t"),
            "CONTAINER ID   NAMES\n"
        );
        let rows = vec![
            json!({"ID": "abc", "Names": "x"}),
            json!({"ID": "def", "Names": "y"}),
        ];
        assert_eq!(
            render("{{.ID}}:{{.Names}}", "", &header, &rows).expect("raw"),
            "abc:x\ndef:y\n"
        );
        assert_eq!(
            render("json", "", &header, &rows[..1]).expect("json"),
            "{\"ID\":\"abc\",\"Names\":\"x\"}\n"
        );
        assert_eq!(render_one("{{.ID}}", &rows[0], true).expect("one"), "abc\n");
    }
}
