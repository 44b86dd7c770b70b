//! Building the container's filesystem view inside its mount namespace: rootfs bind, spec mounts, /dev
//! (devices, symlinks), pivot_root, read-only root, masked and read-only paths, sysctls.

use crate::mounts::{bind, mount_one, remount, MountCtx, MountError, MountOpts};
use crate::secure::{create_in_root, fd_path, open_in_root, open_path};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors of rootfs setup.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("{what} {path}: {source}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error(
        "/dev/null is not the null device (major 1, minor 3): refusing to use it to mask paths"
    )]
    BadNull,
}

fn sys(what: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> RootfsError {
    let path = path.to_path_buf();
    move |source| RootfsError::Sys { what, path, source }
}

/// The devices every container gets (runc's list).
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Makes the host's mounts invisible to propagation and binds the rootfs onto itself (pivot_root needs a mount
/// point). Returns an fd of the rootfs mount for in-root resolution.
pub(crate) fn prepare_root(spec: &Spec, rootfs: &Path) -> Result<OwnedFd, RootfsError> {
    let flags = root_propagation(spec);
    // Never let our mounts propagate back to the host, whatever the rootfs propagation says for later.
    // shared and unbindable are applied to "/" only after pivot_root (see `apply_root_propagation`): a shared
    // new root makes pivot_root fail with EINVAL, an unbindable "/" makes the rootfs bind fail.
    let first = if late_propagation(flags) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        flags
    };
    mount(None::<&str>, "/", None::<&str>, first, None::<&str>)
        .map_err(sys("make / private", Path::new("/")))?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("bind rootfs", rootfs))?;
    std::fs::File::open(rootfs)
        .map(OwnedFd::from)
        .map_err(|e| RootfsError::Sys {
            what: "open rootfs",
            path: rootfs.to_path_buf(),
            source: io_errno(&e),
        })
}

/// `linux.rootfsPropagation` as mount flags; rslave (runc's default) when unset or unknown.
fn root_propagation(spec: &Spec) -> MsFlags {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    match prop.as_deref() {
        Some(p) => MountOpts::parse(&[p.to_string()])
            .propagation
            .first()
            .copied()
            .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    }
}

fn late_propagation(flags: MsFlags) -> bool {
    flags.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE)
}

/// After pivot_root: a shared or unbindable `linux.rootfsPropagation` is applied to the container's "/"
/// (a slave of the host's mounts since `prepare_root`, so a shared root forms its own peer group and
/// nothing propagates back to the host).
pub(crate) fn apply_root_propagation(spec: &Spec) -> Result<(), RootfsError> {
    let flags = root_propagation(spec);
    if late_propagation(flags) {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(sys("rootfs propagation", Path::new("/")))?;
    }
    Ok(())
}

