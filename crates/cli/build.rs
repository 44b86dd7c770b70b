//! Links the `berth` binary statically (static PIE) when the toolchain can.
//!
//! `berth` is started three times per `berth run`: the CLI, the container's monitor and the monitor's
//! `--finish` re-exec. Dynamically linked, each start maps libseccomp, libgcc_s, libm and libc and has ld.so
//! resolve some 200 symbols across them; measured on the bench VM that is most of the process's start cost. A
//! static PIE keeps ASLR and only relocates itself. Nothing in `berth` needs glibc's NSS (no user or host name
//! lookups through libc), the one feature static glibc lacks.
//!
//! Stable cargo has no per-package `-C target-feature=+crt-static`, so (as `crates/shim/build.rs` does) this
//! asks the C compiler driver for `-static-pie` and makes the libraries rustc names (`-lc`, `-lgcc_s`,
//! `-lseccomp`, ...) resolve to their static archives: links to them in OUT_DIR, which the linker searches
//! before the system directories (a directory's `.a` is taken before the next directory's `.so`). `libgcc_s`
//! becomes `libgcc_eh.a`, its static counterpart. Without any of the archives or `rcrt1.o` (no libc6-dev or
//! libseccomp-dev's `.a`, another libc) `berth` is linked dynamically as before; `BERTH_DYNAMIC=1` forces that.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BERTH_DYNAMIC");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
        || std::env::var_os("BERTH_DYNAMIC").is_some()
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
        println!("cargo:warning=no rcrt1.o: berth is linked dynamically");
        return;
    }
    let mut links = vec![("gcc_s", find("libgcc_eh.a"))];
    for l in ["c", "m", "rt", "pthread", "dl", "util", "seccomp"] {
        links.push((l, find(&format!("lib{l}.a"))));
    }
    if let Some((l, _)) = links.iter().find(|(_, p)| p.is_none()) {
        println!("cargo:warning=no static lib{l}: berth is linked dynamically");
        return;
    }
    let dir = out.join("static-libs");
    let _ = std::fs::create_dir_all(&dir);
    for (l, p) in links {
        let link = dir.join(format!("lib{l}.a"));
        let _ = std::fs::remove_file(&link);
        if std::os::unix::fs::symlink(p.expect("checked"), &link).is_err() {
            println!(
                "cargo:warning=cannot link {}: berth is linked dynamically",
                link.display()
            );
            return;
        }
    }
    // Only the binary: the unit-test executables stay ordinary dynamic ones.
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bins=-static-pie");
}
