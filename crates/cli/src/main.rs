//! `berth`: the command-line client, and `berth runtime`, the runc-compatible OCI runtime.
fn main() {
    println!("berth {}", env!("CARGO_PKG_VERSION"));
}
