//! `docker stats` samples: the container's cgroup counters (v1, v2 or hybrid, through berth-cgroups), the
//! network counters of its network namespace (`/proc/<init pid>/net/dev`) and the host's CPU time, in the
//! shape of docker's `GET /containers/{id}/stats` (so the docker CLI computes CPU % and MEM USAGE / LIMIT).

use std::fs;

use serde_json::{json, Map, Value};

use crate::engine::{container_cgroup, Engine, EngineError};
use crate::record::{now_rfc3339, Container};

/// Errors reading the host's counters.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A /proc file could not be read.
    #[error("reading {0}: {1}")]
    Proc(String, std::io::Error),
}

/// Host CPU time in nanoseconds (the sum of the `cpu` line of /proc/stat, as docker computes it).
pub fn system_cpu_usage() -> Result<u64, StatsError> {
    let s =
        fs::read_to_string("/proc/stat").map_err(|e| StatsError::Proc("/proc/stat".into(), e))?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = s
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(ticks * 1_000_000_000 / hz)
}

/// CPUs online on the host.
pub fn online_cpus() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    (unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).max(1) as u64
}

/// Total host memory in bytes (docker's limit for a container without one).
pub fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Parses /proc/net/dev into docker's `networks` map (interface → counters), leaving out `lo`.
pub fn parse_net_dev(content: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for line in content.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
            }),
        );
    }
    out
}

/// docker's empty sample (a container that is not running, or `precpu_stats` of a first sample).
pub fn empty_sample(c: &Container) -> Value {
    json!({
        "name": c.name,
        "id": c.id,
        "read": crate::record::ZERO_TIME,
        "preread": crate::record::ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {
            "io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                      "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                         "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {},
    })
}

impl Engine {
    /// One stats sample of a running container (docker's `StatsJSON` without `precpu_stats`/`preread`, which
    /// the caller fills from its previous sample); an empty sample for a container that is not running.
    pub fn stats_sample(&self, key: &str) -> Result<Value, EngineError> {
        let c = self.get(key)?;
        if !c.state.running || c.state.pid <= 0 {
            return Ok(empty_sample(&c));
        }
        let cg = container_cgroup(&c.id)?;
        let st = cg
            .stats()
            .map_err(|e| EngineError::Internal(format!("stats of {}: {e}", c.id)))?;
        let system = system_cpu_usage().map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut sample = empty_sample(&c);
        sample["read"] = json!(now_rfc3339());
        let mut cpu_usage = json!({
            "total_usage": st.cpu.usage_total,
            "usage_in_kernelmode": st.cpu.usage_system,
            "usage_in_usermode": st.cpu.usage_user,
        });
        if !st.cpu.per_cpu.is_empty() {
            cpu_usage["percpu_usage"] = json!(st.cpu.per_cpu);
        }
        sample["cpu_stats"] = json!({
            "cpu_usage": cpu_usage,
            "system_cpu_usage": system,
            "online_cpus": online_cpus(),
            "throttling_data": {
                "periods": st.cpu.nr_periods,
                "throttled_periods": st.cpu.nr_throttled,
                "throttled_time": st.cpu.throttled_time,
            },
        });
        let mut mem = json!({
            "usage": st.memory.raw_usage,
            "stats": st.memory.stat,
            "limit": st.memory.limit.unwrap_or_else(host_memory),
        });
        if st.memory.max_usage > 0 {
            mem["max_usage"] = json!(st.memory.max_usage);
        }
        sample["memory_stats"] = mem;
        let mut pids = json!({"current": st.pids.current});
        if let Some(l) = st.pids.limit {
            pids["limit"] = json!(l);
        }
        sample["pids_stats"] = pids;
        let entries: Vec<Value> = st
            .blkio
            .io_service_bytes
            .iter()
            .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
            .collect();
        sample["blkio_stats"]["io_service_bytes_recursive"] = json!(entries);
        if c.host_config["NetworkMode"] != "host" {
            if let Ok(dev) = fs::read_to_string(format!("/proc/{}/net/dev", c.state.pid)) {
                sample["networks"] = Value::Object(parse_net_dev(&dev));
            }
        }
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev() {
        let s = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    2000      20    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n";
        let m = parse_net_dev(s);
        assert_eq!(m.len(), 1);
        assert_eq!(m["eth0"]["rx_bytes"], 2000);
        assert_eq!(m["eth0"]["tx_packets"], 30);
        assert_eq!(m["eth0"]["tx_dropped"], 4);
        assert!(system_cpu_usage().unwrap() > 0);
        assert!(online_cpus() >= 1);
    }
}
