//! A container's mounts, docker's way: `HostConfig.Binds` (`-v`), `HostConfig.Mounts` (`--mount`),
//! `HostConfig.Tmpfs` (`--tmpfs`), `HostConfig.VolumesFrom` and the image's / request's `Config.Volumes`
//! (anonymous volumes) are turned into [`MountPoint`]s at create time (stored in the container record, docker's
//! `MountPoints`), and into OCI mounts at every start.
//!
//! Bind sources are host paths of the user's choosing; destinations are only ever passed to the runtime in
//! `config.json`, which resolves them inside the rootfs without following symlinks out of it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Errors in mount specifications (docker's messages where it has them).
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A `-v` spec that does not parse.
    #[error("invalid volume specification: '{0}'")]
    Spec(String),
    /// A bad `:mode` suffix.
    #[error("invalid mode: {0}")]
    Mode(String),
    /// A `--mount` or path problem.
    #[error("invalid mount config for type \"{0}\": {1}")]
    Config(String, String),
    /// Two mounts on one destination.
    #[error("Duplicate mount point: {0}")]
    Duplicate(String),
    /// A volume name docker would refuse.
    #[error("{0}")]
    Volume(String),
}

/// One mount of a container, as docker records it (`MountPoints` in config.v2.json) plus what berth needs to
/// re-make it at every start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub typ: String,
    /// Volume name (volumes only).
    #[serde(default)]
    pub name: String,
    /// Host path: the bind source, or the volume's `_data`.
    #[serde(default)]
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// `local` for volumes.
    #[serde(default)]
    pub driver: String,
    /// The `-v` mode string (`ro`, `z`, ...) as docker shows it.
    #[serde(default)]
    pub mode: String,
    /// Read-write.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Bind propagation (`rprivate` by default for binds, empty for volumes).
    #[serde(default)]
    pub propagation: String,
    /// berth: fill an empty volume from the image's content at the destination (docker's CopyData).
    #[serde(default)]
    pub copy_data: bool,
    /// berth: create a missing bind source as a directory (`-v`, not `--mount`).
    #[serde(default)]
    pub create_source: bool,
    /// berth: tmpfs mount options (`size=`, `mode=`).
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
}

impl MountPoint {
    /// docker's `MountPoint` object for inspect and `ps`.
    pub fn to_api(&self) -> Value {
        let mut v = json!({
            "Type": self.typ,
            "Source": self.source,
            "Destination": self.destination,
            "Mode": self.mode,
            "RW": self.rw,
            "Propagation": self.propagation,
        });
        if self.typ == "volume" {
            v["Name"] = json!(self.name);
            v["Driver"] = json!(self.driver);
        }
        v
    }
}

/// A volume the container needs that may not exist yet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NeededVolume {
    /// Its name.
    pub name: String,
    /// Anonymous (gets docker's anonymous label when created).
    pub anonymous: bool,
    /// Labels from `--mount volume-label=`.
    pub labels: BTreeMap<String, String>,
    /// Driver options from `--mount volume-opt=`.
    pub options: BTreeMap<String, String>,
}

/// Lexically cleans an absolute container or host path (`//a/./b/` → `/a/b`); `..` is kept out by refusing it.
pub fn clean_abs(p: &str, typ: &str) -> Result<String, MountError> {
    if !p.starts_with('/') {
        return Err(MountError::Config(
            typ.into(),
            format!("invalid mount path: '{p}' mount path must be absolute"),
        ));
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out.display().to_string())
}

