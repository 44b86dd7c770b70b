//! A small blocking HTTP/1.1 client for the Engine API over a unix socket.
//!
//! One connection per request (like docker's CLI against a local socket): no pool, no async runtime,
//! so `berth ps` costs a couple of syscalls and two round trips (`/_ping` then the request).
//! Handles fixed-length, chunked and read-to-EOF bodies as streams, and hijacked (upgraded)
//! connections for attach.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde_json::Value;

/// The API version this client speaks at most.
pub const CLIENT_API_VERSION: &str = "1.47";

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The socket could not be reached.
    #[error("Cannot connect to the berth daemon at unix://{path}. Is the berth daemon running?")]
    Connect { path: String, source: io::Error },
    /// An I/O error mid-request.
    #[error("error during connect: {0}")]
    Io(#[from] io::Error),
    /// The daemon sent something that is not HTTP as we know it.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon answered with an error status; `message` is its `{"message": ...}`.
    #[error("Error response from daemon: {message}")]
    Api { status: u16, message: String },
    /// A body that should have been JSON was not.
    #[error("invalid JSON from daemon: {0}")]
    Json(#[from] serde_json::Error),
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    None,
    /// A JSON document.
    Json(&'a Value),
    /// A stream sent with chunked transfer encoding (for `load`/`import` from stdin or a file).
    Stream(&'a mut dyn Read, &'a str),
}

/// The Engine API client: a socket path plus the negotiated version prefix.
#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    prefix: Option<String>,
    /// Extra headers sent with every request (e.g. `X-Registry-Auth` is added per call instead).
    user_agent: String,
}

/// A request already sent whose response has not been read yet.
pub struct Pending {
    stream: UnixStream,
    method: String,
}

impl Pending {
    /// Blocks for the response; error statuses become [`HttpError::Api`].
    pub fn response(self) -> Result<Response, HttpError> {
        Client::finish(self.stream, &self.method)?.check()
    }

    /// Whether the daemon has started answering within `timeout_ms` (dockerd and berthd send `wait`'s
    /// headers as soon as the waiter is registered, long before its body).
    pub fn answered_within(&self, timeout_ms: u16) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::from(timeout_ms)), Ok(n) if n > 0)
    }
}

/// A response whose body is read as a stream.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: BodyReader,
}

enum BodyReader {
    Length(io::Take<BufReader<UnixStream>>),
    Chunked(ChunkedReader),
    Eof(BufReader<UnixStream>),
}

struct ChunkedReader {
    inner: BufReader<UnixStream>,
    remaining: u64,
    done: bool,
}

impl Read for ChunkedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size.trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, then the final CRLF.
                loop {
                    line.clear();
                    if self.inner.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                self.done = true;
                return Ok(0);
            }
            self.remaining = size;
        }
        let want = buf.len().min(self.remaining as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated chunk",
            ));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.body {
            BodyReader::Length(r) => r.read(buf),
            BodyReader::Chunked(r) => r.read(buf),
            BodyReader::Eof(r) => r.read(buf),
        }
    }
}

