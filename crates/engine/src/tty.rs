//! Terminal helpers shared by the daemon and the CLI: docker's detach keys (`ctrl-p,ctrl-q`, `--detach-keys`,
//! the attach API's `detachKeys`) and window resizes of a container process' terminal.
//!
//! Detaching works like moby's `term.NewEscapeProxy`: bytes that could start the sequence are held back; a full
//! match ends the input stream (the keys themselves are never forwarded), a mismatch releases what was held.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// Errors of terminal handling.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// A `--detach-keys` value docker would refuse.
    #[error("Invalid detach keys ({0}) provided")]
    BadKeys(String),
    /// The process' stdin could not be opened or is not a terminal.
    #[error("{0}")]
    NotTerminal(String),
    /// The resize ioctl failed.
    #[error("resizing the terminal: {0}")]
    Resize(std::io::Error),
}

/// docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

/// Parses docker's detach-key syntax (moby `term.ToBytes`): comma-separated keys, each a single character or
/// `ctrl-X` with X one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`. Empty means the default sequence.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, TtyError> {
    if spec.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let bad = || TtyError::BadKeys(spec.to_string());
    let mut out = Vec::new();
    for key in spec.split(',').map(str::trim) {
        let lower = key.to_ascii_lowercase();
        if let Some(c) = lower.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [c @ b'a'..=b'z'] => c - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(b);
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Watches an input stream for the detach sequence.
#[derive(Debug, Clone)]
pub struct EscapeProxy {
    keys: Vec<u8>,
    /// How many bytes of `keys` the input has matched so far (held back, not yet forwarded).
    pos: usize,
}

impl EscapeProxy {
    /// A proxy for `keys` (an empty sequence never detaches).
    pub fn new(keys: Vec<u8>) -> EscapeProxy {
        EscapeProxy { keys, pos: 0 }
    }

    /// Feeds `input`; returns the bytes to forward, and whether the sequence completed (input after it is
    /// dropped: the client detached).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.pos] {
                self.pos += 1;
                if self.pos == self.keys.len() {
                    self.pos = 0;
                    return (out, true);
                }
                continue;
            }
            // A broken partial match: what was held is ordinary input after all.
            out.extend_from_slice(&self.keys[..self.pos]);
            self.pos = 0;
            if b == self.keys[0] {
                self.pos = 1;
                if self.keys.len() == 1 {
                    self.pos = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Sets the window size of the terminal that process `pid` has as its stdin. The terminal is reached through
/// `/proc/<pid>/fd/0` (a magic link to the open file, so no container-controlled path is resolved) and must
/// still be a terminal.
pub fn resize_process_tty(pid: i32, height: u16, width: u16) -> Result<(), TtyError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(format!("/proc/{pid}/fd/0"))
        .map_err(|e| TtyError::NotTerminal(format!("opening the process' terminal: {e}")))?;
    // SAFETY: isatty only inspects the fd.
    if unsafe { libc::isatty(f.as_raw_fd()) } != 1 {
        return Err(TtyError::NotTerminal(
            "the process' stdin is not a terminal".into(),
        ));
    }
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid for the call.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(TtyError::Resize(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_key_specs() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-x,a").unwrap(), vec![24, b'a']);
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,ctrl-_").unwrap(),
            vec![0, 27, 31]
        );
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("abc").is_err());
        assert_eq!(
            parse_detach_keys("ctrl-").unwrap_err().to_string(),
            "Invalid detach keys (ctrl-) provided"
        );
    }

    #[test]
    fn escape_proxy_holds_and_releases() {
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(b"ab"), (b"ab".to_vec(), false));
        // A lone ctrl-p is held until the next byte decides.
        assert_eq!(p.feed(&[16]), (vec![], false));
        assert_eq!(p.feed(b"x"), (vec![16, b'x'], false));
        // ctrl-p ctrl-p ctrl-q: the first is released, the pair detaches.
        assert_eq!(p.feed(&[16, 16, 17, b'z']), (vec![16], true));
        // Split across reads.
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(b"ls\r\x10"), (b"ls\r".to_vec(), false));
        assert_eq!(p.feed(&[17]), (vec![], true));
        let mut none = EscapeProxy::new(vec![]);
        assert_eq!(none.feed(&[16, 17]), (vec![16, 17], false));
    }
}
