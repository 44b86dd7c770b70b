//! The container process's user: switching uid/gid/groups, and resolving docker's `-u` specs against the
//! container's `/etc/passwd` and `/etc/group`.
//!
//! [`switch`] does `setgroups` → `setresgid` → `setresuid` bracketed by `PR_SET_KEEPCAPS`, so the permitted
//! capabilities survive the switch away from uid 0 and the caller can then install the final sets with
//! [`super::capabilities::apply`]. `setgroups` is skipped when the user namespace denies it
//! (`/proc/self/setgroups` is `deny`) and no additional gids are requested, as runc does.
//!
//! Files under the container root are opened with `openat2(RESOLVE_IN_ROOT)`, so a symlinked `/etc/passwd` in an
//! image can never make the engine read a host file.

use nix::fcntl::OFlag;
use oci_spec::runtime::User;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use super::capabilities::{self, CapsError};

/// Errors from resolving or switching users.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A user name not in the container's `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// A group name not in the container's `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    /// A malformed `user[:group]` spec.
    #[error("invalid user spec {0:?}")]
    InvalidSpec(String),
    /// Reading a file of the container root failed (other than it being absent).
    #[error("reading {path} in the container root: {source}")]
    Read {
        /// Path inside the container root.
        path: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Additional gids were requested but the user namespace denies `setgroups`.
    #[error("cannot set additional groups {0:?}: setgroups is denied in this user namespace")]
    SetgroupsDenied(Vec<u32>),
    /// A uid/gid/groups syscall failed.
    #[error("{call}({arg}): {source}")]
    Set {
        /// `setgroups`, `setresgid` or `setresuid`.
        call: &'static str,
        /// The requested id(s).
        arg: String,
        /// errno.
        source: nix::Error,
    },
    /// Keeping capabilities across the switch failed.
    #[error(transparent)]
    Caps(#[from] CapsError),
}

/// Switch the calling process to `user`'s uid, gid and additional gids, keeping its permitted capabilities
/// (`PR_SET_KEEPCAPS` is set before and cleared after). The umask is separate: [`apply_umask`].
pub fn switch(user: &User) -> Result<(), UserError> {
    capabilities::prepare_for_user_switch()?;
    set_ids(
        user.uid(),
        user.gid(),
        user.additional_gids().as_deref().unwrap_or(&[]),
    )?;
    capabilities::finish_user_switch()?;
    Ok(())
}

/// `setgroups(additional)` (skipped when denied and empty), `setresgid(gid)`, `setresuid(uid)`, in that order:
/// groups and gid need the privileges the uid switch gives up.
pub fn set_ids(uid: u32, gid: u32, additional: &[u32]) -> Result<(), UserError> {
    // SAFETY: the pointer and length describe the `additional` slice, which outlives the call.
    if unsafe { libc::setgroups(additional.len(), additional.as_ptr()) } != 0 {
        let source = nix::Error::last();
        if source != nix::Error::EPERM || !setgroups_denied() {
            return Err(UserError::Set {
                call: "setgroups",
                arg: format!("{additional:?}"),
                source,
            });
        }
        if !additional.is_empty() {
            return Err(UserError::SetgroupsDenied(additional.to_vec()));
        }
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(UserError::Set {
            call: "setresgid",
            arg: gid.to_string(),
            source: nix::Error::last(),
        });
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(UserError::Set {
            call: "setresuid",
            arg: uid.to_string(),
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Whether `/proc/self/setgroups` says `deny` (only ever true inside a user namespace).
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Set the umask from `user.umask`, if any (otherwise the inherited one stays, as with runc).
pub fn apply_umask(user: &User) {
    if let Some(mask) = user.umask() {
        // SAFETY: umask cannot fail; the mask is truncated to its permission bits by the kernel.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
}

/// Read `rel` (e.g. `etc/passwd`) under `root`, resolving symlinks inside `root`. `None` when it does not exist.
fn read_in_root(root: &Path, rel: &'static str) -> Result<Option<String>, UserError> {
    let err = |source| UserError::Read { path: rel, source };
    // A root that is not there (yet) has no such file either: numeric users still resolve.
    let dir = match nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    // SAFETY: `open` just returned this fd and nothing else owns it.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    let fd = match berth_safepath::open_in_root(
        std::os::fd::AsRawFd::as_raw_fd(&dir),
        rel,
        OFlag::O_RDONLY.bits(),
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if matches!(e.errno(), nix::Error::ENOENT | nix::Error::ENOTDIR) => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    let mut file = std::fs::File::from(fd);
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(err)?;
    Ok(Some(text))
}

/// One `/etc/passwd` entry (the fields berth uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// Parse `/etc/passwd` text; malformed lines are skipped, like libc does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.trim().to_string(),
                uid: f.get(2)?.trim().parse().ok()?,
                gid: f.get(3)?.trim().parse().ok()?,
                home: f.get(5).map_or_else(String::new, |h| h.trim().to_string()),
            })
        })
        .collect()
}

/// Parse `/etc/group` text into (name, gid, members); malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3).map_or_else(Vec::new, |m| {
                m.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            });
            Some((
                f.first()?.trim().to_string(),
                f.get(2)?.trim().parse().ok()?,
                members,
            ))
        })
        .collect()
}

