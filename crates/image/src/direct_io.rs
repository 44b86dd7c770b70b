//! Large writes with `O_DIRECT`: bytes go from our buffer to the disk, not through the page cache.
//!
//! A pull writes every byte twice over: the compressed blob (kept for push and save, read by nobody until
//! then) and the unpacked files. Buffered, each byte is first copied into a fresh page-cache page, and that
//! copy is the biggest kernel cost of a pull (`copy_folio_from_iter_atomic` was a quarter of berthd's CPU
//! samples on the bench image; a buffered `dd` of 200 MB costs 0.3 s of system time here, a direct one
//! 0.05 s). Direct writes skip the copy and leave nothing dirty for the commit's `syncfs` to write; the
//! `syncfs` still flushes the device's write cache, so durability is unchanged.
//!
//! Only whole [`ALIGN`]-sized blocks from an aligned buffer go direct; a file's unaligned tail is written
//! buffered after `O_DIRECT` is turned off again. A file system that refuses `O_DIRECT` (at `fcntl` or at
//! the first write: some FUSE and network file systems, tmpfs before Linux 6.6) gets buffered writes.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

/// Alignment of buffers, offsets and lengths of direct writes: a page, which is also the largest logical
/// block size of common disks.
pub(crate) const ALIGN: usize = 4096;
/// Size of the buffer a [`DirectWriter`] writes from.
pub(crate) const BUF_SIZE: usize = 1 << 20;

/// A zeroed heap buffer of [`BUF_SIZE`] bytes aligned to [`ALIGN`].
pub(crate) struct AlignedBuf(NonNull<u8>);

// SAFETY: the buffer is plain owned memory, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    fn layout() -> Layout {
        Layout::from_size_align(BUF_SIZE, ALIGN).expect("valid layout")
    }

    pub(crate) fn new() -> Self {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(Self::layout()) };
        AlignedBuf(
            NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(Self::layout())),
        )
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is BUF_SIZE bytes, initialised (zeroed) and owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), BUF_SIZE) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout, freed only here.
        unsafe { dealloc(self.0.as_ptr(), Self::layout()) }
    }
}

