//! `docker top`: runs the host's `ps` with the client's arguments and keeps the rows of the container's
//! processes (the pids of its cgroup), as moby does.

use serde_json::{json, Value};

use crate::engine::{container_cgroup, Engine, EngineError};

/// Errors parsing `ps` output.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// The `ps` output has no PID column (e.g. `-o comm`).
    #[error("Couldn't find PID field in ps output")]
    NoPidColumn,
}

/// Splits `ps` output into titles and the rows whose PID is in `pids`, merging the overhanging fields of the
/// last column (the command line) into one, like moby's `parsePSOutput`.
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<(Vec<String>, Vec<Vec<String>>), TopError> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or(TopError::NoPidColumn)?;
    let mut rows = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len() - 1;
        let mut row: Vec<String> = fields[..n].iter().map(|s| s.to_string()).collect();
        row.push(fields[n..].join(" "));
        rows.push(row);
    }
    Ok((titles, rows))
}

impl Engine {
    /// `GET /containers/{id}/top?ps_args=`: `{"Titles": [...], "Processes": [[...]]}`.
    pub fn top(&self, key: &str, ps_args: &str) -> Result<Value, EngineError> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let pids = container_cgroup(&c.id)?.pids().map_err(|e| {
            EngineError::Internal(format!("listing the processes of {}: {e}", c.id))
        })?;
        let ps_args = if ps_args.trim().is_empty() {
            "-ef"
        } else {
            ps_args
        };
        let args: Vec<&str> = ps_args.split_whitespace().collect();
        let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        // Ask ps for just these pids when it accepts it; some options (like `f`) refuse -q: retry without.
        let run = |extra: Option<String>| {
            let mut cmd = std::process::Command::new("ps");
            cmd.args(&args);
            if let Some(e) = extra {
                cmd.arg(e);
            }
            cmd.stdin(std::process::Stdio::null()).output()
        };
        let out = match run(Some(format!("-q{}", list.join(",")))) {
            Ok(o) if o.status.success() => o,
            _ => run(None).map_err(|e| EngineError::Internal(format!("running ps: {e}")))?,
        };
        if !out.status.success() {
            return Err(EngineError::Internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let (titles, rows) = parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.container_event(&c, "top", json!({}));
        Ok(json!({"Titles": titles, "Processes": rows}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 /sbin/init\nroot         42       1  0 10:01 ?        00:00:00 sleep 1000 extra\n";
        let (t, rows) = parse_ps(out, &[42]).unwrap();
        assert_eq!(t.len(), 8);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][7], "sleep 1000 extra");
        assert_eq!(rows[0][1], "42");
        assert!(parse_ps("COMMAND\nsh\n", &[1]).is_err());
    }
}
