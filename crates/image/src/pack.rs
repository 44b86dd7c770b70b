//! Packing an unpacked overlay2 directory back into a layer tar: the reverse of [`crate::layer::unpack`].
//! Output is deterministic (entries sorted, real metadata kept), so packing the same tree twice gives the
//! same diff id. Overlay whiteouts (0:0 char devices, `trusted.overlay.opaque`) become `.wh.` entries.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

fn lgetxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: pointers are valid for the given lengths during the call.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

/// xattrs worth carrying in a layer (not overlay's own bookkeeping).
fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return vec![];
    };
    let mut buf = vec![0u8; 4096];
    // SAFETY: as above.
    let r = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r <= 0 {
        return vec![];
    }
    buf.truncate(r as usize);
    let mut names: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .filter(|n| {
            !n.starts_with("trusted.overlay.")
                && (n.starts_with("user.")
                    || n.starts_with("security.")
                    || n.starts_with("trusted."))
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| lgetxattr(p, &n).map(|v| (n, v)))
        .collect()
}

fn header_for(m: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(m.uid() as u64);
    h.set_gid(m.gid() as u64);
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// Writes `dir` as an uncompressed layer tar to `out`.
pub fn pack(dir: &Path, out: &mut dyn Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(dir.join(&rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let r = rel.join(&name);
            let p = dir.join(&r);
            let m = fs::symlink_metadata(&p)?;
            let ft = m.file_type();
            let x = xattrs(&p);
            if ft.is_char_device() && m.rdev() == 0 {
                let wh = rel.join(format!(".wh.{}", name.to_string_lossy()));
                let mut h = header_for(&m, tar::EntryType::Regular);
                h.set_mode(0o644);
                b.append_data(&mut h, &wh, io::empty())?;
                continue;
            }
            if !x.is_empty() {
                b.append_pax_extensions(
                    x.iter()
                        .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(|(k, v)| (k.as_str(), *v)),
                )?;
            }
            if ft.is_dir() {
                let mut h = header_for(&m, tar::EntryType::Directory);
                b.append_data(&mut h, format!("{}/", r.display()), io::empty())?;
                if lgetxattr(&p, "trusted.overlay.opaque").as_deref() == Some(b"y") {
                    let mut h = header_for(&m, tar::EntryType::Regular);
                    h.set_mode(0o644);
                    b.append_data(&mut h, r.join(".wh..wh..opq"), io::empty())?;
                }
                subdirs.push(r);
            } else if ft.is_symlink() {
                let mut h = header_for(&m, tar::EntryType::Symlink);
                b.append_link(&mut h, &r, fs::read_link(&p)?)?;
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    if let Some(first) = inodes.get(&(m.dev(), m.ino())) {
                        let mut h = header_for(&m, tar::EntryType::Link);
                        b.append_link(&mut h, &r, first)?;
                        continue;
                    }
                    inodes.insert((m.dev(), m.ino()), r.clone());
                }
                let mut h = header_for(&m, tar::EntryType::Regular);
                h.set_size(m.len());
                b.append_data(&mut h, &r, fs::File::open(&p)?)?;
            } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
                let kind = if ft.is_fifo() {
                    tar::EntryType::Fifo
                } else if ft.is_char_device() {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut h = header_for(&m, kind);
                if !ft.is_fifo() {
                    let dev = m.rdev();
                    h.set_device_major(libc::major(dev))?;
                    h.set_device_minor(libc::minor(dev))?;
                }
                b.append_data(&mut h, &r, io::empty())?;
            }
            // Sockets are not representable in tar; docker skips them too.
        }
        // Reverse so the stack pops them in sorted order.
        stack.extend(subdirs.into_iter().rev());
    }
    b.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{unpack, UnpackOptions};

    #[test]
    fn pack_unpack_pack_is_stable() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: needs root for whiteout devices");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("a/b")).unwrap();
        fs::write(src.join("a/b/f"), b"data").unwrap();
        fs::hard_link(src.join("a/b/f"), src.join("a/h")).unwrap();
        std::os::unix::fs::symlink("b/f", src.join("a/l")).unwrap();
        fs::create_dir(src.join("opq")).unwrap();
        let c = CString::new(src.join("opq").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings and a 1-byte value.
        let rc = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0);
        let wh = CString::new(src.join("gone").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) }, 0);
        let mut t1 = Vec::new();
        pack(&src, &mut t1).unwrap();
        let names: Vec<String> = tar::Archive::new(&t1[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
        assert!(names.contains(&"opq/.wh..wh..opq".to_string()), "{names:?}");
        let dst = t.path().join("dst");
        unpack(&mut &t1[..], &dst, None, UnpackOptions::default()).unwrap();
        let mut t2 = Vec::new();
        pack(&dst, &mut t2).unwrap();
        assert_eq!(
            crate::digest::sha256_bytes(&t1),
            crate::digest::sha256_bytes(&t2),
            "deterministic"
        );
    }
}
