//! `--mount` specs (docker's CSV `key=value` form) → the API's `Mount` objects: bind, volume and tmpfs with
//! their options (`bind-propagation`, `volume-opt`, `volume-label`, `volume-nocopy`, `tmpfs-size`,
//! `tmpfs-mode`, ...), with docker's error messages for bad fields.

use serde_json::{json, Value};

use super::CliError;

fn bad(spec: &str, msg: &str) -> CliError {
    CliError::Msg(format!(
        "invalid argument \"{spec}\" for \"--mount\" flag: {msg}"
    ))
}

fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// Parses one `--mount type=bind,source=/a,target=/b,readonly` spec.
pub fn parse_mount(spec: &str) -> Result<Value, CliError> {
    let mut m = json!({"Type": "volume"});
    let (mut bind, mut vol, mut tmpfs) = (json!({}), json!({}), json!({}));
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let val = || {
            v.ok_or_else(|| {
                bad(
                    spec,
                    &format!("invalid field '{field}' must be a key=value pair"),
                )
            })
        };
        let flag = |what: &str| -> Result<bool, CliError> {
            truthy(v.unwrap_or("")).ok_or_else(|| {
                bad(
                    spec,
                    &format!("invalid value for {what}: {}", v.unwrap_or("")),
                )
            })
        };
        match k.as_str() {
            "type" => m["Type"] = json!(val()?),
            "source" | "src" => m["Source"] = json!(val()?),
            "target" | "destination" | "dst" => m["Target"] = json!(val()?),
            "readonly" | "ro" => m["ReadOnly"] = json!(flag(&k)?),
            "consistency" => m["Consistency"] = json!(val()?),
            "bind-propagation" => bind["Propagation"] = json!(val()?),
            "bind-nonrecursive" => bind["NonRecursive"] = json!(flag(&k)?),
            "volume-nocopy" => vol["NoCopy"] = json!(flag(&k)?),
            "volume-driver" => vol["DriverConfig"]["Name"] = json!(val()?),
            "volume-subpath" => vol["Subpath"] = json!(val()?),
            "volume-label" | "volume-opt" => {
                let kv = val()?;
                let (a, b) = kv.split_once('=').unwrap_or((kv, ""));
                if k == "volume-label" {
                    vol["Labels"][a] = json!(b);
                } else {
                    if !kv.contains('=') {
                        return Err(bad(
                            spec,
                            &format!("invalid volume-opt '{kv}': must be key=value"),
                        ));
                    }
                    vol["DriverConfig"]["Options"][a] = json!(b);
                }
            }
            "tmpfs-size" => {
                let s = val()?;
                let n = super::units::ram_in_bytes(s)
                    .map_err(|_| bad(spec, &format!("invalid value for tmpfs-size: {s}")))?;
                tmpfs["SizeBytes"] = json!(n);
            }
            "tmpfs-mode" => {
                let s = val()?;
                let n = u32::from_str_radix(s, 8)
                    .map_err(|_| bad(spec, &format!("invalid value for tmpfs-mode: {s}")))?;
                tmpfs["Mode"] = json!(n);
            }
            _ => return Err(bad(spec, &format!("unexpected key '{k}' in '{field}'"))),
        }
    }
    let typ = m["Type"].as_str().unwrap_or("").to_string();
    for (key, obj, owner) in [
        ("BindOptions", bind, "bind"),
        ("VolumeOptions", vol, "volume"),
        ("TmpfsOptions", tmpfs, "tmpfs"),
    ] {
        if obj.as_object().is_some_and(|o| !o.is_empty()) {
            if typ != owner {
                return Err(bad(
                    spec,
                    &format!("cannot mix '{owner}-*' options with mount type '{typ}'"),
                ));
            }
            m[key] = obj;
        }
    }
    if m["Target"].as_str().is_none_or(|t| t.is_empty()) {
        return Err(bad(spec, "target is required"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let m = parse_mount("type=bind,src=/a,dst=/b,readonly,bind-propagation=rshared").unwrap();
        assert_eq!(m["Source"], "/a");
        assert_eq!(m["ReadOnly"], true);
        assert_eq!(m["BindOptions"]["Propagation"], "rshared");
        let m =
            parse_mount("source=v,target=/v,volume-opt=type=tmpfs,volume-label=a=b,volume-nocopy")
                .unwrap();
        assert_eq!(m["Type"], "volume");
        assert_eq!(
            m["VolumeOptions"]["DriverConfig"]["Options"]["type"],
            "tmpfs"
        );
        assert_eq!(m["VolumeOptions"]["Labels"]["a"], "b");
        assert_eq!(m["VolumeOptions"]["NoCopy"], true);
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(m["TmpfsOptions"]["SizeBytes"], 64 << 20);
        assert_eq!(m["TmpfsOptions"]["Mode"], 0o1770);
        assert!(parse_mount("type=bind,src=/a").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,bogus=1").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,tmpfs-size=1m").is_err());
        assert!(parse_mount("type=tmpfs,dst=/b,tmpfs-mode=99").is_err());
    }
}
