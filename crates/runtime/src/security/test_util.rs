//! Test helpers: run a check in a forked child so process-wide changes (capabilities, uid, seccomp, rlimits)
//! never touch the test harness.

/// Whether the tests run as root (privileged tests are skipped, with a printed reason, otherwise).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skip the calling test, with a printed reason, unless it runs as root.
macro_rules! require_root {
    () => {
        if !$crate::security::test_util::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}
pub(crate) use require_root;

/// Fork, run `f` in the child and return its exit code (a signal `n` maps to `128 + n`).
///
/// The child only runs `f` and `_exit`s: no unwinding back into the harness. glibc makes `malloc` safe after
/// `fork` even in a multithreaded parent (it holds the arena locks across `fork`), and `f` takes no other lock the
/// harness threads may hold (no stdout/stderr printing, which is captured per thread anyway).
pub fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `f` (see above for why that is fine) and leaves with `_exit`, never returning.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child with a valid status pointer.
            let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            }
        }
    }
}