fn dest(p: &str, typ: &str) -> Result<String, MountError> {
    let d = clean_abs(p, typ)?;
    if d == "/" {
        return Err(MountError::Config(
            typ.into(),
            "invalid specification: destination can't be '/'".into(),
        ));
    }
    Ok(d)
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// A parsed `-v` mode: (read-only, propagation, nocopy).
fn parse_mode(mode: &str) -> Result<(bool, Option<String>, bool), MountError> {
    let (mut rw, mut prop, mut label, mut nocopy) = (None, None, false, false);
    for m in mode.split(',') {
        let bad = || MountError::Mode(mode.to_string());
        match m {
            "ro" | "rw" if rw.is_none() => rw = Some(m == "rw"),
            "z" | "Z" if !label => label = true,
            "nocopy" if !nocopy => nocopy = true,
            p if PROPAGATIONS.contains(&p) && prop.is_none() => prop = Some(p.to_string()),
            _ => return Err(bad()),
        }
    }
    Ok((!rw.unwrap_or(true), prop, nocopy))
}

fn valid_mode(mode: &str) -> bool {
    parse_mode(mode).is_ok()
}

/// Parses one `HostConfig.Binds` entry (`src:dst[:mode]`, `name:dst[:mode]` or `dst`). A named or anonymous
/// volume is added to `needed`.
pub fn parse_bind(
    raw: &str,
    volume_root: &Path,
    needed: &mut Vec<NeededVolume>,
) -> Result<MountPoint, MountError> {
    let parts: Vec<&str> = raw.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(MountError::Spec(raw.into()));
    }
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [d, m] if valid_mode(m) && d.starts_with('/') => ("", *d, *m),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(MountError::Spec(raw.into())),
    };
    let (ro, prop, nocopy) = if mode.is_empty() {
        (false, None, false)
    } else {
        parse_mode(mode)?
    };
    let typ = if src.starts_with('/') {
        "bind"
    } else {
        "volume"
    };
    let destination = dest(dst, typ)?;
    if typ == "bind" {
        return Ok(MountPoint {
            typ: "bind".into(),
            source: clean_abs(src, "bind")?,
            destination,
            mode: mode.into(),
            rw: !ro,
            propagation: prop.unwrap_or_else(|| "rprivate".into()),
            create_source: true,
            ..Default::default()
        });
    }
    let anonymous = src.is_empty();
    let name = if anonymous {
        crate::names::new_id()
    } else {
        src.to_string()
    };
    check_volume_name(&name)?;
    needed.push(NeededVolume {
        name: name.clone(),
        anonymous,
        ..Default::default()
    });
    Ok(MountPoint {
        typ: "volume".into(),
        source: volume_root.join(&name).join("_data").display().to_string(),
        name,
        destination,
        driver: "local".into(),
        mode: if mode.is_empty() && !anonymous {
            "z".into()
        } else {
            mode.into()
        },
        rw: !ro,
        copy_data: !nocopy,
        ..Default::default()
    })
}

