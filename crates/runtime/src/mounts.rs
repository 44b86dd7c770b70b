//! Mounting `config.json`'s `mounts` inside the rootfs: option parsing (runc's table), bind and regular
//! filesystem mounts, cgroup mounts for v1/hybrid/v2 hosts, and userns fallbacks.

use crate::secure::{create_in_root, fd_path, open_path};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// Errors of mounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {what} on {dest}: {source}")]
    Mount {
        what: String,
        dest: PathBuf,
        source: nix::Error,
    },
    #[error("cannot create mount target {dest} in the rootfs: {source}")]
    Target { dest: PathBuf, source: nix::Error },
    #[error("refusing to mount {typ} on {dest}: the path goes through a symlink in the rootfs")]
    Symlink { typ: String, dest: PathBuf },
    #[error("mount source {src} of {dest}: {source}")]
    Source {
        src: PathBuf,
        dest: PathBuf,
        source: std::io::Error,
    },
}

/// Parsed mount options.
#[derive(Debug, Clone)]
pub(crate) struct MountOpts {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl MountOpts {
    pub(crate) fn parse(opts: &[String]) -> MountOpts {
        let mut o = MountOpts::default();
        for opt in opts {
            let (set, clear) = match opt.as_str() {
                "defaults" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
                "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable" => {
                    let mut p = match opt.trim_start_matches('r') {
                        "private" => MsFlags::MS_PRIVATE,
                        "shared" => MsFlags::MS_SHARED,
                        "slave" => MsFlags::MS_SLAVE,
                        _ => MsFlags::MS_UNBINDABLE,
                    };
                    if opt.starts_with('r') {
                        p |= MsFlags::MS_REC;
                    }
                    o.propagation.push(p);
                    continue;
                }
                // Handled by other runtimes' extensions or meaningless here.
                "tmpcopyup" | "idmap" | "ridmap" | "rro" | "rrw" => continue,
                _ => {
                    o.data.push(opt.clone());
                    continue;
                }
            };
            o.flags = (o.flags | set) - clear;
        }
        o
    }

    fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Context for mounting inside the child.
pub(crate) struct MountCtx<'a> {
    pub root_fd: RawFd,
    pub bundle: &'a Path,
    pub in_userns: bool,
    pub new_cgroupns: bool,
    pub cgroup: Option<&'a berth_cgroups::Cgroup>,
}

fn merr(what: &str, dest: &Path) -> impl FnOnce(nix::Error) -> MountError {
    let (what, dest) = (what.to_string(), dest.to_path_buf());
    move |source| MountError::Mount { what, dest, source }
}

/// Mounts one spec mount inside the rootfs.
pub(crate) fn mount_one(ctx: &MountCtx, m: &Mount) -> Result<(), MountError> {
    let dest = m.destination();
    let opts = MountOpts::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let src = m.source().clone().unwrap_or_default();
    if typ == "bind" || opts.is_bind() {
        let src = if src.is_absolute() {
            src
        } else {
            ctx.bundle.join(src)
        };
        let meta = std::fs::metadata(&src).map_err(|source| MountError::Source {
            src: src.clone(),
            dest: dest.clone(),
            source,
        })?;
        return bind(ctx, &src, dest, meta.is_dir(), &opts);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, dest, &opts);
    }
    if matches!(typ, "proc" | "sysfs") && !crate::secure::has_no_symlinks(ctx.root_fd, dest) {
        return Err(MountError::Symlink {
            typ: typ.to_string(),
            dest: dest.clone(),
        });
    }
    let target = create_in_root(ctx.root_fd, dest, true).map_err(|source| MountError::Target {
        dest: dest.clone(),
        source,
    })?;
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    let flags = opts.flags - MsFlags::MS_REMOUNT;
    let r = mount(
        Some(&src),
        fd_path(&target).as_str(),
        Some(typ),
        flags,
        data,
    );
    match r {
        // In a user namespace sysfs/mqueue may be refused (the net/ipc namespace is not ours): bind the host's.
        Err(nix::Error::EPERM) | Err(nix::Error::EINVAL)
            if ctx.in_userns && (typ == "sysfs" || typ == "mqueue") =>
        {
            drop(target);
            let host = if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            let mut o = opts.clone();
            o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
            return bind(ctx, Path::new(host), dest, true, &o);
        }
        r => r.map_err(merr(typ, dest))?,
    }
    propagate(ctx, dest, &opts)
}

/// Bind-mounts host `src` on `dest` in the rootfs, then applies the flags with a bind remount.
pub(crate) fn bind(
    ctx: &MountCtx,
    src: &Path,
    dest: &Path,
    dir: bool,
    opts: &MountOpts,
) -> Result<(), MountError> {
    let target = create_in_root(ctx.root_fd, dest, dir).map_err(|source| MountError::Target {
        dest: dest.to_path_buf(),
        source,
    })?;
    let rec = opts.flags & MsFlags::MS_REC;
    mount(
        Some(src),
        fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .map_err(merr(&format!("bind {}", src.display()), dest))?;
    drop(target);
    let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount(ctx, dest, extra)?;
    }
    propagate(ctx, dest, opts)
}

