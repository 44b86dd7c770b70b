//! On-disk cache of compiled seccomp programs: compiling docker's default profile with libseccomp takes
//! 10-40 ms, every container start of the engine uses the same profile, and loading the result is one syscall.
//!
//! Layout: `<runtime root>/.seccomp-cache/<sha256 hex>.bpf`, the raw BPF program (ENOSYS stub included). The
//! key covers everything the program depends on: the canonical JSON of the `LinuxSeccomp`, the native
//! architecture, libseccomp's version and API level (the latter reflects which actions and flags the running
//! kernel supports), the kernel release, and berth's own version and cache format (the ENOSYS stub is generated
//! by berth). The `SECCOMP_FILTER_FLAG_*` flags are not stored: they are derived from the profile alone.
//!
//! The directory is created 0700 and must be owned by us and not writable by anyone else, or the cache is not
//! used (a program planted there would become a container's filter). Files are written to a temporary name and
//! renamed into place, so readers see whole programs only. On read, the size must be a whole, non-zero number
//! of instructions and at most `BPF_MAXINSNS`; on any doubt the profile is recompiled and the entry rewritten.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use libseccomp::ScmpArch;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::seccomp::{CompiledFilter, SeccompError};

/// Name of the cache directory under the runtime root.
pub const CACHE_DIR: &str = ".seccomp-cache";
/// Bumped whenever the program berth generates for a profile changes.
const FORMAT: &str = "berth-seccomp-cache-v1";
/// The kernel's limit on the instructions of one classic BPF program.
const BPF_MAXINSNS: usize = 4096;
const INSN: usize = std::mem::size_of::<libc::sock_filter>();
/// Entries kept: a machine uses a handful of profiles (docker's default per bounding set, a few custom ones),
/// but each distinct custom profile or `--cap-add` combination adds one, so the directory is bounded.
const MAX_ENTRIES: usize = 64;

/// The cache key of `seccomp` on this machine, as lowercase hex.
pub fn key(seccomp: &LinuxSeccomp) -> Result<String, SeccompError> {
    // Through a `Value` so the JSON does not depend on how the struct was built (field order, absent vs null
    // is already normalized by oci-spec's serializer).
    let value = serde_json::to_value(seccomp)
        .map_err(|e| SeccompError::Export(std::io::Error::other(e)))?;
    let json =
        serde_json::to_vec(&value).map_err(|e| SeccompError::Export(std::io::Error::other(e)))?;
    let mut h = Sha256::new();
    let mut field = |name: &str, bytes: &[u8]| {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("format", FORMAT.as_bytes());
    field("berth", env!("CARGO_PKG_VERSION").as_bytes());
    field("profile", &json);
    field("arch", format!("{:?}", ScmpArch::native()).as_bytes());
    let v = libseccomp::ScmpVersion::current().map_err(|source| SeccompError::Lib {
        what: "reading libseccomp's version".into(),
        source,
    })?;
    field(
        "libseccomp",
        format!("{}.{}.{}", v.major, v.minor, v.micro).as_bytes(),
    );
    // libseccomp's API level is probed from the kernel: it changes with the supported actions and flags.
    field("api", &libseccomp::get_api().to_le_bytes());
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().as_encoded_bytes().to_vec())
        .unwrap_or_default();
    field("kernel", &release);
    Ok(hex::encode(h.finalize()))
}

/// [`CompiledFilter::compile`] through the cache under `root` (the runtime's state root). Cache problems are
/// never errors: they are logged and the profile is compiled.
pub fn compile_cached(seccomp: &LinuxSeccomp, root: &Path) -> Result<CompiledFilter, SeccompError> {
    let flags = CompiledFilter::flags_of(seccomp);
    let entry = match key(seccomp).and_then(|k| {
        cache_dir(root)
            .map(|d| d.join(format!("{k}.bpf")))
            .map_err(SeccompError::Export)
    }) {
        Ok(p) => Some(p),
        Err(e) => {
            log::debug!("seccomp cache unusable under {}: {e}", root.display());
            None
        }
    };
    if let Some(p) = &entry {
        if let Some(bpf) = read_entry(p) {
            if let Ok(f) = CompiledFilter::from_bpf(bpf, flags) {
                return Ok(f);
            }
        }
    }
    let compiled = CompiledFilter::compile(seccomp)?;
    if let Some(p) = &entry {
        if let Err(e) = write_entry(p, compiled.bpf()) {
            log::debug!("writing seccomp cache entry {}: {e}", p.display());
        } else if let Some(dir) = p.parent() {
            prune(dir, MAX_ENTRIES);
        }
    }
    Ok(compiled)
}

/// The cache directory, created if needed; an error when it exists but could be written by someone else.
fn cache_dir(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join(CACHE_DIR);
    match DirBuilder::new().mode(0o700).recursive(false).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let md = std::fs::symlink_metadata(&dir)?;
    if !md.is_dir() || md.uid() != nix::unistd::geteuid().as_raw() || md.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a directory owned by us and writable only by us",
            dir.display()
        )));
    }
    Ok(dir)
}

/// The program stored at `path`, if it looks like a valid one.
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let md = f.metadata().ok()?;
    let len = md.len() as usize;
    if !md.is_file()
        || md.uid() != nix::unistd::geteuid().as_raw()
        || len == 0
        || !len.is_multiple_of(INSN)
        || len / INSN > BPF_MAXINSNS
    {
        log::debug!(
            "seccomp cache entry {} rejected, recompiling",
            path.display()
        );
        return None;
    }
    let mut bpf = Vec::with_capacity(len);
    // Read one byte more than expected: a file that grew since the stat is not trusted either.
    Read::by_ref(&mut f)
        .take(len as u64 + 1)
        .read_to_end(&mut bpf)
        .ok()?;
    (bpf.len() == len).then_some(bpf)
}

/// Removes the least recently written entries of `dir` beyond `max` (after a write, a cache miss: rare). An
/// entry removed while another process reads it is merely recompiled there.
fn prune(dir: &Path, max: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".bpf")))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() <= max {
        return;
    }
    entries.sort();
    for (_, p) in &entries[..entries.len() - max] {
        let _ = std::fs::remove_file(p);
    }
}

/// Writes `bpf` to `path` atomically (temporary file in the same directory, then rename).
fn write_entry(path: &Path, bpf: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let res = (|| {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(bpf)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
#[path = "seccomp_cache_tests.rs"]
mod tests;
