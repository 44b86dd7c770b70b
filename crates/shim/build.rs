//! Links `berth-shim` statically (static PIE) when the toolchain can (build-support/static_pie.rs): one shim
//! runs beside every container, and a dynamically linked one maps (and counts in its RSS) about 1.4 MB of the
//! shared libc and loader. `BERTH_SHIM_DYNAMIC=1` forces a dynamic link.

#[path = "../../build-support/static_pie.rs"]
mod static_pie;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../build-support/static_pie.rs");
    static_pie::link("berth-shim", "BERTH_SHIM_DYNAMIC", &[]);
}
