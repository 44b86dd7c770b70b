//! Real escape attempts in a temporary root: every one must end inside the root (or be refused).

use super::*;
use std::fs::File;
use std::os::unix::fs::symlink;

/// A temporary "rootfs" and, next to it, a host directory with a secret the container must never reach.
struct Fixture {
    root: tempfile::TempDir,
    host: tempfile::TempDir,
    fd: File,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("secret"), b"host secret").unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\n",
    )
    .unwrap();
    let fd = File::open(root.path()).unwrap();
    Fixture { root, host, fd }
}

/// Where an fd really points (the kernel's view).
fn where_is(fd: &OwnedFd) -> PathBuf {
    std::fs::read_link(fd_path(fd)).unwrap()
}

fn read(fd: OwnedFd) -> String {
    std::io::read_to_string(File::from(fd)).unwrap()
}

#[test]
fn symlink_to_slash_stays_in_the_root() {
    let f = fixture();
    let r = f.fd.as_raw_fd();
    symlink("/", f.root.path().join("slash")).unwrap();
    let fd = open_path(r, "/slash").unwrap();
    assert_eq!(where_is(&fd), f.root.path());
    // /slash/etc/passwd is the root's passwd, not the host's.
    let fd = open_in_root(r, "slash/etc/passwd", libc::O_RDONLY, 0).unwrap();
    assert_eq!(read(fd), "root:x:0:0::/root:/bin/sh\n");
}

#[test]
fn dotdot_chains_clamp_at_the_root() {
    let f = fixture();
    let r = f.fd.as_raw_fd();
    let fd = open_path(r, "../../../../../../..").unwrap();
    assert_eq!(where_is(&fd), f.root.path());
    let fd = open_in_root(r, "/etc/../../../../etc/passwd", libc::O_RDONLY, 0).unwrap();
    assert!(where_is(&fd).starts_with(f.root.path()));
    // A relative symlink made of `..` climbing towards the host's secret lands inside the root.
    let depth = f.root.path().components().count();
    let up = "../".repeat(depth + 3);
    let rel_secret = f.host.path().join("secret");
    let target = format!("{up}{}", rel_secret.strip_prefix("/").unwrap().display());
    symlink(&target, f.root.path().join("climb")).unwrap();
    assert_eq!(
        open_in_root(r, "climb", libc::O_RDONLY, 0)
            .unwrap_err()
            .errno(),
        Errno::ENOENT
    );
}

#[test]
fn absolute_symlinks_resolve_inside() {
    let f = fixture();
    let r = f.fd.as_raw_fd();
    // The host's secret by its absolute path: inside the root it does not exist.
    symlink(f.host.path().join("secret"), f.root.path().join("abs")).unwrap();
    assert_eq!(
        open_in_root(r, "/abs", libc::O_RDONLY, 0)
            .unwrap_err()
            .errno(),
        Errno::ENOENT
    );
    // Once the same path exists inside the root, that is what is opened.
    let inside = f.root.path().join(f.host.path().strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("secret"), b"inside").unwrap();
    assert_eq!(
        read(open_in_root(r, "/abs", libc::O_RDONLY, 0).unwrap()),
        "inside"
    );
    // A directory symlink to the host's /etc: the root's own /etc.
    symlink("/etc", f.root.path().join("hostetc")).unwrap();
    let fd = open_path(r, "/hostetc/passwd").unwrap();
    assert_eq!(where_is(&fd), f.root.path().join("etc/passwd"));
}

#[test]
fn magic_links_are_refused() {
    let f = fixture();
    let host = File::open(f.host.path()).unwrap();
    // With /proc/self/fd as the root, `<fd>/secret` goes through a magic link to the host directory.
    let procfd = File::open("/proc/self/fd").unwrap();
    let p = format!("{}/secret", host.as_raw_fd());
    let e = open_in_root(procfd.as_raw_fd(), &p, libc::O_RDONLY, 0).unwrap_err();
    assert_eq!(e.errno(), Errno::ELOOP);
    // Same through /proc/self/root (the host's /) and /proc/self/cwd.
    let proc = File::open("/proc").unwrap();
    for p in ["self/root/etc/passwd", "self/cwd", "thread-self/root"] {
        let e = open_in_root(proc.as_raw_fd(), p, libc::O_PATH, 0).unwrap_err();
        assert_eq!(e.errno(), Errno::ELOOP, "{p}");
    }
    // A plain symlink to /proc/self/root inside a rootfs resolves inside the root (no /proc there).
    symlink("/proc/self/root", f.root.path().join("magic")).unwrap();
    let e = open_in_root(f.fd.as_raw_fd(), "magic/etc", libc::O_PATH, 0).unwrap_err();
    assert_eq!(e.errno(), Errno::ENOENT);
}

#[test]
fn create_follows_links_inside_only() {
    let f = fixture();
    let r = f.fd.as_raw_fd();
    symlink("/etc", f.root.path().join("evil")).unwrap();
    symlink("../../../../tmp", f.root.path().join("up")).unwrap();
    symlink(f.host.path(), f.root.path().join("hostdir")).unwrap();
    let fd = create_in_root(r, Path::new("/evil/shadow"), false).unwrap();
    // The file was created inside the root, under the in-root /etc.
    assert_eq!(where_is(&fd), f.root.path().join("etc/shadow"));
    // `..` cannot climb out: the link resolves to the in-root /tmp, which is created.
    let fd = create_in_root(r, Path::new("/up/x/y"), true).unwrap();
    assert_eq!(where_is(&fd), f.root.path().join("tmp/x/y"));
    // A dangling absolute link to a host directory: created inside the root, the host's dir untouched.
    let fd = create_in_root(r, Path::new("/hostdir/planted"), false).unwrap();
    assert!(where_is(&fd).starts_with(f.root.path()));
    assert!(!f.host.path().join("planted").exists());
    // Existing entries are reused.
    let fd = create_in_root(r, Path::new("/etc/passwd"), false).unwrap();
    assert_eq!(where_is(&fd), f.root.path().join("etc/passwd"));
    let fd = open_in_root(r, "/etc/passwd", libc::O_RDONLY, 0).unwrap();
    assert_eq!(read(fd), "root:x:0:0::/root:/bin/sh\n");
}

#[test]
fn no_symlinks_check_and_names() {
    let f = fixture();
    let r = f.fd.as_raw_fd();
    std::fs::create_dir(f.root.path().join("proc")).unwrap();
    symlink("/etc", f.root.path().join("sys")).unwrap();
    assert!(has_no_symlinks(r, Path::new("/proc")));
    assert!(!has_no_symlinks(r, Path::new("/sys")));
    // One name below a resolved fd: O_NOFOLLOW refuses the symlink itself.
    let name = CString::new("sys").unwrap();
    let e = open_name(r, &name, libc::O_RDONLY | libc::O_NOFOLLOW, 0).unwrap_err();
    assert_eq!(e.errno(), Errno::ELOOP);
    let st = lstat_name(r, &name).unwrap();
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
    // A NUL byte is EINVAL, as io::Error too.
    let e = open_path(r, std::ffi::OsStr::from_bytes(b"a\0b")).unwrap_err();
    assert_eq!(io::Error::from(e).raw_os_error(), Some(libc::EINVAL));
}
