//! A bounded pipe of large chunks between two threads of a pull: the download thread and the decompressing
//! thread, and the decompressing thread and the unpacking thread. On 2+ cores the stages run at once
//! (a layer's sha256 of the compressed stream and inflate on one core, the sha256 of the tar and the file
//! writes on another), and each stage works on 1 MiB buffers whatever the stage before it read at a time.
//! The reader hands each chunk back when it is done with it, so a pipe allocates a handful of chunks, not
//! one per MiB (a fresh 1 MiB allocation is an mmap whose pages the kernel zeroes on first touch).

use std::io::{self, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// Size of the chunks handed from one stage to the next.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks in flight: bounds how far (in memory) a stage can run ahead of the next.
const CHUNKS_AHEAD: usize = 4;

/// The reading end.
pub(crate) struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    /// Chunks read to the end go back to the writing end for reuse.
    recycle: Sender<Vec<u8>>,
}

/// The writing end, for [`pump`].
pub(crate) struct ChunkSender {
    tx: SyncSender<io::Result<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    let done = std::mem::replace(&mut self.cur, c);
                    if done.capacity() == CHUNK {
                        let _ = self.recycle.send(done); // The writer may be gone: then it is dropped.
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // The writer is done: end of stream.
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A new pipe: the sending end for [`pump`] and the reading end.
pub(crate) fn pipe() -> (ChunkSender, ChunkReader) {
    let (tx, rx) = sync_channel(CHUNKS_AHEAD);
    let (recycle, recycled) = channel();
    (
        ChunkSender { tx, recycled },
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            recycle,
        },
    )
}

/// Why [`pump`] stopped early.
pub(crate) enum PumpError {
    /// Reading `r` failed (the error was also sent down the pipe, so the reader sees a failed stream).
    Read(io::Error),
    /// The reading end was dropped: the next stage gave up and has its own error.
    Closed,
}

/// Copies `r` into the pipe in [`CHUNK`]-sized chunks (gathering short reads) until `r` ends.
pub(crate) fn pump(r: &mut dyn Read, sender: &ChunkSender) -> Result<u64, PumpError> {
    let tx = &sender.tx;
    let mut total = 0u64;
    loop {
        let mut chunk = match sender.recycled.try_recv() {
            Ok(mut c) => {
                c.resize(CHUNK, 0);
                c
            }
            Err(_) => vec![0u8; CHUNK],
        };
        let mut n = 0;
        while n < CHUNK {
            match r.read(&mut chunk[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(PumpError::Read(e));
                }
            }
        }
        if n == 0 {
            return Ok(total);
        }
        chunk.truncate(n);
        total += n as u64;
        let last = n < CHUNK;
        tx.send(Ok(chunk)).map_err(|_| PumpError::Closed)?;
        if last {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that returns at most `step` bytes per read, like a socket.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Many chunks through recycled buffers arrive intact and in order, whatever the read sizes on each side.
    #[test]
    fn recycled_chunks_carry_the_stream_intact() {
        let data: Vec<u8> = (0..(9 * CHUNK + 777))
            .map(|i| (i * 31 % 253) as u8)
            .collect();
        let (tx, mut rx) = pipe();
        let got = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let mut out = Vec::new();
                let mut buf = vec![0u8; 100_003];
                loop {
                    match rx.read(&mut buf).unwrap() {
                        0 => return out,
                        n => out.extend_from_slice(&buf[..n]),
                    }
                }
            });
            let mut src = Trickle {
                data: &data,
                step: 300_000,
            };
            assert!(matches!(pump(&mut src, &tx), Ok(n) if n == data.len() as u64));
            drop(tx);
            reader.join().unwrap()
        });
        assert!(got == data);
    }
}