/// Bind-remounts the mount at `dest` with `flags`, keeping the flags the kernel locks in a user namespace.
pub(crate) fn remount(ctx: &MountCtx, dest: &Path, flags: MsFlags) -> Result<(), MountError> {
    let fd = open_path(ctx.root_fd, dest).map_err(|source| MountError::Target {
        dest: dest.to_path_buf(),
        source,
    })?;
    let p = fd_path(&fd);
    let mut flags = flags;
    if ctx.in_userns {
        if let Ok(st) = nix::sys::statvfs::statvfs(p.as_str()) {
            use nix::sys::statvfs::FsFlags;
            let f = st.flags();
            for (fs, ms) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(fs) {
                    flags |= ms;
                }
            }
        }
    }
    mount(
        None::<&str>,
        p.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
    .map_err(merr("remount", dest))
}

fn propagate(ctx: &MountCtx, dest: &Path, opts: &MountOpts) -> Result<(), MountError> {
    for p in &opts.propagation {
        let fd = open_path(ctx.root_fd, dest).map_err(|source| MountError::Target {
            dest: dest.to_path_buf(),
            source,
        })?;
        mount(
            None::<&str>,
            fd_path(&fd).as_str(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .map_err(merr("propagation", dest))?;
    }
    Ok(())
}

/// `/sys/fs/cgroup`: on a pure v2 host with a cgroup namespace a fresh cgroup2 mount (its root is the
/// container's cgroup); otherwise a tmpfs with a bind of the container's own directory of every hierarchy, so
/// the container sees its cgroup (and nothing above it) at the usual places.
fn mount_cgroup(ctx: &MountCtx, dest: &Path, opts: &MountOpts) -> Result<(), MountError> {
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let base = opts.flags - MsFlags::MS_RDONLY - MsFlags::MS_BIND - MsFlags::MS_REC;
    let Some(cg) = ctx.cgroup else {
        let target =
            create_in_root(ctx.root_fd, dest, true).map_err(|source| MountError::Target {
                dest: dest.to_path_buf(),
                source,
            })?;
        return mount(
            Some("cgroup2"),
            fd_path(&target).as_str(),
            Some("cgroup2"),
            opts.flags,
            None::<&str>,
        )
        .map_err(merr("cgroup2", dest));
    };
    if cg.layout == berth_cgroups::Layout::V2 {
        let target =
            create_in_root(ctx.root_fd, dest, true).map_err(|source| MountError::Target {
                dest: dest.to_path_buf(),
                source,
            })?;
        if ctx.new_cgroupns
            && mount(
                Some("cgroup2"),
                fd_path(&target).as_str(),
                Some("cgroup2"),
                opts.flags,
                None::<&str>,
            )
            .is_ok()
        {
            return Ok(());
        }
        drop(target);
        if let Some(dir) = cg.unified_dir() {
            let o = MountOpts {
                flags: opts.flags | MsFlags::MS_BIND,
                ..Default::default()
            };
            return bind(ctx, dir, dest, true, &o);
        }
        return Ok(());
    }
    let target = create_in_root(ctx.root_fd, dest, true).map_err(|source| MountError::Target {
        dest: dest.to_path_buf(),
        source,
    })?;
    mount(
        Some("tmpfs"),
        fd_path(&target).as_str(),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(merr("tmpfs", dest))?;
    drop(target);
    for h in cg.paths() {
        let sub = dest.join(h.mount_name());
        let mut flags =
            MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if ro {
            flags |= MsFlags::MS_RDONLY;
        }
        let o = MountOpts {
            flags,
            ..Default::default()
        };
        if h.dir.is_dir() {
            bind(ctx, &h.dir, &sub, true, &o)?;
        }
    }
    if ro {
        remount_tmpfs_ro(ctx, dest, base)?;
    }
    Ok(())
}

fn remount_tmpfs_ro(ctx: &MountCtx, dest: &Path, base: MsFlags) -> Result<(), MountError> {
    let fd = open_path(ctx.root_fd, dest).map_err(|source| MountError::Target {
        dest: dest.to_path_buf(),
        source,
    })?;
    mount(
        None::<&str>,
        fd_path(&fd).as_str(),
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
        Some("mode=755"),
    )
    .map_err(merr("remount ro", dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_runc_options() {
        let o = MountOpts::parse(&[
            "rbind".into(),
            "ro".into(),
            "nosuid".into(),
            "rslave".into(),
            "mode=755".into(),
            "rw".into(),
        ]);
        assert!(o
            .flags
            .contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["mode=755".to_string()]);
    }
}