fn numeric(s: &str, spec: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| UserError::InvalidSpec(spec.to_string()))
}

/// Resolve docker's `-u` spec (`name`, `uid`, `name:group`, `uid:gid`, `name:gid`, `uid:group`; empty means root)
/// against `root`'s `/etc/passwd` and `/etc/group`, like runc's `GetExecUser`:
/// - a name must exist in `/etc/passwd`; a numeric uid need not (its gid is then 0);
/// - a group name must exist in `/etc/group`; a numeric gid need not;
/// - without an explicit group, the user's primary gid is used, and the additional gids are the groups that list
///   the user as a member.
///
/// Returns `(uid, gid, additional_gids)`.
pub fn resolve_user(root: &Path, spec: &str) -> Result<(u32, u32, Vec<u32>), UserError> {
    let spec = spec.trim();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((_, g)) if g.contains(':') => return Err(UserError::InvalidSpec(spec.to_string())),
        Some((u, "")) => (u, None),
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_in_root(root, "etc/passwd")?
        .map(|t| parse_passwd(&t))
        .unwrap_or_default();
    let (uid, mut gid, name) = match numeric(user_part, spec)? {
        _ if user_part.is_empty() => (
            0,
            0,
            passwd.iter().find(|e| e.uid == 0).map(|e| e.name.clone()),
        ),
        Some(uid) => match passwd.iter().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name.clone())),
            None => (uid, 0, None),
        },
        None => match passwd.iter().find(|e| e.name == user_part) {
            Some(e) => (e.uid, e.gid, Some(e.name.clone())),
            None => return Err(UserError::UserNotFound(user_part.to_string())),
        },
    };
    if group_part.is_none() && name.is_none() {
        return Ok((uid, gid, Vec::new()));
    }
    let groups = read_in_root(root, "etc/group")?
        .map(|t| parse_group(&t))
        .unwrap_or_default();
    let mut additional = Vec::new();
    match group_part {
        Some(g) => {
            gid = match numeric(g, spec)? {
                Some(n) => n,
                None => match groups.iter().find(|(n, _, _)| n == g) {
                    Some((_, n, _)) => *n,
                    None => return Err(UserError::GroupNotFound(g.to_string())),
                },
            };
        }
        None => {
            let name = name.unwrap_or_default();
            for (_, g, members) in &groups {
                if members.contains(&name) && !additional.contains(g) {
                    additional.push(*g);
                }
            }
        }
    }
    Ok((uid, gid, additional))
}

/// The home directory of `uid` in `root`'s `/etc/passwd`, `/` when there is none (runc's default).
pub fn home_dir(root: &Path, uid: u32) -> String {
    read_in_root(root, "etc/passwd")
        .ok()
        .flatten()
        .and_then(|t| parse_passwd(&t).into_iter().find(|e| e.uid == uid))
        .map(|e| e.home)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// Append `HOME=<home of uid>` to `env` when it has no `HOME` (docker and runc do this). Call it with the
/// container root (`/` after `pivot_root`) before switching user, while `/etc/passwd` is surely readable.
pub fn ensure_home_env(env: &mut Vec<String>, root: &Path, uid: u32) {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_dir(root, uid)));
    }
}

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