fn check_volume_name(name: &str) -> Result<(), MountError> {
    if berth_storage::volumes::valid_name(name) {
        Ok(())
    } else {
        Err(MountError::Volume(
            berth_storage::volumes::VolumeError::InvalidName(name.into()).to_string(),
        ))
    }
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses one `HostConfig.Mounts` object (docker's `mount.Mount`).
pub fn parse_mount(
    m: &Value,
    volume_root: &Path,
    needed: &mut Vec<NeededVolume>,
) -> Result<MountPoint, MountError> {
    let typ = m["Type"].as_str().unwrap_or("");
    let src = m["Source"].as_str().unwrap_or("");
    let target = m["Target"].as_str().unwrap_or("");
    let ro = m["ReadOnly"].as_bool().unwrap_or(false);
    let cfg = |msg: &str| MountError::Config(typ.into(), msg.into());
    if target.is_empty() {
        return Err(cfg("field Target must not be empty"));
    }
    let destination = dest(target, typ)?;
    match typ {
        "bind" => {
            if src.is_empty() {
                return Err(cfg("field Source must not be empty"));
            }
            let source = clean_abs(src, typ)?;
            let create = m["BindOptions"]["CreateMountpoint"]
                .as_bool()
                .unwrap_or(false);
            if !create && !Path::new(&source).exists() {
                return Err(cfg(&format!("bind source path does not exist: {source}")));
            }
            let prop = m["BindOptions"]["Propagation"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or("rprivate");
            if !PROPAGATIONS.contains(&prop) {
                return Err(cfg(&format!("invalid propagation mode: {prop}")));
            }
            Ok(MountPoint {
                typ: "bind".into(),
                source,
                destination,
                rw: !ro,
                propagation: prop.into(),
                create_source: create,
                ..Default::default()
            })
        }
        "volume" => {
            let anonymous = src.is_empty();
            let name = if anonymous {
                crate::names::new_id()
            } else {
                src.to_string()
            };
            check_volume_name(&name)?;
            let vo = &m["VolumeOptions"];
            if vo["Subpath"].as_str().is_some_and(|s| !s.is_empty()) {
                return Err(cfg("volume subpaths are not supported"));
            }
            let driver = vo["DriverConfig"]["Name"].as_str().unwrap_or("");
            if !driver.is_empty() && driver != "local" {
                return Err(cfg(&format!("volume driver {driver} is not supported")));
            }
            needed.push(NeededVolume {
                name: name.clone(),
                anonymous,
                labels: str_map(&vo["Labels"]),
                options: str_map(&vo["DriverConfig"]["Options"]),
            });
            Ok(MountPoint {
                typ: "volume".into(),
                source: volume_root.join(&name).join("_data").display().to_string(),
                name,
                destination,
                driver: "local".into(),
                rw: !ro,
                copy_data: !vo["NoCopy"].as_bool().unwrap_or(false),
                ..Default::default()
            })
        }
        "tmpfs" => {
            if !src.is_empty() {
                return Err(cfg("field Source must not be specified"));
            }
            let mut opts = Vec::new();
            if let Some(s) = m["TmpfsOptions"]["SizeBytes"].as_i64().filter(|s| *s > 0) {
                opts.push(format!("size={s}"));
            }
            if let Some(mode) = m["TmpfsOptions"]["Mode"].as_u64().filter(|m| *m > 0) {
                opts.push(format!("mode={:o}", mode & 0o7777));
            }
            Ok(MountPoint {
                typ: "tmpfs".into(),
                destination,
                rw: !ro,
                tmpfs_options: opts,
                ..Default::default()
            })
        }
        "" => Err(MountError::Config(typ.into(), "mount type unknown".into())),
        _ => Err(cfg("mount type unknown")),
    }
}

/// A `--volumes-from` entry: (container, Some(read-write) when `:rw`/`:ro` is given).
pub fn parse_volumes_from(spec: &str) -> Result<(String, Option<bool>), MountError> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((c, "ro")) => Ok((c.to_string(), Some(false))),
        Some((c, "rw")) => Ok((c.to_string(), Some(true))),
        Some((_, m)) => Err(MountError::Mode(m.to_string())),
    }
}

/// The tmpfs options docker uses for `--tmpfs` (`noexec,nosuid,nodev` unless overridden, then the user's).
pub fn tmpfs_opts(user: &str) -> Vec<String> {
    let mut o: Vec<String> = ["nosuid", "nodev", "noexec"].map(String::from).to_vec();
    o.extend(user.split(',').filter(|s| !s.is_empty()).map(String::from));
    o
}

/// The OCI mount for a mount point (volumes with driver options are handled by the engine).
pub fn oci_mount(mp: &MountPoint, source: &str) -> Value {
    let mut opts: Vec<String> = match mp.typ.as_str() {
        "tmpfs" => {
            let mut o = tmpfs_opts("");
            o.extend(mp.tmpfs_options.iter().cloned());
            o
        }
        _ => vec![
            "rbind".into(),
            if mp.propagation.is_empty() {
                "rprivate".into()
            } else {
                mp.propagation.clone()
            },
        ],
    };
    if !mp.rw {
        opts.push("ro".into());
    }
    let typ = if mp.typ == "tmpfs" { "tmpfs" } else { "bind" };
    json!({"destination": mp.destination, "type": typ, "source": source, "options": opts})
}

/// Sorts OCI mounts so that a parent directory is mounted before the mounts below it (docker sorts by the
/// number of path components).
pub fn sort_mounts(mounts: &mut [Value]) {
    mounts.sort_by_key(|m| {
        Path::new(m["destination"].as_str().unwrap_or("/"))
            .components()
            .count()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        let root = Path::new("/d/volumes");
        let mut need = Vec::new();
        let b = parse_bind("/host//x/:/data:ro", root, &mut need).unwrap();
        assert_eq!((b.typ.as_str(), b.source.as_str()), ("bind", "/host/x"));
        assert_eq!(
            (b.destination.as_str(), b.rw, b.mode.as_str()),
            ("/data", false, "ro")
        );
        assert!(need.is_empty());
        let v = parse_bind("vol1:/data", root, &mut need).unwrap();
        assert_eq!(v.typ, "volume");
        assert_eq!(v.source, "/d/volumes/vol1/_data");
        assert!(v.rw && v.copy_data && !need[0].anonymous);
        let a = parse_bind("/anon", root, &mut need).unwrap();
        assert!(need[1].anonymous && a.name.len() == 64 && a.destination == "/anon");
        let n = parse_bind("vol2:/x:ro,nocopy", root, &mut need).unwrap();
        assert!(!n.rw && !n.copy_data);
        for bad in [
            "",
            "a::b",
            "/a:/b:c:d",
            "/a:/b:bogus",
            "/a:rel",
            "a!:/x",
            "/a:/",
        ] {
            assert!(parse_bind(bad, root, &mut need).is_err(), "{bad}");
        }
        assert!(parse_bind("/a:/b:ro,rw", root, &mut need).is_err());
    }

    #[test]
    fn mounts() {
        let root = Path::new("/d/volumes");
        let mut need = Vec::new();
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().display().to_string();
        let b = parse_mount(
            &json!({"Type": "bind", "Source": src, "Target": "/x", "ReadOnly": true}),
            root,
            &mut need,
        )
        .unwrap();
        assert!(!b.rw && !b.create_source && b.propagation == "rprivate");
        let e = parse_mount(
            &json!({"Type": "bind", "Source": "/nonexistent/berth", "Target": "/x"}),
            root,
            &mut need,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/berth"
        );
        let v = parse_mount(
            &json!({"Type": "volume", "Source": "vv", "Target": "/v",
                    "VolumeOptions": {"DriverConfig": {"Options": {"type": "tmpfs"}}, "Labels": {"a": "b"}}}),
            root,
            &mut need,
        )
        .unwrap();
        assert_eq!(v.name, "vv");
        assert_eq!(need[0].options["type"], "tmpfs");
        assert_eq!(need[0].labels["a"], "b");
        let t = parse_mount(
            &json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770}}),
            root,
            &mut need,
        )
        .unwrap();
        assert_eq!(t.tmpfs_options, vec!["size=1048576", "mode=1770"]);
        let o = oci_mount(&t, "tmpfs");
        assert_eq!(o["type"], "tmpfs");
        assert!(parse_mount(&json!({"Type": "npipe", "Target": "/x"}), root, &mut need).is_err());
        assert!(parse_mount(
            &json!({"Type": "tmpfs", "Source": "a", "Target": "/x"}),
            root,
            &mut need
        )
        .is_err());
    }

    #[test]
    fn volumes_from_and_order() {
        assert_eq!(parse_volumes_from("c").unwrap(), ("c".into(), None));
        assert_eq!(
            parse_volumes_from("c:ro").unwrap(),
            ("c".into(), Some(false))
        );
        assert!(parse_volumes_from("c:zz").is_err());
        let mut m = vec![
            json!({"destination": "/a/b/c"}),
            json!({"destination": "/a"}),
        ];
        sort_mounts(&mut m);
        assert_eq!(m[0]["destination"], "/a");
        assert_eq!(
            tmpfs_opts("size=1m,exec"),
            vec!["nosuid", "nodev", "noexec", "size=1m", "exec"]
        );
    }
}
