//! Volumes on the daemon side: the `/volumes` endpoints over `berth_storage::volumes`, the mount plan of a
//! new container (`Binds`, `Mounts`, `Tmpfs`, `VolumesFrom`, `Config.Volumes`), the OCI mounts of every start
//! (with copy-up of empty volumes), and `rm -v`. Who uses a volume is derived from the container records.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;

use berth_storage::volumes::{Volume, VolumeError, Volumes, ANONYMOUS_LABEL};
use serde_json::{json, Value};

use super::{internal, Engine, EngineError, Result};
use crate::mounts::{self, MountPoint, NeededVolume};
use crate::query::{check_filters, Filters};
use crate::record::Container;

/// Serializes volume creation and removal against the in-use check (one engine per process).
static VOLUME_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    VOLUME_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

impl From<VolumeError> for EngineError {
    fn from(e: VolumeError) -> Self {
        match e {
            VolumeError::NotFound(_) => Self::NotFound(e.to_string()),
            VolumeError::InvalidName(_) | VolumeError::Invalid(..) => {
                Self::InvalidParameter(e.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

fn created_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn map_or_null(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        json!(m)
    }
}

fn label_match(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

/// docker's create-time merge: the image's `Volumes` join the request's `Config.Volumes` (inspect shows both).
pub(super) fn merge_image_volumes(config: &mut Value, image_config: &Value) {
    let Some(img) = image_config["Volumes"]
        .as_object()
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    let mut vols = config["Volumes"].as_object().cloned().unwrap_or_default();
    for (k, v) in img {
        vols.entry(k.clone()).or_insert_with(|| v.clone());
    }
    config["Volumes"] = Value::Object(vols);
}

impl Engine {
    fn volume_store(&self) -> Result<Volumes> {
        Ok(Volumes::open(&self.cfg.data_root)?)
    }

    /// docker's `Volume` object.
    fn volume_json(&self, store: &Volumes, v: &Volume) -> Value {
        json!({
            "CreatedAt": v.created_at,
            "Driver": v.driver,
            "Labels": map_or_null(&v.labels),
            "Mountpoint": store.mountpoint(&v.name),
            "Name": v.name,
            "Options": map_or_null(&v.options),
            "Scope": "local",
        })
    }

    /// Ids of the containers whose mounts use volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .table()
            .values()
            .filter(|c| {
                c.mount_points
                    .iter()
                    .any(|m| m.typ == "volume" && m.name == name)
            })
            .map(|c| c.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// `POST /volumes/create`. An empty name makes a random 64-hex one (not anonymous, as in docker).
    pub fn volume_create(
        &self,
        name: &str,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Value> {
        let store = self.volume_store()?;
        let name = if name.is_empty() {
            crate::names::new_id()
        } else {
            name.to_string()
        };
        let _g = lock();
        let existed = store.get(&name).is_ok();
        let v = store.create(&name, driver, labels, options, &created_now())?;
        if !existed {
            self.events
                .emit("volume", "create", &v.name, json!({"driver": v.driver}));
        }
        Ok(self.volume_json(&store, &v))
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        let store = self.volume_store()?;
        let v = store.get(name)?;
        Ok(self.volume_json(&store, &v))
    }

    /// `GET /volumes` with docker's filters (`dangling`, `name`, `label`, `driver`).
    pub fn volume_list(&self, f: &Filters) -> Result<Vec<Value>> {
        check_filters(f, &["dangling", "name", "label", "driver"])
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        let store = self.volume_store()?;
        let mut out = Vec::new();
        for v in store.list() {
            if let Some(d) = f.get("dangling").and_then(|d| d.first()) {
                let want = match d.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(EngineError::InvalidParameter(format!(
                            "invalid filter 'dangling={d}'"
                        )))
                    }
                };
                if self.volume_users(&v.name).is_empty() != want {
                    continue;
                }
            }
            if let Some(n) = f.get("name") {
                if !n.iter().any(|n| v.name.contains(n.as_str())) {
                    continue;
                }
            }
            if let Some(l) = f.get("label") {
                if !l.iter().all(|l| label_match(&v.labels, l)) {
                    continue;
                }
            }
            if let Some(d) = f.get("driver") {
                if !d.contains(&v.driver) {
                    continue;
                }
            }
            out.push(self.volume_json(&store, &v));
        }
        Ok(out)
    }

    /// `DELETE /volumes/{name}`: refused with docker's 409 while a container uses it; `force` makes a missing
    /// volume not an error.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.volume_remove_ignoring(name, force, None)
    }

    /// [`Self::volume_remove`], not counting container `ignore` as a user (it is being removed).
    fn volume_remove_ignoring(&self, name: &str, force: bool, ignore: Option<&str>) -> Result<()> {
        let store = self.volume_store()?;
        let _g = lock();
        match store.get(name) {
            Err(VolumeError::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let mut users = self.volume_users(name);
        users.retain(|u| Some(u.as_str()) != ignore);
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        store.remove(name)?;
        self.events
            .emit("volume", "destroy", name, json!({"driver": "local"}));
        Ok(())
    }

    /// `POST /volumes/prune`: unused volumes; only anonymous ones unless `all=true` (docker 23+).
    pub fn volume_prune(&self, f: &Filters) -> Result<(Vec<String>, u64)> {
        check_filters(f, &["label", "label!", "all"])
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        let all = f
            .get("all")
            .and_then(|a| a.first())
            .is_some_and(|a| a == "true" || a == "1");
        let store = self.volume_store()?;
        let (mut names, mut space) = (Vec::new(), 0);
        for v in store.list() {
            if !all && !v.anonymous() {
                continue;
            }
            if let Some(l) = f.get("label") {
                if !l.iter().all(|l| label_match(&v.labels, l)) {
                    continue;
                }
            }
            if let Some(l) = f.get("label!") {
                if l.iter().any(|l| label_match(&v.labels, l)) {
                    continue;
                }
            }
            let size = store.size(&v);
            if self.volume_remove(&v.name, false).is_ok() {
                names.push(v.name);
                space += size;
            }
        }
        Ok((names, space))
    }

    /// The `Volumes` of `GET /system/df`: each volume with `UsageData` (size, number of containers using it).
    pub fn volume_df(&self) -> Vec<Value> {
        let Ok(store) = self.volume_store() else {
            return Vec::new();
        };
        store
            .list()
            .iter()
            .map(|v| {
                let mut j = self.volume_json(&store, v);
                j["UsageData"] =
                    json!({"Size": store.size(v), "RefCount": self.volume_users(&v.name).len()});
                j
            })
            .collect()
    }

    /// docker's `Mounts` of a container (inspect and `ps`).
    pub fn mounts_json(&self, c: &Container) -> Value {
        Value::Array(c.mount_points.iter().map(MountPoint::to_api).collect())
    }

    /// Plans a new container's mounts: `VolumesFrom` first, then `Binds`, `Mounts`, and anonymous volumes for
    /// the image's and the request's `Volumes` not mounted otherwise. Returns the mount points and the volumes
    /// to create once the container exists.
    pub(super) fn plan_mounts(
        &self,
        config: &Value,
        hc: &Value,
        image_config: &Value,
    ) -> Result<(Vec<MountPoint>, Vec<NeededVolume>)> {
        let bad = |e: mounts::MountError| EngineError::InvalidParameter(e.to_string());
        let root = self.cfg.data_root.join("volumes");
        let mut need = Vec::new();
        let mut by_dest: BTreeMap<String, MountPoint> = BTreeMap::new();
        for spec in hc["VolumesFrom"].as_array().into_iter().flatten() {
            let spec = spec.as_str().unwrap_or("");
            let (ctr, rw) = mounts::parse_volumes_from(spec).map_err(bad)?;
            let other = self.get(&ctr)?;
            for mp in &other.mount_points {
                // As moby: `:rw` cannot lift a read-only mount, the mode string is not inherited and the data
                // is never copied up again.
                let mp = MountPoint {
                    rw: mp.rw && rw.unwrap_or(true),
                    mode: String::new(),
                    copy_data: false,
                    ..mp.clone()
                };
                by_dest.insert(mp.destination.clone(), mp);
            }
        }
        let mut explicit: Vec<String> = Vec::new();
        let mut add = |mp: MountPoint, by_dest: &mut BTreeMap<String, MountPoint>| {
            if explicit.contains(&mp.destination) {
                return Err(bad(mounts::MountError::Duplicate(mp.destination)));
            }
            explicit.push(mp.destination.clone());
            by_dest.insert(mp.destination.clone(), mp);
            Ok(())
        };
        for b in hc["Binds"].as_array().into_iter().flatten() {
            let mp = mounts::parse_bind(b.as_str().unwrap_or(""), &root, &mut need).map_err(bad)?;
            add(mp, &mut by_dest)?;
        }
        for m in hc["Mounts"].as_array().into_iter().flatten() {
            let mp = mounts::parse_mount(m, &root, &mut need).map_err(bad)?;
            add(mp, &mut by_dest)?;
        }
        let mut tmpfs = Vec::new();
        for d in hc["Tmpfs"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let d = mounts::clean_abs(d, "tmpfs").map_err(bad)?;
            if explicit.contains(&d) {
                return Err(bad(mounts::MountError::Duplicate(d)));
            }
            tmpfs.push(d);
        }
        for vols in [&image_config["Volumes"], &config["Volumes"]] {
            for d in vols.as_object().into_iter().flatten().map(|(k, _)| k) {
                let d = mounts::clean_abs(d, "volume").map_err(bad)?;
                if d == "/" || by_dest.contains_key(&d) || tmpfs.contains(&d) {
                    continue;
                }
                let mp = mounts::parse_bind(&d, &root, &mut need).map_err(bad)?;
                by_dest.insert(d, mp);
            }
        }
        for n in &need {
            berth_storage::volumes::validate(&n.name, "", &n.options)?;
        }
        Ok((by_dest.into_values().collect(), need))
    }

    /// Creates the volumes a new container needs (named ones only if missing).
    pub(super) fn create_needed_volumes(&self, need: Vec<NeededVolume>) -> Result<()> {
        let store = self.volume_store()?;
        let _g = lock();
        for n in need {
            if store.get(&n.name).is_ok() {
                continue;
            }
            let mut labels = n.labels;
            if n.anonymous {
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
            }
            let v = store.create(&n.name, "", labels, n.options, &created_now())?;
            self.events
                .emit("volume", "create", &v.name, json!({"driver": v.driver}));
        }
        Ok(())
    }

    /// Adds the container's mounts to its OCI spec at start: bind sources created for `-v`, empty volumes filled
    /// from the image (copy-up), `--tmpfs`. User mounts replace default mounts on the same destination.
    pub(super) fn add_user_mounts(
        &self,
        c: &Container,
        rootfs: &Path,
        spec: &mut Value,
    ) -> Result<()> {
        let store = self.volume_store()?;
        let mut user: Vec<Value> = Vec::new();
        for mp in &c.mount_points {
            match mp.typ.as_str() {
                "bind" => {
                    let src = Path::new(&mp.source);
                    if !src.exists() {
                        if !mp.create_source {
                            return Err(EngineError::InvalidParameter(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                mp.source
                            )));
                        }
                        fs::create_dir_all(src).map_err(|e| {
                            internal(format!("creating bind source {}: {e}", mp.source))
                        })?;
                    }
                    user.push(mounts::oci_mount(mp, &mp.source));
                }
                "volume" => {
                    let v = {
                        let _g = lock();
                        match store.get(&mp.name) {
                            Ok(v) => v,
                            // Removed between create and start (or by hand): make it again, as a fresh volume.
                            Err(VolumeError::NotFound(_)) => store.create(
                                &mp.name,
                                "",
                                BTreeMap::new(),
                                BTreeMap::new(),
                                &created_now(),
                            )?,
                            Err(e) => return Err(e.into()),
                        }
                    };
                    user.push(self.volume_mount(&store, &v, mp, rootfs)?);
                }
                "tmpfs" => user.push(mounts::oci_mount(mp, "tmpfs")),
                other => {
                    return Err(internal(format!("unknown mount type {other:?}")));
                }
            }
        }
        for (d, o) in c.host_config["Tmpfs"].as_object().into_iter().flatten() {
            let opts = mounts::tmpfs_opts(o.as_str().unwrap_or(""));
            user.push(
                json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": opts}),
            );
        }
        mounts::sort_mounts(&mut user);
        if let Some(list) = spec["mounts"].as_array_mut() {
            list.retain(|m| !user.iter().any(|u| u["destination"] == m["destination"]));
            list.extend(user);
        }
        Ok(())
    }

    /// The OCI mount of one volume: `_data` (filled from the image if empty), or the local driver's tmpfs/bind.
    fn volume_mount(
        &self,
        store: &Volumes,
        v: &Volume,
        mp: &MountPoint,
        rootfs: &Path,
    ) -> Result<Value> {
        let o = &v.options;
        let typ = o.get("type").map(String::as_str).unwrap_or("");
        let dev = o.get("device").map(String::as_str).unwrap_or("");
        let extra: Vec<String> = o
            .get("o")
            .map(|s| {
                s.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if v.has_mount_options() {
            let bind = extra.iter().any(|x| x == "bind" || x == "rbind");
            let mut opts: Vec<String> = extra
                .into_iter()
                .filter(|x| x != "bind" && x != "rbind")
                .collect();
            if !mp.rw {
                opts.push("ro".into());
            }
            if bind {
                opts.insert(0, "rbind".into());
                opts.push("rprivate".into());
                return Ok(
                    json!({"destination": mp.destination, "type": "bind", "source": dev, "options": opts}),
                );
            }
            return Ok(
                json!({"destination": mp.destination, "type": typ, "source": dev, "options": opts}),
            );
        }
        let data = store.mountpoint(&v.name);
        // Under the lock: two containers starting on one new volume must not both copy into it.
        let _g = lock();
        if mp.copy_data && store.is_empty(&v.name) {
            berth_storage::copyup::copy_up(rootfs, Path::new(&mp.destination), &data)
                .map_err(|e| internal(format!("volume {}: {e}", v.name)))?;
        }
        Ok(mounts::oci_mount(mp, &data.display().to_string()))
    }

    /// `rm -v` and `--rm`: removes the container's anonymous volumes that no other container uses (container
    /// `owner`, being removed, does not count). Named volumes stay.
    pub fn remove_anonymous_volumes(&self, mount_points: &[MountPoint], owner: Option<&str>) {
        let Ok(store) = self.volume_store() else {
            return;
        };
        for mp in mount_points.iter().filter(|m| m.typ == "volume") {
            if store.get(&mp.name).is_ok_and(|v| v.anonymous()) {
                if let Err(e) = self.volume_remove_ignoring(&mp.name, true, owner) {
                    log::info!("keeping volume {}: {e}", mp.name);
                }
            }
        }
    }
}
