//! The per-container monitor: a small single-threaded process, exec'd by berthd, that creates and starts one
//! container through `berth_runtime`, owns its stdio and logs, reaps it and records its exit status.

/// Entry point for `berth monitor ARGS...`; returns the process exit code.
pub fn main(_args: &[std::ffi::OsString]) -> i32 {
    eprintln!("berth monitor: not implemented yet");
    1
}
