//! Displays the JSON message stream of pull/push/load/import like docker's `jsonmessage`:
//! per-layer progress bars (indicatif) on a terminal, one plain line per status otherwise.

use std::io::{BufRead, BufReader, Read, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::CliError;

/// Where progress goes and how.
pub struct Display {
    to_stderr: bool,
    /// On a terminal: one line (bar) per layer id, and one per id-less status, in arrival order, like docker's
    /// cursor-addressed display.
    bars: Option<(MultiProgress, Vec<(String, ProgressBar)>)>,
    plain_lines: usize,
}

impl Display {
    /// Progress to stdout (pull, push, load) or stderr (run's implicit pull); bars when that is a terminal.
    pub fn new(to_stderr: bool) -> Display {
        use std::io::IsTerminal;
        let term = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let bars = term.then(|| {
            let target = if to_stderr {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::stdout()
            };
            (MultiProgress::with_draw_target(target), Vec::new())
        });
        Display {
            to_stderr,
            bars,
            plain_lines: 0,
        }
    }

    fn write_line(&self, s: &str) {
        if self.to_stderr {
            let _ = writeln!(std::io::stderr().lock(), "{s}");
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        }
    }

    /// Sets (creating it at the bottom if new) the terminal line for `key`.
    fn set_bar(&mut self, key: &str, msg: String) -> Option<ProgressBar> {
        let (mp, bars) = self.bars.as_mut()?;
        if let Some((_, b)) = bars.iter().find(|(k, _)| k == key) {
            b.set_message(msg);
            return Some(b.clone());
        }
        let b = mp.add(ProgressBar::new_spinner());
        b.set_style(
            ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.set_message(msg);
        bars.push((key.to_string(), b.clone()));
        Some(b)
    }

    fn line(&mut self, s: &str) {
        if self.bars.is_some() {
            self.plain_lines += 1;
            let key = format!("\0line{}", self.plain_lines);
            if let Some(b) = self.set_bar(&key, s.to_string()) {
                b.finish();
            }
            return;
        }
        self.write_line(s);
    }

    /// Shows one message; returns its error text if it carries one.
    pub fn show(&mut self, m: &Value) -> Option<String> {
        if let Some(e) = m["errorDetail"]["message"].as_str().or(m["error"].as_str()) {
            return Some(e.to_string());
        }
        if let Some(s) = m["stream"].as_str() {
            let s = s.trim_end_matches('\n');
            if !s.is_empty() {
                self.line(s);
            }
            return None;
        }
        let status = m["status"].as_str().unwrap_or("");
        let id = m["id"].as_str().unwrap_or("");
        let progress = m["progress"].as_str().unwrap_or("");
        if self.bars.is_some() {
            if !id.is_empty() {
                let msg = if progress.is_empty() {
                    format!("{id}: {status}")
                } else {
                    format!("{id}: {status} {progress}")
                };
                self.set_bar(id, msg);
                return None;
            }
        } else if !progress.is_empty()
            || m.get("progressDetail")
                .is_some_and(|d| d.get("current").is_some())
        {
            // Like docker: progress bars are not written when the output is not a terminal.
            return None;
        }
        if status.is_empty() {
            return None;
        }
        let text = if id.is_empty() {
            status.to_string()
        } else {
            format!("{id}: {status}")
        };
        self.line(&text);
        None
    }

    /// Replaces the live display with its final lines, so the terminal keeps docker's final picture and
    /// whatever we print next starts on a fresh line.
    pub fn finish(&mut self) {
        let Some((mp, bars)) = self.bars.take() else {
            return;
        };
        let lines: Vec<String> = bars.iter().map(|(_, b)| b.message()).collect();
        // Clear once, then hide the target so finishing the bars does not redraw them one by one.
        let _ = mp.clear();
        mp.set_draw_target(ProgressDrawTarget::hidden());
        for (_, b) in &bars {
            b.finish_and_clear();
        }
        for l in lines {
            self.write_line(&l);
        }
    }
}

/// Reads a JSON-lines progress stream to the end, displaying it; fails with the first error message.
/// Returns every message's `aux` object (push digests, build ids).
pub fn consume(r: impl Read, to_stderr: bool, quiet: bool) -> Result<Vec<Value>, CliError> {
    let mut d = Display::new(to_stderr);
    let mut aux = Vec::new();
    let mut reader = BufReader::new(r);
    let mut line = String::new();
    let mut err = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        // A stream may carry several objects per line; parse them all.
        for m in serde_json::Deserializer::from_str(line.trim()).into_iter::<Value>() {
            let Ok(m) = m else { continue };
            if let Some(a) = m.get("aux") {
                aux.push(a.clone());
            }
            if quiet {
                if let Some(e) = m["errorDetail"]["message"].as_str().or(m["error"].as_str()) {
                    err = Some(e.to_string());
                }
                continue;
            }
            if let Some(e) = d.show(&m) {
                err = Some(e);
            }
        }
        if err.is_some() {
            break;
        }
    }
    d.finish();
    match err {
        Some(e) => Err(CliError::Msg(e)),
        None => Ok(aux),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_the_stream_fail() {
        let s = b"{\"status\":\"Pulling from library/x\",\"id\":\"latest\"}\n{\"errorDetail\":{\"message\":\"manifest unknown\"},\"error\":\"manifest unknown\"}\n";
        let e = consume(&s[..], true, true).expect_err("error");
        assert_eq!(e.to_string(), "manifest unknown");
        let ok = b"{\"status\":\"Loaded image: a:b\"}\n{\"aux\":{\"Digest\":\"sha256:1\"}}\n";
        assert_eq!(consume(&ok[..], true, true).expect("ok").len(), 1);
    }
}
