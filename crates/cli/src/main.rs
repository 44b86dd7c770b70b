//! `berth`: one binary with three faces.
//!
//! - `berth runtime ...` (or the binary linked as `berth-runtime`): the runc-compatible OCI runtime CLI
//!   (`runtime/`), used by engines in runc's place.
//! - `berth monitor ...` (hidden): the per-container monitor that berthd execs (`berth_engine::monitor`).
//! - everything else: docker's verbs as a client of the Docker Engine API (`client/`).
//!
//! The dispatch happens before any argument parser or async runtime starts, so the runtime and monitor
//! paths stay single-threaded: they fork into containers.

mod client;
mod runtime;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Engines are configured with a runtime *path* (`dockerd --add-runtime`, `ctr --runc-binary`) and call it
    // with runc's arguments, so a link named `berth-runtime` (or `runc`) to this binary is the runtime itself.
    let invoked_as = args
        .first()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("berth");
    if matches!(invoked_as, "berth-runtime" | "runc") {
        std::process::exit(runtime::main(&args));
    }
    let code = match args.get(1).and_then(|a| a.to_str()) {
        Some("runtime") => runtime::main(&args[1..]),
        Some("monitor") => berth_engine::monitor::main(&args[1..]),
        _ => client::main(&args),
    };
    std::process::exit(code);
}
