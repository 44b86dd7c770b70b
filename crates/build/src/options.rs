//! `POST /build` query parameters → [`BuildOptions`], with the Docker Engine API's rules (repeatable `t`,
//! JSON `buildargs` and `labels`, docker's boolean spellings, `rm` defaulting to true). Kept here so the API
//! layer only has to hand over the query pairs and the directory it unpacked the body into.

use crate::driver::BuildOptions;
use std::collections::BTreeMap;
use std::path::Path;

/// Bad query parameters (the API answers 400 with the message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("invalid {name} value: {msg}")]
    Json { name: String, msg: String },
    #[error("BuildKit (version=2) builds are not supported by berth; use the classic builder (DOCKER_BUILDKIT=0)")]
    BuildKit,
}

/// docker's `httputils.BoolValue`: empty, `0`, `no`, `false`, `none` are false.
fn bool_value(v: &str) -> bool {
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

fn json_map(name: &str, v: &str) -> Result<BTreeMap<String, Option<String>>, OptionsError> {
    if v.is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str(v).map_err(|e| OptionsError::Json {
        name: name.to_string(),
        msg: e.to_string(),
    })
}

/// Builds options from the query pairs of `POST /build`.
pub fn from_query(
    pairs: &[(String, String)],
    context_dir: &Path,
) -> Result<BuildOptions, OptionsError> {
    let mut o = BuildOptions {
        context_dir: context_dir.to_path_buf(),
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "dockerfile" if !v.is_empty() => o.dockerfile = v.clone(),
            "t" if !v.is_empty() => o.tags.push(v.clone()),
            "q" => o.quiet = bool_value(v),
            "nocache" => o.no_cache = bool_value(v),
            "pull" => o.pull = bool_value(v),
            "rm" => o.rm = bool_value(v),
            "forcerm" => o.force_rm = bool_value(v),
            "target" if !v.is_empty() => o.target = Some(v.clone()),
            "platform" if !v.is_empty() => o.platform = Some(v.clone()),
            "networkmode" if !v.is_empty() && v != "default" => o.network = Some(v.clone()),
            // A null build arg means "declared without a value": docker leaves it unset.
            "buildargs" => {
                o.build_args = json_map("buildargs", v)?
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect()
            }
            "labels" => {
                o.labels = json_map("labels", v)?
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect()
            }
            "version" if v == "2" => return Err(OptionsError::BuildKit),
            _ => {}
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<BuildOptions, OptionsError> {
        let p: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        from_query(&p, Path::new("/ctx"))
    }

    #[test]
    fn docker_cli_query() {
        let o = q(&[
            ("t", "a:1"),
            ("t", "b"),
            ("dockerfile", "sub/Dockerfile.dev"),
            ("buildargs", r#"{"A":"1","B":null}"#),
            ("labels", r#"{"l":"v"}"#),
            ("q", "1"),
            ("nocache", "true"),
            ("rm", "0"),
            ("forcerm", "false"),
            ("target", "build"),
            ("networkmode", "default"),
            ("version", "1"),
        ])
        .unwrap();
        assert_eq!(o.tags, vec!["a:1", "b"]);
        assert_eq!(o.dockerfile, "sub/Dockerfile.dev");
        assert_eq!(o.build_args.len(), 1);
        assert_eq!(o.build_args["A"], "1");
        assert_eq!(o.labels["l"], "v");
        assert!(o.quiet && o.no_cache && !o.rm && !o.force_rm);
        assert_eq!(o.target.as_deref(), Some("build"));
        assert_eq!(o.network, None);
        let d = q(&[]).unwrap();
        assert!(d.rm && !d.quiet);
        assert_eq!(d.dockerfile, "Dockerfile");
        assert_eq!(q(&[("version", "2")]).unwrap_err(), OptionsError::BuildKit);
        assert!(matches!(
            q(&[("buildargs", "{bad")]),
            Err(OptionsError::Json { .. })
        ));
    }
}
