//! berth-runtime: an OCI runtime (runtime-spec v1.2) as a library.
//!
//! `berth runtime` (runc's CLI) and the engine's monitor both drive containers through the functions
//! re-exported here. The caller of [`create`] is the parent of the container's init process, so a monitor can
//! `waitpid` it; the CLI simply exits and lets it be reparented.
//!
//! Process model (see ARCHITECTURE.md): `create` clones the container's init once with the new namespaces; the
//! parent (the caller) writes id maps, puts the child in its cgroup and runs runtime hooks while the child builds
//! the rootfs, pivots, applies the process security settings and then blocks opening the exec fifo. `start`
//! opens the fifo, which releases the init into `execve`.

mod cgroup;
mod create;
mod exec;
mod hooks;
mod init;
mod mounts;
mod namespaces;
mod ops;
mod process;
mod rootfs;
mod secure;
pub mod security;
pub mod selfexe;
mod spec;
mod state;
mod sync;
pub mod terminal;

pub use create::create_with_console;
pub use create::{create, CreateOptions};
pub use exec::{exec, ExecHandle, ExecOptions};
pub use ops::{delete, kill, list, parse_signal, pause, processes, resume, start, state};
pub use selfexe::{ensure_sealed_exe, is_sealed_exe, sealed_exe_fd, sealed_fd_of};
pub use spec::{load_spec, validate_id};
pub use state::{now_rfc3339, ContainerState, Status};

/// The OCI runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// Errors of the public API. Messages are one line, meant to be shown as-is (runc style).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    AlreadyExists(String),
    #[error("invalid container id {0:?}: must match [A-Za-z0-9][A-Za-z0-9_.+-]* and be at most 1024 bytes")]
    InvalidId(String),
    #[error("container {id} is {status}, {what}")]
    BadStatus {
        id: String,
        status: Status,
        what: &'static str,
    },
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupAdapterError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error(transparent)]
    Sync(#[from] sync::SyncError),
    #[error("{0}")]
    Child(String),
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub(crate) fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            what: what.into(),
            source,
        }
    }
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
