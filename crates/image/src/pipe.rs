//! A bounded pipe of large chunks between two threads of a pull: the download thread and the decompressing
//! thread, and the decompressing thread and the unpacking thread. On 2+ cores the stages run at once
//! (a layer's sha256 of the compressed stream and inflate on one core, the sha256 of the tar and the file
//! writes on another), and each stage works on 1 MiB buffers whatever the stage before it read at a time.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Size of the chunks handed from one stage to the next.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks in flight: bounds how far (in memory) a stage can run ahead of the next.
const CHUNKS_AHEAD: usize = 4;

/// The reading end.
pub(crate) struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
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
pub(crate) fn pipe() -> (SyncSender<io::Result<Vec<u8>>>, ChunkReader) {
    let (tx, rx) = sync_channel(CHUNKS_AHEAD);
    (
        tx,
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
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
pub(crate) fn pump(
    r: &mut dyn Read,
    tx: &SyncSender<io::Result<Vec<u8>>>,
) -> Result<u64, PumpError> {
    let mut total = 0u64;
    loop {
        let mut chunk = vec![0u8; CHUNK];
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
