//! Resolving paths inside a container rootfs without ever leaving it (CVE-2025-31133 and kin): the runtime's
//! view of [`berth_safepath`] (where the `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` code and its threat
//! model live), with errors as the `nix::Error` the mount and rootfs code reports.
//!
//! Mounts target the opened O_PATH fd via `/proc/self/fd/N`, so a symlink swapped in between resolution and
//! mount cannot redirect them.

use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

pub(crate) use berth_safepath::{fd_path, has_no_symlinks};

/// `openat2` below `root` with the given open flags (O_CLOEXEC always added).
pub(crate) fn open_in_root(
    root: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
) -> nix::Result<OwnedFd> {
    Ok(berth_safepath::open_in_root(root, path, flags, mode)?)
}

/// An O_PATH fd for `path` inside `root` (a final symlink is resolved inside the root).
pub(crate) fn open_path(root: RawFd, path: &Path) -> nix::Result<OwnedFd> {
    Ok(berth_safepath::open_path(root, path)?)
}

/// Creates `path` inside `root` (parents as directories; the last component a directory or an empty file),
/// and returns an O_PATH fd to it. Existing entries are reused.
pub(crate) fn create_in_root(root: RawFd, path: &Path, dir: bool) -> nix::Result<OwnedFd> {
    Ok(berth_safepath::create_in_root(root, path, dir)?)
}
