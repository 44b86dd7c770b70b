//! The json-file log writer, byte-for-byte the format of `berth_engine::logs::Writer` (which berthd reads):
//! one `{"log":"...","stream":"stdout","time":"<RFC 3339, nanoseconds, Z>"}` line per output line, long lines
//! cut in 16 KiB pieces, rotation by `max-size`/`max-file` into `<log>.1`, `<log>.2`, ... (oldest highest).
//!
//! Written by hand (no serde, no chrono) so the shim stays small: the escaping follows serde_json's (the
//! engine's writer uses it) and the time is formatted from `clock_gettime` with a civil-date conversion.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Errors of the log writer.
#[derive(Debug)]
pub enum LogError {
    /// I/O on the log file or a rotated one.
    Io(PathBuf, io::Error),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io(p, e) => write!(f, "log file {}: {e}", p.display()),
        }
    }
}

/// Lines longer than this are written in pieces (docker does the same).
const MAX_LINE: usize = 16 * 1024;

/// Appends entries to the log, rotating by size.
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    partial: [Vec<u8>; 2],
    /// Reused for every entry, so a steady stream of output does not allocate.
    line: Vec<u8>,
}

impl Writer {
    /// Opens `path` for appending; `max_size` None means never rotate.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> Result<Self, LogError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
            line: Vec::new(),
        })
    }

    /// Feeds raw output of stream 1 (stdout) or 2 (stderr); complete lines are written out.
    pub fn feed(&mut self, stream: u8, data: &[u8]) -> Result<(), LogError> {
        let idx = usize::from(stream == 2);
        let mut rest = data;
        // Fast path: whole lines straight from the read buffer, without copying them into `partial` first.
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(pos + 1);
            rest = tail;
            if self.partial[idx].is_empty() {
                self.write_entry(stream, line)?;
            } else {
                let mut p = std::mem::take(&mut self.partial[idx]);
                p.extend_from_slice(line);
                let r = self.write_entry(stream, &p);
                p.clear();
                self.partial[idx] = p;
                r?;
            }
        }
        self.partial[idx].extend_from_slice(rest);
        if self.partial[idx].len() >= MAX_LINE {
            let mut p = std::mem::take(&mut self.partial[idx]);
            let r = self.write_entry(stream, &p);
            p.clear();
            self.partial[idx] = p;
            r?;
        }
        Ok(())
    }

    /// Writes out whatever partial lines remain (at exit, or after each read for a TTY).
    pub fn flush_partial(&mut self) -> Result<(), LogError> {
        for (idx, stream) in [(0usize, 1u8), (1, 2)] {
            if !self.partial[idx].is_empty() {
                let mut p = std::mem::take(&mut self.partial[idx]);
                let r = self.write_entry(stream, &p);
                p.clear();
                self.partial[idx] = p;
                r?;
            }
        }
        Ok(())
    }

    fn write_entry(&mut self, stream: u8, text: &[u8]) -> Result<(), LogError> {
        let mut data = std::mem::take(&mut self.line);
        data.clear();
        data.extend_from_slice(b"{\"log\":\"");
        escape_into(&mut data, &String::from_utf8_lossy(text));
        data.extend_from_slice(if stream == 2 {
            b"\",\"stream\":\"stderr\",\"time\":\""
        } else {
            b"\",\"stream\":\"stdout\",\"time\":\""
        });
        data.extend_from_slice(rfc3339_nano_now().as_bytes());
        data.extend_from_slice(b"\"}\n");
        let r = self.append(&data);
        self.line = data;
        r
    }

    fn append(&mut self, data: &[u8]) -> Result<(), LogError> {
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + data.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file
            .write_all(data)
            .map_err(|e| LogError::Io(self.path.clone(), e))?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        if self.max_file > 1 {
            for n in (1..self.max_file).rev() {
                let from = rotated(&self.path, n - 1);
                if from.exists() {
                    fs::rename(&from, rotated(&self.path, n)).map_err(|e| LogError::Io(from, e))?;
                }
            }
            self.file = open_append(&self.path)?;
        } else {
            self.file
                .set_len(0)
                .map_err(|e| LogError::Io(self.path.clone(), e))?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LogError::Io(path.to_path_buf(), e))
}

/// `path` for n == 0, `path.n` otherwise.
fn rotated(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        path.to_path_buf()
    } else {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }
}

/// Appends `s` as the inside of a JSON string, escaped like serde_json does.
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
}

/// The current UTC time as RFC 3339 with nanoseconds, e.g. `2026-11-28T14:46:04.012345678Z` (chrono's
/// `to_rfc3339_opts(Nanos, true)`, which the rest of berth writes).
pub fn rfc3339_nano_now() -> String {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer that is valid for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    format_rfc3339_nano(ts.tv_sec, ts.tv_nsec as u32)
}

/// Formats seconds since the epoch plus nanoseconds (see [`rfc3339_nano_now`]).
pub fn format_rfc3339_nano(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_rfc3339_nano(0, 0), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T23:59:59.5Z (a leap day).
        assert_eq!(
            format_rfc3339_nano(1_709_251_199, 500_000_000),
            "2024-02-29T23:59:59.500000000Z"
        );
        assert_eq!(
            format_rfc3339_nano(1_795_877_164, 7),
            "2026-11-28T14:46:04.000000007Z"
        );
        assert_eq!(
            format_rfc3339_nano(951_782_400, 1),
            "2000-02-29T00:00:00.000000001Z"
        );
        let now = rfc3339_nano_now();
        assert_eq!(now.len(), 30, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T');
    }

    #[test]
    fn escaping() {
        let mut v = Vec::new();
        escape_into(&mut v, "a\"b\\c\n\t\r\u{1}\u{8}\u{c}\u{7f}é");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "a\\\"b\\\\c\\n\\t\\r\\u0001\\b\\f\u{7f}é"
        );
    }

    #[test]
    fn lines_partial_and_rotation() {
        let dir = std::env::temp_dir().join(format!("berth-shim-log-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x-json.log");
        let mut w = Writer::open(&p, Some(300), 3).unwrap();
        w.feed(1, b"hello\nwor").unwrap();
        w.feed(2, b"oops\n").unwrap();
        w.feed(1, b"ld\n").unwrap();
        w.feed(1, b"tail").unwrap();
        w.flush_partial().unwrap();
        let text = fs::read_to_string(&p).unwrap();
        let logs: Vec<&str> = text
            .lines()
            .map(|l| l.split("\",\"stream\"").next().unwrap())
            .collect();
        assert_eq!(
            logs,
            [
                "{\"log\":\"hello\\n",
                "{\"log\":\"oops\\n",
                "{\"log\":\"world\\n",
                "{\"log\":\"tail"
            ]
        );
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .contains("\"stream\":\"stderr\""));
        for i in 0..30 {
            w.feed(1, format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists() && !rotated(&p, 3).exists());
        assert!(fs::metadata(&p).unwrap().len() <= 300);
        assert!(fs::read_to_string(&p).unwrap().contains("line 29\\n"));
        let long = vec![b'x'; MAX_LINE + 10];
        w.feed(1, &long).unwrap();
        let last = fs::read_to_string(&p).unwrap();
        assert!(last.lines().last().unwrap().len() > MAX_LINE);
        fs::remove_dir_all(&dir).unwrap();
    }
}