pub(crate) fn io_errno(e: &std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Spec mounts, devices and /dev symlinks (before pivot).
pub(crate) fn setup_mounts(ctx: &MountCtx, spec: &Spec) -> Result<(), RootfsError> {
    for m in spec.mounts().iter().flatten() {
        mount_one(ctx, m)?;
    }
    let mut devices: Vec<LinuxDevice> = DEFAULT_DEVICES
        .iter()
        .map(|(p, maj, min)| {
            let mut d = LinuxDevice::default();
            d.set_path(PathBuf::from(p));
            d.set_typ(LinuxDeviceType::C);
            d.set_major(*maj as i64);
            d.set_minor(*min as i64);
            d.set_file_mode(Some(0o666));
            d.set_uid(Some(0));
            d.set_gid(Some(0));
            d
        })
        .collect();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
    {
        devices.retain(|x| x.path() != d.path());
        devices.push(d);
    }
    for d in &devices {
        create_device(ctx, d)?;
    }
    let root = ctx.root_fd;
    let dev =
        create_in_root(root, Path::new("/dev"), true).map_err(sys("create", Path::new("/dev")))?;
    let dev = open_in_root(
        root,
        Path::new("/dev"),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    )
    .unwrap_or(dev);
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        if name == "ptmx" {
            // A bind-mounted or mknod'ed ptmx from the spec wins; otherwise replace a stale one.
            let _ = nix::unistd::unlinkat(
                Some(dev.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(sys("symlink", &Path::new("/dev").join(name))(e)),
        }
    }
    match nix::sys::stat::mkdirat(
        Some(dev.as_raw_fd()),
        "shm",
        Mode::from_bits_truncate(0o1777),
    ) {
        Ok(()) | Err(nix::Error::EEXIST) => {}
        Err(e) => return Err(sys("mkdir", Path::new("/dev/shm"))(e)),
    }
    Ok(())
}

/// mknod a device (or, in a user namespace where mknod is not allowed, bind-mount the host's node).
fn create_device(ctx: &MountCtx, d: &LinuxDevice) -> Result<(), RootfsError> {
    let path = d.path();
    if ctx.in_userns {
        let host = Path::new("/").join(path.strip_prefix("/").unwrap_or(path));
        if !host.exists() {
            return Ok(());
        }
        let o = MountOpts {
            flags: MsFlags::MS_BIND,
            ..Default::default()
        };
        return bind(ctx, &host, path, false, &o).map_err(RootfsError::from);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    create_in_root(ctx.root_fd, parent, true).map_err(sys("create", parent))?;
    let dir = open_in_root(ctx.root_fd, parent, libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .map_err(sys("open", parent))?;
    let name = path.file_name().unwrap_or_default();
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666));
    let dev = nix::sys::stat::makedev(d.major() as u64, d.minor() as u64);
    let _ = nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, kind, mode, dev)
        .map_err(sys("mknod", path))?;
    let fd = open_path(ctx.root_fd, path).map_err(sys("open", path))?;
    // mknod applied the umask; set the exact mode and owner (through the O_PATH fd's magic link).
    let p = fd_path(&fd);
    nix::sys::stat::fchmodat(
        None,
        p.as_str(),
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(sys("chmod", path))?;
    nix::unistd::chown(
        p.as_str(),
        d.uid().map(nix::unistd::Uid::from_raw),
        d.gid().map(nix::unistd::Gid::from_raw),
    )
    .map_err(sys("chown", path))?;
    Ok(())
}

/// Switches the root: `pivot_root(".", ".")` then lazily unmounts the old root stacked on top, so no host
/// path stays reachable. With `no_pivot` (ramfs roots), `MS_MOVE` + `chroot`.
pub(crate) fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    nix::unistd::chdir(rootfs).map_err(sys("chdir", rootfs))?;
    if no_pivot {
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(sys("move rootfs", rootfs))?;
        nix::unistd::chroot(".").map_err(sys("chroot", rootfs))?;
    } else {
        nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root", rootfs))?;
        // The old root is now mounted over "."; make sure unmounting it cannot propagate to the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("make old root slave", Path::new("/")))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys("unmount old root", Path::new("/")))?;
    }
    nix::unistd::chdir("/").map_err(sys("chdir", Path::new("/")))
}

/// After pivot: read-only root, masked paths, read-only paths, sysctls.
pub(crate) fn finish(spec: &Spec, in_userns: bool) -> Result<(), RootfsError> {
    let root = std::fs::File::open("/").map_err(|e| RootfsError::Sys {
        what: "open",
        path: "/".into(),
        source: io_errno(&e),
    })?;
    let ctx = MountCtx {
        root_fd: root.as_raw_fd(),
        bundle: Path::new("/"),
        in_userns,
        new_cgroupns: false,
        cgroup: None,
    };
    let linux = spec.linux().as_ref();
    // Sysctls first: docker's specs list /proc/sys among the read-only paths.
    for (k, v) in linux.and_then(|l| l.sysctl().clone()).unwrap_or_default() {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v.as_bytes()).map_err(|e| RootfsError::Sys {
            what: "write sysctl",
            path,
            source: io_errno(&e),
        })?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly_path(&ctx, Path::new(&p))?;
    }
    let masked = linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    if !masked.is_empty() {
        let null = open_path(ctx.root_fd, Path::new("/dev/null"))
            .map_err(sys("open", Path::new("/dev/null")))?;
        let st =
            nix::sys::stat::fstat(null.as_raw_fd()).map_err(sys("stat", Path::new("/dev/null")))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFCHR
            || st.st_rdev != nix::sys::stat::makedev(1, 3)
        {
            return Err(RootfsError::BadNull);
        }
        for p in masked {
            mask_path(&ctx, &null, Path::new(&p))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount(&ctx, Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

fn readonly_path(ctx: &MountCtx, p: &Path) -> Result<(), RootfsError> {
    let fd = match open_path(ctx.root_fd, p) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(e) => return Err(sys("open", p)(e)),
    };
    let fp = fd_path(&fd);
    mount(
        Some(fp.as_str()),
        fp.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("bind read-only path", p))?;
    drop(fd);
    remount(
        ctx,
        p,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )?;
    Ok(())
}

fn mask_path(ctx: &MountCtx, null: &OwnedFd, p: &Path) -> Result<(), RootfsError> {
    let fd = match open_path(ctx.root_fd, p) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(e) => return Err(sys("open", p)(e)),
    };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(sys("stat", p))?;
    let target = fd_path(&fd);
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        mount(
            Some("tmpfs"),
            target.as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys("mask", p))
    } else {
        mount(
            Some(fd_path(null).as_str()),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("mask", p))
    }
}

/// Sets the hostname and domain name (UTS namespace).
pub(crate) fn set_names(spec: &Spec) -> Result<(), RootfsError> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(sys("sethostname", Path::new(h)))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        let c = CString::new(d.as_bytes()).unwrap_or_default();
        // SAFETY: valid pointer and length of a C string.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(sys("setdomainname", Path::new(d))(nix::Error::last()));
        }
    }
    Ok(())
}