/// Sets or clears `O_DIRECT` on `fd`.
fn set_direct(fd: &impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an fd the caller keeps open; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        if new != flags && libc::fcntl(fd, libc::F_SETFL, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Writes a file from its start, whole blocks directly when the file system allows. Call
/// [`DirectWriter::finish`] at the end: it writes the tail and gives the file and buffer back.
pub(crate) struct DirectWriter<F: Write + AsFd> {
    out: F,
    buf: AlignedBuf,
    len: usize,
    direct: bool,
}

impl<F: Write + AsFd> DirectWriter<F> {
    /// `out` must be open for writing at offset 0 (direct writes need aligned offsets).
    pub(crate) fn new(out: F, buf: AlignedBuf) -> Self {
        let direct = set_direct(&out, true).is_ok();
        DirectWriter {
            out,
            buf,
            len: 0,
            direct,
        }
    }

    /// Whether writes still go direct (false after a fallback to buffered writes).
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// The file written to.
    pub(crate) fn file(&self) -> &F {
        &self.out
    }

    /// Bytes accepted but not yet written to the file.
    pub(crate) fn buffered(&self) -> usize {
        self.len
    }

    /// Writes `self.buf[..n]` (`n` a multiple of [`ALIGN`] while direct) and keeps the rest.
    fn drain(&mut self, n: usize) -> io::Result<()> {
        let mut done = 0;
        while done < n {
            let chunk = &self.buf.bytes()[done..n];
            let r = if self.direct {
                // SAFETY: `chunk` is valid for reads of its length; the fd stays open for the call.
                unsafe {
                    libc::write(
                        self.out.as_fd().as_raw_fd(),
                        chunk.as_ptr().cast(),
                        chunk.len(),
                    )
                }
            } else {
                match self.out.write(chunk) {
                    Ok(k) => k as isize,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // The file system takes O_DIRECT at open but not these writes: carry on buffered.
                    Some(libc::EINVAL) => {
                        set_direct(&self.out, false)?;
                        self.direct = false;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            if r == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += r as usize;
            // A short direct write leaves an unaligned offset: the rest cannot go direct.
            if self.direct && done % ALIGN != 0 {
                set_direct(&self.out, false)?;
                self.direct = false;
            }
        }
        self.buf.bytes().copy_within(n..self.len, 0);
        self.len -= n;
        Ok(())
    }

    /// Copies `r` to the end into the file, reading straight into the aligned buffer. Returns the bytes read.
    pub(crate) fn copy_from(&mut self, r: &mut dyn Read) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            if self.len == BUF_SIZE {
                self.drain(BUF_SIZE)?;
            }
            let free = &mut self.buf.bytes()[self.len..];
            match r.read(free) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    self.len += n;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes everything buffered: whole blocks direct, then an unaligned tail buffered with `O_DIRECT` off
    /// for good (the file offset is no longer aligned).
    fn write_out(&mut self) -> io::Result<()> {
        let whole = self.len / ALIGN * ALIGN;
        if self.direct && whole > 0 {
            self.drain(whole)?;
        }
        if self.direct && self.len > 0 {
            set_direct(&self.out, false)?;
            self.direct = false;
        }
        let rest = self.len;
        self.drain(rest)
    }

    /// Writes what is buffered and returns the file, with `O_DIRECT` off again, and the buffer for the next
    /// file.
    pub(crate) fn finish(mut self) -> io::Result<(F, AlignedBuf)> {
        self.write_out()?;
        if self.direct {
            set_direct(&self.out, false)?;
        }
        Ok((self.out, self.buf))
    }
}

impl<F: Write + AsFd> Write for DirectWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.len == BUF_SIZE {
            self.drain(BUF_SIZE)?;
        }
        let n = data.len().min(BUF_SIZE - self.len);
        self.buf.bytes()[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        Ok(n)
    }

    /// Everything written so far reaches the file (and a `syncfs` after this covers it); an unaligned tail
    /// makes later writes buffered.
    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Sizes around the block and buffer boundaries come back byte for byte, through `write` and through
    /// `copy_from`, and the file ends up without O_DIRECT (later buffered writers of the fd are unaffected).
    #[test]
    fn writes_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        for (i, n) in [
            0,
            1,
            4095,
            4096,
            4097,
            BUF_SIZE,
            BUF_SIZE + 1,
            3 * BUF_SIZE + 12345,
        ]
        .into_iter()
        .enumerate()
        {
            let data = pattern(n);
            for via_copy in [false, true] {
                let p = dir.path().join(format!("f{i}-{via_copy}"));
                let f = fs::File::create(&p).unwrap();
                let mut w = DirectWriter::new(f, AlignedBuf::new());
                if via_copy {
                    assert_eq!(w.copy_from(&mut &data[..]).unwrap(), n as u64);
                } else {
                    for c in data.chunks(100_000) {
                        w.write_all(c).unwrap();
                    }
                }
                let (f, _) = w.finish().unwrap();
                // SAFETY: F_GETFL on an open fd.
                let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
                assert_eq!(flags & libc::O_DIRECT, 0);
                drop(f);
                assert!(fs::read(&p).unwrap() == data, "size {n}");
            }
        }
    }

    /// Where the file system takes O_DIRECT (ext4, xfs, btrfs), whole blocks really bypass the page cache:
    /// none of the file's pages is resident afterwards.
    #[test]
    fn whole_blocks_bypass_the_page_cache_where_supported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        let f = fs::File::create(&p).unwrap();
        let mut w = DirectWriter::new(f, AlignedBuf::new());
        w.write_all(&pattern(2 * BUF_SIZE)).unwrap();
        let (f, _) = w.finish().unwrap();
        if !direct_supported(&f) {
            eprintln!("skipped: the temp dir's file system refuses O_DIRECT");
            return;
        }
        let f = fs::File::open(&p).unwrap();
        let pages = 2 * BUF_SIZE / 4096;
        let mut vec = vec![0u8; pages];
        // SAFETY: a fresh shared read-only mapping of the file's 2 MiB, unmapped below; `vec` has one byte per
        // page for mincore.
        unsafe {
            let m = libc::mmap(
                std::ptr::null_mut(),
                2 * BUF_SIZE,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(m, libc::MAP_FAILED);
            assert_eq!(libc::mincore(m, 2 * BUF_SIZE, vec.as_mut_ptr()), 0);
            libc::munmap(m, 2 * BUF_SIZE);
        }
        let resident = vec.iter().filter(|b| *b & 1 == 1).count();
        assert_eq!(
            resident, 0,
            "{resident} of {pages} pages went through the page cache"
        );
    }

    /// Whether a direct write of one aligned block works on `f`'s file system.
    fn direct_supported(f: &fs::File) -> bool {
        let mut w = DirectWriter::new(f, AlignedBuf::new());
        w.write_all(&[0u8; ALIGN]).unwrap();
        w.drain(ALIGN).unwrap();
        w.direct
    }
}
