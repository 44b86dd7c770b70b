//! `berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]` (`POST /commit`): prints the new image's id.

use clap::{ArgAction, Parser};

use super::http::encode;
use super::{out, parse, CmdResult, Globals};

#[derive(Parser)]
#[command(about = "Create a new image from a container's changes")]
struct CommitOpts {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true")]
    pause: bool,
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

/// `repo[:tag]`: the tag is after the last `:` that follows the last `/` (a registry port is not a tag).
fn split_reference(r: &str) -> (&str, Option<&str>) {
    let slash = r.rfind('/').map_or(0, |i| i + 1);
    match r[slash..].rfind(':') {
        Some(i) => (&r[..slash + i], Some(&r[slash + i + 1..])),
        None => (r, None),
    }
}

/// `berth commit`.
pub fn commit(args: &[String], g: &Globals) -> CmdResult {
    let o: CommitOpts = parse(
        "commit",
        "berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        args,
    )?;
    let mut q = vec![format!("container={}", encode(&o.container))];
    if let Some(r) = o.reference.as_deref().filter(|r| !r.is_empty()) {
        let (repo, tag) = split_reference(r);
        q.push(format!("repo={}", encode(repo)));
        if let Some(t) = tag {
            q.push(format!("tag={}", encode(t)));
        }
    }
    if let Some(m) = &o.message {
        q.push(format!("comment={}", encode(m)));
    }
    if let Some(a) = &o.author {
        q.push(format!("author={}", encode(a)));
    }
    if !o.pause {
        q.push("pause=0".into());
    }
    for c in &o.change {
        q.push(format!("changes={}", encode(c)));
    }
    let mut client = g.client()?;
    let v = client.post_json(&format!("/commit?{}", q.join("&")), None)?;
    out(&format!("{}\n", v["Id"].as_str().unwrap_or("")))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn splits_repo_and_tag() {
        assert_eq!(split_reference("snap"), ("snap", None));
        assert_eq!(split_reference("snap:v1"), ("snap", Some("v1")));
        assert_eq!(
            split_reference("localhost:5000/a/b:c"),
            ("localhost:5000/a/b", Some("c"))
        );
        assert_eq!(
            split_reference("localhost:5000/a"),
            ("localhost:5000/a", None)
        );
    }
}
