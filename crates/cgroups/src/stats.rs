//! Resource usage, read from v1 or v2 files into one shape (what Docker's stats API needs).

use crate::fsutil::{self, flat_get, parse_flat_keyed, FsError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Stats read failures.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Everything [`crate::Cgroup::stats`] reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory: MemoryStats,
    pub cpu: CpuStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
}

/// Memory usage. `usage` excludes the inactive file cache, like `docker stats`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// `raw_usage - inactive_file`.
    pub usage: u64,
    /// memory.usage_in_bytes / memory.current.
    pub raw_usage: u64,
    /// Peak usage (memory.max_usage_in_bytes / memory.peak), 0 when the kernel does not say.
    pub max_usage: u64,
    /// The limit; `None` when unlimited.
    pub limit: Option<u64>,
    /// Times the OOM killer killed a process in this cgroup.
    pub oom_kill: u64,
    /// memory.stat as is (v1 keys like `total_inactive_file`, v2 keys like `inactive_file`).
    pub stat: BTreeMap<String, u64>,
}

/// CPU time in nanoseconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_total: u64,
    pub usage_user: u64,
    pub usage_system: u64,
    /// Per-CPU totals (v1 only; empty on v2, where the kernel does not split them).
    pub per_cpu: Vec<u64>,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_time: u64,
}

/// Task counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// One per-device counter, as Docker's `io_service_bytes_recursive` lists them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// `read` or `write`.
    pub op: String,
    pub value: u64,
}

/// Block I/O bytes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BlkioStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub io_service_bytes: Vec<BlkioEntry>,
}

fn opt_limit(v: Option<u64>) -> Option<u64> {
    // v1 reports "unlimited" as a huge page-rounded number, v2 as "max" (u64::MAX here).
    v.filter(|&l| l < (i64::MAX as u64) & !0xfff)
}

/// v1 memory controller.
pub fn memory_v1(dir: &Path) -> Result<MemoryStats, StatsError> {
    let stat: BTreeMap<String, u64> = parse_flat_keyed(&fsutil::read(dir, "memory.stat")?)
        .into_iter()
        .collect();
    let raw = fsutil::read_u64(dir, "memory.usage_in_bytes")?;
    let inactive = stat.get("total_inactive_file").copied().unwrap_or(0);
    let oom = fsutil::read_opt(dir, "memory.oom_control")?
        .and_then(|s| flat_get(&s, "oom_kill"))
        .unwrap_or(0);
    Ok(MemoryStats {
        usage: raw.saturating_sub(inactive),
        raw_usage: raw,
        max_usage: fsutil::read_u64_opt(dir, "memory.max_usage_in_bytes")?.unwrap_or(0),
        limit: opt_limit(fsutil::read_u64_opt(dir, "memory.limit_in_bytes")?),
        oom_kill: oom,
        stat,
    })
}

/// v2 memory controller.
pub fn memory_v2(dir: &Path) -> Result<MemoryStats, StatsError> {
    let stat: BTreeMap<String, u64> = fsutil::read_opt(dir, "memory.stat")?
        .map(|s| parse_flat_keyed(&s).into_iter().collect())
        .unwrap_or_default();
    let raw = fsutil::read_u64_opt(dir, "memory.current")?.unwrap_or(0);
    let inactive = stat.get("inactive_file").copied().unwrap_or(0);
    let oom = fsutil::read_opt(dir, "memory.events")?
        .and_then(|s| flat_get(&s, "oom_kill"))
        .unwrap_or(0);
    Ok(MemoryStats {
        usage: raw.saturating_sub(inactive),
        raw_usage: raw,
        max_usage: fsutil::read_u64_opt(dir, "memory.peak")?.unwrap_or(0),
        limit: opt_limit(fsutil::read_u64_opt(dir, "memory.max")?),
        oom_kill: oom,
        stat,
    })
}

