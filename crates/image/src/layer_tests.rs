//! Unit tests for layer unpacking: file kinds, whiteouts, compression, and crafted malicious tars.

use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Appends an entry with a raw (unvalidated) path, as an attacker's tar would have.
fn raw(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    {
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
    }
    if let Some(l) = link {
        let ln = &mut h.as_old_mut().linkname;
        ln[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn build(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

fn unpack_bytes(tar: &[u8], dest: &Path, opts: UnpackOptions) -> Result<Unpacked, LayerError> {
    unpack(&mut &tar[..], dest, None, opts)
}

#[test]
fn unpacks_all_kinds_and_whiteouts() {
    if !is_root() {
        eprintln!("skipping: needs root for mknod, chown and trusted.* xattrs");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = build(|b| {
        raw(b, "./", tar::EntryType::Directory, None, b"");
        raw(b, "etc/", tar::EntryType::Directory, None, b"");
        raw(
            b,
            "etc/passwd",
            tar::EntryType::Regular,
            None,
            b"root:x:0:0\n",
        );
        let mut h = tar::Header::new_ustar();
        h.set_path("bin/su").unwrap();
        h.set_size(3);
        h.set_mode(0o4755);
        h.set_uid(0);
        h.set_gid(42);
        h.set_mtime(1_234_567_890);
        h.set_cksum();
        b.append(&h, &b"su!"[..]).unwrap();
        raw(b, "bin/sh", tar::EntryType::Symlink, Some("su"), b"");
        raw(b, "bin/hard", tar::EntryType::Link, Some("bin/su"), b"");
        raw(b, "dev/fifo", tar::EntryType::Fifo, None, b"");
        raw(b, "gone/.wh.file", tar::EntryType::Regular, None, b"");
        raw(b, "opaque/.wh..wh..opq", tar::EntryType::Regular, None, b"");
        b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"yes"[..])])
            .unwrap();
        raw(b, "xattr", tar::EntryType::Regular, None, b"x");
    });
    let dest = t.path().join("diff");
    let u = unpack_bytes(&tar, &dest, UnpackOptions::default()).unwrap();
    assert_eq!(u.diff_id, crate::digest::sha256_bytes(&tar));
    assert_eq!(u.digest, u.diff_id);
    assert_eq!(u.compression, Compression::None);
    assert_eq!(u.size, 11 + 3 + 1);
    assert_eq!(fs::read(dest.join("etc/passwd")).unwrap(), b"root:x:0:0\n");
    let su = fs::metadata(dest.join("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid survives chown");
    assert_eq!(su.gid(), 42);
    assert_eq!(su.mtime(), 1_234_567_890);
    assert_eq!(su.nlink(), 2, "hard link shares the inode");
    assert_eq!(fs::read_link(dest.join("bin/sh")).unwrap(), Path::new("su"));
    assert!(fs::symlink_metadata(dest.join("dev/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let wh = fs::symlink_metadata(dest.join("gone/file")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert_eq!(
        wh.mtime(),
        1_600_000_000,
        "a whiteout keeps its entry's mtime"
    );
    assert!(!dest.join("gone/.wh.file").exists());
    let mut buf = [0u8; 8];
    let c = cpath(&dest.join("opaque")).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            8,
        )
    };
    assert_eq!(n, 1);
    assert_eq!(buf[0], b'y');
    let c = cpath(&dest.join("xattr")).unwrap();
    // SAFETY: as above.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"user.berth".as_ptr(),
            buf.as_mut_ptr().cast(),
            8,
        )
    };
    assert_eq!(n, 3, "PAX xattr applied");
    assert_eq!(
        fs::metadata(dest.join("etc")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime set after children"
    );
}

#[test]
fn compression_detected_by_magic() {
    let tar = build(|b| raw(b, "f", tar::EntryType::Regular, None, b"hello"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let t = tempfile::tempdir().unwrap();
    for (i, (bytes, kind)) in [(&gz, Compression::Gzip), (&zst, Compression::Zstd)]
        .into_iter()
        .enumerate()
    {
        let dest = t.path().join(format!("d{i}"));
        let mut blob = Vec::new();
        let u = unpack(
            &mut &bytes[..],
            &dest,
            Some(&mut blob),
            UnpackOptions::default(),
        )
        .unwrap();
        assert_eq!(u.compression, kind);
        assert_eq!(u.diff_id, crate::digest::sha256_bytes(&tar));
        assert_eq!(u.digest, crate::digest::sha256_bytes(bytes));
        assert_eq!(&blob, bytes, "raw stream teed into the blob");
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"hello");
    }
}

/// Asserts the tar is refused, the layer dir is gone and `outside` is untouched.
fn assert_refused(tar: &[u8], outside: &Path) -> LayerError {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("layer/diff");
    let before: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let e = unpack_bytes(tar, &dest, UnpackOptions { max_size: 1 << 20 }).unwrap_err();
    assert!(!dest.exists(), "partial layer removed");
    let after: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "nothing written outside");
    e
}

#[test]
fn refuses_traversal_and_absolute_paths() {
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path().to_str().unwrap();
    let tar = build(|b| {
        raw(
            b,
            "../../../../../../../../evil",
            tar::EntryType::Regular,
            None,
            b"x",
        )
    });
    let e = assert_refused(&tar, outside.path());
    assert!(e.to_string().contains("'..'"), "{e}");
    let tar = build(|b| raw(b, &format!("{o}/evil"), tar::EntryType::Regular, None, b"x"));
    let e = assert_refused(&tar, outside.path());
    assert!(e.to_string().contains("absolute"), "{e}");
    let tar = build(|b| raw(b, "a/../../evil", tar::EntryType::Directory, None, b""));
    assert_refused(&tar, outside.path());
}

#[test]
fn refuses_symlink_escape() {
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path().to_str().unwrap();
    let tar = build(|b| {
        raw(b, "a", tar::EntryType::Symlink, Some(o), b"");
        raw(b, "a/x", tar::EntryType::Regular, None, b"pwned");
    });
    let e = assert_refused(&tar, outside.path());
    assert!(e.to_string().contains("symlink"), "{e}");
    // Same through a whiteout and a directory entry.
    let tar = build(|b| {
        raw(b, "a", tar::EntryType::Symlink, Some(o), b"");
        raw(b, "a/.wh.x", tar::EntryType::Regular, None, b"");
    });
    assert_refused(&tar, outside.path());
}

#[test]
fn refuses_hardlink_escape() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let o = outside.path().to_str().unwrap();
    let tar = build(|b| {
        raw(
            b,
            "h",
            tar::EntryType::Link,
            Some("../../../../../../etc/passwd"),
            b"",
        )
    });
    let e = assert_refused(&tar, outside.path());
    assert!(e.to_string().contains("hard link"), "{e}");
    let tar = build(|b| {
        raw(
            b,
            "h",
            tar::EntryType::Link,
            Some(&format!("{o}/secret")),
            b"",
        )
    });
    assert_refused(&tar, outside.path());
    let tar = build(|b| {
        raw(b, "a", tar::EntryType::Symlink, Some(o), b"");
        raw(b, "h", tar::EntryType::Link, Some("a/secret"), b"");
    });
    let e = assert_refused(&tar, outside.path());
    assert!(e.to_string().contains("hard link"), "{e}");
    assert_eq!(
        fs::metadata(outside.path().join("secret")).unwrap().nlink(),
        1
    );
}

#[test]
fn refuses_huge_declared_sizes() {
    let outside = tempfile::tempdir().unwrap();
    // A header claiming a petabyte with no data behind it.
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(1 << 50);
    h.set_mode(0o644);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0u8; 1024]);
    let e = assert_refused(&tar, outside.path());
    assert!(matches!(e, LayerError::TooLarge { .. }), "{e}");
    // Many small files adding up past the cap.
    let chunk = vec![7u8; 300 * 1024];
    let tar = build(|b| {
        for i in 0..5 {
            raw(b, &format!("f{i}"), tar::EntryType::Regular, None, &chunk);
        }
    });
    let e = assert_refused(&tar, outside.path());
    assert!(matches!(e, LayerError::TooLarge { .. }), "{e}");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let t = tempfile::tempdir().unwrap();
    let tar = build(|b| {
        raw(b, "x", tar::EntryType::Regular, None, b"one");
        raw(b, "x", tar::EntryType::Regular, None, b"two");
        raw(b, "d/f", tar::EntryType::Regular, None, b"");
        raw(b, "d", tar::EntryType::Symlink, Some("x"), b"");
    });
    let dest = t.path().join("diff");
    unpack_bytes(&tar, &dest, UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(dest.join("x")).unwrap(), b"two");
    assert!(fs::symlink_metadata(dest.join("d"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn setgid_dir_does_not_pass_its_group_on() {
    // The unpacker skips chown/chmod when a new inode already has the entry's owner and mode; inside a
    // setgid directory it has not (the kernel gives it the directory's group, and a subdirectory the
    // setgid bit), so nothing may be skipped there.
    if !is_root() {
        eprintln!("SKIPPED: needs root for chown");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = build(|b| {
        let mut h = tar::Header::new_ustar();
        h.set_path("s/").unwrap();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o2775);
        h.set_uid(0);
        h.set_gid(42);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        raw(b, "s/f", tar::EntryType::Regular, None, b"x");
        raw(b, "s/d/", tar::EntryType::Directory, None, b"");
        raw(b, "s/l", tar::EntryType::Symlink, Some("f"), b"");
        raw(b, "s/implicit/g", tar::EntryType::Regular, None, b"y");
    });
    let dest = t.path().join("diff");
    unpack_bytes(&tar, &dest, UnpackOptions::default()).unwrap();
    let s = fs::metadata(dest.join("s")).unwrap();
    assert_eq!((s.gid(), s.mode() & 0o7777), (42, 0o2775));
    let f = fs::metadata(dest.join("s/f")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (0, 0, 0o644));
    let d = fs::metadata(dest.join("s/d")).unwrap();
    assert_eq!((d.gid(), d.mode() & 0o7777), (0, 0o755));
    let l = fs::symlink_metadata(dest.join("s/l")).unwrap();
    assert_eq!(l.gid(), 0);
    let i = fs::metadata(dest.join("s/implicit")).unwrap();
    assert_eq!(
        i.mode() & 0o7777,
        0o755,
        "implicit parent: 0755 without the setgid bit"
    );
    let g = fs::metadata(dest.join("s/implicit/g")).unwrap();
    assert_eq!((g.gid(), g.mode() & 0o7777), (0, 0o644));
}
