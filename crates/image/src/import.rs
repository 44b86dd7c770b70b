//! `docker import`: a rootfs tarball becomes a one-layer image, with Dockerfile-style `--change`
//! instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL) applied.

use crate::config::{ContainerConfig, HistoryEntry, ImageConfig, RootFs};
use crate::layer::UnpackOptions;
use crate::manifest::Platform;
use crate::reference::Reference;
use crate::store::{layers_spec_none, Store};
use crate::{Image, Result, StoreOptions};
use std::collections::BTreeMap;
use std::io::Read;

/// Errors in `--change` instructions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("{0} is not a valid change command")]
    Unsupported(String),
    #[error("{instr} requires {what}")]
    Missing { instr: String, what: &'static str },
    #[error("invalid {instr} argument {arg:?}")]
    Invalid { instr: String, arg: String },
}

pub fn import(
    store: &Store,
    opts: &StoreOptions,
    input: &mut dyn Read,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
) -> Result<Image> {
    let name = reference
        .filter(|r| !r.is_empty())
        .map(Reference::parse_with_default_tag)
        .transpose()?;
    let mut cc = ContainerConfig::default();
    for c in changes {
        apply_change(&mut cc, c).map_err(|e| crate::Error::InvalidArgument(e.to_string()))?;
    }
    let (meta, _layer_pin) = store.create_layer_pinned(
        input,
        layers_spec_none(),
        UnpackOptions {
            max_size: opts.max_layer_size,
        },
    )?;
    let now = crate::store::now_rfc3339_pub();
    let host = Platform::host();
    let cfg = ImageConfig {
        architecture: Some(host.architecture),
        os: Some(host.os),
        created: Some(now.clone()),
        comment: message.map(str::to_string),
        config: Some(cc),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![meta.diff_id.clone()],
        },
        history: vec![HistoryEntry {
            created: Some(now),
            comment: Some(
                message
                    .map(str::to_string)
                    .unwrap_or_else(|| "Imported from -".into()),
            ),
            ..Default::default()
        }],
        ..Default::default()
    };
    let bytes = serde_json::to_vec(&cfg).expect("serialisable");
    store.put_image(&bytes, name.as_slice(), None)
}

/// Applies one `--change` instruction to a runtime config.
pub fn apply_change(cc: &mut ContainerConfig, change: &str) -> Result<(), ChangeError> {
    let change = change.trim();
    let (instr, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let up = instr.to_ascii_uppercase();
    let rest = rest.trim();
    let need = |what| {
        if rest.is_empty() {
            Err(ChangeError::Missing {
                instr: up.clone(),
                what,
            })
        } else {
            Ok(())
        }
    };
    match up.as_str() {
        "CMD" => {
            need("at least one argument")?;
            cc.cmd = Some(command_form(rest));
        }
        "ENTRYPOINT" => {
            need("at least one argument")?;
            cc.entrypoint = Some(command_form(rest));
        }
        "ENV" => {
            need("at least one argument")?;
            let env = cc.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest, &up)? {
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            need("at least one argument")?;
            let labels = cc.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(rest, &up)? {
                labels.insert(k, v);
            }
        }
        "WORKDIR" => {
            need("exactly one argument")?;
            cc.working_dir = Some(unquote(rest));
        }
        "USER" => {
            need("exactly one argument")?;
            cc.user = Some(unquote(rest));
        }
        "STOPSIGNAL" => {
            need("exactly one argument")?;
            cc.stop_signal = Some(unquote(rest));
        }
        "EXPOSE" => {
            need("at least one argument")?;
            let ports = cc.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in rest.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let ok = num.split('-').all(|n| n.parse::<u16>().is_ok())
                    && ["tcp", "udp", "sctp"].contains(&proto.to_ascii_lowercase().as_str());
                if !ok {
                    return Err(ChangeError::Invalid {
                        instr: up,
                        arg: p.into(),
                    });
                }
                ports.insert(
                    format!("{num}/{}", proto.to_ascii_lowercase()),
                    serde_json::json!({}),
                );
            }
        }
        "VOLUME" => {
            need("at least one argument")?;
            let vols = cc.volumes.get_or_insert_with(BTreeMap::new);
            let list = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => v,
                Err(_) => rest.split_whitespace().map(unquote).collect(),
            };
            for v in list {
                vols.insert(v, serde_json::json!({}));
            }
        }
        _ => return Err(ChangeError::Unsupported(up)),
    }
    Ok(())
}

/// JSON exec form, or shell form wrapped in `/bin/sh -c`.
fn command_form(s: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(s) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), s.into()],
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// Splits shell-like words honouring quotes and backslashes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                any = true;
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// `k=v k2="v 2"` or the legacy single `k v...` form.
fn key_values(s: &str, instr: &str) -> Result<Vec<(String, String)>, ChangeError> {
    let ws = words(s);
    if ws.first().is_some_and(|w| w.contains('=')) {
        ws.into_iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(ChangeError::Invalid {
                    instr: instr.into(),
                    arg: w,
                }),
            })
            .collect()
    } else {
        let (k, v) = s
            .split_once(char::is_whitespace)
            .ok_or_else(|| ChangeError::Missing {
                instr: instr.into(),
                what: "a value",
            })?;
        Ok(vec![(k.to_string(), unquote(v.trim()))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply() {
        let mut cc = ContainerConfig::default();
        for c in [
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /entry.sh --flag",
            "ENV A=1 B=\"two words\"",
            "ENV C 3 4",
            "ENV A=5",
            "WORKDIR /srv",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL a=b \"c d\"=e",
            "VOLUME [\"/data\", \"/logs\"]",
            "VOLUME /cache",
            "stopsignal SIGTERM",
        ] {
            apply_change(&mut cc, c).unwrap();
        }
        assert_eq!(cc.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(
            cc.entrypoint.unwrap(),
            ["/bin/sh", "-c", "/entry.sh --flag"]
        );
        assert_eq!(cc.env.unwrap(), ["B=two words", "C=3 4", "A=5"]);
        assert_eq!(cc.working_dir.as_deref(), Some("/srv"));
        assert_eq!(cc.user.as_deref(), Some("1000:1000"));
        assert_eq!(
            cc.exposed_ports
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
            ["53/udp", "80/tcp"]
        );
        let labels = cc.labels.unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c d"], "e");
        assert_eq!(cc.volumes.unwrap().len(), 3);
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn bad_changes() {
        let mut cc = ContainerConfig::default();
        assert_eq!(
            apply_change(&mut cc, "RUN x"),
            Err(ChangeError::Unsupported("RUN".into()))
        );
        assert_eq!(
            apply_change(&mut cc, "RUN x").unwrap_err().to_string(),
            "RUN is not a valid change command"
        );
        assert!(apply_change(&mut cc, "EXPOSE abc").is_err());
        assert!(apply_change(&mut cc, "CMD").is_err());
    }
}
