//! Builds `init/docker-init.rs` (the `--init` PID 1) into a static binary that the engine embeds. Without a
//! static libc the binary is left empty and `--init` reports that it is unavailable.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/docker-init.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("docker-init");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let st = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-type=bin",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .status();
    if !st.is_ok_and(|s| s.success()) {
        println!(
            "cargo:warning=could not build the static docker-init; --init will be unavailable"
        );
        std::fs::write(&out, b"").expect("write empty docker-init");
    }
}
