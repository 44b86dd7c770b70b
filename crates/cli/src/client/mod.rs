//! The docker-compatible client: parses docker's verbs and flags and talks to berthd over the Engine API.

/// Runs `berth ARGS...` (`args[0]` is the program name) and returns the process exit code.
pub fn main(_args: &[std::ffi::OsString]) -> i32 {
    println!("berth version {}", env!("CARGO_PKG_VERSION"));
    0
}
