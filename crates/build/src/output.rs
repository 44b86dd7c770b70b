//! Progress output in the classic builder's format (`Step 1/5 : FROM busybox`, ` ---> 3b2c9a1f2e1d`,
//! ` ---> Using cache`, ` ---> Running in …`, `Removing intermediate container …`, `Successfully built …`).
//! `-q` silences everything but the final image id.

use std::io::{self, Write};

/// Errors writing progress.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing build output: {0}")]
    Io(#[from] io::Error),
}

/// Short (12 hex) form of an id, without `sha256:`.
pub fn short(id: &str) -> &str {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    // By characters, so an odd id from a backend can never split a UTF-8 sequence.
    let end = h.char_indices().nth(12).map_or(h.len(), |(i, _)| i);
    &h[..end]
}

/// The progress writer.
pub struct Progress<'a> {
    out: &'a mut dyn Write,
    sink: io::Sink,
    pub quiet: bool,
}

impl<'a> Progress<'a> {
    pub fn new(out: &'a mut dyn Write, quiet: bool) -> Self {
        Progress {
            out,
            sink: io::sink(),
            quiet,
        }
    }

    /// A line of builder output (suppressed by `-q`).
    pub fn line(&mut self, s: &str) -> Result<(), OutputError> {
        if !self.quiet {
            writeln!(self.out, "{s}")?;
        }
        Ok(())
    }

    pub fn step(&mut self, n: usize, total: usize, text: &str) -> Result<(), OutputError> {
        self.line(&format!("Step {n}/{total} : {text}"))
    }

    pub fn image(&mut self, id: &str) -> Result<(), OutputError> {
        self.line(&format!(" ---> {}", short(id)))
    }

    pub fn using_cache(&mut self) -> Result<(), OutputError> {
        self.line(" ---> Using cache")
    }

    pub fn running_in(&mut self, container: &str) -> Result<(), OutputError> {
        self.line(&format!(" ---> Running in {}", short(container)))
    }

    pub fn removing(&mut self, container: &str) -> Result<(), OutputError> {
        self.line(&format!(
            "Removing intermediate container {}",
            short(container)
        ))
    }

    /// Where a RUN's own output goes (nowhere under `-q`).
    pub fn run_output(&mut self) -> &mut dyn Write {
        if self.quiet {
            &mut self.sink
        } else {
            &mut *self.out
        }
    }

    /// The final lines: `Successfully built` / `Successfully tagged`, or the full id alone with `-q`.
    pub fn done(&mut self, id: &str, tags: &[String]) -> Result<(), OutputError> {
        if self.quiet {
            writeln!(self.out, "{id}")?;
            return Ok(());
        }
        writeln!(self.out, "Successfully built {}", short(id))?;
        for t in tags {
            writeln!(self.out, "Successfully tagged {t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_docker() {
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(&mut buf, false);
            p.step(1, 2, "FROM busybox").unwrap();
            p.image("sha256:3b2c9a1f2e1d00000000").unwrap();
            p.using_cache().unwrap();
            p.running_in("4f5a6b7c8d9e0000").unwrap();
            p.removing("4f5a6b7c8d9e0000").unwrap();
            p.done("sha256:abcdefabcdef99", &["x:latest".into()])
                .unwrap();
        }
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "Step 1/2 : FROM busybox\n ---> 3b2c9a1f2e1d\n ---> Using cache\n ---> Running in 4f5a6b7c8d9e\nRemoving intermediate container 4f5a6b7c8d9e\nSuccessfully built abcdefabcdef\nSuccessfully tagged x:latest\n"
        );
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(&mut buf, true);
            p.step(1, 1, "FROM x").unwrap();
            writeln!(p.run_output(), "noise").unwrap();
            p.done("sha256:abc", &[]).unwrap();
        }
        assert_eq!(String::from_utf8(buf).unwrap(), "sha256:abc\n");
    }
}
