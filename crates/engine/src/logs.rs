//! json-file logs: `<container dir>/<id>-json.log`, one `{"log":"...\n","stream":"stdout","time":"..."}` per
//! line, rotated by `max-size`/`max-file` into `<id>-json.log.1`, `.2`, ... (oldest has the highest number).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors from logging.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// I/O on the log file.
    #[error("log file {0}: {1}")]
    Io(PathBuf, io::Error),
}

/// One log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The text, including its trailing newline when there was one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

/// Appends entries, rotating by size.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

impl Writer {
    /// Opens `path` for appending; `max_size` None means never rotate.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| LogError::Io(path.to_path_buf(), e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [vec![], vec![]],
        })
    }

    /// Feeds raw output from stream 1 (stdout) or 2 (stderr); complete lines are written out.
    pub fn feed(&mut self, stream: u8, data: &[u8]) -> Result<(), LogError> {
        let idx = if stream == 2 { 1 } else { 0 };
        self.partial[idx].extend_from_slice(data);
        while let Some(pos) = self.partial[idx].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[idx].drain(..=pos).collect();
            self.write_entry(stream, &line)?;
        }
        // Docker flushes very long lines in 16K pieces rather than buffering without bound.
        if self.partial[idx].len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.partial[idx]);
            self.write_entry(stream, &line)?;
        }
        Ok(())
    }

    /// Whether a line without its newline yet is held back.
    pub fn has_partial(&self) -> bool {
        self.partial.iter().any(|p| !p.is_empty())
    }

    /// Writes out whatever partial lines remain (at EOF).
    pub fn flush_partial(&mut self) -> Result<(), LogError> {
        for (idx, stream) in [(0, 1u8), (1, 2u8)] {
            if !self.partial[idx].is_empty() {
                let line = std::mem::take(&mut self.partial[idx]);
                self.write_entry(stream, &line)?;
            }
        }
        Ok(())
    }

    fn write_entry(&mut self, stream: u8, line: &[u8]) -> Result<(), LogError> {
        let e = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: if stream == 2 {
                "stderr".into()
            } else {
                "stdout".into()
            },
            time: crate::record::now_rfc3339(),
        };
        let mut data = serde_json::to_vec(&e).unwrap_or_default();
        data.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + data.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file
            .write_all(&data)
            .map_err(|e| LogError::Io(self.path.clone(), e))?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let err = |p: &Path| {
            let p = p.to_path_buf();
            move |e| LogError::Io(p, e)
        };
        if self.max_file > 1 {
            for n in (1..self.max_file).rev() {
                let from = rotated(&self.path, n - 1);
                if from.exists() {
                    fs::rename(&from, rotated(&self.path, n)).map_err(err(&from))?;
                }
            }
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(err(&self.path))?;
        } else {
            self.file.set_len(0).map_err(err(&self.path))?;
        }
        self.size = 0;
        Ok(())
    }
}

/// `path` for n == 0, `path.n` otherwise.
fn rotated(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        path.to_path_buf()
    } else {
        PathBuf::from(format!("{}.{n}", path.display()))
    }
}

/// Reads all entries, oldest first, across rotated files.
pub fn read_all(path: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        n += 1;
    }
    for i in (0..n).rev() {
        if let Ok(f) = File::open(rotated(path, i)) {
            out.extend(
                BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| serde_json::from_str(&l).ok()),
            );
        }
    }
    out
}

/// Follows the current log file from a byte offset: returns new entries and the new offset. A file that shrank
/// (rotated or truncated) is read again from the start.
pub fn read_from(path: &Path, offset: u64) -> (Vec<Entry>, u64) {
    let Ok(mut f) = File::open(path) else {
        return (vec![], 0);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if len < offset { 0 } else { offset };
    if f.seek(SeekFrom::Start(start)).is_err() {
        return (vec![], offset);
    }
    let mut r = BufReader::new(f);
    let mut pos = start;
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            // A line still being written: leave it for the next round.
            Ok(_) if !line.ends_with('\n') => break,
            Ok(n) => {
                pos += n as u64;
                if let Ok(e) = serde_json::from_str(line.trim_end()) {
                    out.push(e);
                }
            }
        }
    }
    (out, pos)
}

/// Current size of the log file (where a follower starts).
pub fn current_offset(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Encodes one frame of docker's multiplexed stream: `[stream, 0, 0, 0, len(be32)] payload`.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.push(stream);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_partial_and_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x-json.log");
        let mut w = Writer::open(&p, Some(200), 3).unwrap();
        w.feed(1, b"hello\nwor").unwrap();
        w.feed(2, b"oops\n").unwrap();
        w.feed(1, b"ld\n").unwrap();
        w.feed(1, b"tail").unwrap();
        w.flush_partial().unwrap();
        let all = read_all(&p);
        let logs: Vec<&str> = all.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(logs, ["hello\n", "oops\n", "world\n", "tail"]);
        assert_eq!(all[1].stream, "stderr");
        for i in 0..20 {
            w.feed(1, format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists() && !rotated(&p, 3).exists());
        let all = read_all(&p);
        assert_eq!(all.last().unwrap().log, "line 19\n");
        assert!(fs::metadata(&p).unwrap().len() <= 200);
        let (entries, off) = read_from(&p, 0);
        assert!(!entries.is_empty());
        assert_eq!(off, current_offset(&p));
        assert_eq!(frame(1, b"hi"), vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }
}