impl Response {
    /// A header value, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        self.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Reads the whole body as JSON (`null` when empty).
    pub fn json(self) -> Result<Value, HttpError> {
        let bytes = self.bytes()?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Turns an error status into [`HttpError::Api`], reading docker's `{"message": ...}`.
    pub fn check(self) -> Result<Response, HttpError> {
        if self.status < 400 {
            return Ok(self);
        }
        let status = self.status;
        let bytes = self.bytes().unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        Err(HttpError::Api { status, message })
    }
}

/// Percent-encodes a query component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `path?k=v&...` from pairs, skipping none.
pub fn with_query(path: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", k, encode(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

impl Client {
    /// A client for the daemon at the unix socket `socket`.
    pub fn new(socket: PathBuf) -> Client {
        Client {
            socket,
            prefix: None,
            user_agent: format!("Berth-Client/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    fn connect(&self) -> Result<UnixStream, HttpError> {
        UnixStream::connect(&self.socket).map_err(|source| HttpError::Connect {
            path: self.socket.display().to_string(),
            source,
        })
    }

    /// The `/v1.XX` prefix: min(server's `Api-Version`, ours), negotiated once with `GET /_ping`.
    pub fn prefix(&mut self) -> Result<String, HttpError> {
        if let Some(p) = &self.prefix {
            return Ok(p.clone());
        }
        let resp = self.raw("GET", "/_ping", &[], Body::None)?;
        let server = resp.header("Api-Version").map(str::to_string);
        let _ = resp.bytes();
        let version = match server {
            Some(s) if version_less(&s, CLIENT_API_VERSION) => s,
            _ => CLIENT_API_VERSION.to_string(),
        };
        let p = format!("/v{version}");
        self.prefix = Some(p.clone());
        Ok(p)
    }

    /// The negotiated API version (without the `v`).
    pub fn api_version(&mut self) -> Result<String, HttpError> {
        Ok(self.prefix()?.trim_start_matches("/v").to_string())
    }

    fn write_request(
        &self,
        stream: &mut UnixStream,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
        upgrade: bool,
    ) -> Result<(), HttpError> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: {}\r\n",
            self.user_agent
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        }
        match body {
            Body::None => {
                if method == "POST" || method == "PUT" {
                    head.push_str("Content-Length: 0\r\n");
                }
                head.push_str("\r\n");
                stream.write_all(head.as_bytes())?;
            }
            Body::Json(v) => {
                let data = serde_json::to_vec(v)?;
                head.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    data.len()
                ));
                stream.write_all(head.as_bytes())?;
                stream.write_all(&data)?;
            }
            Body::Stream(reader, ctype) => {
                head.push_str(&format!(
                    "Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
                ));
                stream.write_all(head.as_bytes())?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            // Our body failed (not the socket): cut the request off, so the daemon sees a
                            // truncated body, and no answer is waited for (the daemon waits for the rest).
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                            return Err(e.into());
                        }
                    };
                    stream.write_all(format!("{n:x}\r\n").as_bytes())?;
                    stream.write_all(&buf[..n])?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")?;
            }
        }
        Ok(())
    }

    fn read_head(
        reader: &mut BufReader<UnixStream>,
    ) -> Result<(u16, Vec<(String, String)>), HttpError> {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(HttpError::Protocol("daemon closed the connection".into()));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| HttpError::Protocol(format!("bad status line {:?}", line.trim())))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Ok((status, headers))
    }

    /// Sends a request to an unversioned path and returns the streaming response (any status).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response, HttpError> {
        let mut stream = self.connect()?;
        if let Err(e) = self.write_request(&mut stream, method, path, headers, body, false) {
            // The daemon may answer (404, 413...) and close before reading our whole body: prefer its answer.
            return match Self::finish(stream, method) {
                Ok(r) => Ok(r),
                Err(_) => Err(e),
            };
        }
        Self::finish(stream, method)
    }

    /// Sends a request to a versioned API path; error statuses become [`HttpError::Api`].
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response, HttpError> {
        let full = format!("{}{}", self.prefix()?, path);
        self.raw(method, &full, headers, body)?.check()
    }

    /// `GET path` → JSON.
    pub fn get_json(&mut self, path: &str) -> Result<Value, HttpError> {
        self.request("GET", path, &[], Body::None)?.json()
    }

    /// `POST path` with an optional JSON body → JSON (null when empty).
    pub fn post_json(&mut self, path: &str, body: Option<&Value>) -> Result<Value, HttpError> {
        let b = body.map_or(Body::None, Body::Json);
        self.request("POST", path, &[], b)?.json()
    }

    /// `DELETE path` → JSON (null when empty).
    pub fn delete_json(&mut self, path: &str) -> Result<Value, HttpError> {
        self.request("DELETE", path, &[], Body::None)?.json()
    }

    /// Sends a request now and returns a handle to read its response later (used for `wait`, which must be
    /// registered before `start` but only answers when the container exits).
    pub fn send(&mut self, method: &str, path: &str) -> Result<Pending, HttpError> {
        let full = format!("{}{}", self.prefix()?, path);
        let mut stream = self.connect()?;
        self.write_request(&mut stream, method, &full, &[], Body::None, false)?;
        Ok(Pending {
            stream,
            method: method.to_string(),
        })
    }

    fn finish(stream: UnixStream, method: &str) -> Result<Response, HttpError> {
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let (status, headers) = Self::read_head(&mut reader)?;
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        // A HEAD answer never has a body, even when it announces a Content-Length (404's JSON).
        let body = if method == "HEAD" {
            BodyReader::Length(reader.take(0))
        } else if find("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            BodyReader::Chunked(ChunkedReader {
                inner: reader,
                remaining: 0,
                done: false,
            })
        } else if let Some(len) = find("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
            BodyReader::Length(reader.take(len))
        } else if status == 204 || status == 304 || method == "HEAD" {
            BodyReader::Length(reader.take(0))
        } else {
            BodyReader::Eof(reader)
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Opens a hijacked connection (attach): after the `101`/`200` head, the socket carries raw bytes both ways.
    /// Returns a reader over what the daemon sends (with any bytes it already buffered) and the socket to write to.
    pub fn hijack(
        &mut self,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(BufReader<UnixStream>, UnixStream), HttpError> {
        let full = format!("{}{}", self.prefix()?, path);
        let mut stream = self.connect()?;
        let b = body.map_or(Body::None, Body::Json);
        self.write_request(&mut stream, "POST", &full, &[], b, true)?;
        let writer = stream.try_clone()?;
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let (status, headers) = Self::read_head(&mut reader)?;
        if status >= 400 {
            let len = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
                .and_then(|(_, v)| v.parse::<u64>().ok());
            let body = match len {
                Some(l) => BodyReader::Length(reader.take(l)),
                None => BodyReader::Eof(reader),
            };
            return Err(Response {
                status,
                headers,
                body,
            }
            .check()
            .err()
            .unwrap_or(HttpError::Protocol("attach failed".into())));
        }
        Ok((reader, writer))
    }
}

/// `a < b` for dotted API versions like "1.41".
pub fn version_less(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        s.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    parse(a) < parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_less("1.41", "1.47"));
        assert!(!version_less("1.47", "1.47"));
        assert!(version_less("1.9", "1.10"));
        assert!(!version_less("1.48", "1.47"));
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            with_query("/x", &[("a", "b c".into()), ("f", "{\"k\":1}".into())]),
            "/x?a=b%20c&f=%7B%22k%22%3A1%7D"
        );
        assert_eq!(with_query("/x", &[]), "/x");
    }

    #[test]
    fn chunked_bodies_decode_over_a_real_socket() {
        let (a, mut b) = UnixStream::pair().expect("socketpair");
        std::thread::spawn(move || {
            b.write_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
                .expect("write");
        });
        let mut r = ChunkedReader {
            inner: BufReader::new(a),
            remaining: 0,
            done: false,
        };
        let mut s = String::new();
        r.read_to_string(&mut s).expect("read");
        assert_eq!(s, "hello world");
    }
}
