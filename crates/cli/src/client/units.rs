//! docker's go-units: human sizes (`13.3kB`), human durations (`About a minute`), `RAMInBytes` (`512m`).

/// Unit parsing errors.
#[derive(Debug, thiserror::Error)]
pub enum UnitsError {
    #[error("invalid size: '{0}'")]
    Size(String),
}

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// Go's `%.{prec}g`: at most `prec` significant digits, trailing zeros dropped, exponent form when large.
pub fn go_g(x: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if x == 0.0 {
        return "0".into();
    }
    let e = format!("{:.*e}", prec - 1, x);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.')
        } else {
            mant
        };
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// go-units `HumanSizeWithPrecision`: decimal (1000-based) units.
pub fn human_size_prec(size: f64, prec: usize) -> String {
    let mut size = size;
    let mut i = 0;
    while size >= 1000.0 && i < DECIMAL.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(size, prec), DECIMAL[i])
}

/// go-units `HumanSize` (4 significant digits), used by `system df`.
pub fn human_size(size: f64) -> String {
    human_size_prec(size, 4)
}

/// go-units `BytesSize`: binary (1024-based) units, used by `info`'s Total Memory.
pub fn bytes_size(size: f64) -> String {
    const BIN: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = size;
    let mut i = 0;
    while size >= 1024.0 && i < BIN.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g(size, 4), BIN[i])
}

/// go-units `HumanDuration`.
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go rounds to the nearest hour here.
    let hours = ((secs / 3600.0) + 0.5).floor() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `"2 minutes ago"` for a unix timestamp.
pub fn ago(unix: f64) -> String {
    format!("{} ago", human_duration((now_secs() - unix).max(0.0)))
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05.123456789Z`) to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
}

/// go-units `RAMInBytes`: `512m`, `1g`, `1.5GiB`, `100` (bytes); binary multiples.
pub fn ram_in_bytes(s: &str) -> Result<i64, UnitsError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| UnitsError::Size(s.to_string()))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0f64.powi(3),
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(UnitsError::Size(s.to_string())),
    };
    Ok((n * mult) as i64)
}

/// Docker's `Ellipsis`: cut to `max` display chars, the last being `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the strings docker shows (COMMAND column).
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `stringid.TruncateID`: strips an algorithm prefix and keeps 12 characters.
pub fn short_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, h)| h);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size_prec(13256.0, 3), "13.3kB");
        assert_eq!(human_size_prec(1_048_576.0, 3), "1.05MB");
        assert_eq!(human_size_prec(861.0, 3), "861B");
        assert_eq!(human_size_prec(0.0, 3), "0B");
        assert_eq!(human_size_prec(1000.0, 3), "1kB");
        assert_eq!(human_size(1_048_576.0), "1.049MB");
        assert_eq!(human_size(77_800_000.0), "77.8MB");
        assert_eq!(bytes_size(2_084_020_224.0), "1.941GiB");
        assert_eq!(go_g(999.96, 3), "1e+03");
        assert_eq!(go_g(0.5, 3), "0.5");
    }

    #[test]
    fn durations_match_go_units() {
        assert_eq!(human_duration(0.4), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(3.0), "3 seconds");
        assert_eq!(human_duration(65.0), "About a minute");
        assert_eq!(human_duration(150.0), "2 minutes");
        assert_eq!(human_duration(3600.0 * 1.4), "About an hour");
        assert_eq!(human_duration(3600.0 * 5.0), "5 hours");
        assert_eq!(human_duration(86400.0 * 3.0), "3 days");
        assert_eq!(human_duration(86400.0 * 21.0), "3 weeks");
        assert_eq!(human_duration(86400.0 * 90.0), "3 months");
        assert_eq!(human_duration(86400.0 * 365.0 * 3.0), "3 years");
        assert!(ago(now_secs() - 120.0).ends_with("minutes ago"));
    }

    #[test]
    fn ram_parsing() {
        assert_eq!(ram_in_bytes("512m").expect("m"), 512 * 1024 * 1024);
        assert_eq!(ram_in_bytes("1g").expect("g"), 1 << 30);
        assert_eq!(ram_in_bytes("1.5GiB").expect("gib"), 3 << 29);
        assert_eq!(ram_in_bytes("100").expect("b"), 100);
        assert_eq!(ram_in_bytes("6k").expect("k"), 6144);
        assert!(ram_in_bytes("12x").is_err());
        assert!(ram_in_bytes("m").is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(
            ellipsis("/bin/sh -c 'sleep 1000'", 20),
            "/bin/sh -c 'sleep 1…"
        );
        assert_eq!(go_quote("/hello"), "\"/hello\"");
        assert_eq!(go_quote("sh -c \"x\""), "\"sh -c \\\"x\\\"\"");
        assert_eq!(short_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(parse_rfc3339("1970-01-01T00:01:00.5Z"), Some(60.5));
    }
}