/// v1 cpuacct (usage) and cpu (throttling) controllers.
pub fn cpu_v1(cpuacct: Option<&Path>, cpu: Option<&Path>) -> Result<CpuStats, StatsError> {
    let mut s = CpuStats::default();
    if let Some(dir) = cpuacct {
        s.usage_total = fsutil::read_u64(dir, "cpuacct.usage")?;
        s.per_cpu = fsutil::read_opt(dir, "cpuacct.usage_percpu")?
            .map(|c| {
                c.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // cpuacct.usage_user/_sys are in ns; cpuacct.stat is in USER_HZ ticks (fallback).
        match (
            fsutil::read_u64_opt(dir, "cpuacct.usage_user")?,
            fsutil::read_u64_opt(dir, "cpuacct.usage_sys")?,
        ) {
            (Some(u), Some(sy)) => {
                s.usage_user = u;
                s.usage_system = sy;
            }
            _ => {
                if let Some(st) = fsutil::read_opt(dir, "cpuacct.stat")? {
                    // SAFETY: sysconf has no memory-safety preconditions.
                    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
                    s.usage_user = flat_get(&st, "user").unwrap_or(0) * 1_000_000_000 / hz;
                    s.usage_system = flat_get(&st, "system").unwrap_or(0) * 1_000_000_000 / hz;
                }
            }
        }
    }
    if let Some(dir) = cpu {
        if let Some(st) = fsutil::read_opt(dir, "cpu.stat")? {
            s.nr_periods = flat_get(&st, "nr_periods").unwrap_or(0);
            s.nr_throttled = flat_get(&st, "nr_throttled").unwrap_or(0);
            s.throttled_time = flat_get(&st, "throttled_time").unwrap_or(0);
        }
    }
    Ok(s)
}

/// v2 `cpu.stat` (always present, even without the cpu controller enabled).
pub fn cpu_v2(dir: &Path) -> Result<CpuStats, StatsError> {
    let st = fsutil::read_opt(dir, "cpu.stat")?.unwrap_or_default();
    let us = |k| flat_get(&st, k).unwrap_or(0) * 1000;
    Ok(CpuStats {
        usage_total: us("usage_usec"),
        usage_user: us("user_usec"),
        usage_system: us("system_usec"),
        per_cpu: Vec::new(),
        nr_periods: flat_get(&st, "nr_periods").unwrap_or(0),
        nr_throttled: flat_get(&st, "nr_throttled").unwrap_or(0),
        throttled_time: us("throttled_usec"),
    })
}

/// pids controller (same files on v1 and v2).
pub fn pids(dir: &Path) -> Result<PidsStats, StatsError> {
    Ok(PidsStats {
        current: fsutil::read_u64_opt(dir, "pids.current")?.unwrap_or(0),
        limit: fsutil::read_u64_opt(dir, "pids.max")?.filter(|&v| v != u64::MAX),
    })
}

/// v1 `blkio.throttle.io_service_bytes_recursive` (`8:0 Read 4096` lines), falling back to the
/// bfq file when the throttle one is absent.
pub fn blkio_v1(dir: &Path) -> Result<BlkioStats, StatsError> {
    let content = match fsutil::read_opt(dir, "blkio.throttle.io_service_bytes_recursive")? {
        Some(c) => c,
        None => fsutil::read_opt(dir, "blkio.bfq.io_service_bytes_recursive")?.unwrap_or_default(),
    };
    Ok(parse_blkio_v1(&content))
}

/// Parses v1 io_service_bytes content.
pub fn parse_blkio_v1(content: &str) -> BlkioStats {
    let mut s = BlkioStats::default();
    for line in content.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [dev, op, val] = f[..] else { continue };
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor), Ok(value)) = (maj.parse(), min.parse(), val.parse::<u64>())
        else {
            continue;
        };
        let op = match op {
            "Read" => "read",
            "Write" => "write",
            _ => continue,
        };
        if op == "read" {
            s.read_bytes += value;
        } else {
            s.write_bytes += value;
        }
        s.io_service_bytes.push(BlkioEntry {
            major,
            minor,
            op: op.into(),
            value,
        });
    }
    s
}

/// v2 `io.stat` (`8:0 rbytes=1 wbytes=2 ...` lines).
pub fn blkio_v2(dir: &Path) -> Result<BlkioStats, StatsError> {
    Ok(parse_io_stat(
        &fsutil::read_opt(dir, "io.stat")?.unwrap_or_default(),
    ))
}

/// Parses v2 io.stat content.
pub fn parse_io_stat(content: &str) -> BlkioStats {
    let mut s = BlkioStats::default();
    for line in content.lines() {
        let mut it = line.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let op = match k {
                "rbytes" => "read",
                "wbytes" => "write",
                _ => continue,
            };
            if op == "read" {
                s.read_bytes += value;
            } else {
                s.write_bytes += value;
            }
            s.io_service_bytes.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_parsing() {
        let v1 = parse_blkio_v1(
            "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 1\n8:0 Total 4608\nTotal 4608\n",
        );
        assert_eq!(
            (v1.read_bytes, v1.write_bytes, v1.io_service_bytes.len()),
            (4096, 512, 2)
        );
        let v2 = parse_io_stat("8:0 rbytes=100 wbytes=20 rios=1 wios=1\n253:1 rbytes=1 wbytes=2\n");
        assert_eq!((v2.read_bytes, v2.write_bytes), (101, 22));
        assert_eq!(
            v2.io_service_bytes[2],
            BlkioEntry {
                major: 253,
                minor: 1,
                op: "read".into(),
                value: 1
            }
        );
    }

    #[test]
    fn v2_files_from_a_dir() {
        let d = tempfile::tempdir().unwrap();
        let w = |f: &str, c: &str| std::fs::write(d.path().join(f), c).unwrap();
        w("memory.current", "1000\n");
        w("memory.max", "max\n");
        w("memory.stat", "anon 10\nfile 600\ninactive_file 400\n");
        w("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        w("cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\n");
        w("pids.current", "4\n");
        w("pids.max", "max\n");
        let m = memory_v2(d.path()).unwrap();
        assert_eq!(
            (m.usage, m.raw_usage, m.limit, m.oom_kill),
            (600, 1000, None, 1)
        );
        let c = cpu_v2(d.path()).unwrap();
        assert_eq!(
            (c.usage_total, c.usage_user, c.usage_system),
            (5000, 3000, 2000)
        );
        assert_eq!(
            pids(d.path()).unwrap(),
            PidsStats {
                current: 4,
                limit: None
            }
        );
        w("memory.max", "1048576\n");
        assert_eq!(memory_v2(d.path()).unwrap().limit, Some(1_048_576));
    }
}
