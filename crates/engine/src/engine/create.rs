//! `POST /containers/create`: validates the request, resolves the image, names the container, plans its
//! volumes and writes its records (outside the table lock: the name is reserved while the files are written).

use std::fs;

use serde_json::{json, Value};

use super::{health, internal, restart, volumes, Engine, EngineError, Result, DEFAULT_PATH};
use crate::images::ImageError;
use crate::names;
use crate::record::{now_rfc3339, Container, State};

impl Engine {
    /// `POST /containers/create`: returns the new id and warnings.
    pub fn create(
        &self,
        name: Option<&str>,
        mut config: Value,
        mut hc: Value,
        endpoints: Value,
    ) -> Result<(String, Vec<String>)> {
        if !config.is_object() {
            return Err(EngineError::InvalidParameter(
                "config cannot be empty in order to create a container".into(),
            ));
        }
        if !hc.is_object() {
            hc = json!({});
        }
        let image_ref = config["Image"].as_str().unwrap_or("").to_string();
        if image_ref.is_empty() {
            return Err(EngineError::InvalidParameter(
                "No image was specified".into(),
            ));
        }
        let img = self.images.resolve(&image_ref).map_err(|e| match e {
            ImageError::NotFound(_) => EngineError::NoSuchImage(
                crate::images::normalize(&image_ref).unwrap_or_else(|_| image_ref.clone()),
            ),
            other => other.into(),
        })?;
        let id = names::new_id();
        let ic = img.container_config().clone();
        // Merge the image's config under the request's, like docker does at create time.
        let user_entrypoint = config["Entrypoint"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if !user_entrypoint {
            config["Entrypoint"] = ic["Entrypoint"].clone();
        }
        let has_cmd = config["Cmd"].as_array().is_some_and(|a| !a.is_empty());
        if !has_cmd && !user_entrypoint {
            config["Cmd"] = ic["Cmd"].clone();
        }
        let mut env: Vec<String> = Vec::new();
        for e in ic["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(config["Env"].as_array().into_iter().flatten())
        {
            if let Some(e) = e.as_str() {
                let key = e.split('=').next().unwrap_or(e);
                env.retain(|x| x.split('=').next() != Some(key));
                env.push(e.to_string());
            }
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        config["Env"] = json!(env);
        for (k, default) in [
            ("WorkingDir", json!("")),
            ("User", json!("")),
            ("StopSignal", Value::Null),
        ] {
            if config[k].as_str().is_none_or(|s| s.is_empty()) {
                config[k] = if ic[k].is_null() {
                    default
                } else {
                    ic[k].clone()
                };
            }
        }
        let mut labels = ic["Labels"].as_object().cloned().unwrap_or_default();
        labels.extend(config["Labels"].as_object().cloned().unwrap_or_default());
        config["Labels"] = json!(labels);
        health::merge(&mut config, &ic);
        health::validate(&config)?;
        // `--network container:x` takes x's hostname at each start, so none is made up for it.
        let joins_net = self.netmode_validate(&config, &hc, &endpoints)?;
        if joins_net {
            config["Hostname"] = json!("");
        } else if config["Hostname"].as_str().is_none_or(|s| s.is_empty()) {
            config["Hostname"] = json!(names::short(&id));
        }
        if config["Domainname"].is_null() {
            config["Domainname"] = json!("");
        }
        if let Some(obj) = config.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        let mut argv: Vec<String> = Vec::new();
        for k in ["Entrypoint", "Cmd"] {
            argv.extend(
                config[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from)),
            );
        }
        if argv.is_empty() {
            return Err(EngineError::InvalidParameter("no command specified".into()));
        }
        // HostConfig defaults as docker fills them.
        let nm = hc["NetworkMode"].as_str().unwrap_or("");
        if nm.is_empty() || nm == "default" {
            hc["NetworkMode"] = json!("bridge");
        }
        let networks = self.net_validate(&hc, &endpoints)?;
        if hc["LogConfig"]["Type"]
            .as_str()
            .is_none_or(|s| s.is_empty())
        {
            hc["LogConfig"] = json!({"Type": "json-file", "Config": hc["LogConfig"]["Config"].as_object().cloned().unwrap_or_default()});
        }
        if hc["LogConfig"]["Type"] != "json-file" {
            return Err(EngineError::InvalidParameter(format!(
                "logging driver {} is not supported",
                hc["LogConfig"]["Type"]
            )));
        }
        if hc["RestartPolicy"]["Name"]
            .as_str()
            .is_none_or(|s| s.is_empty())
        {
            hc["RestartPolicy"] = json!({"Name": "no", "MaximumRetryCount": 0});
        }
        restart::validate(&hc).map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        // Validate the resource/security parts now, so bad input fails at create, not start.
        crate::spec::validate_host_config(&id, &argv, &env, &hc)
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        volumes::merge_image_volumes(&mut config, &ic);
        let (mount_points, needed_volumes) = self.plan_mounts(&config, &hc, &ic)?;
        let dir = Container::dir(&self.cfg.data_root, &id);
        // The name is reserved under the table lock, the files are written without it: they cost inode
        // creations and fsyncs that would stall every other request (and every parallel `run`) meanwhile.
        let t = self.table();
        let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        let taken = |n: &str| {
            t.values()
                .find(|c| c.short_name() == n)
                .map(|c| c.id.clone())
                .or_else(|| creating.get(n).cloned())
        };
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n =
                    names::validate(n).map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
                if let Some(other) = taken(&n) {
                    return Err(EngineError::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => {
                let mut retry = 0;
                loop {
                    let n = names::random_name(retry);
                    if taken(&n).is_none() {
                        break n;
                    }
                    retry += 1;
                }
            }
        };
        creating.insert(name.clone(), id.clone());
        drop(creating);
        drop(t);
        let unreserve = || {
            let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            creating.remove(&name);
        };
        let layer = match self
            .images
            .container_lower_dirs(&img)
            .map_err(EngineError::from)
            .and_then(|l| {
                berth_storage::RwLayer::new(&self.cfg.data_root, &id, l).map_err(internal)
            }) {
            Ok(l) => l,
            Err(e) => {
                unreserve();
                return Err(e);
            }
        };
        if let Err(e) = fs::create_dir_all(&dir)
            .map_err(internal)
            .and_then(|()| layer.create().map_err(internal))
        {
            unreserve();
            let _ = layer.remove();
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        let c = Container {
            id: id.clone(),
            created: now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            state: State::default(),
            image: img.id.clone(),
            name: format!("/{name}"),
            restart_count: 0,
            has_been_manually_stopped: false,
            driver: "overlay2".into(),
            platform: "linux".into(),
            log_path: dir.join(format!("{id}-json.log")).display().to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            exec_ids: vec![],
            monitor_pid: 0,
            exits: 0,
            networks,
            mount_points,
            host_config: hc,
        };
        if let Err(e) = c.save(&self.cfg.data_root, true) {
            unreserve();
            let _ = layer.remove();
            let _ = fs::remove_dir_all(&dir);
            return Err(internal(e));
        }
        self.container_event(&c, "create", json!({}));
        {
            let mut t = self.table();
            t.insert(id.clone(), c);
            unreserve();
        }
        self.notify();
        // After the insert: from now on the volumes count as in use, so a prune cannot take them.
        if let Err(e) = self.create_needed_volumes(needed_volumes) {
            log::error!("container {id}: creating its volumes: {e}");
        }
        Ok((id, Vec::new()))
    }
}
