//! Compression detection by magic number (docker's `archive.DetectCompression`) for ADD's local archives and
//! for context streams: gzip and zstd are decoded in-process; bzip2 and xz through the `bzip2` / `xz` tools
//! (Debian's bzip2 and xz-utils) since no decoder for them is in the dependency set.

use std::io::{self, Cursor, Read};
use std::process::{Command, Stdio};

/// Compression of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Detects compression from the first bytes.
pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Whether `head` (at least 512 bytes of an uncompressed stream) looks like a tar header: the checksum field
/// matches, as Go's archive/tar checks.
pub fn looks_like_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    let field = String::from_utf8_lossy(&head[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}

fn read_head<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn external<R: Read + Send + 'static>(tool: &str, input: R) -> io::Result<Box<dyn Read>> {
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{tool}: {e} (install Debian's {tool} package)"),
            )
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    // Feed from a thread so a large archive cannot deadlock on the pipes.
    std::thread::spawn(move || {
        let mut input = input;
        let _ = io::copy(&mut input, &mut stdin);
    });
    Ok(Box::new(ChildReader { child, stdout }))
}

struct ChildReader {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let st = self.child.wait()?;
            if !st.success() {
                return Err(io::Error::other(format!("decompressor failed: {st}")));
            }
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        // Reap the decompressor (it ends once its stdout is gone) so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wraps `r` in the decoder its magic number calls for (none when uncompressed).
pub fn decompress<R: Read + Send + 'static>(mut r: R) -> io::Result<Box<dyn Read>> {
    let head = read_head(&mut r, 8)?;
    let kind = detect(&head);
    let full = Cursor::new(head).chain(r);
    Ok(match kind {
        Compression::None => Box::new(full),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(full)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(full)?),
        Compression::Bzip2 => external("bzip2", full)?,
        Compression::Xz => external("xz", full)?,
    })
}

/// Whether the file at `p` is a (possibly compressed) tar archive, which ADD extracts instead of copying.
pub fn is_archive(p: &std::path::Path) -> io::Result<bool> {
    let f = std::fs::File::open(p)?;
    let mut d = match decompress(f) {
        Ok(d) => d,
        Err(_) => return Ok(false),
    };
    Ok(read_head(&mut d, 512)
        .map(|h| looks_like_tar(&h))
        .unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn detects_and_decodes_gzip_zstd_and_plain() {
        let t = tar_bytes();
        assert!(looks_like_tar(&t));
        assert!(!looks_like_tar(&[0u8; 512]));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&t).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&t[..], 3).unwrap();
        for (data, kind) in [
            (t.clone(), Compression::None),
            (gz, Compression::Gzip),
            (zs, Compression::Zstd),
        ] {
            assert_eq!(detect(&data), kind);
            let mut out = Vec::new();
            decompress(Cursor::new(data))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, t);
        }
    }

    #[test]
    fn bzip2_and_xz_through_tools() {
        let t = tar_bytes();
        for tool in ["bzip2", "xz"] {
            let Ok(mut child) = Command::new(tool)
                .arg("-c")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
            else {
                eprintln!("skipping {tool}: tool not installed");
                continue;
            };
            let mut stdin = child.stdin.take().unwrap();
            let data = t.clone();
            let w = std::thread::spawn(move || stdin.write_all(&data));
            let mut comp = Vec::new();
            child.stdout.take().unwrap().read_to_end(&mut comp).unwrap();
            w.join().unwrap().unwrap();
            child.wait().unwrap();
            assert_ne!(detect(&comp), Compression::None, "{tool}");
            let mut out = Vec::new();
            decompress(Cursor::new(comp))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, t, "{tool}");
        }
    }
}
