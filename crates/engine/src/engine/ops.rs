//! `pause`/`unpause` (the cgroup freezer) and `update` (resource limits of a created or running container, and
//! its restart policy). Limits are merged into the stored HostConfig, validated like at create, and written to
//! the live cgroup when the container runs.

use serde_json::{json, Value};

use super::{internal, Engine, EngineError, Result};

/// The container's cgroup, resolved the way the runtime resolved it (`/berth/<id>`, see `spec::build`).
pub fn container_cgroup(id: &str) -> Result<berth_cgroups::Cgroup> {
    berth_cgroups::Cgroup::new(&format!("/berth/{id}"), id).map_err(internal)
}

/// The numeric HostConfig resources `update` can change; 0 in the request means "leave as is" (docker's rule).
const NUMERIC: &[&str] = &[
    "CpuShares",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "BlkioWeight",
];

impl Engine {
    /// `POST /containers/{id}/pause`: freezes every process of the container.
    pub fn pause(&self, key: &str) -> Result<()> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if c.state.paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is already paused",
                c.id
            )));
        }
        container_cgroup(&c.id)?
            .freeze()
            .map_err(|e| internal(format!("pausing {}: {e}", c.id)))?;
        let c = self.update(&c.id, |c| {
            c.state.paused = true;
            c.state.status = "paused".into();
        })?;
        self.container_event(&c, "pause", json!({}));
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub fn unpause(&self, key: &str) -> Result<()> {
        let c = self.get(key)?;
        if !c.state.paused || !c.state.running {
            return Err(EngineError::Conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        container_cgroup(&c.id)?
            .thaw()
            .map_err(|e| internal(format!("unpausing {}: {e}", c.id)))?;
        let c = self.update(&c.id, |c| {
            c.state.paused = false;
            if c.state.running {
                c.state.status = "running".into();
            }
        })?;
        self.container_event(&c, "unpause", json!({}));
        Ok(())
    }

    /// Thaws a paused container so a SIGKILL just sent can take effect (a frozen task never dies), and records it
    /// as no longer paused.
    pub(crate) fn thaw_for_kill(&self, id: &str) {
        if let Ok(cg) = container_cgroup(id) {
            let _ = cg.thaw();
        }
        let _ = self.update(id, |c| {
            c.state.paused = false;
            if c.state.running {
                c.state.status = "running".into();
            }
        });
    }

    /// `POST /containers/{id}/update`: returns docker's warnings (none).
    pub fn update_container(&self, key: &str, req: &Value) -> Result<Vec<String>> {
        let c = self.get(key)?;
        if !req.is_object() {
            return Err(EngineError::InvalidParameter(
                "update config must be a JSON object".into(),
            ));
        }
        let old = &c.host_config;
        let mut hc = old.clone();
        for k in NUMERIC {
            if let Some(v) = req[*k].as_i64().filter(|v| *v != 0) {
                hc[*k] = json!(v);
            }
        }
        for k in ["CpusetCpus", "CpusetMems"] {
            if let Some(v) = req[k].as_str().filter(|v| !v.is_empty()) {
                hc[k] = json!(v);
            }
        }
        let pids_cleared = req["PidsLimit"].as_i64().is_some_and(|p| p <= 0);
        if let Some(p) = req["PidsLimit"].as_i64() {
            hc["PidsLimit"] = if p <= 0 { Value::Null } else { json!(p) };
        }
        // NanoCpus and CpuQuota/CpuPeriod are two spellings of one limit: a new one replaces the other.
        if req["NanoCpus"].as_i64().unwrap_or(0) > 0 {
            hc["CpuQuota"] = json!(0);
            hc["CpuPeriod"] = json!(0);
        } else if req["CpuQuota"].as_i64().unwrap_or(0) != 0
            || req["CpuPeriod"].as_i64().unwrap_or(0) != 0
        {
            hc["NanoCpus"] = json!(0);
        }
        let mem = hc["Memory"].as_i64().unwrap_or(0);
        let swap = hc["MemorySwap"].as_i64().unwrap_or(0);
        if req["Memory"].as_i64().unwrap_or(0) != 0
            && req["MemorySwap"].as_i64().unwrap_or(0) == 0
            && swap > 0
            && mem > swap
        {
            return Err(EngineError::InvalidParameter(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
            ));
        }
        let rp = &req["RestartPolicy"];
        if let Some(name) = rp["Name"].as_str().filter(|n| !n.is_empty()) {
            let retries = rp["MaximumRetryCount"].as_i64().unwrap_or(0);
            if c.host_config["AutoRemove"].as_bool().unwrap_or(false) && name != "no" {
                return Err(EngineError::InvalidParameter(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                ));
            }
            hc["RestartPolicy"] = json!({"Name": name, "MaximumRetryCount": retries});
            super::restart::validate(&hc)
                .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        }
        // Validate the whole merged HostConfig the way create does, and take the cgroup part from it.
        let spec = crate::spec::validate_host_config(&c.id, &["sh".to_string()], &[], &hc)
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        if c.state.running {
            let mut res = spec["linux"]["resources"].clone();
            if let Some(o) = res.as_object_mut() {
                // Device rules are not updatable; re-writing them would only race with the container.
                o.remove("devices");
            }
            if pids_cleared {
                res["pids"] = json!({"limit": -1});
            }
            if let Some(r) = req["MemoryReservation"].as_i64().filter(|r| *r > 0) {
                if res["memory"].is_null() {
                    res["memory"] = json!({});
                }
                res["memory"]["reservation"] = json!(r);
            }
            if let Some(w) = req["BlkioWeight"].as_u64().filter(|w| *w > 0) {
                res["blockIO"] = json!({"weight": w});
            }
            let r: oci_spec::runtime::LinuxResources =
                serde_json::from_value(res).map_err(internal)?;
            container_cgroup(&c.id)?.apply(&r).map_err(|e| {
                EngineError::Internal(format!("Cannot update container {}: {e}", c.id))
            })?;
        }
        let c = self.update(&c.id, |c| c.host_config = hc)?;
        self.container_event(&c, "update", json!({}));
        Ok(Vec::new())
    }
}
