//! Links the `berth` binary statically (static PIE) when the toolchain can (build-support/static_pie.rs).
//!
//! `berth` starts at least twice per `berth run` (the CLI and the container's monitor). Dynamically linked,
//! each start maps libseccomp, libgcc_s, libm and libc and has ld.so resolve some 200 symbols across them;
//! measured on the bench VM that was most of the process's start cost. A static PIE keeps ASLR and only
//! relocates itself. Nothing in `berth` needs glibc's NSS (no user or host name lookups through libc), the one
//! feature static glibc lacks. `BERTH_DYNAMIC=1` forces a dynamic link.

#[path = "../../build-support/static_pie.rs"]
mod static_pie;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../build-support/static_pie.rs");
    static_pie::link("berth", "BERTH_DYNAMIC", &["seccomp"]);
}
