//! Blobs: `image/blobs/sha256/<hex>`, streamed to a temp file, hashed, fsynced and renamed into place only
//! when the digest matches.

use super::{fsync_dir, io_err, Store, StoreError, TempPath};
use crate::digest::{hex_part, HashWriter};
use crate::direct_io::{AlignedBuf, DirectWriter};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// A blob being written. Dropping it without [`BlobWriter::commit`] removes the temp file.
pub struct BlobWriter<'a> {
    store: &'a Store,
    tmp: TempPath<'a>,
    /// Direct writes where the file system allows: nobody reads a blob soon after it is written (see
    /// [`crate::direct_io`]).
    w: DirectWriter<File>,
    /// `None` for a writer whose caller hashes the same bytes itself (see [`Store::blob_writer_prehashed`]).
    hasher: Option<HashWriter<io::Sink>>,
    /// Bytes written, and bytes whose writeback was started.
    written: u64,
    flushed: u64,
}

/// Where the blob is written buffered (no `O_DIRECT`), its writeback is started every this many bytes (see
/// [`crate::layer_fs::start_writeback`]).
const WRITEBACK_CHUNK: u64 = 8 << 20;

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.write_all(&buf[..n])?;
        }
        self.written += n as u64;
        if !self.w.is_direct() && self.written - self.flushed >= WRITEBACK_CHUNK {
            // Only what reached the file: the writer may still hold the tail.
            let f = self.w.file();
            let upto = self.written - self.w.buffered() as u64;
            if upto > self.flushed {
                crate::layer_fs::start_writeback(f, self.flushed, upto - self.flushed);
                self.flushed = upto;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

impl<'a> BlobWriter<'a> {
    /// Verifies the digest (when `expected` is given) and moves the blob into the store.
    /// Returns the digest and size. On mismatch nothing is left behind.
    pub fn commit(self, expected: Option<&str>) -> Result<(String, u64), StoreError> {
        self.commit_inner(expected, true)
    }

    /// Like [`BlobWriter::commit`] for a blob already made durable by the caller's `syncfs` (after a
    /// [`Write::flush`]): no fsync of the file, and the caller fsyncs the blob directory.
    pub(crate) fn commit_synced(self, expected: Option<&str>) -> Result<(String, u64), StoreError> {
        self.commit_inner(expected, false)
    }

    fn commit_inner(self, expected: Option<&str>, sync: bool) -> Result<(String, u64), StoreError> {
        let BlobWriter {
            store,
            tmp,
            w: bw,
            hasher,
            written: size,
            ..
        } = self;
        let digest = match (hasher, expected) {
            (Some(h), _) => h.finish().0,
            // Prehashed: the caller computed `expected` over exactly the bytes written.
            (None, Some(e)) => e.to_string(),
            (None, None) => {
                return Err(StoreError::Corrupt {
                    path: tmp.path.display().to_string(),
                    msg: "a prehashed blob committed without its digest".into(),
                })
            }
        };
        if let Some(e) = expected {
            if e != digest {
                return Err(StoreError::DigestMismatch {
                    expected: e.into(),
                    actual: digest,
                });
            }
        }
        let (f, _) = bw.finish().map_err(io_err(&tmp.path))?;
        if sync {
            f.sync_all().map_err(io_err(&tmp.path))?;
        }
        drop(f);
        let dst = store.blob_path(&digest)?;
        if !dst.exists() {
            fs::rename(&tmp.path, &dst).map_err(io_err(&dst))?;
            if sync {
                fsync_dir(dst.parent().expect("blob dir"))?;
            }
        }
        Ok((digest, size))
    }

    /// Digest of what was written so far is only known at commit; this gives the temp path for readers.
    pub fn temp_path(&self) -> &std::path::Path {
        &self.tmp.path
    }
}

impl Store {
    /// Path of a blob by digest (which must be `sha256:<64 hex>`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let h = hex_part(digest).ok_or_else(|| StoreError::Corrupt {
            path: digest.into(),
            msg: "not a sha256 digest".into(),
        })?;
        Ok(self.image_dir().join("blobs/sha256").join(h))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File, StoreError> {
        let p = self.blob_path(digest)?;
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob(digest.into())
            } else {
                io_err(&p)(e)
            }
        })
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let mut v = Vec::new();
        let p = self.blob_path(digest)?;
        self.open_blob(digest)?
            .read_to_end(&mut v)
            .map_err(io_err(&p))?;
        Ok(v)
    }

    /// Starts writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>, StoreError> {
        self.new_blob_writer(true)
    }

    /// Starts writing a blob whose bytes the caller hashes itself (a layer's compressed stream is hashed
    /// while it is unpacked: hashing it twice cost a fifth of a pull's sha256 time). Its commit must be
    /// given that digest, and it is trusted.
    pub(crate) fn blob_writer_prehashed(&self) -> Result<BlobWriter<'_>, StoreError> {
        self.new_blob_writer(false)
    }

    fn new_blob_writer(&self, hash: bool) -> Result<BlobWriter<'_>, StoreError> {
        let tmp = self.temp_path("blob");
        let f = File::create(&tmp.path).map_err(io_err(&tmp.path))?;
        Ok(BlobWriter {
            store: self,
            w: DirectWriter::new(f, AlignedBuf::new()),
            hasher: hash.then(|| HashWriter::new(io::sink())),
            tmp,
            written: 0,
            flushed: 0,
        })
    }

    /// Streams `r` into the store, refusing it when `expected` does not match.
    pub fn put_blob(
        &self,
        r: &mut dyn Read,
        expected: Option<&str>,
    ) -> Result<(String, u64), StoreError> {
        let mut w = self.blob_writer()?;
        let p = w.temp_path().to_path_buf();
        io::copy(r, &mut w).map_err(io_err(&p))?;
        w.commit(expected)
    }

    pub fn put_blob_bytes(&self, b: &[u8]) -> Result<String, StoreError> {
        let d = crate::digest::sha256_bytes(b);
        if self.has_blob(&d) {
            return Ok(d);
        }
        self.put_blob(&mut &b[..], Some(&d)).map(|(d, _)| d)
    }
}
