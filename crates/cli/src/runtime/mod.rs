//! `berth runtime`: runc's command line over `berth_runtime`.

/// Runs `berth runtime ARGS...` (`args[0]` is "runtime") and returns the process exit code.
pub fn main(_args: &[std::ffi::OsString]) -> i32 {
    eprintln!("berth runtime: not implemented yet");
    1
}
