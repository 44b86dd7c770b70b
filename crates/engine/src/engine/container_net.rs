//! `--network container:<name|id>` and `--mac-address`: the checks docker makes at create (its
//! `validateNetMode` messages, word for word), and at start the join of the other container's network
//! namespace with its hostname, /etc/hosts and /etc/resolv.conf, as docker shares them.
//!
//! The joined-to container owns the network: no plan is written for the joining one (its monitor attaches and
//! detaches nothing), and when the joined-to container stops, its monitor removes its veth, so the joining
//! container is left with `lo` only, as with docker. As in docker 28, the joined-to container is looked up at
//! start, not create; starting while it is missing or not running fails with docker's messages.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{Engine, EngineError, Result};
use crate::record::Container;

/// The `<name|id>` of a `container:<name|id>` network mode.
pub(crate) fn joined_name(hc: &Value) -> Option<&str> {
    hc["NetworkMode"].as_str()?.strip_prefix("container:")
}

fn conflict(msg: &str) -> EngineError {
    EngineError::InvalidParameter(msg.to_string())
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        Value::Bool(b) => *b,
        _ => false,
    }
}

/// The MAC addresses a create asks for: Config.MacAddress (API < 1.44, berth's CLI) and every endpoint's.
fn requested_macs<'a>(config: &'a Value, endpoints: &'a Value) -> Vec<&'a str> {
    let mut out: Vec<&str> = config["MacAddress"].as_str().into_iter().collect();
    for ep in endpoints.as_object().into_iter().flatten() {
        out.extend(ep.1["MacAddress"].as_str());
    }
    out.retain(|m| !m.is_empty());
    out
}

impl Engine {
    /// Create-time checks of the network mode against the other settings (docker's `validateNetMode`) and of
    /// `--mac-address`. Returns whether the mode is `container:<x>`; like docker, `x` is looked up only at
    /// start (it may be created later).
    pub(super) fn netmode_validate(
        &self,
        config: &Value,
        hc: &Value,
        endpoints: &Value,
    ) -> Result<bool> {
        let macs = requested_macs(config, endpoints);
        for m in &macs {
            berth_network::normalize_mac(m)
                .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        }
        let mode = hc["NetworkMode"].as_str().unwrap_or("");
        let container = mode.starts_with("container:");
        if (container || mode == "host") && !macs.is_empty() {
            return Err(conflict(
                "conflicting options: mac-address and the network mode",
            ));
        }
        if !container {
            return Ok(false);
        }
        let name = joined_name(hc).unwrap_or("");
        if name.is_empty() {
            return Err(conflict(
                "invalid network mode: invalid container format container:<name|id>",
            ));
        }
        if non_empty(&config["Hostname"]) {
            return Err(conflict(
                "conflicting options: hostname and the network mode",
            ));
        }
        if non_empty(&hc["Links"]) {
            return Err(conflict("conflicting options: container type network can't be used with links. This would result in undefined behavior"));
        }
        if non_empty(&hc["Dns"]) {
            return Err(conflict("conflicting options: dns and the network mode"));
        }
        if non_empty(&hc["ExtraHosts"]) {
            return Err(conflict(
                "conflicting options: custom host-to-IP mapping and the network mode",
            ));
        }
        if non_empty(&hc["PortBindings"]) || non_empty(&hc["PublishAllPorts"]) {
            return Err(conflict(
                "conflicting options: port publishing and the container type network mode",
            ));
        }
        if non_empty(&config["ExposedPorts"]) {
            return Err(conflict(
                "conflicting options: port exposing and the container type network mode",
            ));
        }
        // The docker CLI keys its endpoint settings by the mode itself; any other key is another network.
        if endpoints
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k != mode))
        {
            return Err(conflict("container sharing network namespace with another container or host cannot be connected to any other network"));
        }
        Ok(true)
    }

    /// At start of a `container:<x>` container: `x` must be running; this container takes its hostname and
    /// its hosts/resolv.conf/hostname files (recorded, so inspect shows them as docker does), and the
    /// network namespace to join is returned. `None` for every other mode.
    pub(super) fn join_container_net(&self, c: Container) -> Result<(Container, Option<PathBuf>)> {
        let Some(name) = joined_name(&c.host_config).map(String::from) else {
            return Ok((c, None));
        };
        let other = self.get(&name).map_err(|e| {
            EngineError::Internal(format!("joining network namespace of container: {e}"))
        })?;
        if other.id == c.id {
            return Err(EngineError::Internal(
                "cannot join own network namespace".into(),
            ));
        }
        if !other.state.running || other.state.pid <= 0 {
            return Err(EngineError::Conflict(format!(
                "cannot join network namespace of a non running container: container {} is {}",
                other.short_name(),
                other.state.status
            )));
        }
        let netns = PathBuf::from(format!("/proc/{}/ns/net", other.state.pid));
        let c = self.update(&c.id, |c| {
            c.config["Hostname"] = other.config["Hostname"].clone();
            c.config["Domainname"] = other.config["Domainname"].clone();
            c.hostname_path = other.hostname_path.clone();
            c.hosts_path = other.hosts_path.clone();
            c.resolv_conf_path = other.resolv_conf_path.clone();
        })?;
        Ok((c, Some(netns)))
    }
}

/// Points the spec's network namespace at `path` (joined, not created), as the OCI runtime spec says.
pub(crate) fn set_netns_path(spec: &mut Value, path: &std::path::Path) {
    let Some(nss) = spec["linux"]["namespaces"].as_array_mut() else {
        return;
    };
    let entry = json!({"type": "network", "path": path.display().to_string()});
    match nss.iter_mut().find(|n| n["type"] == "network") {
        Some(n) => *n = entry,
        None => nss.push(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_path_replaces_the_new_namespace() {
        let mut spec = json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}});
        set_netns_path(&mut spec, std::path::Path::new("/proc/42/ns/net"));
        assert_eq!(
            spec["linux"]["namespaces"][1],
            json!({"type": "network", "path": "/proc/42/ns/net"})
        );
        assert_eq!(spec["linux"]["namespaces"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn macs_from_config_and_endpoints() {
        let cfg = json!({"MacAddress": "02:00:00:00:00:01"});
        let eps = json!({"n": {"MacAddress": "02:00:00:00:00:02"}, "m": {"MacAddress": ""}});
        assert_eq!(
            requested_macs(&cfg, &eps),
            vec!["02:00:00:00:00:01", "02:00:00:00:00:02"]
        );
        assert!(joined_name(&json!({"NetworkMode": "container:web"})) == Some("web"));
        assert!(joined_name(&json!({"NetworkMode": "bridge"})).is_none());
    }
}
