//! Shared by the build scripts of `berth` (crates/cli) and `berth-shim` (crates/shim): links the package's
//! binaries as a static PIE when the toolchain can.
//!
//! Stable cargo has no per-package `-C target-feature=+crt-static`, so this asks the C compiler driver for
//! `-static-pie` and makes the libraries rustc names (`-lc`, `-lgcc_s`, `-lseccomp`, ...) resolve to their static
//! archives: links to them in OUT_DIR, which the linker searches before the system directories (a directory's
//! `.a` is taken before the next directory's `.so`). `libgcc_s` becomes `libgcc_eh.a`, its static counterpart.
//! Without `rcrt1.o` or any of the archives (no libc6-dev, another libc) the binary is linked dynamically as
//! usual, with a cargo warning; the environment variable `dynamic_env` forces that. Unit-test executables stay
//! ordinary dynamic ones (`rustc-link-arg-bins`).

use std::path::PathBuf;
use std::process::Command;

/// Emits the link arguments for a static PIE of `binary`, whose libraries are libc's and `extra_libs`.
pub fn link(binary: &str, dynamic_env: &str, extra_libs: &[&str]) {
    println!("cargo:rerun-if-env-changed={dynamic_env}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
        || std::env::var_os(dynamic_env).is_some()
    {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let find = |name: &str| -> Option<PathBuf> {
        let out = Command::new(&cc)
            .arg(format!("-print-file-name={name}"))
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // The driver echoes the bare name when it does not find the file.
        (p.is_absolute() && p.exists()).then_some(p)
    };
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    if find("rcrt1.o").is_none() {
        println!("cargo:warning=no rcrt1.o: {binary} is linked dynamically");
        return;
    }
    let mut links = vec![("gcc_s", find("libgcc_eh.a"))];
    for &l in ["c", "m", "rt", "pthread", "dl", "util"]
        .iter()
        .chain(extra_libs)
    {
        links.push((l, find(&format!("lib{l}.a"))));
    }
    if let Some((l, _)) = links.iter().find(|(_, p)| p.is_none()) {
        println!("cargo:warning=no static lib{l}: {binary} is linked dynamically");
        return;
    }
    let dir = out.join("static-libs");
    let _ = std::fs::create_dir_all(&dir);
    for (l, p) in links {
        let link = dir.join(format!("lib{l}.a"));
        let _ = std::fs::remove_file(&link);
        if std::os::unix::fs::symlink(p.expect("checked"), &link).is_err() {
            println!(
                "cargo:warning=cannot link {}: {binary} is linked dynamically",
                link.display()
            );
            return;
        }
    }
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bins=-static-pie");
}
