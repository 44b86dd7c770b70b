//! `--health-cmd/-interval/-timeout/-start-period/-start-interval/-retries` and `--no-healthcheck` → the create
//! body's `Healthcheck`, built and checked the way the docker CLI does (durations in nanoseconds).

use serde_json::{json, Value};

use super::runopts::RunOpts;

/// Errors of the health flags: the message the CLI prints (exit 125).
#[derive(Debug, thiserror::Error)]
pub enum HealthOptError {
    /// A duration Go's `time.ParseDuration` would refuse.
    #[error("invalid argument \"{val}\" for \"{flag}\" flag: time: invalid duration \"{val}\"")]
    Duration {
        /// The flag.
        flag: String,
        /// Its value.
        val: String,
    },
    /// Conflicting or negative settings.
    #[error("{0}")]
    Invalid(String),
}

/// Go's `time.ParseDuration` in nanoseconds: `300ms`, `1m30s`, `-1.5h`, `0`.
pub fn go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += num * scale;
    }
    let n = total.round() as i64;
    Some(if neg { -n } else { n })
}

/// The `Healthcheck` for the create body, or None when no health flag is given.
pub fn healthcheck(o: &RunOpts) -> Result<Option<Value>, HealthOptError> {
    let d = |flag: &str, v: &Option<String>| -> Result<i64, HealthOptError> {
        match v {
            None => Ok(0),
            Some(val) => go_duration(val).ok_or_else(|| HealthOptError::Duration {
                flag: flag.into(),
                val: val.clone(),
            }),
        }
    };
    let interval = d("--health-interval", &o.health_interval)?;
    let timeout = d("--health-timeout", &o.health_timeout)?;
    let start_period = d("--health-start-period", &o.health_start_period)?;
    let start_interval = d("--health-start-interval", &o.health_start_interval)?;
    let retries = o.health_retries.unwrap_or(0);
    let cmd = o.health_cmd.clone().unwrap_or_default();
    let any = !cmd.is_empty()
        || interval != 0
        || timeout != 0
        || start_period != 0
        || start_interval != 0
        || retries != 0;
    if o.no_healthcheck {
        if any {
            return Err(HealthOptError::Invalid(
                "--no-healthcheck conflicts with --health-* options".into(),
            ));
        }
        return Ok(Some(json!({"Test": ["NONE"]})));
    }
    if !any {
        return Ok(None);
    }
    for (v, flag) in [
        (interval, "--health-interval"),
        (timeout, "--health-timeout"),
        (start_period, "--health-start-period"),
        (start_interval, "--health-start-interval"),
        (retries, "--health-retries"),
    ] {
        if v < 0 {
            return Err(HealthOptError::Invalid(format!(
                "{flag} cannot be negative"
            )));
        }
    }
    let test = if cmd.is_empty() {
        Value::Null
    } else {
        json!(["CMD-SHELL", cmd])
    };
    Ok(Some(json!({
        "Test": test,
        "Interval": interval,
        "Timeout": timeout,
        "StartPeriod": start_period,
        "StartInterval": start_interval,
        "Retries": retries,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(go_duration("300ms"), Some(300_000_000));
        assert_eq!(go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration("-2s"), Some(-2_000_000_000));
        assert_eq!(go_duration("0"), Some(0));
        assert_eq!(go_duration("10"), None);
        assert_eq!(go_duration("1d"), None);
        assert_eq!(go_duration(""), None);
    }
}
