//! Conversions between the OCI (v1-flavoured) resource values and cgroup v2 files, following
//! runc so that the same `config.json` gives the same limits under both runtimes.

/// Resource values that cannot be expressed.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "invalid memory.swap {swap}: a swap limit needs a memory limit (memory.limit is {limit})"
    )]
    SwapWithoutLimit { swap: i64, limit: i64 },
    #[error("invalid memory.swap {swap}: memory+swap must be >= memory.limit {limit}")]
    SwapBelowLimit { swap: i64, limit: i64 },
    #[error("invalid hugepage size {0:?} (expected e.g. 2MB or 1GB)")]
    HugepageSize(String),
    #[error("invalid unified key {0:?}: must be a file name in the cgroup directory")]
    UnifiedKey(String),
}

/// `cpu.shares` (2..262144, default 1024) → `cpu.weight` (1..10000, default 100), with the
/// quadratic-in-log mapping runc ≥ 1.3 (and crun) use, which maps the default 1024 to the default
/// 100 (the older linear formula gave 39). 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

/// `blkio.weight` (10..1000) → `io.weight` (1..10000), runc's linear mapping. 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.max(10));
    1 + (w - 10) * 9999 / 990
}

/// OCI `memory.swap` is memory+swap (v1 semantics); v2's `memory.swap.max` is swap alone.
/// Returns `None` for "leave unset", `Some(-1)` for `max`, else the swap-only value.
pub fn memory_swap_to_v2(
    swap: Option<i64>,
    limit: Option<i64>,
) -> Result<Option<i64>, ResourceError> {
    let limit_v = limit.unwrap_or(0);
    let Some(swap) = swap else {
        // runc: memory set to unlimited and swap not given means both unlimited.
        return Ok(if limit_v == -1 { Some(-1) } else { None });
    };
    match swap {
        0 if limit_v == -1 => Ok(Some(-1)),
        0 => Ok(None),
        -1 => Ok(Some(-1)),
        _ if limit_v <= 0 => Err(ResourceError::SwapWithoutLimit {
            swap,
            limit: limit_v,
        }),
        _ if swap < limit_v => Err(ResourceError::SwapBelowLimit {
            swap,
            limit: limit_v,
        }),
        _ => Ok(Some(swap - limit_v)),
    }
}

/// A limit value as a cgroup file wants it: negative is unlimited (`max` on v2, `-1` on v1).
pub fn limit_str(v: i64, v2: bool) -> String {
    if v < 0 {
        if v2 {
            "max".into()
        } else {
            "-1".into()
        }
    } else {
        v.to_string()
    }
}

/// Validates an OCI hugepage size (`2MB`, `1GB`, `64KB`) for use in a file name.
pub fn hugepage_size(s: &str) -> Result<&str, ResourceError> {
    let num = s.trim_end_matches(['K', 'M', 'G', 'B']);
    let unit = &s[num.len()..];
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB")
    {
        return Err(ResourceError::HugepageSize(s.to_string()));
    }
    Ok(s)
}

/// The `cpu.max` value for quota/period: `max` or the quota, and the period when given.
/// `None` when neither is set.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let q = quota.unwrap_or(0);
    let p = period.unwrap_or(0);
    if q == 0 && p == 0 {
        return None;
    }
    let mut s = if q > 0 {
        q.to_string()
    } else {
        "max".to_string()
    };
    if p != 0 {
        s.push_str(&format!(" {p}"));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_from_shares() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(512), 59);
        // Monotonic over the whole range.
        let mut prev = 0;
        for s in (2..262_144).step_by(97) {
            let w = shares_to_weight(s);
            assert!(w >= prev && (1..=10_000).contains(&w), "shares {s} -> {w}");
            prev = w;
        }
    }

    #[test]
    fn io_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(memory_swap_to_v2(None, None).unwrap(), None);
        assert_eq!(memory_swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(memory_swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(memory_swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(memory_swap_to_v2(Some(100), Some(100)).unwrap(), Some(0));
        assert!(memory_swap_to_v2(Some(50), Some(100)).is_err());
        assert!(memory_swap_to_v2(Some(50), None).is_err());
    }

    #[test]
    fn cpu_max_and_sizes() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(Some(-1), None).as_deref(), Some("max"));
        assert_eq!(cpu_max(None, Some(10_000)).as_deref(), Some("max 10000"));
        assert!(hugepage_size("2MB").is_ok());
        assert!(hugepage_size("1GB").is_ok());
        assert!(hugepage_size("2M").is_err());
        assert!(hugepage_size("../x").is_err());
        assert_eq!(limit_str(-1, true), "max");
        assert_eq!(limit_str(-1, false), "-1");
    }
}
