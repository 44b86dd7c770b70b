//! sha256 digests and hashing readers/writers used to verify content while it streams.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};

/// Formats a sha256 hasher's result as `sha256:<hex>`.
pub fn finish(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_bytes(b: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b);
    finish(h)
}

/// Returns the hex part of a `sha256:<hex>` digest, or `None` when it is not one.
pub fn hex_part(d: &str) -> Option<&str> {
    let h = d.strip_prefix("sha256:")?;
    (h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(h)
}

/// A reader that hashes and counts everything read through it.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Reads the rest of the stream (e.g. tar padding after the end marker) so the digest covers it all.
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }
    pub fn finish(self) -> (String, u64, R) {
        (finish(self.hasher), self.count, self.inner)
    }
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn finish(self) -> (String, u64, W) {
        (finish(self.hasher), self.count, self.inner)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that copies everything it reads into a writer (used to keep the compressed blob while unpacking).
pub struct TeeReader<R, W> {
    inner: R,
    out: Option<W>,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    pub fn new(inner: R, out: Option<W>) -> Self {
        TeeReader { inner, out }
    }
    pub fn into_parts(self) -> (R, Option<W>) {
        (self.inner, self.out)
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(o) = self.out.as_mut() {
            o.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}
